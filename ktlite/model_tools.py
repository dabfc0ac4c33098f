"""Changing what a compiled model trains without replacing the user's optimizer.

Keras 3 fixes two things when it traces the train step: which variables are trainable
and the optimizer's Python-float hyperparameters such as `weight_decay`. It also refuses to
apply an optimizer to variables it was not built for. These helpers build the optimizer
once for every variable that could ever be unfrozen, and recompile / retrace with the same
optimizer object after a change.
"""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf

from ktlite import compat
from ktlite._console import say
from ktlite.arguments import check_float, check_int

__all__ = [
    "all_trainable_variables",
    "build_optimizer",
    "recompile",
    "freeze_layers",
    "set_trainable",
    "inner_optimizer",
    "set_weight_decay",
    "print_layers",
]


def _flat_layers(model: keras.Model) -> list:
    # Nested layers too (e.g. inside a TransformerEncoder), parents before children, which
    # is the order that restoring `trainable` flags needs.
    return compat.flatten_layers(model, include_self=True)


def set_trainable(layer: keras.layers.Layer, value: bool) -> None:
    """Sets `layer.trainable` (and its sublayers' and variables') for real.

    TensorFlow's tracking `__setattr__` skips an assignment whose value `is` the current
    one, so `model.trainable = True` on a model whose flag is already True leaves frozen
    sublayers frozen. Calling the property setter directly always propagates.

    Args:
        layer: a layer or model.
        value: the trainable flag.

    Example:
        >>> set_trainable(model, True)  # unfreezes every layer
    """
    keras.layers.Layer.trainable.fset(layer, bool(value))


def all_trainable_variables(model: keras.Model) -> list:
    """Returns the variables that are trainable when every layer is unfrozen.

    The model's `trainable` flags (of layers and variables) are left as they were.

    Args:
        model: a built model.

    Returns:
        A list of variables, in `model.trainable_variables` order.

    Example:
        >>> len(all_trainable_variables(model)) >= len(model.trainable_variables)
        True
    """
    layer_flags = [(layer, layer.trainable) for layer in _flat_layers(model)]
    variable_flags = [(v, v.trainable) for v in model.variables]
    try:
        set_trainable(model, True)
        variables = list(model.trainable_variables)
    finally:
        for layer, trainable in layer_flags:
            set_trainable(layer, trainable)
        for variable, trainable in variable_flags:
            variable.trainable = trainable
    return variables


def inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer holding the hyperparameters (unwraps a `LossScaleOptimizer`).

    Args:
        optimizer: a Keras optimizer, possibly a `LossScaleOptimizer` (mixed precision).

    Returns:
        The wrapped optimizer's `inner_optimizer`, else `optimizer` itself.

    Example:
        >>> wrapped = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
        >>> type(inner_optimizer(wrapped)).__name__
        'Adam'
    """
    return getattr(optimizer, "inner_optimizer", optimizer)


def _covers(optimizer: keras.optimizers.Optimizer, variables: list) -> bool:
    inner = inner_optimizer(optimizer)
    known = compat.optimizer_variable_keys(inner)
    if known is None:
        return True
    return all(compat.optimizer_variable_key(inner, v) in known for v in variables)


def build_optimizer(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Builds the model's optimizer for every variable that could be unfrozen.

    Frozen layers then carry optimizer slots they do not use, but `freeze()` /
    `unfreeze()` never need another optimizer. An optimizer that was already built for fewer
    variables (the model was trained with frozen layers before) cannot grow, so it is
    replaced by a fresh one of the same class and config, with a warning; its step count is
    kept.

    Args:
        model: a compiled, built model.
        strategy: the strategy whose scope the optimizer variables belong to.

    Example:
        >>> build_optimizer(model, tf.distribute.get_strategy())
    """
    optimizer = model.optimizer
    variables = all_trainable_variables(model)
    if not variables:
        return
    if optimizer.built:
        if _covers(optimizer, variables):
            return
        warnings.warn(
            "The model's optimizer was built before some layers were unfrozen and cannot "
            "track them, so ktlite gives the model a fresh optimizer of the same class and "
            "config (its step count is kept, its slots restart).",
            RuntimeWarning,
            stacklevel=3,
        )
        steps = int(compat.step_counter(inner_optimizer(optimizer)).numpy())
        copy = type(optimizer).from_config(optimizer.get_config())
        compat.copy_weight_decay_exclusions(inner_optimizer(optimizer), inner_optimizer(copy))
        recompile(model, strategy, copy)
        with strategy.scope():
            copy.build(variables)
        compat.step_counter(inner_optimizer(copy)).assign(steps)
        return
    with strategy.scope():
        optimizer.build(variables)


