"""Training that leaves no trace: the LR finder's sweep and `confirm_lr`'s short runs.

`preserved(model, ...)` snapshots everything `fit` can change and puts it back bit for bit
on exit, also when the block raises. `ensure_built(model, dataset)`, which every ktlite
training entry calls first, creates beforehand the variables a first `fit` would create.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import keras
import numpy as np

from ktlite import compat
from ktlite.lr.policy_callback import _inner_optimizer

__all__ = ["ensure_built", "preserved"]


def check_compiled(model: Any, caller: str) -> None:
    """Refuses anything but a compiled `keras.Model` for an LR tool that trains it.

    Args:
        model: what the user passed as `model`.
        caller: the tool's name for the message (`"find_lr"`).

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if it is not compiled.

    Example:
        >>> check_compiled(model, "find_lr")
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a compiled keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            "The model is not compiled. Call `model.compile(optimizer=..., loss=...)` with "
            f"keyword arguments before `{caller}`."
        )


def ensure_built(model: keras.Model, dataset: Any) -> None:
    """Builds, before `fit`, what a model's first `fit` would build inside its first trace.

    A never-built model gets its variables from one batch (variables created inside
    `preserved` could not be put back). The compiled loss and metrics get theirs from the
    dataset's element spec, symbolically, as Keras itself does under a distribution
    strategy: without one, Keras creates them inside the first trace of the train step, and
    TensorFlow then traces the whole step a second time (a `tf.function` whose first trace
    created variables is retraced without creating them). Building them first saves that
    second trace (a small text Transformer's first 20-step `lr_find`: 12.7 s -> 8.1 s on 2
    cores, `benchmarks/first_fit.py`). With an optimizer that was never built only the
    model is built: Keras' symbolic build would build the optimizer too, and which
    variables it covers is `ktlite.model_tools.build_optimizer`'s choice.

    Args:
        model: a compiled `keras.Model`.
        dataset: a batched `tf.data.Dataset` of `(x, y)` or `x` batches, as `fit` gets it.

    Example:
        >>> ensure_built(model, train_ds)
    """
    if not model.built:
        batch = next(iter(dataset))
        model(batch[0] if isinstance(batch, (tuple, list)) else batch, training=False)
    if model.optimizer is not None and model.optimizer.built:
        with model.distribute_strategy.scope():
            compat.symbolic_build(model, dataset.element_spec)


@contextlib.contextmanager
def preserved(model: keras.Model, initial_lr: float, lr_name: str) -> Iterator[None]:
    """Trains inside the block as usual; on exit the model is as it was on entry.

    Restored: the model's variables and metric variables (metrics first built in the
    block start empty again), the optimizer's variables (`iterations` included), its
    learning rate, `model.stop_training` and `model.history`. An optimizer that was never
    built stays unbuilt: the block trains a fresh copy made from its config, built at once
    (so that the first trace creates no variables). One whose learning rate is a
    `LearningRateSchedule` trains on a temporary variable (so a `ktlite.lr.PolicyCallback`
    can drive it) and gets its schedule back.

    Args:
        model: A compiled, built `keras.Model`.
        initial_lr: The temporary rate variable's value, when one is needed.
        lr_name: The temporary rate variable's name.

    Example:
        >>> with preserved(model, 1e-7, "sweep_learning_rate"):
        ...     model.fit(dataset, epochs=1)
    """
    original = model.optimizer
    optimizer = original
    if not original.built:
        # Building is irreversible: train an identical, fresh copy instead.
        optimizer = type(original).from_config(original.get_config())
        compat.copy_weight_decay_exclusions(_inner_optimizer(original),
                                            _inner_optimizer(optimizer))
        # Built now, as the first step would, so that the step is traced once (`ensure_built`).
        with model.distribute_strategy.scope():
            optimizer.build(model.trainable_variables)
    inner = _inner_optimizer(optimizer)
    lr_object = compat.learning_rate_object(inner)
    swap_lr = not isinstance(lr_object, keras.Variable)
    model_vars = list(model.variables) + list(model.metrics_variables)
    opt_vars = list(original.variables) if original.built else []
    saved_model, saved_opt = _snapshot(model_vars), _snapshot(opt_vars)
    had_history = "history" in model.__dict__
    saved_history = getattr(model, "history", None)
    saved_stop = getattr(model, "stop_training", False)
    try:
        model.optimizer = optimizer
        if swap_lr:
            with model.distribute_strategy.scope():
                compat.set_learning_rate_object(inner, keras.Variable(
                    initial_lr, dtype=keras.backend.floatx(), trainable=False, name=lr_name,
                ))
        yield
    finally:
        if swap_lr:
            compat.set_learning_rate_object(inner, lr_object)
        model.optimizer = original
        for variable, value in zip(model_vars + opt_vars, saved_model + saved_opt):
            variable.assign(value)
        _reset_metrics_built_inside(model, model_vars)
        model.stop_training = saved_stop
        if had_history:
            model.history = saved_history
        else:
            model.__dict__.pop("history", None)


def _snapshot(variables: list) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in variables]


def _reset_metrics_built_inside(model: keras.Model, known: list) -> None:
    """Metrics first built in the block (those of a model never trained) start empty again."""
    known_ids = {id(variable) for variable in known}
    for metric in model.metrics:
        if any(id(variable) not in known_ids for variable in metric.variables):
            metric.reset_state()
