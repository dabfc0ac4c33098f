"""Tests for ktlite.tabular.loaders: column detection, splits, labels, CSV."""

import json

import numpy as np
import pandas as pd
import pytest

from ktlite.tabular import (
    tabular_dataset,
    tabular_from_array,
    tabular_from_csv,
    tabular_from_df,
)


def test_df_detects_numeric_and_categorical_columns_and_keeps_labels_out(table):
    trn, val, preproc = tabular_from_df(table(), "label", verbose=0)
    assert preproc.numeric_columns == ["x", "noise"]
    assert preproc.categorical_columns == ["city"]
    assert preproc.class_names == ["no", "yes"]
    assert preproc.dropped_columns == ["label"]
    assert trn.x["numeric"].shape == (len(trn), 2) and trn.x["categorical"].shape == (len(trn), 1)
    assert trn.task == "tabular" and trn.reporter is not None


def test_overrides_turn_an_int_code_into_a_category_and_a_string_column_cannot_be_numeric(table):
    df = table(60).assign(zip=np.arange(60) % 3)
    _, _, preproc = tabular_from_df(df, "label", categorical_columns=["zip"], verbose=0)
    assert preproc.categorical_columns == ["city", "zip"]
    assert sorted(preproc.categorical[1]["categories"]) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="'city'.*numeric"):
        tabular_from_df(df, "label", numeric_columns=["city"], verbose=0)


def test_statistics_come_from_the_training_rows_only(table):
    df = table(100)
    trn, val, preproc = tabular_from_df(df, "label", val_pct=0.3, verbose=0)
    train_x = trn.x["numeric"][:, 0]
    assert preproc.numeric[0]["mean"] == pytest.approx(float(np.mean(train_x)), rel=1e-5)
    assert len(val) == 30 and len(trn) == 70


def test_stratified_split_keeps_each_class_share_and_is_reproducible(table):
    df = table(200)
    share = (df["label"] == "yes").mean()
    trn, val, preproc = tabular_from_df(df, "label", val_pct=0.25, random_state=3, verbose=0)
    val_share = (val.y == preproc.class_names.index("yes")).mean()
    assert abs(val_share - share) < 0.02
    again = tabular_from_df(df, "label", val_pct=0.25, random_state=3, verbose=0)[1]
    np.testing.assert_array_equal(val.x["numeric"], again.x["numeric"])


def test_validation_frame_and_ignored_columns(table):
    df = table(120).assign(row_id=np.arange(120))
    trn, val, preproc = tabular_from_df(
        df[:100], "label", val_df=df[100:], ignore_columns=["row_id"], verbose=0
    )
    assert len(trn) == 100 and len(val) == 20
    assert "row_id" not in preproc.columns and "row_id" in preproc.dropped_columns


def test_bad_arguments_name_what_is_wrong(table):
    df = table(40)
    with pytest.raises(ValueError, match=r"\['price'\] are not in `train_df`"):
        tabular_from_df(df, "price", verbose=0)
    with pytest.raises(ValueError, match="val_pct"):
        tabular_from_df(df, "label", val_pct=1.5, verbose=0)
    with pytest.raises(ValueError, match="missing label"):
        tabular_from_df(df.assign(label=df["label"].where(df.index != 3)), "label", verbose=0)
    with pytest.raises(TypeError, match="`train_df` must be a pandas DataFrame. Received: "
                                        "train_df of type dict"):
        tabular_from_df({"x": [1]}, "label", verbose=0)
    with pytest.raises(TypeError, match="`val_df` must be a pandas DataFrame"):
        tabular_from_df(df, "label", val_df=[[1.0, "Rome"]], verbose=0)
    with pytest.raises(TypeError, match=r"`label_columns` must be a column name .*"
                                        r"label_columns=\['label', 3\]"):
        tabular_from_df(df, ["label", 3], verbose=0)
    with pytest.raises(TypeError, match="`numeric_columns` must be a list of column names. "
                                        "Received: numeric_columns=5"):
        tabular_from_df(df, "label", numeric_columns=5, verbose=0)
    with pytest.raises(ValueError, match="together"):
        tabular_from_array(np.zeros((4, 2)), [0, 1, 0, 1], x_test=np.zeros((2, 2)))


