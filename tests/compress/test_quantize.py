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


def _two_block_transformer():
    from ktlite.models import Transformer

    return Transformer(vocab_size=50, maxlen=4, embed_dim=8, num_heads=1, num_layers=2,
                       num_outputs=2)


@pytest.mark.parametrize("exclude", ["encoder_0/ffn_outer", "^encoder_0/ffn_outer$"])
def test_exclude_matches_the_layer_paths_quantized_layers_reports(exclude):
    model = _two_block_transformer()
    everything = set(quantized_layers(quantize_model(model, "int8")))
    assert set(quantized_layers(quantize_model(model, "int8", exclude=exclude))) == (
        everything - {"encoder_0/ffn_outer"}
    )
    kept = set(quantized_layers(quantize_model(model, "int8", exclude="^encoder_0/")))
    assert kept == {path for path in everything if not path.startswith("encoder_0/")}
    # A pattern matching a bare layer name still excludes it, in every block.
    by_name = set(quantized_layers(quantize_model(model, "int8", exclude="^ffn_outer$")))
    assert by_name == everything - {"encoder_0/ffn_outer", "encoder_1/ffn_outer"}


def test_an_exclude_pattern_matching_no_layer_is_refused_naming_it(transformer):
    with pytest.raises(ValueError, match=r"`exclude` pattern 'no_such_layer' matches no "
                                         r".*'encoder_0/ffn_outer'.*Received: exclude="):
        quantize_model(transformer, "int8", exclude=["^head$", "no_such_layer"])


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


def _nested_model():
    """Three levels: a functional model around a functional model around a `Sequential`
    (Embedding + ktlite TransformerEncoder), plus a MultiHeadAttention of its own."""
    from ktlite.layers import TransformerEncoder

    tokens = keras.Sequential(
        [keras.Input((12,), dtype="int32"), keras.layers.Embedding(200, 8, name="embedding"),
         TransformerEncoder(num_heads=2, intermediate_dim=16)],
        name="tokens",
    )
    inputs = keras.Input((12,), dtype="int32")
    hidden = tokens(inputs)
    attended = keras.layers.MultiHeadAttention(2, 4, name="attention")(hidden, hidden)
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(attended),
                           name="backbone")
    outer = keras.Input((12,), dtype="int32")
    return keras.Model(outer, keras.layers.Dense(3, name="head")(backbone(outer)))


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_model_quantized_inside_nested_sub_models_keras_round_trips(
    token_data, tmp_path, mode
):
    x, _ = token_data
    small = quantize_model(_nested_model(), mode)
    modes = quantized_layers(small)
    assert {"attention/query", "head", "embedding"} <= set(modes)
    assert any(path.endswith("/self_attention/query") for path in modes)  # in the encoder
    small.save(tmp_path / "q.keras")
    loaded = keras.saving.load_model(tmp_path / "q.keras", safe_mode=True)
    assert quantized_layers(loaded) == modes
    np.testing.assert_array_equal(run(loaded, x[:16]), run(small, x[:16]))


def test_a_predictor_around_a_nested_model_quantizes_saves_and_loads(text_setup, tmp_path):
    import ktlite

    trn, val, preproc, model = text_setup
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    wrapped = keras.Model(inputs, model(inputs))
    assert model.compiled
    small = ktlite.get_predictor(wrapped, preproc).quantize("int8")
    # The trained sub-model's compile config stays behind: no optimizer state in the file.
    layers = compat.flatten_layers(small.model)
    assert not any(getattr(layer, "compiled", False) for layer in layers)
    small.save(tmp_path / "p")
    loaded = ktlite.load_predictor(tmp_path / "p")
    texts = list(val.x[:8])
    assert quantized_layers(loaded.model) == quantized_layers(small.model)
    np.testing.assert_array_equal(loaded.predict_proba(texts), small.predict_proba(texts))


@keras.saving.register_keras_serializable("ktlite_tests_quantize")
class OwnLayers(keras.Model):
    """A registered subclassed model that creates its Dense layers itself."""

    def __init__(self, units=8, pass_policy=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.pass_policy = pass_policy
        # With `pass_policy`, the layers get the model's policy and fixed names, so a
        # quantized policy map in the model's config reaches them.
        options = [{"dtype": self.dtype_policy, "name": name} if pass_policy else {}
                   for name in ("hidden", "out")]
        self.hidden = keras.layers.Dense(units, activation="relu", **options[0])
        self.out = keras.layers.Dense(3, **options[1])

    def call(self, inputs):
        return self.out(self.hidden(inputs))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "pass_policy": self.pass_policy}


def test_a_subclassed_model_whose_quantized_layers_would_load_as_float_is_refused():
    model = OwnLayers(name="own")
    model(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"quantized copy of `model` would not load back.*"
                                         r"2 of its layers.*dtype=self.dtype_policy.*"
                                         r"Received: model 'own' of type OwnLayers"):
        quantize_model(model, "int8")


def test_a_subclassed_model_passing_its_policy_down_quantizes_and_round_trips(tmp_path):
    model = OwnLayers(pass_policy=True)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model(x)
    small = quantize_model(model, "int8")
    assert quantized_layers(small) == {"hidden": "int8", "out": "int8"}
    small.save(tmp_path / "q.keras")
    loaded = keras.saving.load_model(tmp_path / "q.keras", safe_mode=True)
    assert quantized_layers(loaded) == quantized_layers(small)
    np.testing.assert_array_equal(run(loaded, x), run(small, x))


class FloatNoConfig(keras.Model):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def call(self, inputs):
        return self.layer(inputs)


class Unregistered(keras.Model):
    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)

    def call(self, inputs):
        return self.dense(inputs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _with_lambda():
    inputs = keras.Input((4,))
    doubled = keras.layers.Lambda(lambda t: 2 * t)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(doubled), name="with_lambda")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: FloatNoConfig(keras.layers.Dense(2)),
         r"no config to rebuild it from .*get_config.*Received: model "
         r"'float_no_config(_\d+)?' of type FloatNoConfig"),
        (lambda: Unregistered(name="unregistered"),
         r"rebuilding it from its config failed \(TypeError: Could not locate class.*"
         r"register_keras_serializable.*Received: model 'unregistered' of type Unregistered"),
        (_with_lambda,
         r"rebuilding it from its config failed \(ValueError: .*`Lambda`.*replace `Lambda` "
         r"layers.*Received: model 'with_lambda' of type Functional"),
    ],
)
def test_a_float_model_that_cannot_be_rebuilt_says_why_and_what_to_do(make, match, snapshot):
    model = make()
    model(np.zeros((1, 4), "float32"))
    unchanged = snapshot(model)
    with pytest.raises(ValueError, match=r"ktlite quantizes a copy of `model` rebuilt from its "
                                         r"config.*" + match):
        quantize_model(model, "int8")
    unchanged()
