"""Tests for ktlite.vision.loaders: arrays, folders, DataFrames, CSV and bad inputs."""

import csv
import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from conftest import encode_bmp, write_png
from ktlite.data import make_dataset
from ktlite.vision import (
    Augmentation,
    image_classifier,
    image_dataset,
    images_from_array,
    images_from_csv,
    images_from_df,
    images_from_folder,
)
from ktlite.vision.preprocessor import ImagePreprocessor


def _first_batch(dataset, batch_size=64, augment=False):
    ds, _ = make_dataset(dataset, batch_size=batch_size, augment=augment)
    return next(iter(ds))


def test_array_loader_holds_out_a_stratified_split_and_scales_pixels(shape_arrays):
    x, y, _, _ = shape_arrays
    trn, val, preproc = images_from_array(x, y, val_pct=0.25, verbose=0)
    assert (len(trn), len(val)) == (180, 60)
    assert preproc.image_size == (16, 16) and preproc.channels == 1
    assert preproc.class_names == ["cross", "square"]
    assert np.bincount(val.y).tolist() == [30, 30]
    images, labels = _first_batch(val)
    assert images.shape == (60, 16, 16, 1) and images.dtype == "float32"
    np.testing.assert_allclose(np.asarray(images), val.x[:60].astype("float32") / 255,
                               atol=1e-6)


