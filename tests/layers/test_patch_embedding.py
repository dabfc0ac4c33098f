"""Tests for ktlite.layers.PatchEmbedding."""

import json

import keras
import numpy as np
import pytest

from ktlite.layers import MaskedGlobalPooling, PatchEmbedding

IMAGES = np.random.default_rng(0).normal(size=(2, 8, 12, 3)).astype("float32")


def test_output_has_one_token_per_patch_plus_the_class_token():
    out = PatchEmbedding(patch_size=4, embedding_dim=5)(IMAGES)
    assert tuple(out.shape) == (2, 2 * 3 + 1, 5)


def test_rectangular_patches_and_no_class_token():
    layer = PatchEmbedding(patch_size=(2, 6), embedding_dim=5, class_token=False)
    assert tuple(layer(IMAGES).shape) == (2, 4 * 2, 5)
    assert layer.compute_output_shape((None, 8, 12, 3)) == (None, 8, 5)


def test_each_token_depends_only_on_its_own_patch():
    layer = PatchEmbedding(patch_size=4, embedding_dim=5)
    before = np.asarray(layer(IMAGES))
    changed = IMAGES.copy()
    changed[:, 4:8, 8:12] += 1.0  # the last patch of the 2 x 3 grid
    after = np.asarray(layer(changed))
    np.testing.assert_allclose(after[:, :-1], before[:, :-1], atol=1e-6)
    assert np.abs(after[:, -1] - before[:, -1]).max() > 1e-3


def test_class_token_is_the_same_for_every_image_and_ignores_pixels():
    layer = PatchEmbedding(patch_size=4, embedding_dim=5)
    out = np.asarray(layer(IMAGES))
    np.testing.assert_allclose(out[0, 0], out[1, 0])
    expected = np.asarray(layer.class_embedding)[0, 0] + np.asarray(layer.position_embeddings)[0]
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-6)


def test_positions_are_learned_weights_added_to_every_token():
    layer = PatchEmbedding(patch_size=4, embedding_dim=5)
    layer(IMAGES)
    zero_images = np.zeros_like(IMAGES)
    base = np.asarray(layer(zero_images))
    layer.position_embeddings.assign(np.asarray(layer.position_embeddings) + 1.0)
    np.testing.assert_allclose(np.asarray(layer(zero_images)), base + 1.0, atol=1e-6)
    assert layer.position_embeddings.trainable


def test_gradients_reach_projection_class_token_and_positions():
    import tensorflow as tf

    layer = PatchEmbedding(patch_size=4, embedding_dim=5)
    layer(IMAGES)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(IMAGES) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 4  # kernel, bias, class token, positions
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 8, 12), r"inputs_shape=\(2, 8, 12\)"),
        ((2, 9, 12, 3), r"inputs_shape=\(2, 9, 12, 3\), patch_size=\(4, 4\)"),
        ((2, None, 12, 3), r"inputs_shape=\(2, None, 12, 3\)"),
    ],
)
def test_build_refuses_bad_image_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        PatchEmbedding(patch_size=4, embedding_dim=5).build(shape)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"patch_size": 0}, ValueError, "Received: patch_size=0"),
        ({"patch_size": (4, 0)}, ValueError, r"Received: patch_size=\(4, 0\)"),
        ({"patch_size": (4, 4, 4)}, ValueError, r"Received: patch_size=\(4, 4, 4\)"),
        ({"patch_size": True}, TypeError, "Received: patch_size=True"),
        ({"embedding_dim": -1}, ValueError, "Received: embedding_dim=-1"),
        ({"class_token": "yes"}, TypeError, "Received: class_token='yes'"),
        ({"kernel_initializer": "nope"}, ValueError, "Received: kernel_initializer='nope'"),
        ({"embeddings_initializer": 5}, TypeError, "Received: embeddings_initializer=5"),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    args = {"patch_size": 4, "embedding_dim": 8, **kwargs}
    with pytest.raises(error, match=message):
        PatchEmbedding(**args)


def test_a_seeded_initializer_gives_the_class_token_and_positions_their_own_values():
    # One integer seed used to give the class token the first position embedding's values.
    def built():
        layer = PatchEmbedding(4, 8, embeddings_initializer=keras.initializers.TruncatedNormal(
            stddev=1.0, seed=7))
        layer.build((None, 8, 8, 3))
        return layer.class_embedding.numpy()[0, 0], layer.position_embeddings.numpy()

    token, positions = built()
    assert np.abs(token - positions[0]).min() > 1e-6
    again_token, again_positions = built()  # still reproducible
    np.testing.assert_array_equal(token, again_token)
    np.testing.assert_array_equal(positions, again_positions)


def test_config_is_json_and_rebuilds_the_same_layer():
    layer = PatchEmbedding(np.int64(2), np.int32(6), class_token=False)
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["patch_size"] == [2, 2]
    rebuilt = PatchEmbedding.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.patch_size == (2, 2)


def test_keras_round_trip_with_safe_mode_gives_identical_outputs(roundtrip):
    images = keras.Input((8, 12, 3))
    tokens = PatchEmbedding(patch_size=(4, 2), embedding_dim=6)(images)
    outputs = MaskedGlobalPooling("first")(tokens)
    model = keras.Model(images, outputs)
    loaded = roundtrip(model)
    np.testing.assert_array_equal(np.asarray(loaded(IMAGES)), np.asarray(model(IMAGES)))
    assert isinstance(loaded.layers[1], PatchEmbedding)
    assert loaded.layers[1].patch_size == (4, 2)


def test_mixed_bfloat16_keeps_float32_weights_and_computes_in_bfloat16(mixed_bfloat16):
    layer = PatchEmbedding(patch_size=4, embedding_dim=4)
    out = layer(IMAGES)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in layer.weights)


def test_images_of_another_size_than_built_for_are_refused_naming_both():
    layer = PatchEmbedding(patch_size=4, embedding_dim=8)
    layer(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match=r"Received: images of 12x12, built for 8x8"):
        layer(np.zeros((1, 12, 12, 1), "float32"))
