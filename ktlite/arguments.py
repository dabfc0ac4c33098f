"""Checks of plain argument values: flags, counts, seeds, rates.

Every ktlite module checks its users' plain arguments through these helpers, so one mistake
gets one exception and one wording wherever it is made: a value of the wrong type (a string
where an int belongs, `1` where a bool does; a bool is never taken for a number) raises
`TypeError`, a value of the right type out of range raises `ValueError`. Each helper returns
the value as a plain Python type, so configs stay JSON-serializable when a caller passes
NumPy scalars. The module imports nothing but NumPy, so modules that stay free of
TensorFlow (`ktlite.labels`, `ktlite.splits`, the text and tabular loaders) use it without
pulling TensorFlow in.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_instance",
    "check_int",
    "check_moms",
    "check_positive_float",
    "check_positive_int",
    "check_rate",
    "check_seed",
    "check_verbose",
    "is_missing",
]


def is_missing(value: Any) -> bool:
    """Whether one raw value (a cell, a label, a text) is a missing value: None, a float NaN
    (Python or NumPy), pandas' ``NA`` or ``NaT``, or NumPy's ``NaT``.

    Args:
        value: the value.

    Returns:
        Whether it is missing; an empty string is not (a text task reads it as a text).

    Example:
        >>> is_missing(None), is_missing(float("nan")), is_missing(0.0)
        (True, True, False)
    """
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(value))
    return type(value).__name__ in ("NAType", "NaTType")


def check_bool(value: Any, name: str) -> bool:
    """Returns `value` if it is a bool.

    Args:
        value: the value to check.
        name: the argument name for the error message.

    Returns:
        `value` as a Python bool (a NumPy bool is taken).

    Raises:
        TypeError: if `value` is not `True` or `False` (`1`, `"yes"` and `None` are not).

    Example:
        >>> check_bool(True, "lowercase")
        True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r:.80}")
    return bool(value)


def check_choice(
    value: Any, name: str, choices: Sequence[str], allow_none: bool = False
) -> str | None:
    """Returns `value` if it is one of the `choices` strings.

    Args:
        value: the value to check.
        name: the argument name for the error message.
        choices: the accepted strings (matched exactly, case included).
        allow_none: accept `None` (returned unchanged).

    Returns:
        `value`, or `None` when allowed.

    Raises:
        TypeError: if `value` is not a str (`None` unless allowed, `1`, a list of names).
        ValueError: if it is a str that is not one of `choices`.

    Example:
        >>> check_choice("mean", "pooling", ("mean", "max", "first"))
        'mean'
    """
    if value is None and allow_none:
        return None
    expected = f"one of {list(choices)}" + (" or None" if allow_none else "")
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be {expected}. Received: {name}={value!r:.80}")
    if value not in choices:
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r:.80}")
    return value


def check_instance(value: Any, cls: type, name: str) -> None:
    """Refuses a `value` that is not an instance of `cls` (a preprocessor of another task).

    Args:
        value: what the user passed.
        cls: the class it must be an instance of.
        name: the argument name for the error message.

    Raises:
        TypeError: if `value` is not an instance of `cls`.

    Example:
        >>> check_instance(preproc, TextPreprocessor, "preproc")
    """
    if not isinstance(value, cls):
        raise TypeError(
            f"`{name}` must be of type {cls.__name__}. "
            f"Received: {name} of type {type(value).__name__}"
        )


def check_fitted(value: Any, cls: type, name: str = "preproc") -> None:
    """Refuses a `value` that is not a fitted `cls`: another task's preprocessor, or unfitted.

    Args:
        value: what the user passed.
        cls: the preprocessor class it must be an instance of (with an `is_fitted` flag).
        name: the argument name for the error message.

    Raises:
        TypeError: if `value` is not an instance of `cls`.
        ValueError: if it is one that has not been fitted.

    Example:
        >>> check_fitted(preproc, TextPreprocessor)
    """
    check_instance(value, cls, name)
    if not value.is_fitted:
        raise ValueError(
            f"`{name}` must be a fitted {cls.__name__} (the one its loader returns). "
            f"Received: an unfitted {cls.__name__}"
        )


