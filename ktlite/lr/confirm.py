"""The confirming pass: short one-cycle runs at the rates the rules disagree on.

The rules of `ktlite.lr.suggest` read one sweep; where they disagree, a few batches of real
training settle it. `confirm_lr` trains the model from its current weights for each candidate
rate (moved to the run's length, below) on the same fixed batches, scores each run by
validation loss (or, without validation data, by the loss on the batches it trained on),
and puts the model, its metrics and its optimizer back exactly as they were after each
run, as `find_lr` does after its sweep.

A run of a few dozen batches favours high rates: what trains fastest for 50 updates is not
what ends best after thousands. The candidates are rates for the planned fit, so each short
run trains at its candidate moved to the run's own length by the budget rule of
`ktlite.lr.budget` (`budget_factor(steps) / budget_factor(planned_steps)` times the
candidate), and the candidate whose moved rate does best is chosen.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from ktlite.arguments import check_positive_float, check_positive_int, check_suggested_rate
from ktlite.lr.budget import budget_factor
from ktlite.lr.policy_callback import PolicyCallback, _momentum_attribute
from ktlite.lr.preserve import check_compiled, ensure_built, preserved
from ktlite.lr.schedules import OneCycle

__all__ = ["candidate_lrs", "confirm_lr", "SAME_RATE"]

# Candidates closer than this factor are one candidate (a quarter decade).
SAME_RATE = 10.0 ** 0.25


def candidate_lrs(
    suggestions: dict[str, float], default: float, max_candidates: int = 3
) -> list[float]:
    """The default suggestion and the extremes of the others, without near-duplicates.

    Args:
        suggestions: Positive learning rates by rule, a dict such as
            `LRFindResult.suggestions` (`None` and non-finite ones are ignored).
        default: The default suggestion, a positive rate (always the first candidate) or a
            non-finite one (ignored).
        max_candidates: At most this many rates (>= 1). Default 3.

    Returns:
        Increasingly ordered distinct rates, no two within a factor `SAME_RATE`: the
        default, then the lowest and the highest of the other rules' suggestions.

    Raises:
        TypeError: If `suggestions` is not a dict, a suggestion or `default` is not a
            number, or `max_candidates` is not an int.
        ValueError: If a suggestion or `default` is a finite number <= 0, or
            `max_candidates` is below 1.

    Example:
        >>> candidate_lrs({"a": 1e-3, "b": 1.2e-3, "c": 1e-2}, default=1e-3)
        [0.001, 0.01]
    """
    if not isinstance(suggestions, Mapping):
        raise TypeError(
            "`suggestions` must be a dict of learning rates by rule (e.g. "
            f"`result.suggestions`). Received: suggestions of type {type(suggestions).__name__}"
        )
    rates = [check_suggested_rate(lr, f"suggestions[{rule!r}]")
             for rule, lr in suggestions.items() if lr is not None]
    default = check_suggested_rate(default, "default")
    max_candidates = check_positive_int(max_candidates, "max_candidates")
    others = sorted(lr for lr in rates if math.isfinite(lr))
    ordered = [default] if math.isfinite(default) else []
    ordered += others[:1] + others[-1:]
    picked: list[float] = []
    for lr in ordered:
        if len(picked) < max_candidates and all(
            max(lr, p) / min(lr, p) >= SAME_RATE for p in picked
        ):
            picked.append(lr)
    return sorted(picked)


def _short_run(model, batches, lr: float, steps: int, val_dataset) -> float:
    """Train `steps` batches with one-cycle at `lr`; the loss that judges the rate."""
    # Momentum cycles as in `fit_onecycle`, where the optimizer has one (no warning else).
    cycle = OneCycle(lr, steps) if _momentum_attribute(model.optimizer) else OneCycle(
        lr, steps, moms=None)
    policy_cb = PolicyCallback(cycle)
    try:
        model.fit(batches, epochs=1, callbacks=[policy_cb], verbose=0, shuffle=False)
    finally:
        policy_cb.restore()
    judged = batches if val_dataset is None else val_dataset
    loss = float(model.evaluate(judged, verbose=0, return_dict=True)["loss"])
    return loss if math.isfinite(loss) else math.inf


def confirm_lr(
    model: keras.Model,
    dataset: Any,
    lrs: Sequence[float],
    steps: int = 50,
    val_dataset: Any = None,
    planned_steps: int | None = None,
) -> dict[str, Any]:
    """Train briefly from the same weights for each rate and pick the one that does best.

    Each run is a one-cycle schedule (`ktlite.lr.OneCycle` defaults) over the same `steps`
    batches, taken once from `dataset` (repeated if shorter), at its candidate rate times
    `budget_factor(steps) / budget_factor(planned_steps)`: the candidates are rates for a
    fit of `planned_steps` updates, and the budget rule of `ktlite.lr.budget` says what
    each becomes for a run of `steps`, so a short run's taste for high rates does not pick
    a rate too high for the long fit (not told `planned_steps`, a run of the default 50
    steps trains at about 3.2 times each candidate). Runs are judged by the loss on
    `val_dataset` after training, or on the batches they trained on when there is none; a
    run whose loss is not finite loses. After every run the model's variables and metrics,
    the optimizer's variables (including `iterations`), its learning rate, and
    `model.history` are restored bit for bit, also when a run raises. A single candidate
    needs no confirming: it is returned without training (`"steps": 0`).

    Args:
        model: A compiled `keras.Model` whose optimizer's learning rate a
            `ktlite.lr.PolicyCallback` can drive.
        dataset: A batched `tf.data.Dataset` of training batches.
        lrs: A list of candidate learning rates (positive), e.g. from `candidate_lrs`.
        steps: Training batches per run (>= 1). Default 50, a quarter of a default sweep.
        val_dataset: A batched `tf.data.Dataset` to judge the runs by, or `None`.
        planned_steps: Optimizer updates of the fit the candidates are meant for, or
            `None` when unknown (the budget rule's reference length).

    Returns:
        A JSON-able dict: `"lrs"` (the candidates), `"run_lrs"` (the rates their short runs
        trained at; empty when a single candidate needs no run), `"losses"` (the runs'
        losses, `None` when not finite), `"chosen"` (the candidate whose run had the lowest
        loss), `"steps"` and `"judged_by"` (`"val_loss"` or `"loss"`).

    Raises:
        TypeError: If `model` is not a `keras.Model`, `dataset` (or a given `val_dataset`)
            is not a `tf.data.Dataset`, `lrs` is not a list (or tuple, or array) of rates, a
            rate in `lrs` is not a number, or `steps` or `planned_steps` is not an int.
        ValueError: If `model` is not compiled, an argument is invalid (no rates, a rate
            that is not positive and finite, `steps` or `planned_steps` below 1) or every
            run diverged.

    Example:
        >>> record = confirm_lr(model, train_ds, [3e-4, 1e-3, 3e-3], val_dataset=val_ds)
        >>> record["chosen"]
    """
    import tensorflow as tf

    check_compiled(model, "confirm_lr")
    for name, value in (("dataset", dataset), ("val_dataset", val_dataset)):
        if (value is not None or name == "dataset") and not isinstance(value, tf.data.Dataset):
            raise TypeError(
                f"`{name}` must be a batched tf.data.Dataset. "
                f"Received: {name} of type {type(value).__name__}"
            )
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, (Sequence, np.ndarray)):
        raise TypeError(
            "`lrs` must be a list of candidate learning rates (e.g. from `candidate_lrs`; "
            f"one rate as [rate]). Received: lrs={lrs!r:.80}"
        )
    lrs = [check_positive_float(lr, f"lrs[{i}]") for i, lr in enumerate(lrs)]
    if not lrs:
        raise ValueError("`lrs` must hold at least one positive rate. Received: lrs=[]")
    steps = check_positive_int(steps, "steps")
    horizon = budget_factor(steps) / budget_factor(planned_steps)
    judged_by = "loss" if val_dataset is None else "val_loss"
    if len(lrs) == 1:
        return {"lrs": lrs, "run_lrs": [], "losses": [None], "chosen": lrs[0], "steps": 0,
                "judged_by": judged_by}
    ensure_built(model, dataset)
    # The same batches for every candidate, read once.
    batches = dataset.repeat().take(steps).cache()
    run_lrs = [lr * horizon for lr in lrs]
    losses = []
    # A never-built optimizer: one stand-in, built once, trains every candidate (each
    # inner block restores it as it restores a built one), so the step is traced once.
    shared = (contextlib.nullcontext() if model.optimizer.built
              else preserved(model, run_lrs[0], "ktlite_confirm_learning_rate"))
    with shared:
        ensure_built(model, dataset)
        for run_lr in run_lrs:
            with preserved(model, run_lr, "ktlite_confirm_learning_rate"):
                losses.append(_short_run(model, batches, run_lr, steps, val_dataset))
    if not any(math.isfinite(loss) for loss in losses):
        raise ValueError(
            f"Every confirming run diverged (losses {losses}). Received: lrs={lrs!r}; "
            "sweep again with a lower `end_lr` or pass lower rates."
        )
    best = int(np.argmin(losses))
    return {
        "lrs": lrs,
        "run_lrs": run_lrs,
        "losses": [loss if math.isfinite(loss) else None for loss in losses],
        "chosen": lrs[best],
        "steps": steps,
        "judged_by": judged_by,
    }
