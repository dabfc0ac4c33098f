"""Tiny drawn images for the vision tests: hollow squares against crosses, 16x16 gray."""

from __future__ import annotations

import numpy as np

SIZE = 16


def draw(kind: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One uint8 `(size, size)` image of a `"square"` outline or a `"cross"`, at a random place."""
    image = rng.integers(0, 40, (size, size)).astype(np.uint8)
    side = int(rng.integers(size // 3, size // 2 + 2))
    top, left = rng.integers(1, size - side, 2)
    bright = int(rng.integers(180, 256))
    if kind == "square":
        image[top, left:left + side] = bright
        image[top + side - 1, left:left + side] = bright
        image[top:top + side, left] = bright
        image[top:top + side, left + side - 1] = bright
    else:
        mid_r, mid_c = top + side // 2, left + side // 2
        image[mid_r, left:left + side] = bright
        image[top:top + side, mid_c] = bright
    return image


def shapes(n: int, seed: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """`n` images `(n, size, size)` uint8 and their labels, half "square", half "cross"."""
    rng = np.random.default_rng(seed)
    labels = np.array(["square", "cross"] * (n // 2) + ["square"] * (n % 2), dtype=object)
    rng.shuffle(labels)
    images = np.stack([draw(kind, rng, size) for kind in labels])
    return images, labels
