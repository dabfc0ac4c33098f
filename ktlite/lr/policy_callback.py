"""`PolicyCallback`: the one mechanism that applies a `Policy` to a compiled optimizer.

Why the policy runs inside the graph: a per-batch Python hook (`on_train_batch_begin`
assigning the learning rate and a momentum variable) costs two eager ops and a Python round
trip per step, turns off Keras' asynchronous batch-end dispatch as soon as it also reads the
loss, and misses steps when `steps_per_execution > 1`. Measured on the 2-core CPU machine
(TF 2.21): the two eager `assign`s alone cost about 100 us per step (12% of a 0.8 ms MLP
step), while the in-graph lookup below changes the step time by less than the noise (ratio
1.01 +- 0.02 against the plain train function, 40 alternating blocks of 100 steps).

So the callback wraps `model.train_step`: the wrapped step looks the learning rate and
momentum up in tables indexed by the updates attempted (`optimizer.iterations` plus the
updates a dynamic loss scale skipped), assigns the learning-rate variable,
and records lr, momentum and the batch's true loss into ring buffers read once per epoch.
The batch's loss is recovered from the difference of a loss tracker's `total` and `count`
before and after the step: Keras' compiled tracker, or, for a custom `train_step` that
averages its loss in its own `keras.metrics.Mean` (as Keras' guide does) and returns its
`result()`, that metric. Otherwise the step's `"loss"` output is recorded as it is, with a
warning, since it may be a running mean. A batch whose sample weights sum to zero (a
masked-LM batch that masked no token) has no loss of its own to record: Keras' tracker
counts it as 0.0 (plus any regularization), a perfect batch to an LR finder, and a NaN
would read as divergence there, so the step is left out of the record.
The traced function is cached per model and reused by later callbacks (new tables are
assigned to the same variables) until the model is recompiled, so only the first policy fit
of a compiled model pays for one extra trace.

Why momentum is handled at trace time: Keras optimizers read `beta_1` (Adam family) and
`momentum` (SGD, RMSprop) as Python attributes while the train function is traced, so a float
becomes a graph constant. For the duration of each trace of the wrapped step the attribute is
replaced by a tensor-like proxy computed from the step's index, and the float is put
back as soon as the trace returns. `optimizer.get_config()` therefore always sees the user's
float, also when a `ModelCheckpoint` saves in the middle of training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from ktlite import compat
from ktlite._console import warn
from ktlite.arguments import check_positive_float
from ktlite.lr.schedules import Policy

__all__ = ["PolicyCallback"]

_MIN_BUFFER = 4096
# Smallest learning-rate / momentum table (steps); longer policies round up to a power of two.
_MIN_TABLE = 256
# What the in-graph record holds for every step, column by column; "source" says where the
# loss came from (one of the _FROM_* codes below).
_RECORD_COLUMNS = ("lrs", "momentums", "losses", "source")
# The loss of a step came from: Keras' compiled loss tracker, a `keras.metrics.Mean` of the
# model whose result the custom train step returned as its "loss", or that "loss" itself;
# or the step had no loss (its sample weights summed to zero) and is left out of `history`.
_FROM_TRACKER, _FROM_MEAN, _FROM_LOGS, _NO_LOSS = 0.0, 1.0, 2.0, 3.0
# A Mean's result and the step's "loss" are the same number up to this relative difference.
_SAME_MEAN = 1e-5
# Buffer bound when neither the epoch length nor the policy length is known.
_MAX_UNKNOWN_EPOCH = 1 << 20


def _tf():
    # Imported lazily so `import ktlite.lr` stays light; the callback only runs on the
    # TensorFlow backend, where TensorFlow is already loaded by Keras.
    import tensorflow as tf

    return tf


class _ScheduledScalar:
    """A float-like hyperparameter whose value is a tensor computed inside the graph.

    Arithmetic and tensor conversion use the tensor. Comparisons against numbers use the
    user's original float: Keras only uses them for structural decisions such as
    `if self.momentum != 0` (whether momentum slots exist), which must not change.
    """

    def __init__(self, tensor: Any, static: float):
        self._tensor = tensor
        self._static = static

    def __tf_tensor__(self, dtype=None, name=None):
        tf = _tf()
        if dtype is None:
            return self._tensor
        return tf.cast(self._tensor, dtype)

    # Structural comparisons: against the configured float.
    def __eq__(self, other):
        return self._static == other

    def __ne__(self, other):
        return self._static != other

    def __lt__(self, other):
        return self._static < other

    def __le__(self, other):
        return self._static <= other

    def __gt__(self, other):
        return self._static > other

    def __ge__(self, other):
        return self._static >= other

    __hash__ = None

    def _t(self, other):
        tf = _tf()
        other_dtype = getattr(other, "dtype", None)
        if other_dtype is not None:
            return tf.cast(self._tensor, other_dtype)
        return self._tensor

    def __add__(self, other):
        return self._t(other) + other

    def __radd__(self, other):
        return other + self._t(other)

    def __sub__(self, other):
        return self._t(other) - other

    def __rsub__(self, other):
        return other - self._t(other)

    def __mul__(self, other):
        return self._t(other) * other

    def __rmul__(self, other):
        return other * self._t(other)

    def __truediv__(self, other):
        return self._t(other) / other

    def __rtruediv__(self, other):
        return other / self._t(other)

    def __pow__(self, other):
        return self._t(other) ** other

    def __rpow__(self, other):
        return other ** self._t(other)

    def __neg__(self):
        return -self._tensor

    def __repr__(self):
        return f"_ScheduledScalar(configured={self._static!r})"


def _inner_optimizer(optimizer):
    """The optimizer holding the hyperparameters (unwraps a LossScaleOptimizer)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _momentum_attribute(optimizer) -> str | None:
    """Name of the float attribute to cycle: `beta_1` (Adam family) or `momentum` (> 0)."""
    inner = _inner_optimizer(optimizer)
    beta_1 = getattr(inner, "beta_1", None)
    if isinstance(beta_1, float):
        return "beta_1"
    momentum = getattr(inner, "momentum", None)
    if isinstance(momentum, float) and momentum > 0:
        return "momentum"
    return None


