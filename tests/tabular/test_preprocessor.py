"""Tests for ktlite.tabular.preprocessor.TabularPreprocessor: transform, checks, files."""

import json

import numpy as np
import pytest
import tensorflow as tf

from folders import assert_quotes_nothing_crafted
from ktlite.tabular import TabularPreprocessor, tabular_from_df


@pytest.fixture(scope="module")
def preproc(table):
    return tabular_from_df(table(120), "label", verbose=0)[2]


def transform(preproc, rows):
    raw = preproc.raw_batch(preproc.to_columns(rows))
    return {k: v.numpy() for k, v in preproc.transform(raw).items()}


def test_numbers_are_standardized_and_nan_is_the_mean_with_a_flag(preproc):
    mean, std = preproc.numeric[0]["mean"], preproc.numeric[0]["std"]
    out = transform(preproc, [{"x": mean + 2 * std, "city": "Rome", "noise": 5.0},
                              {"x": None, "city": "Rome", "noise": float("nan")}])
    np.testing.assert_allclose(out["numeric"][0, 0], 2.0, rtol=1e-5)
    np.testing.assert_array_equal(out["numeric"][1], [0.0, 0.0])
    np.testing.assert_array_equal(out["missing"], [[0, 0], [1, 1]])


def test_unseen_and_missing_categories_go_to_the_unknown_bucket(preproc):
    known = preproc.categorical[0]["categories"]
    out = transform(preproc, [{"x": 0, "noise": 0, "city": c} for c in [known[1], "Paris", None]])
    np.testing.assert_array_equal(out["categorical"][:, 0], [2, 0, 0])


def test_column_checks_name_missing_and_unknown_columns_and_skip_the_label(preproc, table):
    with pytest.raises(ValueError, match=r"lacks the columns \['noise'\]"):
        preproc.to_columns([{"x": 1, "city": "Rome"}])
    with pytest.raises(ValueError, match=r"unknown columns \['zip'\]"):
        preproc.to_columns([{"x": 1, "city": "Rome", "noise": 0, "zip": 3}])
    cols = preproc.to_columns([{"x": 1, "city": "Rome", "noise": 0, "label": "yes"}])
    assert list(cols) == ["x", "noise", "city"]
    with pytest.raises(ValueError, match="at least one row"):
        preproc.to_columns(table(5).iloc[:0])
    with pytest.raises(ValueError, match=r"Column 'x' .* row 1 holds 'abc'"):
        preproc.raw_batch(preproc.to_columns(
            [{"x": 1, "city": "Rome", "noise": 0}, {"x": "abc", "city": "Rome", "noise": 0}]))
    with pytest.raises(ValueError, match="infinite"):
        preproc.raw_batch({"x": [np.inf], "noise": [0.0], "city": ["Rome"]})
    with pytest.raises(TypeError, match=r"inputs\[0\]"):
        preproc.to_columns(["x=1"])


def test_transform_traces_in_a_tf_function_with_any_batch_size(preproc):
    spec = {"numeric": tf.TensorSpec((None, 2), tf.float32),
            "categorical": tf.TensorSpec((None, 1), tf.string)}
    fn = tf.function(preproc.transform, input_signature=[spec])
    for n in (1, 5):
        out = fn({"numeric": tf.zeros((n, 2)), "categorical": tf.fill((n, 1), "Rome")})
        assert out["categorical"].shape == (n, 1) and out["categorical"].dtype == tf.int32


def test_save_and_load_give_the_same_transform(preproc, tmp_path):
    preproc.save(tmp_path)
    again = TabularPreprocessor.load(tmp_path)
    rows = [{"x": 0.3, "city": "Lima", "noise": None}, {"x": -1, "city": "Tokyo", "noise": 2}]
    first, second = transform(preproc, rows), transform(again, rows)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert again.class_names == preproc.class_names
    assert again.dropped_columns == ["label"]
    assert again.feature_order == preproc.feature_order == ["x", "city", "noise"]
    # A file from before `feature_order` reads arrays numeric first, as it was written for.
    config = json.loads((tmp_path / "preprocessor.json").read_text())
    del config["feature_order"]
    assert TabularPreprocessor.from_config(config).feature_order == ["x", "noise", "city"]
    config["feature_order"] = ["x", "x", "city"]
    with pytest.raises(ValueError, match="`feature_order` must list every feature column"):
        TabularPreprocessor.from_config(config)


