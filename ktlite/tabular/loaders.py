"""Loaders that turn tables into ``(trn, val, preproc)``: DataFrames, arrays, CSV files.

Every loader ends in `_from_columns`: labels are read from all training labels, column
statistics and vocabularies from the training rows only (after the validation split), and
``trn``/``val`` are `ktlite.data.TaskDataset` objects holding the raw batch
(``{"numeric", "categorical"}`` matrices), the encoded labels and ``preproc.transform``
as their in-graph transform.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ktlite.arguments import check_seed, check_verbose
from ktlite._console import say
from ktlite.columns import (
    label_column_list,
    label_columns_and_classes,
    read_csv_rows,
    written_as_codes,
)
from ktlite.splits import check_val_pct, describe_holdout, split_indices
from ktlite.tabular import columns as _columns
from ktlite.tabular.preprocessor import DEFAULT_MAX_CATEGORIES, TabularPreprocessor

_INT = re.compile(r"^[+-]?\d+$")


def _check_options(val_pct: Any, random_state: Any, verbose: Any) -> float:
    check_seed(random_state, "random_state")
    check_verbose(verbose)
    return check_val_pct(val_pct)


def _take(columns: Mapping[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {c: np.asarray(v)[idx] for c, v in columns.items()}


def _split_labels(
    found: dict[str, np.ndarray], name: str, labels: list[str], ignore: list[str]
) -> tuple[dict[str, np.ndarray], Any]:
    """Separates the label columns (and ignored ones) from the feature columns."""
    absent = [c for c in labels + ignore if c not in found]
    if absent:
        raise ValueError(
            f"Columns {absent} are not in `{name}`; it has columns {list(found)}. Set "
            "`label_columns` / `ignore_columns`."
        )
    y = found[labels[0]] if len(labels) == 1 else np.stack([found[c] for c in labels], axis=1)
    features = {c: v for c, v in found.items() if c not in labels and c not in ignore}
    return features, y


def _from_columns(
    x_train: dict[str, np.ndarray],
    y_train: Any,
    x_val: dict[str, np.ndarray] | None,
    y_val: Any,
    dropped: list[str],
    *,
    val_pct: float,
    random_state: int | None,
    numeric_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
    max_categories: int,
    label_mode: str | None,
    class_names: Sequence[str] | None,
    verbose: int,
    names: tuple[str, str, str, str] = ("x_train", "y_train", "x_test", "y_test"),
    text_columns: Sequence[str] = (),
) -> tuple[Any, Any, TabularPreprocessor]:
    """The datasets and fitted preprocessor; `names` are what errors call the training
    features and labels and the validation features and labels; `text_columns` are the
    training DataFrame's `_columns.text_dtype_columns`."""
    val_pct = _check_options(val_pct, random_state, verbose)
    x_name, y_name, x_val_name, y_val_name = names
    n = _columns_length(x_train, x_name)
    if y_train is not None and not hasattr(y_train, "__len__"):
        raise TypeError(f"`{y_name}` must be a list or array of labels. Received: {y_name} "
                        f"of type {type(y_train).__name__}")
    if y_train is None or len(y_train) != n:
        raise ValueError(
            f"`{y_name}` must hold one label per row. Received: {n} rows and "
            f"{'no' if y_train is None else len(y_train)} labels"
        )
    if x_val is None:
        # Column kinds are read off every row before the split, so that they do not depend
        # on which rows are held out, and a bad cell is named by its row in `x_name`.
        kinds = TabularPreprocessor(numeric_columns, categorical_columns, max_categories)
        kinds.fit_columns(x_train, dropped_columns=dropped, name=x_name,
                          text_columns=text_columns)
        numeric_columns = [column["name"] for column in kinds.numeric]
        categorical_columns = [column["name"] for column in kinds.categorical]
    preproc = TabularPreprocessor(
        numeric_columns, categorical_columns, max_categories, label_mode, class_names
    )
    y_enc = preproc.fit_labels(y_train, name=y_name).encode_labels(y_train, name=y_name)
    if x_val is None:
        stratify = preproc.label_mode == "multiclass"
        trn_idx, val_idx = split_indices(y_enc, stratify, val_pct, random_state, "rows")
        x_val, y_val_enc = _take(x_train, val_idx), y_enc[val_idx]
        x_train, y_enc = _take(x_train, trn_idx), y_enc[trn_idx]
        source = describe_holdout(val_pct, "the rows", stratify)
    else:
        m = _columns_length(x_val, x_val_name)
        if y_val is None or not hasattr(y_val, "__len__") or len(y_val) != m:
            raise ValueError(
                f"`{y_val_name}` must hold one label per validation row. Received: {m} rows "
                f"and {len(y_val) if hasattr(y_val, '__len__') else 'no'} labels"
            )
        y_val_enc = preproc.encode_labels(y_val, name=y_val_name)
        source = "given validation rows"
    preproc.fit_columns(x_train, dropped_columns=dropped, name=x_name, text_columns=text_columns)
    if verbose:
        say(
            f"{len(y_enc):,} training and {len(y_val_enc):,} validation rows ({source}); "
            f"{len(preproc.numeric)} numeric and {len(preproc.categorical)} categorical "
            f"columns; {_describe_labels(preproc)}"
        )

    def dataset(columns: Mapping[str, Any], y: np.ndarray, name: str) -> Any:
        preproc._check_names(list(columns), name)
        return _table_dataset(preproc.raw_batch(columns, name), y, preproc)

    val = dataset(x_val, y_val_enc, x_val_name) if len(y_val_enc) else None
    return dataset(x_train, y_enc, x_name), val, preproc


