"""`ImagePreprocessor`: image size, channels, pixel scaling and labels, applied in the graph.

Every image reaches a model the same way, in TensorFlow: encoded bytes (PNG, JPEG, GIF,
BMP, WebP) are decoded by `decode_image`, pixel arrays are cast, then both are converted to
the preprocessor's channel count, resized to its `image_size` (bilinear, antialiased) and
scaled to float32 in `[0, 1]`. Training batches in `tf.data`, `predict` and the exported
SavedModel share these functions, so they cannot disagree.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from ktlite import saving
from ktlite._console import warn
from ktlite.arguments import check_choice
from ktlite.labels import LabeledPreprocessor, LabelEncoder

FORMAT_VERSION = 1
CONFIG_FILE = "preprocessor.json"
SOURCES = ("files", "bytes", "pixels")
_CONFIG_KEYS = frozenset(
    {"format_version", "task", "image_size", "channels", "float_scale", "labels"}
)
_INTEGER_WHITE = {tf.uint8: 255.0, tf.uint16: 65535.0}
# Float pixels up to this many times white are white plus overshoot (bicubic or Lanczos
# resizing and sharpening ring a little past white) and clip to white. It also tells 0-1
# floats from 0-255 ones: a 0-255 image no brighter than 2 is black to the eye (under 1% of
# white), so reading such arrays as 0-255 would only ever take overshoot for darkness.
FLOAT_OVERSHOOT = 2.0


def check_image_size(value: Any, name: str = "image_size") -> tuple[int, int]:
    """Returns `(height, width)` from an int or a pair of positive ints.

    Args:
        value: a side length, or `(height, width)`.
        name: the argument name used in error messages.

    Returns:
        `(height, width)` as ints.

    Raises:
        TypeError: if `value` is neither an int nor a list or tuple of ints (a bool is not
            an int here).
        ValueError: if a side is < 1 or a list or tuple does not hold exactly two sides.

    Example:
        >>> check_image_size(28)
        (28, 28)
    """
    expected = f"`{name}` must be a positive int or a (height, width) pair."
    sides = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if not all(_is_int(side) for side in sides):
        raise TypeError(f"{expected} Received: {name}={value!r:.80}")
    if len(sides) != 2 or min(sides) < 1:
        raise ValueError(f"{expected} Received: {name}={value!r}")
    return int(sides[0]), int(sides[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class ImagePreprocessor(LabeledPreprocessor):
    """Turns images into the float32 tensors a vision model takes, and holds its labels.

    Args:
        image_size: `(height, width)` of the model's inputs (or one int for squares).
            Larger and smaller images are resized to it.
        channels: `1` (grayscale) or `3` (RGB, default). Images with another channel count
            are converted: RGB to gray by luminance, gray to RGB by copying, RGBA by
            dropping alpha.
        labels: the fitted `ktlite.labels.LabelEncoder`; a new, unfitted one when `None`.
        float_scale: the value of white in float pixel arrays: `1.0` (default) for
            arrays in `[0, 1]`, `255.0` for float arrays in `[0, 255]`; brighter float
            pixels clip to white. uint8 and uint16 arrays and encoded images always scale
            by their type's maximum (255, 65535).

    Raises:
        TypeError: if `image_size` or `channels` is not an int (or `image_size` a pair of
            ints), `float_scale` is not a number or `labels` is not a `LabelEncoder`.
        ValueError: if an argument is out of range.

    Example:
        >>> preproc = ImagePreprocessor((28, 28), channels=1)
        >>> preproc.from_pixels(tf.zeros((2, 32, 32, 3), tf.uint8)).shape
        TensorShape([2, 28, 28, 1])
    """

    task: ClassVar[str] = "vision"
    predictor_class: ClassVar[str] = "ktlite.vision.predictor.ImagePredictor"

    def __init__(
        self,
        image_size: int | tuple[int, int],
        channels: int = 3,
        labels: LabelEncoder | None = None,
        float_scale: float = 1.0,
    ) -> None:
        self.image_size = check_image_size(image_size)
        if not _is_int(channels):
            raise TypeError(f"`channels` must be 1 or 3. Received: channels={channels!r:.80}")
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
        self.channels = int(channels)
        if labels is None:
            labels = LabelEncoder()
        if not isinstance(labels, LabelEncoder):
            raise TypeError(
                f"`labels` must be a ktlite.labels.LabelEncoder. Received: labels={labels!r}"
            )
        self.labels = labels
        expected = "`float_scale` must be 1.0 or 255.0."
        if isinstance(float_scale, bool) or not isinstance(float_scale, numbers.Real):
            raise TypeError(f"{expected} Received: float_scale={float_scale!r:.80}")
        if float_scale not in (1.0, 255.0):
            raise ValueError(f"{expected} Received: float_scale={float_scale!r}")
        self.float_scale = float(float_scale)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """`(height, width, channels)` of one model input."""
        return (*self.image_size, self.channels)

    # --------------------------------------------------------------- in the graph
    def from_pixels(self, pixels: tf.Tensor) -> tf.Tensor:
        """Converts a batch of pixel arrays `(batch, height, width, channels)` to model inputs.

        uint8 pixels are divided by 255, uint16 by 65535, floats by `float_scale` and then
        clipped to `[0, 1]` (so overshoot past white is white). Nothing is checked or
        refused here: `check_float_range` does that on the Python side.

        Args:
            pixels: uint8, uint16 or float pixels of any size; 1, 3 or 4 channels.

        Returns:
            float32 `(batch, *image_size, channels)` in `[0, 1]`.

        Raises:
            ValueError: if the batch is not of rank 4 or has 2 or more than 4 channels.

        Example:
            >>> preproc.from_pixels(np.zeros((4, 28, 28, 1), "uint8")).shape
            TensorShape([4, 28, 28, 1])
        """
        pixels = tf.convert_to_tensor(pixels)
        if pixels.shape.rank != 4:
            raise ValueError(
                "`pixels` must be a batch (batch, height, width, channels). "
                f"Received: pixels with shape {pixels.shape}"
            )
        white = _INTEGER_WHITE.get(pixels.dtype, self.float_scale)
        images = tf.cast(pixels, tf.float32) * (1.0 / white)
        if pixels.dtype.is_floating:
            images = tf.clip_by_value(images, 0.0, 1.0)
        return self._resize(self._convert_channels(images))

    def check_float_range(self, pixels: np.ndarray, name: str) -> None:
        """Refuses float pixels too bright for `float_scale`; overshoot up to twice it clips.

        Float pixels up to `FLOAT_OVERSHOOT` (2) times `float_scale` are read, the part past
        white clipped to white: the rule `images_from_array` chose `float_scale` by. Brighter
        ones are refused, e.g. floats in 0-255 for a model whose training pixels were uint8
        or floats in 0-1 (``float_scale`` 1): read as 0-1 they would be wrong without any
        error. The other way round, floats no brighter than 2 for a model trained on 0-255
        floats read as near black; they may be dark images, so that gets a warning.

        Args:
            pixels: a pixel array (integer arrays always pass).
            name: the argument name used in the message.

        Raises:
            ValueError: if a float pixel is above `FLOAT_OVERSHOOT * float_scale`.

        Example:
            >>> ImagePreprocessor(28, 1).check_float_range(np.full((1, 28, 28, 1), 200.0), "x")
            Traceback (most recent call last):
            ValueError: `x` holds float pixels up to 200, ...
        """
        if not np.issubdtype(pixels.dtype, np.floating) or pixels.size == 0:
            return
        top = float(pixels.max())
        white = self.float_scale
        if top > FLOAT_OVERSHOOT * white:
            raise ValueError(
                f"`{name}` holds float pixels up to {top:.4g}, but this preprocessor reads "
                f"float pixels in [0, {white:g}] (as its training images were read; up to "
                f"{FLOAT_OVERSHOOT * white:g} is taken as overshoot and clipped to {white:g}): "
                f"pass uint8 pixels, or scale the floats to [0, {white:g}]."
            )
        if white > 1.0 and 0.0 < top <= FLOAT_OVERSHOOT:
            warn(
                f"`{name}` holds float pixels no brighter than {top:.4g}, but this "
                f"preprocessor reads float pixels in [0, {white:g}] (as its training "
                "images were read), so they read as near black: if they are 0-1 floats, "
                f"multiply them by {white:g} or pass uint8 pixels.",
            )

    def from_bytes(self, data: tf.Tensor) -> tf.Tensor:
        """Decodes a batch of encoded images (PNG, JPEG, GIF, BMP, WebP) to inputs.

        Args:
            data: a string tensor `(batch,)` of encoded image files.

        Returns:
            float32 `(batch, *image_size, channels)` in `[0, 1]`.

        Raises:
            tf.errors.InvalidArgumentError: when running it on bytes that are not a
                complete image.

        Example:
            >>> preproc.from_bytes(tf.constant([png_bytes])).shape
            TensorShape([1, 28, 28, 1])
        """
        spec = tf.TensorSpec((*self.image_size, self.channels), tf.float32)
        return tf.map_fn(self._decode_one, data, fn_output_signature=spec)

    def from_files(self, paths: tf.Tensor) -> tf.Tensor:
        """Reads and decodes a batch of image files; see `from_bytes`.

        Args:
            paths: a string tensor `(batch,)` of file paths.

        Returns:
            float32 `(batch, *image_size, channels)` in `[0, 1]`.

        Example:
            >>> preproc.from_files(tf.constant(["cat.png"])).shape
            TensorShape([1, 28, 28, 1])
        """
        return self.from_bytes(tf.map_fn(tf.io.read_file, paths))

    def pipeline(self, source: str) -> ImagePipeline:
        """Returns the `TaskDataset` transform for raw `source` inputs.

        Args:
            source: `"files"` (paths), `"bytes"` (encoded images) or `"pixels"` (arrays).

        Returns:
            An `ImagePipeline`.

        Raises:
            TypeError: if `source` is not a str.
            ValueError: for an unknown `source`.

        Example:
            >>> TaskDataset(paths, y, transform=preproc.pipeline("files"), task="vision")
        """
        return ImagePipeline(self, source)

    def _decode_one(self, data: tf.Tensor) -> tf.Tensor:
        # Gray through colour, as `from_pixels` converts: GIF, BMP and WebP decode only to
        # colour, and CMYK JPEGs cannot decode straight to gray.
        image = decode_image(data, channels=3)
        if self.channels == 1:
            image = _luminance(image)
        return self._resize(image[None])[0]

    def _convert_channels(self, images: tf.Tensor) -> tf.Tensor:
        have = images.shape[-1]
        if have is None:
            return self._convert_traced_channels(images)
        if have == 4:
            images, have = images[..., :3], 3
        if have == self.channels:
            return images
        if have == 3:
            return _luminance(images)
        if have == 1:
            return tf.image.grayscale_to_rgb(images)
        raise ValueError(
            "Images must have 1, 3 or 4 channels (gray, RGB, RGBA). "
            f"Received: images with shape {images.shape}"
        )

    def _convert_traced_channels(self, images: tf.Tensor) -> tf.Tensor:
        """`_convert_channels` for a channel count known only when the graph runs (the
        pixel signature of an exported SavedModel): a branch for each count it reads."""
        counts = (1, 3, 4)
        matches = tf.equal(tf.shape(images)[-1], counts)
        check = tf.debugging.assert_equal(
            tf.reduce_any(matches), True,
            message="pixels must have 1, 3 or 4 channels (gray, RGB, RGBA)")
        with tf.control_dependencies([check]):
            index = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)

        def branch(count: int) -> Callable[[], tf.Tensor]:
            return lambda: self._convert_channels(
                tf.ensure_shape(images, (None, None, None, count)))

        return tf.switch_case(index, [branch(count) for count in counts])

    def _resize(self, images: tf.Tensor) -> tf.Tensor:
        if tuple(images.shape[1:3]) == self.image_size:
            return images
        resized = tf.image.resize(images, self.image_size, method="bilinear", antialias=True)
        return tf.ensure_shape(resized, (None, *self.image_size, self.channels))

    # --------------------------------------------------------------- persistence
    def get_config(self) -> dict[str, Any]:
        """Returns the JSON-safe settings that `from_config` reads back.

        Example:
            >>> ImagePreprocessor.from_config(preproc.get_config()).image_size
            (28, 28)
        """
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "image_size": list(self.image_size),
            "channels": self.channels,
            "float_scale": self.float_scale,
            "labels": self.labels.get_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImagePreprocessor:
        """Rebuilds a preprocessor from `get_config`'s dict.

        Args:
            config: the dict.

        Returns:
            The `ImagePreprocessor`.

        Raises:
            TypeError: for a value of the wrong type (as the constructor).
            ValueError: for missing or unknown keys, another task or format version, or
                values out of range.

        Example:
            >>> clone = ImagePreprocessor.from_config(preproc.get_config())
        """
        if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
            keys = sorted(config) if isinstance(config, dict) else type(config).__name__
            raise ValueError(
                f"An image preprocessor config needs exactly the keys {sorted(_CONFIG_KEYS)}. "
                f"Received: {keys}"
            )
        saving.check_config_header(config, cls.task, FORMAT_VERSION)
        return cls(
            image_size=config["image_size"],
            channels=config["channels"],
            labels=LabelEncoder.from_config(config["labels"]),
            float_scale=config["float_scale"],
        )

    def save(self, folder: str | os.PathLike) -> None:
        """Writes `preprocessor.json` into an existing `folder`.

        Args:
            folder: the destination folder.

        Raises:
            TypeError: if `folder` is not a str or `os.PathLike`.
            ValueError: if the labels are not fitted.
            FileExistsError: if `folder` is a file.

        Example:
            >>> preproc.save(folder)
        """
        from ktlite.saving import make_folder, write_json

        if not self.labels.is_fitted:
            raise ValueError("Fit the labels (`preproc.labels.fit(y)`) before saving.")
        write_json(make_folder(folder) / CONFIG_FILE, self.get_config())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ImagePreprocessor:
        """Reads a preprocessor written by `save`.

        Args:
            folder: a folder holding `preprocessor.json`.

        Returns:
            The `ImagePreprocessor`.

        Raises:
            FileNotFoundError: if the folder or the file is missing (named).
            ValueError: if the file is not a valid image preprocessor config (it is named).

        Example:
            >>> preproc = ImagePreprocessor.load("my_predictor")
        """
        from ktlite.saving import invalid_file, read_json, saved_files

        (path,) = saved_files(folder, (CONFIG_FILE,), cls.__name__)
        try:
            return cls.from_config(read_json(path))
        except (TypeError, ValueError) as err:
            raise invalid_file(path, cls.__name__, err) from None

    def __repr__(self) -> str:
        classes = None if self.class_names is None else len(self.class_names)
        return (
            f"ImagePreprocessor(image_size={self.image_size}, channels={self.channels}, "
            f"label_mode={self.label_mode!r}, classes={classes})"
        )


def decode_image(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Decodes one encoded image (PNG, JPEG, GIF, BMP, WebP) to float32 pixels in `[0, 1]`.

    Pixels are decoded as integers and scaled by the file's own depth: a 16-bit PNG at 16
    bits (it keeps its precision), everything else at 8 bits, so 8-bit pixels come out
    exactly as `from_pixels` scales uint8 arrays. TensorFlow's own float decoding is not
    used: in TensorFlow 2.21 it kills the process on a top-down BMP (one with a negative
    height, a valid file) and refuses WebP. The preprocessor, the predictor's upload check,
    the exported SavedModel and the folder scan all decode with this function.

    Args:
        data: a scalar string tensor holding the encoded file.
        channels: `3` (RGB; gray is copied, alpha dropped) or `0` (as the file stores them:
            1 to 4).

    Returns:
        float32 `(height, width, channels)`.

    Raises:
        ValueError: if `channels` is not 0 or 3.
        tf.errors.InvalidArgumentError: when running it on bytes that are not a complete
            image.

    Example:
        >>> decode_image(tf.constant(png_bytes)).shape
        TensorShape([28, 28, 3])
    """
    if channels not in (0, 3):
        raise ValueError(f"`channels` must be 0 or 3. Received: channels={channels!r}")
    head = tf.strings.join([tf.strings.substr(data, 0, 25), bytes(25)])  # short files pad
    # A PNG's bit depth is byte 24, in the IHDR chunk that must come first.
    is_png16 = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 8), b"\x89PNG\r\n\x1a\n"),
        tf.equal(tf.strings.substr(head, 24, 1), b"\x10"),
    )
    is_webp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
                             tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"))

    def scaled(image: tf.Tensor) -> tf.Tensor:
        return tf.cast(image, tf.float32) * (1.0 / image.dtype.max)

    def png16() -> tf.Tensor:
        return scaled(tf.io.decode_png(data, channels=channels, dtype=tf.uint16))

    def webp() -> tf.Tensor:
        # WebP decodes only to the file's own channels: a WebP with alpha refuses 3.
        image = tf.io.decode_image(data, expand_animations=False)
        return scaled(image[..., :channels] if channels else image)

    def other() -> tf.Tensor:
        return scaled(tf.io.decode_image(data, channels=channels, expand_animations=False))

    image = tf.case([(is_png16, png16), (is_webp, webp)], default=other)
    return tf.ensure_shape(image, (None, None, channels or None))