def test_fit_and_raw_batch_check_their_inputs():
    import pandas as pd

    with pytest.raises(ValueError, match="same rows. Received: 3 rows and 2 labels"):
        TabularPreprocessor().fit({"a": [1, 2, 3]}, [0, 1])
    with pytest.raises(ValueError, match=r"one length. Received: lengths \[1, 3\]"):
        TabularPreprocessor().fit({"a": [1, 2, 3], "b": ["x"]}, [0, 1, 0])
    fitted = TabularPreprocessor().fit(pd.DataFrame({"a": [1.0, 2, 3, 4], "b": list("xyxy")}),
                                       [0, 1, 0, 1])
    assert fitted.numeric_columns == ["a"] and fitted.categorical_columns == ["b"]
    with pytest.raises(ValueError, match=r"`inputs` lacks the columns \['b'\]"):
        fitted.raw_batch({"a": [1.0]})
    assert fitted.to_columns({"a": 1, "b": "x"}) == {"a": [1], "b": ["x"]}  # one dict row


def test_dates_and_huge_numbers_are_read_alike_from_any_source(table):
    import datetime

    import pandas as pd

    df = table(60).assign(day=pd.to_datetime(["2020-01-02", "2020-01-03"] * 30))
    df.loc[5, "day"] = pd.NaT
    trn, _, preproc = tabular_from_df(df, "label", verbose=0)
    day = next(c for c in preproc.categorical if c["name"] == "day")
    assert set(day["categories"]) == {"2020-01-02", "2020-01-03", ""}  # NaT is missing
    base = {"x": 0.1, "city": "Rome", "noise": 1.0}
    days = ("2020-01-03", np.datetime64("2020-01-03"), datetime.date(2020, 1, 3),
            pd.Timestamp("2020-01-03"))
    rows = [{**base, "day": v} for v in days]
    ids = transform(preproc, rows)["categorical"][:, preproc.categorical_columns.index("day")]
    assert len(set(ids.tolist())) == 1 and ids[0] != 0  # one known category, not unknown
    with pytest.raises(ValueError, match="beyond float32"):
        transform(preproc, [{**base, "x": 10**400, "day": "2020-01-03"}])


def test_time_zone_dates_are_categories_in_iso_form_that_a_json_row_meets(table):
    import datetime

    import pandas as pd

    df = table(60).assign(when=pd.date_range("2020-01-01", periods=60, freq="D", tz="UTC"))
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    when = next(c for c in preproc.categorical if c["name"] == "when")
    assert "2020-01-03T00:00:00+00:00" in when["categories"]
    base = {"x": 0.1, "city": "Rome", "noise": 1.0}
    sent = ("2020-01-03T00:00:00+00:00", pd.Timestamp("2020-01-03", tz="UTC"),
            datetime.datetime(2020, 1, 3, tzinfo=datetime.timezone.utc))
    ids = transform(preproc, [{**base, "when": v} for v in sent])
    ids = ids["categorical"][:, preproc.categorical_columns.index("when")]
    assert len(set(ids.tolist())) == 1 and ids[0] != 0  # one known category, not unknown
    # A preprocessor saved by an older ktlite wrote them as str() does: read in ISO form.
    config = preproc.get_config()
    del config["category_form"]
    for column in config["categorical"]:
        column["categories"] = [c.replace("T", " ", 1) if c.startswith("2020") else c
                                for c in column["categories"]]
    older = type(preproc).from_config(config)
    np.testing.assert_array_equal(transform(older, [{**base, "when": sent[1]}])["categorical"],
                                  transform(preproc, [{**base, "when": sent[1]}])["categorical"])