def test_array_loader_names_columns_and_reads_regression_targets():
    x = np.random.default_rng(0).normal(size=(50, 3))
    trn, val, preproc = tabular_from_array(x, x[:, 0] * 2.5 + 0.1, verbose=0)
    assert preproc.columns == ["f0", "f1", "f2"] and preproc.label_mode == "regression"
    trn, _, preproc = tabular_from_array(
        x, (x[:, 0] > 0).astype(int), feature_names=["a", "b", "c"], verbose=0
    )
    assert preproc.columns == ["a", "b", "c"] and preproc.label_mode == "multiclass"
    with pytest.raises(TypeError, match="list of column names. Received: feature_names='abc'"):
        tabular_from_array(x, x[:, 0] > 0, feature_names="abc", verbose=0)  # not 3 letters


def test_a_frame_given_as_an_array_keeps_its_column_names():
    frame = pd.DataFrame({"age": np.arange(40.0), "city": ["Rome", "Oslo"] * 20})
    labels = ["young" if a < 20 else "old" for a in frame["age"]]
    _, _, preproc = tabular_from_array(frame, labels, x_test=frame[:8], y_test=labels[:8],
                                       verbose=0)
    assert preproc.columns == ["age", "city"]  # not f0, f1: a row dict predicts by name
    assert preproc.numeric_columns == ["age"] and preproc.categorical_columns == ["city"]


def test_a_validation_frame_is_read_by_column_name_not_position():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(0, 1, 40), "b": rng.normal(100, 1, 40)})
    labels = (frame["a"] > 0).astype(int).to_numpy()
    _, val, preproc = tabular_from_array(frame, labels, x_test=frame[:8][["b", "a"]],
                                         y_test=labels[:8], verbose=0)
    assert preproc.numeric_columns == ["a", "b"]
    np.testing.assert_allclose(val.x["numeric"], frame[:8][["a", "b"]], rtol=1e-6)
    # A plain array stays positional, in x_train's column order.
    _, val, _ = tabular_from_array(frame, labels, x_test=frame[:8].to_numpy(),
                                   y_test=labels[:8], verbose=0)
    np.testing.assert_allclose(val.x["numeric"], frame[:8][["a", "b"]], rtol=1e-6)
    other = frame[:8].rename(columns={"a": "foo"})
    with pytest.raises(ValueError, match=r"`x_test`.*\['a'\].*\['foo'\]"):
        tabular_from_array(frame, labels, x_test=other, y_test=labels[:8], verbose=0)


def test_csv_reads_ints_floats_text_and_empty_cells(tmp_path):
    path = tmp_path / "t.csv"
    rows = ["age,city,score,label"] + [
        f"{20 + i},{'Rome' if i % 2 else ''},{'' if i % 5 == 0 else f'{i / 3:.3f}'},{i % 2}"
        for i in range(30)
    ]
    path.write_text("\n".join(rows) + "\n")
    trn, val, preproc = tabular_from_csv(path, "label", val_pct=0.2, verbose=0)
    assert preproc.numeric_columns == ["age", "score"]
    assert preproc.categorical_columns == ["city"]
    assert set(preproc.categorical[0]["categories"]) == {"Rome", ""}
    assert preproc.class_names == ["0", "1"]
    assert np.isnan(np.concatenate([trn.x["numeric"][:, 1], val.x["numeric"][:, 1]])).sum() == 6
    with pytest.raises(ValueError, match="existing CSV"):
        tabular_from_csv(tmp_path / "none.csv", "label")
    # A stray quote is an error naming its line (was read as a field without the quotes).
    path.write_text("\n".join(rows[:5] + ['24,"Rome" centre,1.5,1'] + rows[5:]) + "\n")
    with pytest.raises(ValueError, match=r"t\.csv' is not valid CSV in the row that starts on "
                                         r"line 6"):
        tabular_from_csv(path, "label", verbose=0)