def tabular_dataset(rows: Any, labels: Any, preproc: TabularPreprocessor) -> Any:
    """A `TaskDataset` of new rows for a fitted `TabularPreprocessor`, e.g. a test set.

    The loaders build their own datasets the same way, so `Learner.predict(rows)` and
    `Learner.validate(val_data=(rows, labels))` read raw rows through it too.

    Args:
        rows: a DataFrame (a label column the loader dropped is ignored), a list of
            ``{column: value}`` rows, one such dict or pandas Series, or a 2-D array in the training
            column order (see `TabularPreprocessor.to_columns`).
        labels: one label per row, in the form the loader took, or `None`.
        preproc: the fitted preprocessor.

    Returns:
        A `ktlite.data.TaskDataset` of the raw batch, the encoded labels,
        `preproc.transform` and the classification reporter `Learner.validate` prints.

    Raises:
        TypeError: if `preproc` is not a `TabularPreprocessor`, or for rows of another kind.
        ValueError: for an unfitted preprocessor, no rows, missing or unknown columns,
            values a numeric column cannot hold, a number of labels other than the number
            of rows, or labels outside the classes.

    Example:
        >>> test = tabular_dataset(test_df, test_df["income"], preproc)
        >>> learner.validate(test)
    """
    TabularPreprocessor.check_instance(preproc)
    raw = preproc.raw_batch(preproc.to_columns(rows, "rows"), "rows")
    n = len(next(iter(raw.values())))
    y = preproc.encode_labels_of(labels, n, "row")
    return _table_dataset(raw, y, preproc)


def _table_dataset(raw: dict[str, np.ndarray], y: Any, preproc: TabularPreprocessor) -> Any:
    from ktlite.classifier import classification_reporter
    from ktlite.data import TaskDataset

    return TaskDataset(raw, y, preproc.transform, task="tabular",
                       reporter=classification_reporter(preproc.labels),
                       reader=functools.partial(tabular_dataset, preproc=preproc),
                       preproc=preproc)


def _columns_length(columns: Mapping[str, Any], name: str) -> int:
    lengths = {len(v) for v in columns.values()}
    if not lengths:
        raise ValueError(f"`{name}` must hold at least one feature column. Received: none")
    if len(lengths) > 1 or 0 in lengths:
        raise ValueError(
            f"`{name}` columns must be non-empty and of one length. Received: {sorted(lengths)}"
        )
    return lengths.pop()


def _describe_labels(preproc: TabularPreprocessor) -> str:
    if preproc.label_mode == "regression":
        return f"regression with {preproc.num_outputs} target(s)"
    names = preproc.class_names or []
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"{preproc.label_mode} with {len(names)} classes: {shown}"


