"""Reading named columns from CSV files and DataFrames, and turning label columns into labels.

Every task's ``*_from_csv`` / ``*_from_df`` loader reads its input columns and its label
columns the same way; what the input columns hold (text, features, file paths) is the
task's business. pandas is never imported: any DataFrame-like object with ``columns`` and
column indexing works.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import numbers
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite._console import warn
from ktlite.arguments import is_missing

__all__ = [
    "check_csv_file",
    "check_one_level",
    "is_category_column",
    "label_text",
    "category_labels",
    "written_as_codes",
    "check_column_name",
    "label_column_list",
    "label_columns_and_classes",
    "read_csv_columns",
    "read_csv_rows",
    "labels_from_strings",
    "check_frame_columns",
    "labels_from_frame",
    "examples_from_frame",
]

_INT_RE = re.compile(r"^[+-]?\d+$")


def is_series(data: Any) -> bool:
    """Whether `data` looks like a pandas Series (``index``, ``items``, no ``columns``):
    a table row or a column."""
    return (hasattr(data, "index") and hasattr(data, "items") and hasattr(data, "to_numpy")
            and not hasattr(data, "columns"))


def is_category_column(column: Any) -> bool:
    """Whether a pandas column has the ``category`` dtype, pandas' mark of a categorical
    column whatever its values hold (zip codes, ratings): its cells are then read as text,
    as labels and as features alike.

    Args:
        column: a pandas Series, or any value (False unless its ``dtype`` reads
            ``category``).

    Returns:
        Whether `column` is a ``category`` column.

    Example:
        >>> is_category_column(pd.Series([1.5, 2.0], dtype="category"))
        True
    """
    return str(getattr(column, "dtype", "")) == "category"


def label_text(value: Any) -> str:
    """The class name a label value is known by: booleans as ``"True"`` / ``"False"``,
    whole numbers as ints (``2.0`` -> ``"2"``), anything else as `str` writes it.

    Args:
        value: one label.

    Returns:
        Its text.

    Example:
        >>> label_text(2.0), label_text(1.5), label_text("cat")
        ('2', '1.5', 'cat')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_labels(column: Any) -> np.ndarray:
    """The labels of a ``category`` column (`is_category_column`): class names whatever
    the categories hold (``1.5`` -> ``"1.5"``, ``2.0`` -> ``"2"``), a missing cell None so
    that it is refused as a missing label.

    Args:
        column: a pandas Series of dtype ``category``.

    Returns:
        A 1-D object array of ``str`` and None.

    Example:
        >>> category_labels(pd.Series([1.5, 2.0, None], dtype="category"))
        array(['1.5', '2', None], dtype=object)
    """
    return np.array([None if is_missing(v) else label_text(v) for v in column.to_numpy()],
                    dtype=object)


def check_column_name(column: Any, name: str) -> str:
    """Returns ``column`` if it is a column name (a str).

    Args:
        column: what the user passed.
        name: the argument name used in the error (e.g. ``"text_column"``).

    Returns:
        ``column``.

    Raises:
        TypeError: if ``column`` is not a str.

    Example:
        >>> check_column_name("text", "text_column")
        'text'
    """
    if not isinstance(column, str):
        raise TypeError(f"`{name}` must be a column name (a str). Received: {name}={column!r:.80}")
    return column


def label_column_list(label_columns: Any, name: str = "label_columns") -> list[str]:
    """Checks ``label_columns`` and returns it as a list of column names.

    Args:
        label_columns: one column name or a non-empty sequence of column names.
        name: the argument name used in the error (e.g. ``"ignore_columns"``).

    Returns:
        The column names as a list.

    Raises:
        TypeError: for anything but a name or a list of names (``1``, ``None``, ``[1]``).
        ValueError: for an empty list.

    Example:
        >>> label_column_list("label")
        ['label']
    """
    if isinstance(label_columns, str):
        return [label_columns]
    expected = f"`{name}` must be a column name or a non-empty list of column names."
    if not isinstance(label_columns, Sequence) or not all(
        isinstance(c, str) for c in label_columns
    ):
        raise TypeError(f"{expected} Received: {name}={label_columns!r:.80}")
    if not label_columns:
        raise ValueError(f"{expected} Received: {name}={label_columns!r}")
    return list(label_columns)


