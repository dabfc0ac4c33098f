"""Tests for ktlite.vision.ImagePredictor: inputs, bad inputs, save/load, export, JSON, explain."""

import base64
import io
import json
import os
import struct
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from conftest import encode_bmp, encode_webp, write_png
from ktlite.vision import (
    ImagePredictor,
    image_classifier,
    images_from_array,
    images_from_folder,
    plot_occlusion,
)


@pytest.fixture(scope="module")
def predictor(shape_arrays):
    """A small CNN trained on the shapes (100% on the test shapes), wrapped in a predictor."""
    x, y, x_test, y_test = shape_arrays
    trn, val, preproc = images_from_array(x, y, x_test, y_test, verbose=0)
    keras.utils.set_random_seed(0)
    model = image_classifier("cnn", trn, preproc=preproc, filters=(8, 16), verbose=0)
    learner = ktlite.get_learner(model, trn, val, batch_size=32, verbose=0)
    learner.fit_onecycle(1e-2, 6, verbose=0)
    return ktlite.get_predictor(model, preproc)


def _png(image):
    return tf.io.encode_png(image[..., None] if image.ndim == 2 else image).numpy()


def test_get_predictor_gives_an_image_predictor_that_knows_the_task(predictor):
    assert isinstance(predictor, ImagePredictor)
    assert predictor.get_classes() == ["cross", "square"]
    assert predictor.describe()["image_size"] == [16, 16]


def test_paths_bytes_and_arrays_give_the_same_predictions(predictor, shape_arrays, tmp_path):
    _, _, x_test, y_test = shape_arrays
    images = x_test[:6]
    paths = []
    for i, image in enumerate(images):
        write_png(tmp_path / f"{i}.png", image)
        paths.append(str(tmp_path / f"{i}.png"))
    from_arrays = predictor.predict(images)
    assert from_arrays == list(y_test[:6])
    assert predictor.predict(paths) == from_arrays
    assert predictor.predict([_png(image) for image in images]) == from_arrays
    assert predictor.predict(images[0]) == from_arrays[0]  # one (h, w) array
    assert predictor.predict(tmp_path / "1.png") == from_arrays[1]  # a PathLike
    mixed = [paths[0], _png(images[1]), images[2][..., None]]
    assert predictor.predict(mixed) == from_arrays[:3]
    # Paths as a folder loader's object array, a str array or a pandas Series.
    pandas = pytest.importorskip("pandas")
    for given in (np.asarray(paths, dtype=object), np.asarray(paths), pandas.Series(paths)):
        assert predictor.predict(given) == from_arrays


def test_a_file_whose_name_is_not_utf_8_is_read_from_a_path_or_a_loaders_array(
    predictor, shape_arrays, tmp_path
):
    _, _, x_test, y_test = shape_arrays
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    path = str(tmp_path / "a" / os.fsdecode(b"caf\xe9.png"))  # as os.listdir reads Latin-1
    with open(path, "wb") as handle:
        handle.write(_png(x_test[0]))
    write_png(tmp_path / "b" / "0.png", x_test[1])
    assert predictor.predict(path) == y_test[0]
    trn, _, _ = images_from_folder(tmp_path, val_pct=0, verbose=0)
    assert predictor.predict(trn.x) == list(y_test[:2])
    # Encoded images in such an array are not names (they hold NUL bytes).
    from ktlite.vision.files import path_list

    assert path_list(np.array([_png(x_test[0])], dtype=object)) is None
    assert path_list(trn.x) == [os.fsdecode(p) for p in trn.x]


def test_float_and_rgb_arrays_read_as_the_training_pipeline_reads_them(predictor, shape_arrays):
    # Floats travel as 16-bit PNGs and colour becomes gray in float: no 8-bit rounding.
    _, _, x_test, _ = shape_arrays
    rng = np.random.default_rng(0)
    floats = rng.random((3, 16, 16, 1)).astype("float32")
    colour = rng.integers(0, 256, (3, 16, 16, 3)).astype("uint8")
    for images in (floats, colour):
        np.testing.assert_allclose(predictor.preprocess(images),
                                   predictor.preproc.from_pixels(images), atol=2e-5)


def test_gray_and_alpha_is_refused_rather_than_read_as_a_batch(predictor, shape_arrays):
    gray_alpha = np.stack([shape_arrays[2][0], np.full((16, 16), 255, "uint8")], axis=-1)
    with pytest.raises(ValueError, match=r"reads as gray \+ alpha.*inputs\[\.\.\., :1\]"):
        predictor.predict(gray_alpha)


def test_float_rgb_and_larger_images_are_converted(predictor, shape_arrays):
    _, _, x_test, _ = shape_arrays
    expected = predictor.predict_proba(x_test[:4])
    rgb = np.repeat(x_test[:4, :, :, None], 3, axis=-1)
    np.testing.assert_allclose(predictor.predict_proba(rgb), expected, atol=1e-4)
    larger = np.kron(x_test[:4], np.ones((1, 2, 2), "uint8"))  # 32x32, resized back
    assert predictor.predict(list(larger)) == predictor.predict(x_test[:4])
    assert predictor.predict(x_test[:4].astype("float32") / 255) == predictor.predict(
        x_test[:4])


