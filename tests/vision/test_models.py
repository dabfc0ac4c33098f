"""Tests for ktlite.vision.models (training is tested through the workflow in test_workflow)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from ktlite.layers import PatchEmbedding
from ktlite.vision import image_classifier, image_regression_model, images_from_array
from ktlite.vision.models import _patch_size


@pytest.fixture(scope="module")
def shape_data(shape_arrays):
    x, y, x_test, y_test = shape_arrays
    return images_from_array(x, y, x_test, y_test, verbose=0)


def test_vit_defaults_stem_then_patches_and_the_class_token(shape_data):
    trn, _, preproc = shape_data
    model = image_classifier("vit", trn, preproc=preproc, verbose=0)
    stem = [model.get_layer(f"conv_stem_{i}") for i in range(3)]
    assert [(c.filters, c.strides) for c in stem] == [(32, (2, 2)), (64, (2, 2)), (64, (2, 2))]
    assert model.get_layer("bn_stem_2").output.shape[1:] == (2, 2, 64)  # 16x16 -> 2x2
    embedding = model.get_layer("patch_embedding")
    assert isinstance(embedding, PatchEmbedding) and embedding.patch_size == (1, 1)
    assert embedding.num_patches == 4 and embedding.class_token
    assert len([layer for layer in model.layers if layer.name.startswith("encoder_")]) == 4
    assert model.get_layer("encoder_0").dropout == 0.0
    assert model.get_layer("head_dropout").rate == 0.0
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.output_shape == (None, 2)


def test_vit_without_stem_cuts_at_most_64_patches_from_the_image(shape_data):
    trn, _, preproc = shape_data
    model = image_classifier("vit", trn, preproc=preproc, stem=(), verbose=0)
    assert not [layer for layer in model.layers if "stem" in layer.name]
    embedding = model.get_layer("patch_embedding")
    assert embedding.patch_size == (2, 2) and embedding.num_patches == 64


def test_cnn_keeps_its_head_dropout_by_default(shape_data):
    trn, _, preproc = shape_data
    model = image_classifier("cnn", trn, preproc=preproc, verbose=0)
    assert model.get_layer("head_dropout").rate == 0.1


@pytest.mark.parametrize("size, expected", [((28, 28), 4), ((16, 16), 2), ((32, 24), 4),
                                            ((224, 224), 28)])
def test_default_patch_size(size, expected):
    assert _patch_size(None, size) == expected


@pytest.mark.parametrize("size", [(13, 13), (19, 19), (29, 29), (2, 1)])
def test_a_size_that_leaves_fewer_than_4_patches_is_refused(size):
    # 13x13 is a 100x100 image's stem output: its only divisor under 64 patches is 13.
    with pytest.raises(ValueError, match=r"into 4 to 64 patches; .*e.g. 32, 64, 96 or 128"):
        _patch_size(None, size)


def test_models_save_and_load_with_safe_mode(shape_data, tmp_path):
    trn, val, preproc = shape_data
    batch = preproc.from_pixels(val.x[:4])
    for name in ("vit", "cnn"):
        model = image_classifier(name, trn, preproc=preproc, num_layers=1, verbose=0)
        model.save(tmp_path / f"{name}.keras")
        loaded = keras.saving.load_model(
            tmp_path / f"{name}.keras", safe_mode=True, compile=False
        )
        np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)),
                                   atol=1e-6)


def test_regression_model_has_a_linear_head(shape_arrays):
    x, _, _, _ = shape_arrays
    targets = x.reshape(len(x), -1).mean(axis=1) / 255.0 + 0.01
    trn, _, preproc = images_from_array(x, targets, label_mode="regression", verbose=0)
    model = image_regression_model("cnn", trn, preproc=preproc, verbose=0)
    assert model.output_shape == (None, 1) and model.get_layer("head").activation.__name__ \
        == "linear"
    with pytest.raises(ValueError, match="use `image_regression_model`"):
        image_classifier("cnn", trn, preproc=preproc, verbose=0)


def test_regression_model_starts_at_the_scale_of_the_targets(shape_arrays):
    x, _, _, _ = shape_arrays
    ages = 40.0 + 200.0 * x.reshape(len(x), -1).mean(axis=1) / 255.0  # around 60
    trn, _, preproc = images_from_array(x, ages, label_mode="regression", verbose=0)
    model = image_regression_model("cnn", trn, preproc=preproc, verbose=0)
    predicted = model.predict(preproc.from_pixels(x[:64, :, :, None]), verbose=0)[:, 0]
    assert abs(predicted.mean() - ages.mean()) < 0.5 * ages.std() + 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "resnet"}, "Received: name='resnet'"),
        ({"patch_size": 5}, "Received: patch_size=5"),
        ({"patch_size": 3}, r"\(2, 2\) of the stem's output.*Received: patch_size=3"),
        ({"stem": (32, 0)}, r"Received: stem=\(32, 0\)"),
        ({"embed_dim": 0}, "Received: embed_dim=0"),
        ({"dropout": 1.0}, "Received: dropout=1.0"),
        ({"name": "cnn", "filters": ()}, r"Received: filters=\(\)"),
        ({"learning_rate": 0}, "Received: learning_rate=0"),
        ({"jit_compile": "xla"}, "Received: jit_compile='xla'"),
    ],
)
def test_invalid_arguments_raise_with_received_value(shape_data, kwargs, message):
    trn, _, preproc = shape_data
    with pytest.raises(ValueError, match=message):
        image_classifier(train_data=trn, preproc=preproc, verbose=0, **{"name": "vit", **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stem": 32}, "`stem` must be a tuple of positive ints. Received: stem=32"),
        ({"stem": (32, "64")}, r"Received: stem=\(32, '64'\)"),
        ({"name": "cnn", "filters": (8, True)},
         r"`filters` must be a non-empty tuple of positive ints. Received: filters=\(8, True\)"),
        ({"jit_compile": 1},
         "`jit_compile` must be 'auto', True or False. Received: jit_compile=1"),
        ({"jit_compile": None}, "Received: jit_compile=None"),
        ({"patch_size": "4"},
         "`patch_size` must be a positive int or None. Received: patch_size='4'"),
        ({"dropout": "0.1"}, "Received: dropout='0.1'"),
        ({"name": None}, r"`name` must be one of \['vit', 'cnn'\]. Received: name=None"),
        ({"name": 1}, "Received: name=1"),
    ],
)
def test_arguments_of_a_wrong_type_raise_type_error(shape_data, kwargs, message):
    trn, _, preproc = shape_data
    with pytest.raises(TypeError, match=message):
        image_classifier(train_data=trn, preproc=preproc, verbose=0, **{"name": "vit", **kwargs})


@pytest.mark.parametrize("name, kwargs, error, message", [
    ("cnn", {"patch_size": -3}, ValueError, "Received: patch_size=-3"),
    ("cnn", {"embed_dim": "x"}, TypeError, "Received: embed_dim='x'"),
    ("cnn", {"num_heads": 0}, ValueError, "Received: num_heads=0"),
    ("cnn", {"num_layers": 2.0}, TypeError, "Received: num_layers=2.0"),
    ("cnn", {"ff_dim": 0}, ValueError, "Received: ff_dim=0"),
    ("cnn", {"stem": (32, 0)}, ValueError, r"Received: stem=\(32, 0\)"),
    ("vit", {"filters": ()}, ValueError, r"Received: filters=\(\)"),
    ("vit", {"filters": (8, "16")}, TypeError, r"Received: filters=\(8, '16'\)"),
])
def test_arguments_of_the_other_model_are_checked_too(shape_data, name, kwargs, error, message):
    trn, _, preproc = shape_data
    with pytest.raises(error, match=message):
        image_classifier(name, trn, preproc=preproc, verbose=0, **kwargs)


def test_data_from_another_preprocessor_is_refused(shape_data, shape_arrays):
    trn, _, preproc = shape_data
    x, y, _, _ = shape_arrays
    other_trn, _, _ = images_from_array(x, y, verbose=0)
    with pytest.raises(ValueError, match="different preprocessor"):
        image_classifier("cnn", other_trn, preproc=preproc, verbose=0)
    with pytest.raises(TypeError, match="ImagePreprocessor"):
        image_classifier("cnn", trn, preproc=object(), verbose=0)


def test_xla_is_on_by_default_only_for_large_training_sets_outside_a_strategy(shape_data):
    trn, _, preproc = shape_data
    assert image_classifier("cnn", trn, preproc=preproc, verbose=0).jit_compile is False
    assert image_classifier("cnn", trn, preproc=preproc, jit_compile=True,
                            verbose=0).jit_compile is True
    pixels = np.zeros((22_300, 8, 8), np.uint8)  # 20,070 training images after the split
    classes = np.arange(len(pixels)) % 2
    big, _, big_preproc = images_from_array(pixels, classes, verbose=0)
    assert image_classifier("cnn", big, preproc=big_preproc, verbose=0).jit_compile is True
    assert image_classifier("cnn", big, preproc=big_preproc, jit_compile=False,
                            verbose=0).jit_compile is False
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert image_classifier("cnn", big, preproc=big_preproc, verbose=0).jit_compile is False


def test_an_xla_compiled_cnn_learns_the_shapes(shape_data):
    trn, _, preproc = shape_data
    keras.utils.set_random_seed(0)
    model = image_classifier("cnn", trn, preproc=preproc, jit_compile=True, verbose=0)
    # No validation set: XLA compiles the train step alone (each compiled step costs ~15 s).
    learner = ktlite.get_learner(model, train_data=trn, batch_size=32, verbose=0)
    history = learner.fit_onecycle(3e-3, 3, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9
