"""TFLite export of a predictor (tokenizer inside or outside) or a model, with quantization."""

import json
import re

import keras
import numpy as np
import pytest

from folders import assert_quotes_nothing_crafted
from ktlite import saving
from ktlite.compress import export_tflite, load_tflite

TEXTS = ["red item number 3", "blue item number 70", "green item", "an unseen sentence"]


def run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False)).astype("float32")


def test_float_export_holds_tokenizer_and_matches_predictor(text_predictor, tmp_path):
    info = export_tflite(text_predictor, tmp_path / "f")
    assert info.tokenizer_inside and info.input_name == "texts" and info.quantize is None
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["model.tflite", "tflite.json"]
    meta = json.loads((tmp_path / "f" / "tflite.json").read_text())
    assert meta["input"] == {"name": "texts", "dtype": "string", "shape": [None]}
    assert (
        meta["custom_ops"] == "tensorflow_text"
        and meta["labels"]["class_names"] == text_predictor.get_classes()
        and meta["predictor"] == "ktlite.text.predictor.TextPredictor"
    )
    runner = load_tflite(tmp_path / "f")
    np.testing.assert_allclose(
        runner.predict_proba(TEXTS), text_predictor.predict_proba(TEXTS), atol=1e-5
    )
    assert runner.predict(TEXTS) == text_predictor.predict(TEXTS)
    assert runner.predict(TEXTS[0]) == text_predictor.predict(TEXTS[0])


def test_load_quotes_nothing_from_a_file_that_failed_validation(text_predictor, tmp_path):
    export_tflite(text_predictor, tmp_path / "f")
    assert_quotes_nothing_crafted(lambda: load_tflite(tmp_path / "f"),
                                  tmp_path / "f" / "tflite.json")


@pytest.mark.parametrize("mode, atol", [("dynamic", 0.02), ("float16", 0.005)])
def test_weight_quantized_exports_stay_close(text_predictor, tmp_path, mode, atol):
    info = export_tflite(text_predictor, tmp_path / mode, quantize=mode)
    assert info.quantize == mode and info.tokenizer_inside
    np.testing.assert_allclose(
        load_tflite(tmp_path / mode).predict_proba(TEXTS),
        text_predictor.predict_proba(TEXTS),
        atol=atol,
    )


def test_int8_calibrates_on_training_texts(text_setup, text_predictor, tmp_path):
    trn, val, _, _ = text_setup
    info = export_tflite(
        text_predictor,
        tmp_path / "q",
        quantize="int8",
        representative_data=trn,
        num_calibration_samples=64,
    )
    assert info.tokenizer_inside
    texts = list(val.x)
    expected = text_predictor.predict_proba(texts)
    got = load_tflite(tmp_path / "q").predict_proba(texts)
    assert np.abs(got - expected).max() < 0.05
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.95


def test_model_alone_takes_token_ids_and_ships_the_preprocessor(text_predictor, tmp_path):
    info = export_tflite(text_predictor, tmp_path / "ids", include_tokenizer=False)
    assert not info.tokenizer_inside and info.input_name == "token_ids"
    assert {"preprocessor.json", "vocab.txt"} <= {p.name for p in (tmp_path / "ids").iterdir()}
    runner = load_tflite(tmp_path / "ids")
    np.testing.assert_allclose(
        runner.predict_proba(TEXTS), text_predictor.predict_proba(TEXTS), atol=1e-5
    )


def test_unsupported_tokenizer_falls_back_outside_with_warning(tmp_path):
    import ktlite
    from ktlite import text

    texts = [f"{w} Item {i}" for i in range(20) for w in ("Red", "Blue")]
    trn, _, preproc = text.texts_from_array(
        texts, [t.split()[0] for t in texts], maxlen=6, vocab_size=60, lowercase=False, verbose=0
    )
    model = text.text_classifier("fasttext", trn, preproc=preproc, embed_dim=8, verbose=0)
    predictor = ktlite.get_predictor(model, preproc)
    with pytest.raises(ValueError, match="include_tokenizer"):
        export_tflite(predictor, tmp_path / "strict", include_tokenizer=True)
    with pytest.warns(UserWarning, match="exporting the model alone"):
        info = export_tflite(predictor, tmp_path / "auto")
    assert not info.tokenizer_inside
    np.testing.assert_allclose(
        load_tflite(tmp_path / "auto").predict_proba(texts[:3]),
        predictor.predict_proba(texts[:3]),
        atol=1e-5,
    )