def test_float_pixels_brighter_than_the_training_range_are_refused(predictor, shape_arrays):
    # Trained on uint8, floats are read in [0, 1]: 0-255 floats would all clip to white.
    _, _, x_test, _ = shape_arrays
    with pytest.raises(ValueError, match=r"`inputs` holds float pixels up to 2\d\d, .*\[0, 1\]"):
        predictor.predict(x_test[:4].astype("float32"))
    # Normalized pixels would clip to black.
    with pytest.raises(ValueError, match=r"`inputs` holds negative pixels in 4 image\(s\)"):
        predictor.predict(x_test[:4].astype("float32") / 127.5 - 1)


def test_float_pixels_overshooting_white_are_clipped_not_refused(predictor, shape_arrays):
    _, _, x_test, _ = shape_arrays
    floats = x_test[:4].astype("float32") / 255
    overshoot = floats.copy()
    overshoot[:, 0, 0] = 1.02  # e.g. after bicubic resizing
    overshoot[:, 5, 5] = 2.0   # the limit
    clipped = np.minimum(overshoot, 1.0)
    np.testing.assert_allclose(predictor.predict_proba(overshoot),
                               predictor.predict_proba(clipped), atol=1e-6)
    np.testing.assert_allclose(predictor.preprocess(overshoot)[..., 0], clipped, atol=2e-5)
    overshoot[:, 0, 0] = 2.5
    with pytest.raises(ValueError, match=r"up to 2\.5, .*up to 2 is taken as overshoot"):
        predictor.predict(overshoot)


def test_saving_through_a_link_is_refused_naming_it_while_loading_reads_through(
        predictor, shape_arrays, tmp_path):
    predictor.save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    loaded = ktlite.load_predictor(tmp_path / "link")
    assert loaded.predict(shape_arrays[2][:3]) == predictor.predict(shape_arrays[2][:3])
    link = str(tmp_path / "link")
    with pytest.raises(FileExistsError) as caught:
        predictor.save(link)
    assert str(caught.value) == (
        f"Cannot save a predictor to {link!r}: it is a symbolic link (to "
        f"{str(tmp_path / 'real')!r}), and ktlite does not save through links. Save to the "
        "folder it points to, or remove the link first."
    )


def test_unreadable_files_are_refused_with_their_name(predictor, shape_arrays, tmp_path):
    _, _, x_test, _ = shape_arrays
    png = _png(x_test[0])
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match=r"inputs\[1\] \('.*cut.png'\).*truncated PNG"):
        predictor.predict([png, str(tmp_path / "cut.png")])
    with pytest.raises(ValueError, match=r"empty.jpg'\)` is empty \(0 bytes\)"):
        predictor.predict(str(tmp_path / "empty.jpg"))
    with pytest.raises(ValueError, match="notes.png.*not a PNG, JPEG"):
        predictor.predict(str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match="missing.png' does not exist"):
        predictor.predict(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match=r"is not an image file: '.*' is a folder"):
        predictor.predict(str(tmp_path))
    with pytest.raises(NotImplementedError, match=r"ImagePredictor has no built-in example"):
        predictor.example_inputs()


_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00"
        b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")  # 1x1 white


def _bmp(width, height):
    """An uncompressed 24-bit BMP of one colour."""
    row = (width * 3 + 3) // 4 * 4
    pixels = (bytes([10, 200, 30] * width) + bytes(row - width * 3)) * height
    return (struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835,
                          2835, 0, 0) + pixels)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP"])
def test_other_formats_are_read_whole_and_refused_truncated(predictor, fmt):
    data = {"JPEG": lambda: tf.io.encode_jpeg(np.full((16, 16, 3), 128, "uint8")).numpy(),
            "GIF": lambda: _GIF, "BMP": lambda: _bmp(16, 16)}[fmt]()
    assert predictor.predict(data) in ("cross", "square")
    with pytest.raises(ValueError, match=rf"`inputs\[1\]` is not a readable image: a truncated "
                                         rf"{fmt}"):
        predictor.predict([data, data[: len(data) - 3]])


def test_a_gray_model_reads_any_bmp_and_a_cmyk_jpeg(predictor):
    # 486 bytes: the size field's low byte (0xE6) once sent BMPs down the gray-only decoder.
    bmp = _bmp(12, 12)
    assert len(bmp) == 486
    rgb = np.zeros((12, 12, 3), "uint8") + np.array([30, 200, 10], "uint8")  # BMP is BGR
    np.testing.assert_allclose(predictor.predict_proba(bmp), predictor.predict_proba(rgb),
                               atol=1e-5)
    image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image.new("CMYK", (16, 16), (0, 0, 0, 40)).save(buffer, "JPEG")
    cmyk = buffer.getvalue()
    decoded = tf.io.decode_jpeg(cmyk, channels=3).numpy()
    np.testing.assert_allclose(predictor.predict_proba(cmyk), predictor.predict_proba(decoded),
                               atol=1e-5)


def test_bytes_after_the_end_of_a_png_or_jpeg_are_ignored(predictor, shape_arrays):
    _, _, x_test, _ = shape_arrays
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(100)  # a "motion photo"'s appended MP4
    png = _png(x_test[0])
    jpeg = tf.io.encode_jpeg(np.repeat(x_test[1][..., None], 3, axis=-1)).numpy()
    assert predictor.predict([png + video, jpeg + video]) == predictor.predict([png, jpeg])


