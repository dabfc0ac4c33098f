"""Learning-rate tools: policies, the callback that applies them, and the LR finder.

Example:
    >>> from ktlite.lr import OneCycle, PolicyCallback, find_lr
    >>> result = find_lr(model, train_ds)
    >>> policy = OneCycle(result.suggestion, total_steps=3 * steps_per_epoch)
    >>> model.fit(train_ds, epochs=3, callbacks=[PolicyCallback(policy)])
"""

from ktlite.lr.budget import budget_factor
from ktlite.lr.finder import DEFAULT_NUM_STEPS, MAX_SWEEPS, LRFindResult, find_lr
from ktlite.lr.layer_groups import GroupRates, group_multipliers, layer_groups
from ktlite.lr.policy_callback import PolicyCallback
from ktlite.lr.schedules import SGDR, Constant, ExponentialSweep, OneCycle, Policy, Triangular
from ktlite.lr.suggest import (
    DEFAULT_SUGGESTION,
    is_flat,
    running_median,
    smooth_losses,
    suggest_basin,
    suggest_consensus,
    suggest_descent,
    suggest_minimum,
    suggest_steep,
    suggest_valley,
)

__all__ = [
    "Policy",
    "OneCycle",
    "Triangular",
    "SGDR",
    "Constant",
    "ExponentialSweep",
    "PolicyCallback",
    "GroupRates",
    "group_multipliers",
    "layer_groups",
    "find_lr",
    "LRFindResult",
    "DEFAULT_NUM_STEPS",
    "MAX_SWEEPS",
    "DEFAULT_SUGGESTION",
    "budget_factor",
    "smooth_losses",
    "suggest_valley",
    "suggest_steep",
    "suggest_minimum",
    "suggest_basin",
    "suggest_consensus",
    "suggest_descent",
    "running_median",
    "is_flat",
]
