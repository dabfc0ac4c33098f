"""The learning-rate finder: an exponential sweep that leaves the model exactly as it was."""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from typing import Any, Sequence

import keras

from ktlite import saving
from ktlite._console import warn
from ktlite.arguments import (
    check_choice,
    check_float,
    check_int,
    check_positive_float,
    check_rate,
    check_verbose,
)
from ktlite.lr.budget import budget_factor
from ktlite.lr.policy_callback import PolicyCallback
from ktlite.lr.preserve import check_compiled, ensure_built, preserved
from ktlite.lr.schedules import ExponentialSweep
from ktlite.lr.suggest import DEFAULT_SUGGESTION, is_flat, smooth_losses, suggest_all

__all__ = ["LRFindResult", "find_lr", "DEFAULT_NUM_STEPS", "MAX_SWEEPS"]

# Default sweep length. With the default beta=0.98 the moving average lags about 50 steps;
# 200 steps over 8 decades keep that lag near two decades while costing at most a few hundred
# batches, whatever the size of the data set.
DEFAULT_NUM_STEPS = 200

_FORMAT = "ktlite.lr_find/1"

# Most sweeps one `find_lr` call runs: the spread of their average shrinks with the square
# root of their number, so a hundred leaves nothing to gain that more would.
MAX_SWEEPS = 100


def _floats(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values]


