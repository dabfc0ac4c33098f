"""Label detection, encoding and decoding, shared by every task that classifies or regresses.

Three label modes are supported, detected from the training labels unless ``label_mode``
is given:

* ``"multiclass"``: one class per example. Detected for strings, booleans, integers and
  one-hot matrices (a 0/1 matrix whose rows each hold exactly one 1). Encoded as ``int32``
  class ids.
* ``"multilabel"``: any number of classes per example. Detected for lists of labels
  (``[["news", "sport"], []]``) and 0/1 matrices whose rows do not all hold exactly one 1.
  Encoded as a ``float32`` 0/1 matrix of shape ``(n, num_classes)``.
* ``"regression"``: a numeric target. Detected for floats that are not all whole numbers
  and for float matrices (several targets). Encoded as ``float32``.

Ambiguous inputs raise a ``ValueError`` that names the fix rather than guessing:

* floats that are all whole numbers (``[1.0, 2.0, 5.0]``, typical of a CSV column of star
  ratings or of an integer column with missing values) could be classes or a numeric
  target: pass ``label_mode="multiclass"`` or ``label_mode="regression"``;
* an integer matrix that is not 0/1 could be rows of label ids or several numeric targets:
  pass ``label_mode="multilabel"`` or ``label_mode="regression"``.

A 0/1 matrix whose rows each hold exactly one 1 is read as one-hot multiclass labels; pass
``label_mode="multilabel"`` if it is a multilabel matrix that happens to have one label per
row. Python lists of equal-length lists of numbers are read as a matrix, like a 2-D array.
Integers are always read as classes (pass ``label_mode="regression"`` for a numeric target
that only takes whole values).

Class names are strings. Inferred class names are sorted: strings in code-point order,
integers and booleans numerically (then written as text: ``3`` becomes ``"3"``), so the
same labels always give the same class ids. Integer labels are matched to class names by
their text when every label is found that way, and otherwise used as indices into the
class names (``y=[0, 1]`` with ``class_names=["neg", "pos"]``), unless a class name is
itself an integer (classes ``"1"`` to ``"5"`` from star ratings), where a position would
be ambiguous and an unknown label is refused.
"""

from __future__ import annotations

import numbers
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ktlite._console import warn
from ktlite.arguments import (
    check_choice,
    check_instance,
    check_int,
    check_positive_int,
    is_missing,
)
from ktlite.columns import category_labels, is_category_column, label_text

LABEL_MODES = ("multiclass", "multilabel", "regression")

# The kinds of raw labels recognised before a label mode is chosen.
_STRINGS = "strings"
_INTS = "ints"
_FLOATS = "floats"
_LISTS = "lists"
_MATRIX = "matrix"


_PREVIEW_CHARS = 60


def preview_values(values: Sequence[Any], limit: int = 5) -> str:
    """The first `limit` values as a list for an error message, `...` marking the rest.

    Each value's repr is cut to 60 characters (`...` marking the cut), so a message (and
    a served 4xx answer quoting it) stays short whatever a caller sent.

    Args:
        values: labels, class names or any sequence.
        limit: how many to show.

    Returns:
        E.g. `"['a', 'b', ...]"`.

    Example:
        >>> preview_values(["a", "b", "c"], limit=2)
        "['a', 'b', ...]"
    """
    shown = []
    for value in list(values)[:limit]:
        text = repr(value)
        shown.append(text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS - 3] + "...")
    listed = ", ".join(shown)
    return f"[{listed}, ...]" if len(values) > limit else f"[{listed}]"


def _is_sequence_label(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray))


def _is_numeric_table(rows: list[Any]) -> bool:
    """Whether rows of equal length hold only numbers (a label matrix, not label lists)."""
    width = len(rows[0])
    return width > 0 and all(
        len(row) == width
        and all(
            isinstance(v, (numbers.Number, np.number, np.bool_)) and not is_missing(v)
            for v in row
        )
        for row in rows
    )


