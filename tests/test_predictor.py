"""Tests for ktlite.predictor: the task registry, saving, loading and their refusals.

A tiny "toy" task (vectors of 4 floats, a dense softmax model) exercises the base class
without any text machinery, which also shows what a new task has to provide.
"""

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from folders import CRAFTED, assert_quotes_nothing_crafted, rehash
from ktlite import predictor as predictor_lib
from ktlite import saving
from ktlite.arguments import check_rate
from ktlite.classifier import ClassifierPredictor
from ktlite.compress import quantize_predictor
from ktlite.labels import LabelEncoder
from ktlite.predictor import get_predictor, load_predictor
from ktlite.validation import loss_from_logits

CLASSES = ["ant", "bee", "cat"]
# Saved folders only name classes under `ktlite.`; the toy task is made importable there.
TOY_MODULE = "ktlite.toy_task_for_tests"


class ToyPreprocessor:
    predictor_class = f"{TOY_MODULE}.ToyPredictor"

    def __init__(self, class_names=CLASSES, label_mode="multiclass", scale=2.0):
        outputs = 1 if class_names is None else len(class_names)
        self.labels = LabelEncoder(label_mode, class_names, outputs)
        self.scale = scale

    def save(self, folder):
        config = {"labels": self.labels.get_config(), "scale": self.scale}
        saving.write_json(Path(folder, "toy.json"), config)

    @classmethod
    def load(cls, folder):
        config = saving.read_json(Path(folder, "toy.json"))
        if not isinstance(config.get("scale"), float):
            raise ValueError("toy.json: `scale` must be a float")
        labels = config["labels"]
        return cls(labels["class_names"], labels["label_mode"], config["scale"])


class ToyPredictor(ClassifierPredictor):
    preprocessor_files = ("toy.json",)

    def _input_spec(self):
        return tf.TensorSpec((None, 4), tf.float32)

    def _transform(self, raw):
        return raw * self.preproc.scale

    def _as_batch(self, inputs):
        array = np.asarray(inputs, dtype="float32")
        if array.ndim == 1:
            return array[None], True
        if array.ndim != 2 or len(array) == 0:
            raise ValueError(f"`inputs` must be (n, 4). Received shape {array.shape}")
        return array, False

    @classmethod
    def _load_preprocessor(cls, folder):
        return ToyPreprocessor.load(folder)


class TunedToyPredictor(ToyPredictor):
    """A toy predictor with a setting its folder keeps, as a translator keeps `beam_width`."""

    def __init__(self, model, preproc, batch_size=32, threshold=0.5):
        super().__init__(model, preproc, batch_size=batch_size)
        self.threshold = check_rate(threshold, "threshold")

    def _settings(self):
        return {"threshold": self.threshold}


ToyPredictor.__module__ = TunedToyPredictor.__module__ = TOY_MODULE
sys.modules[TOY_MODULE] = sys.modules[__name__]


def toy_model(num_outputs=3, activation="softmax"):
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(num_outputs, activation=activation)(inputs))


@pytest.fixture
def toy():
    return get_predictor(toy_model(), ToyPreprocessor(), batch_size=4)


@pytest.fixture
def saved(toy, tmp_path):
    path = tmp_path / "pred"
    toy.save(path)
    return path