def test_missing_number_markers_keep_a_csv_column_numeric(tmp_path):
    # R's NA (and NULL, #N/A) in a number column made it categorical: every age a category.
    path = tmp_path / "t.csv"
    marks = ["NA", "NULL", "#N/A", "n/a"]
    rows = ["age,region,label"] + [
        f"{marks[i % 4] if i % 7 == 0 else 20 + i},{'NA' if i % 2 else 'EU'},{i % 2}"
        for i in range(40)
    ]
    path.write_text("\n".join(rows) + "\n")
    trn, val, preproc = tabular_from_csv(path, "label", val_pct=0, verbose=0)
    assert preproc.numeric_columns == ["age"]
    assert np.isnan(trn.x["numeric"][:, 0]).sum() == 6
    assert set(preproc.categorical[0]["categories"]) == {"NA", "EU"}  # text stays as written
    base = {"region": "EU"}
    np.testing.assert_array_equal(preproc.transform(preproc.raw_batch(preproc.to_columns(
        [{**base, "age": "NA"}, {**base, "age": " null "}])))["numeric"].numpy(),
        preproc.transform(preproc.raw_batch(preproc.to_columns(
            [{**base, "age": None}] * 2)))["numeric"].numpy())


def test_a_bool_column_is_numeric_from_a_csv_file_as_from_a_dataframe(tmp_path):
    member = [True, False, None, True] * 10
    df = pd.DataFrame({"x": np.arange(40.0), "member": member, "label": [i % 2 for i in range(40)]})
    path = tmp_path / "t.csv"
    df.assign(member=[{True: "TRUE", False: "false", None: ""}[m] for m in member]).to_csv(
        path, index=False)
    _, _, from_csv = tabular_from_csv(path, "label", val_pct=0, verbose=0)
    _, _, from_df = tabular_from_df(df.assign(member=df["member"].astype("boolean")), "label",
                                    val_pct=0, verbose=0)
    assert from_csv.numeric_columns == from_df.numeric_columns == ["x", "member"]
    rows = [{"x": 1.0, "member": m} for m in ("True", "false", True, None)]
    numeric = from_csv.raw_batch(from_csv.to_columns(rows))["numeric"]
    np.testing.assert_array_equal(numeric[:, 1], [1, 0, 1, np.nan])


def test_csv_keeps_declared_categories_as_written_and_reads_a_byte_order_mark(tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"{i:05d},{10**25 + i},{i / 7:.3f},{i % 2}" for i in range(500, 530)]
    path.write_bytes(("\ufeffzip,id,x,label\n" + "\n".join(rows) + "\n").encode())
    trn, val, preproc = tabular_from_csv(path, "label", categorical_columns=["zip"],
                                         ignore_columns="id", verbose=0)
    assert preproc.categorical_columns == ["zip"] and preproc.numeric_columns == ["x"]
    categories = [c for c in preproc.categorical[0]["categories"] if c]
    assert len(categories) > 20 and all(c.startswith("005") for c in categories)  # not 501
    assert preproc.feature_order == ["zip", "x"]


def test_csv_integers_written_as_codes_stay_as_written_in_features_and_labels(tmp_path):
    path = tmp_path / "t.csv"
    codes = ["007", "07", "7"]  # three classes, as the file writes them
    rows = [f"{i % 3 + 500:05d},{i / 7:.3f},{codes[i % 3]}" for i in range(60)]
    path.write_text("zip,x,label\n" + "\n".join(rows) + "\n")
    _, _, preproc = tabular_from_csv(path, "label", val_pct=0, verbose=0)
    assert preproc.categorical_columns == ["zip"] and preproc.numeric_columns == ["x"]
    assert sorted(c for c in preproc.categorical[0]["categories"] if c) == [
        "00500", "00501", "00502"]
    assert sorted(preproc.class_names) == sorted(codes)


def test_mixed_rows_keep_numeric_columns_numeric_and_errors_name_the_argument(table):
    rows = [[41 + i, "Rome" if i % 2 else "Oslo"] for i in range(40)]
    _, _, preproc = tabular_from_array(rows, [i % 2 for i in range(40)], verbose=0)
    assert preproc.numeric_columns == ["f0"] and preproc.categorical_columns == ["f1"]
    with pytest.raises(TypeError, match="`y_train` must be a list or array of labels"):
        tabular_from_array(rows, 5, verbose=0)
    with pytest.raises(ValueError, match=r"`x_test` must have the 2 columns of `x_train`"):
        tabular_from_array(rows, [0, 1] * 20, x_test=np.zeros((3, 3)), y_test=[0, 1, 0])
    with pytest.raises(TypeError, match=r"`ignore_columns` must be a column name"):
        tabular_from_df(table(40), "label", ignore_columns=5, verbose=0)
    df = table(40)
    with pytest.raises(ValueError, match=r"`val_df\['label'\]`"):
        tabular_from_df(df, "label", val_df=df.assign(label=None), verbose=0)