def test_only_training_batches_are_augmented(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    trn, val, preproc = images_from_array(x, y, x_test, y_test, verbose=0)
    assert isinstance(trn.augment, Augmentation)
    assert val.augment is None
    augmented, _ = _first_batch(trn, augment=True)
    assert not np.allclose(np.asarray(augmented), trn.x[:64] / 255)
    # Evaluation and prediction batches of the same training set are not augmented.
    plain_batch, _ = _first_batch(trn)
    np.testing.assert_allclose(np.asarray(plain_batch), trn.x[:64] / 255, atol=1e-6)
    plain = images_from_array(x, y, x_test, y_test, augment=False, verbose=0)[0]
    assert plain.augment is None


def test_array_loader_resizes_and_converts_to_rgb_on_request(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    trn, _, preproc = images_from_array(x, y, x_test, y_test, image_size=8, channels=3,
                                        verbose=0)
    assert preproc.input_shape == (8, 8, 3)
    assert _first_batch(trn)[0].shape == (64, 8, 8, 3)


def test_float_arrays_in_0_255_are_detected(shape_arrays):
    x, y, _, _ = shape_arrays
    _, val, preproc = images_from_array(x.astype("float32"), y, verbose=0)
    assert preproc.float_scale == 255.0
    assert float(np.asarray(_first_batch(val)[0]).max()) <= 1.0


def test_0_1_floats_overshooting_white_are_read_as_0_1_and_clipped(shape_arrays):
    # One pixel at 1.02 (bicubic resizing rings past white) used to turn the whole set into
    # 0-255 floats, every pixel then at most 0.004: the model learned nothing.
    x, y, _, _ = shape_arrays
    floats = x.astype("float32") / 255
    floats[:, 0, 0] = 1.02
    _, val, preproc = images_from_array(floats, y, val_pct=0.25, verbose=0)
    assert preproc.float_scale == 1.0
    batch = np.asarray(_first_batch(val)[0])
    np.testing.assert_allclose(batch, np.minimum(val.x[:60], 1.0), atol=1e-6)
    assert (batch[:, 0, 0] == 1.0).all()  # clipped to white
    floats[:, 0, 0] = 2.0  # the limit: a 0-255 image this dark would be black
    assert images_from_array(floats, y, verbose=0)[2].float_scale == 1.0
    floats[:, 0, 0] = 2.5
    assert images_from_array(floats, y, verbose=0)[2].float_scale == 255.0


def test_test_floats_overshooting_white_are_read_like_the_training_floats(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    overshoot = x_test.astype("float32") / 255
    overshoot[:, 0, 0] = 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, val, preproc = images_from_array(x, y, overshoot, y_test, verbose=0)
    assert preproc.float_scale == 1.0 and float(np.asarray(_first_batch(val)[0]).max()) == 1.0
    test = image_dataset(overshoot, y_test, preproc)
    np.testing.assert_allclose(test.transform(overshoot[:4, :, :, None]),
                               np.minimum(overshoot[:4, :, :, None], 1.0), atol=1e-6)
    # Trained on 0-255 floats, test floats no brighter than 2 read as 0-1: near black.
    with pytest.warns(UserWarning, match=r"`x_test` holds float pixels no brighter than 1.5, "):
        images_from_array(x.astype("float32"), y, overshoot, y_test, verbose=0)


def test_uint16_arrays_holding_8_bit_values_warn_naming_the_dtype_and_the_fix(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    with pytest.warns(UserWarning) as caught:
        _, val, _ = images_from_array(x.astype("uint16"), y, x_test.astype("uint16"), y_test,
                                      verbose=0)
    messages = [str(w.message) for w in caught]
    top = int(x.max())
    assert messages[0] == (
        f"`x_train` is uint16 with no value above {top}: ktlite reads uint16 as 16-bit pixels "
        "(white is 65535), so these images read as near black. If the values are 8-bit, pass "
        "`x_train.astype('uint8')`."
    )
    assert messages[1].startswith("`x_test` is uint16 with no value above")
    assert float(np.asarray(_first_batch(val)[0]).max()) < 0.004  # what the warning is about
    with warnings.catch_warnings():  # real 16-bit images read as such, silently
        warnings.simplefilter("error")
        _, val, _ = images_from_array(x.astype("uint16") * 257, y, verbose=0)
    np.testing.assert_allclose(np.asarray(_first_batch(val)[0]), val.x[:24] / 65535, atol=1e-6)


@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "uint32"])
def test_other_integer_arrays_are_read_as_8_bit(shape_arrays, dtype):
    x, y, _, _ = shape_arrays
    _, val, _ = images_from_array(x.astype(dtype), y, verbose=0)
    assert val.x.dtype == np.uint8
    np.testing.assert_allclose(np.asarray(_first_batch(val)[0]), val.x[:24] / 255, atol=1e-6)
    wide = x.astype(dtype) * 257
    with pytest.raises(ValueError, match=rf"Integer `x_train` of dtype {dtype} must hold 8-bit "
                                         r"pixels in \[0, 255\] \(for 16-bit pixels, white "
                                         r"65535, pass uint16\)"):
        images_from_array(wide, y, verbose=0)


def test_test_floats_on_another_scale_than_the_training_floats_are_refused(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    with pytest.raises(ValueError, match=r"`x_test` holds float pixels up to 255, but "):
        images_from_array(x.astype("float32") / 255, y, x_test.astype("float32"), y_test,
                          verbose=0)
    # The other way round they may be dark images: a warning, and the test set is kept.
    with pytest.warns(UserWarning, match=r"`x_test` holds float pixels no brighter than 1, "
                                         r".*\[0, 255\].*multiply them by 255"):
        _, val, _ = images_from_array(x.astype("float32"), y, x_test.astype("float32") / 255,
                                      y_test, verbose=0)
    assert len(val) == len(x_test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images_from_array(x.astype("float32"), y, x_test.astype("float32"), y_test, verbose=0)


def test_training_floats_brighter_than_0_255_are_refused_like_test_floats(shape_arrays):
    # 12-bit values as floats used to be read as 0-255 and clipped: most pixels white.
    x, y, x_test, y_test = shape_arrays
    wide = x.astype("float32") * 16
    with pytest.raises(ValueError, match=r"`x_train` holds float pixels up to 4080, but .*"
                                         r"\[0, 255\]"):
        images_from_array(wide, y, verbose=0)
    with pytest.raises(ValueError, match=r"`x_train` holds float pixels up to 4080"):
        images_from_array(wide, y, x_test.astype("float32"), y_test, verbose=0)
    overshoot = x.astype("float32")
    overshoot[:, 0, 0] = 510.0  # twice white is overshoot, clipped, as for test floats
    assert images_from_array(overshoot, y, verbose=0)[2].float_scale == 255.0


def test_arrays_with_nan_are_refused_naming_the_image(shape_arrays):
    x, y, _, _ = shape_arrays
    bad = x.astype("float32") / 255
    bad[7, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x_train\[7\]"):
        images_from_array(bad, y, verbose=0)


def test_normalized_or_empty_images_are_refused(shape_arrays):
    x, y, _, _ = shape_arrays
    centred = x.astype("float32") / 127.5 - 1.0  # [-1, 1]: would have clipped to black
    with pytest.raises(ValueError, match=r"`x_train` holds negative pixels in 240 image\(s\); "
                                         r"the first is x_train\[0\]\. ktlite scales pixels"):
        images_from_array(centred, y, verbose=0)
    with pytest.raises(ValueError, match=r"at least 1 pixel high and wide. Received: x_train "
                                         r"with shape \(240, 0, 16, 1\)"):
        images_from_array(x[:, :0], y, verbose=0)


def test_wrong_channel_count_is_refused(shape_arrays):
    x, y, _, _ = shape_arrays
    with pytest.raises(ValueError, match=r"x_train with shape \(240, 16, 16, 2\)"):
        images_from_array(np.stack([x, x], axis=-1), y, verbose=0)


def test_a_single_class_is_refused(shape_arrays):
    x, _, _, _ = shape_arrays
    with pytest.raises(ValueError, match="class"):
        images_from_array(x, ["square"] * len(x), verbose=0)


def test_folder_loader_reads_classes_from_sub_folders(shape_folder):
    trn, val, preproc = images_from_folder(shape_folder, val_pct=0.25, verbose=0)
    assert preproc.class_names == ["cross", "square"]
    assert (len(trn), len(val)) == (30, 10)
    assert preproc.input_shape == (16, 16, 1)
    images, labels = _first_batch(val)
    assert images.shape == (10, 16, 16, 1)
    assert float(np.asarray(images).max()) > 0.5


def test_unreadable_files_are_skipped_with_a_count_and_a_warning(shape_folder):
    (shape_folder / "cross" / "empty.png").write_bytes(b"")
    good = (shape_folder / "square").glob("*.png").__next__().read_bytes()
    (shape_folder / "square" / "truncated.png").write_bytes(good[: len(good) // 2])
    (shape_folder / "square" / "notes.jpg").write_text("not an image")
    with pytest.warns(UserWarning, match=r"Skipped 3 of 43 training images"):
        trn, val, _ = images_from_folder(shape_folder, verbose=0)
    assert len(trn) + len(val) == 40
    assert not any("truncated" in p or "empty" in p for p in list(trn.x) + list(val.x))


def test_a_bmp_with_a_colour_palette_is_skipped_with_a_count_and_a_warning(shape_folder):
    # TensorFlow would read its palette indices (0 and 1) as gray levels: a black image.
    palette = np.array([[255, 255, 255], [250, 240, 0]], "uint8")
    indices = np.zeros((16, 16), "uint8")
    indices[4:12, 4:12] = 1
    (shape_folder / "square" / "palette.bmp").write_bytes(encode_bmp(indices, palette=palette))
    gray = np.where(indices == 1, 255, 0).astype("uint8")
    (shape_folder / "square" / "gray.bmp").write_bytes(encode_bmp(gray, top_down=True))
    with pytest.warns(UserWarning, match=r"Skipped 1 of 42 training images .*palette BMP; "
                                         r"first: '.*palette.bmp'\)"):
        trn, val, _ = images_from_folder(shape_folder, val_pct=0, verbose=0)
    assert val is None and len(trn) == 41
    assert not any(p.endswith("palette.bmp") for p in trn.x)
    # A gray 8-bit BMP (a gray palette) is read right, and kept.
    (kept,) = [i for i, p in enumerate(trn.x) if p.endswith("gray.bmp")]
    np.testing.assert_array_equal(np.asarray(trn.transform(trn.x[kept:kept + 1]))[0, ..., 0],
                                  gray / 255)


def test_a_file_whose_name_is_not_utf_8_is_read_like_any_other(shape_folder, tmp_path):
    # As unpacked from a Latin-1 zip: os.listdir decodes the name with surrogate escapes,
    # which TensorFlow, reading a str as UTF-8, refused: the whole data set was lost.
    name = os.fsdecode(b"caf\xe9.png")
    cross = np.zeros((16, 16), "uint8")
    cross[7:9, :] = cross[:, 7:9] = 255
    write_png(tmp_path / "cafe.png", cross)
    (tmp_path / "cafe.png").rename(shape_folder / "cross" / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not skipped as unreadable
        trn, val, preproc = images_from_folder(shape_folder, val_pct=0, verbose=0)
    assert val is None and len(trn) == 41
    (kept,) = [i for i, p in enumerate(trn.x) if os.fsdecode(p).endswith(name)]
    assert preproc.class_names[int(trn.y[kept])] == "cross"
    images, labels = _first_batch(trn)
    np.testing.assert_array_equal(np.asarray(images)[kept, ..., 0], cross / 255)
    assert int(np.asarray(labels)[kept]) == int(trn.y[kept])
    # Read again: the loader's array (as `Learner.predict(val.x)` reads it) and the path.
    again = image_dataset(trn.x, trn.y, preproc)
    np.testing.assert_array_equal(np.asarray(_first_batch(again)[0]), np.asarray(images))
    one = image_dataset(str(shape_folder / "cross" / name), None, preproc)
    np.testing.assert_array_equal(np.asarray(_first_batch(one))[0, ..., 0], cross / 255)
    # In validation too: a validation folder and a table's validation rows.
    _, val, _ = images_from_folder(shape_folder, val_folder=shape_folder, verbose=0)
    assert len(val) == 41
    pd = pytest.importorskip("pandas")
    rows = pd.DataFrame(_table(shape_folder), columns=["path", "label"])
    cafe = rows[rows["path"] == f"cross/{name}"]
    trn, val, _ = images_from_df(rows, directory=shape_folder, val_df=cafe, verbose=0)
    assert (len(trn), len(val)) == (41, 1)
    np.testing.assert_array_equal(np.asarray(_first_batch(val)[0])[0, ..., 0], cross / 255)


def test_folder_loader_trains_on_webp_files(shape_folder, tmp_path):
    image = pytest.importorskip("PIL.Image")
    if not pytest.importorskip("PIL.features").check("webp"):
        pytest.skip("PIL here was built without WebP, so it cannot write the test files")
    pixels = {}
    for path in shape_folder.rglob("*.png"):
        rgb = np.asarray(image.open(path).convert("RGB"))
        webp = tmp_path / "webp" / path.parent.name / f"{path.stem}.webp"
        webp.parent.mkdir(parents=True, exist_ok=True)
        image.fromarray(rgb).save(webp, "WEBP", lossless=True)
        pixels[str(webp)] = rgb
    trn, _, preproc = images_from_folder(tmp_path / "webp", val_pct=0, verbose=0)
    assert len(trn) == 40 and preproc.input_shape == (16, 16, 3)
    np.testing.assert_array_equal(np.asarray(trn.transform(trn.x[:4])), np.asarray(
        preproc.from_pixels(np.stack([pixels[path] for path in trn.x[:4]]))))
    keras.utils.set_random_seed(0)
    model = image_classifier("cnn", trn, preproc=preproc, filters=(4,), verbose=0)
    history = ktlite.get_learner(model, trn, None, batch_size=16, verbose=0).fit_onecycle(
        1e-3, 1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_images_of_different_sizes_are_resized_to_the_most_common(shape_folder):
    write_png(shape_folder / "cross" / "big.png", np.zeros((40, 30, 3), "uint8"))
    trn, val, preproc = images_from_folder(shape_folder, val_pct=0.5, verbose=0)
    assert preproc.input_shape == (16, 16, 3)  # one RGB image makes the task RGB
    images, _ = _first_batch(trn)
    assert images.shape[1:] == (16, 16, 3)


def test_folder_without_images_or_with_one_class_is_refused(tmp_path, shape_folder):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(ValueError, match=r"at least 2 class sub-folders with images.*\[\]"):
        images_from_folder(tmp_path / "empty", verbose=0)
    for path in (shape_folder / "cross").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r"image classes \['square'\]"):
        images_from_folder(shape_folder, verbose=0)
    with pytest.raises(ValueError, match="Received: folder="):
        images_from_folder(tmp_path / "missing", verbose=0)


def test_folder_of_files_that_all_fail_is_refused(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "x.png").write_bytes(b"broken")
    with warnings.catch_warnings(), pytest.raises(ValueError, match="None of the 2 training"):
        warnings.simplefilter("ignore")
        images_from_folder(tmp_path, verbose=0)


def test_val_folder_is_used_for_validation(shape_folder, tmp_path):
    val_root = tmp_path / "val"
    for cls in ("cross", "square"):
        (val_root / cls).mkdir(parents=True)
        write_png(val_root / cls / "0.png", np.zeros((16, 16), "uint8"))
    trn, val, _ = images_from_folder(shape_folder, val_folder=val_root, verbose=0)
    assert (len(trn), len(val)) == (40, 2)


def test_a_val_folder_may_lack_a_class(shape_folder, tmp_path):
    (tmp_path / "val" / "cross").mkdir(parents=True)
    write_png(tmp_path / "val" / "cross" / "0.png", np.zeros((16, 16), "uint8"))
    trn, val, preproc = images_from_folder(shape_folder, val_folder=tmp_path / "val", verbose=0)
    assert preproc.class_names == ["cross", "square"]
    assert (len(trn), len(val)) == (40, 1) and np.asarray(val.y).tolist() == [0]


def test_sub_folders_without_images_in_a_val_folder_are_not_classes(shape_folder, tmp_path):
    val_root = tmp_path / "val"
    for cls in ("cross", "square"):
        (val_root / cls).mkdir(parents=True)
        write_png(val_root / cls / "0.png", np.zeros((16, 16), "uint8"))
    for root in (shape_folder, val_root):
        (root / "notes").mkdir()
        (root / "notes" / "readme.txt").write_text("How the shapes were drawn.")
    (val_root / "drafts").mkdir()  # one `folder` lacks altogether
    with pytest.warns(UserWarning, match=r"without images are not classes: \['notes'\]"):
        trn, val, preproc = images_from_folder(shape_folder, val_folder=val_root, verbose=0)
    assert preproc.class_names == ["cross", "square"]
    assert (len(trn), len(val)) == (40, 2) and sorted(np.asarray(val.y).tolist()) == [0, 1]
    # A validation sub-folder with images must be a class of `folder`, with images there.
    write_png(val_root / "notes" / "0.png", np.zeros((16, 16), "uint8"))
    with pytest.warns(UserWarning), pytest.raises(
        ValueError, match=r"`val_folder` has class folders with images \['notes'\] that are "
                          r"not classes of `folder` \(missing there, or without images\)"):
        images_from_folder(shape_folder, val_folder=val_root, verbose=0)


def test_a_sub_folder_without_images_is_not_a_class(shape_folder):
    (shape_folder / "drafts").mkdir()
    with pytest.warns(UserWarning, match=r"without images are not classes: \['drafts'\]"):
        trn, val, preproc = images_from_folder(shape_folder, verbose=0)
    assert preproc.class_names == ["cross", "square"] and len(trn) + len(val) == 40


def test_a_named_class_without_images_stays_a_class_with_a_warning(shape_folder):
    (shape_folder / "circle").mkdir()
    with pytest.warns(UserWarning) as caught:
        trn, val, preproc = images_from_folder(
            shape_folder, class_names=["square", "cross", "circle"], verbose=0)
    assert [str(w.message) for w in caught] == [
        f"`class_names` ['circle'] have no images in {str(shape_folder)!r}, so the model "
        "never sees them in training: add images to their folders or leave them out of "
        "`class_names`."
    ]
    assert preproc.class_names == ["square", "cross", "circle"]
    assert 2 not in np.concatenate([trn.y, val.y]) and len(trn) + len(val) == 40


def test_images_in_folders_inside_a_class_folder_are_counted_not_silently_lost(
        shape_folder, tmp_path):
    nested = shape_folder / "cat" / "2023"
    nested.mkdir(parents=True)
    for i in range(3):
        write_png(nested / f"{i}.png", np.zeros((16, 16), "uint8"))
    with pytest.warns(UserWarning) as caught:
        trn, val, preproc = images_from_folder(shape_folder, verbose=0)
    assert str(caught[0].message) == (
        f"Sub-folders of {str(shape_folder)!r} without images are not classes: ['cat']. "
        "Images must sit directly in their class folder (e.g. cat/1.png, not cat/sub/1.png): "
        "found 3 image(s) in folders inside 'cat'; move them up to use them"
    )
    assert preproc.class_names == ["cross", "square"]
    # A kept class's deeper images are not read either: a warning counts them.
    (shape_folder / "cross" / "extra").mkdir()
    write_png(shape_folder / "cross" / "extra" / "0.png", np.zeros((16, 16), "uint8"))
    with pytest.warns(UserWarning) as caught:
        trn, val, _ = images_from_folder(shape_folder, verbose=0)
    assert str(caught[1].message) == (
        f"Images in folders inside the class folders of {str(shape_folder)!r} are not read: "
        "found 1 image(s) in folders inside 'cross'. Images must sit directly in their class "
        "folder; move them up to train on them."
    )
    assert len(trn) + len(val) == 40
    # Every class one level too deep: the error says where the images are.
    for cls in ("a", "b"):
        (tmp_path / "deep" / cls / "sub").mkdir(parents=True)
        write_png(tmp_path / "deep" / cls / "sub" / "0.png", np.zeros((4, 4), "uint8"))
    with pytest.raises(ValueError, match=r"image classes \[\] .*Images must sit directly in "
                                         r"their class folder .*found 1 image\(s\) in folders "
                                         r"inside 'a', 1 image\(s\) in folders inside 'b'"):
        images_from_folder(tmp_path / "deep", verbose=0)
    for cls in ("cross", "square"):
        (tmp_path / "val" / cls / "sub").mkdir(parents=True)
        write_png(tmp_path / "val" / cls / "sub" / "0.png", np.zeros((4, 4), "uint8"))
    with warnings.catch_warnings(), pytest.raises(
            ValueError, match=r"`val_folder` holds no images.*found 1 image\(s\) in folders "
                              r"inside 'cross', 1 image\(s\) in folders inside 'square'"):
        warnings.simplefilter("ignore")
        images_from_folder(shape_folder, val_folder=tmp_path / "val", verbose=0)


def test_a_sub_folder_whose_files_all_fail_is_not_a_class(shape_folder, tmp_path):
    (shape_folder / "broken").mkdir()
    for i in range(3):
        (shape_folder / "broken" / f"{i}.png").write_bytes(b"")
    val_folder = tmp_path / "val"
    for cls in ("broken", "cross"):
        (val_folder / cls).mkdir(parents=True)
        write_png(val_folder / cls / "0.png", np.zeros((16, 16), "uint8"))
    with pytest.warns(UserWarning) as caught:
        trn, val, preproc = images_from_folder(shape_folder, val_folder, verbose=0)
    messages = " ".join(str(w.message) for w in caught)
    assert "could not be read are not classes: ['broken']" in messages
    assert "1 validation images of the classes dropped above are left out too" in messages
    assert preproc.class_names == ["cross", "square"] and len(trn) == 40
    assert len(val) == 1  # the dropped class's validation image goes with it
    (shape_folder / "square").rename(tmp_path / "away")
    with pytest.raises(ValueError, match=r"only readable class is \['cross'\] \(no image in "
                                         r"\['broken'\]"):
        images_from_folder(shape_folder, verbose=0)


def test_folder_loader_checks_its_folder_and_class_names(shape_folder):
    with pytest.raises(TypeError, match=r"`folder` must be a folder path. Received: folder=None"):
        images_from_folder(None, verbose=0)
    with pytest.raises(TypeError, match=r"`class_names` must be a list of strings. Received: "
                                        r"class_names='cross'"):
        images_from_folder(shape_folder, class_names="cross", verbose=0)  # not 5 letters
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        images_from_folder(shape_folder, class_names=["cross"], verbose=0)


def _table(shape_folder):
    rows = [(f"{cls}/{p.name}", cls) for cls in ("cross", "square")
            for p in sorted((shape_folder / cls).iterdir())]
    return rows


def test_csv_loader_reads_paths_relative_to_the_csv(shape_folder):
    path = shape_folder / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "kind"])
        writer.writerows(_table(shape_folder))
    trn, val, preproc = images_from_csv(path, "file", "kind", val_pct=0.25, verbose=0)
    assert preproc.class_names == ["cross", "square"] and len(trn) + len(val) == 40
    assert _first_batch(val)[0].shape == (10, 16, 16, 1)


def test_csv_loader_names_missing_columns(shape_folder):
    path = shape_folder / "labels.csv"
    path.write_text("file,kind\na.png,x\n")
    with pytest.raises(ValueError, match=r"Columns \['path', 'label'\] are not in"):
        images_from_csv(path, verbose=0)


def test_csv_loader_refuses_a_blank_label_and_reads_a_byte_order_mark(shape_folder):
    path = shape_folder / "labels.csv"
    rows = "".join(f"{p},{c}\n" for p, c in _table(shape_folder))
    path.write_bytes(("\ufeffpath,label\n" + rows).encode("utf-8"))  # Excel's "CSV UTF-8"
    trn, val, preproc = images_from_csv(path, verbose=0)
    assert preproc.class_names == ["cross", "square"] and len(trn) + len(val) == 40
    path.write_text("path,label\n" + rows + "cross/0.png,\n")
    with pytest.raises(ValueError, match=r"Label column 'label' of .*labels.csv' is empty on "
                                         r"line 42"):
        images_from_csv(path, verbose=0)
    path.write_text("path,label\n\n" + rows + "\ncross/0.png,\n")  # blank lines count too
    with pytest.raises(ValueError, match=r"labels.csv' is empty on line 44"):
        images_from_csv(path, verbose=0)
    # A spreadsheet's export: semicolons, Latin-1.
    path.write_bytes(("path;label\n" + rows.replace(",", ";")).encode("latin-1"))
    trn, val, _ = images_from_csv(path, sep=";", encoding="latin-1", verbose=0)
    assert len(trn) + len(val) == 40


def test_df_loader_takes_a_directory_and_a_validation_frame(shape_folder):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_table(shape_folder), columns=["path", "label"])
    trn, val, preproc = images_from_df(df.iloc[:30], directory=shape_folder,
                                       val_df=df.iloc[30:], verbose=0)
    assert (len(trn), len(val)) == (30, 10)
    df["path"] = [shape_folder / p for p in df["path"]]  # pathlib paths work too
    trn, _, _ = images_from_df(df, val_pct=0.25, verbose=0)
    assert len(trn) == 30
    assert set(np.asarray(val.y).tolist()) <= {0, 1}
    with pytest.raises(TypeError, match=r"`path_column` must be a column name \(a str\). "
                                        r"Received: path_column=0"):
        images_from_df(df, path_column=0, verbose=0)
    with pytest.raises(TypeError, match=r"`train_df` must be a pandas DataFrame"):
        images_from_df(dict(df), verbose=0)


def test_df_loader_names_a_row_without_a_path(shape_folder):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"path": ["cross/0.png", None], "label": ["cross", "square"]},
                      index=[10, 11])
    with pytest.raises(ValueError, match=r"`train_df\['path'\]` has a missing value \(None or "
                                         r"NaN\) in the row labelled 11"):
        images_from_df(df, directory=shape_folder, verbose=0)
    df = pd.DataFrame({"path": ["cross/0.png", "cross/1.png"], "label": [None, "square"]})
    with pytest.raises(ValueError, match=r"`val_df\['label'\]` has a missing value .* row "
                                         r"labelled 0"):
        images_from_df(df.fillna("cross"), val_df=df, directory=shape_folder, verbose=0)


def test_table_loaders_refuse_a_directory_or_path_of_the_wrong_type_by_name(shape_folder,
                                                                            tmp_path):
    # `directory=5` failed inside os.fspath ("expected str, bytes or os.PathLike object"),
    # and a number in the path column read as "no image path".
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_table(shape_folder), columns=["path", "label"])
    for directory in (5, b"/work"):
        with pytest.raises(TypeError, match=r"`directory` must be a path \(str or "
                                            r"os.PathLike\). Received: directory of type"):
            images_from_df(df, directory=directory, verbose=0)
    csv = tmp_path / "labels.csv"
    df.to_csv(csv, index=False)
    with pytest.raises(TypeError, match=r"`directory` must be a path"):
        images_from_csv(csv, directory=5, verbose=0)
    with pytest.raises(TypeError, match=r"`train_filepath` must be a path"):
        images_from_csv(7, verbose=0)
    numbered = pd.DataFrame({"path": [0, 1], "label": ["cross", "square"]})
    with pytest.raises(TypeError, match=r"`train_df` row 0 must hold an image path \(a str\). "
                                        r"Received: 0 of type int"):
        images_from_df(numbered, verbose=0)


def test_table_loaders_name_the_folder_where_none_of_the_files_is(shape_folder, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_table(shape_folder), columns=["path", "label"])
    with pytest.raises(ValueError, match=r"none of the files exists \(is '.*typo.*' the folder "
                                         r"they are in\?\)") as refused:
        images_from_df(df, directory=tmp_path / "typo", verbose=0)
    assert "working directory" not in str(refused.value)


def test_a_category_label_column_holds_class_names_whatever_its_values(shape_folder):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_table(shape_folder), columns=["path", "label"])
    df["label"] = pd.Categorical(df["label"].map({"cross": 1.5, "square": 2.0}))
    _, _, preproc = images_from_df(df, directory=shape_folder, verbose=0)
    assert (preproc.label_mode, preproc.class_names) == ("multiclass", ["1.5", "2"])


def test_images_from_df_documents_only_its_own_parameters():
    import inspect
    import re

    doc = inspect.getdoc(images_from_df).split("Args:")[1].split("Returns:")[0]
    documented = re.findall(r"^    (\w+):", doc, flags=re.MULTILINE)
    assert documented == list(inspect.signature(images_from_df).parameters)


def test_bad_arguments_are_refused(shape_arrays):
    x, y, _, _ = shape_arrays
    with pytest.raises(ValueError, match="Received: val_pct=1.5"):
        images_from_array(x, y, val_pct=1.5, verbose=0)
    with pytest.raises(TypeError, match="Received: augment='yes'"):
        images_from_array(x, y, augment="yes", verbose=0)
    with pytest.raises(TypeError, match="Received: augment=1"):
        images_from_array(x, y, augment=1, verbose=0)
    with pytest.raises(ValueError, match="240 images and 3 labels"):
        images_from_array(x, y[:3], verbose=0)
    with pytest.raises(TypeError, match="Received: random_state=.x."):
        images_from_array(x, y, random_state="x", verbose=0)
    with pytest.raises(ValueError, match="None or an int >= 0. Received: random_state=-1"):
        images_from_array(x, y, random_state=-1, verbose=0)


def test_a_numpy_bool_augment_is_taken_like_a_bool(shape_arrays):
    x, y, _, _ = shape_arrays
    assert isinstance(images_from_array(x, y, augment=np.True_, verbose=0)[0].augment,
                      Augmentation)
    assert images_from_array(x, y, augment=np.False_, verbose=0)[0].augment is None


@pytest.mark.parametrize("verbose, error, message", [
    ("yes", TypeError, "`verbose` must be 0 or 1. Received: verbose='yes'"),
    (None, TypeError, "Received: verbose=None"),
    (-1, ValueError, "`verbose` must be 0 or 1. Received: verbose=-1"),
])
def test_every_loader_checks_verbose(shape_arrays, shape_folder, verbose, error, message):
    x, y, _, _ = shape_arrays
    path = shape_folder / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(_table(shape_folder))
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(_table(shape_folder), columns=["path", "label"])
    for load in (lambda: images_from_array(x, y, verbose=verbose),
                 lambda: images_from_folder(shape_folder, verbose=verbose),
                 lambda: images_from_df(frame, directory=shape_folder, verbose=verbose),
                 lambda: images_from_csv(path, verbose=verbose)):
        with pytest.raises(error, match=message):
            load()


def test_an_empty_frame_is_refused(shape_folder):
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="There are no training images to read"):
        images_from_df(pd.DataFrame({"path": [], "label": []}), verbose=0)