def _check_lr_is_variable(optimizer) -> None:
    inner = _inner_optimizer(optimizer)
    if not isinstance(compat.learning_rate_object(inner), keras.Variable):
        raise ValueError(
            "A learning-rate policy needs an optimizer created with a float learning rate, "
            "but this optimizer's `learning_rate` is a schedule or a callable. Compile the "
            "model with e.g. `keras.optimizers.Adam(learning_rate=1e-3)` to let ktlite drive "
            "the learning rate, or train with plain `model.fit` to keep your schedule. "
            f"Received: learning_rate of type {type(compat.learning_rate_object(inner)).__name__}"
        )


class PolicyCallback(keras.callbacks.Callback):
    """Drive a compiled model's own optimizer with a learning-rate/momentum `Policy`.

    Step `i` of the policy is the `i`-th optimizer update since this callback's training
    started (read from `optimizer.iterations`, so `steps_per_execution` and gradient
    accumulation are respected); an update that a `LossScaleOptimizer` skips because its
    gradients overflowed is a step too, so a policy planned for `n` updates ends on its
    last value after `n` updates, made or skipped. The learning rate is assigned to the
    optimizer's learning-rate variable; momentum (`beta_1` for Adam, AdamW, Adamax, Nadam,
    Lamb, Lion; `momentum` for SGD and RMSprop when it is > 0) is computed inside the graph
    while the attribute itself stays the configured float. Optimizers without momentum get
    the learning rate only (with a warning when the policy asks for momentum).

    After training the learning-rate variable holds the policy's last value, the momentum
    attribute is exactly the original float and `model.train_step` / `model.train_function`
    are the ones from before (a fresh train function when another callback replaced it
    during the fit, e.g. to retrace without its variable constraints). If `fit` is
    interrupted (e.g. by `KeyboardInterrupt`), Keras skips `on_train_end`: call `restore()`
    in a `finally` block.

    Args:
        policy: A `ktlite.lr.schedules.Policy` (e.g. `OneCycle`, `Triangular`, `SGDR`,
            `Constant`).

    Attributes:
        history: Dict of lists `"lrs"`, `"momentums"` (None entries when the policy does
            not cycle momentum) and `"losses"` (the true loss of each batch, not Keras'
            running mean), one entry per optimizer step, filled at the end of each epoch.
            With gradient accumulation a step's loss is the mean of its group's batches'
            losses (each batch counting alike, as their gradients do). A step whose batch
            weighs nothing (sample weights summing to zero, e.g. a
            masked-LM batch that masked no token) has no loss and no entry.
            A custom `train_step` that updates neither the compiled loss tracker nor a
            `keras.metrics.Mean` in `model.metrics` whose `result()` it returns as
            `"loss"` gets that `"loss"` recorded as it is, with a warning: a running mean
            it computes some other way is recorded as a running mean.
        lr_scale: Factor applied to every learning rate of the policy (default 1.0); set it
            during training, e.g. to lower the peak on a plateau. Setting it to a value that
            is not a number raises `TypeError`, to one that is not positive and finite
            `ValueError`.

    Raises:
        TypeError: If `policy` is not a `Policy`.
        ValueError: (when training starts) If the model is not compiled, the backend is not
            TensorFlow, or the optimizer's learning rate is a schedule.

    Example:
        >>> cb = PolicyCallback(OneCycle(1e-3, total_steps=epochs * steps_per_epoch))
        >>> model.fit(x, y, epochs=epochs, callbacks=[cb])
        >>> cb.history["lrs"][:3]
    """

    def __init__(self, policy: Policy):
        super().__init__()
        if not isinstance(policy, Policy):
            raise TypeError(
                "`policy` must be a ktlite.lr.schedules.Policy (e.g. OneCycle). "
                f"Received: policy={policy!r}"
            )
        self.policy = policy
        self.history: dict[str, list] = {"lrs": [], "momentums": [], "losses": []}
        self._lr_scale = 1.0
        self._installed = False
        self._state: dict[str, Any] = {}

    # ---------------------------------------------------------------- public knobs
    @property
    def lr_scale(self) -> float:
        return self._lr_scale

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        self._lr_scale = check_positive_float(value, "lr_scale")
        if self._installed:
            self._state["driver"].scale_var.assign(self._lr_scale)

    @property
    def momentum_attribute(self) -> str | None:
        """The optimizer attribute being cycled (`"beta_1"`, `"momentum"` or None)."""
        if not self._state.get("cycles"):
            return None
        return self._state["driver"].mom_attr

    @contextlib.contextmanager
    def configured_rate(self) -> Iterator[None]:
        """Puts the optimizer's own learning rate back while the block runs.

        During training the policy writes each step's rate into the optimizer's
        learning-rate variable, so a model saved between steps (a checkpoint) would record
        the schedule's rate of that step as its optimizer's, and a plain `fit` of the
        reloaded model would train at it. Momentum needs nothing: its attribute holds the
        configured float between steps.

        Yields:
            Nothing; outside training the block runs as it is.

        Example:
            >>> with policy_cb.configured_rate():
            ...     model.save("checkpoint.keras")
        """
        if not self._installed:
            yield
            return
        variable = compat.learning_rate_object(_inner_optimizer(self.model.optimizer))
        scheduled = variable.numpy()
        variable.assign(self._state["configured_lr"])
        try:
            yield
        finally:
            variable.assign(scheduled)

    def saving_at_configured_rate(
        self, callbacks: list[keras.callbacks.Callback]
    ) -> list[keras.callbacks.Callback]:
        """The callbacks to run beside this one, each `ModelCheckpoint` wrapped so that it
        saves with the optimizer's own learning rate (see `configured_rate`).

        A user's checkpoint would otherwise record the schedule's rate of the step it saves
        at (after a one-cycle fit, `lr / div_final`), and a plain `fit` of the file would
        train at it. The callbacks themselves are not changed; other callbacks, which may
        read the rate of the step, are returned as they are.

        Args:
            callbacks: the user's Keras callbacks.

        Returns:
            A new list, in the same order.

        Example:
            >>> model.fit(data, callbacks=[policy_cb, *policy_cb.saving_at_configured_rate(
            ...     [keras.callbacks.ModelCheckpoint("ckpt.keras")])])
        """
        return [
            _AtConfiguredRate(callback, self)
            if isinstance(callback, keras.callbacks.ModelCheckpoint) else callback
            for callback in callbacks
        ]

    @staticmethod
    def check_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
        """Raises the error training would raise for an optimizer a policy cannot drive.

        Call it before `fit`, so that no callback sees a training that never starts.

        Args:
            optimizer: the model's optimizer.

        Raises:
            ValueError: if its learning rate is a schedule or a callable.

        Example:
            >>> PolicyCallback.check_optimizer(model.optimizer)
        """
        _check_lr_is_variable(optimizer)

    @staticmethod
    def check_callbacks(callbacks: Any) -> list:
        """Refuses user callbacks that cannot run beside a policy, before `fit`.

        Args:
            callbacks: the user's callbacks: a list or tuple of Keras callbacks, or `None`.

        Returns:
            A new list of them (the user's is not modified).

        Raises:
            TypeError: if `callbacks` is one callback or not a list, or holds something
                that is not a `keras.callbacks.Callback`.
            ValueError: if it holds a callback that sets the learning rate
                (`LearningRateScheduler`, `ReduceLROnPlateau`: the policy sets it at every
                step, so theirs would have no effect) or a `BackupAndRestore` (it rewinds
                the step count after the policy has been anchored, and deletes its backup
                when a fit, or an LR sweep, ends).

        Example:
            >>> callbacks = PolicyCallback.check_callbacks([keras.callbacks.CSVLogger("log")])
        """
        if isinstance(callbacks, keras.callbacks.Callback):
            raise TypeError("`callbacks` must be a list of Keras callbacks, not one callback: "
                            f"pass [{type(callbacks).__name__}(...)]. Received: {callbacks!r}")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"`callbacks` must be a list of keras callbacks. Received: {callbacks!r:.80}")
        for i, callback in enumerate(callbacks or ()):
            if not isinstance(callback, keras.callbacks.Callback):
                raise TypeError(
                    f"`callbacks` must hold keras.callbacks.Callback objects. Received: "
                    f"callbacks[{i}]={callback!r:.80}"
                )
            if isinstance(callback, keras.callbacks.BackupAndRestore):
                raise ValueError(
                    "`callbacks` must not hold a BackupAndRestore: ktlite fixes its "
                    "learning-rate schedule when training begins, before the callback rewinds "
                    "the step count to an interrupted run's, so a resumed run would train at "
                    "the wrong rates (and an LR sweep would delete the backup when it ends). "
                    "Save with `learner.save_model` (or `autofit`'s `checkpoint_folder`) and "
                    "resume with `learner.load_model`, or train with `model.fit`. Received: "
                    f"callbacks[{i}]=BackupAndRestore"
                )
        rate_setters = [type(c).__name__ for c in callbacks or () if isinstance(
            c, (keras.callbacks.LearningRateScheduler, keras.callbacks.ReduceLROnPlateau))]
        if rate_setters:
            raise ValueError(
                "`callbacks` must not set the learning rate: ktlite's schedule (or the LR "
                "finder's sweep) sets it at every step, so theirs would have no effect. Leave "
                "them out (`autofit`'s `reduce_on_plateau` lowers it on plateaus) or train "
                f"with `model.fit`. Received: {', '.join(rate_setters)}"
            )
        return list(callbacks or [])

    # ---------------------------------------------------------------- Keras hooks
    def on_train_begin(self, logs=None):
        self._install()

    def on_epoch_end(self, epoch, logs=None):
        self.flush()

    def on_train_end(self, logs=None):
        self.flush()
        self.restore()

    # ---------------------------------------------------------------- mechanism
    def _install(self) -> None:
        if self._installed:
            self.restore()
        model = self.model
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "PolicyCallback runs on the TensorFlow backend only. "
                f"Received: backend={keras.backend.backend()!r}"
            )
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                "The model is not compiled. Call `model.compile(optimizer=..., loss=...)` "
                "with keyword arguments before training with a policy."
            )
        _check_lr_is_variable(optimizer)
        policy = self.policy
        table_index = np.arange(policy.table_steps)
        lr_table = policy.lr_at(table_index)
        mom_table = policy.momentum_at(table_index)
        # A policy that leaves momentum alone holds it at its configured value through the
        # same driver as one that cycles it: `lr_find` then `fit_onecycle` trace one train
        # step, not two.
        mom_attr = _momentum_attribute(optimizer)
        cycles = mom_table is not None
        if not cycles and mom_attr:
            mom_table = np.full(len(lr_table), getattr(_inner_optimizer(optimizer), mom_attr))
        if cycles and mom_attr is None:
            warn(
                f"The policy cycles momentum but {type(_inner_optimizer(optimizer)).__name__}"
                " has no float `beta_1` nor a positive `momentum`; only the learning rate "
                "is scheduled. Pass `moms=None` to the policy to silence this warning.",
            )
        # The ring buffers must hold every step between two flushes (one epoch).
        steps_hint = int((self.params or {}).get("steps") or 0)
        if not steps_hint and policy.total_steps is not None:
            steps_hint = min(policy.total_steps, _MAX_UNKNOWN_EPOCH)
        driver = _driver_for(model, optimizer, mom_attr, steps_hint + 1, len(lr_table))
        driver.load(
            lr_table,
            mom_table if mom_attr else None,
            periodic=policy.cycle_steps is not None,
            scale=self._lr_scale,
        )
        self._state = {
            "driver": driver, "recorded": 0, "cycles": cycles and bool(mom_attr),
            "warned_logs": False,
            "configured_lr": compat.learning_rate_object(_inner_optimizer(optimizer)).numpy(),
        }
        driver.activate()
        self._installed = True

    def flush(self) -> None:
        """Copy the steps recorded so far inside the graph into `history`.

        Called at the end of each epoch and of training; does nothing before training
        starts. Steps that overflowed the record buffer are recorded as NaN, with a warning.

        Example:
            >>> cb.flush()  # e.g. from another callback's `on_train_batch_end`
            >>> len(cb.history["lrs"])
        """
        if not self._installed:
            return
        state = self._state
        driver = state["driver"]
        done = driver.steps_taken() - driver.offset
        start = state["recorded"]
        if done <= start:
            return
        capacity = driver.capacity
        lost = max(0, done - start - capacity)
        if lost:
            warn(
                f"{lost} steps ran between two epoch ends beyond the record buffer "
                f"({capacity} steps); their lr/momentum/loss are recorded as NaN.",
            )
        slots = np.arange(start + lost, done) % capacity
        record = driver.record.numpy()[slots]
        record = record[record[:, _RECORD_COLUMNS.index("source")] != _NO_LOSS]
        values = {key: record[:, column] for column, key in enumerate(_RECORD_COLUMNS)}
        nan_pad = [math.nan] * lost
        self.history["lrs"].extend(nan_pad + values["lrs"].astype(float).tolist())
        self.history["losses"].extend(nan_pad + values["losses"].astype(float).tolist())
        if not state["warned_logs"] and np.any(values["source"] == _FROM_LOGS):
            state["warned_logs"] = True
            warn(
                "The model's train_step updates no loss tracker ktlite can read the loss of "
                "each batch from (neither the compiled one nor a keras.metrics.Mean in "
                "`model.metrics` whose result() it returns as 'loss'), so the recorded "
                "losses (`history['losses']`, an LR-finder curve) are the 'loss' it returns. "
                "If that is a running mean over the epoch, they are running means and an "
                "LR-finder suggestion is off. To record each batch's loss, return it as "
                "'loss', or update a keras.metrics.Mean listed in `model.metrics` with it "
                "and return that metric's result() as 'loss'.",
                RuntimeWarning,
            )
        if state["cycles"]:
            self.history["momentums"].extend(nan_pad + values["momentums"].astype(float).tolist())
        else:
            self.history["momentums"].extend([None] * (lost + len(record)))
        state["recorded"] = done

    def restore(self) -> None:
        """Put back the model's train step/function and the optimizer's momentum float.

        Idempotent; called by `on_train_end`. Call it yourself in a `finally` block when
        training may be interrupted.

        Example:
            >>> cb.restore()  # e.g. in a `finally:` after an interrupted `model.fit`
        """
        if not self._installed:
            return
        self._state["driver"].deactivate()
        self._installed = False


