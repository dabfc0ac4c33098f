"""Reading a learning rate off an LR-finder curve.

Every rule takes the swept learning rates (increasing, geometric) and a loss curve of the
same length, and returns one learning rate (`nan` when the curve is too short to say). They
only look at the part of the curve before its minimum, where training still improves.
`valley`, `steep` and `minimum` read the EMA-smoothed curve; `basin`, the default, and
`descent` read the raw per-batch losses through a centred running median, which does not lag
behind the sweep. `consensus` is the geometric mean of those five, each first moved to
`basin`'s level: one curve read at five places, so noise at any one of them moves it less.

The rules read differences of losses, never their ratios or logarithms: a curve shifted by a
constant (a loss that is negative, such as `keras.losses.CosineSimilarity`) gets the same
suggestions. Every suggestion lies within the swept range `[lrs[0], lrs[-1]]`; a rule whose
backoff would land below the first swept rate returns that rate. `is_flat` tells a curve
whose drop is within its batch-to-batch noise, on which every rule reads noise.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Callable, Sequence

import numpy as np

from ktlite.arguments import check_int, check_rate

__all__ = [
    "smooth_losses",
    "suggest_valley",
    "suggest_steep",
    "suggest_minimum",
    "suggest_basin",
    "suggest_descent",
    "suggest_consensus",
    "running_median",
    "suggest_all",
    "is_flat",
    "DEFAULT_SUGGESTION",
]

# Fewest usable points for a suggestion.
_MIN_POINTS = 5
# A point is still on the initial plateau while within this fraction of the total drop.
_PLATEAU = 0.05
# The first 1/_SKIP_FRACTION of a sweep is ignored.
_SKIP_FRACTION = 10
# `suggest_basin`: the running median spans 1/_MEDIAN_FRACTION of the sweep on each side
# (10 points of a 200-step sweep, about 0.4 decade of learning rate)...
_MEDIAN_FRACTION = 20
# ...the basin holds the points within this fraction of the total drop of the lowest point...
_BASIN = 0.05
# ...and the suggestion sits half a decade of learning rate below the start of the basin,
_BACKOFF = 10.0 ** 0.5
# ...but never more than this factor above `suggest_descent` on the same curve.
_BASIN_CAP = 10.0
# `suggest_descent`: the fractions of the total drop whose crossings are averaged...
_DESCENT_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9)
# ...and the backoff below their geometric mean.
_DESCENT_BACKOFF = 10.0 ** 0.25
# `suggest_consensus`: the factor that moves each rule to `basin`'s level, the median of
# basin / rule over the 90 sweeps of benchmarks/lr_finder.py runs 7-11 (18 tasks, 5 sweeps
# each; benchmarks/RESULTS.md, run 12).
_CONSENSUS_SCALE = {"valley": 0.26, "steep": 0.63, "minimum": 0.26, "basin": 1.0,
                    "descent": 2.3}
# `is_flat`: fewest finite points to judge a curve's noise by (shorter sweeps of a small
# model, whose loss visibly falls, still measure within the noise below)...
_FLAT_MIN_POINTS = 50
# ...and the drop, in standard errors of the running median, a curve must exceed. Sweeps
# that trained nothing (rates 1e-9 to 1e-7, 100 and 200 steps, on the tests' models) measure
# about 2; pure noise (50 to 1000 points: independent Gaussian batches, heavy-tailed ones, a
# cycle of per-batch offsets as in a sweep over a small data set) stays below 5 in 85-96,
# 96-98 and 96-100% of draws. Sweeps whose loss falls: 60 to 100 steps of the tests' models
# 10 to 12, the 190 saved 200-step sweeps of benchmarks/lr_finder.py (benchmarks/saved) all
# above 15.
_FLAT_ERRORS = 5.0


def _curve(values: Sequence[float], name: str) -> np.ndarray:
    """`values`, a 1-D sequence of numbers, as a float64 array.

    Raises:
        TypeError: for a scalar, None, text, or a sequence holding a value that is not a
            number (named; numpy's own conversion error names nothing).
        ValueError: for a sequence that is not 1-D.
    """
    array = None if isinstance(values, (str, bytes)) else np.asarray(values)
    if array is None or array.ndim == 0 or array.dtype.kind not in "iufOUS":
        raise TypeError(f"`{name}` must be a sequence of numbers. Received: {name}={values!r:.80}")
    if array.dtype.kind in "OUS":
        # As given: numpy turns every value of a list holding one text into text.
        wrong = [v.item() if isinstance(v, np.generic) else v
                 for v in np.asarray(values, dtype=object).flat
                 if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real)]
        if wrong:
            raise TypeError(
                f"`{name}` must be a sequence of numbers. Received: {name} holding "
                f"{wrong[0]!r:.40} of type {type(wrong[0]).__name__}"
            )
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D (one value per step). Received: {name} of shape {array.shape}"
        )
    return array.astype(np.float64)


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
        TypeError: If `losses` is not a sequence of numbers, or `beta` not a number.
        ValueError: If `losses` is not 1-D, or `beta` is outside [0, 1).

    Example:
        >>> smooth_losses([1.0, 2.0]).round(4).tolist()
        [1.0, 1.5051]
    """
    losses = _curve(losses, "losses")
    beta = check_rate(beta, "beta")
    out = np.empty(len(losses), dtype=np.float64)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _finite(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The curve up to its first non-finite loss: the model diverged there.

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order (a sweep's).
    """
    lrs = _curve(lrs, "lrs")
    losses = _curve(losses, "losses")
    if lrs.shape != losses.shape:
        raise ValueError(
            "`lrs` and `losses` must be 1-D and of equal length. "
            f"Received: len(lrs)={lrs.size}, len(losses)={losses.size}"
        )
    bad = np.flatnonzero(~(np.isfinite(lrs) & (lrs > 0)))
    if bad.size:
        raise ValueError(
            "`lrs` must be positive finite learning rates. "
            f"Received: lrs[{bad[0]}]={float(lrs[bad[0]])!r}"
        )
    falling = np.flatnonzero(np.diff(lrs) < 0)
    if falling.size:
        i = int(falling[0])
        raise ValueError(
            "`lrs` must be in increasing order, as a sweep's rates are. "
            f"Received: lrs[{i}]={float(lrs[i])!r} followed by lrs[{i + 1}]={float(lrs[i + 1])!r}"
        )
    finite = np.isfinite(losses)
    end = int(np.argmin(finite)) if not finite.all() else len(losses)
    return lrs[:end], losses[:end]


def _within_sweep(
    rule: Callable[[Sequence[float], Sequence[float]], float]
) -> Callable[[Sequence[float], Sequence[float]], float]:
    """`rule` with its suggestion held to the swept range `[lrs[0], lrs[-1]]` (`nan` stays
    `nan`).

    A backoff below the first point of the curve (`minimum`'s tenth, `basin`'s half decade)
    would otherwise suggest a rate the sweep never tried, on a curve whose drop starts at
    its first points (typically one swept far too low, see `is_flat`).
    """

    @functools.wraps(rule)
    def held(lrs: Sequence[float], losses: Sequence[float]) -> float:
        value = rule(lrs, losses)
        if math.isnan(value):
            return value
        swept = np.asarray(lrs, dtype=np.float64)
        return float(min(max(value, float(swept[0])), float(swept[-1])))

    return held


def _usable(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The trustworthy part of the curve: after its first tenth, up to the minimum.

    The first tenth of the sweep is dropped because a moving average that has seen only a
    few batches is still mostly noise; everything from the first non-finite loss on comes
    from a diverged model; and after the minimum training no longer improves.
    """
    lrs, losses = _finite(lrs, losses)
    skip = min(losses.size // _SKIP_FRACTION, max(0, losses.size - 1))
    lrs, losses = lrs[skip:], losses[skip:]
    if losses.size == 0:
        return lrs, losses
    stop = int(np.argmin(losses)) + 1
    return lrs[:stop], losses[:stop]


@_within_sweep
def suggest_minimum(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """One tenth of the learning rate at the lowest (smoothed) loss.

    Args:
        lrs: Swept learning rates.
        losses: Smoothed losses.

    Returns:
        The suggested learning rate (at least `lrs[0]`), or `nan` with fewer than 2 usable
        points.

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order.

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

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order.

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

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order.

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


def running_median(losses: Sequence[float], half_width: int) -> np.ndarray:
    """Centred running median: each point becomes the median of itself and its neighbours.

    Unlike an exponential moving average it does not lag (a drop shows up where it happens),
    and one wild batch cannot move it. Windows are cut short at both ends of the curve.

    Args:
        losses: Raw per-batch losses (finite).
        half_width: Neighbours on each side, >= 0.

    Returns:
        Float64 array of the same length.

    Raises:
        TypeError: If `losses` is not a sequence of numbers, or `half_width` not an int.
        ValueError: If `losses` is not 1-D, or `half_width` is negative.

    Example:
        >>> running_median([1.0, 9.0, 2.0, 3.0], 1).tolist()
        [5.0, 2.0, 3.0, 2.5]
    """
    values = _curve(losses, "losses")
    half_width = check_int(half_width, "half_width", 0)
    n = values.size
    return np.array(
        [np.median(values[max(0, i - half_width):i + half_width + 1]) for i in range(n)],
        dtype=np.float64,
    )


@_within_sweep
def suggest_basin(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """Half a decade below the learning rate where the loss reaches its lowest basin.

    Reads the raw per-batch losses, not the moving average: they are smoothed with a
    centred running median over a twentieth of the sweep on each side, so the curve shows
    each drop at the learning rate that caused it. The basin is the part of that curve
    within 5% of the total drop from its lowest point; the suggestion is the learning rate
    where the curve first enters it, divided by sqrt(10). Starting from the entry (not the
    lowest point) keeps a flat, noisy bottom from pulling the suggestion up, and the
    half-decade margin is room for many more steps than the sweep took. When the sweep
    itself trains the model far (a small training set, a sweep of several epochs), the
    lowest loss can come long after the drop, at a rate that only had more updates behind
    it; the suggestion is therefore held to at most ten times `suggest_descent`'s, which
    reads the drop itself.

    Args:
        lrs: Swept learning rates.
        losses: Raw per-batch losses (everything from the first non-finite one is ignored).

    Returns:
        The suggested learning rate (at least `lrs[0]`), or `nan` with fewer than 5 usable
        points.

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order.

    Example:
        >>> lrs = np.logspace(-5, 0, 51)  # the loss halves at lr 10**-2.5
        >>> losses = np.r_[np.full(25, 2.0), np.full(20, 1.0), np.linspace(2.0, 9.0, 6)]
        >>> round(suggest_basin(lrs, losses), 6)
        0.001
    """
    lrs, smoothed = _median_curve(lrs, losses)
    if smoothed.size < _MIN_POINTS:
        return math.nan
    bottom = float(smoothed[-1])
    level = bottom + _BASIN * (float(np.max(smoothed)) - bottom)
    entry = int(np.nonzero(smoothed <= level)[0][0])
    return float(min(lrs[entry] / _BACKOFF, _BASIN_CAP * _descent_of(lrs, smoothed)))


@_within_sweep
def suggest_descent(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A quarter decade below the middle of the loss's main drop, averaged over five levels.

    Reads the raw per-batch losses through the same centred running median as
    `suggest_basin`, then finds where that curve first falls through 50, 60, 70, 80 and 90%
    of its total drop (from the highest point before the minimum to the minimum) and takes
    the geometric mean of those five learning rates, divided by 10**0.25. `basin` reads one
    point, where the curve enters its flat bottom; there a little noise moves the crossing a
    long way. The middle of the drop is where the curve is steepest, so the same noise moves
    the crossings least, and averaging five of them shrinks what is left.

    Args:
        lrs: Swept learning rates.
        losses: Raw per-batch losses (everything from the first non-finite one is ignored).

    Returns:
        The suggested learning rate (at least `lrs[0]`), or `nan` with fewer than 5 usable
        points.

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order.

    Example:
        >>> lrs = np.logspace(-5, 0, 51)  # the loss halves in one step at lr 10**-2.5
        >>> losses = np.r_[np.full(25, 2.0), np.full(20, 1.0), np.linspace(2.0, 9.0, 6)]
        >>> bool(np.isclose(suggest_descent(lrs, losses), lrs[25] / 10 ** 0.25))
        True
    """
    lrs, smoothed = _median_curve(lrs, losses)
    if smoothed.size < _MIN_POINTS:
        return math.nan
    return _descent_of(lrs, smoothed)


def _median_curve(
    lrs: Sequence[float], losses: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The usable part of the raw curve after a centred running median (`basin`, `descent`)."""
    lrs, losses = _finite(lrs, losses)
    smoothed = running_median(losses, _median_half_width(losses.size))
    return _usable(lrs, smoothed)


def _median_half_width(points: int) -> int:
    """Points on each side of the centred running median of a sweep of `points` points."""
    return max(1, points // _MEDIAN_FRACTION)


def _descent_of(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """`suggest_descent` on a curve already cut by `_median_curve` (>= 1 point)."""
    bottom, top = float(smoothed[-1]), float(np.max(smoothed))
    crossings = [
        int(np.nonzero(smoothed <= top - level * (top - bottom))[0][0])
        for level in _DESCENT_LEVELS
    ]
    return float(np.exp(np.mean(np.log(lrs[crossings]))) / _DESCENT_BACKOFF)


def is_flat(lrs: Sequence[float], losses: Sequence[float]) -> bool:
    """Whether a curve's drop is within its batch-to-batch noise (the loss did not fall).

    The raw losses go through `basin`'s centred running median (over a twentieth of the
    sweep on each side); the curve is flat when that median falls, from its highest point
    before its minimum to the minimum, by at most 5 of its standard errors. The noise is
    the batch-to-batch scatter read from the median absolute difference of consecutive
    losses, robust to wild batches and to the drop itself. On a flat curve every rule reads
    noise: the rates were swept far too low (or too high: the loss rises from the start), or
    the model does not learn. Shifting or scaling the losses does not change the answer.

    Args:
        lrs: Swept learning rates.
        losses: Raw per-batch losses (everything from the first non-finite one is ignored).

    Returns:
        True when the curve is flat; False when it falls by more than its noise, or when it
        has fewer than 50 finite points (too few to tell a drop from its noise).

    Raises:
        TypeError: If `lrs` or `losses` is not a sequence of numbers.
        ValueError: If `lrs` and `losses` are not 1-D sequences of equal length, or `lrs`
            are not positive finite rates in increasing order.

    Example:
        >>> lrs = np.logspace(-9, -7, 100)
        >>> is_flat(lrs, 1.0 + 0.01 * np.random.default_rng(0).normal(size=100))
        True
    """
    finite_lrs, finite_losses = _finite(lrs, losses)
    if finite_losses.size < _FLAT_MIN_POINTS:
        return False
    half_width = _median_half_width(finite_losses.size)
    _, smoothed = _median_curve(finite_lrs, finite_losses)
    drop = float(np.max(smoothed)) - float(smoothed[-1])
    # The median absolute difference of two independent normal draws is 0.6745 * sqrt(2)
    # of their standard deviation; the median of 2k+1 of them scatters sqrt(pi / 2) times
    # as much as their mean.
    noise = float(np.median(np.abs(np.diff(finite_losses)))) / (0.6745 * math.sqrt(2.0))
    error = noise * math.sqrt(math.pi / 2.0) / math.sqrt(2 * half_width + 1)
    return drop <= _FLAT_ERRORS * error


# Why "basin": an exponential moving average with beta 0.98 lags the raw loss by about 49
# batches, two decades of a default 200-step sweep, so every rule that reads only the
# smoothed curve lands at a rate that depends on how sharply the loss diverges after its
# minimum ("minimum" suggested 2-6x too high a rate for the default text Transformer: 0.604
# vs 0.824 test accuracy on WordNet). Chosen again by leave-one-family-out in run 12 of
# benchmarks/lr_finder.py over "consensus", which moves less between sweeps (at most 3.0x
# against 7.7x) and kept every pair within 2 points, but left 5 of 35 held-out pairs more
# than 1 point below the best grid rate against basin's 3 (benchmarks/RESULTS.md).
DEFAULT_SUGGESTION = "basin"


def _rules(
    lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float]
) -> dict[str, float]:
    """The five rules that read a curve, by name."""
    return {
        "valley": suggest_valley(lrs, smoothed),
        "steep": suggest_steep(lrs, smoothed),
        "minimum": suggest_minimum(lrs, smoothed),
        "basin": suggest_basin(lrs, losses),
        "descent": suggest_descent(lrs, losses),
    }


def _consensus_of(rules: dict[str, float], lrs: Sequence[float]) -> float:
    """The geometric mean of the finite `rules` at `basin`'s level, within the sweep; `nan`
    where `basin` cannot say (`minimum` alone reads a curve of two points, and the rules of
    the smoothed curve can fail on a short sweep that `basin` and `descent` read)."""
    if math.isnan(rules["basin"]):
        return math.nan
    levels = [math.log(lr * _CONSENSUS_SCALE[name]) for name, lr in rules.items()
              if math.isfinite(lr)]
    swept = np.asarray(lrs, dtype=np.float64)
    return float(min(max(math.exp(sum(levels) / len(levels)), swept[0]), swept[-1]))


def suggest_consensus(
    lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float]
) -> float:
    """The five rules read together: their geometric mean, each first moved to `basin`'s level.

    Every rule reads one feature of the curve (where it enters its bottom, the middle of its
    drop, its steepest point, the smoothed minimum) and each feature moves with the batches'
    noise on its own; averaging the five in log-rate moves less than any one of them. Each
    rule sits at its own distance from a good rate (`minimum` a tenth of the rate where the
    smoothed loss is lowest, `descent` a quarter decade below the middle of the drop), so
    each is first multiplied by the median ratio of `basin` to it over the sweeps of
    `benchmarks/lr_finder.py` (valley 0.26, steep 0.63, minimum 0.26, descent 2.3). A rule
    that cannot say (`nan`) is left out; the consensus says exactly where `basin` does, and
    is held to the swept range.

    Args:
        lrs: Swept learning rates.
        losses: Raw per-batch losses (read by `basin` and `descent`).
        smoothed: Their smoothed curve (read by `valley`, `steep` and `minimum`), e.g.
            `smooth_losses(losses)`.

    Returns:
        The suggested learning rate, or `nan` with fewer than 5 usable points (where
        `basin` cannot say).

    Raises:
        TypeError: If `lrs`, `losses` or `smoothed` is not a sequence of numbers (`smoothed`
            is named `losses` by the rules that read it).
        ValueError: If `lrs`, `losses` and `smoothed` are not 1-D sequences of equal length,
            or `lrs` are not positive finite rates in increasing order.

    Example:
        >>> lrs = np.logspace(-5, 0, 200)
        >>> losses = 1.0 + np.tanh(-4.0 * (np.log10(lrs) + 2.5)) + (lrs > 0.1) * 5.0
        >>> lr = suggest_consensus(lrs, losses, smooth_losses(losses))
        >>> bool(1e-4 < lr < 1e-2)
        True
    """
    return _consensus_of(_rules(lrs, losses, smoothed), lrs)


def suggest_all(
    lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float]
) -> dict[str, float]:
    """Every suggestion, by rule name.

    Args:
        lrs, losses, smoothed: The curve, as `suggest_consensus` takes it.

    Returns:
        Dict `{"valley": ..., "steep": ..., "minimum": ..., "basin": ..., "descent": ...,
        "consensus": ...}`; the default one is `DEFAULT_SUGGESTION` ("basin").

    Raises:
        TypeError, ValueError: For a curve `suggest_consensus` refuses, as it does.

    Example:
        >>> lrs, losses = np.logspace(-5, 0, 20), np.linspace(2, 1, 20)
        >>> sorted(suggest_all(lrs, losses, smooth_losses(losses)))
        ['basin', 'consensus', 'descent', 'minimum', 'steep', 'valley']
    """
    rules = _rules(lrs, losses, smoothed)
    return {**rules, "consensus": _consensus_of(rules, lrs)}
