"""Keras callbacks the Learner adds to every fit to keep training safe.

- `NonFiniteGuard`: stops on a NaN/inf loss and rolls the model and optimizer back to the
  last epoch that ended with a finite loss.
- `BestWeights`: remembers the weights of the best epoch by a monitored value, restores
  them at the end, and can stop early and save the best model atomically. With an
  optimizer that has `use_ema=True` it keeps the moving averages, as Keras leaves them
  in the model at the end of a fit.
- `PeakReducer`: lowers the peak learning rate of a running schedule when the monitored
  value stops improving.

All three act at epoch boundaries (or flag asynchronously per batch), so they never force
Keras to wait for a step to finish.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from ktlite import compat, model_tools, saving
from ktlite.arguments import check_bool, check_float, check_positive_int, check_verbose
from ktlite._console import say, warn

__all__ = [
    "NonFiniteGuard",
    "BestWeights",
    "PeakReducer",
    "as_fit_leaves_it",
    "snapshot_state",
    "restore_state",
    "monitor_mode",
]

_MAX_WORDS = ("acc", "auc", "precision", "recall", "f1", "score", "iou")


def check_monitor_name(monitor: Any) -> str:
    """Returns `monitor` if it is a string (a Keras log key such as `"val_loss"`).

    Args:
        monitor: what the user passed as `monitor`.

    Returns:
        `monitor`.

    Raises:
        TypeError: if `monitor` is not a `str`.

    Example:
        >>> check_monitor_name("val_accuracy")
        'val_accuracy'
    """
    if not isinstance(monitor, str):
        raise TypeError(f"`monitor` must be the name of a logged value, e.g. 'val_loss'. "
                        f"Received: monitor={monitor!r:.80}")
    return monitor


def monitor_mode(monitor: str, model: keras.Model | None = None) -> str:
    """Returns `"max"` for metrics that grow when better (accuracy, AUC...), else `"min"`.

    With a compiled `model` (its metrics built by a first step), a metric that states its
    direction decides (Keras's built-in metrics do: e.g. `CosineSimilarity` grows,
    whatever it is named; also as `<output>_<name>` in a multi-output model's logs);
    otherwise names holding "acc", "auc", "precision", "recall", "f1", "score" or "iou"
    grow.

    Args:
        monitor: a Keras log key such as `"val_loss"` or `"val_accuracy"`.
        model: the compiled model whose metric it is, or `None`.

    Returns:
        `"max"` or `"min"`.

    Example:
        >>> monitor_mode("val_accuracy")
        'max'
    """
    name = monitor.lower().removeprefix("val_")
    directions = {m.name.lower(): compat.metric_direction(m) for m in _compiled_metrics(model)}
    # Exactly the metric's name, else an output's name and "_" before it (multi-output logs).
    direction = directions.get(name) or next(
        (d for metric, d in directions.items() if d and name.endswith(f"_{metric}")), None)
    if direction:
        return "max" if direction == "up" else "min"
    return "max" if any(word in name for word in _MAX_WORDS) else "min"


def _compiled_metrics(model: keras.Model | None) -> list:
    """The model's metrics, those inside the compiled-metrics container unpacked."""
    found = []
    for metric in getattr(model, "metrics", None) or []:
        inner = getattr(metric, "metrics", None)  # the container of `compile(metrics=...)`
        found.extend(inner if isinstance(inner, list) else [metric])
    return found


def snapshot_state(model: keras.Model, with_optimizer: bool = True) -> dict[str, list]:
    """Copies the model weights (and optimizer variables) to host memory.

    Args:
        model: the model.
        with_optimizer: also copy the optimizer's variables when it is built.

    Returns:
        A dict with `"weights"` and `"optimizer"` lists of numpy arrays.

    Example:
        >>> state = snapshot_state(model)
        >>> restore_state(model, state)
    """
    optimizer = getattr(model, "optimizer", None)
    opt_values: list[np.ndarray] = []
    if with_optimizer and optimizer is not None and optimizer.built:
        opt_values = [np.array(v.numpy(), copy=True) for v in optimizer.variables]
    return {"weights": model.get_weights(), "optimizer": opt_values}


def restore_state(model: keras.Model, state: dict[str, list]) -> None:
    """Writes back a state taken by `snapshot_state`.

    Args:
        model: the model the state was taken from.
        state: the snapshot.

    Example:
        >>> restore_state(model, snapshot_state(model))
    """
    model.set_weights(state["weights"])
    optimizer = getattr(model, "optimizer", None)
    values = state.get("optimizer") or []
    if optimizer is not None and values and len(optimizer.variables) == len(values):
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)