def test_an_image_too_large_to_decode_is_refused_before_decoding(predictor):
    # A header that declares 10,000 x 10,000 pixels: a few KB of PNG can hold that.
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 10_000, 10_000, 8, 0, 0, 0, 0)
    huge = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + bytes(4)
            + bytes(4) + b"IEND" + bytes(4))
    with pytest.raises(ValueError, match=r"`inputs` is too large to decode: 10000 x 10000 "
                                         r"pixels, more than 50,000,000"):
        predictor.predict(huge)
    with pytest.raises(ValueError, match=r"`inputs\[0\]` is too large"):
        predictor.inputs_from_json([base64.b64encode(huge).decode()])


def test_a_jpeg_too_large_is_refused_whatever_stray_bytes_precede_its_frame_header(predictor):
    # A 16x16 JPEG's header edited to say 10,000 x 10,000, behind one stray byte the decoder
    # skips: the header is read as the decoder reads it, so the limit still applies.
    jpeg = bytearray(tf.io.encode_jpeg(np.zeros((16, 16, 1), "uint8")).numpy())
    sof = jpeg.index(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, 10_000, 10_000)
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    stray = bytes(jpeg[:app0_end] + b"\x00" + jpeg[app0_end:])
    with pytest.raises(ValueError, match=r"`inputs` is too large to decode: 10000 x 10000"):
        predictor.predict(stray)
    with pytest.raises(ValueError, match=r"`inputs\[0\]` is too large"):
        predictor.inputs_from_json([base64.b64encode(stray).decode()])


def test_a_gif_too_large_in_its_frames_is_refused_whatever_its_screen_says(predictor):
    # TensorFlow decodes a GIF to its largest frame and reads all frames first: a small
    # logical screen must not hide a huge frame, nor many frames their sum.
    def gif(frames):
        return b"GIF89a\x08\x00\x08\x00\x00\x00\x00" + b"".join(
            b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x01\x00\x00" for w, h in frames
        ) + b";"

    with pytest.raises(ValueError, match=r"`inputs` is too large to decode: 10000 x 10000 "
                                         r"pixels, more than 50,000,000. Send a smaller image"):
        predictor.predict(gif([(10_000, 10_000)]))
    with pytest.raises(ValueError, match=r"`inputs\[0\]` is too large to decode: 60,000,000 "
                                         r"pixels in all its frames, more than 50,000,000. Send "
                                         r"one frame of it as a PNG"):
        predictor.inputs_from_json([base64.b64encode(gif([(2000, 1000)] * 30)).decode()])


def test_an_image_whose_header_gives_no_size_is_refused_before_decoding(predictor):
    no_frame = b"\xff\xd8\xff\xda\x00\x02" + bytes(8) + b"\xff\xd9"  # a scan, no frame
    with pytest.raises(ValueError, match=r"`inputs` is not a readable image: its header "
                                         r"gives no image size"):
        predictor.predict(no_frame)
    with pytest.raises(ValueError, match=r"`inputs\[0\]` is not a readable image"):
        predictor.inputs_from_json([base64.b64encode(no_frame).decode()])


def test_large_images_are_decoded_a_few_at_a_time(predictor, shape_arrays, monkeypatch):
    # The budget shrunk to 1,300 pixels: 16x16 images (256) go five to a pass, a 32x32 one
    # (1,024) with at most one small neighbour, however large the batch.
    small = [_png(image) for image in shape_arrays[2][:8]]
    large = _png(np.kron(shape_arrays[2][8], np.ones((2, 2), dtype=np.uint8)))
    images = [*small[:3], large, *small[3:]]
    expected = predictor.predict_outputs(images)  # one pass of 9 under the real budget
    passes = []
    forward = predictor._to_tensor
    monkeypatch.setattr(predictor, "_to_tensor", lambda items: passes.append(len(items))
                        or forward(items))
    monkeypatch.setattr("ktlite.vision.predictor.MAX_PASS_PIXELS", 1300)
    np.testing.assert_allclose(predictor.predict_outputs(images), expected, atol=1e-6)
    assert passes == [3, 2, 4]  # 768 + 1,024 would pass 1,300; then 1,024 + 256, then 4 x 256
    predictor.batch_size = 2
    try:
        passes.clear()
        predictor.predict_outputs(images)
        assert passes == [2, 2, 2, 2, 1]  # batch_size still caps each pass
    finally:
        predictor.batch_size = 32


def test_a_bmp_variant_tensorflow_cannot_decode_is_named_as_such(predictor):
    # A 1x1 1-bit BMP: a valid file, but TensorFlow decodes only 8-, 24- and 32-bit BMPs.
    header = b"BM" + (66).to_bytes(4, "little") + b"\0\0\0\0" + (62).to_bytes(4, "little")
    info = ((40).to_bytes(4, "little") + (1).to_bytes(4, "little") * 2
            + (1).to_bytes(2, "little") * 2 + b"\0" * 24)
    bmp = header + info + b"\0\0\0\0\xff\xff\xff\0" + b"\x80\0\0\0"
    with pytest.raises(ValueError, match=r"^`inputs` is not a readable image: a 1-bit BMP, "
                                         r"which TensorFlow cannot decode: convert it to PNG"):
        predictor.predict(bmp)


# Three colours an 8-bit BMP's pixels index; TensorFlow would read indices 0-2 as near black.
_PALETTE = np.array([[200, 30, 60], [20, 180, 90], [250, 250, 250]], "uint8")