def test_keras_model_export_with_int8_calibration(token_data, transformer, tmp_path):
    x, _ = token_data
    info = export_tflite(
        transformer,
        tmp_path / "m",
        quantize="int8",
        representative_data=x,
        num_calibration_samples=32,
    )
    assert info.input_name == "inputs" and not info.tokenizer_inside
    got = load_tflite(tmp_path / "m").predict_proba(x[:16])
    expected = keras.ops.convert_to_numpy(transformer(x[:16], training=False))
    assert np.abs(got - expected).max() < 0.05
    # Plain lists (int64 in numpy) are cast to the model's input dtype, as Keras does.
    np.testing.assert_array_equal(load_tflite(tmp_path / "m").predict_proba(x[:4].tolist()),
                                  got[:4])


def test_int8_predicts_every_text_length_though_one_count_is_stored_as_zero(
        transformer, tmp_path):
    # Calibrated on rows of at most 10 tokens, the mean pooling's token count spans 0-10
    # in int8, where a count of 5 is stored as 0: TFLite's int8 division refused it
    # ("div.cc ... data[i] != 0"), so every text of 5 tokens failed to predict.
    rng = np.random.default_rng(0)
    calibration = rng.integers(1, 200, size=(64, 12)).astype("int32")
    for row in calibration:
        row[rng.integers(1, 11):] = 0
    calibration[0, :10] = 7
    export_tflite(transformer, tmp_path / "q", quantize="int8",
                  representative_data=calibration)
    ids = np.zeros((12, 12), "int32")
    for count in range(1, 13):
        ids[count - 1, :count] = rng.integers(1, 200, size=count)
    got = load_tflite(tmp_path / "q").predict_proba(ids)
    expected = keras.ops.convert_to_numpy(transformer(ids, training=False))
    # Lengths past the calibration's (11 and 12 tokens) predict, from clipped activations.
    assert np.isfinite(got).all() and np.abs(got - expected)[:10].max() < 0.05


def test_a_model_taking_any_length_exports_at_its_position_table_width(token_data, transformer,
                                                                       tmp_path):
    x, _ = token_data
    export_tflite(transformer, tmp_path / "f")
    meta = json.loads((tmp_path / "f" / "tflite.json").read_text())
    assert meta["input"]["shape"] == [None, 12]
    got = load_tflite(tmp_path / "f").predict_proba(x[:4])
    expected = keras.ops.convert_to_numpy(transformer(x[:4], training=False))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_bad_arguments_rejected(text_predictor, tmp_path):
    with pytest.raises(ValueError, match="`quantize`"):
        export_tflite(text_predictor, tmp_path / "a", quantize="int4")
    with pytest.raises(ValueError, match="`representative_data`"):
        export_tflite(text_predictor, tmp_path / "b", quantize="int8")
    with pytest.raises(TypeError, match="`representative_data`"):
        export_tflite(text_predictor, tmp_path / "c", quantize="int8", representative_data=[1, 2])
    with pytest.raises(TypeError, match=r"`representative_data` must be a batch of inputs, not "
                                        r"a single one\. Received: representative_data='hello'"):
        export_tflite(text_predictor, tmp_path / "c", quantize="int8", representative_data="hello")
    with pytest.raises(TypeError, match="`model_or_predictor`"):
        export_tflite("model.keras", tmp_path / "d")
    with pytest.raises(ValueError, match="`num_calibration_samples`"):
        export_tflite(text_predictor, tmp_path / "e", num_calibration_samples=0)
    with pytest.raises(TypeError, match="`include_tokenizer`"):
        export_tflite(text_predictor, tmp_path / "f", include_tokenizer="yes")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="cannot prove it wrote"):
        export_tflite(text_predictor, tmp_path / "g")
    with pytest.raises(ValueError, match="`path`"):
        load_tflite(tmp_path / "g")