# Traced scheduled train functions, per model, reused while the model's compiled state is
# unchanged: retracing (and XLA-compiling) the train step costs about a second on small
# models and much more on large ones, on every `fit`. They live in the model's own
# `__dict__` (not through Keras' attribute tracking, so they are not model variables): a
# driver refers to its model, and a global table keyed by the model would never let it go.
_DRIVERS_ATTRIBUTE = "_ktlite_policy_drivers"


def model_drivers(model: keras.Model) -> dict:
    """The drivers traced for `model` (created empty on first use)."""
    return model.__dict__.setdefault(_DRIVERS_ATTRIBUTE, {})


def _bucket(n: int, minimum: int) -> int:
    """Next power of two >= n (and >= minimum), so table shapes rarely change."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def _driver_for(model, optimizer, mom_attr, min_capacity, table_steps) -> "_Driver":
    inner = _inner_optimizer(optimizer)
    configured = getattr(inner, mom_attr) if mom_attr else None
    key = (id(optimizer), id(compat.learning_rate_object(inner)), mom_attr, configured)
    drivers = model_drivers(model)
    driver = drivers.get(key)
    if (
        driver is None
        or driver.optimizer is not optimizer
        or driver.base_function is not model.train_function
        or driver.capacity < min_capacity
        or driver.table_capacity < table_steps
        or "train_step" in model.__dict__
    ):
        driver = _Driver(model, optimizer, mom_attr, _bucket(min_capacity, _MIN_BUFFER),
                         _bucket(table_steps, _MIN_TABLE))
        # Drivers traced for an earlier compile of the model can never be used again.
        for stale in [k for k, d in drivers.items() if d.base_function is not model.train_function]:
            del drivers[stale]
        drivers[key] = driver
    return driver


def _mean_variables(model: keras.Model, tracker: Any) -> list[tuple[Any, Any]]:
    """`(total, count)` of each `keras.metrics.Mean` in `model.metrics` but the compiled loss
    tracker: where a custom train step written like Keras' guide averages its loss."""
    try:
        metrics = list(model.metrics)
    except (AttributeError, TypeError, ValueError):
        return []
    found = []
    for metric in metrics:
        if metric is tracker or not isinstance(metric, keras.metrics.Mean):
            continue
        total, count = getattr(metric, "total", None), getattr(metric, "count", None)
        if all(isinstance(v, keras.Variable) and tuple(v.shape) == () for v in (total, count)):
            found.append((total, count))
    return found