def test_a_bmp_with_a_colour_palette_is_refused_naming_the_file(predictor, tmp_path):
    indices = np.zeros((16, 16), "uint8")
    indices[4:12, 4:12] = 2
    bmp = encode_bmp(indices, palette=_PALETTE)
    (tmp_path / "palette.bmp").write_bytes(bmp)
    gray = np.where(indices == 2, 250, 20).astype("uint8")
    reason = (r"is not a readable image: an 8-bit BMP with a colour palette, which TensorFlow "
              r"would read as gray palette indices: convert it to PNG\.$")
    with pytest.raises(ValueError, match=r"^`inputs` " + reason):
        predictor.predict(bmp)
    with pytest.raises(ValueError, match=r"^`inputs\[1\] \('.*palette.bmp'\)` " + reason):
        predictor.predict([gray, str(tmp_path / "palette.bmp")])
    with pytest.raises(ValueError, match=r"^`inputs\[0\]` " + reason):
        predictor.inputs_from_json([base64.b64encode(bmp).decode()])
    # A gray palette (entry i is gray level i) is what TensorFlow reads right: it is kept.
    np.testing.assert_allclose(predictor.predict_proba(encode_bmp(gray)),
                               predictor.predict_proba(gray), atol=1e-6)


def test_top_down_bmps_read_as_their_pixels_in_a_process_that_survives(
    predictor, shape_arrays, tmp_path
):
    # A top-down BMP (negative height) is valid, but TensorFlow 2.21's float decoding of one
    # kills the process: decode, predict (paths go through the upload check), the JSON
    # hook, the exported SavedModel and the folder scan run in a child process.
    _, _, x_test, _ = shape_arrays
    rgb = np.stack([x_test[0], x_test[1] // 2, 255 - x_test[2]], axis=-1)
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 7, "uint8")], axis=-1)
    images = [x_test[3], rgb, rgba, rgb[:, :13]]  # 8-bit gray, 24-bit, 32-bit, row padding
    paths = []
    for i, image in enumerate(images):
        (tmp_path / f"{i}.bmp").write_bytes(encode_bmp(image, top_down=True))
        paths.append(str(tmp_path / f"{i}.bmp"))
    predictor.save(tmp_path / "saved")
    predictor.export(tmp_path / "exported")
    script = textwrap.dedent(f"""
        import base64
        import numpy as np
        import tensorflow as tf
        import ktlite
        from ktlite.vision import ImagePreprocessor, files

        paths = {paths!r}
        data = [open(path, "rb").read() for path in paths]
        predictor = ktlite.load_predictor({str(tmp_path / "saved")!r})
        served = tf.saved_model.load({str(tmp_path / "exported")!r})
        kept, shapes = files.scan_images(paths, "images")
        np.savez(
            {str(tmp_path / "out.npz")!r},
            by_path=predictor.predict_proba(paths),
            by_bytes=predictor.predict_proba(data),
            by_json=predictor.predict_proba(predictor.inputs_from_json(
                [base64.b64encode(item).decode() for item in data])),
            served=served.signatures["serving_default"](
                images=tf.constant(data))["probabilities"].numpy(),
            kept=kept, shapes=np.array(shapes),
            **{{f"pixels{{i}}": ImagePreprocessor(shape[:2], 3).from_bytes(
                tf.constant([item]))[0].numpy() for i, (item, shape) in
                enumerate(zip(data, shapes))}},
        )
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    out = np.load(tmp_path / "out.npz")
    assert out["kept"].tolist() == [0, 1, 2, 3]
    assert out["shapes"].tolist() == [[16, 16, 1], [16, 16, 3], [16, 16, 4], [16, 13, 3]]
    for i, image in enumerate(images):  # the pixels as stored, not upside down
        rgb_of = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
        np.testing.assert_array_equal(np.round(out[f"pixels{i}"] * 255), rgb_of)
    expected = predictor.predict_proba(
        [np.repeat(images[0][..., None], 3, -1), rgb, rgb, rgb[:, :13]])
    for key in ("by_path", "by_bytes", "by_json", "served"):
        np.testing.assert_allclose(out[key], expected, atol=1e-5, err_msg=key)


def test_a_truncated_webp_is_refused(predictor):
    riff = b"RIFF" + struct.pack("<I", 100) + b"WEBPVP8L" + bytes(20)  # says 108 bytes, has 32
    with pytest.raises(ValueError, match="`inputs` is not a readable image: a truncated WebP"):
        predictor.predict(riff)


def _damaged(png):
    """The same PNG with 8 bytes of its image data flipped: whole-looking, undecodable."""
    data = bytearray(png)
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    return bytes(data)


def test_damaged_image_data_is_refused_naming_the_file_or_position(
    predictor, shape_arrays, tmp_path
):
    _, _, x_test, y_test = shape_arrays
    png = _png(x_test[0])
    damaged = _damaged(png)
    assert len(damaged) == len(png) and damaged[-12:] == png[-12:]  # passes the cheap checks
    (tmp_path / "damaged.png").write_bytes(damaged)
    with pytest.raises(ValueError, match=r"inputs\[1\] \('.*damaged.png'\)` .*corrupt"):
        predictor.predict([png, str(tmp_path / "damaged.png")])
    with pytest.raises(ValueError, match=r"`inputs\[2\]` is not a readable image: its data"):
        predictor.predict([png, png, damaged])
    with pytest.raises(ValueError, match=r"inputs\[1\]` .*corrupt"):
        predictor.inputs_from_json([base64.b64encode(png).decode(),
                                    base64.b64encode(damaged).decode()])
    assert predictor.predict([png]) == [y_test[0]]


@pytest.mark.parametrize(
    "inputs, error, message",
    [
        (b"", ValueError, r"`inputs` is empty \(0 bytes\)"),
        ([], ValueError, "at least one image"),
        (np.zeros((2, 16, 16, 2), "uint8"), ValueError, r"shape \(2, 16, 16, 2\)"),
        (np.full((16, 16), np.nan, "float32"), ValueError, "NaN or infinite"),
        (np.zeros((1, 2, 16, 16, 1)), ValueError, r"shape \(1, 2, 16, 16, 1\)"),
        ({"image": "a.png"}, TypeError, "Received: inputs of type dict"),
        ([3], TypeError, r"inputs\[0\] of type int"),
    ],
)
def test_bad_inputs_are_refused(predictor, inputs, error, message):
    with pytest.raises(error, match=message):
        predictor.predict(inputs)


def test_a_column_of_encoded_images_predicts_as_a_list_does(predictor, shape_arrays):
    # A DataFrame column of image bytes (a Series, or its object array) is a batch (it was
    # refused: a Series by type, the array as one image of the wrong shape).
    pd = pytest.importorskip("pandas")
    pngs = [_png(image) for image in shape_arrays[2][:3]]
    expected = predictor.predict_proba(pngs)
    column = pd.Series(pngs, index=[7, 8, 9])
    for inputs in (column, column.to_numpy()):
        np.testing.assert_array_equal(predictor.predict_proba(inputs), expected)


def test_errors_name_the_argument_of_the_method_called(predictor):
    with pytest.raises(TypeError, match=r"^`inputs` must be a path.*Received: inputs of type"):
        predictor.predict(None)
    with pytest.raises(TypeError, match=r"^`images` must be a path.*Received: images of type"):
        predictor.preprocess(None)
    with pytest.raises(ValueError, match=r"^`image` is empty \(0 bytes\)"):
        predictor.explain(b"")


def test_save_and_load_give_the_same_probabilities(predictor, shape_arrays, tmp_path):
    _, _, x_test, _ = shape_arrays
    predictor.save(tmp_path / "saved")
    assert sorted(os.listdir(tmp_path / "saved")) == [
        "ktlite.json", "model.keras", "preprocessor.json"]
    loaded = ktlite.load_predictor(tmp_path / "saved")
    assert isinstance(loaded, ImagePredictor)
    np.testing.assert_allclose(loaded.predict_proba(x_test[:8]),
                               predictor.predict_proba(x_test[:8]), atol=1e-6)


def test_edited_preprocessor_file_is_refused_at_load(predictor, tmp_path):
    predictor.save(tmp_path / "saved")
    config_path = tmp_path / "saved" / "preprocessor.json"
    config = json.loads(config_path.read_text())
    config["labels"]["class_names"] = ["square", "cross"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="preprocessor.json"):
        ktlite.load_predictor(tmp_path / "saved")


def test_export_loads_and_agrees_without_ktlite(predictor, shape_arrays, tmp_path):
    # The model was trained on uint8 arrays, so `serving_pixels` takes them divided by 255
    # (white 1.0) and agrees with `predict` on the uint8 pixels.
    _, _, x_test, _ = shape_arrays
    assert x_test.dtype == np.uint8 and predictor.preproc.float_scale == 1.0
    predictor.export(tmp_path / "exported")
    images = x_test[:5]
    np.save(tmp_path / "pixels.npy", images[..., None].astype("float32") / 255)
    (tmp_path / "images.json").write_text(
        json.dumps([base64.b64encode(_png(image)).decode() for image in images]))
    script = textwrap.dedent(f"""
        import base64, json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(tmp_path / "exported")!r})
        data = [base64.b64decode(s) for s in json.load(open({str(tmp_path / "images.json")!r}))]
        by_bytes = loaded.signatures["serving_default"](images=tf.constant(data))
        pixels = np.load({str(tmp_path / "pixels.npy")!r})
        by_pixels = loaded.signatures["serving_pixels"](pixels=tf.constant(pixels))
        # The gray model's pixels sent as RGB and RGBA (converted as `predict` does).
        rgb = np.repeat(pixels, 3, axis=-1)
        rgba = np.concatenate([rgb, np.ones_like(pixels)], axis=-1)
        by_rgb = loaded.signatures["serving_pixels"](pixels=tf.constant(rgb))
        by_rgba = loaded.signatures["serving_pixels"](pixels=tf.constant(rgba))
        try:
            loaded.signatures["serving_pixels"](pixels=tf.constant(rgb[..., :2]))
            two_channels = "accepted"
        except tf.errors.InvalidArgumentError as error:
            two_channels = error.message
        assert not any(name.startswith("ktlite") for name in sys.modules)
        print(json.dumps({{
            "bytes": by_bytes["probabilities"].numpy().tolist(),
            "pixels": by_pixels["probabilities"].numpy().tolist(),
            "rgb": by_rgb["probabilities"].numpy().tolist(),
            "rgba": by_rgba["probabilities"].numpy().tolist(),
            "two_channels": two_channels,
            "labels": [s.decode() for s in by_bytes["labels"].numpy()],
        }}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    served = json.loads(run.stdout.strip().splitlines()[-1])
    expected = predictor.predict_proba(images)
    np.testing.assert_allclose(served["bytes"], expected, atol=1e-5)
    np.testing.assert_allclose(served["pixels"], expected, atol=1e-5)
    np.testing.assert_allclose(served["rgb"], expected, atol=1e-5)
    np.testing.assert_allclose(served["rgba"], expected, atol=1e-5)
    assert "1, 3 or 4 channels" in served["two_channels"]
    assert served["labels"] == predictor.predict(images)


def test_an_upload_checked_once_is_not_decoded_again(predictor, shape_arrays, monkeypatch):
    # The HTTP app checks a request's images, then converts them again in the model thread.
    from ktlite.vision.preprocessor import ImagePreprocessor

    decodes = []
    decode = ImagePreprocessor._decode_one
    monkeypatch.setattr(ImagePreprocessor, "_decode_one",
                        lambda self, data: decodes.append(1) or decode(self, data))
    fresh = np.full((16, 16), 77, "uint8")  # not decoded by any other test
    encoded = base64.b64encode(_png(fresh)).decode()
    for _ in range(3):
        predictor.inputs_from_json([encoded])
    assert len(decodes) == 1
    damaged = _damaged(_png(np.full((16, 16), 78, "uint8")))
    for _ in range(2):  # refused every time: never remembered
        with pytest.raises(ValueError, match="corrupt"):
            predictor.inputs_from_json([base64.b64encode(damaged).decode()])
    assert len(decodes) == 3


def test_json_hooks_take_base64_images_and_name_bad_items(predictor, shape_arrays):
    _, _, x_test, y_test = shape_arrays
    encoded = base64.b64encode(_png(x_test[0])).decode()
    items = predictor.inputs_from_json([encoded, {"b64": encoded}])
    assert predictor.predict(items) == [y_test[0]] * 2
    raw = _png(x_test[0])
    wrapped = base64.encodebytes(raw).decode()  # 76-character lines, as `base64` writes
    url_safe = base64.urlsafe_b64encode(raw).decode()
    data_uri = "data:image/png;base64," + encoded
    assert predictor.inputs_from_json([wrapped, url_safe, data_uri]) == [raw] * 3
    answer = predictor.json_response(predictor.predict_outputs(items), return_proba=True)
    assert answer["predictions"] == [y_test[0]] * 2 and answer["classes"] == ["cross", "square"]
    with pytest.raises(ValueError, match=r"inputs\[1\] is not valid base64"):
        predictor.inputs_from_json([encoded, "%%%"])
    with pytest.raises(ValueError, match=r"inputs\[0\]` is empty \(0 bytes\)"):
        predictor.inputs_from_json([""])
    with pytest.raises(ValueError, match=r"inputs\[0\] must be a base64 string"):
        predictor.inputs_from_json([7])
    # An object's other keys are not options: refused, named; a wrong type inside it named.
    with pytest.raises(ValueError, match=r"inputs\[1\].*keys \['b46', 'b64'\]"):
        predictor.inputs_from_json([encoded, {"b64": encoded, "b46": "typo"}])
    with pytest.raises(ValueError, match=r'inputs\[0\]\["b64"\] of type int'):
        predictor.inputs_from_json([{"b64": 5}])
    schema = predictor.json_input_schema()
    assert schema["oneOf"][0]["contentEncoding"] == "base64"
    assert schema["oneOf"][1]["additionalProperties"] is False


def test_explain_highlights_the_shape_not_the_background(predictor, shape_arrays):
    _, _, x_test, _ = shape_arrays
    image = x_test[0]
    heat = predictor.explain(image)
    assert heat.shape == (16, 16) and heat.dtype == np.float32
    shape_pixels = image > 100
    assert heat[shape_pixels].mean() > heat[~shape_pixels].mean()
    other = [c for c in predictor.get_classes() if c != predictor.predict(image)][0]
    assert predictor.explain(image, target=other).mean() < heat.mean()
    with pytest.raises(ValueError, match="Received: target='circle'"):
        predictor.explain(image, target="circle")
    with pytest.raises(ValueError, match="one image"):
        predictor.explain([image, image])
    with pytest.raises(TypeError, match="Received: patch='2'"):
        predictor.explain(image, patch="2")
    # A class by index too, as the text predictor takes it.
    index = predictor.get_classes().index(other)
    np.testing.assert_array_equal(predictor.explain(image, target=index),
                                  predictor.explain(image, target=other))
    with pytest.raises(ValueError, match=r"`target` must be an int in \[0, 1\]. Received: "
                                         r"target=2"):
        predictor.explain(image, target=2)
    with pytest.raises(TypeError, match=r"Received: target=\['circle'\]"):
        predictor.explain(image, target=["circle"])


def _corner_models():
    """Two-class models on 8x8 gray images whose evidence for class 'b' is the top-left
    corner's brightness: one sigmoid output, and two logits."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, size=(40, 8, 8)).astype("uint8")
    x[::2, :4, :4] = 250
    y = np.where(np.arange(40) % 2 == 0, "b", "a")
    _, _, preproc = images_from_array(x, y, val_pct=0, verbose=0)
    corner = np.zeros((8, 8, 1), "float32")
    corner[:4, :4] = 1.0
    one = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(1, activation="sigmoid")])
    one.set_weights([corner.reshape(64, 1) / 4.0, np.array([-2.0], "float32")])
    one.compile(optimizer="adam", loss="binary_crossentropy")
    two = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
    two.set_weights([np.concatenate([-corner.reshape(64, 1), corner.reshape(64, 1)], 1) / 8.0,
                     np.zeros(2, "float32")])
    two.compile(optimizer="adam",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return x, preproc, one, two


def test_explain_reads_probabilities_of_one_sigmoid_and_of_logits_models():
    from ktlite.vision.explain import occlusion_map

    x, preproc, one, two = _corner_models()
    image = x[0]  # bright corner: class 'b'
    sigmoid = ktlite.get_predictor(one, preproc)
    assert sigmoid.predict(image) == "b"
    squares = {"patch": 4, "stride": 4}  # the corner hidden whole
    for_b = sigmoid.explain(image, target="b", **squares)
    assert for_b[:4, :4].mean() > 0.3 and abs(for_b[4:, 4:]).max() < 1e-6
    np.testing.assert_allclose(sigmoid.explain(image, **squares), for_b)  # predicted class
    np.testing.assert_allclose(sigmoid.explain(image, target="a", **squares), -for_b,
                               atol=1e-6)
    logits = ktlite.get_predictor(two, preproc)
    assert logits.model_outputs == "logits"
    softmax = keras.Sequential([two, keras.layers.Softmax()])
    pixels = logits.preprocess(image)[0]
    np.testing.assert_allclose(logits.explain(image, target="b", **squares),
                               occlusion_map(softmax, pixels, 1, **squares), atol=1e-6)


def test_predicting_uint16_pixels_holding_8_bit_values_warns_as_the_loader_does(
    predictor, shape_arrays
):
    _, _, x_test, _ = shape_arrays
    with pytest.warns(UserWarning, match=r"`inputs` is uint16 with no value above \d+: .*"
                                         r"near black"):
        predictor.predict_proba(x_test[:2].astype("uint16"))


def test_plot_occlusion_draws_a_gray_image_at_its_own_scale():
    import matplotlib

    matplotlib.use("Agg")
    gray = np.full((16, 16), 0.5, "float32")
    gray[0, 0] = 0.45  # a stretch to its own range would draw 0.5 as white
    norm = plot_occlusion(gray, np.zeros((16, 16))).get_images()[0].norm
    assert (norm.vmin, norm.vmax) == (0, 1.0)


def test_plot_occlusion_scales_each_pixel_type_as_the_preprocessor_reads_it():
    import matplotlib

    matplotlib.use("Agg")
    levels = np.arange(64, dtype="uint8").reshape(8, 8) * 4

    def drawn(image):
        base = plot_occlusion(image, np.zeros((8, 8))).get_images()[0]
        return base.to_rgba(base.get_array())

    expected = drawn(levels / 255.0)
    assert len(np.unique(expected.reshape(-1, 4), axis=0)) == 64
    # 0-255 floats and uint16 used to draw blank (everything above 1.0 is white).
    for image in (levels, levels.astype("float32"), levels.astype("uint16") * 257,
                  levels.astype("float32")[..., None]):
        np.testing.assert_allclose(drawn(image), expected, atol=1e-6)
    rgb = np.stack([levels, levels[::-1], levels.T], axis=-1)
    np.testing.assert_allclose(drawn(rgb.astype("uint16") * 257), drawn(rgb / 255.0), atol=1e-6)
    np.testing.assert_allclose(drawn(rgb.astype("float32")), drawn(rgb / 255.0), atol=1e-6)
    for channels in (2, 5):
        with pytest.raises(ValueError, match=r"`image` must be \(height, width\) or \(height, "
                                             rf"width, 1 \| 3 \| 4\). Received: image shape "
                                             rf"\(8, 8, {channels}\)"):
            plot_occlusion(np.zeros((8, 8, channels)), np.zeros((8, 8)))


def test_plot_occlusion_overlays_the_map_on_the_image(predictor, shape_arrays):
    import matplotlib

    matplotlib.use("Agg")
    _, _, x_test, _ = shape_arrays
    heat = predictor.explain(x_test[0])
    ax = plot_occlusion(x_test[0], heat, title="shape")
    assert len(ax.images) == 2 and ax.get_title() == "shape"
    with pytest.raises(ValueError, match=r"heatmap shape \(4, 4\)"):
        plot_occlusion(x_test[0], heat[:4, :4])


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained 3-class model on 8x8 gray images: enough to check arguments."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"target": "1"}, TypeError, "`target` must be an int >= 0. Received: target='1'"),
        ({"target": True}, TypeError, "Received: target=True"),
        ({"target": 3}, ValueError, r"`target` must be an int in \[0, 2\]. Received: target=3"),
        ({"target": -1}, ValueError, "Received: target=-1"),
        ({"patch": 2.0}, TypeError, r"`patch` must be an int in \[1, 8\]. Received: patch=2.0"),
        ({"patch": 9}, ValueError, r"`patch` must be an int in \[1, 8\]. Received: patch=9"),
        ({"patch": 4, "stride": "2"}, TypeError, "Received: stride='2'"),
        ({"patch": 4, "stride": 5}, ValueError, r"`stride` must be an int in \[1, 4\]"),
        ({"batch_size": "8"}, TypeError, "`batch_size` must be a positive int"),
        ({"batch_size": 0}, ValueError, "Received: batch_size=0"),
    ],
)
def test_occlusion_map_arguments_of_a_wrong_type_raise_type_error(
    tiny_model, kwargs, error, match
):
    from ktlite.vision.explain import occlusion_map

    image = np.zeros((8, 8, 1), "float32")
    with pytest.raises(error, match=match):
        occlusion_map(tiny_model, image, **{"target": 0, **kwargs})
    heat = occlusion_map(tiny_model, image, np.int64(2), patch=np.int32(4), batch_size=2)
    assert heat.shape == (8, 8)


@pytest.mark.parametrize(
    "alpha, error",
    [("0.5", TypeError), (True, TypeError), (None, TypeError), (1.5, ValueError),
     (-0.1, ValueError), (float("nan"), ValueError)],
)
def test_plot_occlusion_alpha_of_a_wrong_type_raises_type_error(alpha, error):
    import matplotlib

    matplotlib.use("Agg")
    image, heat = np.zeros((4, 4)), np.zeros((4, 4))
    with pytest.raises(error, match=r"`alpha` must be a float in \[0, 1\]. "
                                    f"Received: alpha={alpha!r}"):
        plot_occlusion(image, heat, alpha=alpha)


def test_http_app_predicts_base64_images_and_refuses_an_empty_upload(predictor, shape_arrays):
    import asyncio

    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from ktlite.apps import APIApp

    _, _, x_test, y_test = shape_arrays
    encoded = base64.b64encode(_png(x_test[0])).decode()
    app = APIApp(predictor)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            good = await c.post("/predict", json={"inputs": [encoded, {"b64": encoded}],
                                                  "return_proba": True})
            empty = await c.post("/predict", json={"inputs": [encoded, ""]})
            damaged = await c.post("/predict", json={
                "inputs": [base64.b64encode(_damaged(_png(x_test[0]))).decode()]})
            metadata = await c.get("/metadata")
            explain = await c.post("/explain", json={"text": "a square"})
            return good, empty, damaged, metadata, explain

    good, empty, damaged, metadata, explain = asyncio.run(asyncio.wait_for(main(), timeout=120))
    # Occlusion maps are a Python call; the HTTP /explain serves predictors of text.
    assert explain.status_code == 404
    assert good.status_code == 200, good.text
    assert good.json()["predictions"] == [y_test[0]] * 2
    assert empty.status_code == 422 and "inputs[1]" in empty.text and "0 bytes" in empty.text
    assert damaged.status_code == 422 and "inputs[0]" in damaged.text and "corrupt" in damaged.text
    assert metadata.json()["image_size"] == [16, 16]


def test_http_app_refuses_a_palette_bmp_with_422_naming_it(predictor):
    import asyncio

    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from ktlite.apps import APIApp

    bmp = base64.b64encode(encode_bmp(np.zeros((8, 8), "uint8"), palette=_PALETTE)).decode()
    gray = base64.b64encode(encode_bmp(np.zeros((8, 8), "uint8"))).decode()

    async def main():
        transport = httpx.ASGITransport(app=APIApp(predictor))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.post("/predict", json={"inputs": [gray, bmp]})

    answer = asyncio.run(asyncio.wait_for(main(), timeout=120))
    assert answer.status_code == 422, answer.text
    assert "inputs[1]" in answer.text and "colour palette" in answer.text
    assert "convert it to PNG" in answer.text


def test_webp_bytes_and_files_predict_as_their_pixels(predictor, shape_arrays, tmp_path):
    _, _, x_test, _ = shape_arrays
    rgb = np.stack([x_test[0], x_test[1], x_test[2]], axis=-1)
    rgba = np.concatenate([rgb, (x_test[3] // 2)[..., None]], axis=-1)  # alpha is dropped
    webps = [encode_webp(x_test[4]), encode_webp(rgb), encode_webp(rgba)]
    (tmp_path / "rgba.webp").write_bytes(webps[2])
    expected = predictor.predict_proba([x_test[4], rgb, rgb])
    np.testing.assert_allclose(predictor.predict_proba(webps), expected, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_proba(str(tmp_path / "rgba.webp")),
                               expected[2], atol=1e-6)
    from_json = predictor.inputs_from_json([base64.b64encode(w).decode() for w in webps])
    np.testing.assert_allclose(predictor.predict_proba(from_json), expected, atol=1e-6)


def test_a_preprocessor_of_another_task_is_a_type_error(predictor):
    from ktlite.tabular import TabularPredictor, TabularPreprocessor
    from ktlite.text import TextPreprocessor

    with pytest.raises(TypeError, match="`preproc` must be of type ImagePreprocessor. "
                                        "Received: preproc of type TextPreprocessor"):
        texts = [f"word{i} other{i}" for i in range(20)]
        fitted = TextPreprocessor(maxlen=8, vocab_size=60).fit(texts, ["a", "b"] * 10)
        ImagePredictor(predictor.model, fitted)
    with pytest.raises(TypeError, match="`preproc` must be of type TabularPreprocessor. "
                                        "Received: preproc of type ImagePreprocessor"):
        TabularPredictor(predictor.model, predictor.preproc)
    with pytest.raises(ValueError, match="fitted"):
        TabularPredictor(predictor.model, TabularPreprocessor())