def test_a_saved_text_category_that_reads_as_a_date_is_loaded_as_written(table):
    # Every category was rewritten at load as if an older ktlite had saved a date: a CSV
    # column of "2020-01-02 10:30:00+00:00" texts became unknown, and one holding both
    # spellings loaded a category twice and failed every prediction.
    spaced, iso = "2020-01-02 10:30:00+00:00", "2020-01-02T10:30:00+00:00"
    df = table(60).assign(when=[spaced, iso, "2020-01-03 10:30:00+00:00"] * 20)
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    loaded = TabularPreprocessor.from_config(json.loads(json.dumps(preproc.get_config())))
    assert loaded.categorical == preproc.categorical
    rows = df.drop(columns="label").head(3)
    ids = transform(loaded, rows)["categorical"][:, loaded.categorical_columns.index("when")]
    np.testing.assert_array_equal(ids, transform(preproc, rows)["categorical"][
        :, preproc.categorical_columns.index("when")])
    assert len(set(ids.tolist())) == 3 and 0 not in ids


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_fractions_of_a_second_are_known_alike_whatever_the_unit(table, unit):
    # A millisecond or nanosecond column's categories had all of its unit's digits, which
    # a pandas Timestamp in a dict row or a JSON date string did not meet: unknown.
    import datetime

    import pandas as pd

    stamps = pd.to_datetime("2020-01-02 10:30:00") + pd.to_timedelta(
        np.arange(60) % 3 * 250, unit="ms")
    df = table(60).assign(when=stamps.astype(f"datetime64[{unit}]"))
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    when = next(c for c in preproc.categorical if c["name"] == "when")
    assert "2020-01-02T10:30:00.250" in when["categories"]
    base = {"x": 0.1, "city": "Rome", "noise": 1.0}
    sent = ("2020-01-02T10:30:00.250", pd.Timestamp("2020-01-02 10:30:00.25"),
            datetime.datetime(2020, 1, 2, 10, 30, 0, 250000), np.datetime64(stamps[1], "ns"))
    ids = transform(preproc, [{**base, "when": v} for v in sent])
    ids = ids["categorical"][:, preproc.categorical_columns.index("when")]
    assert len(set(ids.tolist())) == 1 and ids[0] != 0  # one known category, not unknown
    # A file saved before wrote the unit's digits: read in today's form, unless that form
    # is already another category.
    config = preproc.get_config()
    del config["category_form"]
    column = next(c for c in config["categorical"] if c["name"] == "when")
    column["categories"] = [c.replace(".250", ".250000000") for c in column["categories"]]
    older = TabularPreprocessor.from_config(config)
    assert older.categorical == preproc.categorical
    column["categories"].append("2020-01-02T10:30:00.250")
    kept = next(c for c in TabularPreprocessor.from_config(config).categorical
                if c["name"] == "when")["categories"]
    assert "2020-01-02T10:30:00.250000000" in kept and len(set(kept)) == len(kept)


def test_dict_rows_name_columns_as_a_frame_does_numbers_as_text(table):
    df = table(60).assign(**{"7": np.arange(60.0)}).rename(columns={"7": 7})
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    rows = df.drop(columns="label").head(3).to_dict("records")  # key 7, an int
    assert preproc.to_columns(rows)["7"] == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(transform(preproc, rows)["numeric"],
                                  transform(preproc, df.head(3))["numeric"])
    with pytest.raises(ValueError, match=r"`inputs\[0\]` names a column twice .*\['7'\]"):
        preproc.to_columns([{**rows[0], "7": 1.0}])


def test_a_float32_category_is_known_by_its_shortest_text_from_any_source():
    import pandas as pd

    rate = np.array([0.1, 0.2, 0.7, 3.0] * 10, dtype=np.float32)
    df = pd.DataFrame({"x": np.arange(40, dtype=np.float32), "rate": rate})
    _, _, preproc = tabular_from_df(df.assign(y=[0, 1] * 20), "y",
                                    categorical_columns=["rate"], val_pct=0, verbose=0)
    assert sorted(preproc.categorical[0]["categories"]) == ["0.1", "0.2", "0.7", "3"]
    from_frame = transform(preproc, df.head(4))["categorical"][:, 0]
    from_dicts = transform(preproc, [{"x": 0.0, "rate": v} for v in (0.1, 0.2, 0.7, 3)])
    from_json = transform(preproc, json.loads('[{"x": 0, "rate": 0.1}, {"x": 0, "rate": 0.2},'
                                              '{"x": 0, "rate": 0.7}, {"x": 0, "rate": 3.0}]'))
    assert 0 not in from_frame.tolist()
    np.testing.assert_array_equal(from_dicts["categorical"][:, 0], from_frame)
    np.testing.assert_array_equal(from_json["categorical"][:, 0], from_frame)


def test_float64_and_int_categories_keep_their_text():
    from ktlite.tabular.columns import category_text

    assert [category_text(v) for v in (3.0, 3, np.float64(0.1), np.int64(7), 2.5, 1e20)] == [
        "3", "3", "0.1", "7", "2.5", "100000000000000000000"]
    assert category_text(np.float64(np.float32(0.1))) == "0.10000000149011612"
    assert [category_text(np.float32(v)) for v in (0.1, 3.0, 1e20, -0.0)] == [
        "0.1", "3", "100000000000000000000", "0"]


