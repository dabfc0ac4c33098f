"""Scaling a suggested learning rate to the length of the fit it is meant for.

A finder sweep knows nothing about the training that follows it: the same curve serves a
fit of 100 updates and one of 10,000. Short fits want a higher peak rate than long ones
(there are fewer updates to make progress with, and less time for the instability a high
rate causes to accumulate). The rules in `ktlite.lr.suggest` are calibrated for a fit of
about `REFERENCE_STEPS` optimizer updates; told the planned number of updates, the
suggestion is multiplied by `(REFERENCE_STEPS / planned_steps) ** BUDGET_EXPONENT`, kept
within `[1 / MAX_FACTOR, MAX_FACTOR]`. Not told (`planned_steps=None`), it is left alone.
"""

from __future__ import annotations

from ktlite.arguments import check_positive_int, check_suggested_rate

__all__ = ["REFERENCE_STEPS", "BUDGET_EXPONENT", "MAX_FACTOR", "budget_factor", "for_budget"]

# The fit length (optimizer updates) the suggestion rules were calibrated on: the tasks of
# `benchmarks/lr_finder.py` run 2 trained for 240 - 1,250 updates.
REFERENCE_STEPS = 1000
# How strongly the rate follows the budget: 0.5 halves the rate for 4x the updates.
BUDGET_EXPONENT = 0.5
# The budget never moves a suggestion by more than half a decade either way.
MAX_FACTOR = 10.0 ** 0.5


def budget_factor(planned_steps: int | None) -> float:
    """How much to multiply a suggestion by for a fit of `planned_steps` optimizer updates.

    Args:
        planned_steps: Optimizer updates the planned fit will make (epochs times updates
            per epoch), or `None` when unknown.

    Returns:
        `(REFERENCE_STEPS / planned_steps) ** BUDGET_EXPONENT` clipped to
        `[1 / MAX_FACTOR, MAX_FACTOR]`; 1.0 for `None`.

    Raises:
        TypeError: If `planned_steps` is neither `None` nor an int (a bool is not an int).
        ValueError: If `planned_steps` is an int < 1.

    Example:
        >>> budget_factor(250)  # a quarter of the reference: twice the rate
        2.0
        >>> budget_factor(None)
        1.0
    """
    planned_steps = check_positive_int(planned_steps, "planned_steps", allow_none=True)
    if planned_steps is None:
        return 1.0
    factor = (REFERENCE_STEPS / float(planned_steps)) ** BUDGET_EXPONENT
    return float(min(MAX_FACTOR, max(1.0 / MAX_FACTOR, factor)))


def for_budget(lr: float, planned_steps: int | None) -> float:
    """A suggested learning rate scaled for a fit of `planned_steps` optimizer updates.

    Args:
        lr: A suggestion read off a finder curve: a positive rate (`nan` or another
            non-finite value passes through as `nan`).
        planned_steps: Optimizer updates of the planned fit, or `None` (no change).

    Returns:
        `lr * budget_factor(planned_steps)`.

    Raises:
        TypeError: If `lr` is not a number, or `planned_steps` is neither `None` nor an int.
        ValueError: If `lr` is a finite number <= 0, or `planned_steps` is an int < 1.

    Example:
        >>> for_budget(1e-3, 4000)
        0.0005
    """
    lr = check_suggested_rate(lr, "lr")
    return lr * budget_factor(planned_steps)