def _as_array(y: Any, name: str) -> np.ndarray:
    """Turns lists, tuples, numpy arrays and pandas objects into a numpy array; a pandas
    ``category`` Series into its cells' texts (missing cells None)."""
    if y is None:
        raise TypeError(f"`{name}` must hold labels. Received: {name}=None")
    if isinstance(y, (str, bytes)):
        raise TypeError(
            f"`{name}` must be a sequence of labels, not a single string. Received: {name}={y!r}"
        )
    if isinstance(y, (Mapping, set, frozenset)):
        raise TypeError(
            f"`{name}` must be a sequence of labels, one per example in order; a "
            f"{type(y).__name__} has no order (its keys would be read as the labels). "
            f"Received: {name} of type {type(y).__name__}"
        )
    if is_category_column(y):
        y = category_labels(y)  # class names, as every loader reads a category column
    elif hasattr(y, "to_numpy"):  # pandas Series / DataFrame, without importing pandas
        y = y.to_numpy()
    if not isinstance(y, Iterable) or (isinstance(y, np.ndarray) and y.ndim == 0):
        raise TypeError(f"`{name}` must be a sequence of labels. Received: {name}={y!r}")
    if isinstance(y, np.ndarray):
        arr = y
    else:
        items = list(y)
        if items and all(_is_sequence_label(v) for v in items) and _is_numeric_table(items):
            arr = np.asarray([list(v) for v in items])
        else:
            # An object array, so that mixed types are caught rather than cast to str.
            arr = np.empty(len(items), dtype=object)
            arr[:] = [list(v) if _is_sequence_label(v) else v for v in items]
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim > 2:
        raise ValueError(
            f"`{name}` must be 1-D (one label per text) or 2-D (a label matrix). "
            f"Received: {name} with shape {arr.shape}"
        )
    return arr


def _object_kind(arr: np.ndarray, name: str) -> tuple[str, np.ndarray]:
    """Classifies a 1-D object array and converts it to a typed array where possible."""
    kinds = set()
    for i, v in enumerate(arr):
        if is_missing(v):
            raise ValueError(
                f"`{name}` holds a missing label (None or NaN) at index {i}. "
                f"Drop or fill missing labels first. Received: {name}[{i}]={v!r}"
            )
        if isinstance(v, list):
            kinds.add(_LISTS)
        elif isinstance(v, (str, np.str_)):
            kinds.add(_STRINGS)
        elif isinstance(v, (bool, np.bool_, numbers.Integral)):
            kinds.add(_INTS)
        elif isinstance(v, numbers.Real):
            kinds.add(_FLOATS)
        else:
            raise ValueError(
                f"`{name}` labels must be strings, numbers or lists of labels. "
                f"Received: {name}[{i}]={v!r} of type {type(v).__name__}"
            )
    if kinds == {_FLOATS, _INTS}:
        kinds = {_FLOATS}
    if len(kinds) > 1:
        raise ValueError(
            f"`{name}` mixes label types ({', '.join(sorted(kinds))}); use one type for all "
            f"labels. Received: {name}={preview_values(arr)}"
        )
    kind = kinds.pop() if kinds else _STRINGS
    if kind == _STRINGS:
        return kind, arr.astype(str)
    if kind == _INTS:
        all_bool = all(isinstance(v, (bool, np.bool_)) for v in arr)
        return kind, arr.astype(bool) if all_bool else arr.astype(np.int64)
    if kind == _FLOATS:
        floats = arr.astype(np.float64)
        _check_finite(floats, name)  # a list's inf is only seen once it is a float array
        return kind, floats
    return kind, arr


def _raw_kind(arr: np.ndarray, name: str) -> tuple[str, np.ndarray]:
    """Returns the kind of raw labels and a cleaned array."""
    if arr.ndim == 2:
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"A 2-D `{name}` must be numeric (a 0/1 label matrix or regression "
                    f"targets). Received: {name}={preview_values(arr.tolist())}"
                ) from None
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(
                f"A 2-D `{name}` must be numeric (a 0/1 label matrix or regression targets). "
                f"Received: {name} with dtype {arr.dtype}"
            )
        _check_finite(arr, name)
        return _MATRIX, arr
    if arr.dtype == object:
        return _object_kind(arr, name)
    if arr.dtype.kind in "US":
        return _STRINGS, arr.astype(str)
    if arr.dtype == bool:
        return _INTS, arr
    if np.issubdtype(arr.dtype, np.integer):
        return _INTS, arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr, name)
        return _FLOATS, arr.astype(np.float64)
    raise ValueError(
        f"`{name}` labels must be strings, numbers or lists of labels. "
        f"Received: {name} with dtype {arr.dtype}"
    )


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind not in "fc":
        return
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        where = index[0] if len(index) == 1 else index
        raise ValueError(
            f"`{name}` holds a missing or infinite label (NaN/inf) at index {where}. "
            f"Drop or fill missing labels first. Received: {name}[{where}]={arr[index]!r}"
        )


def _is_binary(matrix: np.ndarray) -> bool:
    return bool(np.isin(matrix, (0, 1)).all())


def _all_integral(values: np.ndarray) -> bool:
    return bool(np.all(np.mod(values, 1) == 0))