def test_a_string_array_of_mixed_rows_reads_its_columns_as_a_csv_file_does():
    # np.array(rows) makes every cell text: its number columns became categories (an age
    # of 1000 unknown) while the same rows as a list kept them numeric.
    rows = [[41 + i, "Rome" if i % 2 else "Oslo", f"0{i % 3}"] for i in range(40)]
    y = [i % 2 for i in range(40)]
    listed = tabular_from_array(rows, y, verbose=0)[2]
    trn, val, preproc = tabular_from_array(np.array(rows), y, x_test=np.array(rows[:4]),
                                           y_test=y[:4], verbose=0)
    assert preproc.numeric_columns == listed.numeric_columns == ["f0"]
    assert preproc.categorical_columns == ["f1", "f2"]  # codes with a leading zero stay text
    assert next(c for c in preproc.numeric if c["name"] == "f0")["mean"] == pytest.approx(60.5)
    declared = tabular_from_array(np.array(rows), y, categorical_columns=["f0"], verbose=0)[2]
    assert "41" in next(c for c in declared.categorical if c["name"] == "f0")["categories"]


def test_a_pandas_category_column_of_numbers_is_categorical(table):
    df = table(90).assign(zip=pd.Categorical([501, 10001, 90210] * 30))
    df.loc[4, "zip"] = np.nan
    _, _, preproc = tabular_from_df(df, "label", verbose=0)
    assert preproc.categorical_columns == ["city", "zip"]
    assert preproc.numeric_columns == ["x", "noise"]
    assert {"501", "10001", "90210"} <= set(preproc.categorical[1]["categories"])


@pytest.mark.parametrize("seed", [1, 49])
def test_a_bad_cell_is_named_by_its_row_in_the_table_whichever_rows_are_held_out(table, seed):
    df = table(100)
    df["x"] = df["x"].astype(object)
    df.loc[50, "x"] = "unknown"  # seed 49 holds row 50 out for validation
    with pytest.raises(ValueError, match=r"Column 'x' of `train_df` is numeric but row 50 "):
        tabular_from_df(df, "label", numeric_columns=["x"], random_state=seed, verbose=0)
    # Unrequested, the column's kind is the whole table's, wherever the split puts the cell.
    _, _, preproc = tabular_from_df(df, "label", random_state=seed, verbose=0)
    assert "x" in preproc.categorical_columns


def test_missing_values_in_features_are_allowed(table):
    df = table(80, missing_every=7)
    trn, _, preproc = tabular_from_df(df, "label", verbose=0)
    assert np.isnan(trn.x["numeric"]).any()
    assert "" in preproc.categorical[0]["categories"]


def test_val_pct_zero_keeps_every_row_for_training(table):
    df = table(40)
    trn, val, preproc = tabular_from_df(df, "label", val_pct=0, verbose=0)
    assert val is None and len(trn) == 40
    np.testing.assert_allclose(trn.x["numeric"][:, 0], df["x"].to_numpy(), rtol=1e-6)


def test_a_cell_holding_a_list_is_refused_in_training_as_in_prediction():
    frame = pd.DataFrame({"tags": [["x"], ["y"]] * 10, "label": [0, 1] * 10})
    with pytest.raises(TypeError, match=r"Column 'tags' of .* must hold one value a cell .* "
                                        r"a list in row 0"):
        tabular_from_df(frame, "label", verbose=0)


