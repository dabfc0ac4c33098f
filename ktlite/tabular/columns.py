"""Raw tables as named columns: DataFrames, lists of row dicts and 2-D arrays.

Every tabular entry point (loaders, preprocessor, predictor) turns its input into an
ordered ``{column name: 1-D numpy array}`` dict here, and reads numeric and categorical
values with the same two functions, so training data and prediction requests are read
alike. pandas is never imported: any object with ``columns`` and column indexing works.

Missing values: ``None``, ``NaN``, pandas' ``NA``/``NaT`` (and ``""`` in a numeric column)
are missing. A missing number becomes ``NaN``; a missing category becomes ``""``.
"""

from __future__ import annotations

import datetime
import decimal
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ktlite.arguments import is_missing
from ktlite.columns import check_one_level, is_category_column
from ktlite.labels import preview_values

MISSING_CATEGORY = ""


def is_frame(data: Any) -> bool:
    """Whether `data` looks like a pandas DataFrame (``columns`` and ``to_numpy``)."""
    return hasattr(data, "columns") and hasattr(data, "to_numpy") and hasattr(data, "__getitem__")


def frame_columns(df: Any, name: str) -> dict[str, np.ndarray]:
    """The columns of a DataFrame, names as ``str``, in order.

    Args:
        df: a pandas DataFrame (or any object with ``columns`` and column indexing).
        name: the argument name used in messages.

    Returns:
        ``{column name: 1-D array}``.

    Raises:
        TypeError: if `df` is not a DataFrame (a dict, a list).
        ValueError: if `df` has several levels of column names (a MultiIndex) or two
            columns share a name.

    Example:
        >>> frame_columns(pd.DataFrame({"age": [41]}), "df")
        {'age': array([41])}
    """
    if not is_frame(df):
        raise TypeError(
            f"`{name}` must be a pandas DataFrame. Received: {name} of type {type(df).__name__}"
        )
    check_one_level(df, name)
    columns: dict[str, np.ndarray] = {}
    for column in df.columns:
        key = str(column)
        if key in columns:
            raise ValueError(f"`{name}` has two columns named {key!r}; rename one.")
        series = df[column]
        values = np.asarray(series.to_numpy())
        if is_category_column(series):  # their category texts: no numeric reading is tried
            values = np.array([None if is_missing(v) else category_text(v) for v in values],
                              dtype=object)
        columns[key] = values
    return columns


def text_dtype_columns(df: Any) -> list[str]:
    """The columns of a DataFrame whose dtype declares text: pandas' ``category`` and
    string dtypes. They are categorical whatever they hold, missing cells only included.

    Args:
        df: a pandas DataFrame (or any object with ``columns`` and column indexing).

    Returns:
        Their names as ``str``, in column order.

    Example:
        >>> text_dtype_columns(pd.DataFrame({"a": [1.0], "k": pd.Categorical([None])}))
        ['k']
    """
    return [str(c) for c in df.columns
            if is_category_column(df[c]) or str(getattr(df[c], "dtype", "")) in ("string", "str")]