def test_datasets_report_validation_with_class_names(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    from ktlite.vision import image_classifier

    trn, val, preproc = images_from_array(x, y, x_test, y_test, verbose=0)
    model = image_classifier("cnn", trn, preproc=preproc, filters=(4,), verbose=0)

    def predict(data):
        return np.tile([[0.9, 0.1]], (len(data), 1))  # always "cross"

    text, confusion = val.reporter(model, val, predict)
    assert "cross" in text and "square" in text
    assert confusion.sum() == len(val) and confusion[0].sum() == np.sum(y_test == "cross")


def test_val_pct_zero_returns_every_image_for_training_and_no_validation(
    shape_arrays, shape_folder
):
    x, y, _, _ = shape_arrays
    trn, val, _ = images_from_array(x, y, val_pct=0, verbose=0)
    assert val is None and len(trn) == len(x)
    trn, val, _ = images_from_folder(shape_folder, val_pct=0, verbose=0)
    assert val is None and len(trn) == 40


def test_image_dataset_reads_new_arrays_and_files_like_the_loader(shape_arrays, shape_folder):
    x, y, x_test, y_test = shape_arrays
    trn, val, preproc = images_from_array(x, y, x_test, y_test, verbose=0)
    test = image_dataset(x_test, y_test, preproc)
    np.testing.assert_array_equal(test.y, val.y)
    np.testing.assert_allclose(test.transform(x_test[:4, :, :, None]),
                               val.transform(x_test[:4, :, :, None]))
    assert test.reader is not None and trn.reader is not None
    paths = sorted(str(p) for p in shape_folder.rglob("*.png"))[:3]
    from_files = image_dataset(paths, None, preproc)
    assert from_files.y is None and from_files.transform(np.asarray(paths, object)).shape == (
        3, 16, 16, 1)
    import pandas as pd  # a folder loader's `val.x` (an object array) and a frame's column

    for given in (np.asarray(paths, dtype=object), pd.Series(paths)):
        np.testing.assert_array_equal(image_dataset(given, None, preproc).x, from_files.x)
    assert image_dataset(paths[0], None, preproc).x.tolist() == paths[:1]  # one path
    with pytest.raises(ValueError, match=r"`images` holds images of different sizes"):
        image_dataset([x_test[0], x_test[0][:8]], None, preproc)
    for odd in (None, 3):  # named, not read as a size mismatch
        with pytest.raises(TypeError, match=rf"`images\[1\]` must be a pixel array. "
                                            rf"Received: images\[1\] of type {type(odd).__name__}"):
            image_dataset([x_test[0], odd], None, preproc)
    tensors = image_dataset([tf.constant(x_test[0]), tf.constant(x_test[1])], None, preproc)
    np.testing.assert_array_equal(tensors.x, image_dataset(x_test[:2], None, preproc).x)
    with pytest.raises(TypeError, match=r"numeric pixels.*Received: images of type NoneType"):
        image_dataset(None, None, preproc)
    (shape_folder / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"`images\[3\]` \('.*broken.png'\) is not a readable"):
        image_dataset(paths + [str(shape_folder / "broken.png")], None, preproc)


@pytest.mark.parametrize("channels", [1, 3])
def test_one_image_where_a_batch_is_read_is_refused_not_read_as_rows(shape_arrays, channels):
    # One (16, 16, 3) image used to read as 16 grayscale images of 16 x 3 pixels, each
    # resized to 16 x 16: `learner.predict(image)` returned 16 rows of probabilities.
    x, y, _, _ = shape_arrays
    x = x if channels == 1 else np.repeat(x[..., None], 3, axis=-1)
    _, _, preproc = images_from_array(x, y, verbose=0)
    one = x[0] if channels == 3 else x[0][..., None]
    # One image of another size too, (20, 24, 3) or (20, 24, 1), whatever the model's size.
    other = np.zeros((20, 24, 3 if channels == 3 else 1), "uint8")
    for image in (one, x[0], other):
        with pytest.raises(ValueError, match=r"holds one image .*images\[None\].*Received: "
                                             rf"images with shape {re.escape(str(image.shape))}"):
            image_dataset(image, None, preproc)
    assert len(image_dataset(one[None], None, preproc)) == 1
    assert len(image_dataset(x[:16, :16, :16], None, preproc)) == 16  # a batch of 16 is one
    assert len(image_dataset(np.zeros((5, 24, 20), "uint8"), None, preproc)) == 5  # gray
    assert len(image_dataset(other[..., :1, None], None, preproc)) == 20  # 20 images 1 wide
    if channels == 3:  # the loader too, given one color image and its label
        with pytest.raises(ValueError, match=r"`x_train` holds one color image .*"
                                             r"x_train\[None\].*shape \(16, 16, 3\) and 1 label"):
            images_from_array(one, y[:1], verbose=0)


def test_a_grayscale_model_of_images_as_narrow_as_a_channel_count_reads_3d_arrays_as_batches():
    preproc = ImagePreprocessor((6, 4), channels=1)
    assert len(image_dataset(np.zeros((5, 6, 4), "uint8"), None, preproc)) == 5
    with pytest.raises(ValueError, match=r"`images` holds one image"):
        image_dataset(np.zeros((5, 6, 3), "uint8"), None, preproc)


@pytest.mark.parametrize("images, labels, error, message", [
    (np.zeros((2, 16, 16), "float32") + 200.0, None, ValueError, "float pixels up to 200"),
    (np.zeros((2, 16, 16), "uint8"), ["square"], ValueError, "one label per image"),
    (np.zeros((2, 16, 16), "uint8"), ["square", "circle"], ValueError, "not among the classes"),
    (["no-such-file.png"], None, ValueError, r"could be read as an image .*'no-such-file.png'\)"
                                             r": none of the files exists .*working directory"),
])
def test_image_dataset_refuses_bad_images_and_labels(shape_arrays, images, labels, error, message):
    x, y, _, _ = shape_arrays
    _, _, preproc = images_from_array(x, y, verbose=0)
    with pytest.raises(error, match=message):
        image_dataset(images, labels, preproc)
    with pytest.raises(TypeError, match="`preproc` must be of type ImagePreprocessor"):
        image_dataset(x, y, object())