@pytest.mark.parametrize("folder", ["changed export", "hand-made"])
def test_export_keeps_a_folder_ktlite_cannot_prove_it_wrote(text_predictor, tmp_path, folder):
    path = tmp_path / "f"
    if folder == "hand-made":
        path.mkdir()
        (path / "tflite.json").write_text(json.dumps({"format": "ktlite-tflite"}))
        (path / "model.tflite").write_bytes(b"my own model")
    else:
        export_tflite(text_predictor, path)
        (path / "model.tflite").write_bytes(b"my own model")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(FileExistsError, match=re.escape(f"{str(path)!r}: the folder is not "
                                                        "empty and ktlite cannot prove")):
        export_tflite(text_predictor, path, include_tokenizer=False)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_export_replaces_an_unchanged_export_and_records_every_file_hash(text_predictor,
                                                                         tmp_path):
    export_tflite(text_predictor, tmp_path / "f")
    # An export written before the hashes (format 1) is replaced as it was then.
    meta = json.loads((tmp_path / "f" / "tflite.json").read_text())
    meta.pop("files")
    (tmp_path / "f" / "tflite.json").write_text(json.dumps({**meta, "format_version": 1}))
    info = export_tflite(text_predictor, tmp_path / "f", include_tokenizer=False)
    assert not info.tokenizer_inside and not load_tflite(tmp_path / "f").tokenizer_inside
    meta = json.loads((tmp_path / "f" / "tflite.json").read_text())
    assert meta["files"] == {
        name: saving.sha256_file(tmp_path / "f" / name)
        for name in ("model.tflite", "preprocessor.json", "vocab.txt")
    }


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"num_calibration_samples": "256"}, TypeError, "num_calibration_samples"),
        ({"num_calibration_samples": True}, TypeError, "num_calibration_samples"),
        ({"num_calibration_samples": -3}, ValueError, "num_calibration_samples"),
        ({"seed": "0"}, TypeError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"quantize": 8}, TypeError, "quantize"),
        ({"quantize": True}, TypeError, "quantize"),
        ({"quantize": ["dynamic"]}, TypeError, "quantize"),
        ({"quantize": "int4"}, ValueError, "quantize"),
    ],
)
def test_export_rejects_wrong_types_and_out_of_range_values(transformer, tmp_path, kwargs,
                                                            error, name):
    with pytest.raises(error, match=f"`{name}` must be .* Received: {name}="):
        export_tflite(transformer, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"batch_size": "32"}, TypeError, "batch_size"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"num_threads": "2"}, TypeError, "num_threads"),
        ({"num_threads": 2.0}, TypeError, "num_threads"),
        ({"num_threads": 0}, ValueError, "num_threads"),
    ],
)
def test_load_rejects_wrong_types_and_out_of_range_values(tmp_path, kwargs, error, name):
    # Checked before the folder is read: the error names the argument, not the path.
    with pytest.raises(error, match=f"`{name}` must be .* Received: {name}="):
        load_tflite(tmp_path / "missing", **kwargs)


def test_runtime_decodes_multilabel_like_the_predictor(text_predictor, tmp_path, monkeypatch):
    from ktlite.labels import LabelEncoder

    export_tflite(text_predictor, tmp_path / "f")
    runner = load_tflite(tmp_path / "f")
    runner.labels = LabelEncoder("multilabel", ["a", "b"], 2)
    monkeypatch.setattr(runner, "predict_proba", lambda inputs: np.array([[0.9, 0.2]]))
    # Every class with its probability, as Predictor.predict gives (not only p > 0.5).
    assert runner.predict(["x"]) == [[("a", 0.9), ("b", 0.2)]]