def array_columns(x: Any, feature_names: Sequence[str] | None, name: str,
                  names_from: str = "feature_names") -> dict[str, np.ndarray]:
    """The columns of a 2-D array or DataFrame, named by `feature_names`.

    Without `feature_names`, a DataFrame keeps its own column names and an array gets
    ``f0, f1, ...``.

    Args:
        x: a 2-D array-like of shape ``(rows, features)`` (numbers, strings, or mixed), or
            a pandas DataFrame.
        feature_names: one name per column, or None.
        name: the argument name used in messages.
        names_from: what the names come from, for messages: the user's
            ``"feature_names"`` (default), or e.g. ``"x_train"`` for a validation array.

    Returns:
        ``{column name: 1-D array}``.

    Raises:
        TypeError: if `feature_names` is a single string, unordered, or not a sequence.
        ValueError: if `x` is not 2-D or the names do not fit.

    Example:
        >>> list(array_columns(np.zeros((2, 3)), None, "x"))
        ['f0', 'f1', 'f2']
    """
    if feature_names is not None and (
        isinstance(feature_names, (str, bytes, set, frozenset, Mapping))
        or not hasattr(feature_names, "__iter__")
    ):
        raise TypeError(
            "`feature_names` must be a list of column names. "
            f"Received: feature_names={feature_names!r:.80}"
        )
    if is_frame(x):
        # Column by column: np.asarray(frame) would widen a float32 column beside an int
        # one to float64 (0.1 -> 0.10000000149011612) and mixed columns to Python objects.
        found = frame_columns(x, name)
        if feature_names is None and names_from == "feature_names":
            feature_names = list(found)  # a DataFrame keeps its names
        cells = list(found.values())
    else:
        arr = np.asarray(x)
        if arr.dtype.kind in "US" and not isinstance(x, np.ndarray):
            # Rows mixing numbers and text ([[41, "Rome"], ...]): numpy would make every
            # cell text; keep each cell's own type so numeric columns stay numeric.
            arr = np.array(x, dtype=object)
        if arr.ndim != 2:
            raise ValueError(
                f"`{name}` must be 2-D (rows, features). Received: {name} with shape {arr.shape}"
            )
        cells = [arr[:, i] for i in range(arr.shape[1])]
    names = [f"f{i}" for i in range(len(cells))] if feature_names is None else feature_names
    names = [str(c) for c in names]
    if names_from != "feature_names" and len(names) != len(cells):
        raise ValueError(
            f"`{name}` must have the {len(names)} columns of `{names_from}`. Received: "
            f"{name} with {len(cells)} columns"
        )
    if len(names) != len(cells) or len(set(names)) != len(names):
        raise ValueError(
            f"`feature_names` must name each of the {len(cells)} columns of `{name}` once. "
            f"Received: feature_names={feature_names!r}"
        )
    return dict(zip(names, cells))


def frame_columns_by_name(df: Any, expected: Sequence[str], name: str,
                          names_from: str) -> dict[str, np.ndarray]:
    """The columns `expected` of a DataFrame, read by name and returned in that order.

    Args:
        df: a pandas DataFrame (or any object with ``columns`` and column indexing).
        expected: the column names `df` must have, in any order, and no others.
        name: the argument name used in messages.
        names_from: what the names come from, for messages (e.g. ``"x_train"``).

    Returns:
        ``{column name: 1-D array}`` in the order of `expected`.

    Raises:
        TypeError: if `df` is not a DataFrame.
        ValueError: if `df` repeats a column name, lacks a column of `expected` or has one
            more (both named).

    Example:
        >>> list(frame_columns_by_name(pd.DataFrame({"b": [1], "a": [2]}), ["a", "b"],
        ...                            "x_test", "x_train"))
        ['a', 'b']
    """
    found = frame_columns(df, name)
    expected = [str(c) for c in expected]
    missing = [c for c in expected if c not in found]
    unexpected = [c for c in found if c not in expected]
    if missing or unexpected:
        raise ValueError(
            f"`{name}` must have the columns of `{names_from}`, {expected}, in any order "
            f"(a DataFrame is read by column name). Received: {name} lacking {missing} and "
            f"with unexpected columns {preview_values(unexpected, 10)} ({len(unexpected)} in "
            f"all). "
            f"To read its columns by position instead, "
            f"pass {name}.to_numpy()."
        )
    return {c: found[c] for c in expected}


def row_columns(rows: Sequence[Any], expected: Sequence[str], name: str) -> dict[str, list[Any]]:
    """Gathers the columns `expected` from a list of row dicts.

    Args:
        rows: a list of mappings from column name to value.
        expected: the columns to gather.
        name: the argument name used in messages.

    Returns:
        ``{column name: list of values}`` for the expected columns.

    Raises:
        TypeError: if a row is not a mapping, or maps a column to a list or a dict (a
            cell holds one value; the row and column are named).
        ValueError: if a row names one column twice (``1`` and ``"1"``).

    Example:
        >>> row_columns([{"age": 41}], ["age"], "rows")
        {'age': [41]}
    """
    named = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(
                f"`{name}` must hold dict rows ({{column: value}}). Received: {name}[{i}] of "
                f"type {type(row).__name__}"
            )
        cells = row_cells(row, f"{name}[{i}]")
        nested = [c for c in expected if isinstance(cells.get(c), (list, tuple, dict))]
        if nested:
            raise TypeError(
                f"`{name}[{i}]` must map each column to one value (a string, number, boolean "
                f"or None). Received: a list or dict in the columns {nested}"
            )
        named.append(cells)
    return {c: [cells.get(c) for cells in named] for c in expected}


