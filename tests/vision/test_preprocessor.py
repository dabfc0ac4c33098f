"""Tests for ktlite.vision.preprocessor: conversions in the graph and the JSON file."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from conftest import encode_bmp, encode_webp, write_png
from folders import assert_quotes_nothing_crafted
from ktlite.labels import LabelEncoder
from ktlite.vision import ImagePreprocessor
from ktlite.vision.preprocessor import as_pixel_batch, decode_image


def _preproc(size=(4, 4), channels=1):
    return ImagePreprocessor(size, channels, LabelEncoder().fit(["a", "b"]))


def test_pipeline_source_of_the_wrong_type_is_a_type_error():
    assert _preproc().pipeline("pixels").source == "pixels"
    with pytest.raises(ValueError, match="Received: source='array'"):
        _preproc().pipeline("array")
    for source in (None, 1, ["files"]):
        with pytest.raises(TypeError, match=r"`source` must be one of \['files', 'bytes', "
                                            r"'pixels'\]. Received: source="):
            _preproc().pipeline(source)


def test_uint8_pixels_scale_to_unit_range():
    out = np.asarray(_preproc().from_pixels(np.full((2, 4, 4, 1), 255, "uint8")))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)


def test_float_pixels_use_float_scale():
    preproc = ImagePreprocessor(4, 1, float_scale=255.0)
    out = np.asarray(preproc.from_pixels(np.full((1, 4, 4, 1), 51.0, "float32")))
    np.testing.assert_allclose(out, 0.2, atol=1e-6)


def test_float_pixels_past_white_clip_to_white_and_integers_scale_by_their_type():
    for scale in (1.0, 255.0):
        pixels = np.array([0.0, 0.5, 1.0, 1.3], "float32").reshape(1, 2, 2, 1) * scale
        out = ImagePreprocessor(2, 1, float_scale=scale).from_pixels(pixels).numpy()
        np.testing.assert_allclose(out.ravel(), [0.0, 0.5, 1.0, 1.0], atol=1e-6)
    out = ImagePreprocessor(2, 1).from_pixels(np.full((1, 2, 2, 1), 257, "uint16"))
    np.testing.assert_allclose(out.numpy(), 257 / 65535, atol=1e-7)


@pytest.mark.parametrize("scale, top", [(1.0, 1.02), (1.0, 2.0), (255.0, 300.0), (255.0, 510.0)])
def test_float_overshoot_up_to_twice_white_passes_the_range_check(scale, top):
    pixels = np.full((1, 2, 2, 1), top, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImagePreprocessor(2, 1, float_scale=scale).check_float_range(pixels, "x")


def test_float_pixels_above_twice_white_are_refused_and_0_1_floats_warn_on_0_255():
    with pytest.raises(ValueError, match=r"^`x` holds float pixels up to 2\.01, but this "
                                         r"preprocessor reads float pixels in \[0, 1\] \(as its "
                                         r"training images were read; up to 2 is taken as "
                                         r"overshoot and clipped to 1\)"):
        ImagePreprocessor(2, 1).check_float_range(np.full((1, 2, 2, 1), 2.01), "x")
    with pytest.raises(ValueError, match=r"up to 511, .*up to 510 is taken as overshoot"):
        ImagePreprocessor(2, 1, float_scale=255.0).check_float_range(
            np.full((1, 2, 2, 1), 511.0), "x")
    with pytest.warns(UserWarning, match=r"no brighter than 1\.8, .*read as near black"):
        ImagePreprocessor(2, 1, float_scale=255.0).check_float_range(
            np.full((1, 2, 2, 1), 1.8), "x")


def test_rgb_becomes_gray_by_luminance_and_gray_becomes_rgb():
    red = np.zeros((1, 4, 4, 3), "uint8")
    red[..., 0] = 255
    gray = np.asarray(_preproc(channels=1).from_pixels(red))
    np.testing.assert_allclose(gray, 0.2989, atol=1e-3)
    rgb = np.asarray(_preproc(channels=3).from_pixels(np.full((1, 4, 4, 1), 255, "uint8")))
    assert rgb.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(rgb, 1.0)


def test_rgba_drops_alpha():
    rgba = np.zeros((1, 4, 4, 4), "uint8")
    rgba[..., 3] = 255
    out = np.asarray(_preproc(channels=3).from_pixels(rgba))
    np.testing.assert_allclose(out, 0.0)


def test_two_channel_pixels_are_refused():
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4, 2\)"):
        _preproc().from_pixels(np.zeros((1, 4, 4, 2), "uint8"))


def test_larger_images_are_resized_and_keep_their_mean():
    images = np.random.default_rng(0).integers(0, 256, (2, 12, 8, 1)).astype("uint8")
    out = np.asarray(_preproc(size=(6, 4)).from_pixels(images))
    assert out.shape == (2, 6, 4, 1)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)) / 255,
                               atol=0.02)


def test_bytes_and_files_of_different_sizes_decode_to_one_shape(tmp_path):
    small = np.full((4, 4, 1), 255, "uint8")
    big = np.zeros((10, 6, 3), "uint8")
    write_png(tmp_path / "small.png", small)
    write_png(tmp_path / "big.png", big)
    preproc = _preproc(size=(5, 5))
    files = preproc.from_files(tf.constant([str(tmp_path / "small.png"),
                                            str(tmp_path / "big.png")]))
    data = [tf.io.read_file(str(tmp_path / n)) for n in ("small.png", "big.png")]
    from_bytes = preproc.from_bytes(tf.stack(data))
    np.testing.assert_allclose(np.asarray(files), np.asarray(from_bytes))
    assert files.shape == (2, 5, 5, 1)
    np.testing.assert_allclose(np.asarray(files[0]), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(files[1]), 0.0, atol=1e-6)


_RNG = np.random.default_rng(0)
_RGB = _RNG.integers(0, 256, (5, 7, 3)).astype("uint8")
_RGBA = _RNG.integers(0, 256, (5, 7, 4)).astype("uint8")
_DEEP = _RNG.integers(0, 65536, (5, 7, 3)).astype("uint16")


@pytest.mark.parametrize("pixels, encode", [
    (_RGB, lambda image: tf.io.encode_png(image).numpy()),
    (_DEEP, lambda image: tf.io.encode_png(image).numpy()),  # 16 bits kept
    (_RGB[..., 0], lambda image: tf.io.encode_png(image[..., None]).numpy()),
    (_RGB, encode_bmp),
    (_RGBA, encode_bmp),
    (_RGB[..., 0], encode_bmp),  # 8-bit, gray palette
    (_RGB, encode_webp),
    (_RGBA, encode_webp),
], ids=["png", "png16", "png-gray", "bmp24", "bmp32", "bmp8", "webp", "webp-alpha"])
@pytest.mark.parametrize("channels", [1, 3])
def test_lossless_files_decode_exactly_as_their_pixels_read(pixels, encode, channels):
    preproc = _preproc(size=pixels.shape[:2], channels=channels)
    # Files decode to RGB (gray copied), then convert as an RGB array converts.
    array = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels
    np.testing.assert_array_equal(np.asarray(preproc.from_bytes(tf.constant([encode(pixels)]))),
                                  np.asarray(preproc.from_pixels(array[None])))


def test_decode_image_keeps_the_stored_channels_or_gives_rgb():
    png = tf.constant(tf.io.encode_png(_RGBA).numpy())
    assert decode_image(png, channels=0).shape == (5, 7, 4)
    np.testing.assert_array_equal(np.asarray(decode_image(png)),
                                  _RGBA[..., :3].astype("float32") * np.float32(1 / 255))
    with pytest.raises(ValueError, match=r"`channels` must be 0 or 3. Received: channels=1"):
        decode_image(png, channels=1)


def test_truncated_bytes_fail_to_decode():
    png = tf.io.encode_png(np.zeros((4, 4, 1), "uint8")).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError):
        _preproc().from_bytes(tf.constant([png[: len(png) // 2]]))


def test_save_and_load_round_trip_through_json(tmp_path):
    preproc = ImagePreprocessor((6, 4), 3, LabelEncoder().fit(["cat", "dog", "cat"]), 255.0)
    preproc.save(tmp_path)
    config = json.loads((tmp_path / "preprocessor.json").read_text())
    assert config["image_size"] == [6, 4] and config["labels"]["class_names"] == ["cat", "dog"]
    loaded = ImagePreprocessor.load(tmp_path)
    assert loaded.get_config() == preproc.get_config()
    assert loaded.labels.decode([[0.1, 0.9]]) == ["dog"]


def test_load_quotes_nothing_from_a_file_that_failed_validation(tmp_path):
    ImagePreprocessor((6, 4), 3, LabelEncoder().fit(["cat", "dog"]), 255.0).save(tmp_path)
    assert_quotes_nothing_crafted(lambda: ImagePreprocessor.load(tmp_path),
                                  tmp_path / "preprocessor.json")


def test_load_names_the_file_of_an_edited_config(tmp_path):
    _preproc().save(tmp_path)
    config = json.loads((tmp_path / "preprocessor.json").read_text())
    config["channels"] = 2
    (tmp_path / "preprocessor.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="preprocessor.json.: `channels` must be 1 or 3.$"):
        ImagePreprocessor.load(tmp_path)
    (tmp_path / "preprocessor.json").unlink()
    with pytest.raises(FileNotFoundError, match="preprocessor.json is missing from"):
        ImagePreprocessor.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="No saved ImagePreprocessor folder"):
        ImagePreprocessor.load(tmp_path / "absent")


def test_save_refuses_unfitted_labels(tmp_path):
    with pytest.raises(ValueError, match="Fit the labels"):
        ImagePreprocessor(4, 1).save(tmp_path)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"image_size": 0}, ValueError, "Received: image_size=0"),
        ({"image_size": (4, 4, 1)}, ValueError, r"Received: image_size=\(4, 4, 1\)"),
        ({"image_size": (4, 0)}, ValueError, r"Received: image_size=\(4, 0\)"),
        ({"image_size": "28"}, TypeError, "`image_size` must be a positive int or a "
                                          r"\(height, width\) pair. Received: image_size='28'"),
        ({"image_size": True}, TypeError, "Received: image_size=True"),
        ({"image_size": (4, 4.0)}, TypeError, r"Received: image_size=\(4, 4.0\)"),
        ({"channels": 4}, ValueError, "`channels` must be 1 or 3. Received: channels=4"),
        ({"channels": "3"}, TypeError, "`channels` must be 1 or 3. Received: channels='3'"),
        ({"channels": True}, TypeError, "Received: channels=True"),
        ({"float_scale": 2.0}, ValueError, "Received: float_scale=2.0"),
        ({"float_scale": "255"}, TypeError,
         r"`float_scale` must be 1.0 or 255.0. Received: float_scale='255'"),
        ({"float_scale": True}, TypeError, "Received: float_scale=True"),
        ({"labels": {"label_mode": "multiclass"}}, TypeError, "Received: labels="),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        ImagePreprocessor(**{"image_size": 4, **kwargs})


def test_numpy_sizes_and_scales_are_taken_as_python_numbers():
    preproc = ImagePreprocessor((np.int64(6), 4), np.int32(1), float_scale=np.float32(255))
    assert preproc.image_size == (6, 4) and type(preproc.image_size[0]) is int
    assert type(preproc.channels) is int and preproc.float_scale == 255.0


def test_pixel_batch_adds_a_channel_axis_and_names_the_first_nan_image():
    assert as_pixel_batch(np.zeros((2, 4, 4), "uint8"), "x").shape == (2, 4, 4, 1)
    images = np.zeros((3, 4, 4), "float32")
    images[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 image\(s\); the first is x_train\[2\]"):
        as_pixel_batch(images, "x_train")


@pytest.mark.parametrize(
    "images, error, message",
    [
        (np.zeros((2, 4, 4, 2), "uint8"), ValueError, r"shape \(2, 4, 4, 2\)"),
        (np.zeros((2, 4), "uint8"), ValueError, r"shape \(2, 4\)"),
        (np.array([["a"]]), TypeError, "dtype <U1"),
        (np.full((1, 2, 2), 300), ValueError, "from 300 to 300"),
    ],
)
def test_pixel_batch_refuses_bad_arrays(images, error, message):
    with pytest.raises(error, match=message):
        as_pixel_batch(images, "x")
