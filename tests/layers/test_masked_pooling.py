"""Tests for ktlite.layers.MaskedGlobalPooling."""

import keras
import numpy as np
import pytest

from ktlite.layers import MaskedGlobalPooling, TokenAndPositionEmbedding

X = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
PADDING = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)


def test_mean_averages_real_tokens_only():
    out = np.asarray(MaskedGlobalPooling("mean")(X, padding_mask=PADDING))
    expected = [X[i][PADDING[i]].mean(axis=0) for i in range(3)]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_max_takes_the_maximum_over_real_tokens_only():
    junk = X.copy()
    junk[~PADDING] = 1e6
    out = np.asarray(MaskedGlobalPooling("max")(junk, padding_mask=PADDING))
    np.testing.assert_allclose(out, [X[i][PADDING[i]].max(axis=0) for i in range(3)])


def test_first_takes_position_zero():
    np.testing.assert_array_equal(np.asarray(MaskedGlobalPooling("first")(X)), X[:, 0])


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_all_padding_example_pools_to_zeros(mode):
    padding = np.zeros((1, 5), dtype=bool)
    out = np.asarray(MaskedGlobalPooling(mode)(X[:1], padding_mask=padding))
    np.testing.assert_array_equal(out, np.zeros((1, 4)))


def test_without_any_mask_every_position_counts():
    np.testing.assert_allclose(np.asarray(MaskedGlobalPooling()(X)), X.mean(axis=1), atol=1e-6)


def test_keras_mask_from_the_embedding_is_used_and_not_propagated():
    ids = keras.Input((5,), dtype="int32")
    pooled = MaskedGlobalPooling()(TokenAndPositionEmbedding(9, 5, 4)(ids))
    assert getattr(pooled, "_keras_mask", None) is None
    assert tuple(pooled.shape) == (None, 4)
    model = keras.Model(ids, pooled)
    short = model(np.array([[3, 4, 0, 0, 0]]))
    longer = model(np.array([[3, 4, 0, 0, 0]]) * np.array([[1, 1, 1, 1, 1]]))
    np.testing.assert_allclose(np.asarray(short), np.asarray(longer))


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="Received: mode='sum'"):
        MaskedGlobalPooling("sum")
    with pytest.raises(TypeError, match="Received: mode=None"):
        MaskedGlobalPooling(None)


def test_wrong_input_rank_raises():
    with pytest.raises(ValueError, match=r"Received: inputs_shape=\(3, 4\)"):
        MaskedGlobalPooling()(np.zeros((3, 4), "float32"))


@pytest.mark.parametrize("mode", ["mean", "max", "first"])
def test_keras_round_trip_gives_identical_outputs(mode, roundtrip):
    inputs = keras.Input((5, 4))
    padding = keras.Input((5,), dtype="bool")
    model = keras.Model([inputs, padding], MaskedGlobalPooling(mode)(inputs, padding_mask=padding))
    np.testing.assert_array_equal(np.asarray(roundtrip(model)([X, PADDING])),
                                  np.asarray(model([X, PADDING])))


def test_mean_under_mixed_bfloat16_stays_accurate_over_long_sequences(mixed_bfloat16):
    # 4096 copies of 1 + 2**-7: a naive bfloat16 running sum stalls long before the
    # total, so the mean would come out wrong.
    x = np.full((1, 4096, 2), 1 + 2**-7, dtype="float32")
    layer = MaskedGlobalPooling()
    out = layer(keras.ops.cast(x, "bfloat16"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(out, dtype="float32"), 1 + 2**-7, rtol=1e-3)