def infer_label_mode(y: Any, name: str = "y") -> str:
    """Detects whether labels describe a multiclass, multilabel or regression task.

    Args:
        y: the labels: strings, integers, booleans, floats, lists of labels, a one-hot
            matrix, a 0/1 multilabel matrix or a float matrix.
        name: the argument name used in error messages.

    Returns:
        One of ``"multiclass"``, ``"multilabel"``, ``"regression"``.

    Raises:
        TypeError: when ``y`` is not a sequence of labels (None, one string, a dict or
            set, a single value).
        ValueError: when labels are missing (None/NaN), of mixed types, or ambiguous
            (floats that are all whole numbers, an integer matrix that is not 0/1).

    Example:
        >>> infer_label_mode(["pos", "neg", "pos"])
        'multiclass'
        >>> infer_label_mode([["a", "b"], ["b"]])
        'multilabel'
    """
    kind, arr = _raw_kind(_as_array(y, name), name)
    if kind == _INTS:
        _warn_if_numeric_target(arr, name)
    if kind in (_STRINGS, _INTS):
        return "multiclass"
    if kind == _LISTS:
        return "multilabel"
    if kind == _FLOATS:
        if _all_integral(arr):
            raise ValueError(
                f"`{name}` holds floats that are all whole numbers, which could be classes or "
                f"a numeric target. Pass label_mode='multiclass' to treat them as classes or "
                f"label_mode='regression' to predict the number. Received: {name}="
                f"{preview_values(arr.tolist())}"
            )
        return "regression"
    # A 2-D matrix.
    if _is_binary(arr):
        return "multiclass" if bool(np.all(arr.sum(axis=1) == 1)) else "multilabel"
    if np.issubdtype(arr.dtype, np.floating) and not _all_integral(arr):
        return "regression"
    raise ValueError(
        f"A 2-D `{name}` that is not 0/1 could be rows of label ids or several numeric "
        f"targets. Pass label_mode='multilabel' to read each row as a list of labels or "
        f"label_mode='regression' for numeric targets. Received: {name}="
        f"{preview_values(arr.tolist(), limit=3)}"
    )


def _warn_if_numeric_target(ints: np.ndarray, name: str) -> None:
    """Integers are classes; warns when they look like a number to predict instead (more
    than 20 distinct values, over half the labels: prices, counts)."""
    distinct = len(np.unique(ints))
    if distinct > max(20, len(ints) // 2):
        warn(
            f"`{name}` holds {distinct} distinct integers in {len(ints)} labels, read as "
            f"{distinct} classes. Pass label_mode='regression' to predict the number, or "
            "label_mode='multiclass' to keep the classes without this warning.",
            UserWarning,
        )


def _check_mode(label_mode: Any) -> None:
    check_choice(label_mode, "label_mode", LABEL_MODES, allow_none=True)


def check_class_names(class_names: Any) -> list[str] | None:
    """Checks user-given class names: a list of at least 2 distinct non-empty strings.

    Args:
        class_names: the names, or `None`.

    Returns:
        The names as a list, or `None`.

    Raises:
        TypeError: for one string (it would split into letters), another type than a list
            or tuple of names, or a name that is not a string.
        ValueError: for an empty name, a repeated name, or fewer than 2 names.

    Example:
        >>> check_class_names(("neg", "pos"))
        ['neg', 'pos']
    """
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)) or not isinstance(
        class_names, (Sequence, np.ndarray)
    ):
        raise TypeError(
            f"`class_names` must be a list of strings. Received: class_names={class_names!r}"
        )
    names = list(class_names)
    for i, c in enumerate(names):
        if not isinstance(c, (str, np.str_)):
            raise TypeError(
                f"`class_names` must hold strings. Received: class_names[{i}]={c!r}"
            )
        if not c:
            raise ValueError(
                f"`class_names` must hold non-empty strings. Received: class_names[{i}]={c!r}"
            )
    if len(set(names)) != len(names):
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(
            f"`class_names` must not repeat a name. Received: duplicates {dupes}"
        )
    if len(names) < 2:
        raise ValueError(
            f"`class_names` must name at least 2 classes. Received: class_names={names!r}"
        )
    return [str(c) for c in names]


def _sorted_names(values: Any, name: str) -> list[str]:
    """Sorts distinct labels deterministically: numbers numerically, strings by code point.

    Names that differ only by surrounding spaces (" negative" and "negative", common after
    editing a CSV by hand) or by Unicode normalization ("café" written with "é" or with "e"
    and a combining accent, common when labels come from several sources) stay separate
    classes, with a warning naming them.
    """
    distinct = set(values)
    if all(isinstance(v, (numbers.Number, np.number, np.bool_)) for v in distinct):
        ordered = sorted(distinct, key=float)
    else:
        ordered = sorted(distinct, key=str)
    names = [label_text(v) for v in ordered]
    if len(set(names)) != len(names):
        raise ValueError(
            f"Distinct labels must have distinct text forms to be used as class names. "
            f"Received labels: {preview_values(ordered)}"
        )
    by_form: dict[str, list[str]] = {}
    for label in names:
        by_form.setdefault(unicodedata.normalize("NFC", label.strip()), []).append(label)
    alike = [group for group in by_form.values() if len(group) > 1]
    if alike:
        # Names that differ by normalization print the same, so their code points are shown.
        forms = [group for group in alike if len({label.strip() for label in group}) > 1]
        shown = "; ".join(" vs ".join(ascii(label) for label in group) for group in forms[:5])
        codes = f" (as code points: {shown})" if forms else ""
        warn(
            f"`{name}` holds labels that differ only by surrounding spaces or by Unicode "
            f"normalization (the same letters as other code points), which are separate "
            f"classes: {preview_values(alike, limit=5)}{codes}. Strip the labels and "
            "normalize them with unicodedata.normalize('NFC', label) if each group is one "
            "class.",
        )
    return names


