"""Tests for ktlite.text.predictor.TextPredictor: predict, save/load, tampering, export."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from corpora import planted_corpus, task_dataset
import tensorflow as tf

import ktlite
from folders import rehash
from ktlite.text import TextPreprocessor, text_classifier, text_regression_model
from ktlite.text.predictor import TextPredictor

TEXTS = ["a good film", "the plot was dull", "really superb actor", "awful", "", "ünïcode café"]


def corpus(n=120, seed=0):
    return planted_corpus(n, seed, filler_words=4)


@pytest.fixture(scope="module")
def trained():
    texts, labels = corpus()
    preproc = TextPreprocessor(maxlen=10, vocab_size=80).fit(texts, labels)
    trn = task_dataset(texts, labels, preproc)
    model = text_classifier("transformer", trn, preproc=preproc, embed_dim=16, num_heads=2,
                            num_layers=1, verbose=0)
    model.fit(preproc.preprocess(texts), trn.y, epochs=2, batch_size=32, verbose=0)
    return model, preproc


@pytest.fixture
def predictor(trained):
    model, preproc = trained
    return ktlite.get_predictor(model, preproc, batch_size=4)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "pred"
    ktlite.get_predictor(*trained, batch_size=4).save(path)
    return path


@pytest.fixture
def copy(saved, tmp_path):
    import shutil

    return shutil.copytree(saved, tmp_path / "copy")


def reference(predictor, texts):
    return predictor.model(predictor.preproc.preprocess(texts)).numpy()


# ---------------------------------------------------------------- predict
def test_get_predictor_returns_a_text_predictor(predictor):
    assert isinstance(predictor, TextPredictor)
    assert predictor.get_classes() == ["neg", "pos"]


def test_bare_string_gives_one_label_and_list_gives_list(predictor):
    probs = reference(predictor, TEXTS)
    labels = [["neg", "pos"][i] for i in probs.argmax(axis=1)]
    assert predictor.predict(TEXTS[0]) == labels[0]
    assert predictor.predict(TEXTS) == labels
    assert predictor.predict(tuple(TEXTS)) == labels
    assert predictor.predict(np.array(TEXTS, dtype=object)) == labels
    assert predictor.predict(np.array(TEXTS)) == labels  # fixed-width unicode array


def test_probabilities_match_the_model_on_preprocessed_ids(predictor):
    probs = reference(predictor, TEXTS)
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), probs, atol=1e-6)
    np.testing.assert_allclose(predictor.predict(TEXTS, return_proba=True), probs, atol=1e-6)
    single = predictor.predict_proba(TEXTS[1])
    assert single.shape == (2,)
    np.testing.assert_allclose(single, probs[1], atol=1e-6)


def test_batch_size_is_honoured_with_one_trace(predictor):
    sizes = []
    forward = predictor._forward_fn()
    predictor._forward = lambda raw: (sizes.append(int(raw.shape[0])), forward(raw))[1]
    predictor.predict(TEXTS)
    assert sizes == [4, 2]
    predictor.batch_size = 5
    predictor.predict(TEXTS * 2)
    assert sizes[2:] == [5, 5, 2]
    assert forward.experimental_get_tracing_count() == 1


def test_a_request_is_padded_per_batch_in_length_order_and_returned_in_its_order():
    texts, labels = corpus()
    preproc = TextPreprocessor(maxlen=48, vocab_size=80).fit(texts, labels)
    model = text_classifier("transformer", task_dataset(texts, labels, preproc),
                            preproc=preproc, embed_dim=16, num_heads=2, num_layers=1, verbose=0)
    predictor = ktlite.get_predictor(model, preproc, batch_size=3)
    request = [texts[0] * 4, texts[1], "", texts[2] * 9, texts[3], texts[4] * 2, texts[5]]
    batches = []
    forward = predictor._forward_fn()
    predictor._forward = lambda raw: (batches.append(raw.numpy().tolist()), forward(raw))[1]
    probs = predictor.predict_proba(request)
    full = np.asarray(model(preproc.preprocess(request), training=False))
    np.testing.assert_allclose(probs, full, atol=1e-5)
    alone = np.stack([predictor.predict_proba(text) for text in request])
    np.testing.assert_allclose(probs, alone, atol=1e-5)
    # Batches hold texts of similar length, shortest first.
    by_length = [t.encode() for t in sorted(request, key=len)]
    assert batches[:3] == [by_length[:3], by_length[3:6], by_length[6:]]
    assert forward.experimental_get_tracing_count() == 1


def _pooling_model(preproc, mask_zero):
    """Embedding -> mean over positions: padding counts in the mean unless it is masked."""
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(preproc.vocab_size, 8, mask_zero=mask_zero)(ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))


def _padding_warnings(caught):
    return [w for w in caught if "mask_zero=True" in str(w.message)]


@pytest.fixture(scope="module")
def long_texts():
    """Texts of 4 to 32 words and a preprocessor whose `maxlen` leaves room to bucket."""
    texts, labels = planted_corpus(60, 3, filler_words=3)
    texts = [" ".join([text] * (1 + i % 8)) for i, text in enumerate(texts)]
    return texts, TextPreprocessor(maxlen=64, vocab_size=80).fit(texts, labels)


def test_a_model_that_does_not_mask_padding_gives_a_text_the_same_result_in_any_batch(
    long_texts,
):
    texts, preproc = long_texts
    model = _pooling_model(preproc, mask_zero=False)
    predictor = ktlite.get_predictor(model, preproc, batch_size=4)
    request = texts[:12]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        together = predictor.predict_proba(request)
        alone = np.stack([predictor.predict_proba(text) for text in request])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    full = np.asarray(model(preproc.preprocess(request), training=False))
    np.testing.assert_allclose(together, full, atol=1e-6)
    assert predictor._transform(tf.constant(["a"])).shape[1] == preproc.maxlen
    assert len(_padding_warnings(caught)) == 1


@pytest.mark.parametrize("kind", ["mask_zero", "transformer"])
def test_a_model_that_masks_padding_is_padded_per_batch_without_a_warning(long_texts, kind):
    texts, preproc = long_texts
    if kind == "mask_zero":
        model = _pooling_model(preproc, mask_zero=True)
    else:
        data = task_dataset(texts, [["neg", "pos"][i % 2] for i in range(len(texts))], preproc)
        model = text_classifier("transformer", data, preproc=preproc, embed_dim=16,
                                num_heads=2, num_layers=1, verbose=0)
    predictor = ktlite.get_predictor(model, preproc, batch_size=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probs = predictor.predict_proba(texts[:12])
        width = predictor._transform(tf.constant(["a good film"])).shape[1]
    assert width == 16 < preproc.maxlen
    full = np.asarray(model(preproc.preprocess(texts[:12]), training=False))
    np.testing.assert_allclose(probs, full, atol=1e-5)
    assert not _padding_warnings(caught)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (None, TypeError, r"`inputs` must be a sequence of strings. Received: inputs=None"),
        (42, TypeError, "Received: inputs of type int"),
        ({"a": 1}, TypeError, "a dict has no order"),
        (np.array(3), TypeError, "Received: inputs of type int"),
        ([], ValueError, r"`inputs` must not be empty. Received: inputs with 0 texts"),
        (["ok", None], ValueError, r"item 1 is NoneType \(missing value\). Received: inputs\[1\]"),
        (["ok", 3], TypeError, r"item 1 is int. Received: inputs\[1\]=3"),
        ([b"bytes"], TypeError, r"item 0 is bytes. Received: inputs\[0\]=b'bytes'"),
        (np.array([["a", "b"]]), ValueError, r"must be 1-D .* Received: inputs with shape"),
    ],
)
def test_invalid_inputs_get_clear_errors(predictor, bad, error, message):
    with pytest.raises(error, match=message):
        predictor.predict(bad)
    with pytest.raises(error, match=message):
        predictor.predict_proba(bad)


def test_multilabel_gives_label_probability_pairs(tmp_path):
    texts, _ = corpus(seed=3)
    y = [[w for w in ("good", "film") if w in t.split()] or ["none"] for t in texts]
    preproc = TextPreprocessor(maxlen=10, vocab_size=80, label_mode="multilabel").fit(texts, y)
    model = text_classifier("fasttext", task_dataset(texts, y, preproc), preproc, embed_dim=8,
                            verbose=0)
    predictor = ktlite.get_predictor(model, preproc)
    pairs = predictor.predict(texts[0])
    probs = predictor.predict_proba(texts[0])
    assert [name for name, _ in pairs] == preproc.class_names
    np.testing.assert_allclose([p for _, p in pairs], probs, atol=1e-6)
    assert all(isinstance(p, float) for _, p in pairs)
    assert len(predictor.predict(texts[:3])) == 3
    predictor.export(tmp_path / "ml")
    out = tf.saved_model.load(str(tmp_path / "ml")).signatures["serving_default"](
        texts=tf.constant(texts[:3]))
    np.testing.assert_allclose(out["probabilities"].numpy(), predictor.predict_proba(texts[:3]),
                               atol=1e-5)
    assert out["labels"].numpy().astype(str).tolist() == [preproc.class_names] * 3


def test_regression_gives_floats(tmp_path):
    texts, _ = corpus(seed=4)
    y = [float(len(t)) for t in texts]
    preproc = TextPreprocessor(maxlen=10, vocab_size=80, label_mode="regression").fit(texts, y)
    model = text_regression_model("fasttext", task_dataset(texts, y, preproc), preproc, embed_dim=8,
                                  verbose=0)
    predictor = ktlite.get_predictor(model, preproc)
    value = predictor.predict(texts[0])
    assert isinstance(value, float)
    np.testing.assert_allclose(value, reference(predictor, texts[:1])[0, 0], atol=1e-5)
    assert predictor.get_classes() == []
    with pytest.raises(ValueError, match="needs a classifier"):
        predictor.predict(texts, return_proba=True)
    predictor.save(tmp_path / "reg")
    loaded = ktlite.load_predictor(tmp_path / "reg")
    assert loaded.predict(texts[:2]) == predictor.predict(texts[:2])
    predictor.export(tmp_path / "reg_export")
    out = tf.saved_model.load(str(tmp_path / "reg_export")).signatures["serving_default"](
        texts=tf.constant(texts[:2]))
    assert set(out) == {"predictions"}
    np.testing.assert_allclose(out["predictions"].numpy(), predictor.predict(texts[:2]), atol=1e-5)


def test_model_for_another_maxlen_or_vocabulary_is_refused(trained):
    model, preproc = trained
    other = TextPreprocessor(maxlen=12, vocab_size=80).fit(*corpus())
    with pytest.raises(ValueError, match=r"preproc.maxlen=12"):
        ktlite.get_predictor(model, other)
    bigger = TextPreprocessor(maxlen=10, vocab_size=200).fit(
        [t + " extra words here" for t in corpus()[0]] + ["zebra yak xylophone"] * 2,
        corpus()[1] + ["pos", "neg"],
    )
    assert bigger.vocab_size > preproc.vocab_size
    with pytest.raises(ValueError, match="token ids would fall outside the embedding"):
        ktlite.get_predictor(model, bigger)


def test_unfitted_preprocessor_is_refused(trained):
    unfitted = TextPreprocessor(maxlen=10).fit_labels(["neg", "pos"])
    with pytest.raises(ValueError, match="`preproc` must be a fitted TextPreprocessor.*unfitted"):
        ktlite.get_predictor(trained[0], unfitted)


def test_explain_delegates_to_the_explain_module(predictor, monkeypatch):
    import ktlite.text.explain as explain_module

    calls = []
    monkeypatch.setattr(explain_module, "explain", lambda *a, **k: calls.append((a, k)) or "ok")
    assert predictor.explain("a good film", top_k=3) == "ok"
    assert predictor.explain("a good film", target=1) == "ok"
    assert calls == [
        ((predictor, "a good film"), {"top_k": 3, "as_html": False, "target": None}),
        ((predictor, "a good film"), {"top_k": 10, "as_html": False, "target": 1}),
    ]


# ---------------------------------------------------------------- save / load
def test_saved_folder_holds_the_documented_files(saved):
    assert sorted(p.name for p in saved.iterdir()) == [
        "ktlite.json", "model.keras", "preprocessor.json", "vocab.txt"]
    meta = json.loads((saved / "ktlite.json").read_text())
    assert meta["predictor"] == "ktlite.text.predictor.TextPredictor"
    assert meta["batch_size"] == 4
    assert sorted(meta["files"]) == ["model.keras", "preprocessor.json", "vocab.txt"]
    config = json.loads((saved / "preprocessor.json").read_text())
    assert config["class_names"] == ["neg", "pos"] and config["maxlen"] == 10


def test_a_version_1_folder_saved_by_ktlite_0_1_still_loads():
    data = Path(__file__).parent.parent / "data"
    expected = json.loads((data / "v1_text_predictor_expected.json").read_text())
    loaded = ktlite.load_predictor(data / "v1_text_predictor")
    assert isinstance(loaded, TextPredictor)
    assert loaded.predict(expected["texts"]) == expected["labels"]
    np.testing.assert_allclose(loaded.predict_proba(expected["texts"]),
                               expected["probabilities"], atol=1e-6)


def test_a_vocabulary_with_two_tokens_swapped_is_refused_naming_the_file(copy, predictor):
    lines = (copy / "vocab.txt").read_text().splitlines()
    lines[-1], lines[-2] = lines[-2], lines[-1]  # still a valid vocabulary, but wrong ids
    (copy / "vocab.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"vocab\.txt does not match the SHA-256"):
        ktlite.load_predictor(copy)


def test_load_round_trip_gives_identical_predictions(saved, predictor):
    loaded = ktlite.load_predictor(saved)
    assert isinstance(loaded, TextPredictor)
    assert loaded.metadata == predictor.metadata
    assert loaded.metadata["maxlen"] == 10 and loaded.metadata["classes"] == ["neg", "pos"]
    assert predictor.metadata["vocab_size"] == loaded.preproc.vocab_size
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), predictor.predict_proba(TEXTS),
                               atol=1e-6)
    assert loaded.predict(TEXTS) == predictor.predict(TEXTS)


def test_failed_save_keeps_the_previous_text_predictor(copy, predictor, monkeypatch):
    before = {p.name: p.read_bytes() for p in copy.iterdir()}

    def broken_save(model, filepath, **kwargs):
        with open(filepath, "wb") as fh:  # a crash in the middle of writing
            fh.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(keras.saving, "save_model", broken_save)
    with pytest.raises(OSError, match="disk full"):
        predictor.save(copy)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_vocab_with_a_token_removed_is_refused(copy):
    lines = (copy / "vocab.txt").read_text().splitlines()
    (copy / "vocab.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"vocab\.txt.*(does not match|vocab_size)"):
        ktlite.load_predictor(copy)


def test_vocab_and_config_edited_together_are_refused(copy):
    lines = (copy / "vocab.txt").read_text().splitlines()
    (copy / "vocab.txt").write_text("\n".join(lines + ["zzzextra"]) + "\n")
    config = json.loads((copy / "preprocessor.json").read_text())
    config["vocab_size"] += 1
    (copy / "preprocessor.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not match the SHA-256"):
        ktlite.load_predictor(copy)


@pytest.mark.parametrize("field, value", [("maxlen", "10"), ("lowercase", "yes"),
                                          ("class_names", "neg")])
def test_preprocessor_config_with_wrong_types_is_refused(copy, field, value):
    config = json.loads((copy / "preprocessor.json").read_text())
    config[field] = value
    (copy / "preprocessor.json").write_text(json.dumps(config))
    rehash(copy)
    with pytest.raises(ValueError, match=r"preprocessor\.json"):
        ktlite.load_predictor(copy)


def test_unparseable_preprocessor_config_is_refused(copy):
    (copy / "preprocessor.json").write_text("{")
    rehash(copy)
    with pytest.raises(ValueError, match=r"preprocessor\.json"):
        ktlite.load_predictor(copy)


def test_a_manifest_naming_another_predictor_class_is_refused(copy):
    meta = json.loads((copy / "ktlite.json").read_text())
    meta["predictor"] = "ktlite.tabular.predictor.TabularPredictor"
    (copy / "ktlite.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="a TabularPredictor folder holds"):
        ktlite.load_predictor(copy)
    meta["predictor"] = "ktlite.predictor.Predictor"
    (copy / "ktlite.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="a base Predictor class"):
        ktlite.load_predictor(copy)


def test_class_count_not_matching_the_model_is_refused(copy):
    config = json.loads((copy / "preprocessor.json").read_text())
    config["class_names"], config["num_outputs"] = ["neg", "pos", "meh"], 3
    (copy / "preprocessor.json").write_text(json.dumps(config))
    rehash(copy)
    with pytest.raises(ValueError, match="model has 2 outputs but the preprocessor has 3"):
        ktlite.load_predictor(copy)


# ---------------------------------------------------------------- export
def test_export_runs_in_a_process_without_ktlite(predictor, tmp_path):
    predictor.export(tmp_path / "exported")
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
        serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
        out = serve(texts=tf.constant(json.loads(sys.argv[2])))
        assert "ktlite" not in sys.modules, "the SavedModel pulled in ktlite"
        print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                          "labels": [s.decode() for s in out["labels"].numpy()]}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "exported"), json.dumps(TEXTS)],
        capture_output=True, text=True, timeout=180,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
             "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["probabilities"], predictor.predict_proba(TEXTS), atol=1e-5)
    assert out["labels"] == predictor.predict(TEXTS)
    predictor.export(tmp_path / "exported")  # replacing an earlier export is allowed


def test_export_refuses_a_non_empty_folder_and_unknown_formats(predictor, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="cannot prove it wrote"):
        predictor.export(tmp_path)
    with pytest.raises(ValueError, match="format='onnx'"):
        predictor.export(tmp_path / "x", format="onnx")


def test_export_replaces_only_a_savedmodel_it_wrote_itself(predictor, tmp_path):
    lookalike = tmp_path / "sm"  # SavedModel names, user files inside
    (lookalike / "assets").mkdir(parents=True)
    (lookalike / "variables").mkdir()
    (lookalike / "saved_model.pb").write_bytes(b"junk")
    (lookalike / "assets" / "thesis.docx").write_text("mine")
    with pytest.raises(FileExistsError, match="cannot prove it wrote"):
        predictor.export(lookalike)
    assert (lookalike / "assets" / "thesis.docx").read_text() == "mine"
    predictor.export(tmp_path / "ours")
    assert (tmp_path / "ours" / "assets.extra" / "ktlite_export.json").is_file()
    (tmp_path / "ours" / "variables" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="cannot prove it wrote"):
        predictor.export(tmp_path / "ours")


def test_a_symlinked_vocabulary_is_refused_and_its_target_never_quoted(copy, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text((copy / "vocab.txt").read_text().replace("[UNK]", "TOP-SECRET", 1))
    (copy / "vocab.txt").unlink()
    (copy / "vocab.txt").symlink_to(outside)
    meta = json.loads((copy / "ktlite.json").read_text())
    meta["files"]["vocab.txt"] = hashlib.sha256(outside.read_bytes()).hexdigest()
    (copy / "ktlite.json").write_text(json.dumps(meta))  # even a manifest matching the target
    with pytest.raises(ValueError, match=r"vocab\.txt is a symbolic link") as info:
        ktlite.load_predictor(copy)
    assert "TOP-SECRET" not in str(info.value)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\ud800"])
def test_a_vocabulary_token_with_a_control_character_is_refused_at_load(copy, char):
    lines = (copy / "vocab.txt").read_text().splitlines()
    lines[-1] = f"bad{char}token"
    (copy / "vocab.txt").write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    rehash(copy)
    with pytest.raises(ValueError, match=r"control characters|not valid UTF-8") as info:
        ktlite.load_predictor(copy)
    assert "bad" not in str(info.value).split("Received")[-1]


def test_a_model_with_non_finite_weights_is_refused_naming_the_weight(copy, trained):
    model = keras.models.clone_model(trained[0])
    model.set_weights(trained[0].get_weights())
    head = model.layers[-1]
    head.kernel.assign(np.full(head.kernel.shape, np.nan, "float32"))
    keras.saving.save_model(model, str(copy / "model.keras"))
    rehash(copy)
    with pytest.raises(ValueError, match=rf"the weight '{head.name}/kernel' holds NaN"):
        ktlite.load_predictor(copy)


def test_saved_files_share_the_process_umask(predictor, tmp_path):
    old = os.umask(0o022)
    try:
        predictor.save(tmp_path / "p")
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "p").iterdir()}
    assert set(modes.values()) == {"0o644"}, modes


def test_a_lone_surrogate_is_refused_naming_its_position(predictor):
    with pytest.raises(ValueError, match=r"item 1 holds a lone surrogate.*inputs\[1\]"):
        predictor.predict(["a fine text", "x\udc00y"])
    with pytest.raises(ValueError, match=r"item 0 holds a lone surrogate.*inputs\[0\]"):
        predictor.predict("\ud800")


def test_repeated_class_names_in_a_file_are_not_quoted():
    from ktlite import saving
    from ktlite.labels import check_class_names

    with pytest.raises(ValueError) as refused:
        check_class_names(["\x1b[2Jcrafted", "\x1b[2Jcrafted"])
    message = str(saving.invalid_file("f.json", "TextPreprocessor", refused.value))
    assert "must not repeat a name" in message and "crafted" not in message


def test_return_proba_must_be_a_bool(predictor):
    # A truthy string such as "no" would otherwise ask for probabilities.
    with pytest.raises(TypeError, match="`return_proba` must be True or False. Received: "
                                        "return_proba='no'"):
        predictor.predict("a fine text", return_proba="no")


def test_save_and_export_name_a_path_that_is_no_path(predictor):
    with pytest.raises(TypeError, match="`path` must be a path .* Received: path of type int"):
        predictor.save(5)
    with pytest.raises(TypeError, match="`path` must be a path .* of type NoneType"):
        predictor.export(None)