def _sample_weight_sum(data: Any) -> Any:
    """The sum of a batch's sample weights as a float32 tensor, or `None` when the batch
    has none (or some output has none: its loss counts whatever the others weigh)."""
    tf = _tf()
    _, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    weights = tf.nest.flatten(sample_weight)
    if any(weight is None for weight in weights):
        return None
    return tf.add_n([tf.reduce_sum(tf.cast(weight, tf.float32)) for weight in weights])


class _Driver:
    """The variables and traced train function that apply a policy to one compiled model.

    Every variable has a fixed shape (a TPU cannot hold variables of unknown shape): the
    tables hold `table_capacity` steps, and a policy longer than that gets a new driver.
    """

    def __init__(self, model, optimizer, mom_attr, capacity, table_capacity):
        tf = _tf()
        self.model = model
        self.optimizer = optimizer
        self.inner = _inner_optimizer(optimizer)
        self.mom_attr = mom_attr
        self.configured = getattr(self.inner, mom_attr) if mom_attr else None
        self.capacity = capacity
        self.table_capacity = table_capacity
        self.base_function = model.train_function
        self.function = None
        self.offset = 0
        self.original_step = model.train_step
        self.user_step = model.__dict__.get("train_step")
        only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA

        def variable(value, dtype):
            return tf.Variable(value, dtype=dtype, trainable=False, aggregation=only_first)

        with model.distribute_strategy.scope():
            self.lr_table = variable(tf.zeros([table_capacity]), tf.float32)
            self.mom_table = variable(tf.zeros([table_capacity]), tf.float32)
            self.n_table = variable(1, tf.int64)
            self.periodic = variable(False, tf.bool)
            self.offset_var = variable(0, tf.int64)
            # Updates a dynamic loss scale skipped (overflowing gradients): the optimizer's
            # `iterations` does not count them, the policy does (see `steps_taken`).
            self.skipped = variable(0, tf.int64)
            self.scale_var = variable(1.0, tf.float32)
            # One row per step: lr, momentum, loss (_RECORD_COLUMNS), written in one op.
            self.record = variable(
                tf.fill([capacity, len(_RECORD_COLUMNS)], float("nan")), tf.float32
            )
            # The update the batches recorded last belong to, their summed loss, how many
            # had one, and its source: an update's loss is its batches' mean (accumulation).
            self.group_step = variable(-1, tf.int64)
            self.group_sum = variable(0.0, tf.float32)
            self.group_count = variable(0.0, tf.float32)
            self.group_source = variable(_NO_LOSS, tf.float32)
        tracker = compat.loss_tracker(model)
        tracker_vars = list(getattr(tracker, "variables", None) or [])
        self.tracker_vars = tracker_vars if len(tracker_vars) == 2 else []
        self.mean_vars = _mean_variables(model, tracker)
        self.step_fn = self._make_step()

    def _make_step(self):
        tf = _tf()
        inner, mom_attr, configured = self.inner, self.mom_attr, self.configured
        original_step, tracker_vars, record = self.original_step, self.tracker_vars, self.record
        mean_vars = self.mean_vars
        capacity = self.capacity
        in_place = not isinstance(record, tf.distribute.DistributedValues)

        def scheduled_train_step(data):
            step = self._attempted_updates() - self.offset_var
            n = self.n_table
            index = tf.where(
                self.periodic, tf.math.floormod(step, n), tf.clip_by_value(step, 0, n - 1)
            )
            lr = tf.gather(self.lr_table, index) * self.scale_var
            lr_variable = compat.learning_rate_object(inner)
            lr_variable.assign(tf.cast(lr, lr_variable.dtype))
            mom = tf.gather(self.mom_table, index) if mom_attr else tf.constant(float("nan"))
            if tracker_vars:
                total0, count0 = (tf.identity(v.value) for v in tracker_vars)
            means_before = [(tf.identity(t.value), tf.identity(c.value)) for t, c in mean_vars]
            loss_scale = getattr(self.optimizer, "dynamic_scale", None)
            if loss_scale is not None:
                scale_before = tf.identity(loss_scale.value)
            if mom_attr:
                setattr(inner, mom_attr, _ScheduledScalar(mom, configured))
            try:
                outputs = original_step(data)
            finally:
                if mom_attr:
                    setattr(inner, mom_attr, configured)
            if loss_scale is not None:
                # The scale halves exactly when the update is skipped (it only grows else).
                self.skipped.assign_add(tf.cast(loss_scale.value < scale_before, tf.int64))
            # A custom train_step that does not update the loss tracker still reports a loss
            # in its logs (a running mean, the best available then).
            fallback = outputs.get("loss") if isinstance(outputs, dict) else None
            if fallback is None or getattr(fallback, "shape", None) != ():
                fallback = tf.constant(float("nan"))
            fallback = tf.cast(fallback, tf.float32)
            added, counted = tf.constant(0.0), tf.constant(0.0)
            source = tf.constant(_FROM_LOGS)
            if tracker_vars:
                total1, count1 = (v.value for v in tracker_vars)
                added = tf.cast(total1 - total0, tf.float32)
                counted = tf.cast(count1 - count0, tf.float32)
                source = tf.where(counted > 0, _FROM_TRACKER, _FROM_LOGS)
            # A custom step that averages its loss in its own Mean and returns its result():
            # the first such Mean that counted this batch and whose mean is the "loss".
            for (total_var, count_var), (total0_m, count0_m) in zip(mean_vars, means_before):
                total1_m, count1_m = total_var.value, count_var.value
                mean = tf.cast(tf.math.divide_no_nan(total1_m, count1_m), tf.float32)
                counted_m = tf.cast(count1_m - count0_m, tf.float32)
                take = tf.logical_and(
                    tf.logical_and(counted <= 0, counted_m > 0),
                    tf.abs(mean - fallback) <= _SAME_MEAN * tf.abs(fallback),
                )
                added = tf.where(take, tf.cast(total1_m - total0_m, tf.float32), added)
                counted = tf.where(take, counted_m, counted)
                source = tf.where(take, _FROM_MEAN, source)
            weight = _sample_weight_sum(data)
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1 and (
                    tracker_vars or mean_vars or weight is not None):
                # Each replica's trackers and weights saw its share of the batch: sum them.
                shares = [added, counted] + ([] if weight is None else [weight])
                summed = replica.all_reduce(tf.distribute.ReduceOp.SUM, shares)
                added, counted = summed[:2]
                weight = None if weight is None else summed[2]
            if tracker_vars or mean_vars:
                loss = tf.where(counted > 0, added / tf.maximum(counted, 1e-12), fallback)
                # A replica whose own share counted nothing still recorded the shares' loss.
                source = tf.where(counted > 0, tf.minimum(source, _FROM_MEAN), _FROM_LOGS)
            else:
                loss = fallback
            if weight is not None:
                source = tf.where(weight > 0, source, _NO_LOSS)
            loss, source = self._group_mean(step, loss, source)
            slot = tf.reshape(tf.math.floormod(tf.maximum(step, 0), capacity), [1, 1])
            row = tf.reshape(tf.stack([lr, mom, loss, source]), [1, len(_RECORD_COLUMNS)])
            if in_place:
                record.scatter_nd_update(slot, row)
            else:  # distributed (mirrored) variables implement only a whole assign
                record.assign(tf.tensor_scatter_nd_update(record, slot, row))
            return outputs

        return scheduled_train_step

    def _group_mean(self, step, loss, source):
        """The mean loss of the batches recorded for update `step` so far, this one's
        included (batches without a loss left out), and the source of the last with one."""
        tf = _tf()
        same = tf.equal(step, self.group_step)
        has_loss = tf.not_equal(source, _NO_LOSS)
        total = tf.where(same, self.group_sum, 0.0) + tf.where(has_loss, loss, 0.0)
        count = tf.where(same, self.group_count, 0.0) + tf.cast(has_loss, tf.float32)
        source = tf.where(has_loss, source, tf.where(same, self.group_source, _NO_LOSS))
        self.group_step.assign(step)
        self.group_sum.assign(total)
        self.group_count.assign(count)
        self.group_source.assign(source)
        return tf.where(count > 0, total / tf.maximum(count, 1.0), loss), source

    def _attempted_updates(self):
        """Updates attempted so far, in the graph: the optimizer's count of the batches it
        applied plus those a loss scale skipped, in updates when Keras accumulates."""
        tf = _tf()
        batches = tf.cast(compat.step_counter(self.inner), tf.int64) + self.skipped
        accumulation = getattr(self.inner, "gradient_accumulation_steps", None)
        return batches // accumulation if accumulation else batches

    def steps_taken(self) -> int:
        """`_attempted_updates` now, as a Python int."""
        return int(self._attempted_updates().numpy())

    def load(self, lr_table, mom_table, periodic, scale) -> None:
        """Put a policy's tables into the driver's variables (padded to their fixed size);
        the policy starts at the next update."""
        size = self.table_capacity
        padded = np.full(size, lr_table[-1], dtype=np.float32)
        padded[: len(lr_table)] = lr_table
        self.lr_table.assign(padded)
        moms = np.zeros(size, dtype=np.float32)
        if mom_table is not None:
            moms[:] = mom_table[-1]
            moms[: len(mom_table)] = mom_table
        self.mom_table.assign(moms)
        self.n_table.assign(len(lr_table))
        self.periodic.assign(bool(periodic))
        self.offset = self.steps_taken()
        self.offset_var.assign(self.offset)
        self.scale_var.assign(scale)
        self.record.assign(np.full((self.capacity, len(_RECORD_COLUMNS)), np.nan, np.float32))
        self.group_step.assign(-1)

    def activate(self) -> None:
        model = self.model
        model.train_step = self.step_fn
        if self.function is None:
            model.make_train_function(force=True)
            self.function = model.train_function
        else:
            model.train_function = self.function

    def deactivate(self) -> None:
        model = self.model
        # Someone rebuilt the train function during the fit (e.g. pruning taking its
        # variable constraints off): what the traced functions captured (constraints,
        # optimizer methods) is stale, so neither this driver's function nor the base one
        # may be reused. A fresh one, made after the step is put back, also retires this
        # driver (its `base_function` no longer matches).
        replaced = model.train_function is not self.function
        if self.mom_attr:
            setattr(self.inner, self.mom_attr, self.configured)
        if self.user_step is not None:
            model.train_step = self.user_step
        else:
            model.__dict__.pop("train_step", None)
        if replaced:
            self.function = None
            model.make_train_function(force=True)
        else:
            model.train_function = self.base_function


