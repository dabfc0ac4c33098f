"""Magnitude pruning of Keras kernels during fine-tuning, and a per-layer sparsity report.

`MagnitudePruning` is an ordinary `keras.callbacks.Callback`. At a few steps of a sparsity
schedule it zeroes, in every `Dense`, `EinsumDense` and convolution kernel (and `Embedding`
tables when asked), the weights of smallest magnitude, layer by layer, and records which
ones in a 0/1 mask. The masks are enforced *inside the compiled train step*: each pruned
kernel gets a Keras variable constraint `kernel * mask`, which the optimizer applies right
after every update. Pruned weights are therefore exactly zero after every optimizer step,
at the cost of one elementwise multiply per kernel per step in the graph, with no extra
Python work per batch (masking from `on_train_batch_end` would cost one eager op per
kernel per batch).

Nothing is added to the model itself: after training, the constraints are removed and the
model holds plain kernels with zeros, so it saves to the ordinary `.keras` format and loads
without ktlite. Unstructured zeros do not make dense matrix products faster; they make the
model compress well (`.keras` files are zip archives) and prepare it for sparse runtimes.

Steps count train batches. With `steps_per_execution=k` Keras runs k batches per compiled
call and calls back once per call, with the index of the call's first batch
(`on_train_batch_begin`) and of its last (`on_train_batch_end`): the callback reads those
indices, so its steps still count batches and the schedule ends where it was planned. Masks
can only change between calls: an update scheduled inside a call is made at the start of
the next one. Inside a call the constraints still zero the pruned weights after every
optimizer step, so they are zero at the end of every call and of training.

An optimizer with `use_ema=True` cannot be used: at the end of `fit` Keras overwrites the
weights with their moving averages, in which the pruned weights are not zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from ktlite import compat, model_tools
from ktlite._console import say, warn
from ktlite.arguments import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_positive_float,
    check_positive_int,
    check_rate,
    check_verbose,
)
from ktlite.compress._exclude import check_patterns_match, compile_exclude_patterns, excluded_by

__all__ = [
    "PRUNING_SCHEDULES",
    "MagnitudePruning",
    "SparsityReport",
    "polynomial_sparsity",
    "prunable_weights",
    "prune",
    "sparsity",
]

PRUNING_SCHEDULES: tuple[str, ...] = ("polynomial", "constant")

# The layers whose `kernel` is pruned, each kernel tensor on its own magnitudes: a
# convolution's like a Dense one's. A SeparableConv's two kernels stay dense.
_KERNEL_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)


def check_schedule(schedule: Any) -> str:
    """Validates a pruning schedule name: TypeError unless a str, ValueError if unknown."""
    return check_choice(schedule, "schedule", PRUNING_SCHEDULES)


def _check_ramp(
    target_sparsity: Any, begin_step: Any, end_step: Any, initial_sparsity: Any, power: Any,
    allow_none: bool = False,
) -> tuple[float, int, int | None, float, float]:
    """The polynomial ramp's settings, checked alike for `MagnitudePruning` and
    `polynomial_sparsity`; `allow_none` takes an `end_step` of None (resolved at `fit`)."""
    target_sparsity = check_rate(target_sparsity, "target_sparsity")
    begin_step = check_int(begin_step, "begin_step", 0)
    end_step = check_int(end_step, "end_step", 0, allow_none=allow_none)
    if end_step is not None and end_step < begin_step:
        raise ValueError(
            f"`end_step` must be >= `begin_step` ({begin_step}). Received: end_step={end_step!r}"
        )
    initial = check_float(initial_sparsity, "initial_sparsity", low=0.0)
    if initial > target_sparsity:
        raise ValueError(
            f"`initial_sparsity` must be a float in [0, target_sparsity={target_sparsity}]. "
            f"Received: initial_sparsity={initial_sparsity!r}"
        )
    return target_sparsity, begin_step, end_step, initial, check_positive_float(power, "power")


def polynomial_sparsity(
    step: int | np.ndarray,
    target_sparsity: float,
    begin_step: int,
    end_step: int,
    initial_sparsity: float = 0.0,
    power: float = 3.0,
) -> np.ndarray:
    """Sparsity at a step of the polynomial schedule.

    `s(t) = s_f + (s_0 - s_f) * (1 - p)^power` with `p = (t - begin) / (end - begin)`
    clipped to [0, 1]: sparsity rises fast at first, while many small weights are
    unimportant, and slowly near the target so training can recover.

    Args:
        step: step(s), counted from the start of the fit: an int >= 0 or an array of them.
        target_sparsity: `s_f` in [0, 1), reached at `end_step` and kept afterwards.
        begin_step: first step of the ramp (sparsity `initial_sparsity`), >= 0.
        end_step: last step of the ramp; must be >= `begin_step`. When equal, the
            sparsity jumps to the target at that step.
        initial_sparsity: `s_0` in [0, `target_sparsity`]. Defaults to 0.
        power: exponent, > 0. Defaults to 3.

    Returns:
        The sparsity (a float array with the shape of `step`).

    Raises:
        TypeError: if `step` is not an int or an array of ints, or another argument has
            the wrong type (`begin_step="3"`, `power=True`); each error names it.
        ValueError: if a step is negative or a value is out of range: `target_sparsity`
            outside [0, 1), `begin_step < 0`, `end_step < begin_step`,
            `initial_sparsity` outside [0, target_sparsity] or `power <= 0`.

    Example:
        >>> polynomial_sparsity(np.array([0, 50, 100]), 0.8, 0, 100)
        array([0. , 0.7, 0.8])
    """
    steps = np.asarray(step)
    if steps.dtype.kind not in "iu":
        raise TypeError(f"`step` must be an int or an array of ints. Received: step={step!r:.80}")
    if np.any(steps < 0):
        raise ValueError(f"`step` must be >= 0. Received: step={step!r:.80}")
    steps = steps.astype("float64")
    target_sparsity, begin_step, end_step, initial_sparsity, power = _check_ramp(
        target_sparsity, begin_step, end_step, initial_sparsity, power
    )
    span = max(end_step - begin_step, 1)
    # From `end_step` on the target holds, also for an empty ramp (`begin == end`).
    progress = np.where(steps >= end_step, 1.0, np.clip((steps - begin_step) / span, 0.0, 1.0))
    return target_sparsity + (initial_sparsity - target_sparsity) * (1.0 - progress) ** power


def _pruned_weight(layer: keras.layers.Layer, include_embeddings: bool) -> Any:
    """The kernel (or embedding table) of `layer` that pruning acts on, or None."""
    if not layer.built or getattr(layer, "quantization_mode", None) is not None:
        return None
    if isinstance(layer, _KERNEL_LAYERS):
        weight = layer.kernel
    elif include_embeddings and isinstance(layer, keras.layers.Embedding):
        weight = layer.embeddings
    else:
        return None
    # With LoRA enabled the property returns a computed tensor, not the variable.
    return weight if isinstance(weight, keras.Variable) else None


def prunable_weights(
    model: keras.Model,
    include_embeddings: bool = False,
    exclude: str | Sequence[str] | None = None,
) -> list[tuple[str, keras.Variable]]:
    """Lists the weights magnitude pruning acts on.

    Args:
        model: a built Keras model.
        include_embeddings: also list `Embedding` tables. Defaults to `False`.
        exclude: regex(es) searched (`re.search`) in layer paths and bare layer names, as
            `quantize_model`'s; matching layers are skipped. Each pattern must match at
            least one layer that would be listed without it.

    Returns:
        `(layer_path, variable)` pairs: the float kernel of every `Dense` / `EinsumDense`
        (including those inside `MultiHeadAttention` and composite layers) and of every
        convolution (`Conv1D/2D/3D`, their `Transpose` versions, `DepthwiseConv1D/2D`;
        not `SeparableConv`), then the embedding tables if asked. Quantized layers and
        layers with LoRA enabled are skipped.

    Raises:
        TypeError: if `model` is not a `keras.Model`, `include_embeddings` is not a bool,
            or `exclude` is not a str/list.
        ValueError: if an `exclude` regex does not compile or matches none of the layers
            listed without it (the message lists their paths).

    Example:
        >>> [path for path, _ in prunable_weights(model)]
        ['encoder_0/ffn_outer', 'encoder_0/ffn_inner', ..., 'head']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    include_embeddings = check_bool(include_embeddings, "include_embeddings")
    patterns = compile_exclude_patterns(exclude)
    candidates = [
        (layer, weight)
        for layer in compat.flatten_layers(model, include_self=False, recursive=True)
        if (weight := _pruned_weight(layer, include_embeddings)) is not None
    ]
    kinds = ("Dense, EinsumDense, convolution or Embedding layer" if include_embeddings
             else "Dense, EinsumDense or convolution layer")
    check_patterns_match([layer for layer, _ in candidates], patterns, exclude, kinds)
    found: list[tuple[str, keras.Variable]] = []
    seen: set[int] = set()
    for layer, weight in candidates:
        if id(weight) not in seen and not any(excluded_by(layer, p) for p in patterns):
            seen.add(id(weight))
            found.append((layer.path or layer.name, weight))
    return found