def label_columns_and_classes(
    label_columns: Any, class_names: Any, label_mode: Any
) -> tuple[list[str], Any]:
    """The label columns, checked, in the order of the classes they hold, and the classes.

    With several label columns (of a multiclass or multilabel task, not regression) each
    column holds one class: the columns name the classes when ``class_names`` is None;
    ``class_names`` that are the columns' names, in any order, read the columns in that
    order (each column is the class of its name); ``class_names`` none of which is a
    column's name rename the columns in order. One label column is passed through.

    Args:
        label_columns: one column name or a non-empty sequence of them.
        class_names: the loader's ``class_names`` (checked later, where class names are).
        label_mode: the loader's ``label_mode``.

    Returns:
        ``(columns, class_names)``: the columns to read, in order, and the class names.

    Raises:
        TypeError: for ``label_columns`` that are not a name or a list of names.
        ValueError: for an empty list, or ``class_names`` that name some of several label
            columns but not all of them (or others besides).

    Example:
        >>> label_columns_and_classes(["pos", "neg"], ["neg", "pos"], None)
        (['neg', 'pos'], ['neg', 'pos'])
    """
    columns = label_column_list(label_columns)
    if len(columns) < 2 or label_mode == "regression":
        return columns, class_names
    if class_names is None:
        return columns, list(columns)
    if not isinstance(class_names, (list, tuple)) or not all(
            isinstance(name, str) for name in class_names):
        return columns, class_names
    if not set(class_names) & set(columns):
        return columns, class_names
    if sorted(class_names) != sorted(columns):
        raise ValueError(
            "With several label columns, `class_names` must be the columns' names (in any "
            "order: each column is read as the class of its name) or names none of which is "
            "a column's (the columns renamed in order). Received: "
            f"class_names={list(class_names)!r:.200}, label_columns={columns!r:.200}"
        )
    return list(class_names), class_names