def siblings(folder):
    """What lies beside a saved folder, apart from the lock file savers share."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name != f".{folder.name}.lock")


X = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")


# ---------------------------------------------------------------- get_predictor
def test_get_predictor_picks_the_class_the_preprocessor_names(toy):
    assert isinstance(toy, ToyPredictor)
    assert ktlite.get_predictor is get_predictor


@pytest.mark.parametrize("path", ["os.system", "tests.ToyPredictor", "ktlite.nowhere.Thing",
                                  "ktlite.labels.LabelEncoder", 3])
def test_get_predictor_refuses_a_class_outside_ktlite_or_not_a_predictor(path):
    preproc = ToyPreprocessor()
    preproc.predictor_class = path
    with pytest.raises(ValueError, match="predictor_class"):
        get_predictor(toy_model(), preproc)


def test_get_predictor_refuses_non_model_and_preproc_without_task():
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        get_predictor("model.keras", ToyPreprocessor())
    with pytest.raises(TypeError, match="`preproc` must be a ktlite preprocessor"):
        get_predictor(toy_model(), object())


def test_a_preprocessor_without_fitted_labels_is_refused():
    preproc = ToyPreprocessor()
    preproc.labels = LabelEncoder()
    with pytest.raises(ValueError, match="must have fitted labels"):
        get_predictor(toy_model(), preproc)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                        (True, TypeError), ("32", TypeError), (None, TypeError)])
def test_batch_size_must_be_positive_int(bad, error):
    with pytest.raises(error, match=r"`batch_size` must be a positive int. Received"):
        get_predictor(toy_model(), ToyPreprocessor(), batch_size=bad)


def test_batch_size_setter_validates(toy):
    toy.batch_size = 7
    assert toy.batch_size == 7
    with pytest.raises(ValueError, match="batch_size=0"):
        toy.batch_size = 0


def test_model_outputs_must_match_the_class_count():
    with pytest.raises(ValueError, match="model has 2 outputs but the preprocessor has 3"):
        get_predictor(toy_model(num_outputs=2), ToyPreprocessor())


def test_predictor_module_does_not_import_task_packages():
    code = (
        "import sys, ktlite.predictor\n"
        "assert 'ktlite.text' not in sys.modules, sorted(m for m in sys.modules if 'ktlite' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------- prediction
def test_predict_single_and_batch(toy):
    probs = toy.model(X * 2.0).numpy()
    assert toy.predict(X[0]) == CLASSES[int(np.argmax(probs[0]))]
    assert toy.predict(X) == [CLASSES[i] for i in np.argmax(probs, axis=1)]
    np.testing.assert_allclose(toy.predict_proba(X), probs, atol=1e-6)
    np.testing.assert_allclose(toy.predict(X[0], return_proba=True), probs[0], atol=1e-6)
    assert toy.get_classes() == CLASSES


def test_predict_honours_batch_size_and_traces_once(toy):
    sizes = []
    forward = toy._forward_fn()
    concrete = toy._forward
    toy._forward = lambda raw: (sizes.append(int(raw.shape[0])), concrete(raw))[1]
    toy.predict(X)
    assert sizes == [4, 4, 2]
    toy.batch_size = 3
    sizes.clear()
    toy.predict(X)
    assert sizes == [3, 3, 3, 1]
    assert forward.experimental_get_tracing_count() == 1


def test_regression_predicts_floats_and_refuses_predict_proba():
    regressor = get_predictor(
        toy_model(1, None), ToyPreprocessor(class_names=None, label_mode="regression")
    )
    value = regressor.predict(X[0])
    assert isinstance(value, float)
    assert regressor.get_classes() == []
    with pytest.raises(ValueError, match="predict_proba` needs a classifier"):
        regressor.predict_proba(X)


def test_multilabel_predicts_every_class_with_its_probability():
    tagger = get_predictor(toy_model(3, "sigmoid"), ToyPreprocessor(label_mode="multilabel"))
    probs = tagger.predict_proba(X[:2])
    pairs = tagger.predict(X[:2])
    assert [[name for name, _ in row] for row in pairs] == [CLASSES, CLASSES]
    np.testing.assert_allclose([[p for _, p in row] for row in pairs], probs, atol=1e-6)


# ---------------------------------------------------------------- logits, one-output binary
def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def compiled(model, loss):
    model.compile("adam", loss)
    return model


def served(predictor, path):
    """The exported SavedModel's outputs for `X`."""
    predictor.export(path)
    out = tf.saved_model.load(str(path)).signatures["serving_default"](tf.constant(X))
    return out["probabilities"].numpy(), out["labels"].numpy().astype(str)


def test_a_model_compiled_on_logits_gives_softmax_probabilities_everywhere(tmp_path):
    model = compiled(toy_model(3, None), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    predictor = get_predictor(model, ToyPreprocessor(), batch_size=4)
    expected = softmax(model(X * 2.0).numpy())

    probs = predictor.predict_proba(X)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert predictor.predict(X) == [CLASSES[i] for i in expected.argmax(axis=1)]
    answer = predictor.json_response(predictor.predict_outputs(X), return_proba=True)
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-6)
    probabilities, labels = served(predictor, tmp_path / "sm")
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert labels.tolist() == predictor.predict(X)
    assert predictor.model_outputs == "logits"


