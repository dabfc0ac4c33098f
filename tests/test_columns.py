"""Tests for ktlite.columns: named CSV / DataFrame columns and label columns."""

import gzip
import warnings

import numpy as np
import pytest

from ktlite.columns import (
    label_columns_and_classes,
    check_column_name,
    check_frame_columns,
    label_column_list,
    labels_from_frame,
    labels_from_strings,
    read_csv_columns,
    read_csv_rows,
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
    with pytest.raises(ValueError, match=r"`label_columns` must be .*Received: label_columns=\[\]"):
        label_column_list([])


@pytest.mark.parametrize("bad", [1, None, [1], ["a", None], {"a": 1}])
def test_label_columns_of_the_wrong_type_are_type_errors(bad):
    with pytest.raises(TypeError, match="`ignore_columns` must be a column name or a non-empty "
                                        "list of column names. Received: ignore_columns="):
        label_column_list(bad, "ignore_columns")


def test_a_column_name_that_is_no_str_is_a_type_error():
    assert check_column_name("text", "text_column") == "text"
    with pytest.raises(TypeError, match=r"`text_column` must be a column name \(a str\). "
                                        "Received: text_column=1"):
        check_column_name(1, "text_column")


def test_frame_columns_are_checked_and_labels_read():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"t": ["a", "b"], "y": ["p", "q"], "z": [0, 1]})
    check_frame_columns(df, ["t", "y"], "df")
    assert labels_from_frame(df, ["y"]) == ["p", "q"]
    assert labels_from_frame(df, ["y", "z"]).shape == (2, 2)
    with pytest.raises(ValueError, match="not in `df`"):
        check_frame_columns(df, ["w"], "df")
    with pytest.raises(TypeError, match="`df` must be a pandas DataFrame. Received: df of type "
                                        "list"):
        check_frame_columns([1, 2], ["t"], "df")


def test_multiindex_columns_are_refused_with_the_way_to_flatten_them():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([["a.png", "p"]], columns=pd.MultiIndex.from_tuples(
        [("x", "path"), ("x", "label")]))
    with pytest.raises(ValueError, match=r"`train_df` must have one level of column names\. "
                                         r"Received: train_df with 2 levels .*\('x', 'path'\)"
                                         r".*train_df\.columns = \[\"_\"\.join"):
        check_frame_columns(df, ["x", "label"], "train_df")


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


def _write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_row_with_more_fields_than_the_header_is_refused_naming_the_file_and_line(tmp_path):
    # An unquoted comma in a text made " world" the label of "hello", silently.
    path = _write(tmp_path / "a.csv", "text,label\ngood,pos\n\nhello, world,pos\n")
    with pytest.raises(ValueError, match=r"Row on line 4 of .*a\.csv' has 3 fields, the header "
                                         r"has 2: \['hello', ' world', 'pos'\]\. Quote a field"):
        read_csv_columns(path, ["text", "label"])
    # A tab inside a TSV target cut it.
    path = _write(tmp_path / "p.tsv", "source\ttarget\na\tb with\ttab\n")
    with pytest.raises(ValueError, match=r"line 2 of .*p\.tsv' has 3 fields"):
        read_csv_columns(path, ["source", "target"], sep="\t")


def test_a_trailing_delimiter_is_no_extra_field(tmp_path):
    path = _write(tmp_path / "a.csv", "text,label\ngood,pos,\nbad,neg,,\n")
    assert read_csv_columns(path, ["text", "label"]) == [["good", "pos"], ["bad", "neg"]]


def test_a_quote_that_does_not_end_its_field_is_refused_naming_the_file_and_line(tmp_path):
    # Was read as 'Hi, she said' and 'Ciao, disse', the quotes dropped.
    path = _write(tmp_path / "p.tsv", 'source\ttarget\na\tb\n"Hi," she said\t"Ciao," disse\n')
    with pytest.raises(ValueError, match=r"p\.tsv' is not valid CSV in the row that starts on "
                                         r"line 3: .*expected after '\"'.*remove the stray quote"):
        read_csv_columns(path, ["source", "target"], sep="\t")
    path = _write(tmp_path / "end.csv", 'text,label\n"a\nb,1\n')
    with pytest.raises(ValueError, match=r"end\.csv' is not valid CSV in the row that starts on "
                                         r"line 2: unexpected end of data"):
        read_csv_columns(path, ["text", "label"])


