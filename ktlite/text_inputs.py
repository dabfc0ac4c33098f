"""Checks of raw text inputs: the sequences of strings every text-taking entry point reads.

Loaders, predictors and exports of every task that reads text (classification, translation,
generation, the TFLite runtime) check their users' texts here, so one mistake gets one
exception and one wording wherever it is made: a wrong type (None, one bytes object, a set,
a number among the texts) is a `TypeError`, a wrong value (empty, a missing value, a lone
surrogate, a frame of several columns) a `ValueError`, and the bad item is named by its
position. The module imports nothing but NumPy and `ktlite.arguments` (which imports
NumPy alone).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ktlite.arguments import is_missing

__all__ = ["check_texts", "is_valid_unicode", "validate_texts"]


def is_valid_unicode(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (no lone surrogates), as TensorFlow needs.

    Args:
        text: the string to check.

    Returns:
        True unless `text` holds a lone surrogate.

    Example:
        >>> is_valid_unicode("ok"), is_valid_unicode("ok \\ud800")
        (True, False)
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_texts(texts: Any, name: str = "texts", allow_empty: bool = False) -> list[str]:
    """Checks that ``texts`` is a sequence of strings and returns it as a list.

    Args:
        texts: a list, tuple, 1-D numpy array or pandas Series of ``str`` (or a one-column
            DataFrame).
        name: the argument name used in error messages.
        allow_empty: whether an empty sequence is accepted.

    Returns:
        The texts as a list of ``str``.

    Raises:
        TypeError: when ``texts`` is None, a single string, a set or dict, not a sequence,
            or holds an item that is not a string (bytes, numbers); the index is named.
        ValueError: when ``texts`` is empty (unless allowed), not 1-D (a DataFrame of
            several columns), or holds a missing value (None, NaN) or an item that is not
            valid Unicode (a lone surrogate); the index is named.

    Example:
        >>> validate_texts(["good", "bad"])
        ['good', 'bad']
    """
    if texts is None:
        raise TypeError(f"`{name}` must be a sequence of strings. Received: {name}=None")
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError(
            f"`{name}` must be a sequence of strings, not bytes; decode them first. "
            f"Received: {name}={texts!r:.80}"
        )
    if isinstance(texts, str):
        raise TypeError(
            f"`{name}` must be a sequence of strings, not a single string; wrap it in a "
            f"list. Received: {name}={texts!r:.80}"
        )
    if isinstance(texts, (set, frozenset, dict)):
        raise TypeError(
            f"`{name}` must be an ordered sequence of strings (list, tuple, array, Series); "
            f"a {type(texts).__name__} has no order to keep its texts in. Received: "
            f"{name} of type {type(texts).__name__}"
        )
    if hasattr(texts, "to_numpy"):  # pandas Series or DataFrame, without importing pandas
        texts = texts.to_numpy()
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        if texts.ndim == 2 and texts.shape[1] == 1:
            texts = texts[:, 0]
        else:
            raise ValueError(
                f"`{name}` must be 1-D (one string per example). "
                f"Received: {name} with shape {texts.shape}"
            )
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of strings. Received: {name} of type "
            f"{type(texts).__name__}"
        ) from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            missing = is_missing(item)
            raise (ValueError if missing else TypeError)(
                f"`{name}` must hold only strings, but item {i} is {type(item).__name__}"
                f"{' (missing value)' if missing else ''}. Received: {name}[{i}]={item!r:.80}"
            )
        if not is_valid_unicode(item):
            raise ValueError(
                f"`{name}` must hold valid Unicode, but item {i} holds a lone surrogate "
                "(half of a character, e.g. from a bad decode). Received: "
                f"{name}[{i}]={item!r:.80}"
            )
    if not items and not allow_empty:
        raise ValueError(f"`{name}` must not be empty. Received: {name} with 0 texts")
    return [str(t) for t in items]


def check_texts(inputs: Any, name: str) -> tuple[list[str], bool]:
    """Raw texts for a predictor: one string, or a sequence `validate_texts` accepts.

    Args:
        inputs: a str (or a 0-d array holding one), or a non-empty list, tuple, 1-D array
            or Series of str.
        name: the argument name used in errors.

    Returns:
        `(texts, single)`: the texts as a list and whether one string was given.

    Raises:
        TypeError, ValueError: as `validate_texts` raises them.

    Example:
        >>> check_texts("a cat", "inputs")
        (['a cat'], True)
    """
    if isinstance(inputs, np.ndarray) and inputs.ndim == 0:  # np.array("a text")
        inputs = inputs.item()
    if isinstance(inputs, str):
        return validate_texts([inputs], name), True
    return validate_texts(inputs, name), False