@contextlib.contextmanager
def as_fit_leaves_it(model: keras.Model) -> Iterator[None]:
    """Holds the model's weights as a fit ending now would leave them, then puts them back.

    An optimizer with `use_ema=True` keeps moving averages of the trainable weights, and
    Keras writes them into the model at the end of every fit
    (`optimizer.finalize_variable_values`): those are the weights the user gets. Inside
    this context the model holds them; on exit the weights training goes on from are put
    back, exactly. With any other optimizer (or one not built yet) nothing changes.

    Args:
        model: a compiled model.

    Yields:
        Nothing; read or save the model inside the context.

    Example:
        >>> with as_fit_leaves_it(model):
        ...     best = model.get_weights()
    """
    optimizer = getattr(model, "optimizer", None)
    if not (model_tools.uses_ema(optimizer) and optimizer.built):
        yield
        return
    # The variables Keras finalizes at the end of `fit`, in its order.
    variables = list(model.trainable_weights)
    raw = [np.array(v.numpy(), copy=True) for v in variables]
    optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, raw):
            variable.assign(value)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


# The monitors each model's running fit has warned about: `BestWeights` and `PeakReducer`
# watching one value warn once between them.
_warned_not_finite: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _start_not_finite_warnings(model: keras.Model | None) -> None:
    """Forgets the warnings of `_warn_not_finite` given in the model's earlier fits."""
    if model is not None:
        _warned_not_finite.pop(model, None)


def _warn_not_finite(model: keras.Model | None, monitor: str, epoch: int) -> None:
    """Warns, once a fit and monitor, that the monitored value is NaN or infinite."""
    if model is not None:
        warned = _warned_not_finite.setdefault(model, set())
        if monitor in warned:
            return
        warned.add(monitor)
    warn(
        f"`{monitor}` is not finite (NaN or infinite) at epoch {epoch + 1}: such an epoch "
        "counts as one without improvement, toward early stopping and lowering the peak "
        "learning rate. A non-finite validation value beside a finite training loss "
        "usually comes from NaN or inf in the validation data or its targets: check them, "
        "e.g. np.isfinite(x_val).all() and np.isfinite(y_val).all().",
        RuntimeWarning,
    )


