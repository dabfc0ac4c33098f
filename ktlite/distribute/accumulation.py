"""Gradient accumulation that works under every `tf.distribute` strategy.

Why ktlite has its own
----------------------
Keras 3 optimizers accept `gradient_accumulation_steps`, and on a single device that works.
Under any `tf.distribute` strategy (MirroredStrategy, MultiWorkerMirroredStrategy; seen with
TensorFlow 2.21 / Keras 3.15) it fails: the optimizer chooses between "accumulate" and
"update" with a graph-level `cond`, and the update branch all-reduces the gradients, which
needs a `merge_call` that TensorFlow forbids inside a `cond` ("`merge_call` called while
defining a new graph or a tf.function").

How it works
------------
The choice is moved out of the graph. `enable(model, steps)` gives the model two compiled
train functions built from its own `train_step`, and calls them from Python in turn:

- on batches 1 .. steps-1 of each group, the "accumulate" function runs the forward and
  backward pass and adds the gradients to replica-local accumulators (no communication, no
  optimizer update, metrics updated as usual);
- on the last batch of the group, the "update" function adds the accumulators to this
  batch's gradients, divides by the number of batches in the group, and hands the mean to
  the optimizer's own `apply_gradients` (which all-reduces across replicas as always), then
  zeroes the accumulators.

Every epoch ends on an update: when the number of batches in an epoch is not a multiple of
`steps`, its last group is shorter and is applied as the mean over the batches it holds.
So an epoch of `n` batches makes `ceil(n / steps)` updates, also when `n < steps` (an epoch
of 1 batch with `steps=4` still trains). The epoch's length comes from Keras (the `steps`
it gives its callbacks); `enable` makes the model's `fit` add a small callback that reads
it. When Keras does not know the length (a dataset of unknown cardinality), the last group
of an epoch is carried into the next one, with a warning that says how to give the length.

So replicas exchange gradients once per update instead of once per batch (under a
ktlite policy each batch still sums two numbers across replicas, the loss it records),
the optimizer's `iterations` counts real updates, and a Keras `LearningRateSchedule` or
ktlite's per-batch policies see real updates too. With a `LossScaleOptimizer` the
accumulators hold unscaled gradients; a non-finite gradient anywhere in a group skips that
whole update.

A group's update is the mean of its batches' gradients, so a loss that averages over a
batch's real tokens (translation, language models, masked-LM pretraining) weighs each batch
of the group alike, not each token: a length-bucketed batch of short sentences counts as
much as one of long sentences, where one batch holding both would weigh them by their
tokens (Keras' own accumulation does the same).

Limits: `steps_per_execution` must be 1 (one compiled call must be one batch; checked
again whenever a train function is made, so a recompile cannot slip past it), and the
accumulation is not part of the saved model (a loaded model trains without it until it is
prepared again).
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from ktlite import compat
from ktlite._console import warn
from ktlite.arguments import check_instance, check_int

_STATE = "_ktlite_accumulation"


class _Accumulation:
    """Per-model state: the accumulators, the batch counters and the current mode."""

    def __init__(self, model: keras.Model, steps: int, strategy: tf.distribute.Strategy):
        self.steps = steps
        # `steps` as enabled; `paused` sets `steps` to 1 for a while, this stays.
        self.enabled_steps = steps
        # Batches already accumulated in the current group.
        self.pending = 0
        # Batches in the group being applied; read when the update function is traced.
        self.divisor = steps
        # Batches per epoch of the running fit (None: unknown) and the position in it.
        self.epoch_steps: int | None = None
        self.epoch_batch = 0
        self.mode = "update"
        self.optimizer = None
        self.strategy = strategy
        self.accumulators: dict[int, tf.Variable] = {}
        self.track(model.weights)

    def track(self, weights: Any) -> None:
        """Gives every float weight in `weights` that has none an accumulator.

        Every float weight, not only the trainable ones: layers frozen now may be unfrozen
        later. A model that is not built yet has no weights when accumulation is enabled, so
        this runs again whenever a train function is made, and, for a model that Keras
        builds while tracing the first step, when a gradient meets a variable without one.
        """
        missing = [
            weight for weight in weights
            if id(weight) not in self.accumulators and _is_float(weight.dtype)
        ]
        if not missing:
            return
        # Created eagerly even while a step is being traced: a tf.function may create
        # variables on its first trace only, and the update function is traced second.
        with tf.init_scope(), self.strategy.scope():
            for weight in missing:
                self.accumulators[id(weight)] = tf.Variable(
                    tf.zeros(weight.shape, dtype=weight.dtype),
                    trainable=False,
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.SUM,
                    name="ktlite_grad_accumulator",
                )

    def accumulator(self, variable: Any) -> tf.Variable:
        if id(variable) not in self.accumulators:
            self.track([variable])
        return self.accumulators[id(variable)]


def enable(model: keras.Model, steps: int, strategy: tf.distribute.Strategy) -> None:
    """Makes `model.fit` average gradients over `steps` batches per optimizer update.

    Args:
        model: A compiled Keras model, built under `strategy` or not built yet (weights
            it gets later get accumulators before they are first trained).
        steps: Batches per update, an int >= 2.
        strategy: The strategy the model trains under (accumulators are created in it).

    Raises:
        TypeError: If `steps` is not an int (`"4"`, `True`).
        ValueError: If `steps` < 2, or the model compiles with `steps_per_execution` > 1
            (a later recompile to several batches per call is refused when it trains).

    Example:
        >>> accumulation.enable(model, 4, tf.distribute.get_strategy())
        >>> model.fit(x, y, batch_size=32)  # one update per 128 samples
    """
    steps = check_int(steps, "steps", 2)
    check_one_batch_per_call(model)
    state = getattr(model, _STATE, None)
    if state is None or state.steps != steps:
        state = _Accumulation(model, steps, strategy)
        object.__setattr__(model, _STATE, state)
    object.__setattr__(model, "make_train_function", types.MethodType(_make_train_function, model))
    object.__setattr__(model, "fit", types.MethodType(_fit_with_epoch_groups, model))
    model.train_function = None


def disable(model: keras.Model) -> None:
    """Undoes `enable`: the model updates its weights on every batch again.

    Args:
        model: A Keras model; nothing happens if it does not accumulate through ktlite.

    Example:
        >>> accumulation.disable(model)
    """
    if getattr(model, _STATE, None) is None:
        return
    state = model.__dict__.pop(_STATE)
    model.__dict__.pop("make_train_function", None)
    model.__dict__.pop("fit", None)
    if state.optimizer is not None:
        state.optimizer.__dict__.pop("apply_gradients", None)
    model.train_function = None


def check_one_batch_per_call(model: keras.Model) -> None:
    """Refuses a model compiled to run several batches per call, which cannot accumulate.

    Args:
        model: A compiled Keras model.

    Raises:
        ValueError: If the model compiles with `steps_per_execution` > 1.

    Example:
        >>> accumulation.check_one_batch_per_call(model)
    """
    if getattr(model, "steps_per_execution", 1) != 1:
        raise ValueError(
            "Gradient accumulation needs one batch per compiled call; compile the model "
            "with steps_per_execution=1. Received: "
            f"steps_per_execution={model.steps_per_execution!r}"
        )


def steps(model: keras.Model) -> int:
    """Returns how many batches make one optimizer update for `model` (1: no accumulation).

    Counts both ktlite's accumulation and a Keras optimizer's own
    `gradient_accumulation_steps`.

    Args:
        model: A Keras model.

    Returns:
        The number of batches per update.

    Raises:
        TypeError: If `model` is not a `keras.Model`.

    Example:
        >>> accumulation.steps(model)
        1
    """
    check_instance(model, keras.Model, "model")
    state = getattr(model, _STATE, None)
    if state is not None:
        return state.steps
    optimizer = getattr(model, "optimizer", None)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return int(getattr(inner, "gradient_accumulation_steps", None) or 1)


def enabled_steps(model: keras.Model) -> int | None:
    """Returns the `steps` ktlite's accumulation was enabled with on `model`, or None.

    Unlike `steps`, it ignores a Keras optimizer's own accumulation and a `paused` block.

    Args:
        model: A Keras model.

    Returns:
        The batches per update of ktlite's accumulation, or None when it is not enabled.

    Raises:
        TypeError: If `model` is not a `keras.Model`.

    Example:
        >>> accumulation.enabled_steps(model) is None
        True
    """
    check_instance(model, keras.Model, "model")
    state = getattr(model, _STATE, None)
    return None if state is None else state.enabled_steps


def reset(model: keras.Model) -> None:
    """Drops partly accumulated gradients, so the next batch starts a new group.

    Call it after anything that ran batches without finishing their group (the learner
    does so after an interrupted or failed fit).

    Args:
        model: A Keras model; nothing happens if it does not accumulate through ktlite.

    Raises:
        TypeError: If `model` is not a `keras.Model`.

    Example:
        >>> accumulation.reset(model)
    """
    check_instance(model, keras.Model, "model")
    state = getattr(model, _STATE, None)
    if state is None:
        return
    for accumulator in state.accumulators.values():
        accumulator.assign(tf.zeros_like(accumulator))
    state.pending = 0


@contextlib.contextmanager
def paused(model: keras.Model) -> Iterator[None]:
    """Within the block the model updates on every batch; accumulation resumes afterwards.

    Partly accumulated gradients are dropped on entry and on exit. The learner pauses
    accumulation for `lr_find`, whose sweep sets one learning rate per batch.

    Args:
        model: A Keras model; nothing changes if it does not accumulate through ktlite.

    Yields:
        Nothing.

    Raises:
        TypeError: If `model` is not a `keras.Model`.

    Example:
        >>> with accumulation.paused(model):
        ...     model.fit(x, y, epochs=1)
    """
    check_instance(model, keras.Model, "model")
    state = getattr(model, _STATE, None)
    if state is None:
        yield
        return
    reset(model)
    steps_before, state.steps = state.steps, 1
    try:
        yield
    finally:
        state.steps = steps_before
        reset(model)


class _EpochGroups(keras.callbacks.Callback):
    """Tells the accumulating train function where each epoch of a `fit` ends."""

    def __init__(self, state: _Accumulation, steps_per_epoch: int | None = None):
        super().__init__()
        self._accumulation = state
        # `fit`'s own `steps_per_epoch`, for a CallbackList whose params give no `steps`
        # (Keras sets the params only of the list it makes itself).
        self._steps_per_epoch = steps_per_epoch

    def on_train_begin(self, logs=None):
        steps = (self.params or {}).get("steps") or self._steps_per_epoch
        self._accumulation.epoch_steps = int(steps) if steps else None

    def on_epoch_begin(self, epoch, logs=None):
        self._accumulation.epoch_batch = 0

    def on_epoch_end(self, epoch, logs=None):
        state = self._accumulation
        if state.pending and state.epoch_steps is None:
            warn(
                f"Epoch {epoch + 1} ended with {state.pending} of {state.steps} batches "
                "accumulated towards an optimizer update: the epoch's length is unknown, so "
                "they are carried into the next epoch (and dropped after the last one). Pass "
                "`steps_per_epoch` to `fit`, or give the dataset a known length (`dataset."
                "apply(tf.data.experimental.assert_cardinality(n))`); Keras gives a "
                "`keras.callbacks.CallbackList` passed as `callbacks` no length, so make "
                "that one with `steps=n`.",
            )

    def on_train_end(self, logs=None):
        self._accumulation.epoch_steps = None
        if self._accumulation.pending:  # a group cut short by the end of training
            reset(self.model)


def _fit_with_epoch_groups(self: keras.Model, *args: Any, **kwargs: Any) -> Any:
    """Stands in for `fit` on a model that accumulates through ktlite (adds `_EpochGroups`)."""
    bound = inspect.signature(type(self).fit).bind(self, *args, **kwargs)
    callbacks = bound.arguments.get("callbacks")
    marker = _EpochGroups(getattr(self, _STATE), bound.arguments.get("steps_per_epoch"))
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        bound.arguments["callbacks"] = [*(callbacks or []), marker]
        return type(self).fit(*bound.args, **bound.kwargs)
    # Keras uses a CallbackList as it is given (it has no `append`); the marker joins it for
    # this fit only, so a list passed to several fits does not collect markers.
    marker.set_model(self)
    marker.set_params(callbacks.params)
    callbacks.callbacks.append(marker)
    try:
        return type(self).fit(*bound.args, **bound.kwargs)
    finally:
        callbacks.callbacks.remove(marker)


def _make_train_function(self: keras.Model, force: bool = False):
    """Stands in for `make_train_function` on a model that accumulates through ktlite."""
    state: _Accumulation = getattr(self, _STATE)
    if getattr(self, "steps_per_execution", 1) != 1:
        # Checked here too: a recompile can change it after `enable`, and a compiled call of
        # several batches would be counted as one batch of a group.
        raise ValueError(
            f"This model accumulates gradients over {state.enabled_steps} batches through "
            "ktlite, which needs one batch per compiled call: compile it with "
            "steps_per_execution=1, or switch the accumulation off first with "
            "`ktlite.distribute.prepare_model(model, gradient_accumulation_steps=1)`. "
            f"Received: steps_per_execution={self.steps_per_execution!r}"
        )
    if self.train_function is not None and not force:
        return self.train_function
    # Weights made since `enable` (a model built from its first batch) get accumulators.
    state.track(self.weights)
    if self.built and not self.optimizer.built:
        # Built now, so both compiled functions see the same (dynamic) loss scale.
        with self.distribute_strategy.scope():
            self.optimizer.build(self.trainable_variables)
    if state.optimizer is not self.optimizer:
        _wrap_optimizer(self.optimizer, state)
        state.optimizer = self.optimizer
    step = self.train_step
    # `state.mode` and `state.divisor` are read while a function is traced and baked into
    # it, so there is one update function per group size met (`steps`, and the shorter last
    # group of an epoch when the epoch's batches are not a multiple of `steps`).
    functions: dict[Any, Any] = {}

    def train_function(iterator):
        group = state.pending + 1
        last_of_epoch = (
            state.epoch_steps is not None and state.epoch_batch >= state.epoch_steps - 1
        )
        update = group >= state.steps or last_of_epoch
        key = group if update else "accumulate"
        if key not in functions:
            functions[key] = compat.make_step_function(self, step)
        state.mode = "update" if update else "accumulate"
        state.divisor = group
        outputs = functions[key](iterator)
        state.pending = 0 if update else group
        state.epoch_batch += 1
        return outputs

    self.train_function = train_function
    return train_function


def _wrap_optimizer(optimizer: Any, state: _Accumulation) -> None:
    original = type(optimizer).apply_gradients

    def apply_gradients(grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        if not optimizer.built:
            # A model that Keras builds inside its first traced step (no strategy scope)
            # meets an unbuilt optimizer here, also in an accumulating step, which Keras'
            # `apply` never sees. Built now, in the trace that created the model's variables,
            # which TensorFlow therefore traces again: the step then reads the dynamic loss
            # scale, as the other compiled function does.
            optimizer.build([v for _, v in grads_and_vars])
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        scale = _loss_scale(optimizer)
        if state.mode == "accumulate":
            for grad, var in pairs:
                grad = tf.convert_to_tensor(grad)
                if scale is not None:
                    grad = grad / tf.cast(scale, grad.dtype)
                state.accumulator(var).assign_add(grad)
            return optimizer.iterations
        mean = []
        for grad, var in pairs:
            accumulator = state.accumulator(var)
            grad = tf.convert_to_tensor(grad)
            if scale is not None:
                stored = accumulator.read_value() * tf.cast(scale, grad.dtype)
            else:
                stored = accumulator.read_value()
            mean.append((grad + stored) / state.divisor)
        # Nothing here may run without this batch: when the data runs out (an epoch of
        # unknown length), the step fails at `get_next`, and ops that do not need the data
        # would still count an update and zero the accumulators.
        with tf.control_dependencies(mean):
            result = original(optimizer, list(zip(mean, [v for _, v in pairs])))
            for _, var in pairs:
                accumulator = state.accumulator(var)
                accumulator.assign(tf.zeros_like(accumulator))
        return result

    object.__setattr__(optimizer, "apply_gradients", apply_gradients)


def _is_float(dtype: Any) -> bool:
    return tf.as_dtype(dtype).is_floating


def _loss_scale(optimizer: Any) -> Any:
    """The factor `optimizer.scale_loss` multiplied the loss by in this trace (or None)."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None
    return optimizer.dynamic_scale if optimizer.built else optimizer.initial_scale