def test_keras_int8_model_is_refused_with_the_way_out_and_int4_exports(tmp_path):
    from ktlite.compress import quantize_model

    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(hidden))
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    int8 = quantize_model(keras.models.clone_model(model), "int8")
    with pytest.raises(ValueError, match=r"int8-quantized.*quantize='int8'.*'hidden'"):
        export_tflite(int8, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    int4 = quantize_model(keras.models.clone_model(model), "int4")
    export_tflite(int4, tmp_path / "b")
    expected = keras.ops.convert_to_numpy(int4(x, training=False))
    np.testing.assert_allclose(load_tflite(tmp_path / "b").predict_proba(x), expected, atol=1e-4)


def test_a_predictor_of_another_task_is_refused_with_the_ways_out(tmp_path):
    import ktlite
    from ktlite import vision

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 8, 8, 1), dtype=np.uint8)
    trn, val, preproc = vision.images_from_array(images, ["a", "b"] * 20, val_pct=0.25,
                                                 verbose=0)
    model = vision.image_classifier("cnn", trn, preproc=preproc, verbose=0)
    predictor = ktlite.get_predictor(model, preproc)
    with pytest.raises(ValueError, match=r"text predictor.*predictor\.model.*ImagePredictor"):
        export_tflite(predictor, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    export_tflite(predictor.model, tmp_path / "b")  # the way out works
    expected = keras.ops.convert_to_numpy(predictor.model(images[:2], training=False))
    got = load_tflite(tmp_path / "b").predict_proba(images[:2])
    np.testing.assert_allclose(got, expected, atol=1e-5)


BAD_TEXTS = [
    ([1, 2], TypeError, r"`inputs` must hold only strings, but item 0 is int"),
    (b"goal", TypeError, r"`inputs` must be a sequence of strings, not bytes; decode them"),
    (None, TypeError, r"`inputs` must be a sequence of strings. Received: inputs=None"),
    ([], ValueError, r"`inputs` must not be empty"),
    (["ok", None], ValueError, r"item 1 is NoneType \(missing value\)"),
    ({"a text"}, TypeError, r"`inputs` must be an ordered sequence"),
    (np.array([["a", "b"]]), ValueError, r"`inputs` must be 1-D"),
]


def test_text_export_refuses_bad_inputs_as_the_predictor_does(text_predictor, tmp_path):
    export_tflite(text_predictor, tmp_path / "f")
    export_tflite(text_predictor, tmp_path / "ids", include_tokenizer=False)
    runners = [load_tflite(tmp_path / "f"), load_tflite(tmp_path / "ids")]
    for inputs, error, match in BAD_TEXTS:
        for runner in runners:
            for method in (runner.predict, runner.predict_proba):
                with pytest.raises(error, match=match):
                    method(inputs)
        with pytest.raises(error):  # the predictor refuses them with the same kind of error
            text_predictor.predict(inputs)
    assert runners[0].predict(("red item",)) == text_predictor.predict(["red item"])


def test_model_export_refuses_texts_fractional_ids_and_wrong_shapes(token_data, transformer,
                                                                    tmp_path):
    x, _ = token_data
    export_tflite(transformer, tmp_path / "m")
    runner = load_tflite(tmp_path / "m")
    for inputs in (["goal"], "goal", b"goal", None, [["goal"] * 12]):
        with pytest.raises(TypeError, match="`inputs` must .*numbers"):
            runner.predict(inputs)
    fractional = x[:2].astype("float64")
    fractional[1, 3] = 2.7
    with pytest.raises(ValueError, match=r"`inputs` must hold whole numbers.*int32.*2\.7"):
        runner.predict(fractional)
    with pytest.raises(ValueError, match="`inputs` must not be empty"):
        runner.predict([])
    with pytest.raises(ValueError, match=r"`inputs` must have shape \('batch', 12\).*\(2,\)"):
        runner.predict([1, 2])
    with pytest.raises(ValueError, match=r"`inputs` must have shape .*\(1, 2\)"):
        runner.predict_proba([[1, 2]])
    # Whole-number floats are ids still, as Keras takes them.
    assert runner.predict(x[:4].astype("float64")) == runner.predict(x[:4])


def test_export_path_must_be_a_path(text_predictor, transformer, tmp_path):
    for export in (lambda path: export_tflite(text_predictor, path),
                   lambda path: export_tflite(transformer, path),
                   lambda path: text_predictor.export(path, format="tflite")):
        for path in (5, None, b"out"):
            with pytest.raises(TypeError, match="`path` must be a path .* Received: path of "
                                                "type"):
                export(path)
    with pytest.raises(TypeError, match="`path` must be a path"):
        load_tflite(5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("quantize, atol", [(None, 1e-4), ("dynamic", 0.02)])
def test_a_mixed_float16_model_exports_as_its_float32_copy(
    token_data, transformer, mixed_precision_copy, snapshot, tmp_path, quantize, atol
):
    x, y = token_data
    mixed = mixed_precision_copy(transformer, (x[:64], y[:64]), "mixed_float16")
    unchanged = snapshot(mixed)
    info = export_tflite(mixed, tmp_path / "m", quantize=quantize)
    unchanged()
    assert info.quantize == quantize
    got = load_tflite(tmp_path / "m").predict_proba(x[:32])
    # The .tflite graph is float32 with the mixed model's weights, which are the float32
    # model's: it predicts like the float32 model (1e-4 and 0.02 as for float32 exports
    # above), and like the mixed model up to its float16 rounding (10 mantissa bits; about
    # 3e-4 measured on these probabilities, 2e-3 allowed).
    np.testing.assert_allclose(got, run(transformer, x[:32]), atol=atol)
    np.testing.assert_allclose(got, run(mixed, x[:32]), atol=atol + 2e-3)


def test_a_mixed_bfloat16_predictor_exports_with_its_tokenizer_inside(
    text_setup, text_predictor, mixed_precision_copy, snapshot, tmp_path
):
    import ktlite

    trn, _, preproc, model = text_setup
    mixed = ktlite.get_predictor(mixed_precision_copy(model, trn, "mixed_bfloat16"), preproc)
    unchanged = snapshot(mixed.model)
    mixed.export(tmp_path / "t", format="tflite")
    unchanged()
    meta = json.loads((tmp_path / "t" / "tflite.json").read_text())
    assert meta["tokenizer_inside"] and meta["input"]["name"] == "texts"
    runner = load_tflite(tmp_path / "t")
    got = runner.predict_proba(TEXTS)
    # Float32 with the float32 model's weights: as the float32 export (1e-5); against the
    # mixed model bfloat16 rounding counts (8 mantissa bits, 4e-3 relative per op; 2e-3 to
    # 4e-3 measured on tiny models' probabilities, 0.02 allowed).
    np.testing.assert_allclose(got, text_predictor.predict_proba(TEXTS), atol=1e-5)
    np.testing.assert_allclose(got, mixed.predict_proba(TEXTS), atol=0.02)
    assert runner.predict(TEXTS) == text_predictor.predict(TEXTS)


def test_a_keras_quantized_mixed_model_is_refused_with_the_way_out(
    token_data, transformer, mixed_precision_copy, tmp_path
):
    x, y = token_data
    mixed = mixed_precision_copy(transformer, (x[:64], y[:64]), "mixed_bfloat16")
    # Keras' own quantization, which keeps the bfloat16 compute.
    mixed.quantize("int4", filters=lambda layer: type(layer) is keras.layers.Dense)
    with pytest.raises(ValueError, match=r"dtype policy .*bfloat16.*already quantized \(int4\)"
                                         r".*ktlite.compress.quantize_model"):
        export_tflite(mixed, tmp_path / "q")
    assert not (tmp_path / "q").exists()


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3, activation="softmax")

    def call(self, inputs):
        return self.dense(inputs)


def _two_layer_model():
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def _built_subclassed():
    model = _Subclassed(name="own")
    model(np.zeros((2, 8), "float32"))
    return model


def _two_outputs():
    inputs = keras.Input((8,))
    return keras.Model(inputs, {"a": keras.layers.Dense(3)(inputs),
                                "b": keras.layers.Dense(1)(inputs)})


@pytest.mark.parametrize(
    "make, kwargs, error, match",
    [
        (_built_subclassed, {}, ValueError,
         r"`model_or_predictor` must be a built functional or Sequential keras.Model.*"
         r"keras.Model\(inputs, model\(inputs\)\).*Received: a _Subclassed 'own' without "
         r"inputs"),
        (lambda: keras.Sequential([keras.layers.Dense(2)]), {}, ValueError,
         r"`model_or_predictor` must be a built .*Received: a Sequential .* without inputs"),
        (_two_outputs, {}, ValueError,
         r"`model_or_predictor` must have one output .*Received: a model with 2 outputs"),
        (_two_layer_model, {"include_tokenizer": True}, ValueError,
         r"`include_tokenizer=True` requires a text predictor.*Received: "
         r"include_tokenizer=True with a Functional"),
        (_two_layer_model,
         {"quantize": "int8", "representative_data": np.zeros((4, 5), "float32")}, ValueError,
         r"`representative_data` must be model inputs of shape \('batch', 8\). Received: an "
         r"array of shape \(4, 5\)"),
        (_two_layer_model, {"quantize": "int8", "representative_data": np.zeros(8, "float32")},
         ValueError, r"`representative_data` must be model inputs of shape \('batch', 8\)"),
        (_two_layer_model, {"quantize": "int8", "representative_data": ["a", "b"]}, TypeError,
         r"`representative_data` must hold numbers: inputs of the model, of dtype float32 and "
         r"shape \('batch', 8\). Received: an array of dtype <U1"),
        (_two_layer_model, {"quantize": "int8", "representative_data": [[1.0] * 8, [1.0]]},
         ValueError, r"`representative_data` must be an array of model inputs of one shape"),
    ],
)
def test_a_bare_model_export_refuses_what_it_cannot_take_before_converting(
    make, kwargs, error, match, tmp_path, monkeypatch
):
    from ktlite.compress import tflite_export

    def no_conversion(*args, **kwargs):
        raise AssertionError("the converter ran")

    monkeypatch.setattr(tflite_export, "_convert", no_conversion)
    with pytest.raises(error, match=match):
        export_tflite(make(), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_wrapped_subclassed_model_and_a_one_output_dict_model_export(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    own = _built_subclassed()
    inputs = keras.Input((8,))
    export_tflite(keras.Model(inputs, own(inputs)), tmp_path / "wrapped")  # the way out
    np.testing.assert_allclose(load_tflite(tmp_path / "wrapped").predict_proba(x), run(own, x),
                               atol=1e-5)
    one = keras.Model(inputs, {"probabilities": own(inputs)})
    export_tflite(one, tmp_path / "dict")
    np.testing.assert_allclose(load_tflite(tmp_path / "dict").predict_proba(x), run(own, x),
                               atol=1e-5)


def _user_text_model(preproc, width, activation, loss):
    keras.utils.set_random_seed(0)
    ids = keras.Input((preproc.maxlen,), dtype="int32")
    x = keras.layers.Embedding(preproc.vocab_size, 8, mask_zero=True)(ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, keras.layers.Dense(width, activation=activation)(x))
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.mark.parametrize("include_tokenizer", [None, False])
def test_a_logits_and_a_one_output_predictor_export_probabilities(text_setup, tmp_path,
                                                                  include_tokenizer):
    # The TFLite graph took the model's raw outputs: logits came back as probabilities, and
    # one sigmoid output over two classes could not be read at all.
    import ktlite
    from ktlite import text

    _, _, preproc, _ = text_setup
    logits = _user_text_model(preproc, 3, None, keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    predictor = ktlite.get_predictor(logits, preproc)
    export_tflite(predictor, tmp_path / "logits", include_tokenizer=include_tokenizer)
    proba = load_tflite(tmp_path / "logits").predict_proba(TEXTS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(proba, predictor.predict_proba(TEXTS), atol=1e-5)

    texts = [f"{w} item {i}" for i in range(20) for w in ("red", "blue")]
    _, _, two = text.texts_from_array(texts, [t.split()[0] for t in texts], val_pct=0.2,
                                      maxlen=8, vocab_size=60, verbose=0)
    binary = ktlite.get_predictor(
        _user_text_model(two, 1, "sigmoid", "binary_crossentropy"), two)
    export_tflite(binary, tmp_path / "binary", include_tokenizer=include_tokenizer)
    runner = load_tflite(tmp_path / "binary")
    np.testing.assert_allclose(runner.predict_proba(texts[:4]), binary.predict_proba(texts[:4]),
                               atol=1e-5)
    assert runner.predict(texts[:4]) == binary.predict(texts[:4])


def test_a_fallback_reason_reads_on_past_a_first_line_that_only_leads_to_it():
    from ktlite.compress.tflite_export import _reason

    # The calibrator's first line names no op; the next one does.
    error = RuntimeError("Failed to initialize op resolver for calibration:\n"
                         "There are unresolved custom ops: [NormalizeUTF8]\n\nmore")
    assert _reason(error) == ("RuntimeError: Failed to initialize op resolver for "
                              "calibration: There are unresolved custom ops: [NormalizeUTF8]")
    assert _reason(ValueError("one line\nsecond")) == "ValueError: one line"
    assert _reason(KeyError()) == "KeyError: "