def _tracked_loss_finite(model: keras.Model) -> bool:
    """Whether the compiled loss tracker has counted batches and their summed loss is finite.

    The tracker sums each batch's own loss over the epoch (or the evaluation pass that ran
    last), so a non-finite batch loss stays in it; `False` also for a tracker that counted
    nothing, e.g. under a custom `train_step` that does not update it.
    """
    tracker = compat.loss_tracker(model)
    total, count = getattr(tracker, "total", None), getattr(tracker, "count", None)
    if total is None or count is None:
        return False
    return float(count.numpy()) > 0 and _finite(total.numpy())


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training on a NaN/inf loss or weight and restores the last good weights.

    A snapshot of the weights and optimizer variables is taken at the start and at the end
    of every epoch whose loss and weights are finite. The per-batch check only raises a
    flag (it runs in Keras' asynchronous callback thread), and the rollback happens at the
    end of the epoch. The weights are checked at the end of each epoch, in the copy the
    snapshot takes anyway: a loss can stay finite while gradients write NaN into them (a
    NaN input that a ReLU turns into 0 in the forward pass), and a snapshot holding a
    non-finite weight is never kept.

    The loss checked is the logs' `loss`. A model may log as `loss` a compiled metric of
    that name instead of Keras' loss tracker, one that is NaN while it has counted nothing
    (ktlite's masked-LM loss, a mean over masked tokens, is NaN until a batch masks one):
    a non-finite `loss` stops training only if the compiled loss tracker, which holds the
    sum of every batch's own loss, is not finite either (or counted nothing). Only then
    is the tracker read, so a finite loss never makes the check wait for a step.

    Attributes:
        stopped: `(epoch, batch)` where the loss went non-finite (`batch` -1: found at the
            end of the epoch, as non-finite weights are), or `None`.
        restored_epoch: number of completed epochs the weights were rolled back to.

    Example:
        >>> guard = NonFiniteGuard()
        >>> model.fit(x, y, epochs=5, callbacks=[guard])
        >>> guard.stopped  # None, or (epoch, batch) where the loss went NaN/inf
    """

    async_safe = True

    def __init__(self) -> None:
        super().__init__()
        self.stopped: tuple[int, int] | None = None
        self.restored_epoch: int | None = None
        self._state: dict[str, list] | None = None
        self._good_epochs = 0
        self._epoch = 0
        self._what = "the loss"

    def on_train_begin(self, logs=None):
        self.stopped = None
        self.restored_epoch = None
        self._good_epochs = 0
        self._what = "the loss"
        self._state = snapshot_state(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _diverged(self, logs: dict | None) -> bool:
        return not _finite((logs or {}).get("loss", 0.0)) and not _tracked_loss_finite(
            self.model)

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped is None and self._diverged(logs):
            self.stopped = (self._epoch, batch)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped is None and self._diverged(logs):
            self.stopped = (epoch, -1)
        state = None
        if self.stopped is None:
            state = snapshot_state(self.model)
            if not all(np.isfinite(w).all() for w in state["weights"]):
                self.stopped, self._what = (epoch, -1), "the weights"
        if self.stopped is not None:
            self.model.stop_training = True
            self.rollback()
        else:
            self._good_epochs = epoch + 1
            self._state = state

    def on_train_end(self, logs=None):
        self.rollback()

    def rollback(self) -> None:
        """Restores the last good snapshot once, if the loss or weights went non-finite.

        Does nothing when they stayed finite, no snapshot was taken, or the weights
        were already restored; otherwise restores the weights and optimizer state and
        warns with a `RuntimeWarning` saying where they went non-finite. Called by
        `on_epoch_end` and `on_train_end`; call it yourself after an interrupted `fit`.

        Example:
            >>> guard.rollback()
            >>> guard.restored_epoch  # the epochs kept, or None if nothing was restored
        """
        if self.stopped is None or self.restored_epoch is not None or self._state is None:
            return
        restore_state(self.model, self._state)
        self.restored_epoch = self._good_epochs
        epoch, batch = self.stopped
        where = f"epoch {epoch + 1}" + (f", batch {batch + 1}" if batch >= 0 else "")
        warn(
            f"Training stopped: {self._what} became NaN or infinite at {where}. The weights "
            f"and optimizer state were restored to the end of epoch {self._good_epochs} (the "
            "last one with a finite loss and weights). Try a lower learning rate (see "
            "lr_find()), check the data for NaN/inf, or clip gradients (e.g. "
            "Adam(clipnorm=1.0)).",
            RuntimeWarning,
        )


class BestWeights(keras.callbacks.Callback):
    """Tracks the best epoch by `monitor`, optionally stops early, restores the best weights.

    The weights kept (and saved) for an epoch are those the fit would have left had it
    ended there: with an optimizer that has `use_ema=True`, the moving averages of the
    trainable weights, which Keras writes into the model at the end of every fit; the
    optimizer's own state (its averages too) is not rewound.

    An epoch whose monitored value is NaN or infinite counts as one without improvement
    (so `patience` runs out), with one `RuntimeWarning` a fit.

    Args:
        monitor: log key to watch, e.g. `"val_loss"`.
        patience: stop after this many epochs without improvement; `None` never stops.
        restore: restore the best weights when training ends (also on interruption, through
            `restore_best()`).
        checkpoint_path: when set, the best model is saved there (`.keras`, atomically) each
            time it improves.
        min_delta: smallest change that counts as an improvement.
        verbose: 1 or 2 (Keras' `fit` levels) to report early stopping and restoring, 0
            to stay quiet.
        saving_context: a function returning the context each checkpoint is written in,
            e.g. the running `PolicyCallback`'s `configured_rate`, so that the file
            records the optimizer's own learning rate rather than the schedule's rate of
            that epoch's last step. `None`: saved as the model is.

    Raises:
        TypeError: for a `monitor` that is not a string, an argument of the wrong type
            (e.g. `patience="3"`, `restore=1`) or a `saving_context` that is not callable.
        ValueError: for `patience` < 1, a `checkpoint_path` not ending in `.keras` or that
            cannot be saved to (a folder is there, or a file where one of its folders
            should be), or an infinite `min_delta`.

    Example:
        >>> best = BestWeights("val_loss", patience=3, checkpoint_path="best.keras")
        >>> model.fit(x, y, validation_data=(xv, yv), epochs=20, callbacks=[best])
        >>> best.best_epoch, best.best
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int | None = None,
        restore: bool = True,
        checkpoint_path: str | None = None,
        min_delta: float = 0.0,
        verbose: int = 1,
        saving_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        super().__init__()
        check_monitor_name(monitor)
        if checkpoint_path is not None:
            checkpoint_path = os.fspath(saving.as_path(checkpoint_path, "checkpoint_path"))
            if not checkpoint_path.endswith(".keras"):
                raise ValueError("`checkpoint_path` must end with '.keras'. Received: "
                                 f"checkpoint_path={checkpoint_path!r}")
            problem = saving.save_path_problem(checkpoint_path)
            if problem:
                raise ValueError(f"`checkpoint_path` cannot be saved to: {problem}. "
                                 f"Received: checkpoint_path={checkpoint_path!r}")
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.patience = check_positive_int(patience, "patience", allow_none=True)
        self.restore = check_bool(restore, "restore")
        self.checkpoint_path = checkpoint_path
        self.min_delta = abs(check_float(min_delta, "min_delta"))
        self.verbose = check_verbose(verbose, (0, 1, 2))
        if saving_context is not None and not callable(saving_context):
            raise TypeError("`saving_context` must be callable or None. Received: "
                            f"saving_context of type {type(saving_context).__name__}")
        self.saving_context = saving_context or contextlib.nullcontext
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._weights: list[np.ndarray] | None = None
        self._wait = 0

    def improved(self, value: float) -> bool:
        """Whether `value` beats the best value so far.

        Lower is better for losses, higher for metrics such as accuracy (see
        `monitor_mode`); the change must exceed `min_delta`.

        Args:
            value: a value of the monitored log key.

        Returns:
            True if `value` improves on `best` by more than `min_delta`, or no best value
            has been recorded yet.

        Example:
            >>> BestWeights("val_loss").improved(0.42)  # nothing seen yet
            True
        """
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.stopped_epoch = None, None, None
        self._weights, self._wait = None, 0
        _start_not_finite_warnings(self.model)

    def on_epoch_end(self, epoch, logs=None):
        # Read here: Keras builds the compiled metrics during the first epoch.
        self.mode = monitor_mode(self.monitor, self.model)
        value = (logs or {}).get(self.monitor)
        if value is None:
            warn(
                f"`monitor={self.monitor!r}` is not in the training logs; available: "
                f"{sorted(logs or {})}. Best weights are not tracked.",
                RuntimeWarning,
            )
            return
        if not _finite(value):
            _warn_not_finite(self.model, self.monitor, epoch)
        elif self.improved(value):
            self.best, self.best_epoch, self._wait = float(value), epoch, 0
            # The weights the user would get had the fit stopped here: with an EMA
            # optimizer, the averages Keras writes into the model at the end of a fit.
            with as_fit_leaves_it(self.model):
                self._weights = self.model.get_weights()
                if self.checkpoint_path:
                    with self.saving_context():
                        saving.save_keras_model(self.model, self.checkpoint_path)
            return
        self._wait += 1
        if self.patience is not None and self._wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                best = ("never finite" if self.best is None
                        else f"best {self.best:.5g} at epoch {self.best_epoch + 1}")
                say(
                    f"Early stopping after epoch {epoch + 1}: {self.monitor} has not improved "
                    f"for {self._wait} epochs ({best})."
                )

    def on_train_end(self, logs=None):
        if self.restore:
            self.restore_best()

    def restore_best(self) -> bool:
        """Loads the best weights seen so far into the model; returns whether it did.

        Returns:
            True if best weights were recorded and loaded; False if no epoch was tracked.

        Example:
            >>> best.restore_best()  # e.g. in a `finally:` after an interrupted `fit`
            True
        """
        if self._weights is None:
            return False
        self.model.set_weights(self._weights)
        if self.verbose:
            say(
                f"Restored the weights of epoch {self.best_epoch + 1} "
                f"(best {self.monitor}={self.best:.5g})."
            )
        return True


class PeakReducer(keras.callbacks.Callback):
    """Multiplies a schedule's peak learning rate by `factor` when `monitor` plateaus.

    An epoch whose monitored value is NaN or infinite counts as one without improvement,
    with one `RuntimeWarning` a fit (one between it and a `BestWeights` on the same value).

    Args:
        target: an object with a mutable float attribute `lr_scale` that the running
            schedule multiplies its learning rates by (a `ktlite.lr.PolicyCallback`).
        monitor: log key to watch.
        patience: epochs without improvement before reducing.
        factor: multiplier applied to the peak, in (0, 1).
        min_scale: the peak is never reduced below `min_scale` times the original.
            The target's scale is the one it had when the fit began again once the fit
            ends (each fit, and `reductions`, starts afresh).
        verbose: 1 or 2 (Keras' `fit` levels) to report each reduction, 0 to stay quiet.

    Raises:
        TypeError: for a `target` without `lr_scale`, or an argument of the wrong
            type (e.g. `patience=2.0`).
        ValueError: for `patience` < 1, `factor` outside (0, 1) or `min_scale` outside
            (0, 1].

    Example:
        >>> policy_cb = PolicyCallback(OneCycle(1e-3, total_steps=10 * steps_per_epoch))
        >>> reducer = PeakReducer(policy_cb, "val_loss", patience=2, factor=0.5)
        >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[policy_cb, reducer])
    """

    def __init__(
        self,
        target: Any,
        monitor: str = "val_loss",
        patience: int = 2,
        factor: float = 0.5,
        min_scale: float = 1e-3,
        verbose: int = 1,
    ) -> None:
        super().__init__()
        if not hasattr(target, "lr_scale"):
            raise TypeError(
                "`target` must have an `lr_scale` attribute (a ktlite.lr.PolicyCallback). "
                f"Received: target of type {type(target).__name__}"
            )
        self.target = target
        self.monitor = check_monitor_name(monitor)
        self.mode = monitor_mode(monitor)
        self.patience = check_positive_int(patience, "patience")
        self.factor = check_float(factor, "factor", 0.0, 1.0, include_low=False,
                                  include_high=False)
        self.min_scale = check_float(min_scale, "min_scale", 0.0, 1.0, include_low=False)
        self.verbose = check_verbose(verbose, (0, 1, 2))
        self.reductions: list[int] = []
        self._best: float | None = None
        self._wait = 0
        self._start = target.lr_scale

    def on_train_begin(self, logs=None):
        self._best, self._wait, self.reductions = None, 0, []
        self._start = self.target.lr_scale
        _start_not_finite_warnings(self.model)

    def on_train_end(self, logs=None):
        # Each fit starts from the peak it was given, as Keras' callbacks start afresh: a
        # reducer passed to another fit lowered that one's peak too, while `reductions`
        # (reset) said nothing had been lowered.
        self.target.lr_scale = self._start

    def on_epoch_end(self, epoch, logs=None):
        self.mode = monitor_mode(self.monitor, self.model)  # as in `BestWeights`
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if not _finite(value):
            _warn_not_finite(self.model, self.monitor, epoch)
        better = _finite(value) and (self._best is None or (
            value < self._best if self.mode == "min" else value > self._best
        ))
        if better:
            self._best, self._wait = float(value), 0
            return
        self._wait += 1
        floor = self.min_scale * self._start
        if self._wait >= self.patience and self.target.lr_scale > floor:
            self.target.lr_scale = max(self.target.lr_scale * self.factor, floor)
            self.reductions.append(epoch)
            self._wait = 0
            if self.verbose:
                say(
                    f"Epoch {epoch + 1}: {self.monitor} has plateaued; peak learning rate "
                    f"scaled to {self.target.lr_scale / self._start:.3g} of its start value."
                )