def _integer(value: Any, name: str, minimum: int, expected: str,
             maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be {expected}. Received: {name}={value!r:.80}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def check_int(
    value: Any, name: str, minimum: int, maximum: int | None = None, allow_none: bool = False
) -> int | None:
    """Returns `value` as an int if it is an int in `[minimum, maximum]`.

    Args:
        value: the value to check.
        name: the argument name for the error message.
        minimum: the smallest value accepted.
        maximum: the largest value accepted (`None`: no limit).
        allow_none: accept `None` (returned unchanged).

    Returns:
        `int(value)`, or `None` when allowed.

    Raises:
        TypeError: if `value` is not an int (a bool is not an int here).
        ValueError: if `value` is out of range.

    Example:
        >>> check_int(2, "maxlen", minimum=2)
        2
        >>> check_int(8000, "port", 0, 65535)
        8000
    """
    if value is None and allow_none:
        return None
    expected = (f"an int >= {minimum}" if maximum is None
                else f"an int in [{minimum}, {maximum}]") + (" or None" if allow_none else "")
    return _integer(value, name, minimum, expected, maximum)


def check_positive_int(value: Any, name: str, allow_none: bool = False) -> int | None:
    """Returns `value` as an int if it is an int >= 1.

    Args:
        value: the value to check.
        name: the argument name for the error message.
        allow_none: accept `None` (returned unchanged).

    Returns:
        `int(value)`, or `None` when allowed.

    Raises:
        TypeError: if `value` is not an int (a bool is not an int here).
        ValueError: if `value` < 1.

    Example:
        >>> check_positive_int(32, "batch_size")
        32
    """
    if value is None and allow_none:
        return None
    return _integer(value, name, 1, "a positive int" + (" or None" if allow_none else ""))


def check_seed(value: Any, name: str = "seed") -> int | None:
    """Returns a random seed: `None`, or an int >= 0.

    Args:
        value: the seed.
        name: the argument name for the error message.

    Returns:
        `value` as an int, or `None`.

    Raises:
        TypeError: if `value` is neither `None` nor an int.
        ValueError: if `value` < 0.

    Example:
        >>> check_seed(0), check_seed(None)
        (0, None)
    """
    return None if value is None else _integer(value, name, 0, "None or an int >= 0")


def _interval(low: float, high: float, include_low: bool, include_high: bool) -> str:
    if math.isinf(low) and math.isinf(high):
        return "a finite float"
    if math.isinf(high):
        if low == 0 and not include_low:
            return "a positive float"
        return f"a float {'>=' if include_low else '>'} {low:g}"
    if math.isinf(low):
        return f"a float {'<=' if include_high else '<'} {high:g}"
    return (f"a float in {'[' if include_low else '('}{low:g}, {high:g}"
            f"{']' if include_high else ')'}")


def check_float(
    value: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    include_low: bool = True,
    include_high: bool = True,
    allow_none: bool = False,
) -> float | None:
    """Returns `value` as a float if it is a finite number between `low` and `high`.

    Args:
        value: the value to check (an int is taken; a bool is not).
        name: the argument name for the error message.
        low, high: the bounds (infinite: no bound on that side).
        include_low, include_high: whether each bound itself is accepted.
        allow_none: accept `None` (returned unchanged).

    Returns:
        `float(value)`, or `None` when allowed.

    Raises:
        TypeError: if `value` is not a number.
        ValueError: if it is NaN, infinite or out of range.

    Example:
        >>> check_float(0.5, "alpha", 0, 1)
        0.5
        >>> check_float(0, "max_wait_ms", low=0)
        0.0
    """
    if value is None and allow_none:
        return None
    expected = _interval(low, high, include_low, include_high) + (
        " or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be {expected}. Received: {name}={value!r:.80}")
    number = float(value)
    above = number >= low if include_low else number > low
    below = number <= high if include_high else number < high
    if not (math.isfinite(number) and above and below):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return number


def check_suggested_rate(value: Any, name: str) -> float:
    """Returns a learning rate read off an LR-finder curve as a float: `nan` for a
    non-finite number (a rule that could not read the curve), else a positive rate.

    Args:
        value: the value to check.
        name: the argument name for the error message.

    Raises:
        TypeError: if `value` is not a number (a bool is not one).
        ValueError: if `value` is a finite number <= 0.

    Example:
        >>> check_suggested_rate(float("nan"), "lr")
        nan
    """
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and not math.isfinite(value)):
        return math.nan
    return check_positive_float(value, name)


def check_rate(value: Any, name: str) -> float:
    """Returns `value` as a float if it is a number in `[0, 1)` (a dropout rate).

    Args:
        value: the value to check.
        name: the argument name for the error message.

    Returns:
        `float(value)`.

    Raises:
        TypeError: if `value` is not a number.
        ValueError: if it is outside `[0, 1)`.

    Example:
        >>> check_rate(0.1, "dropout")
        0.1
    """
    return check_float(value, name, 0.0, 1.0, include_high=False)


def check_positive_float(value: Any, name: str, allow_none: bool = False) -> float | None:
    """Returns `value` as a float if it is a finite number > 0.

    Args:
        value: the value to check.
        name: the argument name for the error message.
        allow_none: accept `None` (returned unchanged).

    Returns:
        `float(value)`, or `None` when allowed.

    Raises:
        TypeError: if `value` is not a number.
        ValueError: if it is not finite or not above 0.

    Example:
        >>> check_positive_float(1e-6, "layer_norm_epsilon")
        1e-06
    """
    return check_float(value, name, 0.0, include_low=False, allow_none=allow_none)


def check_moms(moms: Any) -> tuple[float, float] | None:
    """Returns a `(high, low)` momentum pair as floats in [0, 1), or `None`.

    Args:
        moms: the pair (a tuple or list of two numbers), or `None`.

    Returns:
        `(float(high), float(low))`, or `None`.

    Raises:
        TypeError: if `moms` is not None, a tuple or a list, or an entry is not a number.
        ValueError: if it does not hold two entries, or one is outside [0, 1).

    Example:
        >>> check_moms([0.95, 0.85])
        (0.95, 0.85)
    """
    if moms is None:
        return None
    expected = "`moms` must be None or a pair (high, low) of floats in [0, 1)."
    if not isinstance(moms, (tuple, list)):
        raise TypeError(f"{expected} Received: moms of type {type(moms).__name__}")
    if len(moms) != 2:
        raise ValueError(f"{expected} Received: moms={moms!r}")
    return check_rate(moms[0], "moms[0]"), check_rate(moms[1], "moms[1]")


def check_verbose(value: Any, levels: tuple[int, ...] = (0, 1)) -> int:
    """Returns a `verbose` level as an int if it is one of `levels`.

    Args:
        value: the level given.
        levels: the levels accepted (`(0, 1)`: quiet or not; `(0, 1, 2)`: Keras' fit).

    Returns:
        `int(value)`.

    Raises:
        TypeError: if `value` is not an int (`True` is not a level).
        ValueError: if it is not one of `levels`.

    Example:
        >>> check_verbose(1)
        1
    """
    expected = ", ".join(map(str, levels[:-1])) + f" or {levels[-1]}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`verbose` must be {expected}. Received: verbose={value!r:.80}")
    if value not in levels:
        raise ValueError(f"`verbose` must be {expected}. Received: verbose={value!r}")
    return int(value)
