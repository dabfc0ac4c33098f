"""Learning-rate and momentum policies as pure functions of the training step.

Every policy is a small object that maps integer step indices (0-based, counted in optimizer
updates) to a learning rate and, optionally, a momentum. They hold no Keras state, so their
shapes can be unit-tested exactly; `ktlite.lr.PolicyCallback` is the one mechanism that
applies any of them to a compiled optimizer.

Steps past the end of a finite policy keep its last value. Periodic policies (a `Triangular`
policy with `n_cycles=None`) repeat forever.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ktlite.arguments import (
    check_float,
    check_int,
    check_moms,
    check_positive_float,
    check_positive_int,
)

__all__ = [
    "Policy",
    "OneCycle",
    "Triangular",
    "SGDR",
    "Constant",
    "ExponentialSweep",
]


def _check_positive_float(name: str, value: Any) -> float:
    if hasattr(value, "suggestions"):  # the LRFindResult itself, not its rate
        raise TypeError(
            f"`{name}` must be a positive float (the finder's rate is its `.suggestion`). "
            f"Received: {name} of type {type(value).__name__}"
        )
    return check_positive_float(value, name)


def _as_steps(steps: Any) -> np.ndarray:
    arr = np.asarray(steps)
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"`steps` must hold integer step indices. Received: steps with dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and not (
        np.all(np.isfinite(arr)) and np.all(arr == np.floor(arr))
    ):
        raise ValueError(
            "`steps` must hold integer step indices. "
            f"Received: steps with non-integer values of dtype {arr.dtype}"
        )
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"`steps` must be >= 0. Received: min(steps)={int(arr.min())}")
    return arr


def _cos_interp(start: Any, end: Any, frac: np.ndarray) -> np.ndarray:
    """Half-cosine from `start` (frac=0) to `end` (frac=1)."""
    return end + (start - end) * (1.0 + np.cos(np.pi * frac)) / 2.0


def _safe_frac(num: np.ndarray, den: int) -> np.ndarray:
    return np.clip(num / den, 0.0, 1.0) if den > 0 else np.ones_like(num, dtype=np.float64)


class Policy:
    """Base class: a learning rate (and optional momentum) for each training step.

    Subclasses implement `_lr(steps)` and, when they cycle momentum, `_momentum(steps)`, for
    int64 arrays of steps already clipped into `[0, table_steps)`.

    Attributes:
        total_steps: Number of steps the policy is designed for, or `None` when it repeats
            forever.
        cycle_steps: Length of one period for a policy that repeats forever, else `None`.

    Example:
        >>> policy = OneCycle(1e-3, total_steps=100)  # a Policy subclass
        >>> policy.lr_at([0, 25, 99]), policy.momentum_at([0, 25, 99])
    """

    total_steps: int | None = None
    cycle_steps: int | None = None

    @property
    def table_steps(self) -> int:
        """Number of distinct steps: `cycle_steps` when periodic, else `total_steps`."""
        return int(self.cycle_steps if self.cycle_steps is not None else self.total_steps)

    def _wrap(self, steps: Any) -> np.ndarray:
        arr = _as_steps(steps)
        if self.cycle_steps is not None:
            return arr % self.cycle_steps
        return np.minimum(arr, self.total_steps - 1)

    def lr_at(self, steps: Any) -> np.ndarray:
        """Learning rates (float64) at the given 0-based steps.

        Args:
            steps: Int step index or array of them (>= 0).

        Returns:
            Array of the same shape as `steps`.

        Raises:
            TypeError: If `steps` is not numeric (e.g. strings or bools).
            ValueError: If `steps` holds a negative or non-integer value.

        Example:
            >>> Constant(1e-3, total_steps=10).lr_at([0, 9]).tolist()
            [0.001, 0.001]
        """
        return np.asarray(self._lr(self._wrap(steps)), dtype=np.float64)

    def momentum_at(self, steps: Any) -> np.ndarray | None:
        """Momentums (float64) at the given steps, or `None` to leave momentum alone.

        Args:
            steps: Int step index or array of them (>= 0).

        Returns:
            Array of the same shape as `steps`, or `None`.

        Raises:
            TypeError: If `steps` is not numeric (e.g. strings or bools).
            ValueError: If `steps` holds a negative or non-integer value.

        Example:
            >>> OneCycle(1e-3, total_steps=100).momentum_at([0, 25]).tolist()
            [0.95, 0.85]
        """
        if getattr(self, "moms", None) is None:
            return None
        return np.asarray(self._momentum(self._wrap(steps)), dtype=np.float64)

    def _lr(self, steps: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _momentum(self, steps: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments, JSON-able.

        Returns:
            A dict of the arguments that rebuild the policy (`{}` on the base class).

        Example:
            >>> Constant(1e-3, total_steps=10).get_config()
            {'lr': 0.001, 'total_steps': 10, 'momentum': None}
        """
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class OneCycle(Policy):
    """One-cycle policy: cosine warm-up to a peak, then cosine annealing.

    The learning rate rises from `lr / div` at step 0 to `lr` at step
    `n_up = round(pct_start * (total_steps - 1))`, then falls to `lr / div_final` at the
    last step, both along half cosines. Momentum moves the other way: from `moms[0]` down to
    `moms[1]` at the peak and back up to `moms[0]` at the end.

    Args:
        lr: Peak learning rate.
        total_steps: Number of optimizer steps in the whole cycle.
        pct_start: Fraction of the cycle spent warming up, in [0, 1]. Default 0.25.
        div: Starting learning rate is `lr / div` (>= 1). Default 25.
        div_final: Final learning rate is `lr / div_final` (>= 1). Default 1e4.
        moms: `(high, low)` momentum pair, or `None` to leave momentum alone.
            Default `(0.95, 0.85)`.

    Raises:
        TypeError: If a rate or count is not a number (a count not an int).
        ValueError: If an argument is out of range.

    Example:
        >>> policy = OneCycle(1e-3, total_steps=100)
        >>> float(policy.lr_at(25)) == 1e-3
        True
    """

    def __init__(
        self,
        lr: float,
        total_steps: int,
        pct_start: float = 0.25,
        div: float = 25.0,
        div_final: float = 1e4,
        moms: Sequence[float] | None = (0.95, 0.85),
    ):
        self.lr = _check_positive_float("lr", lr)
        self.total_steps = check_positive_int(total_steps, "total_steps")
        self.pct_start = check_float(pct_start, "pct_start", 0.0, 1.0)
        self.div = check_float(div, "div", 1.0)
        self.div_final = check_float(div_final, "div_final", 1.0)
        self.moms = check_moms(moms)
        self.n_up = int(round(self.pct_start * (self.total_steps - 1)))

    def _fracs(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        up = steps <= self.n_up
        frac_up = _safe_frac(steps.astype(np.float64), self.n_up)
        frac_down = _safe_frac((steps - self.n_up).astype(np.float64),
                               self.total_steps - 1 - self.n_up)
        return up, frac_up, frac_down

    def _lr(self, steps):
        up, frac_up, frac_down = self._fracs(steps)
        return np.where(
            up,
            _cos_interp(self.lr / self.div, self.lr, frac_up),
            _cos_interp(self.lr, self.lr / self.div_final, frac_down),
        )

    def _momentum(self, steps):
        high, low = self.moms
        up, frac_up, frac_down = self._fracs(steps)
        return np.where(up, _cos_interp(high, low, frac_up), _cos_interp(low, high, frac_down))

    def get_config(self):
        return {
            "lr": self.lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div": self.div,
            "div_final": self.div_final,
            "moms": None if self.moms is None else list(self.moms),
        }


class Triangular(Policy):
    """Triangular cycles: linear up to the peak and back down, one cycle per epoch.

    Within each cycle of `steps_per_cycle` steps the learning rate rises linearly from
    `lr / div` (first step) to `lr` (middle step, index `steps_per_cycle // 2`) and falls
    linearly back to `lr / div` at the last step. Momentum mirrors it between `moms[0]` (at
    the cycle ends) and `moms[1]` (at the peak).

    Args:
        lr: Peak learning rate of every cycle.
        steps_per_cycle: Steps in one cycle; `autofit` uses the steps of one epoch. Must be
            >= 2.
        n_cycles: Number of cycles, or `None` to repeat until training stops. Default `None`.
        div: Lowest learning rate is `lr / div` (>= 1). Default 10.
        moms: `(high, low)` momentum pair, or `None`. Default `(0.95, 0.85)`.

    Raises:
        TypeError: If a rate or count is not a number (a count not an int).
        ValueError: If an argument is out of range.

    Example:
        >>> policy = Triangular(1e-3, steps_per_cycle=10, n_cycles=3)
        >>> float(policy.lr_at(5)) == 1e-3
        True
    """

    def __init__(
        self,
        lr: float,
        steps_per_cycle: int,
        n_cycles: int | None = None,
        div: float = 10.0,
        moms: Sequence[float] | None = (0.95, 0.85),
    ):
        self.lr = _check_positive_float("lr", lr)
        self.steps_per_cycle = check_int(steps_per_cycle, "steps_per_cycle", 2)
        self.n_cycles = None if n_cycles is None else check_positive_int(n_cycles, "n_cycles")
        self.div = check_float(div, "div", 1.0)
        self.moms = check_moms(moms)
        self.peak = self.steps_per_cycle // 2
        if self.n_cycles is None:
            self.total_steps = None
            self.cycle_steps = self.steps_per_cycle
        else:
            self.total_steps = self.steps_per_cycle * self.n_cycles

    def _frac(self, steps: np.ndarray) -> np.ndarray:
        """0 at the cycle ends, 1 at the peak, linear in between."""
        pos = (steps % self.steps_per_cycle).astype(np.float64)
        rising = pos / self.peak
        # A 2-step cycle never falls (its peak is its last step): no division by 0.
        falling = (self.steps_per_cycle - 1 - pos) / max(1, self.steps_per_cycle - 1 - self.peak)
        return np.where(pos <= self.peak, rising, falling)

    def _lr(self, steps):
        low = self.lr / self.div
        return low + (self.lr - low) * self._frac(steps)

    def _momentum(self, steps):
        high, low = self.moms
        return high + (low - high) * self._frac(steps)

    def get_config(self):
        return {
            "lr": self.lr,
            "steps_per_cycle": self.steps_per_cycle,
            "n_cycles": self.n_cycles,
            "div": self.div,
            "moms": None if self.moms is None else list(self.moms),
        }


class SGDR(Policy):
    """Cosine annealing with warm restarts (SGDR).

    Cycle `i` lasts `steps_per_cycle * cycle_mult**i` steps; within a cycle the learning rate
    follows a half cosine from `lr` (first step) to `lr / div_final` (last step), then
    restarts at `lr`. Momentum mirrors it from `moms[1]` up to `moms[0]`.

    Args:
        lr: Learning rate at the start of every cycle.
        steps_per_cycle: Steps in the first cycle (>= 1).
        n_cycles: Number of cycles (>= 1).
        cycle_mult: Each cycle is this many times longer than the previous (int >= 1).
            Default 1.
        div_final: Lowest learning rate is `lr / div_final` (>= 1). Default 100.
        moms: `(high, low)` momentum pair, or `None`. Default `(0.95, 0.85)`.

    Raises:
        TypeError: If a rate or count is not a number (a count not an int).
        ValueError: If an argument is out of range.

    Example:
        >>> policy = SGDR(1e-3, steps_per_cycle=10, n_cycles=3, cycle_mult=2)
        >>> policy.total_steps
        70
    """

    def __init__(
        self,
        lr: float,
        steps_per_cycle: int,
        n_cycles: int,
        cycle_mult: int = 1,
        div_final: float = 100.0,
        moms: Sequence[float] | None = (0.95, 0.85),
    ):
        self.lr = _check_positive_float("lr", lr)
        self.steps_per_cycle = check_positive_int(steps_per_cycle, "steps_per_cycle")
        self.n_cycles = check_positive_int(n_cycles, "n_cycles")
        self.cycle_mult = check_positive_int(cycle_mult, "cycle_mult")
        self.div_final = check_float(div_final, "div_final", 1.0)
        self.moms = check_moms(moms)
        lengths = [self.steps_per_cycle * self.cycle_mult**i for i in range(self.n_cycles)]
        self.cycle_lengths = lengths
        self._starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.total_steps = int(sum(lengths))

    def _frac(self, steps: np.ndarray) -> np.ndarray:
        cycle = np.searchsorted(self._starts, steps, side="right") - 1
        pos = (steps - self._starts[cycle]).astype(np.float64)
        span = np.asarray(self.cycle_lengths, dtype=np.float64)[cycle] - 1.0
        return np.where(span > 0, pos / np.maximum(span, 1.0), 0.0)

    def _lr(self, steps):
        return _cos_interp(self.lr, self.lr / self.div_final, self._frac(steps))

    def _momentum(self, steps):
        high, low = self.moms
        return _cos_interp(low, high, self._frac(steps))

    def get_config(self):
        return {
            "lr": self.lr,
            "steps_per_cycle": self.steps_per_cycle,
            "n_cycles": self.n_cycles,
            "cycle_mult": self.cycle_mult,
            "div_final": self.div_final,
            "moms": None if self.moms is None else list(self.moms),
        }


class Constant(Policy):
    """A constant learning rate (and optionally a constant momentum).

    Args:
        lr: The learning rate.
        total_steps: Number of steps (>= 1).
        momentum: Momentum to hold during training, or `None` (default) to leave it alone.

    Raises:
        TypeError: If a rate or count is not a number (a count not an int).
        ValueError: If an argument is out of range.

    Example:
        >>> Constant(1e-3, total_steps=10).lr_at([0, 9]).tolist()
        [0.001, 0.001]
    """

    def __init__(self, lr: float, total_steps: int, momentum: float | None = None):
        self.lr = _check_positive_float("lr", lr)
        self.total_steps = check_positive_int(total_steps, "total_steps")
        self.momentum = check_float(momentum, "momentum", 0.0, 1.0, include_high=False,
                                    allow_none=True)
        self.moms = None if momentum is None else (self.momentum, self.momentum)

    def _lr(self, steps):
        return np.full(steps.shape, self.lr)

    def _momentum(self, steps):
        return np.full(steps.shape, self.momentum)

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "momentum": self.momentum}


