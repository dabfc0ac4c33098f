"""Keras int8/int4 quantization of a copy of a model, and of a predictor."""

import os
import zipfile

import h5py

import keras
import numpy as np
import pytest

from ktlite import compat
from ktlite.compress import quantize_model, quantize_predictor, quantized_layers


def run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("mode, atol", [("int8", 0.02), ("int4", 0.08)])
def test_quantized_outputs_close_to_original(transformer, token_data, mode, atol):
    x, _ = token_data
    small = quantize_model(transformer, mode)
    np.testing.assert_allclose(run(small, x), run(transformer, x), atol=atol)


def test_quantize_leaves_original_float_and_covers_dense_einsum_embedding(transformer):
    small = quantize_model(transformer, "int8")
    assert quantized_layers(transformer) == {}
    modes = quantized_layers(small)
    assert set(modes.values()) == {"int8"}
    kinds = {type(layer).__name__ for layer in compat.flatten_layers(small) if layer.path in modes}
    assert kinds == {"Dense", "EinsumDense", "Embedding"}
    assert "encoder_0/self_attention/query" in modes  # inside MultiHeadAttention


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_model_keras_round_trip_safe_mode(transformer, token_data, tmp_path, mode):
    x, _ = token_data
    small = quantize_model(transformer, mode)
    small.save(tmp_path / "q.keras")
    transformer.save(tmp_path / "f.keras")
    loaded = keras.saving.load_model(tmp_path / "q.keras", safe_mode=True)
    assert quantized_layers(loaded) == quantized_layers(small)
    np.testing.assert_array_equal(run(loaded, x), run(small, x))
    assert os.path.getsize(tmp_path / "q.keras") < os.path.getsize(tmp_path / "f.keras")


def test_quantized_copy_of_compiled_model_saves_without_optimizer_state(
    transformer, token_data, tmp_path
):
    x, y = token_data
    transformer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    transformer.train_on_batch(x[:8], y[:8])
    small = quantize_model(transformer, "int8")
    assert not small.compiled
    for name, model in (("q", small), ("f", transformer)):
        model.save(tmp_path / f"{name}.keras")
        with zipfile.ZipFile(tmp_path / f"{name}.keras") as archive:
            archive.extract("model.weights.h5", tmp_path / name)
    with h5py.File(tmp_path / "f" / "model.weights.h5") as weights:
        assert "optimizer" in weights
    with h5py.File(tmp_path / "q" / "model.weights.h5") as weights:
        assert "optimizer" not in weights


def test_exclude_keeps_matching_layers_float(transformer):
    small = quantize_model(transformer, "int8", exclude="^head$")
    assert "head" not in quantized_layers(small)
    assert quantized_layers(small)


def test_plain_functional_model_round_trip(tmp_path):
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.Dense(16, activation="relu")(inputs)
    )
    model = keras.Model(inputs, outputs)
    small = quantize_model(model)
    small.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    np.testing.assert_array_equal(
        run(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True), x), run(small, x)
    )


@pytest.mark.parametrize("mode", ["int2", "float8", "INT8"])
def test_unknown_mode_rejected(transformer, mode):
    with pytest.raises(ValueError, match=f"`mode` must be one of .*Received: mode='{mode}'"):
        quantize_model(transformer, mode)


@pytest.mark.parametrize("mode", [None, 8, ["int8"]])
def test_a_mode_of_the_wrong_type_is_a_type_error(transformer, mode):
    with pytest.raises(TypeError, match=r"`mode` must be one of \['int8', 'int4'\]. Received"):
        quantize_model(transformer, mode)


def test_bad_inputs_rejected(transformer):
    with pytest.raises(TypeError, match="`model`"):
        quantize_model("model.keras")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(quantize_model(transformer), "int8")
    with pytest.raises(ValueError, match="built"):
        quantize_model(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="no Dense"):
        quantize_model(transformer, exclude=".*")
    with pytest.raises(TypeError, match="`exclude`"):
        quantize_model(transformer, exclude=3)


def test_quantize_predictor_returns_new_predictor_that_saves_and_loads(text_predictor, tmp_path):
    import ktlite

    texts = ["red item number 3", "blue item number 7", "something unseen"]
    small = quantize_predictor(text_predictor, "int8")
    assert small is not text_predictor and type(small) is type(text_predictor)
    assert quantized_layers(text_predictor.model) == {}
    np.testing.assert_allclose(
        small.predict_proba(texts), text_predictor.predict_proba(texts), atol=0.02
    )
    small.save(tmp_path / "p")
    loaded = ktlite.load_predictor(tmp_path / "p")
    assert quantized_layers(loaded.model) == quantized_layers(small.model)
    np.testing.assert_array_equal(loaded.predict_proba(texts), small.predict_proba(texts))
    assert loaded.predict(texts) == small.predict(texts)


def test_quantize_predictor_rejects_non_predictor_and_bad_mode(text_predictor):
    with pytest.raises(TypeError, match="`predictor`"):
        quantize_predictor(object())
    with pytest.raises(ValueError, match="`mode`"):
        quantize_predictor(text_predictor, "int3")