@dataclass
class SparsityReport:
    """Fraction of exactly-zero weights, per layer and overall.

    Attributes:
        layers: layer path -> sparsity of its kernel (or embedding table).
        zeros: number of zero weights over all listed layers.
        total: number of weights over all listed layers.

    Example:
        >>> report = ktlite.compress.sparsity(model)  # a SparsityReport
        >>> report.overall, report.layers["head"]
        (0.5, 0.5)
    """

    layers: dict[str, float] = field(default_factory=dict)
    zeros: int = 0
    total: int = 0

    @property
    def overall(self) -> float:
        """Zeros over all listed weights (0.0 when there are none)."""
        return self.zeros / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-able).

        Returns:
            A dict with `layers` (a copy), `zeros`, `total` and `overall`.

        Example:
            >>> SparsityReport({"dense": 0.5}, zeros=8, total=16).to_dict()
            {'layers': {'dense': 0.5}, 'zeros': 8, 'total': 16, 'overall': 0.5}
        """
        return {
            "layers": dict(self.layers),
            "zeros": self.zeros,
            "total": self.total,
            "overall": self.overall,
        }

    def __str__(self) -> str:
        width = max([len(name) for name in self.layers] + [7])
        lines = [f"{'layer':<{width}}  sparsity"]
        lines += [f"{name:<{width}}  {value:8.2%}" for name, value in self.layers.items()]
        lines.append(
            f"{'overall':<{width}}  {self.overall:8.2%}  ({self.zeros:,} of {self.total:,} weights)"
        )
        return "\n".join(lines)


def sparsity(
    model: keras.Model,
    include_embeddings: bool = False,
    exclude: str | Sequence[str] | None = None,
) -> SparsityReport:
    """Reports the fraction of exactly-zero weights in each prunable kernel.

    Args:
        model: a built Keras model (pruned or not).
        include_embeddings: also report `Embedding` tables. Defaults to `False`.
        exclude: regex(es) searched in layer paths (and bare layer names); matching
            layers are left out. See `prunable_weights`.

    Returns:
        A `SparsityReport` (`.layers`, `.overall`; `print(report)` shows a table) over the
        weights `prunable_weights` lists.

    Raises:
        TypeError: if `model` is not a `keras.Model`, `include_embeddings` is not a bool,
            or `exclude` is not a str/list.
        ValueError: if an `exclude` pattern matches none of those layers.

    Example:
        >>> report = ktlite.compress.sparsity(learner.model)
        >>> report.overall
        0.5
    """
    report = SparsityReport()
    for path, weight in prunable_weights(model, include_embeddings, exclude):
        values = np.asarray(weight.numpy())
        zeros = int(values.size - np.count_nonzero(values))
        report.layers[path] = zeros / values.size if values.size else 0.0
        report.zeros += zeros
        report.total += int(values.size)
    return report


class _MaskConstraint:
    """Variable constraint that keeps masked weights at zero after each optimizer update."""

    def __init__(self, mask: keras.Variable, inner: Any = None) -> None:
        self.mask = mask
        self.inner = inner

    def __call__(self, weight: Any) -> Any:
        if self.inner is not None:
            weight = self.inner(weight)
        return keras.ops.multiply(weight, keras.ops.cast(self.mask, weight.dtype))


def _check_no_ema(model: keras.Model) -> None:
    """Refuses a model whose optimizer keeps moving averages (`use_ema=True`)."""
    optimizer = getattr(model, "optimizer", None)
    if model_tools.uses_ema(optimizer):
        raise ValueError(
            "Pruning needs an optimizer without `use_ema`, but the model's optimizer has "
            "`use_ema=True`: at the end of every fit Keras writes the optimizer's moving "
            "averages into the weights, which averages the pruned zeros away. Compile the "
            "model with an optimizer without `use_ema` to prune it, e.g. "
            "`model.compile(optimizer=keras.optimizers.Adam(), ...)`. Nothing was changed. "
            f"Received: optimizer={type(model_tools.inner_optimizer(optimizer)).__name__}"
            "(use_ema=True)"
        )


def _magnitude_mask(values: np.ndarray, fraction: float) -> np.ndarray:
    k = int(round(fraction * values.size))
    mask = np.ones(values.size, dtype=values.dtype)
    if k > 0:
        # argpartition gives exactly k zeros even when many magnitudes tie (e.g. at 0).
        mask[np.argpartition(np.abs(values).ravel(), k - 1)[:k]] = 0
    return mask.reshape(values.shape)


class MagnitudePruning(keras.callbacks.Callback):
    """Prunes the smallest-magnitude weights of each kernel on a schedule during `fit`.

    Between `begin_step` and `end_step` the callback recomputes each layer's mask every
    `frequency` steps so that the layer's sparsity follows the schedule; after `end_step`
    the masks are fixed and training fine-tunes the remaining weights. Steps count train
    batches from the start of this `fit`, also with `steps_per_execution > 1` (Keras then
    calls back once per group of batches, and an update scheduled inside a group is made
    at the start of the next group). See the module notes for how masks are enforced.

    Args:
        target_sparsity: final fraction of zero weights in each pruned layer, in [0, 1).
            Defaults to 0.5.
        schedule: `"polynomial"` (default; cubic ramp from `initial_sparsity`) or
            `"constant"` (prune to the target once at `begin_step`, then fine-tune).
        begin_step: step of the first pruning. Defaults to 0.
        end_step: step at which the target is reached. `None` (default) means two thirds
            of the fit's steps (`epochs * steps_per_epoch`, which Keras must know),
            leaving the last third to recover.
        frequency: steps between mask updates during the ramp. `None` (default) spreads
            about 16 updates over it.
        initial_sparsity: sparsity at `begin_step` for `"polynomial"`. Defaults to 0.
        power: exponent of the polynomial schedule. Defaults to 3.
        include_embeddings: also prune `Embedding` tables. Defaults to `False`.
        exclude: regex(es) searched in layer paths (and bare layer names); matching layers
            are not pruned. Each must match a layer `prunable_weights` lists.
        verbose: 1 reports the reached sparsity at the end of training. Defaults to 0.

    Attributes:
        history: `(step, sparsity)` of every mask update.
        report: the `SparsityReport` at the end of training.
        below_target: layer path -> sparsity for layers that ended below the target
            (empty when every layer reached it; checked at the end of training).

    Raises:
        TypeError: if a number, flag, `schedule` or `exclude` has the wrong type
            (`begin_step="3"`, `include_embeddings=1`, `power=True`, `schedule=None`);
            each error names the argument.
        ValueError: if a value is out of range: `target_sparsity` outside [0, 1), an
            unknown `schedule`, `begin_step < 0`, `end_step < begin_step`,
            `frequency < 1`, `initial_sparsity` outside [0, target_sparsity], `power <= 0`
            or `verbose` not 0 or 1; when training begins, if the model's optimizer has
            `use_ema=True` (its moving averages would erase the pruned zeros), if an
            `exclude` pattern matches no prunable layer, or if there is nothing to prune
            (nothing is changed).

    Example:
        >>> pruning = MagnitudePruning(target_sparsity=0.5)
        >>> model.fit(x, y, epochs=3, callbacks=[pruning])
        >>> ktlite.compress.sparsity(model).overall
        0.5
    """

    def __init__(
        self,
        target_sparsity: float = 0.5,
        schedule: str = "polynomial",
        begin_step: int = 0,
        end_step: int | None = None,
        frequency: int | None = None,
        initial_sparsity: float = 0.0,
        power: float = 3.0,
        include_embeddings: bool = False,
        exclude: str | Sequence[str] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        (self.target_sparsity, self.begin_step, self.end_step, self.initial_sparsity,
         self.power) = _check_ramp(target_sparsity, begin_step, end_step, initial_sparsity,
                                   power, allow_none=True)
        self.schedule = check_schedule(schedule)
        self.frequency = check_positive_int(frequency, "frequency", allow_none=True)
        self.include_embeddings = check_bool(include_embeddings, "include_embeddings")
        compile_exclude_patterns(exclude)
        self.exclude = exclude
        self.verbose = check_verbose(verbose)
        self.history: list[tuple[int, float]] = []
        self.report: SparsityReport | None = None
        self.below_target: dict[str, float] = {}
        self._weights: list[tuple[str, keras.Variable]] = []
        self._masks: list[keras.Variable] = []
        self._inner: list[Any] = []
        self._step = 0
        self._epoch_start = 0
        self._checked = -1
        self._last_sparsity = 0.0
        self._ramp: tuple[int, int, int] = (0, 0, 1)

    # ------------------------------------------------------------------ schedule
    def sparsity_at(self, step: int) -> float:
        """The scheduled sparsity at a step of this fit (needs the fit's step count).

        The ramp's end is resolved when training begins, so call it during or after `fit`.

        Args:
            step: a train batch index, counted from the start of this fit.

        Returns:
            0.0 before `begin_step`; then `target_sparsity` for the `"constant"` schedule,
            or the polynomial ramp's value (see `polynomial_sparsity`).

        Example:
            >>> pruning = MagnitudePruning(target_sparsity=0.8, end_step=100)
            >>> model.fit(x, y, epochs=3, callbacks=[pruning])
            >>> pruning.sparsity_at(50)
            0.7
        """
        begin, end, _ = self._ramp
        if self.schedule == "constant":
            return self.target_sparsity if step >= begin else 0.0
        if step < begin:
            return 0.0
        return float(
            polynomial_sparsity(
                step, self.target_sparsity, begin, end, self.initial_sparsity, self.power
            )
        )

    def _update_due(self, after: int, step: int) -> bool:
        """Whether a mask update is scheduled at a step in `(after, step]`.

        Keras calls back once per `steps_per_execution` batches, so the steps skipped since
        the last call (`after`) are caught up at this one.
        """
        begin, end, every = self._ramp
        if self.schedule == "constant":
            return after < begin <= step
        low, high = max(after + 1, begin), min(step, end)
        if low > high:
            return False
        # The ramp's last step, or the first update step `begin + j * every` at or after low.
        first = begin + -(-(low - begin) // every) * every
        return high == end or first <= high

    # ------------------------------------------------------------------ callback hooks
    def on_train_begin(self, logs: dict | None = None) -> None:
        _check_no_ema(self.model)
        self._weights = prunable_weights(self.model, self.include_embeddings, self.exclude)
        if not self._weights:
            raise ValueError(
                "The model has no Dense, EinsumDense or convolution kernel (or, with "
                "include_embeddings=True, Embedding table) to prune. "
                f"Received: exclude={self.exclude!r}"
            )
        self._ramp = self._resolve_ramp()
        self._step = 0
        self._epoch_start = 0
        self._checked = -1
        self._last_sparsity = 0.0
        self.history = []
        self._masks, self._inner = [], []
        strategy = getattr(self.model, "distribute_strategy", None)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            for _, weight in self._weights:
                self._masks.append(
                    keras.Variable(
                        np.ones(weight.shape, dtype=weight.dtype),
                        trainable=False,
                        dtype=weight.dtype,
                        name="pruning_mask",
                    )
                )
        for (_, weight), mask in zip(self._weights, self._masks):
            self._inner.append(weight.constraint)
            weight.constraint = _MaskConstraint(mask, weight.constraint)
        # The train function is traced lazily: a fresh one picks up the constraints.
        self.model.make_train_function(force=True)

    def _resolve_ramp(self) -> tuple[int, int, int]:
        begin, end = self.begin_step, self.end_step
        if end is None:
            steps, epochs = self.params.get("steps"), self.params.get("epochs")
            if not steps or not epochs:
                raise ValueError(
                    "`end_step` is needed when the number of steps per epoch is unknown "
                    "(e.g. a dataset of unknown length). Received: end_step=None"
                )
            end = max(begin, (2 * int(steps) * int(epochs)) // 3)
        every = self.frequency or max(1, (end - begin) // 16)
        return begin, end, every

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = self._step

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # `batch` is the epoch's index of the first batch the coming call trains (of
        # `steps_per_execution` batches); the batches before it in the epoch have run.
        self._step = self._epoch_start + int(batch)
        if self._update_due(self._checked, self._step):
            self._update_masks(self.sparsity_at(self._step))
        self._checked = self._step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # `batch` is the index of the call's last batch; the last call of an epoch may
        # train fewer batches than `steps_per_execution`.
        done = int(batch) + 1
        steps = self.params.get("steps") if self.params else None
        if steps:
            done = min(done, int(steps))
        self._step = self._epoch_start + done

    def detach(self) -> None:
        """Takes the masks off the weights (the model's own constraints come back).

        Idempotent; `on_train_end` calls it. Keras skips `on_train_end` when training
        raises (an interrupt): call it then, or the masks keep zeroing later training.

        Example:
            >>> pruning.detach()  # e.g. in a `finally:` after an interrupted `model.fit`
        """
        if not self._inner:
            return
        for (_, weight), inner in zip(self._weights, self._inner):
            weight.constraint = inner
        self._inner = []
        # Drop the traced step that still multiplies by the masks.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        try:
            if self._last_sparsity < self.target_sparsity:
                warn(
                    f"Training stopped at step {self._step}, before the pruning schedule reached "
                    f"target_sparsity={self.target_sparsity} (last: {self._last_sparsity:.3f}); "
                    "pruning to the target now, without fine-tuning. Train longer or pass a "
                    "smaller `end_step` to let the model recover.",
                )
                self._update_masks(self.target_sparsity)
        finally:
            self.detach()
        self.report = sparsity(self.model, self.include_embeddings, self.exclude)
        self.below_target = {
            path: self.report.layers[path]
            for path, weight in self._weights
            if self.report.layers[path] + 1.0 / max(int(np.prod(weight.shape)), 1)
            < self.target_sparsity
        }
        if self.below_target:
            warn(
                f"Some layers are below target_sparsity={self.target_sparsity} after pruning: "
                f"{self.below_target}. Their weights were changed outside the optimizer step.",
            )
        if self.verbose:
            say(
                f"Pruning: reached {self.report.overall:.2%} sparsity over "
                f"{len(self.report.layers)} layers"
            )

    def _update_masks(self, fraction: float) -> None:
        for (_, weight), mask in zip(self._weights, self._masks):
            values = np.asarray(weight.numpy())
            new_mask = _magnitude_mask(values, fraction)
            mask.assign(new_mask)
            weight.assign(values * new_mask)
        self._last_sparsity = fraction
        self.history.append((self._step, fraction))


def prune(
    learner: Any,
    target_sparsity: float = 0.5,
    epochs: int = 2,
    lr: float = 1e-4,
    schedule: str = "polynomial",
    include_embeddings: bool = False,
    exclude: str | Sequence[str] | None = None,
    end_step: int | None = None,
    frequency: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    **fit_kwargs: Any,
) -> keras.callbacks.History:
    """Fine-tunes a trained model with magnitude pruning (`learner.fit_onecycle` + callback).

    Every kernel `prunable_weights` lists (Dense, EinsumDense and convolution layers) is
    pruned on its own magnitudes. The sparsity follows `schedule` up to `target_sparsity`
    over the first two thirds of the steps (see `MagnitudePruning`); the rest fine-tunes
    with the masks fixed. At the end every pruned layer is checked to be at the target.

    Args:
        learner: a ktlite `Learner` whose model is trained (anything with
            `fit_onecycle(lr, epochs, callbacks=...)` and `.model`).
        target_sparsity: fraction of zero weights per pruned layer, in [0, 1). Default 0.5.
        epochs: fine-tuning epochs. Defaults to 2.
        lr: peak learning rate of the one-cycle fine-tuning. Defaults to 1e-4, a
            fine-tuning rate for Adam-family optimizers (use about a tenth of the rate
            the model was trained with).
        schedule: `"polynomial"` (default) or `"constant"`.
        include_embeddings: also prune `Embedding` tables. Defaults to `False`.
        exclude: regex(es) of layer paths (or bare layer names) not to prune; each must
            match a layer `prunable_weights` lists.
        end_step: step at which the target is reached; `None` = two thirds of the steps.
        frequency: steps between mask updates; `None` = about 16 updates.
        callbacks: extra Keras callbacks.
        **fit_kwargs: passed to `learner.fit_onecycle` (e.g. `verbose`).

    Returns:
        The Keras `History` of the fine-tuning.

    Raises:
        TypeError: if `target_sparsity`, `epochs`, `schedule`, `include_embeddings`,
            `end_step` or `frequency` has the wrong type (e.g. `epochs="2"` or `True`),
            or if `learner` is not a learner (e.g. a Keras model or a predictor: wrap the
            model with `ktlite.get_learner(model, train_data)`).
        ValueError: for `target_sparsity` outside [0, 1), an unknown `schedule`,
            `epochs < 1`, an `end_step` / `frequency` out of range, or a model whose
            optimizer has `use_ema=True` (at the end of the fit Keras would write its
            moving averages over the pruned zeros; compile the model with an optimizer
            without `use_ema` to prune it), or an `exclude` pattern that matches no
            prunable layer (the message lists their paths). Nothing is trained.
        RuntimeError: if a layer ends below the target (should not happen).

    Example:
        >>> ktlite.compress.prune(learner, target_sparsity=0.5, epochs=2)
        >>> print(ktlite.compress.sparsity(learner.model))
    """
    target_sparsity = check_rate(target_sparsity, "target_sparsity")
    schedule = check_schedule(schedule)
    epochs = check_positive_int(epochs, "epochs")
    pruning = MagnitudePruning(
        target_sparsity=target_sparsity,
        schedule=schedule,
        end_step=end_step,
        frequency=frequency,
        include_embeddings=include_embeddings,
        exclude=exclude,
    )
    if not callable(getattr(learner, "fit_onecycle", None)) or not isinstance(
        getattr(learner, "model", None), keras.Model
    ):
        raise TypeError(
            "`learner` must be a ktlite Learner (with `fit_onecycle` and `.model`); to prune "
            "a Keras model (e.g. a predictor's `.model`), wrap it with "
            "`ktlite.get_learner(model, train_data)` and pass the learner. "
            f"Received: learner of type {type(learner).__name__}"
        )
    _check_no_ema(learner.model)
    # Refuses an `exclude` pattern that matches no prunable layer before anything trains.
    prunable_weights(learner.model, include_embeddings, exclude)
    try:
        history = learner.fit_onecycle(
            lr, epochs, callbacks=[*(callbacks or []), pruning], **fit_kwargs
        )
    except BaseException:
        pruning.detach()  # an interrupted fit skips on_train_end
        raise
    if pruning.below_target:
        raise RuntimeError(
            f"Pruning left layers below target_sparsity={target_sparsity}: {pruning.below_target}"
        )
    return history
