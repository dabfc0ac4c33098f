"""Keras int8/int4 quantization of a copy of a model, and of a predictor."""

import os
import zipfile

import h5py

import keras
import numpy as np
import pytest

from ktlite import compat
from ktlite.compress import quantize_model, quantize_predictor, quantized_layers
from ktlite.compress._precision import low_precision_policies


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


def test_int8_quantizes_a_mixed_float16_model_as_a_float32_copy(
    transformer, token_data, mixed_precision_copy, snapshot
):
    x, y = token_data
    mixed = mixed_precision_copy(transformer, (x[:64], y[:64]), "mixed_float16")
    unchanged = snapshot(mixed)
    small = quantize_model(mixed, "int8")
    unchanged()
    assert set(quantized_layers(small).values()) == {"int8"}
    assert low_precision_policies(small) == []
    # The mixed model holds the float32 model's weights, so against the float32 model the
    # int8 error alone counts (0.02, as in test_quantized_outputs_close_to_original); against
    # the mixed model its float16 rounding (10 mantissa bits: about 1e-3 on probabilities
    # after a few layers) comes on top.
    np.testing.assert_allclose(run(small, x), run(transformer, x), atol=0.02)
    np.testing.assert_allclose(run(small, x), run(mixed, x).astype("float32"), atol=0.025)
    # Same float32 weights, same float32 policies: the int8 copy of the float32 model.
    np.testing.assert_allclose(run(small, x), run(quantize_model(transformer), x), atol=1e-6)


def test_the_int8_copy_of_a_mixed_float16_model_keras_round_trips(
    token_data, tmp_path, mixed_precision_copy
):
    x, y = token_data
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(hidden))
    features = (x / 200).astype("float32")
    mixed = mixed_precision_copy(model, (features, y), "mixed_float16")
    small = quantize_model(mixed, "int8")
    small.save(tmp_path / "q.keras")
    loaded = keras.saving.load_model(tmp_path / "q.keras", safe_mode=True)
    assert quantized_layers(loaded) == {"hidden": "int8", "head": "int8"}
    assert loaded.get_layer("hidden").dtype_policy.name == "int8_from_float32"
    np.testing.assert_array_equal(run(loaded, features), run(small, features))
    np.testing.assert_allclose(run(small, features), run(model, features), atol=0.02)


def test_quantizing_a_mixed_model_that_cannot_be_rebuilt_says_what_to_do(snapshot):
    class NoConfig(keras.Model):
        def __init__(self, layer):
            super().__init__(dtype="mixed_float16")
            self.layer = layer

        def call(self, inputs):
            return self.layer(inputs)

    model = NoConfig(keras.layers.Dense(2, dtype="mixed_float16"))
    model(np.zeros((1, 4), "float32"))
    unchanged = snapshot(model)
    with pytest.raises(ValueError, match=r"dtype policy mixed_float16.*float32 copy.*"
                                         r"set_weights.*Received: model 'no_config'"):
        quantize_model(model, "int8")
    unchanged()


def test_predictor_quantize_on_a_mixed_float16_text_model(text_setup, mixed_precision_copy):
    import ktlite

    trn, val, preproc, model = text_setup
    mixed = ktlite.get_predictor(mixed_precision_copy(model, trn, "mixed_float16"), preproc)
    texts = list(val.x[:16])
    small = mixed.quantize("int8")
    assert set(quantized_layers(small.model).values()) == {"int8"}
    assert low_precision_policies(mixed.model) == ["mixed_float16"]
    # As above: int8 error (0.02) plus float16 rounding.
    np.testing.assert_allclose(small.predict_proba(texts), mixed.predict_proba(texts),
                               atol=0.025)