def test_load_refuses_an_invalid_file_and_names_it(preproc, tmp_path):
    preproc.save(tmp_path)
    config = json.loads((tmp_path / "preprocessor.json").read_text())
    config["numeric"][0]["std"] = 0
    (tmp_path / "preprocessor.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="preprocessor.json.*std > 0"):
        TabularPreprocessor.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="No saved TabularPreprocessor folder"):
        TabularPreprocessor.load(tmp_path / "nothing")
    (tmp_path / "preprocessor.json").unlink()
    with pytest.raises(FileNotFoundError, match="preprocessor.json is missing from"):
        TabularPreprocessor.load(tmp_path)


def test_load_quotes_nothing_from_a_file_that_failed_validation(preproc, tmp_path):
    preproc.save(tmp_path)
    assert_quotes_nothing_crafted(lambda: TabularPreprocessor.load(tmp_path),
                                  tmp_path / "preprocessor.json")


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="both"):
        TabularPreprocessor(numeric_columns=["a"], categorical_columns=["a"])
    with pytest.raises(ValueError, match="max_categories"):
        TabularPreprocessor(max_categories=0)
    with pytest.raises(ValueError, match="not fitted"):
        TabularPreprocessor().to_columns([{"a": 1}])


@pytest.mark.parametrize("name", ["numeric_columns", "categorical_columns"])
def test_column_lists_of_the_wrong_type_are_type_errors(name):
    with pytest.raises(TypeError, match=rf"`{name}` must be a list of column names. "
                                        rf"Received: {name}=5"):
        TabularPreprocessor(**{name: 5})
    with pytest.raises(TypeError, match=rf"`{name}` must be a list of column names"):
        TabularPreprocessor(**{name: ["a", 1]})


def test_fit_columns_of_the_wrong_type_are_a_type_error_and_none_a_value_error():
    with pytest.raises(TypeError, match="`x_train` must map at least one feature column to its "
                                        "values. Received: list"):
        TabularPreprocessor().fit_columns([[1, 2]])
    with pytest.raises(ValueError, match="`x_train` must map .* Received: an empty dict"):
        TabularPreprocessor().fit_columns({})


@pytest.mark.parametrize(
    "max_categories, error",
    [("3", TypeError), (True, TypeError), (2.0, TypeError), (None, TypeError),
     (0, ValueError), (-1, ValueError)],
)
def test_max_categories_of_a_wrong_type_is_a_type_error(max_categories, error):
    with pytest.raises(error, match="`max_categories` must be a positive int. Received: "
                                    f"max_categories={max_categories!r}"):
        TabularPreprocessor(max_categories=max_categories)
    assert TabularPreprocessor(max_categories=np.int64(3)).max_categories == 3


def test_max_categories_keeps_the_most_frequent():
    cols = {"c": np.array(["a"] * 5 + ["b"] * 3 + ["c"], dtype=object)}
    preproc = TabularPreprocessor(max_categories=2).fit(cols, [0, 1] * 4 + [0])
    assert preproc.categorical[0]["categories"] == ["a", "b"]


def test_durations_are_numbers_of_seconds_from_any_source(table):
    import datetime

    import pandas as pd

    df = table(60).assign(wait=pd.to_timedelta(np.arange(60) % 5, unit="h"))
    df.loc[7, "wait"] = pd.NaT
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    assert "wait" in preproc.numeric_columns
    wait = next(c for c in preproc.numeric if c["name"] == "wait")
    assert wait["mean"] == pytest.approx((np.arange(60) % 5)[np.arange(60) != 7].mean() * 3600)
    base = {"x": 0.1, "city": "Rome", "noise": 1.0}
    waits = (7200, datetime.timedelta(hours=2), np.timedelta64(120, "m"), pd.Timedelta("2h"))
    numeric = transform(preproc, [{**base, "wait": w} for w in waits])["numeric"]
    assert np.all(numeric == numeric[0])
    _, _, as_category = tabular_from_df(df, "label", categorical_columns=["wait"], verbose=0)
    wait = next(c for c in as_category.categorical if c["name"] == "wait")
    assert {"0", "3600", ""} <= set(wait["categories"])
    ids = transform(as_category, [{**base, "wait": w} for w in waits])["categorical"]
    column = ids[:, as_category.categorical_columns.index("wait")]
    assert len(set(column.tolist())) == 1 and column[0] != 0


