"""Finding image files on disk and checking, in one parallel pass, which ones decode."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from ktlite._console import warn
from ktlite.columns import is_series
from ktlite.vision.formats import format_problem
from ktlite.vision.preprocessor import decode_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


def class_folders(folder: str) -> list[str]:
    """Returns the sorted names of the visible sub-folders of `folder`.

    Args:
        folder: an existing folder.

    Returns:
        Sub-folder names, sorted.

    Example:
        >>> class_folders("shapes/train")
        ['cross', 'square']
    """
    # scandir's entries know their type: no stat per file in a folder of thousands of images.
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def path_list(images: Any) -> list[str] | None:
    """Reads `images` as file paths when it is a non-empty list of them.

    Args:
        images: anything a user passes as images: a list, tuple, 1-D object array (e.g. a
            folder loader's `val.x`, whose file names that are not UTF-8 are bytes, see
            `path_array`) or pandas Series of paths counts.

    Returns:
        The paths as `str`s, or `None` when `images` is not such a collection.

    Example:
        >>> path_list(np.array(["a.png", "b.png"], dtype=object))
        ['a.png', 'b.png']
    """
    in_array = isinstance(images, np.ndarray)
    if in_array:
        images = images.tolist() if images.dtype.kind in "OU" and images.ndim == 1 else None
    elif is_series(images):
        images = list(images)
    if isinstance(images, (list, tuple)) and images and all(
        isinstance(item, (str, os.PathLike)) or (in_array and _is_path_bytes(item))
        for item in images
    ):
        return [os.fsdecode(item) for item in images]
    return None


def _is_path_bytes(item: Any) -> bool:
    """Whether `item` is a file name kept as bytes in a loader's array (`path_array`): a
    name holds no NUL byte, which encoded images (PNG, JPEG, ...) always do, and in a
    list bytes are encoded images (the predictor's)."""
    return isinstance(item, bytes) and b"\0" not in item and len(item) <= 4096


def path_array(paths: Sequence[str]) -> np.ndarray:
    """Returns `paths` as a 1-D object array that TensorFlow reads, as the loaders keep them.

    TensorFlow reads a `str` as UTF-8 only. A file name that is not UTF-8 (e.g. a Latin-1
    `café.png` from a zip, which `os.listdir` decodes with surrogate escapes) is kept as its
    bytes (`os.fsencode`), which `tf.io.read_file` opens; the other paths stay `str`.

    Args:
        paths: file paths.

    Returns:
        The paths, each a `str` or, for a name that is not UTF-8, `bytes`.

    Example:
        >>> path_array(["a.png", os.fsdecode(b"caf\\xe9.png")])
        array(['a.png', b'caf\\xe9.png'], dtype=object)
    """
    return np.array([path if _is_utf8(path) else os.fsencode(path) for path in paths],
                    dtype=object)


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def images_in(folder: str) -> list[str]:
    """Returns the sorted paths of the image files (by extension) directly in `folder`.

    Args:
        folder: an existing folder.

    Returns:
        Paths of `.png`, `.jpg`, `.jpeg`, `.gif`, `.bmp` and `.webp` files (any case), sorted.

    Example:
        >>> images_in("shapes/train/cross")[:1]
        ['shapes/train/cross/0.png']
    """
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if not name.startswith(".")
        and name.lower().endswith(IMAGE_EXTENSIONS)
        and os.path.isfile(os.path.join(folder, name))
    ]


def images_below(folder: str) -> int:
    """Counts the image files (by extension) in the folders inside `folder`, at any depth.

    `images_in` does not read them; the folder loader names them so that a class whose
    images sit one level too deep is not a silent mystery. Hidden files and folders are
    not counted.

    Args:
        folder: an existing folder.

    Returns:
        How many `.png`, `.jpg`, `.jpeg`, `.gif`, `.bmp` and `.webp` files lie below
        `folder`'s sub-folders.

    Example:
        >>> images_below("photos/cat")  # photos/cat/2023/*.jpg
        12
    """
    count = 0
    for top in class_folders(folder):
        for root, dirs, names in os.walk(os.path.join(folder, top)):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            count += sum(
                not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
                for name in names
            )
    return count


def scan_images(paths: Sequence[str], name: str) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Decodes every file once and keeps the ones that decode, warning about the others.

    Missing, empty, truncated or non-image files, and the ones `format_problem` refuses
    (such as a BMP with a colour palette, which would decode wrong), are skipped with one
    warning that counts them and names the first. Files decode as the preprocessor decodes
    them (`decode_image`).

    Args:
        paths: the image files.
        name: what the files are, for the messages (e.g. `"training images"`).

    Returns:
        `(kept, shapes)`: the sorted indices of the readable files and their
        `(height, width, channels)`.

    Raises:
        ValueError: if `paths` is empty or no file decodes.

    Example:
        >>> kept, shapes = scan_images(paths, "training images")
    """
    if not len(paths):
        raise ValueError(f"There are no {name} to read. Received: 0 paths")

    def shape_of(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, ...]:
        data = tf.io.read_file(path)
        # The predictor's check too: a BMP with a colour palette decodes, but wrong.
        whole = tf.numpy_function(_looks_whole, [data], tf.bool, stateful=False)
        return index, tf.shape(decode_image(data, channels=0)), whole

    dataset = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(paths), dtype=np.int64), path_array(paths))
    )
    dataset = dataset.map(shape_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    found = {int(i): tuple(int(s) for s in shape)
             for i, shape, whole in dataset.ignore_errors().as_numpy_iterator() if whole}
    kept = np.array(sorted(found), dtype=np.int64)
    skipped = len(paths) - len(kept)
    if not len(kept):
        if any(os.path.exists(path) for path in paths):
            hint = ". Check the paths and the files"
        elif os.path.isabs(paths[0]):
            hint = (f": none of the files exists (is {os.path.dirname(paths[0])!r} the "
                    "folder they are in?)")
        else:
            hint = (": none of the files exists (relative paths are read from the working "
                    f"directory, {os.getcwd()!r}; a table's loader takes `directory=` for "
                    "them)")
        raise ValueError(
            f"None of the {len(paths)} {name} could be read as an image "
            f"(first: {paths[0]!r}){hint}."
        )
    if skipped:
        first = next(p for i, p in enumerate(paths) if i not in found)
        warn(
            f"Skipped {skipped} of {len(paths)} {name} that could not be read as images "
            f"(empty, truncated, missing, not an image, or a variant TensorFlow cannot "
            f"decode such as a palette BMP; first: {first!r}). Remove or replace those "
            "files (convert them to PNG) to use them.",
        )
    return kept, [found[i] for i in kept]


def _looks_whole(data: bytes) -> bool:
    return bool(data) and format_problem(data) is None


def common_shape(shapes: Sequence[tuple[int, int, int]]) -> tuple[tuple[int, int], int]:
    """Returns the most common `(height, width)` and the channel count images should have.

    Args:
        shapes: `(height, width, channels)` of each image.

    Returns:
        `((height, width), channels)`: channels is 1 when every image is grayscale (1 or 2
        channels), else 3.

    Example:
        >>> common_shape([(28, 28, 1), (28, 28, 1), (32, 30, 3)])
        ((28, 28), 3)
    """
    size = Counter((h, w) for h, w, _ in shapes).most_common(1)[0][0]
    gray = all(c in (1, 2) for _, _, c in shapes)
    return size, 1 if gray else 3