def test_a_saved_logits_predictor_loads_uncompiled_and_still_gives_softmax(tmp_path):
    model = compiled(toy_model(3, None), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    get_predictor(model, ToyPreprocessor()).save(tmp_path / "pred")
    loaded = load_predictor(tmp_path / "pred")
    assert not loss_from_logits(loaded.model)  # loaded uncompiled: the folder says it
    expected = softmax(model(X * 2.0).numpy())
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    np.testing.assert_allclose(served(loaded, tmp_path / "sm")[0], expected, atol=1e-5)
    meta = json.loads((tmp_path / "pred" / "ktlite.json").read_text())
    assert meta["model_outputs"] == loaded.model_outputs == "logits"


def test_a_folder_without_model_outputs_loads_as_probabilities(tmp_path):
    model = compiled(toy_model(3, None), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    get_predictor(model, ToyPreprocessor()).save(tmp_path / "pred")
    meta = json.loads((tmp_path / "pred" / "ktlite.json").read_text())
    meta.pop("model_outputs", None)  # as folders saved before the field existed
    (tmp_path / "pred" / "ktlite.json").write_text(json.dumps(meta))
    loaded = load_predictor(tmp_path / "pred")
    assert loaded.model_outputs == "probabilities"
    with pytest.raises(RuntimeError, match="not probabilities.*model_outputs = 'logits'"):
        loaded.predict_proba(X)  # its logits, read as probabilities, are refused
    loaded.model_outputs = "logits"
    np.testing.assert_allclose(loaded.predict_proba(X), softmax(model(X * 2.0).numpy()),
                               atol=1e-6)


def test_multilabel_logits_decode_to_sigmoid_scores(tmp_path):
    model = compiled(toy_model(3, None), keras.losses.BinaryCrossentropy(from_logits=True))
    tagger = get_predictor(model, ToyPreprocessor(label_mode="multilabel"))
    expected = sigmoid(model(X * 2.0).numpy())
    scores = np.array([[p for _, p in row] for row in tagger.predict(X)])
    assert ((scores > 0) & (scores < 1)).all()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    np.testing.assert_allclose(served(tagger, tmp_path / "sm")[0], expected, atol=1e-5)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  keras.losses.SparseCategoricalCrossentropy(), None])
def test_a_probabilities_model_is_not_normalised_again(loss, tmp_path):
    model = toy_model(3, "softmax")
    if loss is not None:
        model.compile("adam", loss)
    predictor = get_predictor(model, ToyPreprocessor())
    expected = model(X * 2.0).numpy()
    np.testing.assert_allclose(predictor.predict_proba(X), expected, atol=1e-6)
    predictor.save(tmp_path / "pred")
    np.testing.assert_allclose(load_predictor(tmp_path / "pred").predict_proba(X), expected,
                               atol=1e-6)
    np.testing.assert_allclose(served(predictor, tmp_path / "sm")[0], expected, atol=1e-5)
    assert predictor.model_outputs == "probabilities"


def test_an_uncompiled_logits_model_is_read_as_probabilities_until_told():
    model = toy_model(3, None)
    predictor = get_predictor(model, ToyPreprocessor())
    raw = model(X * 2.0).numpy()
    assert raw.min() < 0 < 1 < raw.max()
    with pytest.raises(RuntimeError, match="not probabilities.*model_outputs = 'logits'"):
        predictor.predict_proba(X)
    predictor.model_outputs = "logits"
    np.testing.assert_allclose(predictor.predict_proba(X), softmax(raw), atol=1e-6)
    with pytest.raises(ValueError, match=r"`model_outputs` must be one of .*Received: "
                                         r"model_outputs='softmax'"):
        predictor.model_outputs = "softmax"
    with pytest.raises(TypeError, match="`model_outputs` must be one of"):
        predictor.model_outputs = True
    regressor = get_predictor(toy_model(1, None),
                              ToyPreprocessor(class_names=None, label_mode="regression"))
    assert regressor.model_outputs is None
    with pytest.raises(ValueError, match="`model_outputs` needs a classifier"):
        regressor.model_outputs = "logits"