def fit_labels(
    y: Any,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "y_train",
) -> tuple[str, list[str] | None, int]:
    """Works out the label mode, class names and number of model outputs from training labels.

    Args:
        y: the training labels (see the module docstring for the accepted forms).
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"``, or None to detect
            it with `infer_label_mode`.
        class_names: optional class names, in the order of the model's outputs. Inferred
            (sorted) when None. Ignored for regression.
        name: the argument name used in error messages.

    Returns:
        ``(label_mode, class_names, num_outputs)``; ``class_names`` is None for regression.

    Raises:
        TypeError: for ``label_mode`` that is neither None nor a str, ``class_names``
            that is not a list of strings, or ``y`` that is
            not a sequence of labels (None, one string, a dict or set, a single value).
        ValueError: for an unknown ``label_mode``, missing (None, NaN, or an empty or
            blank string), mixed or ambiguous labels, a single class, or labels that are not
            in ``class_names``.

    Example:
        >>> fit_labels(["pos", "neg", "pos"])
        ('multiclass', ['neg', 'pos'], 2)
        >>> fit_labels([0.5, 1.25, 3.0])
        ('regression', None, 1)
    """
    _check_mode(label_mode)
    names = check_class_names(class_names)
    arr = _as_array(y, name)
    if len(arr) == 0:
        raise ValueError(f"`{name}` must not be empty. Received: {name} with 0 labels")
    mode = label_mode or infer_label_mode(arr, name)
    kind, arr = _raw_kind(arr, name)
    if kind in (_STRINGS, _LISTS):
        _refuse_blank_labels(arr, kind, name)

    if mode == "regression":
        if kind in (_STRINGS, _LISTS):
            raise ValueError(
                f"label_mode='regression' needs numeric labels. Received: {name}="
                f"{preview_values(arr.tolist())}"
            )
        values = arr.astype(np.float64)
        if np.unique(values).size < 2:
            warn(
                f"`{name}` holds a single value ({values.flat[0]!r}); a regression model will "
                f"only learn that constant. Check that the right column was used.",
            )
        return mode, None, 1 if values.ndim == 1 else int(values.shape[1])

    if mode == "multiclass":
        if kind == _LISTS:
            raise ValueError(
                f"label_mode='multiclass' needs one label per text, but `{name}` holds lists "
                f"of labels. Use label_mode='multilabel'. Received: {name}="
                f"{preview_values(arr.tolist())}"
            )
        if kind == _MATRIX:
            if not (_is_binary(arr) and np.all(arr.sum(axis=1) == 1)):
                raise ValueError(
                    f"A 2-D `{name}` for label_mode='multiclass' must be one-hot (each row "
                    f"holds exactly one 1). "
                    f"Received: {name}={preview_values(arr.tolist(), limit=3)}"
                )
            k = arr.shape[1]
            names = _names_for_columns(names, k, name)
            present = np.unique(arr.argmax(axis=1))
        else:
            values = _class_values(arr, kind, name)
            if names is None:
                names = _sorted_names(values.tolist(), name)
                present = names
            else:
                present = np.unique(_class_ids(values, names, name))
        if len(present) < 2:
            raise ValueError(
                f"`{name}` holds a single class ({_single(present, names)!r}); a classifier "
                f"needs at least 2 classes. Received: {name}={preview_values(arr.tolist())}"
            )
        return mode, names, len(names)

    # multilabel
    if kind == _MATRIX:
        if not _is_binary(arr):
            kind, arr = _LISTS, _matrix_rows_as_lists(arr, name)
        else:
            names = _names_for_columns(names, arr.shape[1], name)
            return mode, names, len(names)
    if kind != _LISTS:
        raise ValueError(
            f"label_mode='multilabel' needs lists of labels or a 0/1 matrix. Received: "
            f"{name}={preview_values(arr.tolist())}"
        )
    flat = _flatten_lists(arr, name)
    if names is None:
        if not flat:
            raise ValueError(f"`{name}` holds no labels at all (every list is empty).")
        names = _sorted_names(flat, name)
        if len(names) < 2:
            raise ValueError(
                f"`{name}` uses a single label ({names[0]!r}); multilabel classification "
                f"needs at least 2 labels."
            )
    else:
        _multilabel_matrix(arr, names, name)
    return mode, names, len(names)