def test_a_stray_quote_that_swallows_rows_is_named_in_a_warning(tmp_path):
    # 22 pairs were read as 2 without a word: the quote opened a field that ran on to the
    # quote of 'end"'.
    rows = "".join(f"the cat {i}\til gatto {i}\n" for i in range(20))
    path = _write(tmp_path / "p.tsv", f'source\ttarget\nok\tva bene\n"Hi there\tCiao\n{rows}'
                                      'end"\tfine\n')
    with pytest.warns(UserWarning, match=r"A quote opens a field on line 3 of .*p\.tsv' and "
                                         r"swallows the 21 lines after it.*remove the stray "
                                         r"quote"):
        assert len(read_csv_columns(path, ["source", "target"], sep="\t")) == 2
    # A letter quoted as pandas writes it, a comma on each line, is no stray quote.
    letter = "Dear team,\nthanks for the fix, really.\nBest, Ann"
    path = _write(tmp_path / "r.csv", f'text,label\n"{letter}",pos\nshort,neg\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_csv_columns(path, ["text", "label"]) == [[letter, "pos"], ["short", "neg"]]


def test_quoted_fields_with_delimiters_line_breaks_and_quotes_read_as_written(tmp_path):
    content = 'text,label\n"a, b",1\n"one\ntwo, three\nfour",2\n"say ""hi""",3\nsay "hi",4\n'
    assert read_csv_columns(_write(tmp_path / "a.csv", content), ["text", "label"]) == [
        ["a, b", "1"], ["one\ntwo, three\nfour", "2"], ['say "hi"', "3"], ['say "hi"', "4"]
    ]


@pytest.mark.parametrize("sep", [",", "\t"])
def test_files_written_by_pandas_read_back_exactly(tmp_path, sep):
    pd = pytest.importorskip("pandas")
    texts = ["plain", "a, b", "line one\nline two", "Dear Ann,\nthanks, see you",
             "one\ntwo, three\nfour", '"Hi," she said', "tab\there", 'quote " inside', '""',
             " spaced ", "crlf\r\nline", 'end"']
    df = pd.DataFrame({"text": texts, "label": ["p", "q"] * 6})
    df.to_csv(tmp_path / "a.csv", sep=sep, index=False)
    assert read_csv_columns(tmp_path / "a.csv", ["text", "label"], sep=sep) == [
        [t, y] for t, y in zip(texts, df["label"])
    ]


def test_read_csv_rows_gives_the_line_each_row_starts_on(tmp_path):
    path = _write(tmp_path / "a.csv", 'text,label\na,1\n\n"b\nc",2\nd,3\n')
    assert read_csv_rows(path, ["label"])[1:] == ([["1"], ["2"], ["3"]], [2, 4, 6])
    # Blank lines before the header are skipped too (the header was read as no columns).
    path = _write(tmp_path / "c.csv", '\n\ntext,label\na,1\n')
    assert read_csv_rows(path) == (["text", "label"], [["a", "1"]], [4])
    path = _write(tmp_path / "b.csv", 'text,label\na,1\n"b\nc",2\n\nd\n')
    with pytest.raises(ValueError, match=r"Row on line 6 of .*b\.csv' has 1 fields"):
        read_csv_columns(path, ["text", "label"])


def test_an_empty_label_is_named_by_the_line_it_is_on():
    # Was "line 4" (data row + 2) after a blank line or a field of several lines.
    with pytest.raises(ValueError, match=r"empty on data row 2 \(line 7\)"):
        labels_from_strings([["1"], ["2"], [""]], ["y"], "f", [2, 4, 7])
    with pytest.raises(ValueError, match=r"Received: 'x' on data row 1 \(line 5\)"):
        labels_from_strings([["1", "0"], ["x", "1"]], ["a", "b"], "f", [2, 5])


def test_a_column_named_twice_is_refused_naming_it(tmp_path):
    # The first "label" was read silently.
    path = _write(tmp_path / "a.csv", "text,label,label\ngood,pos,neg\n")
    with pytest.raises(ValueError, match=r"Columns \['label'\] appear more than once in the "
                                         r"header of .*a\.csv'"):
        read_csv_columns(path, ["text", "label"])
    assert read_csv_columns(path, ["text"]) == [["good"]]
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([["good", "pos", "neg"]], columns=["text", "label", "label"])
    with pytest.raises(ValueError, match=r"Columns \['label'\] appear more than once in "
                                         r"`train_df`"):
        check_frame_columns(df, ["text", "label"], "train_df")


def test_a_file_that_is_not_in_the_encoding_is_named_whatever_the_codec_error(tmp_path):
    # utf-16 raised a bare UnicodeError ("UTF-16 stream does not start with BOM").
    path = _write(tmp_path / "a.csv", "text,label\ncafé,1\n")
    with pytest.raises(ValueError, match=r"a\.csv' is not valid utf-16: .*Pass the file's "
                                         r"`encoding`"):
        read_csv_columns(path, ["text"], encoding="utf-16")


def test_label_columns_are_read_in_the_order_of_the_class_names_they_are():
    assert label_columns_and_classes(["a", "b"], None, None) == (["a", "b"], ["a", "b"])
    assert label_columns_and_classes(["a", "b"], ("b", "a"), None) == (["b", "a"], ("b", "a"))
    assert label_columns_and_classes(["a", "b"], ["x", "y"], None) == (["a", "b"], ["x", "y"])
    assert label_columns_and_classes("y", ["x", "z"], None) == (["y"], ["x", "z"])
    assert label_columns_and_classes(["a", "b"], None, "regression") == (["a", "b"], None)
    assert label_columns_and_classes(["a", "b"], "ab", None) == (["a", "b"], "ab")  # later
    for names in (["a", "x"], ["a"], ["a", "b", "c"]):
        with pytest.raises(ValueError, match="must be the columns' names"):
            label_columns_and_classes(["a", "b"], names, "multilabel")