def tabular_from_df(
    train_df: Any,
    label_columns: str | Sequence[str],
    val_df: Any = None,
    val_pct: float = 0.1,
    numeric_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    ignore_columns: Sequence[str] | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    random_state: int | None = 42,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    verbose: int = 1,
) -> tuple[Any, Any, TabularPreprocessor]:
    """Builds training and validation data and a fitted `TabularPreprocessor` from DataFrames.

    Every column but the labels (and `ignore_columns`) is a feature: numeric when it holds
    only numbers (missing values aside) in any row of `train_df`, held-out rows included,
    categorical otherwise or when its dtype declares text (pandas' ``category`` or a string
    dtype; an all-missing one too), unless named in
    `numeric_columns` / `categorical_columns`. Missing values (None, NaN, pandas NA) are
    allowed in features, not in labels. With several label columns the column names become
    the class names (0/1 columns) unless `label_mode="regression"`.

    Args:
        train_df: the training DataFrame.
        label_columns: the label column, or a list of them.
        val_df: a validation DataFrame with the same columns; when None, `val_pct` of the
            training rows are held out (stratified by class for multiclass labels).
        val_pct: the share held out when `val_df` is None (default 0.1; 0: no validation data).
        numeric_columns: columns forced numeric.
        categorical_columns: columns forced categorical (e.g. integer codes).
        ignore_columns: columns that are neither features nor labels (e.g. an id);
            ignored in prediction inputs too.
        max_categories: the most categories kept per column (default 1000).
        random_state: seed of the validation split (default 42; None for a random one).
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"`` or None (detect).
        class_names: class names in output order; inferred (sorted) when None; for several
            label columns see `ktlite.columns.label_columns_and_classes`.
        verbose: 1 reports what was read and learned; 0 is silent.

    Returns:
        ``(trn, val, preproc)``: two `ktlite.data.TaskDataset` objects (``task="tabular"``,
        transform ``preproc.transform``; ``val`` is None with ``val_pct=0``) and the
        fitted `TabularPreprocessor`.

    Raises:
        TypeError: for a ``train_df`` or ``val_df`` that is not a DataFrame,
            ``label_columns`` or ``ignore_columns`` that are not a column name or a list
            of them, a ``random_state`` that is not an int, or ``class_names`` that is not
            a list of strings.
        ValueError: for missing columns, missing labels, non-numeric values in a numeric
            column, a single class, validation labels never seen in training, or invalid
            options.

    Example:
        >>> trn, val, preproc = tabular_from_df(df, label_columns="income", val_pct=0.2)
        >>> preproc.categorical_columns
        ['city', 'job']
    """
    val = None if val_df is None else _columns.frame_columns(val_df, "val_df")
    return _from_tables(
        (_columns.frame_columns(train_df, "train_df"), "train_df"), (val, "val_df"),
        label_columns, ignore_columns, val_pct=val_pct, random_state=random_state,
        numeric_columns=numeric_columns, categorical_columns=categorical_columns,
        max_categories=max_categories, label_mode=label_mode, class_names=class_names,
        verbose=verbose, text_columns=_columns.text_dtype_columns(train_df),
    )


def _from_tables(
    train: tuple[dict[str, np.ndarray], str],
    val: tuple[dict[str, np.ndarray] | None, str],
    label_columns: Any,
    ignore_columns: Any,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    **options: Any,
) -> tuple[Any, Any, TabularPreprocessor]:
    """Splits label and feature columns of named tables and calls `_from_columns`."""
    labels, class_names = label_columns_and_classes(label_columns, class_names, label_mode)
    ignore = [] if ignore_columns is None else label_column_list(ignore_columns, "ignore_columns")
    x_train, y_train = _split_labels(*train, labels, ignore)
    x_val = y_val = None
    if val[0] is not None:
        x_val, y_val = _split_labels(*val, labels, ignore)
    label_key = repr(labels[0]) if len(labels) == 1 else repr(labels)
    names = (train[1], f"{train[1]}[{label_key}]", val[1], f"{val[1]}[{label_key}]")
    return _from_columns(
        x_train, y_train, x_val, y_val, labels + ignore, label_mode=label_mode,
        class_names=class_names, names=names, **options,
    )


