"""Tests for ktlite.layers.TokenAndPositionEmbedding."""

import math

import keras
import numpy as np
import pytest

from ktlite.layers import TokenAndPositionEmbedding

IDS = np.array([[5, 7, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6]], dtype="int32")


def test_output_shape_and_mask_marks_padding():
    layer = TokenAndPositionEmbedding(vocab_size=10, sequence_length=6, embedding_dim=4)
    out = layer(IDS)
    assert tuple(out.shape) == (2, 6, 4)
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(IDS)), IDS != 0)


def test_functional_model_propagates_padding_mask():
    inputs = keras.Input((6,), dtype="int32")
    outputs = TokenAndPositionEmbedding(10, 6, 4)(inputs)
    assert outputs._keras_mask is not None


def test_mask_zero_false_gives_no_mask():
    layer = TokenAndPositionEmbedding(10, 6, 4, mask_zero=False)
    assert layer.compute_mask(IDS) is None


def test_same_token_differs_by_position_only_through_position_embedding():
    layer = TokenAndPositionEmbedding(10, 6, 4)
    out = np.asarray(layer(np.full((1, 6), 3, dtype="int32")))[0]
    positions = np.asarray(layer.position_embeddings)
    np.testing.assert_allclose(out - positions, np.tile(out[0] - positions[0], (6, 1)),
                               atol=1e-6)


def test_inputs_shorter_than_sequence_length_use_the_first_positions():
    layer = TokenAndPositionEmbedding(10, 6, 4)
    full = np.asarray(layer(IDS))
    short = np.asarray(layer(IDS[:, :3]))
    np.testing.assert_allclose(short, full[:, :3], atol=1e-6)


