"""Reading a learning rate off an LR-finder curve.

All functions take the swept learning rates (increasing, geometric) and the smoothed losses
of the same length, and return one learning rate (`nan` when the curve is too short to say).
They only look at the part of the curve before its minimum, where training still improves.
"""

from __future__ import annotations

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
# A point is still on the initial plateau while within this fraction of the total drop.
_PLATEAU = 0.05
# The first 1/_SKIP_FRACTION of a sweep is ignored.
_SKIP_FRACTION = 10


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
        >>> smooth_losses([1.0, 2.0]).round(4).tolist()
        [1.0, 1.5051]
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
    """The trustworthy part of the curve: after the first tenth, up to the minimum.

    The first tenth of the sweep is dropped because a moving average that has seen only a
    few batches is still mostly noise; everything from the first non-finite loss on comes
    from a diverged model; and after the minimum training no longer improves.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ValueError(
            "`lrs` and `losses` must be 1-D and of equal length. "
            f"Received: len(lrs)={lrs.size}, len(losses)={losses.size}"
        )
    finite = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
    end = int(np.argmin(finite)) if not finite.all() else len(losses)
    skip = min(len(losses) // _SKIP_FRACTION, max(0, end - 1))
    lrs, losses = lrs[skip:end], losses[skip:end]
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


def _descent(losses: np.ndarray) -> tuple[int, int]:
    """First and last index of the curve's main descent.

    The descent ends at the minimum (the last usable point) and starts at the last point
    still on the initial plateau: within `_PLATEAU` of the total drop from the highest value
    before the minimum. Noise on the plateau therefore cannot stretch the descent back to the
    start of the sweep, and bumps inside the descent do not cut it short.
    """
    end = len(losses) - 1
    top = float(np.max(losses))
    drop = top - float(losses[end])
    level = float(losses[end]) + (1.0 - _PLATEAU) * drop
    start = int(np.nonzero(losses >= level)[0].max())
    return min(start, end), end


def suggest_steep(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The learning rate where the loss falls fastest against `log10(lr)`.

    The slope is taken with central differences, and only inside the main descent of the
    curve (see `suggest_valley`), so noise on the initial plateau is never picked.

    Args:
        lrs: Swept learning rates.
        losses: Smoothed losses.

    Returns:
        The suggested learning rate, or `nan` with fewer than 5 usable points.

    Example:
        >>> lrs = np.logspace(-5, 0, 51)
        >>> bool(suggest_steep(lrs, -np.tanh(np.log10(lrs) + 3)) == lrs[20])
        True
    """
    lrs, losses = _usable(lrs, losses)
    if losses.size < _MIN_POINTS:
        return math.nan
    slope = np.gradient(losses, np.log10(lrs))
    start, end = _descent(losses)
    return float(lrs[start + int(np.argmin(slope[start:end + 1]))])


def suggest_valley(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A learning rate two thirds of the way down the main descent of the curve.

    The descent runs from the last point of the initial plateau (the last point within 5%
    of the total drop from the top) to the minimum; the suggestion is the swept learning
    rate two thirds of the way along it (in log-lr, i.e. in steps of the sweep): well inside
    the region where the loss still drops steadily, before the bottom where training
    becomes unstable.

    Args:
        lrs: Swept learning rates (geometric, so index distance is log-lr distance).
        losses: Smoothed losses.

    Returns:
        The suggested learning rate, or `nan` with fewer than 5 usable points.

    Example:
        >>> lrs = np.logspace(-6, 0, 61)
        >>> losses = np.r_[np.full(20, 2.0), np.linspace(2.0, 0.5, 31)[1:], [0.7] * 11]
        >>> bool(suggest_valley(lrs, losses) == lrs[39])
        True
    """
    lrs, losses = _usable(lrs, losses)
    if losses.size < _MIN_POINTS:
        return math.nan
    start, end = _descent(losses)
    return float(lrs[start + int(round((end - start) * 2.0 / 3.0))])


SUGGESTERS: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {
    "valley": suggest_valley,
    "steep": suggest_steep,
    "minimum": suggest_minimum,
}

# Why "minimum": the bias-corrected moving average lags the raw loss by about
# beta / (1 - beta) = 49 batches, i.e. about two decades of a default 200-step sweep over eight
# decades. Rules that read a position on the descent (valley, steep) inherit that lag, while
# the minimum is set by the explosive rise at divergence, which the average follows quickly.
# Measured in benchmarks/lr_finder.py (see benchmarks/RESULTS.md), minimum was within one
# point of the best grid learning rate on all three tasks; valley and steep were not.
DEFAULT_SUGGESTION = "minimum"


def suggest_all(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float]:
    """Every suggestion in `SUGGESTERS`, by name.

    Args:
        lrs: Swept learning rates.
        smoothed: Smoothed losses.

    Returns:
        Dict `{"valley": ..., "steep": ..., "minimum": ...}`; the default one is
        `DEFAULT_SUGGESTION` ("minimum").

    Example:
        >>> sorted(suggest_all(np.logspace(-5, 0, 20), np.linspace(2, 1, 20)))
        ['minimum', 'steep', 'valley']
    """
    return {name: fn(lrs, smoothed) for name, fn in SUGGESTERS.items()}