def check_csv_file(path: Any, arg: str, sep: Any, encoding: Any) -> str:
    """Checks the arguments naming a CSV file to read; returns the path as a str.

    Args:
        path: the file, a str or `os.PathLike`.
        arg: the argument name of `path` in messages.
        sep: the field delimiter, one character.
        encoding: the name of a text encoding Python knows.

    Returns:
        `os.fspath(path)`.

    Raises:
        TypeError: if `path` is not a str or path, or `sep` or `encoding` not a str.
        ValueError: if there is no file at `path`, `sep` is not one character, or
            `encoding` is not a known encoding.

    Example:
        >>> check_csv_file("train.csv", "train_filepath", ",", "utf-8")
        'train.csv'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{arg}` must be a file path. Received: {arg} of type "
                        f"{type(path).__name__}")
    for name, value in (("sep", sep), ("encoding", encoding)):
        if not isinstance(value, str):
            raise TypeError(f"`{name}` must be a str. Received: {name}={value!r:.80}")
    if len(sep) != 1:
        raise ValueError(f"`sep` must be one character. Received: sep={sep!r:.80}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"`encoding` must name a text encoding (e.g. 'utf-8', 'latin-1'). "
            f"Received: encoding={encoding!r:.80}"
        ) from None
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`{arg}` must be an existing CSV file. Received: {arg}={path!r}")
    return path


def open_text(path: str, encoding: str) -> Any:
    # "utf-8-sig" reads plain UTF-8 as "utf-8" does and drops the byte-order mark that
    # spreadsheet programs write first, which would otherwise join the first column's name.
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def read_csv_columns(
    path: Any,
    columns: list[str],
    sep: str = ",",
    encoding: str = "utf-8",
    arg: str = "path",
    hint: str = "",
) -> list[list[str]]:
    """Reads the named columns of a CSV file (``.csv`` or gzipped ``.csv.gz``).

    As `read_csv_rows`, without the header and the line numbers.

    Args:
        path: the CSV file.
        columns: the columns to read, in the order wanted.
        sep: the field delimiter (default ``","``).
        encoding: the file encoding (default ``"utf-8"``).
        arg: the argument name used in error messages.
        hint: appended to the missing-columns error (e.g. which arguments name them).

    Returns:
        One list per data row, holding the values of ``columns`` in order (as strings).

    Raises:
        TypeError: as `read_csv_rows`.
        ValueError: as `read_csv_rows`.

    Example:
        >>> rows = read_csv_columns("train.csv", ["text", "label"])
        >>> rows[0]
        ['a good film', 'pos']
    """
    return read_csv_rows(path, columns, sep, encoding, arg, hint)[1]


def read_csv_rows(
    path: Any,
    columns: list[str] | None = None,
    sep: str = ",",
    encoding: str = "utf-8",
    arg: str = "path",
    hint: str = "",
) -> tuple[list[str], list[list[str]], list[int]]:
    """Reads the named columns (or all) of a CSV file and the line each row starts on.

    The first row that is not blank is the header; blank rows are skipped. A row with
    fewer fields than the header is an error, and so is one with more, unless the extra
    fields are empty (a trailing delimiter): an unquoted delimiter inside a field would
    shift the others.
    Quoting follows the CSV rules (a quoted field may hold the delimiter, line breaks and
    doubled quotes); a quote that does not end its field right before a delimiter or a line
    end is an error, and a quoted field that swallowed five lines or more that look like
    rows (a stray quote at the start of an unquoted field) gets a warning. Fields may be of
    any size.

    Args:
        path: the CSV file.
        columns: the columns to read, in the order wanted; None reads every column (whose
            names must then be distinct).
        sep: the field delimiter (default ``","``).
        encoding: the file encoding (default ``"utf-8"``).
        arg: the argument name used in error messages.
        hint: appended to the missing-columns error (e.g. which arguments name them).

    Returns:
        ``(header, rows, lines)``: the header's column names, one list per data row holding
        the values of ``columns`` in order (as strings), and the line of the file each row
        starts on (1 is the header).

    Raises:
        TypeError: if ``path`` is not a str or path, or ``sep`` or ``encoding`` not a str.
        ValueError: for a missing or empty file, a ``sep`` of more than one character, an
            unknown ``encoding``, missing or repeated columns, a short or long row, text
            that is not valid in ``encoding``, or malformed CSV (named by line).

    Example:
        >>> header, rows, lines = read_csv_rows("train.csv", ["text", "label"])
        >>> rows[0], lines[0]
        (['a good film', 'pos'], 2)
    """
    path = check_csv_file(path, arg, sep, encoding)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, 2**31 - 1))
    start = 1
    try:
        with open_text(path, encoding) as f:
            reader = csv.reader(f, delimiter=sep, strict=True)
            # The header is the first row that is not blank, as the blank rows after it
            # are skipped.
            header = next((row for row in reader if row), None)
            if header is None:
                raise ValueError(f"`{arg}` is an empty file. Received: {arg}={path!r}")
            columns = header if columns is None else columns
            _check_columns(header, columns, f"the header of {path!r}", hint)
            cols = [header.index(c) for c in columns]
            rows, lines = [], []
            start = reader.line_num + 1
            for row in reader:
                if row:
                    _check_row(row, header, path, start, sep)
                    rows.append([row[c] for c in cols])
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeError as err:
        raise ValueError(
            f"{path!r} is not valid {encoding}: {err}. Pass the file's `encoding`."
        ) from None
    except csv.Error as err:
        raise ValueError(
            f"{path!r} is not valid CSV in the row that starts on line {start}: {err}. A "
            "quote that starts a field must end it right before the delimiter or the line "
            "end: write a quote inside a field as two quotes (\"\"), or remove the stray quote."
        ) from None
    finally:
        csv.field_size_limit(old_limit)
    return header, rows, lines


def _check_columns(names: list[Any], columns: list[str], where: str, hint: str) -> None:
    """Refuses columns `names` that lack one of `columns` or hold one twice (which one is
    meant?); `where` names them (the file's header, a DataFrame argument)."""
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(
            f"Columns {missing} are not in {where}; it has columns {names}. {hint}".rstrip()
        )
    repeated = [c for c in dict.fromkeys(columns) if names.count(c) > 1]
    if repeated:
        raise ValueError(
            f"Columns {repeated} appear more than once in {where}, so which one to read is "
            f"unclear; rename or drop the copies. Received: columns {names}"
        )


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


# Lines a quoted field must swallow, each holding a row's delimiters, to be warned of: a
# stray quote runs on to the next quote, often dozens of lines on, while a text quoted
# rightly seldom runs to this many lines of a comma each (a letter of three does).
_SWALLOWED_LINES = 5


def _check_row(row: list[str], header: list[str], path: str, line: int, sep: str) -> None:
    """Refuses a row of another width than the header (a trailing delimiter aside); warns
    of a quoted field that looks like it swallowed rows: a field spanning at least
    `_SWALLOWED_LINES` more lines, whose every line but the last holds the delimiters of the
    rest of a row (a warning, since a quoted text of such lines is valid CSV too)."""
    if len(row) < len(header) or any(row[len(header):]):
        fix = f" Quote a field that holds the delimiter {sep!r}." if len(row) > len(header) else ""
        raise ValueError(
            f"Row on line {line} of {path!r} has {len(row)} fields, the header has "
            f"{len(header)}: {row!r:.120}.{fix}"
        )
    for j, field in enumerate(row):
        if "\n" not in field and "\r" not in field:
            continue
        parts = _LINE_BREAK.split(field)
        widths = [len(header) - 1 - j] + [len(header) - 1] * (len(parts) - 2)
        if len(parts) > _SWALLOWED_LINES and sep in field and all(
            part.count(sep) == width for part, width in zip(parts, widths)
        ):
            warn(
                f"A quote opens a field on line {line} of {path!r} and swallows the "
                f"{len(parts) - 1} lines after it, which look like rows, into that one field: "
                f"{field!r:.120}. If they are rows, remove the stray quote, or write a quote "
                f"inside a field as two quotes (\"\") and quote the field."
            )
        line += len(parts) - 1


def written_as_codes(cells: list[str]) -> bool:
    """Whether CSV cells that all look like integers are codes to keep as written: one of
    them has a leading zero that reading it as a number would drop ("007", "07" and "7" are
    three labels, "00501" a zip code; "+1" and "-1" are numbers).

    Args:
        cells: the column's non-empty cells.

    Returns:
        True when every cell is an integer and one has a leading zero.

    Example:
        >>> written_as_codes(["001", "010"]), written_as_codes(["1", "10"])
        (True, False)
    """
    digits = [c.strip().lstrip("+-") for c in cells]
    return (bool(digits) and all(_INT_RE.match(c.strip()) for c in cells)
            and any(len(d) > 1 and d.startswith("0") for d in digits))


def _parse_scalar_column(values: list[str]) -> list[Any]:
    """Reads a CSV label column as ints, floats or strings (whichever fits every value);
    integers written as codes ("007") stay strings."""
    if written_as_codes(values):
        return values
    if all(_INT_RE.match(v.strip()) for v in values):
        return [int(v) for v in values]
    try:
        return [float(v) for v in values]
    except ValueError:
        return values


def labels_from_strings(
    rows: list[list[str]], label_columns: list[str], source: str, lines: list[int] | None = None
) -> Any:
    """Turns label fields read from a CSV file into labels.

    One label column holds one label per row: integers are classes, other numbers a
    regression target, anything else class names (so are integers written as codes, with
    a leading zero: "007" and "7" are two classes). Several label columns are read as a
    numeric matrix (0/1 one-hot or multilabel columns, or regression targets).

    Args:
        rows: one list of label fields per row, in the order of ``label_columns``.
        label_columns: the label column names.
        source: the file the rows came from, for error messages.
        lines: the line of ``source`` each row starts on (from `read_csv_rows`), named in
            error messages beside the row's position.

    Returns:
        A list of ints, floats or strings (one column), or a float64 matrix
        ``(rows, columns)`` (several columns).

    Raises:
        ValueError: for an empty label, or a non-numeric field among several columns.

    Example:
        >>> labels_from_strings([["1"], ["0"]], ["label"], "train.csv")
        [1, 0]
    """
    def where(i: int) -> str:
        return f"data row {i}" if lines is None else f"data row {i} (line {lines[i]})"

    if len(label_columns) == 1:
        raw = [r[0] for r in rows]
        for i, v in enumerate(raw):
            if not v.strip():
                raise ValueError(
                    f"Label column {label_columns[0]!r} of {source!r} is empty on {where(i)}. "
                    "Drop or fill rows with missing labels first."
                )
        return _parse_scalar_column(raw)
    matrix = np.empty((len(rows), len(label_columns)), dtype=np.float64)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            try:
                matrix[i, j] = float(v)
            except ValueError:
                raise ValueError(
                    f"Label column {label_columns[j]!r} of {source!r} must be numeric when "
                    f"several label columns are used (0/1 or numbers). Received: {v!r} on "
                    f"{where(i)}"
                ) from None
    return matrix


def check_frame_columns(df: Any, columns: list[str], arg: str, hint: str = "") -> None:
    """Checks that ``df`` is DataFrame-like and holds ``columns``.

    Args:
        df: a pandas DataFrame (or any object with ``columns`` and column indexing).
        columns: the columns that must be present.
        arg: the argument name used in error messages.
        hint: appended to the missing-columns error.

    Raises:
        TypeError: when ``df`` is not DataFrame-like (a dict, a list).
        ValueError: when ``df`` has several levels of column names (a MultiIndex), or
            lacks or repeats a column.

    Example:
        >>> check_frame_columns(df, ["text", "label"], "train_df")
    """
    if not hasattr(df, "columns") or not hasattr(df, "__getitem__"):
        raise TypeError(
            f"`{arg}` must be a pandas DataFrame. Received: {arg} of type {type(df).__name__}"
        )
    check_one_level(df, arg)
    _check_columns(list(df.columns), columns, f"`{arg}`", hint)


def check_one_level(df: Any, arg: str) -> None:
    """Refuses a DataFrame with several levels of column names (a MultiIndex), whose tuple
    names such as ``("x", "label")`` would be read as several column names.

    Args:
        df: a pandas DataFrame.
        arg: the argument name for messages.

    Raises:
        ValueError: naming the levels and the way to flatten them.

    Example:
        >>> check_one_level(pd.DataFrame({"a": [1]}), "train_df")
    """
    levels = getattr(df.columns, "nlevels", 1)
    if levels > 1:
        raise ValueError(
            f"`{arg}` must have one level of column names. Received: {arg} with {levels} "
            f"levels (a MultiIndex), e.g. {list(df.columns)[:1]}. Flatten them first: "
            f'{arg}.columns = ["_".join(map(str, c)) for c in {arg}.columns]'
        )


def examples_from_frame(
    df: Any, column: str, label_columns: list[str], arg: str, hint: str = ""
) -> tuple[list, Any]:
    """Reads a loader's examples and labels from DataFrame columns, naming a missing cell.

    Args:
        df: the DataFrame.
        column: the column of examples (texts, image paths...).
        label_columns: the label column(s), read by `labels_from_frame`.
        arg: the argument name used in error messages, e.g. `"train_df"`.
        hint: appended to the missing-columns error.

    Returns:
        `(examples, labels)`: the examples as a list, the labels as `labels_from_frame`
        reads them.

    Raises:
        TypeError: when ``df`` is not DataFrame-like.
        ValueError: when ``df`` lacks or repeats a column, or has a missing (None / NaN)
            cell in one of them: named by column and row label.

    Example:
        >>> texts, labels = examples_from_frame(df, "text", ["label"], "train_df")
    """
    check_frame_columns(df, [column, *label_columns], arg, hint=hint)
    for name in (column, *label_columns):
        flags = getattr(df[name], "isna", None)
        if flags is not None and bool(flags().any()):
            # Named by the row's index label, which the user sees (a shuffled frame's
            # first position is not its row 0).
            row = df.index[flags().to_numpy()][0]
            row = row.item() if isinstance(row, np.generic) else row
            raise ValueError(
                f"`{arg}[{name!r}]` has a missing value (None or NaN) in the row "
                f"labelled {row!r}: drop or fill missing rows first."
            )
    return df[column].tolist(), labels_from_frame(df, label_columns)


def labels_from_frame(df: Any, label_columns: list[str]) -> Any:
    """Reads labels from DataFrame columns.

    Args:
        df: a DataFrame holding ``label_columns`` (see `check_frame_columns`).
        label_columns: one column (its values as a list; lists of labels are multilabel)
            or several (a numeric matrix).

    Returns:
        A list (one column; a ``category`` column's as `category_labels`) or a numpy array
        ``(rows, columns)``.

    Example:
        >>> labels_from_frame(df, ["label"])
        ['pos', 'neg']
    """
    if len(label_columns) == 1:
        column = df[label_columns[0]]
        return category_labels(column).tolist() if is_category_column(column) else column.tolist()
    return df[label_columns].to_numpy()