def tabular_from_array(
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    y_test: Any = None,
    feature_names: Sequence[str] | None = None,
    val_pct: float = 0.1,
    numeric_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    random_state: int | None = 42,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    verbose: int = 1,
) -> tuple[Any, Any, TabularPreprocessor]:
    """Builds training and validation data from 2-D arrays of features and a label array.

    Args:
        x_train: features of shape ``(rows, features)``: numbers, strings or a mixed
            object array (None/NaN for missing values), or a pandas DataFrame. The columns
            of a string array (``np.array(rows)`` of rows mixing numbers and text) are
            read as a CSV file's are: numbers as numbers, unless `categorical_columns`
            names them or they are codes with a leading zero.
        y_train: one label per row (class names or ids, floats for regression, a one-hot
            or 0/1 matrix; see `ktlite.labels`).
        x_test: validation features; when None, `val_pct` of the rows are held out. An
            array is read by position, its columns in `x_train`'s order; a DataFrame by
            column name, in any order, its names those of `x_train` (a DataFrame's
            own names, else the feature names).
        y_test: validation labels, required with `x_test`.
        feature_names: a name per column (default: a DataFrame's column names, else
            ``f0, f1, ...``); rows given to the predictor as dicts use these names.
        val_pct: the share held out when `x_test` is None (default 0.1; 0: no validation data).
        numeric_columns: columns forced numeric (by name).
        categorical_columns: columns forced categorical (by name).
        max_categories: the most categories kept per column (default 1000).
        random_state: seed of the validation split (default 42).
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"`` or None (detect).
        class_names: class names in output order; inferred (sorted) when None.
        verbose: 1 reports what was read and learned; 0 is silent.

    Returns:
        ``(trn, val, preproc)`` as in `tabular_from_df`.

    Raises:
        ValueError: for arrays that are not 2-D, lengths that differ, `x_test` without
            `y_test`, an `x_test` DataFrame whose column names are not `x_train`'s (the
            missing and unexpected ones named), or any error `tabular_from_df` raises.

    Example:
        >>> from sklearn.datasets import load_wine
        >>> x, y = load_wine(return_X_y=True)
        >>> trn, val, preproc = tabular_from_array(x, y, val_pct=0.2)
    """
    if (x_test is None) != (y_test is None):
        raise ValueError("`x_test` and `y_test` must be given together.")
    keep_text = ([str(c) for c in categorical_columns]
                 if isinstance(categorical_columns, (list, tuple)) else [])
    train = _typed_text_array(_columns.array_columns(x_train, feature_names, "x_train"),
                              x_train, keep_text)
    val = None if x_test is None else _typed_text_array(
        _test_columns(x_test, x_train, list(train)), x_test, keep_text)
    text_columns: list[str] = []
    if _columns.is_frame(x_train):  # under the names `train` gives them
        declared = _columns.text_dtype_columns(x_train)
        text_columns = [c for c, own in zip(train, x_train.columns) if str(own) in declared]
    return _from_columns(
        train, y_train, val, y_test, [], val_pct=val_pct, random_state=random_state,
        numeric_columns=numeric_columns, categorical_columns=categorical_columns,
        max_categories=max_categories, label_mode=label_mode, class_names=class_names,
        verbose=verbose, text_columns=text_columns,
    )


def _test_columns(x_test: Any, x_train: Any, names: list[str]) -> dict[str, np.ndarray]:
    """`x_test`'s columns under the training names `names`: a DataFrame by column name
    (x_train's own column names when it is a DataFrame, else `names`), as a predictor
    reads it; an array by position."""
    if not _columns.is_frame(x_test):
        return _columns.array_columns(x_test, names, "x_test", "x_train")
    expected = [str(c) for c in x_train.columns] if _columns.is_frame(x_train) else names
    found = _columns.frame_columns_by_name(x_test, expected, "x_test", "x_train")
    return dict(zip(names, found.values()))