def _to_json_list(values: Sequence[float]) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _from_json_list(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


@dataclasses.dataclass
class LRFindResult:
    """What an LR sweep measured, as plain data.

    Attributes:
        lrs: Learning rate of each step of the sweep.
        losses: True loss of each batch (not a running mean).
        smoothed: Bias-corrected exponential moving average of `losses`.
        suggestions: Learning rates read off the curve, by rule: `"valley"`, `"steep"`,
            `"minimum"`, `"basin"`, `"descent"` and `"consensus"` (see
            `ktlite.lr.suggest`), each within the swept range; `nan` when the curve is too
            short.
        suggestion: The default suggestion, `suggestions["basin"]` (half a decade below
            where the lag-free loss curve reaches its bottom; see `ktlite.lr.suggest`),
            times `config["budget_factor"]` when the sweep was told the planned fit's length
            (`ktlite.lr.budget`).
        config: The sweep's settings (`start_lr`, `end_lr`, `num_steps`, `stop_factor`,
            `beta`, `sweeps`), `stopped_early`, `flat` (from `find_lr`: the loss did not
            fall by more than its batch-to-batch noise, `ktlite.lr.is_flat`, so the
            suggestions read noise; with several sweeps, in any of them), and
            `planned_steps`/`budget_factor` when given.
        per_sweep: With `find_lr(sweeps=k)`, each sweep's own result (its curve and
            suggestions as read off it, not scaled for `planned_steps`); `lrs`, `losses`
            and `smoothed` are the first one's, `suggestions` is every rule's geometric
            mean over the sweeps that could read it (those not `nan`), and `config`'s
            `stopped_early` and `flat` are true if they are for any sweep. Empty for one
            sweep.

    Example:
        >>> result = find_lr(model, train_ds)
        >>> result.save("lr_find.json")
        >>> LRFindResult.load("lr_find.json").suggestion == result.suggestion
        True
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float]
    suggestion: float
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_sweep: list["LRFindResult"] = dataclasses.field(default_factory=list)

    def __repr__(self) -> str:
        """One line (a notebook cell ending in `lr_find()` shows this, not the curve)."""
        rules = ", ".join(f"{rule}={lr:.3g}" for rule, lr in self.suggestions.items())
        sweeps = f" (first of {len(self.per_sweep)} sweeps)" if self.per_sweep else ""
        return (f"LRFindResult(suggestion={self.suggestion:.3g}, {len(self.lrs)} steps"
                f"{sweeps}, rules: {rules})")

    @classmethod
    def from_curve(
        cls, lrs: Sequence[float], losses: Sequence[float], beta: float = 0.98, **config: Any
    ) -> "LRFindResult":
        """Build a result (smoothing and suggestions) from a raw sweep.

        Args:
            lrs: Learning rate of each step.
            losses: Raw loss of each step.
            beta: EMA smoothing factor. Default 0.98.
            **config: Extra settings to keep in `config`.

        Returns:
            An `LRFindResult`.

        Raises:
            TypeError: If `beta` is not a number.
            ValueError: If `lrs` and `losses` differ in length or `beta` is outside [0, 1).

        Example:
            >>> r = LRFindResult.from_curve(np.logspace(-5, 0, 50), np.linspace(2, 1, 50))
        """
        beta = check_rate(beta, "beta")
        lrs, losses = _floats(lrs), _floats(losses)
        if len(lrs) != len(losses):
            raise ValueError(
                "`lrs` and `losses` must have the same length. "
                f"Received: len(lrs)={len(lrs)}, len(losses)={len(losses)}"
            )
        smoothed = smooth_losses(losses, beta).tolist()
        suggestions = suggest_all(lrs, losses, smoothed)
        return cls(
            lrs=lrs,
            losses=losses,
            smoothed=smoothed,
            suggestions=suggestions,
            suggestion=suggestions[DEFAULT_SUGGESTION],
            config={"beta": beta, **config},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become `None`).

        Returns:
            Dict with a `"format"` key and every field.

        Example:
            >>> LRFindResult.from_dict(result.to_dict()) == result
        """
        return {
            "format": _FORMAT,
            "lrs": _to_json_list(self.lrs),
            "losses": _to_json_list(self.losses),
            "smoothed": _to_json_list(self.smoothed),
            "suggestions": {k: _to_json_list([v])[0] for k, v in self.suggestions.items()},
            "suggestion": _to_json_list([self.suggestion])[0],
            "config": dict(self.config),
            "per_sweep": [sweep.to_dict() for sweep in self.per_sweep],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LRFindResult":
        """Rebuild a result from `to_dict()` output.

        Args:
            data: The dict.

        Returns:
            An `LRFindResult`.

        Raises:
            ValueError: If `data` is not a dict from `to_dict()`.

        Example:
            >>> LRFindResult.from_dict(result.to_dict())
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(
                f"`data` must be a dict written by LRFindResult.to_dict() (format {_FORMAT!r})."
                f" Received: format={data.get('format') if isinstance(data, dict) else data!r}"
            )
        missing = {"lrs", "losses", "smoothed", "suggestions", "suggestion"} - set(data)
        if missing:
            raise ValueError(f"`data` misses keys {sorted(missing)}. Received: keys={sorted(data)}")
        try:
            lrs, losses = _from_json_list(data["lrs"]), _from_json_list(data["losses"])
            smoothed = _from_json_list(data["smoothed"])
            suggestions = {str(k): _from_json_list([v])[0]
                           for k, v in data["suggestions"].items()}
            if "consensus" not in suggestions:
                # Saved before that rule existed: it reads the saved curve.
                suggestions = {**suggest_all(lrs, losses, smoothed), **suggestions}
            return cls(
                lrs=lrs,
                losses=losses,
                smoothed=smoothed,
                suggestions=suggestions,
                suggestion=_from_json_list([data["suggestion"]])[0],
                config=dict(data.get("config") or {}),
                per_sweep=[cls.from_dict(sweep) for sweep in data.get("per_sweep", [])],
            )
        except (TypeError, ValueError, AttributeError):
            raise ValueError(
                "`data` must hold lists of numbers (or null) under lrs, losses and smoothed, "
                "a dict of numbers under suggestions, a number under suggestion and a list "
                "of such dicts under per_sweep."
            ) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the result as JSON, atomically (`ktlite.saving.write_json`).

        Args:
            path: File to write (conventionally `*.json`); its folder must exist.

        Example:
            >>> result.save("lr_find.json")
        """
        saving.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LRFindResult":
        """Read a result written by `save`.

        Args:
            path: The JSON file.

        Returns:
            An `LRFindResult`.

        Raises:
            FileNotFoundError: If the file is missing.
            ValueError: If it is a link, not JSON, or not an LR-finder result; the message
                names the file and quotes none of it.

        Example:
            >>> result = LRFindResult.load("lr_find.json")
        """
        data = saving.read_json(path)
        try:
            return cls.from_dict(data)
        except ValueError:
            raise ValueError(
                f"{path} is not an LR-finder result written by LRFindResult.save."
            ) from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LRFindResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def suggest(self, planned_steps: int | None = None, rule: str = DEFAULT_SUGGESTION) -> float:
        """A rule's suggestion scaled for a fit of `planned_steps` optimizer updates.

        Args:
            planned_steps: Updates the planned fit makes (epochs times updates per epoch);
                `None` returns the rule's suggestion unchanged (calibrated for about
                `ktlite.lr.budget.REFERENCE_STEPS` updates).
            rule: A key of `suggestions`. Default `DEFAULT_SUGGESTION`.

        Returns:
            `suggestions[rule] * ktlite.lr.budget.budget_factor(planned_steps)`.

        Raises:
            TypeError: If `rule` is not a str or `planned_steps` is neither `None` nor an
                int.
            ValueError: If `rule` is unknown or `planned_steps` is below 1.

        Example:
            >>> lr = result.suggest(planned_steps=3 * steps_per_epoch)
        """
        check_choice(rule, "rule", sorted(self.suggestions))
        return float(self.suggestions[rule]) * budget_factor(planned_steps)


def _warmup_steps(num_steps: int) -> int:
    """The first steps of a sweep, in which only a loss that is not finite stops it.

    The smoothed loss of the first batches is the mean of a handful of batch losses, and
    its minimum may be one batch's: when the batch-to-batch noise is large (a model that
    already fits its training batches, a loss near zero after a fit, where one batch's loss
    can be thousands of times another's) one high batch after a low one read as divergence
    at rates that had trained nothing yet. Over the warm-up the mean of more batches settles
    back within `stop_factor` of its minimum when the rise was one batch's noise; a loss
    that diverged stays above it and stops the sweep at the warm-up's end, a few steps later
    than without it. Counted in batches, not in rates, since the noise of that mean depends
    on how many batches it holds (a short sweep over a wide range would get one or two):
    5% of the sweep (10 of the default 200 batches, under half a decade of the default
    range), at least 5.
    """
    return max(5, num_steps // 20)


class _SweepMonitor(keras.callbacks.Callback):
    """Smooths the recorded losses after every batch and stops the sweep on divergence
    (after the first `warmup` batches, see `_warmup_steps`; on a non-finite loss at once)."""

    def __init__(self, policy_cb: PolicyCallback, stop_factor: float, beta: float, progbar,
                 warmup: int):
        super().__init__()
        self.policy_cb = policy_cb
        self.stop_factor = stop_factor
        self.beta = beta
        self.progbar = progbar
        self.warmup = warmup
        self.avg = 0.0
        self.best = math.inf
        self.first = math.nan
        self.smoothed: list[float] = []
        self.stopped_early = False

    def diverged(self, value: float) -> bool:
        """Whether the smoothed loss `value` ends the sweep.

        A positive best loss: `value` exceeds `stop_factor` times it. At or below zero (a
        negative loss such as cosine similarity) a ratio means nothing, so the rise above
        the best counts in the curve's own scale: `value - best` exceeds `stop_factor - 1`
        times the larger of the best's distance from zero and the drop from the first
        smoothed loss to the best (what `stop_factor` times a positive best allows).
        """
        if not math.isfinite(value):
            return True
        if self.best > 0:
            return value > self.stop_factor * self.best
        scale = max(-self.best, self.first - self.best)
        return value - self.best > (self.stop_factor - 1.0) * scale

    def on_train_batch_end(self, batch, logs=None):
        self.policy_cb.flush()
        losses = self.policy_cb.history["losses"]
        for i in range(len(self.smoothed), len(losses)):
            self.avg = self.beta * self.avg + (1.0 - self.beta) * losses[i]
            value = self.avg / (1.0 - self.beta ** (i + 1))
            self.smoothed.append(value)
            if i == 0:
                self.first = value
            if (i >= self.warmup or not math.isfinite(value)) and self.diverged(value):
                self.stopped_early = True
                self.model.stop_training = True
                break
            self.best = min(self.best, value)
        if self.progbar is not None and self.smoothed:
            values = [("lr", self.policy_cb.history["lrs"][len(self.smoothed) - 1]),
                      ("loss", self.smoothed[-1])]
            self.progbar.update(len(self.smoothed), values=values, finalize=False)


def _brief_spec(spec: Any, limit: int = 200) -> str:
    """A short text for a dataset's `element_spec`: dtypes and shapes, structure kept."""

    def text(node: Any) -> str:
        if isinstance(node, dict):
            return "{" + ", ".join(f"{k!r}: {text(v)}" for k, v in node.items()) + "}"
        if isinstance(node, (tuple, list)):
            inner = ", ".join(text(v) for v in node)
            if isinstance(node, list):
                return f"[{inner}]"
            return f"({inner},)" if len(node) == 1 else f"({inner})"
        shape, dtype = getattr(node, "shape", None), getattr(node, "dtype", None)
        if shape is None or dtype is None:
            return type(node).__name__
        dims = "unknown rank" if shape.rank is None else tuple(shape.as_list())
        return f"{type(node).__name__}({dims}, {getattr(dtype, 'name', dtype)})"

    brief = text(spec)
    return brief if len(brief) <= limit else brief[: limit - 3] + "..."


def _model_input_ranks(model: keras.Model) -> list[int] | None:
    """The ranks (batch axis included) of a model's symbolic inputs, or None if unknown."""
    try:
        inputs = getattr(model, "inputs", None)
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    import tensorflow as tf

    return sorted(len(tensor.shape) for tensor in tf.nest.flatten(inputs))


def _check_sweep_data(model: keras.Model, dataset: Any) -> None:
    """Refuses a dataset that `find_lr` cannot sweep over, before anything is trained.

    A dataset counts as unbatched when one of its element's parts is a scalar (a batch has
    a batch axis) or its inputs have one axis less than the model's symbolic inputs, read
    from its `element_spec` alone: datasets whose items are already batches (from
    `from_generator`, as `ktlite.get_learner` makes from a `PyDataset`) pass when their
    ranks match the model's or cannot be compared with them.

    Args:
        model: the model to sweep.
        dataset: a `tf.data.Dataset`.

    Raises:
        ValueError: if `dataset` is not batched, or its elements are not `(x, y)` or
            `(x, y, sample_weight)`.
    """
    import tensorflow as tf

    def ranks(structure: Any) -> list[int | None]:
        return [getattr(getattr(leaf, "shape", None), "rank", None)
                for leaf in tf.nest.flatten(structure)]

    spec = dataset.element_spec
    x_spec = spec[0] if isinstance(spec, (tuple, list)) and spec else spec
    x_ranks = ranks(x_spec)
    model_ranks = _model_input_ranks(model)
    one_axis_short = (
        model_ranks is not None and None not in x_ranks
        and sorted(x_ranks) == [r - 1 for r in model_ranks]
    )
    if 0 in ranks(spec) or one_axis_short:
        raise ValueError(
            "`dataset` must be batched: the sweep sets one learning rate per batch. "
            "Call `.batch(n)` on it first (e.g. `dataset.batch(32)`). Received: an "
            f"unbatched tf.data.Dataset with element_spec {_brief_spec(spec)}"
        )
    if not (isinstance(spec, (tuple, list)) and len(spec) in (2, 3)):
        raise ValueError(
            "`dataset` must yield `(x, y)` or `(x, y, sample_weight)` batches: the sweep "
            "needs the labels to compute the loss. Received: a tf.data.Dataset with "
            f"element_spec {_brief_spec(spec)}"
        )


def find_lr(
    model: keras.Model,
    dataset: Any,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int | None = None,
    stop_factor: float = 4.0,
    beta: float = 0.98,
    verbose: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    planned_steps: int | None = None,
    sweeps: int = 1,
) -> LRFindResult:
    """Sweep the learning rate exponentially and record the loss of every batch.

    The model's own compiled optimizer is driven by `ktlite.lr.PolicyCallback` with an
    `ExponentialSweep` from `start_lr` to `end_lr` over `num_steps` batches (momentum left
    alone). The sweep stops early once the smoothed loss exceeds `stop_factor` times its
    minimum or stops being finite (for a minimum at or below zero, e.g. a cosine-similarity
    loss: once it rises `stop_factor - 1` times the curve's scale above it, see
    `_SweepMonitor.diverged`); over its first `max(5, num_steps // 20)` batches only a loss
    that is not finite stops it, so one noisy batch there is not read as divergence (a sweep
    that stops soon after, near `start_lr`, warns that the loss may be at noise level, as
    when the model already fits its training batches). The data set is repeated if it is
    shorter than the sweep, and cut after `num_steps` batches, so a model compiled with
    `steps_per_execution > 1` trains exactly `num_steps` steps too (its last execution runs
    the steps that are left).

    The recorded losses are each batch's own (`ktlite.lr.PolicyCallback`); a custom
    `train_step` whose loss ktlite cannot read per batch gets a warning. When the loss does
    not fall by more than its batch-to-batch noise (`ktlite.lr.is_flat`: rates swept
    far too low, or a model that does not learn) the result is marked `config["flat"]` and
    a `RuntimeWarning` says so; its suggestions, like every suggestion, stay within
    `[start_lr, end_lr]`, but they read noise.

    Afterwards the model's variables (weights, non-trainable state, random seeds), its
    metrics, every optimizer variable (including `iterations` and the learning rate) are
    restored bit for bit - also when the sweep diverges or is interrupted. Metrics that the
    sweep itself built (the compiled metrics of a model that never trained) are reset to
    their empty state. A model that is not
    built yet is built first on one batch, so the sweep trains nothing the restore misses. An
    optimizer that has not been built yet (the model never trained) is left untouched and
    unbuilt: the sweep runs on a copy made from its config. An optimizer created with a
    `LearningRateSchedule` is swept through a temporary learning-rate variable and gets its
    schedule back.

    With `sweeps=k` the sweep runs k times from that same state (restored after each), each
    beginning at another batch (after the previous sweep's batches, or spread over one pass
    of a dataset shorter than the sweeps; a dataset that reshuffles gives each another
    order), and every rule's suggestion is the geometric mean of its readings that are not
    `nan`: a suggestion that moves less with the batch order, for k times the sweep's steps
    (`benchmarks/lr_finder.py --sweeps-per-find` measures how much less). A dataset of
    unknown length is read on to each sweep's start, `num_steps` batches after the previous
    one's. Two sweeps that record the same losses (data that does not reshuffle, with fewer
    batches than sweeps, or one batch) get a warning; sweeps that warn alike (a flat loss,
    an early stop) give one warning that names them. Each sweep is a `fit` of its own:
    `callbacks` see `on_train_begin` and `on_train_end` once per sweep.

    Args:
        model: A compiled `keras.Model`.
        dataset: A batched `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`. One
            whose elements hold a scalar, or inputs with one axis less than the model's,
            is refused as unbatched; items that are already batches (e.g. from
            `from_generator`) pass.
        start_lr: First learning rate of the sweep. Default 1e-7.
        end_lr: Last learning rate of the sweep. Default 10.
        num_steps: Batches in the full sweep (>= 5). Default `DEFAULT_NUM_STEPS` (200).
        stop_factor: Stop once the smoothed loss exceeds this many times its minimum (> 1;
            after the first `max(5, num_steps // 20)` batches). Default 4.
        beta: Smoothing factor of the bias-corrected moving average, in [0, 1). Default 0.98.
        verbose: 0 silent, 1 a progress bar.
        callbacks: Extra Keras callbacks to run during the sweep.
        planned_steps: Optimizer updates of the fit the suggestion is for; scales
            `result.suggestion` by `ktlite.lr.budget.budget_factor` (higher for short fits,
            lower for long ones). Default `None`: unscaled.
        sweeps: Sweeps to average, 1 to `MAX_SWEEPS` (100). Default 1.

    Returns:
        An `LRFindResult`; `result.suggestion` is the `"basin"` suggestion (half a decade
        below where the lag-free loss curve reaches its bottom, never below `start_lr`), the
        rule that measured best in `benchmarks/lr_finder.py`, scaled for `planned_steps`
        when given.

    Raises:
        ValueError: If an argument is out of range (`start_lr`, `end_lr` not positive and
            finite, `end_lr <= start_lr`, `num_steps < 5`, `stop_factor <= 1`, `beta`
            outside [0, 1), `verbose` not 0, 1 or 2, `planned_steps < 1`), `model` is not
            compiled, or `dataset` is empty, unbatched, or yields elements that are not
            `(x, y)` or `(x, y, sample_weight)` (checked before anything is trained),
            `sweeps` is outside [1, 100], or `callbacks` holds one that sets the learning
            rate or a `BackupAndRestore` (see `PolicyCallback.check_callbacks`).
        TypeError: If `model` is not a `keras.Model`, `dataset` is not a
            `tf.data.Dataset`, a rate, `stop_factor` or `beta` is not a number,
            `num_steps`, `planned_steps`, `sweeps` or `verbose` is not an int, or
            `callbacks` is not a list of Keras callbacks.

    Example:
        >>> result = find_lr(model, train_ds.batch(32))
        >>> result.suggestions
        {'valley': ..., 'steep': ..., 'minimum': ..., 'basin': ..., 'descent': ...,
         'consensus': ...}
    """
    import tensorflow as tf

    check_compiled(model, "find_lr")
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a batched tf.data.Dataset. "
            f"Received: dataset of type {type(dataset).__name__}"
        )
    _check_sweep_data(model, dataset)
    start_lr = check_positive_float(start_lr, "start_lr")
    end_lr = check_positive_float(end_lr, "end_lr")
    if end_lr <= start_lr:
        raise ValueError(
            "`end_lr` must be larger than `start_lr`. "
            f"Received: start_lr={start_lr!r}, end_lr={end_lr!r}"
        )
    num_steps = check_int(DEFAULT_NUM_STEPS if num_steps is None else num_steps, "num_steps", 5)
    stop_factor = check_float(stop_factor, "stop_factor", 1.0, include_low=False)
    factor = budget_factor(planned_steps)
    sweeps = check_int(sweeps, "sweeps", 1, MAX_SWEEPS)
    beta = check_rate(beta, "beta")
    verbose = check_verbose(verbose, (0, 1, 2))
    callbacks = PolicyCallback.check_callbacks(callbacks)
    if dataset.cardinality() == 0:
        raise ValueError("`dataset` is empty. Received: a tf.data.Dataset with 0 batches")

    ensure_built(model, dataset)
    settings = dict(start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                    stop_factor=stop_factor, beta=beta, verbose=verbose, callbacks=callbacks)
    results, notes = [], []
    for index, start in enumerate(_sweep_starts(dataset, num_steps, sweeps)):
        batches = dataset.repeat().skip(start) if start else dataset.repeat()
        result, monitor = _sweep(model, batches, **settings)
        note = _sweep_note(result, monitor, index, sweeps, factor)
        if note is not None:
            notes.append((index, *note))
        results.append(result)
    _warn_once_per_kind(notes, sweeps)
    _warn_about_repeated_sweeps(results, int(dataset.cardinality()))
    result = _combined(results) if sweeps > 1 else results[0]
    result.config["sweeps"] = sweeps
    if planned_steps is not None:
        result.config.update(planned_steps=int(planned_steps), budget_factor=factor)
        result.suggestion = result.suggest(planned_steps)
    if sweeps > 1 and not math.isfinite(result.suggestion):
        warn(
            f"The LR finder could not suggest a learning rate (`result.suggestion` is nan): "
            f"none of its {sweeps} sweeps could (see their warnings), or look at the curves "
            "(`ktlite.plots.plot_lr_find(result)`) and pick one.",
            RuntimeWarning,
        )
    return result


def _sweep_starts(dataset: Any, num_steps: int, sweeps: int) -> list[int]:
    """Where each sweep begins in the repeated `dataset`, in batches.

    A dataset that reshuffles gives every pass another order wherever a sweep begins; one
    that does not repeats its batches every `n`, so sweeps must begin at other batches
    modulo `n`. With `n` known, sweep k begins `k * min(num_steps, max(1, n // sweeps))`
    batches in, modulo `n` (distinct while `n >= sweeps`; at most one pass of the data is
    read and dropped); with `n` unknown or infinite, after the previous sweep's `num_steps`
    batches.
    """
    n = int(dataset.cardinality())
    if n > 0:
        step = min(num_steps, max(1, n // sweeps))
        return [index * step % n for index in range(sweeps)]
    return [index * num_steps for index in range(sweeps)]


def _warn_about_repeated_sweeps(results: list[LRFindResult], batches: int) -> None:
    """Warns when two sweeps recorded the very same losses (nan equal to nan; sweeps with no
    finite loss say nothing of their batches and are passed over): they read the same
    batches. `batches` is the dataset's cardinality (1: one batch, which every sweep reads
    whatever the order, so shuffling cannot help)."""
    seen: dict[tuple, int] = {}
    for index, result in enumerate(results):
        if not any(math.isfinite(loss) for loss in result.losses):
            continue
        key = tuple(None if math.isnan(loss) else loss for loss in result.losses)
        first = seen.setdefault(key, index)
        if first != index:
            if batches == 1:
                why, fix = ("the dataset holds one batch, which every sweep reads",
                            "Use a smaller `batch_size` (several batches) for sweeps that "
                            "differ, or `sweeps=1`.")
            else:
                why, fix = ("the dataset gave them the same batches in the same order (a "
                            "pipeline that does not reshuffle, with fewer batches than "
                            "`sweeps`, or repeated with a period the sweeps cannot see)",
                            "Shuffle the data (e.g. `dataset.shuffle(n)` before `.batch`) "
                            "for sweeps that differ.")
            warn(
                f"Sweeps {first + 1} and {index + 1} of the LR finder recorded the same "
                f"losses: {why}, so `result.suggestion` averages fewer readings than it "
                f"ran. {fix}",
                RuntimeWarning,
            )
            return


def _warn_once_per_kind(notes: list[tuple[int, str, str]], sweeps: int) -> None:
    """Warns each kind of `(index, kind, message)` note once, in its first sweep's words,
    naming the other sweeps that called for it (a hundred sweeps of a flat loss give one
    warning, not a hundred)."""
    alike: dict[str, list[int]] = {}
    for index, kind, _ in notes:
        alike.setdefault(kind, []).append(index)
    for index, kind, message in notes:
        others = alike[kind]
        if others[0] != index:
            continue
        if len(others) > 1:
            message += (f" Likewise sweep{'s' if len(others) > 2 else ''} "
                        f"{_runs(others[1:])} of {sweeps} (each sweep's curve is in "
                        "`result.per_sweep`).")
        warn(message, RuntimeWarning)


def _runs(indices: list[int]) -> str:
    """Sweep numbers (1-based) of increasing 0-based `indices`, runs joined: "2-4, 7"."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0] + 1}-{r[-1] + 1}" if len(r) > 1 else f"{r[0] + 1}" for r in runs)


def _sweep(model: keras.Model, batches: Any, *, start_lr: float, end_lr: float,
           num_steps: int, stop_factor: float, beta: float, verbose: int,
           callbacks: list) -> tuple[LRFindResult, _SweepMonitor]:
    """One sweep over `batches` (repeated), restored afterwards; its result and monitor."""
    import tensorflow as tf

    policy_cb = PolicyCallback(ExponentialSweep(start_lr, end_lr, num_steps))
    progbar = keras.utils.Progbar(
        num_steps, verbose=verbose, stateful_metrics=["lr", "loss"]
    ) if verbose else None
    monitor = _SweepMonitor(policy_cb, stop_factor, beta, progbar, _warmup_steps(num_steps))
    with preserved(model, start_lr, "ktlite_lr_find_learning_rate"):
        ensure_built(model, batches)  # again: a never-built optimizer has a built copy here
        try:
            # A sweep of exactly `num_steps` batches, not `steps_per_epoch`: Keras runs
            # whole executions of `steps_per_execution` steps within an epoch of a given
            # length (12 for 10 at 3 a call), but stops a short last one where the data ends.
            model.fit(
                batches.take(num_steps).apply(
                    tf.data.experimental.assert_cardinality(num_steps)
                ),
                epochs=1,
                callbacks=[policy_cb, monitor, *callbacks],
                verbose=0,
                shuffle=False,
            )
        finally:
            policy_cb.restore()
    n = len(monitor.smoothed)
    if progbar is not None and n:
        progbar.update(n, values=[("loss", monitor.smoothed[-1])], finalize=True)
    lrs, losses = policy_cb.history["lrs"][:n], policy_cb.history["losses"][:n]
    result = LRFindResult.from_curve(
        lrs,
        losses,
        beta=beta,
        start_lr=start_lr,
        end_lr=end_lr,
        num_steps=num_steps,
        stop_factor=stop_factor,
        stopped_early=monitor.stopped_early,
        flat=is_flat(lrs, losses),
    )
    return result, monitor


def _combined(results: list[LRFindResult]) -> LRFindResult:
    """The first sweep's curve with every rule's geometric mean over the sweeps that could
    read it (`nan` where none could), each sweep's own result kept beside it."""
    suggestions = {}
    for rule in results[0].suggestions:
        values = [r.suggestions[rule] for r in results
                  if math.isfinite(r.suggestions[rule]) and r.suggestions[rule] > 0]
        suggestions[rule] = statistics.geometric_mean(values) if values else math.nan
    config = {**results[0].config,
              "stopped_early": any(r.config.get("stopped_early", False) for r in results),
              "flat": any(r.config.get("flat", False) for r in results)}
    return dataclasses.replace(results[0], suggestions=suggestions,
                               suggestion=suggestions[DEFAULT_SUGGESTION], config=config,
                               per_sweep=results)


def _sweep_note(result: LRFindResult, monitor: _SweepMonitor, index: int, sweeps: int,
                factor: float) -> tuple[str, str] | None:
    """The warning sweep `index` of `sweeps` calls for, as `(kind, message)`, when it could
    not be read or read noise (`None` otherwise), saying why; it quotes the suggestion as
    the user gets it (one sweep: `result.suggestion`, times the budget `factor`; several:
    the sweep's own in `per_sweep`, unscaled)."""
    config = result.config
    start_lr, end_lr, num_steps = config["start_lr"], config["end_lr"], config["num_steps"]
    stop_factor, flat = config["stop_factor"], config["flat"]
    lrs, losses, n = result.lrs, result.losses, len(result.lrs)
    if sweeps > 1:
        # Each sweep's own reading, unscaled (`per_sweep`); a nan one is left out.
        suggestion, own = result.suggestion, "its suggestion"
        headline = (f"Sweep {index + 1} of {sweeps} of the LR finder could not read a "
                    "learning rate (its suggestion is nan, left out of `result.suggestion`)")
        prefix = f"Sweep {index + 1} of {sweeps}: "
    else:
        suggestion, own = result.suggestion * factor, "`result.suggestion`"
        headline = ("The LR finder could not suggest a learning rate (`result.suggestion` "
                    "is nan)")
        prefix = ""
    left_out = (", left out of `result.suggestion`"
                if sweeps > 1 and not math.isfinite(suggestion) else "")
    if monitor.stopped_early and not math.isfinite(losses[0]):
        # The first batch's loss is computed before any update, at the lowest rate: no
        # `start_lr` makes it finite, so the cause is the model, the data or the loss.
        return "first_loss", (
            f"{headline}: the loss was already {losses[0]:g} at the first step, computed "
            f"before any update at the lowest rate ({start_lr:g}), so lowering `start_lr` "
            "cannot help: the model or the data produce it. Check the data for nan/inf "
            "values, the model's initialization and outputs (e.g. `model.predict` on one "
            "batch), and the loss."
        )
    if monitor.stopped_early and math.isfinite(result.smoothed[-1]) and (
            lrs[-1] <= 10.0 * start_lr):
        # A rise past `stop_factor` where the sweep has barely begun: a divergence from a
        # `start_lr` too high, or noise at rates that train nothing, which no `start_lr` cures.
        return "barely_begun", (
            f"{prefix}The LR sweep stopped after {n} of {num_steps} steps, within a decade of "
            f"`start_lr` ({start_lr:g}), where it has barely begun: its smoothed loss rose "
            f"past `stop_factor` ({stop_factor:g}) times its lowest ({monitor.best:.3g}). "
            "Either `start_lr` is already too high (lower it), or the loss is at noise level, "
            "one batch's loss many times another's, as when the model already fits the "
            "training batches (e.g. after a fit drove the training loss near zero): a lower "
            "`start_lr` cannot help there; sweep before fitting, and look at the curve "
            f"(`ktlite.plots.plot_lr_find(result)`). {own[0].upper()}{own[1:]} "
            f"({suggestion:.3g}{left_out}) reads those {n} steps alone."
        )
    if not math.isfinite(suggestion):
        if monitor.stopped_early:
            kind = "diverged"
            why = (f"the loss diverged after {n} of {num_steps} steps: lower `start_lr` (it "
                   f"was {start_lr:g})")
        elif flat:
            kind = "flat_unreadable"
            why = ("the loss did not fall by more than its batch-to-batch noise: sweep other "
                   f"rates (`start_lr`, `end_lr`; it swept {start_lr:g} to {end_lr:g}) or "
                   "check that the model can learn")
        else:
            kind, why = "too_few", f"{n} steps are too few to read the curve: raise `num_steps`"
        return kind, (
            f"{headline}: {why}, or look at the curve "
            "(`ktlite.plots.plot_lr_find(result)`) and pick one."
        )
    if flat:
        return "flat", (
            f"{prefix}The loss did not fall over the LR sweep from {start_lr:g} to "
            f"{end_lr:g} by more than its batch-to-batch noise, so every suggestion ({own} "
            f"= {suggestion:.3g}, held within the swept range) reads noise: sweep higher "
            "rates (raise `end_lr`; the default sweep is 1e-7 to 10), or check that the "
            "model can learn (its loss, its labels, frozen layers) and does not already fit "
            "the training batches (a loss near zero, e.g. after a fit: sweep before fitting), "
            "and look at the curve (`ktlite.plots.plot_lr_find(result)`)."
        )
    return None
