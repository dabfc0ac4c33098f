"""Tests for ktlite.tabular.predictor.TabularPredictor: learning end to end, rows, files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import ktlite
from folders import rehash
from ktlite.tabular import (
    tabular_classifier,
    tabular_dataset,
    tabular_from_array,
    tabular_from_df,
    tabular_regressor,
)
from ktlite.tabular.predictor import TabularPredictor

ROWS = [{"x": 1.5, "city": "Rome", "noise": 4.0}, {"x": -1.5, "city": "Oslo", "noise": 6.0},
        {"x": 0.2, "city": "Lima", "noise": None}]


@pytest.fixture(scope="module")
def learned(table):
    trn, val, preproc = tabular_from_df(table(400, missing_every=11), "label",
                                        val_pct=0.25, verbose=0)
    model = tabular_classifier("ft_transformer", trn, preproc=preproc, verbose=0)
    learner = ktlite.get_learner(model, train_data=trn, val_data=val, verbose=0)
    learner.fit_onecycle(3e-3, 12, verbose=0)
    return learner, preproc


@pytest.fixture(scope="module")
def predictor(learned):
    learner, preproc = learned
    return ktlite.get_predictor(learner.model, preproc)


def test_a_short_fit_learns_the_planted_rule_and_the_report_names_the_classes(learned, capsys):
    learner, _ = learned
    cm = learner.validate()
    assert np.trace(cm) / cm.sum() > 0.85  # chance is about 0.5
    report = capsys.readouterr().out
    assert "yes" in report and "no" in report


def test_raw_rows_go_through_the_learner_as_the_loader_read_them(learned, table):
    # A DataFrame with its label column, as the user holds the test set.
    learner, preproc = learned
    test = table(120, seed=5, missing_every=7)
    raw = learner.validate(val_data=(test, test["label"]), print_report=False)
    expected = learner.validate(tabular_dataset(test, test["label"], preproc),
                                print_report=False)
    np.testing.assert_array_equal(raw, expected)
    assert np.trace(raw) / raw.sum() > 0.8
    np.testing.assert_allclose(learner.predict(test.iloc[:4]),
                               learner.predict(tabular_dataset(test.iloc[:4], None, preproc)),
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"`val_data` is read as raw tabular.*lacks the columns"):
        learner.validate(val_data=(test.drop(columns="city"), test["label"]))
    with pytest.raises(ValueError, match="one label per row. Received: 120 rows and 3 labels"):
        tabular_dataset(test, ["yes", "no", "yes"], preproc)


def test_view_top_losses_shows_rows_by_column_name(learned, capsys):
    learner, preproc = learned
    index = learner.view_top_losses(1, preproc=preproc)[0][0]
    out = capsys.readouterr().out
    row = preproc.example_text({k: v[index] for k, v in learner.val_data.x.items()})
    assert row.startswith("x=") and ", city=" in row and ", noise=" in row
    assert row in out and ("true: yes" in out or "true: no" in out)


def test_a_pandas_series_is_one_row(predictor, table):
    frame = table(5, seed=3)
    assert predictor.predict(frame.iloc[0]) == predictor.predict(frame.iloc[:1])[0]
    assert predictor.predict_proba(frame.iloc[1]).shape == (2,)


def test_rows_a_frame_and_an_array_give_the_same_answers(predictor):
    assert isinstance(predictor, TabularPredictor)
    labels = predictor.predict(ROWS)
    assert labels[:2] == ["yes", "no"]
    assert predictor.predict(ROWS[0]) == labels[0]
    frame = pd.DataFrame(ROWS).assign(label="ignored")
    assert predictor.predict(frame) == labels  # the label column is skipped
    # An array's columns are read in the training frame's order, not numeric-first.
    order = predictor.preproc.feature_order
    assert order == ["x", "city", "noise"] != predictor.preproc.columns
    array = np.array([[r[c] for c in order] for r in ROWS], dtype=object)
    np.testing.assert_allclose(predictor.predict_proba(array), predictor.predict_proba(ROWS))


def test_bad_rows_get_errors_naming_the_problem(predictor, table):
    with pytest.raises(ValueError, match=r"unknown columns \['zip'\] \(1 in all\)"):
        predictor.predict([{**ROWS[0], "zip": 1}])
    # The message stays short whatever was sent (a served 422 quotes it): each name cut to
    # 60 characters, ten names at most.
    long_name, many = "z" * 100_000, {f"c{i}": 1 for i in range(5_000)}
    for row in ({**ROWS[0], long_name: 1}, {**ROWS[0], **many}):
        with pytest.raises(ValueError, match="unknown columns") as caught:
            predictor.predict([row])
        assert len(str(caught.value)) < 400
    assert "(5000 in all)" in str(caught.value) and "'c9', ...]" in str(caught.value)
    with pytest.raises(ValueError, match=r"inputs\[1\]` lacks the columns \['city'\]"):
        predictor.predict([ROWS[0], {"x": 1.0, "noise": 2.0}])
    with pytest.raises(ValueError, match="at least one row"):
        predictor.predict([])
    with pytest.raises(ValueError, match="empty frame"):
        predictor.predict(table(4).iloc[:0])
    with pytest.raises(TypeError, match="dict row"):
        predictor.predict("Rome")
    with pytest.raises(ValueError, match=r"Column 'city' of `inputs` holds a lone surrogate .* "
                                         r"in row 1"):
        predictor.predict([ROWS[0], {**ROWS[0], "city": "Rom\udcff"}])
    frame = table(4)
    frame["city"] = [["Rome"]] * 4
    with pytest.raises(TypeError, match="Column 'city' of `inputs` must hold one value a cell"):
        predictor.predict(frame)  # as a dict row with a list is refused


def test_unseen_categories_and_missing_numbers_are_answered(predictor):
    paris, tokyo = ({"x": 0.1, "city": c, "noise": 5.0} for c in ("Paris", "Tokyo"))
    np.testing.assert_allclose(predictor.predict_proba(paris), predictor.predict_proba(tokyo))
    gap = predictor.predict_proba({"x": float("nan"), "city": "Rome", "noise": 5.0})
    none = predictor.predict_proba({"x": None, "city": "Rome", "noise": 5.0})
    np.testing.assert_allclose(gap, none)
    assert np.isfinite(gap).all()


def test_a_float32_category_predicts_alike_from_a_frame_a_dict_and_json():
    rng = np.random.default_rng(0)
    rate = rng.choice(np.array([0.1, 0.2, 0.7], dtype=np.float32), 200)
    frame = pd.DataFrame({"x": rng.normal(size=200).astype(np.float32),
                          "n": rng.integers(0, 5, 200), "rate": rate})
    labels = np.where(rate > 0.15, "a", "b")
    trn, val, preproc = tabular_from_array(frame, labels, categorical_columns=["rate"],
                                           verbose=0)
    assert sorted(preproc.categorical[0]["categories"]) == ["0.1", "0.2", "0.7"]
    model = tabular_classifier("mlp", trn, preproc=preproc, verbose=0)
    ktlite.get_learner(model, trn, val, verbose=0).fit_onecycle(3e-2, 3, verbose=0)
    predictor = ktlite.get_predictor(model, preproc)
    rows = [{"x": float(x), "n": int(n), "rate": round(float(r), 6)}  # 0.1, as a client sends
            for x, n, r in frame.head(6).itertuples(index=False)]
    expected = predictor.predict_proba(frame.head(6))
    np.testing.assert_allclose(predictor.predict_proba(rows), expected, atol=1e-6)
    sent = predictor.inputs_from_json(json.loads(json.dumps(rows)))
    np.testing.assert_allclose(predictor.predict_proba(sent), expected, atol=1e-6)


def test_save_load_keeps_the_answers_and_refuses_an_edited_file(predictor, tmp_path):
    predictor.save(tmp_path / "p")
    loaded = ktlite.load_predictor(tmp_path / "p")
    assert isinstance(loaded, TabularPredictor)
    np.testing.assert_allclose(loaded.predict_proba(ROWS), predictor.predict_proba(ROWS),
                               atol=1e-6)
    assert loaded.metadata["categorical_columns"] == ["city"]
    config = tmp_path / "p" / "preprocessor.json"
    config.write_text(config.read_text().replace('"Rome"', '"Roma"'))
    with pytest.raises(ValueError, match="preprocessor.json"):
        ktlite.load_predictor(tmp_path / "p")
    # A file of another task, hashes matching: the reason, and the file named once.
    config.write_text(json.dumps({**json.loads(config.read_text()), "task": "text"}))
    rehash(tmp_path / "p")
    with pytest.raises(ValueError, match=r"^Could not load the preprocessor from "
                                         r"\S*preprocessor\.json: The config is for another "
                                         r"task, not 'tabular'\.$"):
        ktlite.load_predictor(tmp_path / "p")


def test_a_model_from_another_table_is_refused(predictor, learned, table):
    _, preproc = learned
    trn, _, other = tabular_from_df(table(20)[["x", "label"]], "label", verbose=0)
    model = tabular_classifier("mlp", trn, preproc=other, verbose=0)
    with pytest.raises(ValueError, match="do not belong together"):
        ktlite.get_predictor(model, preproc)


@pytest.mark.parametrize("name", ["ft_transformer", "mlp"])
def test_a_model_trained_on_other_categories_is_refused(predictor, learned, table, name,
                                                        tmp_path):
    _, preproc = learned
    two_cities = table(60)
    trn, _, other = tabular_from_df(two_cities[two_cities.city != "Lima"], "label",
                                    val_pct=0.0, verbose=0)
    # Rome, Oslo, the missing city "" (the fixture's table has gaps) and the unknown id.
    assert other.category_sizes == [3] and preproc.category_sizes == [5]
    model = tabular_classifier(name, trn, preproc=other, verbose=0)
    message = (r"The model's layer 'feature_tokenizer' has 3 ids for the categorical column "
               r"'city' but the preprocessor encodes it with 5 \(4 categories and the unknown "
               r"id\); the model and preprocessor do not belong together\.")
    with pytest.raises(ValueError, match=f"^{message}$"):
        ktlite.get_predictor(model, preproc)
    # A folder whose model.keras comes from that model, hashes matching.
    predictor.save(tmp_path / "p")
    ktlite.get_predictor(model, other).save(tmp_path / "other")
    (tmp_path / "p" / "model.keras").write_bytes(
        (tmp_path / "other" / "model.keras").read_bytes())
    rehash(tmp_path / "p")
    with pytest.raises(ValueError, match=f"^The predictor saved in .* is inconsistent: {message}$"):
        ktlite.load_predictor(tmp_path / "p")


@pytest.mark.parametrize("items, message", [
    (3, "`inputs` must be a list of rows. Received: inputs of type int"),
    ({"x": 1}, "`inputs` must be a list of rows. Received: inputs of type dict"),
    (["Rome"], r"`inputs` must hold dict rows \(\{column: value\}\). Received: inputs\[0\] "
               "of type str"),
])
def test_json_inputs_of_a_wrong_type_are_a_type_error(predictor, items, message):
    with pytest.raises(TypeError, match=message):
        predictor.inputs_from_json(items)


def test_json_hooks_check_rows_and_describe_the_columns(predictor):
    assert predictor.inputs_from_json(ROWS) == ROWS
    with pytest.raises(ValueError, match=r"inputs\[0\]"):
        predictor.inputs_from_json([{"x": 1}])
    # The schema's values are scalars: an object is not read as an unknown category.
    nested = r"`inputs\[1\]` must map each column to one value .*a list or dict in .*'city'"
    with pytest.raises(TypeError, match=nested):
        predictor.inputs_from_json([ROWS[0], {**ROWS[1], "city": {"a": 1}}])
    with pytest.raises(TypeError, match=nested):  # the Python path alike
        predictor.predict([ROWS[0], {**ROWS[1], "city": ["Rome"]}])
    schema = predictor.json_input_schema()
    assert schema["required"] == ["x", "noise", "city"]
    answer = predictor.json_response(predictor.predict_outputs(ROWS), return_proba=True)
    assert answer["predictions"][:2] == ["yes", "no"] and answer["classes"] == ["no", "yes"]


def test_export_runs_in_a_process_without_ktlite(predictor, tmp_path):
    predictor.export(tmp_path / "exported")
    raw = predictor.preproc.raw_batch(predictor.preproc.to_columns(ROWS))
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf
        serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
        raw = json.loads(sys.argv[2])
        out = serve(numeric=tf.constant(np.array(raw["numeric"], "float32")),
                    categorical=tf.constant(raw["categorical"]))
        assert "ktlite" not in sys.modules, "the SavedModel pulled in ktlite"
        print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                          "labels": [s.decode() for s in out["labels"].numpy()]}))
        """
    )
    numeric = np.where(np.isnan(raw["numeric"]), None, raw["numeric"]).tolist()
    payload = {"numeric": [[np.nan if v is None else v for v in row] for row in numeric],
               "categorical": raw["categorical"].tolist()}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "exported"), json.dumps(payload)],
        capture_output=True, text=True, timeout=180,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["probabilities"], predictor.predict_proba(ROWS), atol=1e-5)
    assert out["labels"] == predictor.predict(ROWS)


