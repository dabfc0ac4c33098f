"""Tests for ktlite.layers.TransformerEncoder."""

import keras
import numpy as np
import pytest

from ktlite.layers import TokenAndPositionEmbedding, TransformerEncoder

SENTENCE = [[4, 9, 2, 7]]


def _padded(ids, length):
    ids = np.asarray(ids, dtype="int32")
    return np.pad(ids, [(0, 0), (0, length - ids.shape[1])])


def _stack(norm_first=False, sequence_length=16, **kwargs):
    embed = TokenAndPositionEmbedding(12, sequence_length, 8)
    encoder = TransformerEncoder(2, 16, dropout=0.0, norm_first=norm_first, **kwargs)
    return embed, encoder


@pytest.mark.parametrize("norm_first", [False, True])
def test_real_positions_do_not_change_with_the_amount_of_padding(norm_first):
    embed, encoder = _stack(norm_first)
    outputs = [
        np.asarray(encoder(embed(_padded(SENTENCE, length)), training=False))[:, :4]
        for length in (4, 7, 16)
    ]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], atol=1e-5)


def test_padded_positions_are_never_attended_to():
    encoder = TransformerEncoder(2, 16, dropout=0.0)
    x = np.random.default_rng(0).normal(size=(2, 6, 8)).astype("float32")
    padding = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    junk = x.copy()
    junk[padding == 0] = 100.0
    np.testing.assert_allclose(
        np.asarray(encoder(junk, padding_mask=padding))[padding == 1],
        np.asarray(encoder(x, padding_mask=padding))[padding == 1],
        atol=1e-5,
    )


def test_explicit_padding_mask_matches_the_keras_mask():
    embed, encoder = _stack()
    ids = _padded(SENTENCE, 8)
    from_keras_mask = np.asarray(encoder(embed(ids)))[:, :4]
    explicit = np.asarray(encoder(embed(ids), padding_mask=ids != 0))[:, :4]
    np.testing.assert_allclose(explicit, from_keras_mask, atol=1e-6)


def test_attention_mask_is_combined_with_the_keras_padding_mask():
    embed, encoder = _stack(sequence_length=8)
    inputs = keras.Input((8,), dtype="int32")
    attention = keras.Input((8, 8), dtype="bool")
    model = keras.Model([inputs, attention], encoder(embed(inputs), attention_mask=attention))
    allow_all = np.ones((1, 8, 8), dtype=bool)
    short = model([_padded(SENTENCE, 8), allow_all])
    unpadded = encoder(embed(np.array(SENTENCE, dtype="int32")))
    np.testing.assert_allclose(np.asarray(short)[:, :4], np.asarray(unpadded), atol=1e-5)
    # Same check with junk tokens (not padding) after the sentence but masked out
    # through the attention mask alone.
    junk = _padded(SENTENCE, 8) + np.array([0, 0, 0, 0, 3, 5, 1, 8])
    block_junk = np.zeros((1, 8, 8), dtype=bool)
    block_junk[:, :, :4] = True
    np.testing.assert_allclose(np.asarray(model([junk, block_junk]))[:, :4],
                               np.asarray(short)[:, :4], atol=1e-5)


def test_output_keeps_the_keras_mask_for_the_next_layer():
    embed, encoder = _stack()
    inputs = keras.Input((16,), dtype="int32")
    outputs = encoder(embed(inputs))
    assert outputs._keras_mask is not None
    assert tuple(outputs.shape) == (None, 16, 8)


def test_pre_norm_and_post_norm_compute_different_functions():
    x = np.random.default_rng(1).normal(size=(1, 4, 8)).astype("float32")
    post = TransformerEncoder(2, 16, dropout=0.0)
    pre = TransformerEncoder(2, 16, dropout=0.0, norm_first=True)
    post.build(x.shape)
    pre.build(x.shape)
    pre.set_weights(post.get_weights())
    assert not np.allclose(np.asarray(pre(x)), np.asarray(post(x)))