def _refuse_blank_labels(arr: np.ndarray, kind: str, name: str) -> None:
    """Refuses empty and whitespace-only string labels as missing ones: a class without a
    name would train, but the saved model could not be loaded back."""
    for i, value in enumerate(arr.tolist()):
        for label in value if kind == _LISTS else [value]:
            if isinstance(label, str) and not label.strip():
                raise ValueError(
                    f"`{name}` holds an empty label ({label!r}) at index {i}. Drop or fill "
                    f"missing labels first. Received: {name}[{i}]={value!r}"
                )


def _matrix_rows_as_lists(arr: np.ndarray, name: str) -> np.ndarray:
    """Reads each row of a whole-number matrix as a list of label ids."""
    if not _all_integral(arr):
        raise ValueError(
            f"A 2-D `{name}` for label_mode='multilabel' must be a 0/1 matrix or rows of "
            f"whole-number label ids. Received: {name}={preview_values(arr.tolist(), limit=3)}"
        )
    rows = np.empty(len(arr), dtype=object)
    rows[:] = [[int(v) for v in row] for row in arr]
    return rows


def _single(present: Any, names: list[str] | None) -> str:
    first = list(present)[0] if len(present) else None
    if names is not None and isinstance(first, (numbers.Integral, np.integer)):
        return names[int(first)]
    return str(first)


