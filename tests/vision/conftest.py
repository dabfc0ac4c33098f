"""Fixtures for the vision tests: shape images as arrays and as PNG files in class folders."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))

from shapes import shapes  # noqa: E402


def write_png(path, image: np.ndarray) -> None:
    """Writes a uint8 `(h, w)` or `(h, w, c)` image as a PNG file."""
    if image.ndim == 2:
        image = image[..., None]
    tf.io.write_file(str(path), tf.io.encode_png(image))


@pytest.fixture(scope="session")
def shape_arrays():
    """240 training and 120 test shape images `(n, 16, 16)` uint8 with their labels."""
    x, y = shapes(240, seed=0)
    x_test, y_test = shapes(120, seed=1)
    return x, y, x_test, y_test


@pytest.fixture
def shape_folder(tmp_path):
    """`tmp/shapes/<square|cross>/<i>.png`, 20 images per class."""
    x, y = shapes(40, seed=2)
    root = tmp_path / "shapes"
    for i, (image, label) in enumerate(zip(x, y)):
        (root / label).mkdir(parents=True, exist_ok=True)
        write_png(root / label / f"{i}.png", image)
    return root
