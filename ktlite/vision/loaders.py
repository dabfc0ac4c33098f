"""Loaders that turn images and labels into ``(trn, val, preproc)``.

`images_from_array` keeps pixel arrays in memory; `images_from_folder`, `images_from_df` and
`images_from_csv` keep file paths and read each batch's files inside `tf.data`. Either way
``trn`` and ``val`` are `ktlite.data.TaskDataset` objects whose transform decodes, converts
channels, resizes and scales in the graph (`ImagePreprocessor`); only ``trn`` augments
(`Augmentation`: horizontal flips by default; shifts and rotations on request).
Labels are learned from the training labels with `ktlite.labels.LabelEncoder`.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite.arguments import check_seed, check_verbose
from ktlite._console import say, warn
from ktlite.columns import (
    check_column_name,
    examples_from_frame,
    label_columns_and_classes,
    labels_from_strings,
    read_csv_rows,
)
from ktlite.labels import LabelEncoder, check_class_names
from ktlite.saving import as_path
from ktlite.splits import check_val_pct, describe_holdout, split_indices
from ktlite.vision import files
from ktlite.vision.augment import Augmentation
from ktlite.vision.preprocessor import (
    ImagePreprocessor,
    as_pixel_batch,
    check_image_size,
    pixel_white,
    warn_if_8_bit_in_uint16,
)


# ---------------------------------------------------------------------- shared steps
def _augmentation(augment: Any) -> Augmentation | None:
    if isinstance(augment, (bool, np.bool_)):
        return Augmentation() if augment else None
    if augment is None:
        return None
    if isinstance(augment, Augmentation):
        return augment
    raise TypeError(
        "`augment` must be True (default augmentation), False, or a "
        f"ktlite.vision.Augmentation. Received: augment={augment!r}"
    )


def _datasets(
    x_trn: np.ndarray,
    y_trn: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    preproc: ImagePreprocessor,
    source: str,
    augmentation: Augmentation | None,
) -> tuple[Any, Any]:
    """The training and validation datasets; no validation images (``val_pct=0``): None."""
    trn = _image_dataset(x_trn, y_trn, preproc, source, augmentation)
    return trn, _image_dataset(x_val, y_val, preproc, source) if len(x_val) else None


def _image_dataset(
    x: np.ndarray,
    y: np.ndarray | None,
    preproc: ImagePreprocessor,
    source: str,
    augmentation: Augmentation | None = None,
) -> Any:
    from ktlite.classifier import classification_reporter
    from ktlite.data import TaskDataset

    return TaskDataset(x, y, transform=preproc.pipeline(source), task="vision",
                       reporter=classification_reporter(preproc.labels),
                       reader=functools.partial(image_dataset, preproc=preproc),
                       augment=augmentation)


def image_dataset(images: Any, labels: Any, preproc: ImagePreprocessor) -> Any:
    """A `TaskDataset` of new images for a fitted `ImagePreprocessor`, e.g. a test set.

    The loaders build their own datasets the same way, so `Learner.predict(images)` and
    `Learner.validate(val_data=(images, labels))` read raw images through it too. Images
    are never augmented here.

    Args:
        images: pixel arrays (`(n, height, width[, channels])`, read as in
            `images_from_array`, floats with white at `preproc.float_scale`) or image file
            paths (one path, a list, a 1-D object array such as a folder loader's `val.x`,
            or a pandas Series).
        labels: one label per image, in the form the loader took, or `None`.
        preproc: the fitted preprocessor.

    Returns:
        A `ktlite.data.TaskDataset` of the images as given, the encoded labels, the
        preprocessor's pipeline and the classification reporter `Learner.validate` prints.

    Raises:
        TypeError: if `preproc` is not an `ImagePreprocessor`, or for non-numeric pixels.
        ValueError: for no images, one image where a batch is expected (a 3-D array whose
            last axis is 1, 3 or 4, unless a grayscale model's images are that wide, or a
            2-D array of the model's size), a wrong rank or channel count, NaN
            pixels, float pixels above twice `preproc.float_scale` (up to it they clip to
            white), a file that is not a readable image (named), a number of labels other
            than the number of images, or unknown labels.

    Example:
        >>> test = image_dataset(x_test, y_test, preproc)
        >>> learner.validate(test)
    """
    ImagePreprocessor.check_instance(preproc)
    paths = files.path_list([images] if isinstance(images, (str, os.PathLike)) else images)
    if paths is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unreadable file is an error here
            kept, _ = files.scan_images(paths, "images")
        if len(kept) != len(paths):
            bad = sorted(set(range(len(paths))) - set(kept.tolist()))
            raise ValueError(
                f"`images[{bad[0]}]` ({paths[bad[0]]!r}) is not a readable image "
                f"({len(bad)} of {len(paths)} files are not)."
            )
        x, source = files.path_array(paths), "files"
    else:
        _refuse_one_image(images, preproc)
        x, source = as_pixel_batch(images, "images"), "pixels"
        preproc.check_float_range(x, "images")
    return _image_dataset(x, preproc.encode_labels_of(labels, len(x), "image"), preproc, source)


def _refuse_one_image(images: Any, preproc: ImagePreprocessor) -> None:
    """Refuses one image given where a batch is read (it would read as rows of pixels).

    A 3-D array is a batch of grayscale images here, as in `images_from_array`, but one
    whose last axis is a channel count (1, 3 or 4) is one image, as the predictor reads it:
    read as a batch, its `height` rows would each be resized into an image, a silent wrong
    answer. The exception is a grayscale model's batch of images as narrow as its own
    (e.g. `(n, 4, 4)` for 4 x 4 images). A 2-D array of the model's size is one image too.
    """
    if not isinstance(images, np.ndarray) or images.ndim not in (2, 3):
        return
    if images.ndim == 2:
        one = images.shape == tuple(preproc.image_size)
    else:
        width = images.shape[2]
        one = width in (1, 3, 4) and not (preproc.channels == 1
                                          and width == preproc.image_size[1])
    if one:
        raise ValueError(
            "`images` holds one image (height, width[, channels]), but a batch is read here "
            "(n, height, width[, channels]): pass `images[None]` for a batch of one, or use "
            "the predictor, which takes one image (a batch of grayscale images 1, 3 or 4 "
            "pixels wide takes a channel axis: `images[..., None]`). Received: images with "
            f"shape {images.shape}"
        )


def _fit_and_split(
    y_train: Any,
    y_test: Any,
    n_train: int,
    label_mode: str | None,
    class_names: Sequence[str] | None,
    val_pct: float,
    random_state: int | None,
) -> tuple[LabelEncoder, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Fits the labels; returns them, train / val indices (None: use y_test) and encodings."""
    check_seed(random_state, "random_state")
    if y_train is None or len(y_train) != n_train:
        raise ValueError(
            f"`y_train` must hold one label per training image. Received: {n_train} images "
            f"and {'no' if y_train is None else len(y_train)} labels"
        )
    labels = LabelEncoder(label_mode=label_mode, class_names=class_names).fit(
        y_train, name="y_train"
    )
    y_enc = labels.encode(y_train, name="y_train")
    if y_test is not None:
        return labels, np.arange(n_train), None, y_enc, labels.encode(y_test, name="y_test")
    train_idx, val_idx = split_indices(
        y_enc, labels.label_mode == "multiclass", val_pct, random_state, "images"
    )
    return labels, train_idx, val_idx, y_enc, y_enc[val_idx]


def _describe(labels: LabelEncoder) -> str:
    if labels.label_mode == "regression":
        return f"regression with {labels.num_outputs} target(s)"
    names = labels.class_names or []
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"{labels.label_mode} with {len(names)} classes: {shown}"


# ---------------------------------------------------------------------- arrays
def images_from_array(
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    y_test: Any = None,
    val_pct: float = 0.1,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    augment: bool | Augmentation = True,
    random_state: int | None = 42,
    verbose: int = 1,
) -> tuple[Any, Any, ImagePreprocessor]:
    """Builds training and validation data and an `ImagePreprocessor` from pixel arrays.

    Arrays are `(n, height, width)` (grayscale) or `(n, height, width, 1 | 3 | 4)`. White
    is, by dtype:

    - uint8: 255.
    - uint16: 65535 (16-bit images; a warning when no value is above 255, i.e. 8-bit
      values that would read as near black: pass those as uint8).
    - other integers (int8 to int64, uint32, uint64): 255; they must hold 0-255.
    - floats: 1.0 when the largest training value is at most 2 (0-1 pixels; overshoot past
      1, e.g. from bicubic resizing, clips to white), else 255.0 (0-255 pixels, clipped at
      255 likewise; floats above 510, e.g. 12-bit values, are refused: scale them first).
      `preproc.float_scale` records which, and `x_test` and later float pixels are read
      the same way.

    They stay in memory as given; each batch is converted, resized and scaled in `tf.data`.

    Args:
        x_train: training images.
        y_train: training labels, one per image (class names, ints, one-hot or 0/1 rows,
            floats; see `ktlite.labels`).
        x_test: validation images; when `None`, `val_pct` of the training images are held
            out (stratified by class for multiclass labels).
        y_test: validation labels; required with `x_test`.
        val_pct: the share held out when `x_test` is `None`. Defaults to 0.1;
            0 holds out nothing (``val`` is None).
        image_size: model input `(height, width)`; defaults to the arrays' size.
        channels: 1 or 3; defaults to the arrays' (RGBA becomes 3).
        label_mode: `"multiclass"`, `"multilabel"`, `"regression"` or `None` (detect).
        class_names: class names in output order; inferred (sorted) when `None`.
        augment: `True` (default) augments training batches with `Augmentation()`
            (horizontal flips; no shifts or rotations); `False` does not; an
            `Augmentation` sets your own, e.g. `Augmentation(translate=0.1, rotate=10.0)`.
        random_state: seed of the validation split. Defaults to 42.
        verbose: 1 reports sizes and classes; 0 is silent.

    Returns:
        `(trn, val, preproc)`: two `ktlite.data.TaskDataset` (pixels, encoded labels, the
        preprocessor's pipeline as transform, `task="vision"`) and the `ImagePreprocessor`.

    Raises:
        TypeError: for non-numeric arrays, a bad `augment`, a `random_state` or `verbose`
            that is not an int, or a `val_pct` that is not a number.
        ValueError: for a wrong rank or channel count, NaN or infinite pixels (the image is
            named), float `x_train` pixels above 510, float `x_test` pixels above 2 beside
            `x_train`'s in [0, 1] (above 510 beside brighter ones), mismatched lengths, a
            single class, a `val_pct` outside [0, 1), or a `verbose` other than 0 or 1.

    Example:
        >>> trn, val, preproc = images_from_array(x_train, y_train, x_test, y_test)
        >>> preproc.image_size, preproc.channels
        ((28, 28), 1)
    """
    augmentation = _augmentation(augment)
    check_verbose(verbose)
    shape = np.shape(x_train)
    if len(shape) == 3 and shape[-1] in (3, 4) and y_train is not None and len(y_train) == 1:
        raise ValueError(
            "`x_train` holds one color image (height, width, channels), but a batch is read "
            "here (a 3-D array is a batch of grayscale images): pass `x_train[None]` for a "
            f"batch of one. Received: x_train with shape {shape} and 1 label"
        )
    x = as_pixel_batch(x_train, "x_train")
    if (x_test is None) != (y_test is None):
        raise ValueError("`x_test` and `y_test` must be given together.")
    x_val = None if x_test is None else as_pixel_batch(x_test, "x_test")
    if x_val is not None and len(x_val) != len(y_test):
        raise ValueError(
            f"`x_test` and `y_test` must have the same length. Received: {len(x_val)} images "
            f"and {len(y_test)} labels"
        )
    val_pct = check_val_pct(val_pct)
    labels, train_idx, val_idx, y_enc, y_val = _fit_and_split(
        y_train, y_test, len(x), label_mode, class_names, val_pct, random_state
    )
    for arr, name in ((x, "x_train"), (x_val, "x_test")):
        warn_if_8_bit_in_uint16(arr, name)
    float_scale = pixel_white(x) if np.issubdtype(x.dtype, np.floating) else 1.0
    preproc = ImagePreprocessor(
        image_size=check_image_size(image_size) if image_size is not None else x.shape[1:3],
        channels=channels if channels is not None else (1 if x.shape[-1] == 1 else 3),
        labels=labels,
        float_scale=float_scale,
    )
    for arr, name in ((x, "x_train"), (x_val, "x_test")):
        if arr is not None:
            preproc.check_float_range(arr, name)
    if val_idx is None:
        x_trn, y_trn = x, y_enc
        source = "x_test"
    else:
        x_trn, y_trn, x_val = x[train_idx], y_enc[train_idx], x[val_idx]
        source = describe_holdout(val_pct, "x_train")
    if verbose:
        say(
            f"{len(x_trn):,} training and {len(x_val):,} validation images ({source}), "
            f"{x.shape[1]}x{x.shape[2]}x{x.shape[3]} {x.dtype} -> "
            f"{preproc.input_shape} float32; {_describe(labels)}"
        )
    trn, val = _datasets(x_trn, y_trn, x_val, y_val, preproc, "pixels", augmentation)
    return trn, val, preproc


# ---------------------------------------------------------------------- files
def _images_from_paths(
    paths: list[str],
    labels_raw: Any,
    val_paths: list[str] | None,
    val_labels_raw: Any,
    options: dict[str, Any],
) -> tuple[Any, Any, ImagePreprocessor]:
    """Scans the files, drops unreadable ones, fits labels, splits, builds the datasets."""
    verbose = check_verbose(options["verbose"])
    augmentation = _augmentation(options["augment"])
    val_pct = check_val_pct(options["val_pct"])
    kept, shapes = files.scan_images(paths, "training images")
    paths = [paths[i] for i in kept]
    y_train = _take(labels_raw, kept)
    class_names, unread = options["class_names"], []
    if options.get("folder") is not None:  # classes are folders: each needs a readable image
        readable = sorted(set(y_train))
        unread = [c for c in class_names if c not in readable]
        if unread and len(readable) < 2:
            raise ValueError(
                f"`folder` must hold at least 2 class sub-folders with readable images. "
                f"Received: folder={options['folder']!r}, whose only readable class is "
                f"{readable} (no image in {unread} could be read)"
            )
        if unread:
            warn(
                f"Sub-folders of {options['folder']!r} whose images could not be read are not "
                f"classes: {unread}",
            )
            class_names = readable
    y_test = None
    if val_paths is not None:
        val_kept, _ = files.scan_images(val_paths, "validation images")
        if unread:  # a dropped class's images go too
            known = np.array([val_labels_raw[i] in class_names for i in val_kept], dtype=bool)
            if not known.all():
                warn(
                    f"{int((~known).sum())} validation images of the classes dropped above "
                    "are left out too.",
                )
            val_kept = val_kept[known]
        val_paths = [val_paths[i] for i in val_kept]
        y_test = _take(val_labels_raw, val_kept)
    labels, train_idx, val_idx, y_enc, y_val = _fit_and_split(
        y_train, y_test, len(paths), options["label_mode"], class_names,
        val_pct, options["random_state"],
    )
    size, channels = files.common_shape(shapes)
    if options["image_size"] is not None:
        size = check_image_size(options["image_size"])
    if options["channels"] is not None:
        channels = options["channels"]
    preproc = ImagePreprocessor(image_size=size, channels=channels, labels=labels)
    x = files.path_array(paths)
    if val_idx is None:
        x_trn, y_trn, x_val = x, y_enc, files.path_array(val_paths)
    else:
        x_trn, y_trn, x_val = x[train_idx], y_enc[train_idx], x[val_idx]
    if verbose:
        sizes = {(h, w) for h, w, _ in shapes}
        resized = f", {len(sizes)} sizes resized" if len(sizes) > 1 else ""
        say(
            f"{len(x_trn):,} training and {len(x_val):,} validation image files -> "
            f"{preproc.input_shape} float32{resized}; {_describe(labels)}"
        )
    return _datasets(x_trn, y_trn, x_val, y_val, preproc, "files", augmentation) + (preproc,)


def _take(labels: Any, kept: np.ndarray) -> Any:
    if isinstance(labels, np.ndarray):
        return labels[kept]
    return [labels[i] for i in kept]


def _read_class_folder(folder: str, classes: list[str]) -> tuple[list[str], list[str]]:
    paths: list[str] = []
    names: list[str] = []
    for cls in classes:
        found = files.images_in(os.path.join(folder, cls))
        paths += found
        names += [cls] * len(found)
    return paths, names


def _nested_images(folder: str, classes: list[str]) -> dict[str, int]:
    """Images (by extension) in folders inside each class folder, which are not read."""
    counts = {cls: files.images_below(os.path.join(folder, cls)) for cls in classes}
    return {cls: n for cls, n in counts.items() if n}


def _nested_counts(nested: dict[str, int]) -> str:
    return ", ".join(f"{n} image(s) in folders inside {cls!r}" for cls, n in nested.items())


def _nested_note(nested: dict[str, int]) -> str:
    if not nested:
        return ""
    return (f". Images must sit directly in their class folder (e.g. cat/1.png, not "
            f"cat/sub/1.png): found {_nested_counts(nested)}; move them up to use them")


def images_from_folder(
    folder: str | os.PathLike,
    val_folder: str | os.PathLike | None = None,
    val_pct: float = 0.1,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    class_names: Sequence[str] | None = None,
    augment: bool | Augmentation = True,
    random_state: int | None = 42,
    verbose: int = 1,
) -> tuple[Any, Any, ImagePreprocessor]:
    """Builds training and validation data from `folder/<class>/<image files>`.

    Each sub-folder is a class (sorted by name); each `.png`, `.jpg`, `.jpeg`, `.gif`,
    `.bmp` or `.webp` file in it one image. Files that do not decode (empty, truncated, not
    images) are skipped with one warning that counts them; a sub-folder without images is
    not a class (a warning names it). Images must sit directly in their class folder:
    `cat/1.png`, not `cat/2023/1.png`; ones in folders inside it are not read (a warning,
    or the error when too few classes are left, counts them). `val_folder` has the same
    layout (a class it lacks gets no validation images; its sub-folders without images are
    ignored); without it, `val_pct` of the training images are held out, stratified by class.

    Args:
        folder: the training folder.
        val_folder: the validation folder, or `None` (default) to split `folder`.
        val_pct: the share held out when `val_folder` is `None`. Defaults to 0.1;
            0 holds out nothing (``val`` is None).
        image_size: model input `(height, width)`; defaults to the most common size of
            the training images (the others are resized).
        channels: 1 or 3; defaults to 1 when every training image is grayscale, else 3.
        class_names: the class folders to read, in output order; all when `None`. A
            named class whose folder holds no images stays a class, with a warning.
        augment: as in `images_from_array` (default `True`, training batches only).
        random_state: seed of the validation split. Defaults to 42.
        verbose: 1 reports sizes and classes; 0 is silent.

    Returns:
        `(trn, val, preproc)`: `TaskDataset`s of file paths (read, decoded and resized per
        batch) and the `ImagePreprocessor`.

    Raises:
        TypeError: if `folder` is not a path, `class_names` not a list of strings,
            `augment` neither a bool nor an `Augmentation`, or `random_state` or `verbose`
            not an int.
        ValueError: if a folder is missing, has fewer than 2 class folders or no images, a
            named class has no folder, `class_names` has fewer than 2 names, a sub-folder
            of `val_folder` with images is not a class of `folder`, no file decodes, or
            `verbose` is not 0 or 1.

    Example:
        >>> trn, val, preproc = images_from_folder("shapes/train", val_folder="shapes/test")
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"`folder` must be a folder path. Received: folder={folder!r}")
    if not os.path.isdir(folder):
        raise ValueError(f"`folder` must be an existing folder. Received: folder={folder!r}")
    folder = os.fspath(folder)
    found = files.class_folders(folder)
    classes = found if class_names is None else check_class_names(
        [str(c) for c in class_names] if isinstance(class_names, (list, tuple, np.ndarray))
        else class_names  # refused: e.g. one string would split into letters
    )
    missing = [c for c in classes if c not in found]
    if missing:
        raise ValueError(f"`class_names` {missing} have no folder in {folder!r}; it has {found}.")
    paths, names = _read_class_folder(folder, classes)
    with_images = sorted(set(names))
    empty = [c for c in classes if c not in with_images]
    nested = _nested_images(folder, classes)
    if len(with_images) < 2:
        raise ValueError(
            f"`folder` must hold at least 2 class sub-folders with images "
            f"({', '.join(files.IMAGE_EXTENSIONS)}). Received: folder={folder!r} with "
            f"image classes {with_images} (sub-folders: {found}){_nested_note(nested)}"
        )
    if class_names is None and empty:
        warn(
            f"Sub-folders of {folder!r} without images are not classes: {empty}"
            f"{_nested_note({c: n for c, n in nested.items() if c in empty})}",
        )
        classes = with_images
    elif empty:
        warn(  # images in folders inside theirs are counted by the warning below
            f"`class_names` {empty} have no images in {folder!r}, so the model never sees "
            "them in training: add images to their folders or leave them out of "
            "`class_names`.",
        )
    unread = {c: n for c, n in nested.items() if c in classes}
    if unread:
        warn(
            f"Images in folders inside the class folders of {folder!r} are not read: found "
            f"{_nested_counts(unread)}. Images must sit directly in their class folder; move "
            "them up to train on them.",
        )
    val_paths = val_names = None
    if val_folder is not None:
        val_folder = os.fspath(val_folder)
        if not os.path.isdir(val_folder):
            raise ValueError(
                f"`val_folder` must be an existing folder. Received: val_folder={val_folder!r}"
            )
        present = files.class_folders(val_folder)
        # As in `folder`, a sub-folder without images (e.g. of notes) is not a class.
        extra = [c for c in present
                 if c not in classes and files.images_in(os.path.join(val_folder, c))]
        if extra and class_names is None:
            raise ValueError(
                f"`val_folder` has class folders with images {extra} that are not classes of "
                f"`folder` (missing there, or without images). Received: "
                f"val_folder={val_folder!r}"
            )
        # A class the validation folder lacks (a rare one) has no validation images.
        val_paths, val_names = _read_class_folder(val_folder, [c for c in classes if c in present])
        if not val_paths:
            nested = _nested_images(val_folder, [c for c in classes if c in present])
            raise ValueError(
                f"`val_folder` holds no images. Received: val_folder={val_folder!r}"
                f"{_nested_note(nested)}"
            )
    options = dict(
        val_pct=val_pct, image_size=image_size, channels=channels, label_mode="multiclass",
        class_names=classes, augment=augment, random_state=random_state, verbose=verbose,
        folder=None if class_names is not None else folder,
    )
    return _images_from_paths(paths, names, val_paths, val_names, options)


# ---------------------------------------------------------------------- tables
_COLUMNS_HINT = "Set `path_column` and `label_columns`."


def _resolve(paths: list[Any], directory: str | None, arg: str) -> list[str]:
    out = []
    for i, p in enumerate(paths):
        if isinstance(p, os.PathLike):
            p = os.fspath(p)
        if not isinstance(p, str):
            raise TypeError(f"`{arg}` row {i} must hold an image path (a str). Received: "
                            f"{p!r:.80} of type {type(p).__name__}")
        if not p:
            raise ValueError(f"`{arg}` row {i} has no image path. Received: {p!r}")
        out.append(p if directory is None or os.path.isabs(p) else os.path.join(directory, p))
    return out


def images_from_df(
    train_df: Any,
    path_column: str = "path",
    label_columns: str | Sequence[str] = "label",
    directory: str | os.PathLike | None = None,
    val_df: Any = None,
    val_pct: float = 0.1,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    augment: bool | Augmentation = True,
    random_state: int | None = 42,
    verbose: int = 1,
) -> tuple[Any, Any, ImagePreprocessor]:
    """Builds training and validation data from DataFrames of image paths and labels.

    Unreadable files are skipped with a warning, as in `images_from_folder`. With several
    label columns the column names become the class names (0/1 columns).

    Args:
        train_df: the training DataFrame (pandas is never imported by ktlite).
        path_column: the column of image paths. Defaults to `"path"`.
        label_columns: the label column, or a list of 0/1 or numeric columns. Defaults to
            `"label"`.
        directory: folder that relative paths are relative to; `None` (default) keeps them
            relative to the working directory.
        val_df: a validation DataFrame with the same columns, or `None` to hold out
            `val_pct` of the training rows.
        val_pct: the share held out when `val_df` is `None`. Defaults to 0.1;
            0 holds out nothing (``val`` is None).
        image_size: model input `(height, width)`; defaults to the most common size.
        channels: 1 or 3; defaults to 1 when every training image is grayscale, else 3.
        label_mode: `"multiclass"`, `"multilabel"`, `"regression"` or `None` (detect).
        class_names: class names in output order; inferred when `None`; for several
            label columns see `ktlite.columns.label_columns_and_classes`.
        augment: as in `images_from_array` (default `True`, training batches only).
        random_state: seed of the validation split. Defaults to 42.
        verbose: 1 reports sizes and classes; 0 is silent.

    Returns:
        `(trn, val, preproc)` as in `images_from_folder`.

    Raises:
        TypeError: if a frame is not DataFrame-like, `path_column` is not a str,
            `label_columns` not a name or a list of them, `directory` not a path (str or
            `os.PathLike`), a path not a str (the row is named), `augment` neither a bool
            nor an `Augmentation`, or `random_state` or `verbose` not an int.
        ValueError: for missing columns, empty paths (the row is named), no readable
            image, a `verbose` other than 0 or 1, or any label error of `ktlite.labels`.

    Example:
        >>> df = pd.DataFrame({"path": ["a.png", "b.png"], "label": ["cat", "dog"]})
        >>> trn, val, preproc = images_from_df(df, directory="photos", val_pct=0.5)
    """
    columns, class_names = label_columns_and_classes(label_columns, class_names, label_mode)
    check_column_name(path_column, "path_column")
    directory = None if directory is None else os.fspath(as_path(directory, "directory"))
    paths, labels = examples_from_frame(train_df, path_column, columns, "train_df", _COLUMNS_HINT)
    val_paths = val_labels = None
    if val_df is not None:
        val_paths, val_labels = examples_from_frame(
            val_df, path_column, columns, "val_df", _COLUMNS_HINT)
        val_paths = _resolve(val_paths, directory, "val_df")
    options = dict(
        class_names=class_names, label_mode=label_mode, val_pct=val_pct,
        image_size=image_size, channels=channels, augment=augment, random_state=random_state,
        verbose=verbose,
    )
    return _images_from_paths(
        _resolve(paths, directory, "train_df"), labels, val_paths, val_labels, options
    )


def _read_csv(path: str, path_column: str, columns: list[str], arg: str, sep: str,
              encoding: str) -> tuple[list, Any]:
    _, rows, lines = read_csv_rows(path, [path_column, *columns], sep, encoding, arg,
                                   hint=_COLUMNS_HINT)
    paths = [row[0] for row in rows]
    if len(columns) > 1:
        return paths, labels_from_strings([row[1:] for row in rows], columns, path, lines)
    for line, row in zip(lines, rows):
        if not row[1].strip():
            raise ValueError(
                f"Label column {columns[0]!r} of {path!r} is empty on line {line}. Drop or "
                "fill rows with missing labels first."
            )
    return paths, [row[1] for row in rows]


def images_from_csv(
    train_filepath: str | os.PathLike,
    path_column: str = "path",
    label_columns: str | Sequence[str] = "label",
    directory: str | os.PathLike | None = None,
    val_filepath: str | os.PathLike | None = None,
    val_pct: float = 0.1,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    augment: bool | Augmentation = True,
    random_state: int | None = 42,
    sep: str = ",",
    encoding: str = "utf-8",
    verbose: int = 1,
) -> tuple[Any, Any, ImagePreprocessor]:
    """Builds training and validation data from CSV files of image paths and labels.

    A single label column is read as text (class names; use `label_mode="regression"` for
    numbers); several label columns as a numeric matrix whose column names are the classes.

    Args:
        train_filepath: the training CSV (``.csv`` or gzipped ``.csv.gz``, with a header
            row).
        path_column: the column of image paths. Defaults to `"path"`.
        label_columns: the label column or columns. Defaults to `"label"`.
        directory: folder that relative paths are relative to; defaults to the folder of
            each CSV file.
        val_filepath: a validation CSV with the same columns, or `None` to hold out
            `val_pct` of the training rows.
        val_pct: the share held out when `val_filepath` is `None`. Defaults to 0.1;
            0 holds out nothing (``val`` is None).
        image_size: model input `(height, width)`; defaults to the most common size.
        channels: 1 or 3; defaults to 1 when every training image is grayscale, else 3.
        label_mode: `"multiclass"`, `"multilabel"`, `"regression"` or `None` (detect).
        class_names: class names in output order; inferred when `None`; for several
            label columns see `ktlite.columns.label_columns_and_classes`.
        augment: as in `images_from_array` (default `True`, training batches only).
        random_state: seed of the validation split. Defaults to 42.
        sep: the field delimiter (default ``","``).
        encoding: the files' encoding (default ``"utf-8"``).
        verbose: 1 reports sizes and classes; 0 is silent.

    Returns:
        `(trn, val, preproc)` as in `images_from_folder`.

    Raises:
        TypeError: if `path_column` is not a str, `label_columns` not a name or a list of
            them, a file or `directory` not a path (str or `os.PathLike`), `augment`
            neither a bool nor an `Augmentation`, or `random_state` or `verbose` not an
            int.
        ValueError: for a missing file or column, an empty path, non-numeric label matrix,
            no readable image, a `verbose` other than 0 or 1, or any label error of
            `ktlite.labels`.

    Example:
        >>> trn, val, preproc = images_from_csv("labels.csv", "file", "label")
    """
    columns, class_names = label_columns_and_classes(label_columns, class_names, label_mode)
    check_column_name(path_column, "path_column")
    train_filepath = os.fspath(as_path(train_filepath, "train_filepath"))
    directory = None if directory is None else os.fspath(as_path(directory, "directory"))
    paths, labels = _read_csv(train_filepath, path_column, columns, "train_filepath", sep,
                              encoding)
    if label_mode == "regression" and len(columns) == 1:
        labels = _floats(labels, columns[0], train_filepath)
    base = os.path.dirname(os.path.abspath(train_filepath))
    paths = _resolve(paths, base if directory is None else directory, "train_filepath")
    val_paths = val_labels = None
    if val_filepath is not None:
        val_filepath = os.fspath(as_path(val_filepath, "val_filepath"))
        val_paths, val_labels = _read_csv(val_filepath, path_column, columns, "val_filepath",
                                          sep, encoding)
        if label_mode == "regression" and len(columns) == 1:
            val_labels = _floats(val_labels, columns[0], val_filepath)
        val_base = os.path.dirname(os.path.abspath(val_filepath))
        val_paths = _resolve(val_paths, val_base if directory is None else directory,
                             "val_filepath")
    options = dict(
        class_names=class_names, label_mode=label_mode, val_pct=val_pct,
        image_size=image_size, channels=channels, augment=augment, random_state=random_state,
        verbose=verbose,
    )
    return _images_from_paths(paths, labels, val_paths, val_labels, options)


def _floats(values: list[str], column: str, path: str) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(
            f"Column {column!r} of {path!r} must be numeric with label_mode='regression'."
        ) from None
