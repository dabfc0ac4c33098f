"""Tests for ktlite.columns: named CSV / DataFrame columns and label columns."""

import gzip

import numpy as np
import pytest

from ktlite.columns import (
    check_frame_columns,
    label_column_list,
    labels_from_frame,
    labels_from_strings,
    read_csv_columns,
)


def test_read_csv_columns_returns_the_asked_columns_in_order_from_plain_and_gzip(tmp_path):
    content = "id,text,label\n1,\"a, b\",x\n\n2,c,y\n"
    plain = tmp_path / "a.csv"
    plain.write_text(content, encoding="utf-8")
    zipped = tmp_path / "a.csv.gz"
    with gzip.open(zipped, "wt", encoding="utf-8") as f:
        f.write(content)
    for path in (plain, zipped):
        assert read_csv_columns(path, ["label", "text"]) == [["x", "a, b"], ["y", "c"]]


def test_read_csv_columns_drops_a_spreadsheet_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,label\ncafé,1\n".encode("utf-8"))
    assert read_csv_columns(path, ["text", "label"]) == [["café", "1"]]
    assert read_csv_columns(path, ["text"], encoding="UTF_8") == [["café"]]


def test_read_csv_columns_errors_name_the_file_the_columns_and_the_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\nfine,1\nshort\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\['topic'\] are not in .*Set it"):
        read_csv_columns(path, ["text", "topic"], hint="Set it.")
    with pytest.raises(ValueError, match="line 3"):
        read_csv_columns(path, ["text", "label"])
    with pytest.raises(ValueError, match="my_arg"):
        read_csv_columns(tmp_path / "missing.csv", ["text"], arg="my_arg")


def test_labels_from_strings_reads_ints_floats_names_and_matrices():
    assert labels_from_strings([["1"], ["-2"]], ["y"], "f") == [1, -2]
    assert labels_from_strings([["1.5"], ["2"]], ["y"], "f") == [1.5, 2.0]
    assert labels_from_strings([["pos"], ["2"]], ["y"], "f") == ["pos", "2"]
    # Integers written as codes are labels as written: "007", "07" and "7" are three.
    assert labels_from_strings([["007"], ["07"], ["7"]], ["y"], "f") == ["007", "07", "7"]
    assert labels_from_strings([["001"], ["10"]], ["y"], "f") == ["001", "10"]
    assert labels_from_strings([["+1"], ["-1"], ["0"]], ["y"], "f") == [1, -1, 0]
    matrix = labels_from_strings([["1", "0"], ["0", "1"]], ["a", "b"], "f")
    np.testing.assert_array_equal(matrix, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="empty on data row 1"):
        labels_from_strings([["1"], [" "]], ["y"], "f")
    with pytest.raises(ValueError, match="'b' of 'f' must be numeric"):
        labels_from_strings([["1", "x"]], ["a", "b"], "f")


def test_label_column_list_accepts_a_name_or_names_only():
    assert label_column_list("y") == ["y"]
    assert label_column_list(("a", "b")) == ["a", "b"]
    for bad in ([], [1], None):
        with pytest.raises(ValueError, match="label_columns"):
            label_column_list(bad)


def test_frame_columns_are_checked_and_labels_read():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"t": ["a", "b"], "y": ["p", "q"], "z": [0, 1]})
    check_frame_columns(df, ["t", "y"], "df")
    assert labels_from_frame(df, ["y"]) == ["p", "q"]
    assert labels_from_frame(df, ["y", "z"]).shape == (2, 2)
    with pytest.raises(ValueError, match="not in `df`"):
        check_frame_columns(df, ["w"], "df")
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        check_frame_columns([1, 2], ["t"], "df")


def test_csv_options_are_checked_before_the_file_is_read(tmp_path):
    from ktlite.columns import read_csv_columns

    path = tmp_path / "t.csv"
    path.write_text("text,label\na,b\n")
    with pytest.raises(ValueError, match="`sep` must be one character. Received: sep=';;'"):
        read_csv_columns(path, ["text"], sep=";;")
    with pytest.raises(TypeError, match="`sep` must be a str. Received: sep=None"):
        read_csv_columns(path, ["text"], sep=None)
    with pytest.raises(ValueError, match="`encoding` must name a text encoding .* "
                                         "Received: encoding='utf-9'"):
        read_csv_columns(path, ["text"], encoding="utf-9")
    with pytest.raises(TypeError, match="`encoding` must be a str. Received: encoding=None"):
        read_csv_columns(path, ["text"], encoding=None)
    assert read_csv_columns(path, ["label"], sep=",", encoding="latin-1") == [["b"]]