def _luminance(rgb: tf.Tensor) -> tf.Tensor:
    """Gray from RGB floats by the ITU-R 601 weights, scaled to sum to 1 so that a gray
    image stored as RGB comes back as it was (TensorFlow's own weights sum to 0.9999)."""
    weights = np.array([0.2989, 0.5870, 0.1140])
    return tf.reduce_sum(rgb * tf.constant(weights / weights.sum(), rgb.dtype), -1, keepdims=True)


class ImagePipeline:
    """The per-batch `TaskDataset` transform of one raw input kind.

    Augmentation is not part of it: the loaders give it to the training `TaskDataset` as
    its `augment`, which only training batches go through.

    Args:
        preproc: the `ImagePreprocessor`.
        source: `"files"`, `"bytes"` or `"pixels"`.

    Raises:
        TypeError: if `source` is not a str.
        ValueError: for an unknown `source`.

    Example:
        >>> transform = ImagePipeline(preproc, "pixels")
        >>> transform(np.zeros((8, 28, 28, 1), "uint8")).shape
        TensorShape([8, 28, 28, 1])
    """

    def __init__(self, preproc: ImagePreprocessor, source: str) -> None:
        check_choice(source, "source", SOURCES)
        self.preproc = preproc
        self.source = source

    def __call__(self, raw: tf.Tensor) -> tf.Tensor:
        convert = {
            "files": self.preproc.from_files,
            "bytes": self.preproc.from_bytes,
            "pixels": self.preproc.from_pixels,
        }[self.source]
        return convert(raw)

    def __repr__(self) -> str:
        return f"ImagePipeline(source={self.source!r})"


