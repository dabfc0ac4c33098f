"""Fixtures for the vision tests: shape images as arrays and as PNG files in class folders."""

import io
import os
import struct
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


def encode_webp(image: np.ndarray) -> bytes:
    """`image` as a lossless WebP (alpha and the colours under it kept), by PIL; the test
    is skipped where PIL cannot write WebP."""
    pil = pytest.importorskip("PIL.Image")
    if not pytest.importorskip("PIL.features").check("webp"):
        pytest.skip("PIL here was built without WebP, so it cannot write the test file")
    buffer = io.BytesIO()
    pil.fromarray(image).save(buffer, "WEBP", lossless=True, exact=True)
    return buffer.getvalue()


def encode_bmp(image: np.ndarray, top_down: bool = False, palette=None) -> bytes:
    """An uncompressed BMP of a uint8 image, bottom-up (positive height) or top-down.

    A `(h, w)` image becomes an 8-bit BMP whose pixels index `palette` (`(n, 3)` RGB; a gray
    ramp, entry i = (i, i, i), by default); `(h, w, 3)` or `(h, w, 4)` a 24- or 32-bit one.
    """
    image = np.asarray(image, np.uint8)
    height, width = image.shape[:2]
    if image.ndim == 2:
        colours = np.repeat(np.arange(256), 3).reshape(256, 3) if palette is None else palette
        colours = np.asarray(colours, np.uint8)
        table = np.concatenate([colours[:, ::-1], np.zeros((len(colours), 1), np.uint8)], 1)
        table, rows, bits = table.tobytes(), image, 8
    else:
        table, bits = b"", 8 * image.shape[2]
        rows = image[..., [2, 1, 0, 3][: image.shape[2]]]  # stored as BGR(A)
    padding = bytes(-(width * bits // 8) % 4)
    pixels = b"".join(row.tobytes() + padding for row in (rows if top_down else rows[::-1]))
    offset = 54 + len(table)
    return (struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
            + struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits,
                          0, len(pixels), 2835, 2835, len(table) // 4, 0)
            + table + pixels)


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