def _read_csv(path: Any, sep: str, encoding: str, arg: str,
              text_columns: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Reads a CSV file with a header, each column typed by `_typed_column`; the columns
    in `text_columns` (declared categorical, or ignored) stay text as written."""
    header, rows, _ = read_csv_rows(path, None, sep, encoding, arg)
    return {column: _typed_column([row[j] for row in rows], column in text_columns)
            for j, column in enumerate(header)}


def _typed_column(cells: list[str], as_text: bool) -> np.ndarray:
    """A column of texts (a CSV file's, a string array's) typed: integers as ints (beyond
    int64: floats), other numbers as floats (empty cells and the texts
    `columns.is_missing_word` knows, such as "NA", missing), ``true`` / ``false`` (any
    case) as booleans, numeric as a DataFrame's bool column is, the rest as text (empty
    cells None). With `as_text`, and for integers written as codes (one with a leading
    zero, such as "00501"), the texts as written."""
    missing = [not c.strip() or _columns.is_missing_word(c) for c in cells]
    if not as_text and not written_as_codes([c for c, m in zip(cells, missing) if not m]):
        try:
            if cells and all(_INT.match(c.strip()) for c in cells):
                return np.array([int(c) for c in cells], np.int64)
        except OverflowError:  # beyond int64: read as floats below
            pass
        try:
            return np.array([np.nan if m else float(c) for c, m in zip(cells, missing)],
                            np.float64)
        except ValueError:
            pass
    values = np.empty(len(cells), dtype=object)
    words = {c.strip().lower() for c, m in zip(cells, missing) if not m}
    if not as_text and words and words <= {"true", "false"}:
        values[:] = [None if m else c.strip().lower() == "true"
                     for c, m in zip(cells, missing)]
    else:
        values[:] = [c if c.strip() else None for c in cells]
    return values


def _typed_text_array(columns: dict[str, np.ndarray], array: Any,
                      keep_text: Sequence[str]) -> dict[str, np.ndarray]:
    """`columns` of a string array (``np.array(rows)`` of rows mixing numbers and text)
    typed as a CSV file's are (`_typed_column`), those in `keep_text` (declared
    categorical) aside; the columns of any other `array` unchanged."""
    if not (isinstance(array, np.ndarray) and array.dtype.kind in "US"):
        return columns
    return {name: _typed_column([str(c) for c in cells], name in keep_text)
            for name, cells in columns.items()}


def tabular_from_csv(
    train_filepath: str | os.PathLike,
    label_columns: str | Sequence[str],
    val_filepath: str | os.PathLike | None = None,
    val_pct: float = 0.1,
    numeric_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    ignore_columns: Sequence[str] | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    random_state: int | None = 42,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    sep: str = ",",
    encoding: str = "utf-8",
    verbose: int = 1,
) -> tuple[Any, Any, TabularPreprocessor]:
    """Builds training and validation data from CSV files with a header row.

    A column whose non-empty cells all read as numbers, or are all ``true`` / ``false`` (any
    case, read as 1 / 0 like a DataFrame's bool column), is numeric (empty cells are
    missing); any other column is categorical (empty cells are the missing category).
    Integer label columns are classes; other numbers a regression target.

    Args:
        train_filepath: the training CSV file.
        label_columns: the label column, or a list of them.
        val_filepath: a validation CSV file with the same columns; when None, `val_pct`
            of the training rows are held out.
        val_pct: see `tabular_from_df`.
        numeric_columns: see `tabular_from_df`.
        categorical_columns: see `tabular_from_df`.
        ignore_columns: see `tabular_from_df`.
        max_categories: see `tabular_from_df`.
        random_state: see `tabular_from_df`.
        label_mode: see `tabular_from_df`.
        class_names: see `tabular_from_df`.
        sep: the field delimiter (default ``","``).
        encoding: the file encoding (default ``"utf-8"``).
        verbose: 1 reports what was read and learned; 0 is silent.

    Returns:
        ``(trn, val, preproc)`` as in `tabular_from_df`.

    Raises:
        TypeError: for a file path that is not a str or path, a `sep` or `encoding`
            that is not a str, or any type error `tabular_from_df` raises.
        ValueError: for a missing or malformed file, a `sep` of more than one character,
            an unknown `encoding`, or any error `tabular_from_df` raises.

    Example:
        >>> trn, val, preproc = tabular_from_csv("adult.csv", label_columns="income")
    """
    text = []  # what these name stays text; bad values are refused by name later
    for names in (categorical_columns, ignore_columns):
        names = [names] if isinstance(names, str) else names
        if isinstance(names, (list, tuple)):
            text += [name for name in names if isinstance(name, str)]
    val = None if val_filepath is None else _read_csv(val_filepath, sep, encoding,
                                                      "val_filepath", text)
    return _from_tables(
        (_read_csv(train_filepath, sep, encoding, "train_filepath", text), "train_filepath"),
        (val, "val_filepath"), label_columns, ignore_columns, val_pct=val_pct,
        random_state=random_state, numeric_columns=numeric_columns,
        categorical_columns=categorical_columns, max_categories=max_categories,
        label_mode=label_mode, class_names=class_names, verbose=verbose,
    )