def test_dropout_is_active_only_in_training():
    encoder = TransformerEncoder(2, 16, dropout=0.5)
    x = np.random.default_rng(2).normal(size=(2, 4, 8)).astype("float32")
    np.testing.assert_array_equal(np.asarray(encoder(x)), np.asarray(encoder(x)))
    assert not np.allclose(np.asarray(encoder(x, training=True)), np.asarray(encoder(x)))


def test_hidden_dim_not_divisible_by_num_heads_names_both_values():
    with pytest.raises(ValueError, match="Received: num_heads=3, hidden_dim=10"):
        TransformerEncoder(num_heads=3, intermediate_dim=8)(np.zeros((1, 2, 10), "float32"))


def test_inputs_of_wrong_rank_raise():
    with pytest.raises(ValueError, match=r"Received: inputs_shape=\(2, 10\)"):
        TransformerEncoder(2, 8).build((2, 10))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_heads": 0}, ValueError, "Received: num_heads=0"),
        ({"num_heads": 2.0}, TypeError, "Received: num_heads=2.0"),
        ({"intermediate_dim": -1}, ValueError, "Received: intermediate_dim=-1"),
        ({"dropout": -0.1}, ValueError, "Received: dropout=-0.1"),
        ({"dropout": 1.0}, ValueError, "Received: dropout=1.0"),
        ({"dropout": "0.1"}, TypeError, "Received: dropout='0.1'"),
        ({"attention_dropout": 2}, ValueError, "Received: attention_dropout=2"),
        ({"activation": "no_such_activation"}, ValueError,
         "Received: activation='no_such_activation'"),
        ({"activation": 1}, TypeError, "Received: activation=1"),
        ({"activation": ["gelu"]}, TypeError, r"Received: activation=\['gelu'\]"),
        ({"norm_first": "yes"}, TypeError, "Received: norm_first='yes'"),
        ({"layer_norm_epsilon": 0}, ValueError, "Received: layer_norm_epsilon=0"),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    args = {"num_heads": 2, "intermediate_dim": 8, **kwargs}
    with pytest.raises(error, match=message):
        TransformerEncoder(**args)


def test_config_round_trips_through_from_config():
    encoder = TransformerEncoder(2, 8, dropout=0.2, activation="relu", norm_first=True,
                                 attention_dropout=0.0, name="enc")
    config = encoder.get_config()
    assert TransformerEncoder.from_config(config).get_config() == config
    assert config["activation"] == "relu"


@pytest.mark.parametrize("norm_first", [False, True])
def test_keras_round_trip_gives_identical_outputs(norm_first, roundtrip):
    embed, encoder = _stack(norm_first)
    inputs = keras.Input((16,), dtype="int32")
    model = keras.Model(inputs, encoder(embed(inputs)))
    ids = _padded(SENTENCE, 16)
    np.testing.assert_array_equal(np.asarray(roundtrip(model)(ids)), np.asarray(model(ids)))


def test_keras_round_trip_with_explicit_mask_inputs(roundtrip):
    inputs = keras.Input((6, 8))
    padding = keras.Input((6,), dtype="bool")
    attention = keras.Input((6, 6), dtype="bool")
    outputs = TransformerEncoder(2, 16)(inputs, padding_mask=padding, attention_mask=attention)
    model = keras.Model([inputs, padding, attention], outputs)
    rng = np.random.default_rng(3)
    args = [rng.normal(size=(2, 6, 8)).astype("float32"), rng.random((2, 6)) > 0.3,
            rng.random((2, 6, 6)) > 0.3]
    np.testing.assert_array_equal(np.asarray(roundtrip(model)(args)), np.asarray(model(args)))


def test_mixed_bfloat16_runs_in_bfloat16_with_float32_weights(mixed_bfloat16):
    embed, encoder = _stack()
    out = encoder(embed(_padded(SENTENCE, 16)))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert np.isfinite(np.asarray(out, dtype="float32")).all()
    assert all(w.dtype == "float32" for w in encoder.weights)


def test_eager_inputs_keep_their_keras_mask_for_reuse():
    embed, encoder = _stack()
    embedded = embed(_padded(SENTENCE, 8))
    first = np.asarray(encoder(embedded))
    assert embedded._keras_mask is not None
    np.testing.assert_array_equal(np.asarray(encoder(embedded)), first)