def test_numbers_read_from_a_csv_file_meet_the_categories_it_kept_as_written(tmp_path):
    # The loader keeps a declared category's text ("00501", "1.50"); pandas reads the same
    # file as 501 and 1.5, and a JSON row sends numbers: each must get the file's ids.
    path = tmp_path / "t.csv"
    zips, prices = ["00501", "10001", "02134"], ["1.50", "2.00", "3.25"]
    rows = [f"{zips[i % 3]},{prices[i // 3 % 3]},{i / 10},{'yn'[i % 2]}" for i in range(60)]
    path.write_text("zip,price,x,label\n" + "\n".join(rows) + "\n")
    trn, _, preproc = tabular_from_csv(path, "label", val_pct=0, verbose=0,
                                       categorical_columns=["zip", "price"])
    assert preproc.categorical_columns == ["zip", "price"]
    assert sorted(preproc.categorical[0]["categories"]) == sorted(zips)  # kept as written

    def ids(rows):
        raw = tabular_dataset(rows, None, preproc).x
        return preproc.transform(raw)["categorical"].numpy()

    as_text = ids(pd.read_csv(path, dtype=str))  # the file's own text
    assert as_text.min() > 0
    numbers = pd.read_csv(path)
    assert numbers["zip"].dtype.kind == "i" and numbers["price"].dtype.kind == "f"
    np.testing.assert_array_equal(ids(numbers), as_text)
    np.testing.assert_array_equal(ids(numbers.to_dict("records")), as_text)
    from_json = json.loads('[{"zip": 501, "price": 1.5, "x": 0}, {"zip": 2134, "price": 2, '
                           '"x": 0}, {"zip": 10001.0, "price": 3.25, "x": 0}]')
    from_text = [{"zip": z, "price": p, "x": 0} for z, p in
                 [("00501", "1.50"), ("02134", "2.00"), ("10001", "3.25")]]
    np.testing.assert_array_equal(ids(from_json), ids(from_text))
    assert ids(from_text).min() > 0
    # Strings are never reinterpreted: the text "501" is not the category "00501".
    np.testing.assert_array_equal(ids([{"zip": "501", "price": "1.5", "x": 0}]), [[0, 0]])
    # The training data itself is unchanged: the file's text, as written.
    np.testing.assert_array_equal(preproc.transform(trn.x)["categorical"].numpy(), as_text)


def test_a_category_label_is_read_as_class_names_by_every_path():
    df = pd.DataFrame({"a": np.arange(40.0), "y": pd.Categorical([1.5, 2.0] * 20)},
                      index=np.arange(40)[::-1] + 100)
    _, _, preproc = tabular_from_df(df, "y", verbose=0)
    assert (preproc.label_mode, preproc.class_names) == ("multiclass", ["1.5", "2"])
    np.testing.assert_array_equal(tabular_dataset(df, df["y"], preproc).y, [0, 1] * 20)
    _, _, from_array = tabular_from_array(df[["a"]], df["y"], verbose=0)
    assert (from_array.label_mode, from_array.class_names) == ("multiclass", ["1.5", "2"])


def test_an_all_missing_category_or_string_column_is_categorical():
    df = pd.DataFrame({"a": np.arange(40.0), "y": ["p", "q"] * 20,
                       "k": pd.Categorical([None] * 40, categories=["x", "z"]),
                       "s": pd.array([None] * 40, dtype="string")})
    _, _, preproc = tabular_from_df(df, "y", verbose=0)
    assert (preproc.numeric_columns, preproc.categorical_columns) == (["a"], ["k", "s"])
    raw = preproc.raw_batch(preproc.to_columns({"a": 1.0, "k": "x", "s": None}))
    assert raw["categorical"].tolist() == [["x", ""]]
    _, _, from_array = tabular_from_array(df[["a", "k", "s"]], df["y"], verbose=0)
    assert from_array.categorical_columns == ["k", "s"]
    with pytest.warns(UserWarning, match="'k' is missing in every training row"):
        _, _, numeric = tabular_from_df(df, "y", numeric_columns=["k"], verbose=0)
    assert numeric.numeric_columns == ["a", "k"]


def test_multiindex_columns_are_refused_with_the_way_to_flatten_them():
    # A tuple name was split into two names ("Columns ['t', 'y'] are not in train_df").
    df = pd.DataFrame({("f", "x"): np.arange(20.0), ("t", "y"): [0, 1] * 10})
    with pytest.raises(ValueError, match=r"`train_df` must have one level of column names.*"
                                         r"Flatten them first"):
        tabular_from_df(df, label_columns="t_y", verbose=0)