def pixel_white(pixels: np.ndarray) -> float:
    """The value of white in a pixel array, as `images_from_array` reads one.

    65535 for uint16, 255 for other integers (8-bit values); for floats 255 when a pixel is
    above `FLOAT_OVERSHOOT` (2: a 0-1 image plus overshoot is no brighter), else 1.

    Args:
        pixels: a numeric pixel array of any shape.

    Returns:
        255.0, 65535.0 or 1.0.

    Example:
        >>> pixel_white(np.full((4, 4), 200.0))
        255.0
    """
    if np.issubdtype(pixels.dtype, np.floating):
        return 255.0 if pixels.size and float(np.nanmax(pixels)) > FLOAT_OVERSHOOT else 1.0
    return 65535.0 if pixels.dtype == np.uint16 else 255.0


def warn_if_8_bit_in_uint16(pixels: np.ndarray | None, name: str) -> None:
    """Warns when uint16 pixels hold no value above 255: 8-bit values read as near black.

    Args:
        pixels: the images, or `None`.
        name: the argument they came in, for the message.

    Example:
        >>> warn_if_8_bit_in_uint16(np.zeros((1, 4, 4), np.uint16), "x_train")  # warns
    """
    if pixels is None or pixels.dtype != np.uint16:
        return
    top = int(pixels.max())
    if top <= 255:
        warn(
            f"`{name}` is uint16 with no value above {top}: ktlite reads uint16 as 16-bit "
            "pixels (white is 65535), so these images read as near black. If the values are "
            f"8-bit, pass `{name}.astype('uint8')`.",
        )