def test_a_regressor_predicts_floats_and_exports_predictions(tmp_path, table):
    df = table(120)
    df["label"] = 10.0 + 3.0 * df["x"]
    trn, _, preproc = tabular_from_df(df, "label", verbose=0)
    model = tabular_regressor("mlp", trn, preproc=preproc, verbose=0)
    ktlite.get_learner(model, train_data=trn, verbose=0).fit_onecycle(3e-3, 8, verbose=0)
    predictor = ktlite.get_predictor(model, preproc)
    values = predictor.predict(ROWS)
    assert all(isinstance(v, float) for v in values)
    assert values[0] > values[1]  # x = 1.5 against x = -1.5
    with pytest.raises(ValueError, match="regression"):
        predictor.predict_proba(ROWS)
    predictor.save(tmp_path / "r")
    assert ktlite.load_predictor(tmp_path / "r").predict(ROWS) == pytest.approx(values, abs=1e-4)


def test_the_http_app_serves_rows(predictor):
    from fastapi.testclient import TestClient

    from ktlite.apps import APIApp

    with TestClient(APIApp(predictor)) as client:
        answer = client.post("/predict", json={"inputs": ROWS})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][:2] == ["yes", "no"]
        bad = client.post("/predict", json={"inputs": [{"x": 1}]})
        assert 400 <= bad.status_code < 500 and "city" in bad.text