def test_a_number_meets_the_one_category_that_reads_as_it_not_an_ambiguous_one(tmp_path):
    codes = ["00501", "501", "0777", "00777", "1.50", "0012", "1", "Rome", "inf"]
    preproc = TabularPreprocessor(categorical_columns=["code"]).fit(
        {"code": np.array(codes, dtype=object)}, ["a", "b"] * 4 + ["a"])
    again_dir = tmp_path / "saved"
    preproc.save(again_dir)
    again = TabularPreprocessor.load(again_dir)
    saved = json.loads((again_dir / "preprocessor.json").read_text())
    assert saved["categorical"] == [{"name": "code", "categories": preproc.categorical[0][
        "categories"]}]  # the file format is unchanged: the map is derived, not stored

    def texts(p, values):
        return p.raw_batch({"code": values})["categorical"][:, 0].tolist()

    values = [np.int64(12), 1.5, np.float32(1.5), 12.0, 501, 777, "12", "1.5", True,
              np.float64("inf"), None]
    expected = ["0012", "1.50", "1.50", "0012", "501", "777", "12", "1.5", "True", "inf", ""]
    assert texts(preproc, values) == expected
    assert texts(again, values) == expected  # a loaded preprocessor matches alike
    known = preproc.categorical[0]["categories"]
    ids = transform(preproc, [{"code": v} for v in (12, 1.5, 777)])["categorical"][:, 0]
    np.testing.assert_array_equal(ids, [known.index(c) + 1 for c in ("0012", "1.50")] + [0])


def test_dates_outside_the_nanosecond_range_keep_their_own_text(table):
    import datetime

    import pandas as pd

    from ktlite.tabular.columns import category_text

    far = ("9999-12-31", np.datetime64("9999-12-31"), datetime.date(9999, 12, 31),
           datetime.datetime(9999, 12, 31), pd.Timestamp("9999-12-31"))
    assert [category_text(v) for v in far] == ["9999-12-31"] * 5
    assert category_text(np.datetime64("1500-06-01T10:30:00", "s")) == "1500-06-01T10:30:00"
    assert category_text(np.datetime64("2020-01-02T10:30:00.5", "ms")) == (
        "2020-01-02T10:30:00.500")
    df = table(40).assign(end=pd.to_datetime(["2021-03-01", "9999-12-31"] * 20))
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    end = next(c for c in preproc.categorical if c["name"] == "end")
    assert sorted(end["categories"]) == ["2021-03-01", "9999-12-31"]
    base = {"x": 0.1, "city": "Rome", "noise": 1.0}
    ids = transform(preproc, [{**base, "end": v} for v in far])["categorical"]
    column = ids[:, preproc.categorical_columns.index("end")]
    assert len(set(column.tolist())) == 1 and column[0] != 0


def test_a_boolean_meets_the_category_reading_as_the_same_truth_value(tmp_path):
    import pandas as pd

    from ktlite.tabular import tabular_from_csv

    path = tmp_path / "flags.csv"
    path.write_text("a,flag,y\n" + "".join(
        f"{i},{'true' if i % 2 else 'false'},{'p' if i % 2 else 'q'}\n" for i in range(40)))
    _, _, from_text = tabular_from_csv(str(path), "y", categorical_columns=["flag"],
                                       verbose=0)
    assert sorted(from_text.categorical[0]["categories"]) == ["false", "true"]
    frame = pd.read_csv(path).head(4)  # pandas reads the cells as booleans
    assert frame["flag"].dtype == bool
    rows = [{"a": 1, "flag": v} for v in (True, "true", np.bool_(False), "FALSE", "yes")]
    expected = ["true", "true", "false", "false", "yes"]
    assert from_text.raw_batch(from_text.to_columns(rows))["categorical"][:, 0].tolist() == (
        expected)
    assert 0 not in transform(from_text, frame)["categorical"][:, 0].tolist()

    df = pd.DataFrame({"a": np.arange(40.0), "flag": [False, True] * 20, "y": ["q", "p"] * 20})
    _, _, from_bools = tabular_from_df(df, "y", categorical_columns=["flag"], verbose=0)
    assert sorted(from_bools.categorical[0]["categories"]) == ["False", "True"]
    assert from_bools.raw_batch(from_bools.to_columns(rows))["categorical"][:, 0].tolist() == [
        "True", "True", "False", "False", "yes"]
    ambiguous = TabularPreprocessor(categorical_columns=["flag"]).fit(
        {"flag": np.array(["true", "True", "false"] * 4, dtype=object)}, ["a", "b"] * 6)
    assert ambiguous.raw_batch({"flag": [True, "TRUE", False]})["categorical"][:, 0].tolist(
    ) == ["True", "TRUE", "false"]