def row_cells(row: Mapping[Any, Any], name: str) -> dict[str, Any]:
    """One row dict with its column names as ``str``, as a DataFrame's names are read.

    Args:
        row: ``{column: value}``, names of any type.
        name: the row's name in messages (``inputs[3]``).

    Returns:
        ``{str(column): value}``.

    Raises:
        ValueError: if two keys read as one name (``1`` and ``"1"``).

    Example:
        >>> row_cells({1: "a"}, "row")
        {'1': 'a'}
    """
    cells = {str(key): value for key, value in row.items()}
    if len(cells) != len(row):
        twice = sorted({str(key) for key in row if sum(str(k) == str(key) for k in row) > 1})
        raise ValueError(
            f"`{name}` names a column twice (two keys that read alike as text, e.g. 1 "
            f"and '1'): {twice[:10]}; keep one."
        )
    return cells


def is_numeric_column(values: Any) -> bool:
    """Whether a column holds numbers only (missing values aside).

    Numeric, boolean and all-missing columns are numeric; a column with any string (or
    other object) is categorical.

    Example:
        >>> is_numeric_column(np.array([1.5, None], dtype=object))
        True
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iufb":
        return True
    return all(
        is_missing(v) or (isinstance(v, numbers.Real) and not isinstance(v, str)) for v in arr
    )


_DURATIONS = (datetime.timedelta, np.timedelta64)
# Boolean columns are numeric (a DataFrame's bool dtype; a CSV file's true/false cells);
# in a categorical column, a truth value meets the category reading as it, in any case.
_BOOL_WORDS = {"true": 1.0, "false": 0.0}
# Texts that files write for a missing number (R's NA, SQL's NULL, spreadsheets' #N/A, as
# pandas reads them), besides "" and "nan", which read as missing already.
_MISSING_WORDS = frozenset({"na", "n/a", "#n/a", "#na", "<na>", "null", "none"})


def is_missing_word(text: str) -> bool:
    """Whether a cell's text marks a missing number (``NA``, ``N/A``, ``#N/A``, ``NULL``,
    ``None``, ``<NA>``, any case), as a numeric column reads it.

    Example:
        >>> is_missing_word(" NA "), is_missing_word("Napoli")
        (True, False)
    """
    return text.strip().lower() in _MISSING_WORDS


def _seconds(duration: Any) -> float:
    """A duration (`datetime.timedelta`, numpy or pandas) in seconds; NaT as NaN."""
    if is_missing(duration):
        return math.nan
    if isinstance(duration, np.timedelta64):
        return float(duration / np.timedelta64(1, "s"))
    return duration.total_seconds()


def numeric_values(values: Any, column: str, name: str) -> np.ndarray:
    """Reads a numeric column as float32, missing values as NaN.

    Numbers and strings holding numbers are read; booleans and the strings ``true`` /
    ``false`` (any case) as 1 / 0; ``None``, NaN, ``""`` and the texts `is_missing_word`
    knows (``"NA"``, ``"NULL"``, ...) are missing; durations
    (`datetime.timedelta`, numpy or pandas) are read in seconds.

    Args:
        values: the column's values.
        column: the column name, for messages.
        name: the argument name, for messages.

    Returns:
        A float32 array.

    Raises:
        ValueError: for a value that is not a number, or an infinite one (row named).

    Example:
        >>> numeric_values([1, None, "2.5"], "age", "rows")
        array([1. , nan, 2.5], dtype=float32)
    """
    if isinstance(values, np.ndarray):
        arr = values
    else:  # object dtype keeps each value as given ([1, "a"] would become strings)
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    if arr.dtype.kind in "iufb":
        out = arr.astype(np.float32)
    elif arr.dtype.kind == "m":
        out = np.array([_seconds(v) for v in arr], dtype=np.float32)
    else:
        out = np.empty(len(arr), dtype=np.float32)
        for i, v in enumerate(arr):
            if is_missing(v) or (isinstance(v, str) and (not v.strip() or is_missing_word(v))):
                out[i] = np.nan
                continue
            if isinstance(v, str) and v.strip().lower() in _BOOL_WORDS:
                out[i] = _BOOL_WORDS[v.strip().lower()]
                continue
            try:
                if isinstance(v, (bytes, bytearray)):
                    raise TypeError
                out[i] = _seconds(v) if isinstance(v, _DURATIONS) else float(v)
            except OverflowError:  # an int beyond any float
                out[i] = np.inf  # refused as infinite below
            except (TypeError, ValueError):
                shown = v.item() if isinstance(v, np.generic) else v
                raise ValueError(
                    f"Column {column!r} of `{name}` is numeric but row {i} holds {shown!r:.60}. "
                    "Pass a number, or None for a missing value."
                ) from None
    bad = np.flatnonzero(np.isinf(out))
    if bad.size:
        raise ValueError(
            f"Column {column!r} of `{name}` holds an infinite value, or one beyond float32 "
            f"(about 3.4e38), at row {int(bad[0])}; use a finite number or None for a "
            "missing value."
        )
    return out


# Date categories an older ktlite wrote otherwise than `category_text` does today: a
# time-zone-aware date as `str()` writes it ("2020-01-02 10:30:00+00:00", before
# 2026-12-06), and a fraction of a second with every digit of its column's unit
# ("10:30:00.500000000" for nanoseconds, before 2026-12-08).
_SPACED_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
_FRACTION_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}")


def current_categories(categories: Sequence[str]) -> list[str]:
    """Categories saved by an older ktlite (a file without ``category_form``) as
    `category_text` writes them today: date categories in today's form, anything else
    unchanged. A category whose new form is already one of `categories` keeps its old
    form, so no two categories become one.

    Args:
        categories: a categorical column's saved categories.

    Returns:
        The categories, in the same order.

    Example:
        >>> current_categories(["2020-01-02 10:30:00+00:00", "2020-01-02T10:30:00.500000",
        ...                     "Rome"])
        ['2020-01-02T10:30:00+00:00', '2020-01-02T10:30:00.500', 'Rome']
    """
    seen = set(categories)
    out = []
    for category in categories:
        new = category
        if _SPACED_STAMP.fullmatch(category):
            new = category.replace(" ", "T", 1)
        elif _FRACTION_STAMP.fullmatch(category):
            new = category_text(np.datetime64(category))
        if new != category and new in seen:
            new = category
        seen.add(new)
        out.append(new)
    return out


def category_text(value: Any) -> str:
    """The text a categorical cell is known by: whole floats as ints, missing as ``""``,
    dates and times in ISO form (``2020-01-02``, ``2020-01-02T10:30:00``, a fraction of a
    second in as few of 3, 6 or 9 digits as it needs: ``2020-01-02T10:30:00.500``, with its offset
    when it has a time zone: ``2020-01-02T10:30:00+00:00``, as `isoformat()` writes it),
    whichever type holds them (numpy, pandas, `datetime`), so a JSON request's date string
    matches, in any year numpy holds (``9999-12-31`` too);
    durations as their seconds, like numbers (``"3600"``). A float32 (or float16) value is
    written as its shortest text, ``"0.1"`` rather than the widened
    ``"0.10000000149011612"``, so a dict or JSON row sending 0.1 matches it.

    Example:
        >>> category_text(3.0), category_text("Rome"), category_text(None)
        ('3', 'Rome', '')
    """
    if is_missing(value):
        return MISSING_CATEGORY
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.isoformat()  # the offset kept: 2020-01-02T10:30:00+00:00
    if isinstance(value, (np.datetime64, datetime.date)):
        # The value's own unit: a cast to ns would wrap dates outside 1677-2262 silently.
        stamp = np.datetime64(value)
        for unit in ("D", "s", "ms", "us"):
            if stamp == stamp.astype(f"datetime64[{unit}]"):
                return str(stamp.astype(f"datetime64[{unit}]"))
        return str(stamp)
    if isinstance(value, _DURATIONS):  # before Integral: numpy durations are integers
        value = _seconds(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        if isinstance(value, np.floating) and value.dtype.itemsize < 8:
            # float32 0.1 widened is 0.10000000149011612; its shortest text ("0.1", as a
            # dict or JSON row sends it) is the category.
            value = str(value)
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def number_categories(categories: Sequence[str]) -> dict[decimal.Decimal | str, str]:
    """Maps each number or truth value a category's text reads as to that category, for
    `category_values`.

    A category takes part when its text parses as a finite float (``"00501"``,
    ``"1.50"``); the key is the text's exact decimal value, so ``"00501"`` and ``501``
    meet, and two long integer codes that one float cannot tell apart stay apart. A
    category reading ``true`` or ``false`` in any case (a CSV file's ``"true"``, a bool
    column's ``"True"``) takes part under the key ``"true"`` or ``"false"``. A key that two
    or more categories read as (``"501"`` and ``"00501"``, ``"true"`` and ``"TRUE"``) is
    left out: which one a numeric 501 or a boolean means is ambiguous.

    Args:
        categories: a categorical column's fitted categories.

    Returns:
        ``{decimal.Decimal: category}`` for every unambiguous number and ``{"true" or
        "false": category}`` for every unambiguous truth value.

    Example:
        >>> number_categories(["00501", "1.50", "Rome", "501", "0501", "True"])
        {Decimal('1.50'): '1.50', 'true': 'True'}
    """
    found: dict[decimal.Decimal | str, list[str]] = {}
    for category in categories:
        word = category.strip().lower()
        if word in _BOOL_WORDS:
            found.setdefault(word, []).append(category)
            continue
        try:
            if not math.isfinite(float(category)):
                continue
            key = decimal.Decimal(category)
        except (ValueError, ArithmeticError):  # not a number (decimal errors are arithmetic)
            continue
        found.setdefault(key, []).append(category)
    return {key: names[0] for key, names in found.items() if len(names) == 1}


def _is_number(value: Any) -> bool:
    """Whether a cell is a number (int or float, Python or numpy): not text, a boolean or a
    duration (numpy durations are integers to `numbers`)."""
    return isinstance(value, numbers.Real) and not isinstance(
        value, (bool, np.bool_, np.timedelta64)
    )


def category_values(values: Any, column: str, name: str,
                    by_number: Mapping[decimal.Decimal | str, str] | None = None) -> np.ndarray:
    """Reads a categorical column as an object array of ``str`` (see `category_text`).

    Args:
        values: the column's cells.
        column: the column's name, for messages.
        name: the argument the column came in, for messages.
        by_number: the column's `number_categories`, or None. A cell holding a number
            then becomes the category whose text reads as that number when its own text
            is not a category: a CSV file's ``"00501"`` kept as written meets the 501 that
            `pandas.read_csv` or a JSON row sends. Text cells are never read as numbers
            (the string ``"501"`` stays ``"501"``). A boolean cell, or a text reading
            ``true`` / ``false`` in any case, becomes the category reading as the same
            truth value: ``True`` meets a CSV file's ``"true"``, and ``"true"`` a bool
            column's ``"True"``.

    Returns:
        The cells' texts, an object array.

    Raises:
        TypeError: for a cell holding a list, tuple, dict, set or array (row named), as a
            dict row holding one is refused.
        ValueError: for a text that is not valid Unicode (a lone surrogate; row named).

    Example:
        >>> category_values(["Rome", None, 2], "city", "rows")
        array(['Rome', '', '2'], dtype=object)
        >>> category_values([501, "501"], "zip", "rows", number_categories(["00501"]))
        array(['00501', '501'], dtype=object)
        >>> category_values([True, "FALSE"], "flag", "rows", number_categories(["true", "false"]))
        array(['true', 'false'], dtype=object)
    """
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, (list, tuple, dict, set, np.ndarray)):
            raise TypeError(
                f"Column {column!r} of `{name}` must hold one value a cell (a string, number, "
                f"boolean or None). Received: a {type(value).__name__} in row {i}"
            )
        out[i] = category_text(value)
        if by_number and out[i] and _is_number(value):
            try:
                # The key of the value's own text: float32 0.1 is "0.1", as fitted.
                out[i] = by_number.get(decimal.Decimal(out[i]), out[i])
            except ArithmeticError:  # "inf" parses; anything else is no number to match
                pass
        elif by_number and out[i].strip().lower() in _BOOL_WORDS:  # True, "true", "TRUE"
            out[i] = by_number.get(out[i].strip().lower(), out[i])
        try:
            out[i].encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"Column {column!r} of `{name}` holds a lone surrogate (half of a character, "
                f"e.g. from a bad decode) in row {i}; send valid Unicode."
            ) from None
    return out