@pytest.mark.parametrize("activation, loss, to_probability", [
    ("sigmoid", "binary_crossentropy", lambda out: out),
    ("sigmoid", keras.losses.BinaryCrossentropy(), lambda out: out),
    (None, keras.losses.BinaryCrossentropy(from_logits=True), sigmoid),
])
def test_one_sigmoid_output_over_two_classes_gives_one_minus_p_and_p(
    activation, loss, to_probability, tmp_path
):
    model = compiled(toy_model(1, activation), loss)
    predictor = get_predictor(model, ToyPreprocessor(class_names=["neg", "pos"]))
    positive = to_probability(model(X * 2.0).numpy())
    expected = np.concatenate([1 - positive, positive], axis=1)
    names = [["neg", "pos"][int(p > 0.5)] for p in positive[:, 0]]
    assert len(set(names)) == 2

    np.testing.assert_allclose(predictor.predict_proba(X), expected, atol=1e-6)
    assert predictor.predict(X) == names
    assert predictor.predict(X[0]) == names[0]
    answer = predictor.json_response(predictor.predict_outputs(X), return_proba=True)
    assert answer["predictions"] == names and answer["classes"] == ["neg", "pos"]
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-6)
    predictor.save(tmp_path / "pred")
    loaded = load_predictor(tmp_path / "pred")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    probabilities, labels = served(loaded, tmp_path / "sm")
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert labels.tolist() == names


@pytest.mark.parametrize("class_names, label_mode", [(CLASSES, "multiclass"),
                                                     (["a", "b"], "multilabel")])
def test_one_output_is_refused_unless_two_classes_exclude_each_other(class_names, label_mode):
    with pytest.raises(ValueError, match="model has 1 outputs but the preprocessor has"):
        get_predictor(toy_model(1, "sigmoid"), ToyPreprocessor(class_names, label_mode))


