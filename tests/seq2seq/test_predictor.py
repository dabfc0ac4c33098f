"""Tests for TranslationPredictor: predict, save/load, SavedModel export, serving hooks."""

import json
import os
import subprocess
import sys

import pytest

import ktlite
from ktlite.seq2seq.predictor import TranslationPredictor

from seq2seq_corpora import task_pairs


@pytest.fixture(scope="module")
def predictor(translator):
    model, preproc = translator
    predictor = ktlite.get_predictor(model, preproc, batch_size=8)
    assert isinstance(predictor, TranslationPredictor)
    return predictor


def test_predict_returns_strings_for_a_string_and_a_list(predictor):
    sources, targets = task_pairs(20, seed=11)
    assert predictor.predict(sources) == targets
    assert predictor.predict(sources[0], beam_width=3) == targets[0]
    assert predictor.predict(["", sources[1]]) == ["", targets[1]]


def test_sampling_varies_per_row_and_keeps_a_bounded_set_of_graphs(predictor, monkeypatch):
    source = task_pairs(1, seed=15)[0][0]
    samples = predictor.predict([source] * 6, method="sample", temperature=5.0, seed=3)
    assert len(set(samples)) > 1  # one seed, yet each row draws its own tokens
    kept = 3  # the bound itself (8) would trace ten graphs: the rule is the same
    monkeypatch.setattr("ktlite.seq2seq.predictor._KEPT_FUNCTIONS", kept)
    for seed in range(kept + 2):
        predictor.predict(source, method="sample", seed=seed)
    assert len(predictor._functions) == kept
    newest = list(predictor._functions)[-1]
    assert (newest.method, newest.seed) == ("sample", kept + 1)


def test_a_sampling_option_alone_samples(predictor):
    source = task_pairs(1, seed=15)[0][0]
    assert predictor.predict([source] * 6, temperature=5.0, seed=3) == predictor.predict(
        [source] * 6, method="sample", temperature=5.0, seed=3)
    assert len(set(predictor.predict([source] * 6, temperature=5.0, seed=3))) > 1
    assert len(set(predictor.predict([source] * 6))) == 1  # greedy by default


def test_a_row_samples_the_same_text_in_any_batch(predictor):
    source = task_pairs(1, seed=15)[0][0]
    options = dict(method="sample", temperature=5.0, seed=4)
    rows = predictor.predict([source] * 20, **options)  # batches of 8: rows 0, 8, 16 ...
    assert len({rows[0], rows[8], rows[16]}) > 1  # ... differ from one batch to the next
    predictor.batch_size = 20
    try:
        assert predictor.predict([source] * 20, **options) == rows
    finally:
        predictor.batch_size = 8


def test_a_numpy_int_beam_width_runs_beam_search(predictor):
    import numpy as np

    source = task_pairs(1, seed=16)[0][0]
    predictor.predict(source, beam_width=np.int64(3))
    newest = list(predictor._functions)[-1]
    assert (newest.method, newest.beam_width, type(newest.beam_width)) == ("beam", 3, int)


def test_save_and_load_translate_the_same_and_detect_tampering(predictor, tmp_path):
    sources, _ = task_pairs(10, seed=12)
    predictor.save(tmp_path / "p")
    assert "pickle" not in " ".join(os.listdir(tmp_path / "p"))
    loaded = ktlite.load_predictor(tmp_path / "p")
    assert loaded.predict(sources) == predictor.predict(sources)
    manifest = json.loads((tmp_path / "p" / "ktlite.json").read_text())
    assert manifest["predictor"] == "ktlite.seq2seq.predictor.TranslationPredictor"
    # The serving options (what `ktlite serve` decodes with) survive the round trip.
    serving = TranslationPredictor(predictor.model, predictor.preproc, beam_width=3,
                                   max_length=5)
    serving.save(tmp_path / "s")
    described = ktlite.load_predictor(tmp_path / "s").describe()
    assert (described["serving_beam_width"], described["serving_max_length"]) == (3, 5)
    manifest_file = tmp_path / "s" / "ktlite.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["settings"]["beam_width"] = "<script>"
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="settings` are not valid") as caught:
        ktlite.load_predictor(tmp_path / "s")
    assert "<script>" not in str(caught.value)
    # A beam no memory holds (ktlite.json is not hashed): refused at load, not at serving.
    manifest["settings"]["beam_width"] = 10**9
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="settings` are not valid"):
        ktlite.load_predictor(tmp_path / "s")
    vocab = tmp_path / "p" / "source_vocab.txt"
    lines = vocab.read_text().split("\n")
    lines[6], lines[7] = lines[7], lines[6]
    vocab.write_text("\n".join(lines))
    with pytest.raises(ValueError, match="source_vocab.txt"):
        ktlite.load_predictor(tmp_path / "p")


PARITY = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
assert "ktlite" not in sys.modules
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(texts=tf.constant(json.loads(sys.argv[2])))["translations"].numpy()
assert serve(texts=tf.constant([], tf.string))["translations"].shape == (0,)  # empty batch
print(json.dumps([t.decode("utf-8") for t in out]))
assert "ktlite" not in sys.modules
"""


def test_exported_saved_model_translates_without_ktlite(predictor, tmp_path):
    sources = task_pairs(6, seed=13)[0] + [""]
    predictor.export(tmp_path / "exported", beam_width=2)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", PARITY, str(tmp_path / "exported"), json.dumps(sources)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == predictor.predict(
        sources, beam_width=2)


def test_json_hooks_round_trip(predictor):
    items = predictor.inputs_from_json(["copy a b"])
    response = predictor.json_response(predictor.predict_outputs(items))
    assert response == {"predictions": ["a b"]}
    assert predictor.json_input_schema()["type"] == "string"
    assert predictor.describe()["task"] == "seq2seq"
    with pytest.raises(ValueError, match="Item 1"):
        predictor.inputs_from_json(["a", 3])


def test_the_http_app_serves_translations_in_batches(predictor):
    import asyncio

    import httpx

    from ktlite.apps import APIApp

    app = APIApp(predictor, max_batch_size=8, max_wait_ms=20)
    sources, targets = task_pairs(6, seed=14)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            answers = await asyncio.gather(
                *(c.post("/predict", json={"inputs": [s]}) for s in sources))
            metadata = await c.get("/metadata")
            return answers, metadata

    answers, metadata = asyncio.run(main())
    assert [a.json()["predictions"] for a in answers] == [[t] for t in targets]
    assert metadata.json()["task"] == "seq2seq"


RELOAD = """
import sys
import keras
import ktlite.layers  # noqa: F401  (the layers)
import ktlite.seq2seq.losses  # noqa: F401  (the loss and metrics it was compiled with)
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
print(type(model.loss).__name__, [m.name for m in model.metrics])
"""


def test_a_saved_translation_model_reloads_compiled_with_the_documented_imports(
        translator, tmp_path):
    model, _ = translator
    model.save(tmp_path / "model.keras")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(tmp_path / "model.keras")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("MaskedSequenceCrossentropy")