def as_pixel_batch(images: Any, name: str) -> np.ndarray:
    """Checks pixel arrays and returns them as one `(n, height, width, channels)` array.

    A 3-D array is a batch of grayscale images (a channel axis is added); a 4-D array must
    have 1, 3 or 4 channels. uint8 (white 255) and uint16 (white 65535: 16-bit images) are
    kept as they are; other integer types (int8 to int64, uint32, uint64) must hold 8-bit
    values, 0-255, and become uint8 (white 255). Float arrays must be finite and not
    negative: ktlite scales pixels itself, so images normalized around 0 (e.g. to [-1, 1])
    are refused, not clipped.

    Args:
        images: an array-like of images.
        name: the argument name used in error messages.

    Returns:
        A 4-D numpy array (the original dtype for integers, float32 for floats).

    Raises:
        TypeError: if `images` is not numeric, or one of a list is not an array.
        ValueError: for images of different sizes, another rank, a channel count outside
            1, 3, 4, no images, an empty height or width, NaN, infinite or negative
            pixels (the first bad image is named), or integers other than uint8 and uint16
            outside 0-255.

    Example:
        >>> as_pixel_batch(np.zeros((5, 28, 28), "uint8"), "x").shape
        (5, 28, 28, 1)
    """
    if isinstance(images, (list, tuple)):
        for i, item in enumerate(images):  # before numpy hides a None among images
            if not isinstance(item, (list, tuple)) and np.ndim(item) == 0:  # None, 3, "a"
                raise TypeError(f"`{name}[{i}]` must be a pixel array. Received: {name}[{i}] "
                                f"of type {type(item).__name__}")
    try:
        arr = np.asarray(images)
    except ValueError:  # a list of arrays of different shapes
        raise ValueError(
            f"`{name}` holds images of different sizes or channel counts: resize them to one "
            "size first, or pass them as image files (which are resized)."
        ) from None
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        received = (f"dtype {arr.dtype}" if isinstance(images, (np.ndarray, list, tuple))
                    else f"type {type(images).__name__}")
        raise TypeError(
            f"`{name}` must hold numeric pixels (uint8 or float). Received: {name} of "
            f"{received}"
        )
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"`{name}` must have shape (n, height, width) or (n, height, width, 1|3|4). "
            f"Received: {name} with shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one image. Received: 0 images")
    if 0 in arr.shape[1:3]:
        raise ValueError(
            f"`{name}` must hold images at least 1 pixel high and wide. Received: {name} with "
            f"shape {arr.shape}"
        )
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
        flat = arr.reshape(len(arr), -1)
        for bad_pixels, what, fix in (
            (~np.isfinite(flat), "NaN or infinite", "Fix or drop those images."),
            (flat < 0, "negative",
             "ktlite scales pixels itself: pass them in [0, 1] or [0, 255], not normalized."),
        ):
            bad_images = bad_pixels.any(axis=1)
            if bad_images.any():
                bad = int(np.flatnonzero(bad_images)[0])
                raise ValueError(
                    f"`{name}` holds {what} pixels in {int(bad_images.sum())} image(s); the "
                    f"first is {name}[{bad}]. {fix}"
                )
    elif arr.dtype not in (np.uint8, np.uint16):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(
                f"Integer `{name}` of dtype {arr.dtype} must hold 8-bit pixels in [0, 255] "
                "(for 16-bit pixels, white 65535, pass uint16). Received values from "
                f"{arr.min()} to {arr.max()}"
            )
        arr = arr.astype(np.uint8)
    return arr