def test_quantize_keeps_reading_logits():
    model = compiled(toy_model(3, None), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    predictor = get_predictor(model, ToyPreprocessor())
    for small in (predictor.quantize("int8"), quantize_predictor(predictor, "int8")):
        np.testing.assert_allclose(small.predict_proba(X).sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(small.predict_proba(X), softmax(model(X * 2.0).numpy()),
                                   atol=0.05)
        assert small.model_outputs == "logits"


def test_json_response_decodes_through_the_label_encoder(toy):
    outputs = toy.predict_outputs(X[:3])
    answer = toy.json_response(outputs, return_proba=True)
    assert answer["predictions"] == toy.predict(X[:3])
    assert answer["classes"] == CLASSES
    np.testing.assert_allclose(answer["probabilities"], outputs, atol=1e-7)
    assert json.loads(json.dumps(answer)) == answer


# ---------------------------------------------------------------- save
def test_save_writes_the_documented_folder(saved, toy):
    assert sorted(os.listdir(saved)) == ["ktlite.json", "model.keras", "toy.json"]
    meta = json.loads((saved / "ktlite.json").read_text())
    assert meta["format"] == "ktlite-predictor"
    assert meta["format_version"] == predictor_lib.FORMAT_VERSION == 2
    assert meta["predictor"] == f"{TOY_MODULE}.ToyPredictor"
    assert meta["batch_size"] == 4
    assert meta["files"] == {name: saving.sha256_file(saved / name)
                             for name in ("model.keras", "toy.json")}
    assert set(meta["versions"]) == {"ktlite", "keras", "tensorflow"}
    assert meta["versions"]["keras"] == keras.__version__
    # Each fact once: the classes live in the preprocessor's file only.
    assert "class_names" not in json.dumps(meta) and "ant" not in json.dumps(meta)
    assert toy.metadata["classes"] == CLASSES


def test_save_load_round_trip(saved, toy):
    loaded = load_predictor(saved)
    assert isinstance(loaded, ToyPredictor)
    assert loaded.batch_size == 4
    np.testing.assert_allclose(loaded.predict_proba(X), toy.predict_proba(X), atol=1e-7)


def test_save_leaves_out_the_optimizer_state_and_keeps_the_users_optimizer(tmp_path):
    import zipfile

    import h5py

    model = toy_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(X, np.arange(10) % 3, epochs=2, verbose=0)
    optimizer, iterations = model.optimizer, int(model.optimizer.iterations)
    weights_at_save = model.get_weights()
    get_predictor(model, ToyPreprocessor()).save(tmp_path / "pred")
    with zipfile.ZipFile(tmp_path / "pred" / "model.keras") as archive:
        with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as weights:
            assert "optimizer" not in weights and "layers" in weights
    # The user's model still holds its optimizer, untouched, and keeps training.
    assert model.optimizer is optimizer and int(optimizer.iterations) == iterations
    model.fit(X, np.arange(10) % 3, epochs=1, verbose=0)
    assert int(optimizer.iterations) > iterations
    for loaded, expected in zip(load_predictor(tmp_path / "pred").model.get_weights(),
                                weights_at_save):
        np.testing.assert_array_equal(loaded, expected)


def test_save_replaces_an_existing_predictor(saved, toy):
    toy.batch_size = 9
    toy.save(saved)
    assert load_predictor(saved).batch_size == 9
    assert siblings(saved) == ["pred"]


def test_failed_save_leaves_existing_predictor_intact(saved, toy, monkeypatch):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def broken_save(model, filepath, **kwargs):
        Path(filepath).write_bytes(b"PK half a zip")  # a crash in the middle of writing
        raise OSError("disk full")

    monkeypatch.setattr(keras.saving, "save_model", broken_save)
    toy.batch_size = 9
    with pytest.raises(OSError, match="disk full"):
        toy.save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert siblings(saved) == ["pred"]  # no temp folder left
    assert load_predictor(saved).batch_size == 4


def test_failure_after_the_model_is_written_leaves_existing_predictor_intact(saved, monkeypatch):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    other = get_predictor(toy_model(), ToyPreprocessor(scale=3.0), batch_size=9)

    def broken_save(self, folder):
        Path(folder, "toy.json").write_text("{")
        raise OSError("no space left")

    monkeypatch.setattr(ToyPreprocessor, "save", broken_save)
    with pytest.raises(OSError, match="no space left"):
        other.save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before


def test_failed_swap_puts_the_old_predictor_back(saved, toy, monkeypatch):
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in os.fspath(src):
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(saving.os, "rename", rename)
    monkeypatch.setattr(saving, "_exchange", lambda a, b: False)
    toy.batch_size = 9
    with pytest.raises(OSError, match="rename failed"):
        toy.save(saved)
    assert load_predictor(saved).batch_size == 4
    assert siblings(saved) == ["pred"]


def test_save_refuses_a_folder_that_is_not_a_predictor(toy, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(FileExistsError, match="not empty and ktlite cannot prove it wrote"):
        toy.save(folder)
    assert os.listdir(folder) == ["holiday.jpg"]


def test_save_refuses_a_predictor_folder_holding_extra_files(saved, toy):
    (saved / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="cannot prove it wrote"):
        toy.save(saved)
    assert (saved / "notes.txt").read_text() == "mine"


def test_save_refuses_a_file_path(toy, tmp_path):
    file = tmp_path / "pred"
    file.write_text("x")
    with pytest.raises(FileExistsError, match="it is not a folder"):
        toy.save(file)


def test_save_accepts_an_empty_folder_and_creates_parents(toy, tmp_path):
    (tmp_path / "empty").mkdir()
    toy.save(tmp_path / "empty")
    toy.save(tmp_path / "a" / "b")
    assert load_predictor(tmp_path / "a" / "b").get_classes() == CLASSES
    assert load_predictor(tmp_path / "empty").get_classes() == CLASSES


# ---------------------------------------------------------------- load refusals
def edit_meta(folder, **changes):
    file = folder / "ktlite.json"
    meta = json.loads(file.read_text())
    meta.update(changes)
    file.write_text(json.dumps(meta))


def test_load_refuses_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="No predictor folder"):
        load_predictor(tmp_path / "nope")


@pytest.mark.parametrize("name", ["ktlite.json", "model.keras", "toy.json"])
def test_load_refuses_a_missing_file(saved, name):
    (saved / name).unlink()
    with pytest.raises(FileNotFoundError, match=name.replace(".", r"\.")):
        load_predictor(saved)


def test_load_refuses_invalid_json(saved):
    (saved / "ktlite.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"ktlite\.json is not valid UTF-8 JSON"):
        load_predictor(saved)


def test_load_refuses_a_json_array(saved):
    (saved / "ktlite.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"ktlite\.json must hold a JSON object"):
        load_predictor(saved)


@pytest.mark.parametrize("version", [3, 0, "2", 2.0, None])
def test_load_refuses_unknown_format_version(saved, version):
    edit_meta(saved, format_version=version)
    with pytest.raises(ValueError, match=r"unknown format_version.*reads versions 1 and 2"):
        load_predictor(saved)


def test_load_refuses_a_foreign_format(saved):
    edit_meta(saved, format="something-else")
    with pytest.raises(ValueError, match="not a ktlite predictor file"):
        load_predictor(saved)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", "32", "`batch_size` must be a positive int"),
        ("batch_size", 0, "`batch_size` must be a positive int"),
        ("predictor", "os.system", "dotted path under 'ktlite.'"),
        ("predictor", "ktlite.labels.LabelEncoder", "not a ktlite Predictor class"),
        ("predictor", "ktlite.crafted.Evil", "a predictor class this ktlite does not have"),
        ("predictor", "ktlite.predictor.Predictor", "a base Predictor class"),
        ("predictor", "ktlite.classifier.ClassifierPredictor", "a base Predictor class"),
        ("versions", "\x1b[2Jcrafted", "`versions` must map package names"),
        ("versions", {"ktlite": "crafted" * 1000}, "`versions` must map package names"),
        ("files", "model.keras", "`files` must map file names"),
        ("files", {"../../etc/passwd": "0" * 64, "model.keras": "0" * 64},
         "lists other files than a ToyPredictor folder holds"),
        ("files", {"a\x1b[2J": "0" * 64, "model.keras": "0" * 64}, "lists other files"),
        ("files", {"model.keras": "abc", "toy.json": "abc"}, "is malformed"),
        # A name is compared with the class's files before any message could quote it.
        ("files", {"crafted: call +1-555-0100": "abc", "model.keras": "0" * 64},
         "lists other files"),
        ("files", {"crafted: visit evil.example": "0" * 64, "model.keras": "0" * 64,
                   "toy.json": "0" * 64}, "lists other files"),
        ("model_outputs", "crafted", "`model_outputs` must be one of"),
        ("model_outputs", ["logits"], "`model_outputs` must be one of"),
    ],
)
def test_load_refuses_wrong_fields_in_the_manifest(saved, field, value, message):
    edit_meta(saved, **{field: value})
    with pytest.raises(ValueError, match=message) as refused:
        load_predictor(saved)
    assert "crafted" not in str(refused.value)


def test_load_quotes_nothing_from_a_manifest_that_failed_validation(saved):
    assert_quotes_nothing_crafted(lambda: load_predictor(saved), saved / "ktlite.json")


def test_load_refuses_a_manifest_listing_other_files_than_its_class_writes(saved):
    (saved / "extra.bin").write_bytes(b"x")
    meta = json.loads((saved / "ktlite.json").read_text())
    meta["files"]["extra.bin"] = saving.sha256_file(saved / "extra.bin")
    (saved / "ktlite.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="a ToyPredictor folder holds"):
        load_predictor(saved)


def test_load_refuses_a_preprocessor_file_changed_after_saving(saved):
    config = json.loads((saved / "toy.json").read_text())
    config["labels"]["class_names"] = ["ant", "bee", "dog"]
    (saved / "toy.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"toy\.json does not match the SHA-256"):
        load_predictor(saved)


def test_load_refuses_a_model_with_the_wrong_number_of_outputs(saved):
    keras.saving.save_model(toy_model(num_outputs=4), str(saved / "model.keras"))
    rehash(saved)
    with pytest.raises(ValueError, match="model has 4 outputs but the preprocessor has 3"):
        load_predictor(saved)


def test_a_folder_with_settings_blames_the_model_or_the_settings_whichever_is_wrong(tmp_path):
    folder = tmp_path / "tuned"
    TunedToyPredictor(toy_model(), ToyPreprocessor(), threshold=0.25).save(folder)
    assert load_predictor(folder).threshold == 0.25
    edit_meta(folder, settings={"threshold": 2.0})
    with pytest.raises(ValueError, match=r"ktlite\.json: its `settings` are not valid for a "
                                         r"TunedToyPredictor\.$"):
        load_predictor(folder)
    edit_meta(folder, settings={"threshold": 0.25})
    keras.saving.save_model(toy_model(num_outputs=4), str(folder / "model.keras"))
    rehash(folder)
    with pytest.raises(ValueError, match=r"^The predictor saved in \S+ is inconsistent: The "
                                         r"model has 4 outputs but the preprocessor has 3"):
        load_predictor(folder)


def test_load_refuses_a_damaged_model_file(saved):
    (saved / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    rehash(saved)
    with pytest.raises(ValueError, match=r"Could not load the Keras model .*model\.keras"):
        load_predictor(saved)


def _edit_config(config, where):
    if where == "class_name":
        config["config"]["layers"][-1]["class_name"] = CRAFTED
    elif where == "quoted_class_name":  # quotes inside the value, to pair with Keras' own
        config["config"]["layers"][-1]["class_name"] = f"x' {CRAFTED} 'y"
    else:  # a name Keras repeats without quotes
        config["config"]["output_layers"][0] = CRAFTED


@pytest.mark.parametrize("where", ["class_name", "quoted_class_name", "output_layer"])
def test_load_quotes_nothing_from_a_model_file_keras_cannot_rebuild(saved, where):
    with zipfile.ZipFile(saved / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    _edit_config(config, where)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(saved / "model.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    rehash(saved)
    with pytest.raises(ValueError, match=r"Could not load the Keras model .*model\.keras") as info:
        load_predictor(saved)
    assert "crafted" not in str(info.value)


def test_load_names_the_preprocessor_file_when_it_is_tampered(saved):
    config = json.loads((saved / "toy.json").read_text())
    (saved / "toy.json").write_text(json.dumps({**config, "scale": "2"}))
    rehash(saved)
    with pytest.raises(ValueError, match=r"Could not load the preprocessor from .*toy\.json"):
        load_predictor(saved)


def test_load_uses_keras_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: tf.nn.softmax(t[:, :3]))(inputs)
    unsafe = get_predictor(keras.Model(inputs, outputs), ToyPreprocessor())
    unsafe.save(tmp_path / "unsafe")
    refusal = r"Could not load the Keras model .*model\.keras: .*deserialization of a `Lambda`"
    with pytest.raises(ValueError, match=refusal + r".*arbitrary code execution.*safe_mode=False"):
        load_predictor(tmp_path / "unsafe")


@pytest.mark.parametrize("fmt", ["saved_model", "tflite"])
@pytest.mark.parametrize("path", [5, None, b"exported"])
def test_export_refuses_a_path_that_is_not_a_path_in_every_format(
    toy, tmp_path, fmt, path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"`path` must be a path \(str or os.PathLike\). "
                                        r"Received: path of type"):
        toy.export(path, format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_export_logs_no_line_naming_its_hidden_temporary_folder(toy, tmp_path, caplog):
    # In notebooks TensorFlow's logger shows INFO, where a SavedModel's writer names the
    # folder it writes before the rename.
    caplog.set_level(logging.INFO, logger="tensorflow")
    toy.export(tmp_path / "exported")
    assert not [r for r in caplog.records if "tmp" in r.getMessage()], caplog.text
    assert logging.getLogger("tensorflow").level == logging.INFO  # given back


def test_an_export_option_a_saved_model_does_not_take_is_refused_naming_those_it_takes(
    toy, tmp_path
):
    with pytest.raises(ValueError, match=r"^`quantize` is not an option of "
                                         r"ToyPredictor.export\(format='saved_model'\), which "
                                         r"takes `path`, `format`. TFLite's options .* "
                                         r"Received: quantize='int8'$"):
        toy.export(tmp_path / "x", quantize="int8")
    with pytest.raises(ValueError, match=r"^`beam_width`, `seed` are not options of .* "
                                         r"Received: beam_width=4, seed=1$"):
        toy.export(tmp_path / "x", seed=1, beam_width=4)
    assert list(tmp_path.iterdir()) == []