class ExponentialSweep(Policy):
    """Exponentially increasing learning rate, as used by the LR finder.

    `lr_at(i) = start_lr * (end_lr / start_lr) ** (i / (total_steps - 1))`, so the first step
    uses `start_lr` and the last `end_lr`. Momentum is left alone.

    Args:
        start_lr: First learning rate.
        end_lr: Last learning rate (> `start_lr`).
        total_steps: Number of steps (>= 2).

    Raises:
        TypeError: If a rate or count is not a number (a count not an int).
        ValueError: If an argument is out of range.

    Example:
        >>> ExponentialSweep(1e-4, 1e-2, total_steps=3).lr_at([0, 1, 2]).round(6).tolist()
        [0.0001, 0.001, 0.01]
    """

    moms = None

    def __init__(self, start_lr: float, end_lr: float, total_steps: int):
        self.start_lr = _check_positive_float("start_lr", start_lr)
        self.end_lr = _check_positive_float("end_lr", end_lr)
        if self.end_lr <= self.start_lr:
            raise ValueError(
                "`end_lr` must be larger than `start_lr`. "
                f"Received: start_lr={start_lr!r}, end_lr={end_lr!r}"
            )
        self.total_steps = check_positive_int(total_steps, "total_steps")
        if self.total_steps < 2:
            raise ValueError(
                f"`total_steps` must be >= 2 for a sweep. Received: total_steps={total_steps!r}"
            )

    def _lr(self, steps):
        frac = steps.astype(np.float64) / (self.total_steps - 1)
        return self.start_lr * (self.end_lr / self.start_lr) ** frac

    def get_config(self):
        return {"start_lr": self.start_lr, "end_lr": self.end_lr, "total_steps": self.total_steps}