def recompile(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> None:
    """Recompiles with the same optimizer object, loss and metrics as the last compile.

    `jit_compile` stays the model's current setting.

    Args:
        model: a compiled model.
        strategy: the strategy to compile under.
        optimizer: a replacement optimizer; default the model's current one (kept as is).

    Example:
        >>> recompile(model, tf.distribute.get_strategy())
    """
    config = dict(compat.compile_arguments(model) or {})
    if not config:
        config = {"loss": model.loss}
    config["optimizer"] = optimizer or model.optimizer
    # The model's setting now, not the one it was compiled with: `get_learner(jit_compile=)`
    # (or its refusal of XLA under a multi-device strategy) changed it since.
    config["jit_compile"] = model.jit_compile
    # Keras does not record `auto_scale_loss`; an optimizer not wrapped for loss scaling
    # under mixed_float16 was compiled with it off, and stays so.
    config["auto_scale_loss"] = isinstance(
        config["optimizer"], keras.optimizers.LossScaleOptimizer
    )
    with strategy.scope():
        model.compile(**config)


def freeze_layers(model: keras.Model, n: int | None) -> int:
    """Freezes `model.layers[:n]` and unfreezes the rest.

    Args:
        model: the model.
        n: number of leading layers to freeze; `None` freezes all but the last layer that
            has weights (the head).

    Returns:
        The `n` used.

    Raises:
        TypeError: if `n` is neither `None` nor an int.
        ValueError: if `n` is not in `[0, len(model.layers)]`.

    Example:
        >>> freeze_layers(model, None)
        1
    """
    layers = model.layers
    if n is None:
        with_weights = [i for i, layer in enumerate(layers) if layer.weights]
        n = with_weights[-1] if with_weights else 0
    else:
        n = check_int(n, "n", 0, len(layers))
    set_trainable(model, True)
    for i, layer in enumerate(layers):
        set_trainable(layer, i >= n)
    return int(n)


def set_weight_decay(model: keras.Model, wd: float | None) -> None:
    """Sets decoupled weight decay on the model's optimizer and forces a retrace.

    Keras reads `weight_decay` as a Python float when it traces the train step, so the
    cached train function is dropped (the next `fit` traces again); the optimizer object,
    its state and its other settings are untouched.

    Args:
        model: a compiled model.
        wd: the decay (multiplied by the learning rate each step), or `None` for none.

    Raises:
        TypeError: if `wd` is neither `None` nor a number.
        ValueError: if `wd` is negative or not finite.

    Example:
        >>> set_weight_decay(model, 0.01)
    """
    wd = check_float(wd, "wd", low=0.0, allow_none=True)
    inner_optimizer(model.optimizer).weight_decay = wd
    model.train_function = None


def print_layers(model: keras.Model) -> None:
    """Prints each layer's index, name, class, trainable flag and parameter count.

    Args:
        model: the model.

    Example:
        >>> print_layers(model)
    """
    say(f"{'#':>3}  {'name':<28}{'class':<26}{'trainable':<11}params")
    for i, layer in enumerate(model.layers):
        params = layer.count_params() if layer.built else 0
        say(
            f"{i:>3}  {layer.name:<28}{type(layer).__name__:<26}"
            f"{str(layer.trainable):<11}{params}"
        )