def test_sinusoidal_positions_follow_the_formula_and_have_no_weights():
    layer = TokenAndPositionEmbedding(10, 6, 5, position="sinusoidal")
    ids = np.zeros((1, 6), dtype="int32")
    out = np.asarray(layer(ids))[0] - np.asarray(layer.token_embeddings)[0]
    assert len(layer.weights) == 1  # the token embeddings only
    pos, dim = 3, 5
    expected = [
        math.sin(pos / 10000 ** (2 * (i // 2) / dim)) if i % 2 == 0
        else math.cos(pos / 10000 ** (2 * (i // 2) / dim))
        for i in range(dim)
    ]
    np.testing.assert_allclose(out[pos], expected, atol=1e-5)


def test_inputs_longer_than_sequence_length_raise():
    layer = TokenAndPositionEmbedding(10, 4, 8)
    with pytest.raises(ValueError, match="length=6, sequence_length=4"):
        layer(IDS)


def test_non_token_id_input_rank_raises():
    layer = TokenAndPositionEmbedding(10, 4, 8)
    with pytest.raises(ValueError, match=r"inputs_shape=\(2, 4, 3\)"):
        layer.build((2, 4, 3))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"vocab_size": 0}, ValueError, "Received: vocab_size=0"),
        ({"sequence_length": -3}, ValueError, "Received: sequence_length=-3"),
        ({"embedding_dim": 2.5}, TypeError, "Received: embedding_dim=2.5"),
        ({"embedding_dim": True}, TypeError, "Received: embedding_dim=True"),
        ({"position": "rotary"}, ValueError, "Received: position='rotary'"),
        ({"position": 1}, TypeError, "Received: position=1"),
        ({"mask_zero": 1}, TypeError, "Received: mask_zero=1"),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    args = {"vocab_size": 10, "sequence_length": 4, "embedding_dim": 8, **kwargs}
    with pytest.raises(error, match=message):
        TokenAndPositionEmbedding(**args)


def test_numpy_integer_arguments_give_a_json_config():
    layer = TokenAndPositionEmbedding(np.int64(10), np.int32(4), np.int64(8))
    config = layer.get_config()
    assert type(config["vocab_size"]) is int
    assert TokenAndPositionEmbedding.from_config(config).get_config() == config


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_keras_round_trip_gives_identical_outputs(position, roundtrip):
    inputs = keras.Input((6,), dtype="int32")
    outputs = TokenAndPositionEmbedding(10, 6, 4, position=position)(inputs)
    model = keras.Model(inputs, outputs)
    loaded = roundtrip(model)
    np.testing.assert_array_equal(np.asarray(loaded(IDS)), np.asarray(model(IDS)))
    assert isinstance(loaded.layers[1], TokenAndPositionEmbedding)


def test_mixed_bfloat16_keeps_float32_weights_and_computes_in_bfloat16(mixed_bfloat16):
    layer = TokenAndPositionEmbedding(10, 6, 4)
    out = layer(IDS)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in layer.weights)


def test_unknown_length_input_accepts_any_length_up_to_sequence_length():
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, TokenAndPositionEmbedding(10, 6, 4)(inputs))
    assert tuple(model(IDS[:, :2]).shape) == (2, 2, 4)
    assert tuple(model(IDS).shape) == (2, 6, 4)


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_start_index_embeds_later_positions_like_a_full_call(position):
    layer = TokenAndPositionEmbedding(20, 8, 4, position=position)
    ids = np.array([[3, 4, 5, 6, 7]])
    full = np.asarray(layer(ids))
    np.testing.assert_allclose(np.asarray(layer(ids[:, 2:4], start_index=2)), full[:, 2:4],
                               atol=1e-6)


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
@pytest.mark.parametrize("start_index", [7, -1])
def test_a_start_index_past_the_positions_is_refused_naming_it(position, start_index):
    layer = TokenAndPositionEmbedding(20, 8, 4, position=position)
    with pytest.raises(ValueError, match=rf"`start_index`.*Received: start_index={start_index}"
                                         r", length=2, sequence_length=8"):
        layer(np.array([[3, 4]]), start_index=start_index)
    assert tuple(layer(np.array([[3, 4]]), start_index=6).shape) == (1, 2, 4)  # the last two


def test_reverse_maps_vectors_to_logits_with_the_token_matrix():
    layer = TokenAndPositionEmbedding(20, 8, 4)
    layer(np.array([[1]]))
    hidden = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    logits = np.asarray(layer(hidden, reverse=True))
    assert logits.shape == (2, 3, 20)
    np.testing.assert_allclose(logits, hidden @ np.asarray(layer.token_embeddings).T, atol=1e-5)
    assert getattr(layer(hidden, reverse=True), "_keras_mask", None) is None


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_reverse_of_a_quantized_layer_uses_the_dequantized_matrix(mode):
    # Tied output logits after `Model.quantize` (a causal LM's, a translation model's):
    # Keras' raw int8 / int4 values made them 100-2000 times too large, row by row.
    inputs = keras.Input((None,), dtype="int32")
    layer = TokenAndPositionEmbedding(64, 8, 16)
    model = keras.Model(inputs, layer(inputs))
    hidden = np.random.default_rng(0).normal(size=(2, 3, 16)).astype("float32")
    before = np.asarray(layer(hidden, reverse=True))
    model.quantize(mode)
    after = np.asarray(layer(hidden, reverse=True))
    scale = np.abs(before).max()
    assert np.abs(after - before).max() < (0.02 if mode == "int8" else 0.2) * scale


def test_a_seeded_initializer_gives_tokens_and_positions_their_own_values():
    # Both copies kept the user's seed, and Keras draws from the seed alone: the first
    # position embedding equalled the first token embedding.
    def build():
        layer = TokenAndPositionEmbedding(
            vocab_size=10, sequence_length=10, embedding_dim=4,
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=1.0, seed=7))
        layer.build((None, 10))
        return layer

    layer = build()
    tokens = layer._token_embedding.embeddings.numpy()
    positions = layer.position_embeddings.numpy()
    assert not np.allclose(tokens[0], positions[0])
    np.testing.assert_array_equal(build().position_embeddings.numpy(), positions)  # seeded