class _AtConfiguredRate(keras.callbacks.Callback):
    """Runs a `ModelCheckpoint` with the optimizer's own learning rate in place while it
    may save: at the end of each epoch and of training, and after each batch when it saves
    every `save_freq` batches. Every other hook is passed on as it is."""

    def __init__(self, checkpoint: keras.callbacks.ModelCheckpoint,
                 policy_callback: PolicyCallback) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.policy_callback = policy_callback
        self._saving_hooks = {"on_epoch_end", "on_train_end"}
        if checkpoint.save_freq != "epoch":
            self._saving_hooks.add("on_train_batch_end")

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.checkpoint.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.checkpoint.set_params(params)

    def _call(self, hook: str, *args: Any, **kwargs: Any) -> None:
        if hook in self._saving_hooks:
            with self.policy_callback.configured_rate():
                getattr(self.checkpoint, hook)(*args, **kwargs)
        else:
            getattr(self.checkpoint, hook)(*args, **kwargs)


def _forwarding(hook: str) -> Any:
    def forward(self: _AtConfiguredRate, *args: Any, **kwargs: Any) -> None:
        self._call(hook, *args, **kwargs)

    forward.__name__ = hook
    return forward


for _hook in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_begin",
              "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(_AtConfiguredRate, _hook, _forwarding(_hook))