def _names_for_columns(names: list[str] | None, k: int, name: str) -> list[str]:
    if names is None:
        if k < 2:
            raise ValueError(
                f"A 2-D `{name}` must have at least 2 columns. Received: {k} column"
            )
        return [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(
            f"`class_names` must name every column of `{name}`. Received: {len(names)} "
            f"class_names for {k} columns"
        )
    return names


def _class_values(arr: np.ndarray, kind: str, name: str) -> np.ndarray:
    """One class value per text: strings, ints, or whole-number floats turned into ints."""
    if kind == _FLOATS:
        if not _all_integral(arr):
            raise ValueError(
                f"label_mode='multiclass' needs whole-number or string labels, but `{name}` "
                f"holds fractional floats. Received: {name}={preview_values(arr.tolist())}"
            )
        return arr.astype(np.int64)
    return arr


def _class_ids(values: np.ndarray, names: list[str], name: str) -> np.ndarray:
    """Maps class values (strings or ints) to ids into ``names``."""
    index = {c: i for i, c in enumerate(names)}
    texts = [label_text(v) for v in values.tolist()]
    if all(t in index for t in texts):
        return np.fromiter((index[t] for t in texts), dtype=np.int32, count=len(texts))
    if _positional(names) and values.dtype.kind in "iu" and values.size:
        if values.min() >= 0 and values.max() < len(names):
            return values.astype(np.int32)
    raise _unknown_labels(name, sorted({t for t in texts if t not in index}), names)


def _positional(names: list[str]) -> bool:
    """Whether int labels may be read as positions: only when no class is named by a
    number (with classes "1".."5", star ratings, a stray 0 must not turn every 1 into "2")."""
    return not any(c.lstrip("-").isdigit() for c in names)


def _unknown_labels(name: str, unseen: list[str], names: list[str]) -> ValueError:
    """The error for labels outside the classes (the training labels', or `class_names`)."""
    return ValueError(
        f"`{name}` holds labels that are not among the classes: {preview_values(unseen, limit=10)} "
        f"({len(unseen)} in all). The classes, from `class_names` when given, else from the "
        f"training labels: {preview_values(names, limit=10)}"
    )


def class_position(classes: Sequence[str], target: Any, name: str = "target") -> int:
    """The position among `classes` of the class `target` names, by name or by index.

    Args:
        classes: A classifier's class names, in the order of its outputs.
        target: A class name (str) or an index into `classes` (int).
        name: The argument's name in error messages.

    Returns:
        The class's index.

    Raises:
        TypeError: If `target` is neither a str nor an int.
        ValueError: If `target` is an index out of range or a name not among `classes`.

    Example:
        >>> class_position(["cat", "dog"], "dog"), class_position(["cat", "dog"], 0)
        (1, 0)
    """
    classes = list(classes)
    if not isinstance(target, str):
        return check_int(target, name, 0, len(classes) - 1)
    if target not in classes:
        raise ValueError(f"`{name}` must be a class index or one of the classes {classes}. "
                         f"Received: {name}={target!r:.80}")
    return classes.index(target)


def _flatten_lists(arr: np.ndarray, name: str) -> list[Any]:
    flat: list[Any] = []
    for i, row in enumerate(arr):
        for v in row:
            if is_missing(v) or not isinstance(v, (str, numbers.Integral, np.str_)):
                raise ValueError(
                    f"`{name}` lists must hold string or integer labels. "
                    f"Received: {name}[{i}]={row!r}"
                )
            flat.append(v)
    return flat


def _multilabel_matrix(arr: np.ndarray, names: list[str], name: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(names)}
    out = np.zeros((len(arr), len(names)), dtype=np.float32)
    unseen: set[str] = set()
    positional = _positional(names)
    # Integer labels that are not class names are indices into them (as in `_class_ids`).
    for i, row in enumerate(_as_lists(arr, name)):
        for v in row:
            t = label_text(v)
            if t in index:
                out[i, index[t]] = 1.0
            elif (positional and isinstance(v, (numbers.Integral, np.integer))
                  and 0 <= int(v) < len(names)):
                out[i, int(v)] = 1.0
            else:
                unseen.add(t)
    if unseen:
        raise _unknown_labels(name, sorted(unseen), names)
    return out


def _as_lists(arr: np.ndarray, name: str) -> list[list[Any]]:
    _flatten_lists(arr, name)
    return [list(row) for row in arr]


def encode_labels(
    y: Any,
    label_mode: str,
    class_names: Sequence[str] | None,
    num_outputs: int | None = None,
    name: str = "y",
) -> np.ndarray:
    """Encodes labels for a model, with the mode and classes found by `fit_labels`.

    Args:
        y: labels in any form `fit_labels` accepts.
        label_mode: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        class_names: the class names (None for regression).
        num_outputs: for regression, the expected number of targets per text (checked
            when given).
        name: the argument name used in error messages.

    Returns:
        ``int32`` class ids of shape ``(n,)`` for multiclass, a ``float32`` 0/1 matrix of
        shape ``(n, num_classes)`` for multilabel, ``float32`` targets of shape ``(n,)`` or
        ``(n, num_outputs)`` for regression.

    Raises:
        TypeError: for ``label_mode`` that is not a str, or ``y`` that is
            not a sequence of labels (None, one string, a dict or set, a single value).
        ValueError: for an unknown or missing ``label_mode``, missing labels, labels the
            classes do not include, or a shape that does not fit the label mode.

    Example:
        >>> encode_labels(["b", "a", "b"], "multiclass", ["a", "b"])
        array([1, 0, 1], dtype=int32)
    """
    _check_mode(label_mode)
    if label_mode is None:
        raise ValueError("`label_mode` must be set to encode labels. Received: label_mode=None")
    arr = _as_array(y, name)
    if len(arr) == 0:
        empty_shape = (0,) if label_mode == "multiclass" else (0, len(class_names or []))
        if label_mode == "regression":
            empty_shape = (0,) if (num_outputs or 1) == 1 else (0, num_outputs)
        return np.zeros(empty_shape, np.int32 if label_mode == "multiclass" else np.float32)
    kind, arr = _raw_kind(arr, name)

    if label_mode == "regression":
        if kind in (_STRINGS, _LISTS):
            raise ValueError(
                "Regression labels must be numeric. "
                f"Received: {name}={preview_values(arr.tolist())}"
            )
        out = arr.astype(np.float32)
        got = 1 if out.ndim == 1 else out.shape[1]
        if num_outputs is not None and got != num_outputs:
            raise ValueError(
                f"`{name}` must hold {num_outputs} target(s) per text. Received: {got}"
            )
        return out

    names = list(class_names or [])
    if label_mode == "multiclass":
        if kind == _MATRIX:
            if arr.shape[1] != len(names) or not (
                _is_binary(arr) and np.all(arr.sum(axis=1) == 1)
            ):
                raise ValueError(
                    f"A 2-D `{name}` must be one-hot with {len(names)} columns. Received: "
                    f"{name} with shape {arr.shape}"
                )
            return arr.argmax(axis=1).astype(np.int32)
        if kind == _LISTS:
            raise ValueError(
                f"Multiclass labels must be one label per text. Received: {name}="
                f"{preview_values(arr.tolist())}"
            )
        return _class_ids(_class_values(arr, kind, name), names, name)

    # multilabel
    if kind == _MATRIX and not _is_binary(arr):
        kind, arr = _LISTS, _matrix_rows_as_lists(arr, name)
    if kind == _MATRIX:
        if arr.shape[1] != len(names):
            raise ValueError(
                f"A 2-D `{name}` must be a 0/1 matrix with {len(names)} columns. Received: "
                f"{name} with shape {arr.shape}"
            )
        return arr.astype(np.float32)
    if kind != _LISTS:
        raise ValueError(
            f"Multilabel labels must be lists of labels or a 0/1 matrix. Received: {name}="
            f"{preview_values(arr.tolist())}"
        )
    return _multilabel_matrix(arr, names, name)


def decode_predictions(
    preds: Any, label_mode: str, class_names: Sequence[str] | None
) -> list[Any]:
    """Turns model outputs into labels.

    Args:
        preds: model outputs of shape ``(n, num_outputs)`` (or ``(n,)`` for regression).
        label_mode: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        class_names: the class names (None for regression).

    Returns:
        multiclass: one class name per text (the arg-max); multilabel: one list of
        ``(class_name, probability)`` pairs per text, in class order; regression: one float
        per text (a list of floats per text when there are several targets).

    Raises:
        TypeError: for ``label_mode`` that is neither None nor a str.
        ValueError: for an unknown ``label_mode``, or when the shape of ``preds`` does not
            match the classes.

    Example:
        >>> decode_predictions([[0.2, 0.8]], "multiclass", ["neg", "pos"])
        ['pos']
    """
    _check_mode(label_mode)
    arr = np.asarray(preds, dtype=np.float64)
    if label_mode == "regression":
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 1:
            return [float(v) for v in arr]
        if arr.ndim == 2:
            return [[float(v) for v in row] for row in arr]
        raise ValueError(f"`preds` must be 1-D or 2-D. Received: preds with shape {arr.shape}")
    names = list(class_names or [])
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(
            f"`preds` must have shape (n, {len(names)}) for {len(names)} classes. "
            f"Received: preds with shape {arr.shape}"
        )
    if label_mode == "multiclass":
        return [names[i] for i in arr.argmax(axis=1)]
    return [[(c, float(p)) for c, p in zip(names, row)] for row in arr]


class LabelEncoder:
    """The label mode and classes of a task, learned once and used everywhere labels appear.

    Training data, predictors, the HTTP app, the TFLite runtime and validation reports all
    encode and decode labels through one `LabelEncoder`, so they cannot disagree.

    Args:
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"``, or None to detect it
            in `fit`.
        class_names: class names in the order of the model's outputs, or None to infer them
            (sorted) in `fit`.
        num_outputs: number of model outputs, normally set by `fit`.

    Raises:
        TypeError: for `label_mode` that is neither None nor a str, `class_names` that is
            not a list of strings, or `num_outputs` that is neither None nor an int.
        ValueError: for an unknown `label_mode`, invalid `class_names`, `class_names` with
            ``label_mode="regression"`` (a regression has no classes), or `num_outputs`
            below 1 or other than the number of `class_names`.

    Example:
        >>> labels = LabelEncoder().fit(["pos", "neg", "pos"])
        >>> labels.encode(["neg"]), labels.decode([[0.2, 0.8]])
        (array([0], dtype=int32), ['pos'])
    """

    def __init__(
        self,
        label_mode: str | None = None,
        class_names: Sequence[str] | None = None,
        num_outputs: int | None = None,
    ) -> None:
        _check_mode(label_mode)
        self.label_mode = label_mode
        self.class_names = check_class_names(class_names)
        if label_mode == "regression" and self.class_names is not None:
            raise ValueError(
                "`class_names` must be None for label_mode='regression': a regression has no "
                f"classes. Received: class_names={preview_values(self.class_names)}"
            )
        num_outputs = check_positive_int(num_outputs, "num_outputs", allow_none=True)
        if num_outputs is not None and self.class_names is not None and num_outputs != len(
            self.class_names
        ):
            raise ValueError(
                f"`num_outputs` must equal the number of class names ({len(self.class_names)}). "
                f"Received: num_outputs={num_outputs!r}"
            )
        self.num_outputs = num_outputs
        # What the user asked for, which every `fit` honours: a refit learns anew from its
        # labels instead of holding them to the classes of the fit before.
        self._requested = (label_mode, self.class_names)

    @property
    def is_fitted(self) -> bool:
        """Whether the label mode and the number of outputs are known."""
        return self.label_mode is not None and self.num_outputs is not None

    def fit(self, y: Any, name: str = "y_train") -> LabelEncoder:
        """Learns the label mode, class names and number of outputs from training labels,
        within the `label_mode` and `class_names` the encoder was made with; a second fit
        learns them anew.

        Args:
            y: the training labels (see the module docstring for the accepted forms).
            name: the argument name used in error messages.

        Returns:
            This encoder, fitted.

        Raises:
            ValueError: for missing, mixed or ambiguous labels, or a single class.

        Example:
            >>> LabelEncoder().fit([0.5, 1.5]).label_mode
            'regression'
        """
        mode, names, outputs = fit_labels(y, *self._requested, name)
        self.label_mode, self.class_names, self.num_outputs = mode, names, outputs
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError(
                "These labels are not fitted yet: call `fit(y)` with the training labels first."
            )

    def encode(self, y: Any, name: str = "y") -> np.ndarray:
        """Encodes labels for the model (see `encode_labels`).

        Args:
            y: labels in the same form as the training labels.
            name: the argument name used in error messages.

        Returns:
            ``int32`` class ids, a ``float32`` 0/1 matrix, or ``float32`` targets.

        Raises:
            ValueError: when not fitted, or for labels outside the classes.

        Example:
            >>> LabelEncoder().fit(["a", "b"]).encode(["b"])
            array([1], dtype=int32)
        """
        self._check_fitted()
        return encode_labels(y, self.label_mode, self.class_names, self.num_outputs, name=name)

    def decode(self, outputs: Any) -> list[Any]:
        """Turns model outputs into labels (see `decode_predictions`).

        Args:
            outputs: model outputs of shape ``(n, num_outputs)``.

        Returns:
            A class name per example (multiclass), ``(class, probability)`` pairs for every
            class (multilabel), or floats (regression).

        Raises:
            ValueError: when not fitted or the shape does not match.

        Example:
            >>> LabelEncoder().fit(["a", "b"]).decode([[0.9, 0.1]])
            ['a']
        """
        self._check_fitted()
        return decode_predictions(outputs, self.label_mode, self.class_names)

    def get_config(self) -> dict[str, Any]:
        """Returns the JSON-safe fields that `from_config` reads back.

        Example:
            >>> LabelEncoder.from_config(LabelEncoder().fit(["a", "b"]).get_config())
        """
        return {
            "label_mode": self.label_mode,
            "class_names": None if self.class_names is None else list(self.class_names),
            "num_outputs": self.num_outputs,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LabelEncoder:
        """Rebuilds an encoder from `get_config`'s dict.

        Args:
            config: a dict with ``label_mode``, ``class_names`` and ``num_outputs``.

        Returns:
            The encoder.

        Raises:
            TypeError: if `config` is not a dict, or a field has the wrong type (as in the
                constructor).
            ValueError: if a field is missing or invalid.

        Example:
            >>> LabelEncoder.from_config({"label_mode": "regression", "class_names": None,
            ...                           "num_outputs": 1})
        """
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict. Received: config={config!r}")
        missing = [k for k in ("label_mode", "class_names", "num_outputs") if k not in config]
        if missing:
            raise ValueError(f"`config` is missing {missing}. Received: config={config!r}")
        return cls(config["label_mode"], config["class_names"], config["num_outputs"])

    def __repr__(self) -> str:
        classes = None if self.class_names is None else len(self.class_names)
        return f"LabelEncoder(label_mode={self.label_mode!r}, classes={classes})"


class LabeledPreprocessor:
    """Mixin for a task preprocessor that keeps its labels in a `LabelEncoder` at `labels`.

    It answers the label questions models and predictors ask of every preprocessor from the
    one encoder, so the task folders do not each repeat them.

    Example:
        >>> class MyPreprocessor(LabeledPreprocessor):
        ...     def __init__(self):
        ...         self.labels = LabelEncoder()
        >>> MyPreprocessor().label_mode is None
        True
    """

    labels: LabelEncoder

    @property
    def label_mode(self) -> str | None:
        """The label mode of `labels` (None before labels are fitted or given)."""
        return self.labels.label_mode

    @property
    def class_names(self) -> list[str] | None:
        """The class names of `labels`, in the order of the model's outputs (None for
        regression or before labels are fitted)."""
        return self.labels.class_names

    @property
    def num_outputs(self) -> int | None:
        """The number of model outputs the labels need (None before labels are fitted)."""
        return self.labels.num_outputs

    @classmethod
    def check_instance(cls, preproc: Any) -> None:
        """Refuses a `preproc` argument that is not this kind of preprocessor.

        Args:
            preproc: what the user passed as `preproc`.

        Raises:
            TypeError: if `preproc` is not an instance of `cls`.

        Example:
            >>> TextPreprocessor.check_instance(preproc)
        """
        check_instance(preproc, cls, "preproc")

    def encode_labels_of(self, labels: Any, n: int, noun: str) -> np.ndarray | None:
        """Encodes `labels` given for `n` new examples, e.g. a test set's.

        Args:
            labels: one label per example in the form the training labels took, or `None`.
            n: the number of examples.
            noun: what an example is, for messages (e.g. `"text"`).

        Returns:
            The encoded labels (see `LabelEncoder.encode`), or `None` for `labels=None`.

        Raises:
            ValueError: for a number of labels other than `n`, or labels the encoder does
                not know.

        Example:
            >>> preproc.encode_labels_of(["pos", "neg"], 2, "text")
            array([1, 0], dtype=int32)
        """
        if labels is None:
            return None
        count = len(labels) if hasattr(labels, "__len__") else None
        if count != n:
            received = type(labels).__name__ if count is None else f"{count} labels"
            raise ValueError(
                f"`labels` must hold one label per {noun}. Received: {n} {noun}s and {received}"
            )
        return self.labels.encode(labels, name="labels")
