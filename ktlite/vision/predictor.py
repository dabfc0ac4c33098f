"""ImagePredictor: image files, encoded bytes or pixel arrays in, labels out.

Every input becomes encoded image bytes on the Python side (files are read, arrays are
encoded as lossless PNG, 16-bit for floats), so one fused `tf.function` with a `(None,)`
string signature decodes, resizes, scales and runs the model, exactly as the exported
SavedModel does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

# Registers the custom layers that saved image models refer to, before any load_model.
import ktlite.layers  # noqa: F401
from ktlite.arguments import check_instance
from ktlite.columns import is_series
from ktlite.classifier import ClassifierPredictor
from ktlite.labels import class_position
from ktlite.vision import files
from ktlite.vision.formats import (
    MAX_PASS_PIXELS,
    MAX_PIXELS,
    decoded_pixels,
    format_problem,
    image_dimensions,
)
from ktlite.vision.preprocessor import (
    CONFIG_FILE,
    ImagePreprocessor,
    as_pixel_batch,
    warn_if_8_bit_in_uint16,
)

PIXELS_SIGNATURE = "serving_pixels"
# A 1x1 black PNG, base64-encoded: the JSON schema's example.
_TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVQImWNgAAAAAgAB9HFkpgAAAABJRU5ErkJggg=="
)


# How many checked uploads `ImagePredictor` remembers (by digest) so as not to decode twice.
_VERIFIED_KEPT = 1024


class ImagePredictor(ClassifierPredictor):
    """Predicts labels for images with a trained image model and its preprocessor.

    `predict` takes one image or a list: a file path (`str` or `os.PathLike`), encoded
    bytes (PNG, JPEG, GIF, BMP, WebP), or a pixel array (`(height, width)` or
    `(height, width, channels)` with 1, 3 or 4 channels, read as `images_from_array` reads
    them: uint8 with white 255, uint16 with white 65535, floats with white
    `preproc.float_scale`, where overshoot up to twice white clips to white and brighter
    floats are refused); a 4-D array, or a 3-D one whose last axis is not 1, 2, 3 or 4, is a
    batch (a last axis of 2, gray + alpha, is refused), and so is an array or Series of
    paths. Images of any size are resized to the model's: up to 50 megapixels each (an
    animated GIF's frames together, as its decoder reads them all), decoded `batch_size` at
    a time, or fewer where they hold over 100 megapixels together, so a batch of large
    images never decodes at once. An unreadable, empty, truncated or damaged image, one
    whose header gives no size, or a BMP that TensorFlow cannot decode right (1-, 4- or
    16-bit, with a colour palette, compressed), is refused with its file name or position
    (files and HTTP uploads are decoded once on the way in; bytes passed in Python are
    checked one by one only when their batch fails to decode).

    `export(path)` writes a SavedModel that loads with TensorFlow alone, with two
    signatures: `serving_default` takes `images`, a `tf.string` tensor `(n,)` of encoded
    image files; `serving_pixels` takes `pixels`, float32 `(n, height, width, channels)`
    of any size, gray, RGB or RGBA (converted to the model's channels as `predict` does;
    other channel counts fail with TensorFlow's `InvalidArgumentError`), where white is
    `preproc.float_scale`: 1.0 for a model trained on uint8 arrays, on image files or on
    0-1 float arrays (so send uint8 pixels divided by 255), 255.0 only for one trained on
    0-255 float arrays. That signature neither checks nor
    rescales the range: pixels are divided by white and clipped to [0, 1], so 0-255
    values sent to a model whose white is 1.0 read as a white image, without an error.
    Both return `probabilities` and `labels` (or `predictions` for regression).

    Args:
        model: a `keras.Model` taking float32 images
            `(batch, *preproc.image_size, preproc.channels)` with one `(batch, k)` output.
        preproc: the `ktlite.vision.ImagePreprocessor` the model was trained with.
        batch_size: images per forward pass. Defaults to 32.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model does not fit the preprocessor or `batch_size` is invalid.

    Example:
        >>> predictor = ktlite.get_predictor(learner.model, preproc)
        >>> predictor.predict("boot.png")
        'Ankle boot'
        >>> predictor.predict(x_test[:2])
        ['Ankle boot', 'Pullover']
    """

    preprocessor_files: ClassVar[tuple[str, ...]] = (CONFIG_FILE,)

    def __init__(self, model: keras.Model, preproc: Any, batch_size: int = 32) -> None:
        super().__init__(model, preproc, batch_size)
        self._verified: OrderedDict[bytes, None] = OrderedDict()  # see `_check_decodes`
        self._verified_lock = threading.Lock()

    # ------------------------------------------------------------------ input hooks
    def _input_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec(shape=(None,), dtype=tf.string, name="images")

    def _transform(self, raw: tf.Tensor) -> tf.Tensor:
        return self.preproc.from_bytes(raw)

    def _passes(self, items: Any) -> list[tuple[int, int]]:
        """`batch_size` images a pass, fewer where their pixels would pass `MAX_PASS_PIXELS`.

        The pixels are read from each file's header (`_check_encoded` refused the files
        without a size), so large uploads are decoded a few at a time.
        """
        passes, start, pixels = [], 0, 0
        for i, data in enumerate(items):
            width, height = image_dimensions(data)
            count = width * height
            if i > start and (i - start == self.batch_size
                              or pixels + count > MAX_PASS_PIXELS):
                passes.append((start, i))
                start, pixels = i, 0
            pixels += count
        return [*passes, (start, len(items))] if len(items) else passes

    def _run(self, items: Any) -> Any:
        try:
            return super()._run(items)
        except tf.errors.InvalidArgumentError:
            # A whole-looking file whose data is damaged inside fails the batch's decoding;
            # find it and name it rather than surface TensorFlow's error.
            for i, data in enumerate(items):
                self._check_decodes(data, f"inputs[{i}]")
            raise

    def _as_batch(self, inputs: Any, name: str = "inputs") -> tuple[np.ndarray, bool]:
        items, single = self._encoded(inputs, name)
        batch = np.empty(len(items), dtype=object)  # a leaf for tf.nest, sliced per batch
        batch[:] = items
        return batch, single

    def _encoded(self, inputs: Any, name: str) -> tuple[list[bytes], bool]:
        paths = files.path_list(inputs)  # also an array or Series of paths
        if paths is not None:
            inputs = paths
        elif is_series(inputs) or (isinstance(inputs, np.ndarray) and inputs.dtype == object
                                   and inputs.ndim == 1):
            inputs = list(inputs)  # e.g. a DataFrame column of encoded images
        if isinstance(inputs, np.ndarray) and inputs.ndim == 3 and inputs.shape[-1] == 2:
            raise ValueError(
                f"`{name}` of shape (height, width, 2) reads as gray + alpha, which ktlite "
                f"does not take: pass `{name}[..., :1]` (gray), or add a channel axis for a "
                f"batch of gray images 2 pixels wide. Received: {name} with shape "
                f"{inputs.shape}"
            )
        if isinstance(inputs, np.ndarray) and not _is_single(inputs):
            if inputs.ndim not in (3, 4):
                raise ValueError(
                    f"`{name}` must be one image (height, width[, channels]) or a batch "
                    f"(n, height, width[, channels]). Received: {name} with shape {inputs.shape}"
                )
            return self._encode_pixels(inputs, name), False
        if _is_single(inputs):
            return [self._one(inputs, name)], True
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(
                f"`{name}` must be a path, bytes, an array, or a list of them. "
                f"Received: {name} of type {type(inputs).__name__}"
            )
        if not inputs:
            raise ValueError(f"`{name}` must hold at least one image. Received: {name}=[]")
        return [self._one(item, f"{name}[{i}]") for i, item in enumerate(inputs)], False

    def _one(self, item: Any, name: str) -> bytes:
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            return self._check_decodes(_read_image_file(path, name), f"{name} ({path!r})")
        if isinstance(item, (bytes, bytearray, memoryview)):
            return _check_encoded(bytes(item), name)
        if isinstance(item, np.ndarray):
            if item.ndim not in (2, 3):
                raise ValueError(
                    f"`{name}` must be one image (height, width[, channels]). "
                    f"Received: {name} with shape {item.shape}"
                )
            return self._encode_pixels(item[None], name)[0]
        raise TypeError(
            f"`{name}` must be a file path, encoded image bytes or a pixel array. "
            f"Received: {name} of type {type(item).__name__}"
        )

    def _check_decodes(self, data: bytes, name: str) -> bytes:
        """Decodes `data` as the model's pipeline does; refuses damaged data, naming `name`.

        Images that passed recently are remembered by their SHA-256: the HTTP app checks a
        request's uploads before queueing it and converts them again in the model thread,
        which then need not decode them a second time.
        """
        digest = hashlib.sha256(data).digest()
        with self._verified_lock:
            if digest in self._verified:
                self._verified.move_to_end(digest)
                return data
        try:
            self.preproc._decode_one(tf.constant(data))
        except tf.errors.InvalidArgumentError:
            raise ValueError(
                f"`{name}` is not a readable image: its data is corrupt, or in a variant "
                "TensorFlow cannot decode: convert it to PNG."
            ) from None
        with self._verified_lock:
            self._verified[digest] = None
            while len(self._verified) > _VERIFIED_KEPT:
                self._verified.popitem(last=False)
        return data

    def _encode_pixels(self, images: np.ndarray, name: str) -> list[bytes]:
        """Lossless PNGs: uint8 as 8-bit, floats (scaled by `float_scale`) as 16-bit."""
        pixels = as_pixel_batch(images, name)
        warn_if_8_bit_in_uint16(pixels, name)
        self.preproc.check_float_range(pixels, name)
        if pixels.shape[-1] == 4:
            pixels = pixels[..., :3]
        if np.issubdtype(pixels.dtype, np.floating):
            unit = np.clip(pixels / self.preproc.float_scale, 0.0, 1.0)
            pixels = np.round(unit * 65535.0).astype(np.uint16)
        return [tf.io.encode_png(image).numpy() for image in pixels]

    def _check_model_inputs(self, model: keras.Model, preproc: Any) -> None:
        check_instance(preproc, ImagePreprocessor, "preproc")
        if len(model.inputs) != 1:
            raise ValueError(
                f"An image model must take one input. Received a model with "
                f"{len(model.inputs)} inputs."
            )
        shape = tuple(model.inputs[0].shape)
        if shape[1:] != preproc.input_shape:
            raise ValueError(
                f"The model takes inputs of shape {shape} but the preprocessor produces "
                f"(batch, {', '.join(map(str, preproc.input_shape))}) images."
            )

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> ImagePreprocessor:
        return ImagePreprocessor.load(folder)

    def describe(self) -> dict[str, Any]:
        """The label mode, classes, image size and channels."""
        return {
            **super().describe(),
            "image_size": list(self.preproc.image_size),
            "channels": self.preproc.channels,
        }

    # ------------------------------------------------------------------ JSON hooks
    def json_input_schema(self) -> dict[str, Any]:
        """One image: a base64 string, or `{"b64": "..."}` (TensorFlow Serving's form).

        The example (a 1x1 black PNG) is what the HTTP app warms the model up with.
        """
        text = {"type": "string", "contentEncoding": "base64",
                "description": "an encoded image file (PNG, JPEG, GIF, BMP, WebP)"}
        return {
            "oneOf": [text, {"type": "object", "properties": {"b64": text},
                             "required": ["b64"], "additionalProperties": False}],
            "examples": [_TINY_PNG],
        }

    def inputs_from_json(self, items: list[Any]) -> list[bytes]:
        """Decodes base64 images from a request's `inputs`.

        Base64 may be wrapped over lines (as `base64` tools write it), URL-safe (`-_`),
        or a `data:` URI (`data:image/png;base64,...`).

        Args:
            items: base64 strings or `{"b64": "..."}` objects.

        Returns:
            The encoded images, checked.

        Raises:
            ValueError: naming the first item that is not base64 (or an object with keys
                other than `"b64"`) or not a whole, decodable image.

        Example:
            >>> predictor.inputs_from_json([base64.b64encode(png).decode()])
        """
        if not isinstance(items, list) or not items:
            raise ValueError("`inputs` must be a non-empty list of base64-encoded images.")
        decoded = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and set(item) != {"b64"}:
                raise ValueError(
                    f"inputs[{i}] must be a base64 string or {{\"b64\": ...}} with no other "
                    f"key. Received: an object with keys {sorted(map(str, item))}"
                )
            text = item["b64"] if isinstance(item, dict) else item
            if not isinstance(text, str):
                where = f'inputs[{i}]["b64"]' if isinstance(item, dict) else f"inputs[{i}]"
                raise ValueError(
                    f"inputs[{i}] must be a base64 string or {{\"b64\": ...}}. "
                    f"Received: {where} of type {type(text).__name__}"
                )
            if text.startswith("data:") and "," in text:
                text = text.partition(",")[2]
            text = "".join(text.split()).replace("-", "+").replace("_", "/")
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(
                    f"inputs[{i}] is not valid base64 (standard or URL-safe alphabet, "
                    "with its '=' padding)."
                ) from None
            decoded.append(self._check_decodes(_check_encoded(data, f"inputs[{i}]"),
                                               f"inputs[{i}]"))
        return decoded

    # ------------------------------------------------------------------ explain
    def explain(
        self, image: Any, target: int | str | None = None, patch: int | None = None,
        stride: int | None = None,
    ) -> np.ndarray:
        """Occlusion map of one image for its predicted class (or `target`).

        See `ktlite.vision.explain.occlusion_map`; draw it with
        `ktlite.vision.plot_occlusion(image, heatmap)`.

        Args:
            image: one image, as `predict` takes it.
            target: the class to explain, by name or index; `None` (default) is the
                predicted class.
            patch: side of the grey square; `None` is a seventh of the image side.
            stride: step between squares; `None` is half the patch.

        Returns:
            A float32 `(height, width)` array at the model's input size: positive where
            hiding the pixels lowers the class's probability.

        Raises:
            TypeError: if `target` is neither None, an int nor a str, or `patch` or
                `stride` is not an int.
            ValueError: for a regression model, an unknown class name or an index out of
                range as `target`, an unreadable image, or a `patch` or `stride` out of
                range.

        Example:
            >>> heat = predictor.explain("boot.png")
            >>> vision.plot_occlusion(predictor.preprocess("boot.png")[0], heat)
        """
        from ktlite.vision.explain import occlusion_map

        self._require_classifier("`explain`")
        index = None if target is None else class_position(self.get_classes(), target)
        items, single = self._as_batch(image, "image")
        if not single:
            raise ValueError("`explain` takes one image. Received: a batch of images.")
        pixels = self.preproc.from_bytes(tf.constant(items)).numpy()[0]

        def probabilities(batch: Any, training: bool = False) -> tf.Tensor:
            # As `predict_proba` reads the model: a logits model's softmax, one sigmoid
            # output's [1 - p, p], so the map is in probabilities of the named class.
            outputs = tf.cast(self.model(batch, training=training), tf.float32)
            return self._probabilities(outputs)

        if index is None:
            index = int(np.argmax(probabilities(pixels[None])[0]))
        return occlusion_map(probabilities, pixels, index, patch=patch, stride=stride)

    def preprocess(self, images: Any) -> np.ndarray:
        """Returns images as the model sees them: float32 `(n, height, width, channels)`.

        Args:
            images: one image or a list, as `predict` takes them.

        Returns:
            The decoded, resized and scaled images.

        Raises:
            TypeError, ValueError: as `predict`.

        Example:
            >>> predictor.preprocess("boot.png").shape
            (1, 28, 28, 1)
        """
        items, _ = self._as_batch(images, "images")
        return self.preproc.from_bytes(tf.constant(items)).numpy()

    # ------------------------------------------------------------------ export
    def _extra_endpoints(self) -> dict[str, tuple[Any, list[Any]]]:
        # A second signature that takes float pixel arrays instead of encoded images, white
        # at `preproc.float_scale` (1.0 unless trained on 0-255 floats), clipped, unchecked.
        def serve_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
            outputs = self.model(self.preproc.from_pixels(pixels), training=False)
            return self._serving_outputs(tf.cast(outputs, tf.float32))

        spec = tf.TensorSpec((None, None, None, None), tf.float32, "pixels")
        return {PIXELS_SIGNATURE: (serve_pixels, [spec])}


# ---------------------------------------------------------------------- raw inputs
def _is_single(inputs: Any) -> bool:
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview)):
        return True
    return isinstance(inputs, np.ndarray) and inputs.ndim in (2, 3) and not (
        inputs.ndim == 3 and inputs.shape[-1] not in (1, 3, 4)
    )


def _read_image_file(path: str, name: str) -> bytes:
    if os.path.isdir(path):
        raise ValueError(f"`{name}` is not an image file: {path!r} is a folder.")
    if not os.path.isfile(path):
        raise ValueError(f"`{name}` is not an image file: {path!r} does not exist.")
    with open(path, "rb") as handle:
        data = handle.read()
    return _check_encoded(data, f"{name} ({path!r})")


def _check_encoded(data: bytes, name: str) -> bytes:
    """Refuses empty, unknown, visibly truncated or oversized encoded images, naming `name`."""
    if not data:
        raise ValueError(f"`{name}` is empty (0 bytes); send the whole image file.")
    problem = format_problem(data)
    if problem:
        raise ValueError(f"`{name}` is not a readable image: {problem}.")
    pixels = decoded_pixels(data)
    if pixels is None:  # no decodable file lacks a size, which the limit needs
        raise ValueError(f"`{name}` is not a readable image: its header gives no image size.")
    if pixels > MAX_PIXELS:
        width, height = image_dimensions(data)
        size, advice = (f"{width} x {height} pixels", "a smaller image")
        if pixels > width * height:  # an animated GIF
            size, advice = (f"{pixels:,} pixels in all its frames", "one frame of it as a PNG")
        raise ValueError(
            f"`{name}` is too large to decode: {size}, more than {MAX_PIXELS:,}. Send {advice}."
        )
    return data
