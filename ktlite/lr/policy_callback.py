"""`PolicyCallback`: the one mechanism that applies a `Policy` to a compiled optimizer.

Why the policy runs inside the graph: a per-batch Python hook (`on_train_batch_begin`
assigning the learning rate) costs a Python round trip and an eager op per step, breaks
Keras' asynchronous batch-end dispatch when it also reads the loss, and misses steps when
`steps_per_execution > 1`. Instead the callback wraps `model.train_step` once per `fit`: the
wrapped step looks the learning rate and momentum up in constant tables indexed by
`optimizer.iterations`, assigns the learning-rate variable, and records lr, momentum and the
batch's loss into ring buffers that are read once per epoch. The per-step cost is a gather
and three scatters inside the compiled step (see `benchmarks/overhead.py` and
`benchmarks/RESULTS.md` for the measurement).

Why momentum is handled at trace time: Keras optimizers read `beta_1` (Adam family) and
`momentum` (SGD, RMSprop) as Python attributes while the train function is traced, so a float
becomes a graph constant. For the duration of each trace of the wrapped step the attribute is
replaced by a tensor-like proxy computed from `optimizer.iterations`, and the float is put
back as soon as the trace returns. `optimizer.get_config()` therefore always sees the user's
float, also when a `ModelCheckpoint` saves in the middle of training.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np

from ktlite.lr.schedules import Policy

__all__ = ["PolicyCallback"]

_MIN_BUFFER = 4096


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
    if not isinstance(getattr(inner, "_learning_rate", None), keras.Variable):
        raise ValueError(
            "A learning-rate policy needs an optimizer created with a float learning rate, "
            "but this optimizer's `learning_rate` is a schedule or a callable "
            f"({type(inner._learning_rate).__name__}). Compile the model with e.g. "
            "`keras.optimizers.Adam(learning_rate=1e-3)` to let ktlite drive the learning "
            "rate, or train with plain `model.fit` to keep your schedule."
        )


class PolicyCallback(keras.callbacks.Callback):
    """Drive a compiled model's own optimizer with a learning-rate/momentum `Policy`.

    Step `i` of the policy is the `i`-th optimizer update since this callback's training
    started (read from `optimizer.iterations`, so `steps_per_execution` and gradient
    accumulation are respected). The learning rate is assigned to the optimizer's
    learning-rate variable; momentum (`beta_1` for Adam, AdamW, Adamax, Nadam, Lamb, Lion;
    `momentum` for SGD and RMSprop when it is > 0) is computed inside the graph while the
    attribute itself stays the configured float. Optimizers without momentum get the
    learning rate only (with a warning when the policy asks for momentum).

    After training the learning-rate variable holds the policy's last value, the momentum
    attribute is exactly the original float and `model.train_step` / `model.train_function`
    are the ones from before. If `fit` is interrupted (e.g. by `KeyboardInterrupt`), Keras
    skips `on_train_end`: call `restore()` in a `finally` block.

    Args:
        policy: A `ktlite.lr.schedules.Policy` (e.g. `OneCycle`, `Triangular`, `SGDR`,
            `Constant`).

    Attributes:
        history: Dict of lists `"lrs"`, `"momentums"` (None entries when momentum is not
            driven) and `"losses"` (the true loss of each batch, not Keras' running mean),
            one entry per optimizer step, filled at the end of each epoch.
        lr_scale: Factor applied to every learning rate of the policy (default 1.0); set it
            during training, e.g. to lower the peak on a plateau.

    Raises:
        ValueError: If `policy` is not a `Policy`, or (when training starts) if the model is
            not compiled, the backend is not TensorFlow, or the optimizer's learning rate is
            a schedule.

    Example:
        >>> cb = PolicyCallback(OneCycle(1e-3, total_steps=epochs * steps_per_epoch))
        >>> model.fit(x, y, epochs=epochs, callbacks=[cb])
        >>> cb.history["lrs"][:3]
    """

    def __init__(self, policy: Policy):
        super().__init__()
        if not isinstance(policy, Policy):
            raise ValueError(
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
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
            math.isfinite(float(value)) and float(value) > 0
        ):
            raise ValueError(f"`lr_scale` must be a positive float. Received: lr_scale={value!r}")
        self._lr_scale = float(value)
        if self._installed:
            self._state["scale_var"].assign(self._lr_scale)

    @property
    def momentum_attribute(self) -> str | None:
        """The optimizer attribute being cycled (`"beta_1"`, `"momentum"` or None)."""
        return self._state.get("mom_attr")

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
        tf = _tf()
        policy = self.policy
        inner = _inner_optimizer(optimizer)
        table_steps = policy.table_steps
        table_index = np.arange(table_steps)
        lr_table = policy.lr_at(table_index)
        mom_values = policy.momentum_at(table_index)
        mom_attr = None
        if mom_values is not None:
            mom_attr = _momentum_attribute(optimizer)
            if mom_attr is None:
                warnings.warn(
                    f"The policy cycles momentum but {type(inner).__name__} has no float "
                    "`beta_1` nor a positive `momentum`; only the learning rate is scheduled. "
                    "Pass `moms=None` to the policy to silence this warning.",
                    stacklevel=2,
                )
        configured = getattr(inner, mom_attr) if mom_attr else None
        steps_hint = (self.params or {}).get("steps") or 0
        capacity = int(max(steps_hint + 1, _MIN_BUFFER))
        strategy = model.distribute_strategy
        with strategy.scope():
            lr_tab = tf.constant(lr_table, dtype=tf.float32)
            mom_tab = tf.constant(mom_values if mom_attr else [0.0], dtype=tf.float32)
            offset = tf.Variable(
                int(optimizer.iterations.numpy()), dtype=tf.int64, trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            scale_var = tf.Variable(
                self._lr_scale, dtype=tf.float32, trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            buffers = {
                key: tf.Variable(
                    tf.fill([capacity], float("nan")), trainable=False,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                for key in ("lrs", "momentums", "losses")
            }
        periodic = policy.cycle_steps is not None
        tracker = getattr(model, "_loss_tracker", None)
        tracker_vars = list(getattr(tracker, "variables", []) or [])
        if len(tracker_vars) != 2:
            tracker_vars = []
        original_step = model.train_step
        had_instance_step = "train_step" in model.__dict__

        def scheduled_train_step(data):
            step = tf.cast(inner.iterations, tf.int64) - offset
            if periodic:
                index = tf.math.floormod(step, table_steps)
            else:
                index = tf.clip_by_value(step, 0, table_steps - 1)
            lr = tf.gather(lr_tab, index) * scale_var
            inner._learning_rate.assign(tf.cast(lr, inner._learning_rate.dtype))
            mom = tf.gather(mom_tab, index) if mom_attr else tf.constant(float("nan"))
            if tracker_vars:
                total0, count0 = (tf.identity(v.value) for v in tracker_vars)
            if mom_attr:
                setattr(inner, mom_attr, _ScheduledScalar(mom, configured))
            try:
                outputs = original_step(data)
            finally:
                if mom_attr:
                    setattr(inner, mom_attr, configured)
            if tracker_vars:
                total1, count1 = (v.value for v in tracker_vars)
                loss = tf.cast(total1 - total0, tf.float32) / tf.cast(count1 - count0, tf.float32)
            else:
                loss = tf.constant(float("nan"))
            slot = tf.reshape(tf.math.floormod(tf.maximum(step, 0), capacity), [1, 1])
            for key, value in (("lrs", lr), ("momentums", mom), ("losses", loss)):
                buffers[key].scatter_nd_update(slot, tf.reshape(value, [1]))
            return outputs

        self._state = {
            "model": model,
            "optimizer": optimizer,
            "inner": inner,
            "mom_attr": mom_attr,
            "configured": configured,
            "offset": int(offset.numpy()),
            "scale_var": scale_var,
            "buffers": buffers,
            "capacity": capacity,
            "recorded": 0,
            "prev_function": model.train_function,
            "had_instance_step": had_instance_step,
            "original_step": original_step,
        }
        model.train_step = scheduled_train_step
        model.make_train_function(force=True)
        self._installed = True

    def flush(self) -> None:
        """Copy the steps recorded so far inside the graph into `history`."""
        if not self._installed:
            return
        state = self._state
        done = int(state["inner"].iterations.numpy()) - state["offset"]
        start = state["recorded"]
        if done <= start:
            return
        capacity = state["capacity"]
        lost = max(0, done - start - capacity)
        if lost:
            warnings.warn(
                f"{lost} steps ran between two epoch ends beyond the record buffer "
                f"({capacity} steps); their lr/momentum/loss are recorded as NaN.",
                stacklevel=2,
            )
        slots = np.arange(start + lost, done) % capacity
        values = {key: var.numpy()[slots] for key, var in state["buffers"].items()}
        nan_pad = [math.nan] * lost
        self.history["lrs"].extend(nan_pad + values["lrs"].astype(float).tolist())
        self.history["losses"].extend(nan_pad + values["losses"].astype(float).tolist())
        if state["mom_attr"]:
            self.history["momentums"].extend(nan_pad + values["momentums"].astype(float).tolist())
        else:
            self.history["momentums"].extend([None] * (done - start))
        state["recorded"] = done

    def restore(self) -> None:
        """Put back the model's train step/function and the optimizer's momentum float.

        Idempotent; called by `on_train_end`. Call it yourself in a `finally` block when
        training may be interrupted.
        """
        if not self._installed:
            return
        state = self._state
        model = state["model"]
        if state["mom_attr"]:
            setattr(state["inner"], state["mom_attr"], state["configured"])
        if state["had_instance_step"]:
            model.train_step = state["original_step"]
        else:
            model.__dict__.pop("train_step", None)
        model.train_function = state["prev_function"]
        self._installed = False
