"""Reading a learning rate off an LR-finder curve.

All functions take the swept learning rates (increasing, geometric) and the smoothed losses
of the same length, and return one learning rate (`nan` when the curve is too short to say).
They only look at the part of the curve before its minimum, where training still improves.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "smooth_losses",
    "suggest_valley",
    "suggest_steep",
    "suggest_minimum",
    "suggest_all",
    "SUGGESTERS",
    "DEFAULT_SUGGESTION",
]

# Fewest usable points for a suggestion.
_MIN_POINTS = 5


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average of a loss sequence.

    `avg_i = beta * avg_{i-1} + (1 - beta) * loss_i` with `avg_{-1} = 0`, reported as
    `avg_i / (1 - beta ** (i + 1))` so early values are not pulled towards zero. A non-finite
    loss makes every later smoothed value `nan`.

    Args:
        losses: Raw per-batch losses.
        beta: Smoothing factor in [0, 1). Default 0.98.

    Returns:
        Float64 array of smoothed losses, same length as `losses`.

    Raises:
        ValueError: If `beta` is outside [0, 1).

    Example:
        >>> smooth_losses([1.0, 1.0, 1.0]).tolist()
        [1.0, 1.0, 1.0]
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"`beta` must be a float in [0, 1). Received: beta={beta!r}")
    out = np.empty(len(losses), dtype=np.float64)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _usable(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The curve from its start up to (and including) its minimum, finite values only."""
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ValueError(
            "`lrs` and `losses` must be 1-D and of equal length. "
            f"Received: len(lrs)={lrs.size}, len(losses)={losses.size}"
        )
    finite = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
    # Stop at the first non-finite loss: everything after it comes from a diverged model.
    end = int(np.argmin(finite)) if not finite.all() else len(losses)
    lrs, losses = lrs[:end], losses[:end]
    if losses.size == 0:
        return lrs, losses
    stop = int(np.argmin(losses)) + 1
    return lrs[:stop], losses[:stop]


def suggest_minimum(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """One tenth of the learning rate at the lowest (smoothed) loss.

    Args:
        lrs: Swept learning rates.
        losses: Smoothed losses.

    Returns:
        The suggested learning rate, or `nan` with fewer than 5 usable points.

    Example:
        >>> suggest_minimum([1e-3, 1e-2, 1e-1], [2.0, 1.0, 3.0])
        0.001
    """
    lrs, losses = _usable(lrs, losses)
    if losses.size < 2:
        return math.nan
    return float(lrs[-1] / 10.0)


def suggest_steep(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The learning rate where the loss falls fastest against `log10(lr)`.

    The slope is taken with central differences over the curve up to its minimum.

    Args:
        lrs: Swept learning rates.
        losses: Smoothed losses.

    Returns:
        The suggested learning rate, or `nan` with fewer than 5 usable points.

    Example:
        >>> lrs = np.logspace(-5, 0, 51)
        >>> suggest_steep(lrs, -np.tanh(np.log10(lrs) + 3)) == lrs[20]
        True
    """
    lrs, losses = _usable(lrs, losses)
    if losses.size < _MIN_POINTS:
        return math.nan
    slope = np.gradient(losses, np.log10(lrs))
    return float(lrs[int(np.argmin(slope))])


def _longest_descent(losses: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest strictly decreasing subsequence.

    Patience sorting on the negated values, O(n log n); ties keep the earliest-ending run.
    """
    neg = -losses
    tails: list[float] = []  # smallest tail value of an increasing run of each length
    tail_index: list[int] = []
    parent = [-1] * len(neg)
    best_len, best_end = 0, 0
    for i, value in enumerate(neg):
        pos = bisect.bisect_left(tails, value)
        if pos == len(tails):
            tails.append(value)
            tail_index.append(i)
        else:
            tails[pos] = value
            tail_index[pos] = i
        parent[i] = tail_index[pos - 1] if pos > 0 else -1
        if pos + 1 > best_len:
            best_len, best_end = pos + 1, i
    start = best_end
    while parent[start] != -1:
        start = parent[start]
    return start, best_end


def suggest_valley(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A learning rate two thirds of the way down the longest descent of the curve.

    The descent is the longest strictly decreasing subsequence of the smoothed losses (it
    tolerates small bumps); the suggestion is the swept learning rate two thirds of the way
    from its first to its last point, i.e. well inside the region where the loss still
    drops steadily but before the bottom, where training becomes unstable.

    Args:
        lrs: Swept learning rates (geometric, so index distance is log-lr distance).
        losses: Smoothed losses.

    Returns:
        The suggested learning rate, or `nan` with fewer than 5 usable points.

    Example:
        >>> lrs = np.logspace(-6, 0, 61)
        >>> losses = np.r_[np.full(20, 2.0), np.linspace(2.0, 0.5, 31)[1:], [0.7] * 11]
        >>> suggest_valley(lrs, losses) == lrs[39]
        True
    """
    lrs, losses = _usable(lrs, losses)
    if losses.size < _MIN_POINTS:
        return math.nan
    start, end = _longest_descent(losses)
    index = start + int(round((end - start) * 2.0 / 3.0))
    return float(lrs[index])


SUGGESTERS: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {
    "valley": suggest_valley,
    "steep": suggest_steep,
    "minimum": suggest_minimum,
}

DEFAULT_SUGGESTION = "valley"


def suggest_all(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float]:
    """Every suggestion in `SUGGESTERS`, by name.

    Args:
        lrs: Swept learning rates.
        smoothed: Smoothed losses.

    Returns:
        Dict `{"valley": ..., "steep": ..., "minimum": ...}`.

    Example:
        >>> sorted(suggest_all(np.logspace(-5, 0, 20), np.linspace(2, 1, 20)))
        ['minimum', 'steep', 'valley']
    """
    return {name: fn(lrs, smoothed) for name, fn in SUGGESTERS.items()}
