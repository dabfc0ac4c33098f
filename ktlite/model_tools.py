"""Changing what a compiled model trains without replacing the user's optimizer.

Keras 3 fixes two things when it traces the train step: which variables are trainable
and the optimizer's Python-float hyperparameters such as `weight_decay`. It also refuses to
apply an optimizer to variables it was not built for. These helpers build the optimizer
once for every variable that could ever be unfrozen, and recompile / retrace with the same
optimizer object after a change.

Two exceptions. An optimizer with `use_ema=True` is built for `model.trainable_variables`
only, as Keras builds it, and the set of trainable variables must then stay as it is: at
the end of every `fit` Keras writes the moving averages into `model.trainable_weights` by
position. And a variable the user froze on its own (`variable.trainable = False` in a
trainable layer, as Keras' LoRA freezes a kernel) stays frozen when layers are unfrozen.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from ktlite import compat
from ktlite._console import say, warn
from ktlite.arguments import check_float, check_int

__all__ = [
    "all_trainable_variables",
    "build_optimizer",
    "check_trainable_kept",
    "recompile",
    "freeze_layers",
    "frozen_variables",
    "restore_trainable_flags",
    "set_trainable",
    "trainable_flags",
    "unfreeze_layers",
    "uses_ema",
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


def frozen_variables(model: keras.Model, known: Sequence[Any] = ()) -> list:
    """The variables frozen one by one: `trainable` False in a layer that is trainable.

    Keras' LoRA (`layer.enable_lora(rank)`) freezes a layer's kernel so, as does
    `variable.trainable = False`. Setting the layer's flag again would switch such a
    variable on, so `freeze_layers` and `unfreeze_layers` freeze these again afterwards.
    Weights that are never trainable (a `BatchNormalization` layer's moving statistics)
    are among them; freezing them again changes nothing. A variable frozen in a layer that
    is frozen too looks like its neighbours: pass the ones found before as `known`.

    Args:
        model: a model.
        known: variables found before (e.g. before ktlite froze their layer); those whose
            flag is still False are kept.

    Returns:
        A list of variables, the `known` ones first, without repeats.

    Example:
        >>> model.get_layer("dense").enable_lora(4)
        >>> [v.path for v in frozen_variables(model)]
        ['dense/kernel']
    """
    owners = {}
    for layer in _flat_layers(model):  # parents first: the innermost layer owns a variable
        for variable in layer.weights:
            owners[id(variable)] = layer
    found = [variable for variable in known if not variable.trainable]
    seen = {id(variable) for variable in found}
    for variable in model.weights:
        owner = owners.get(id(variable))
        if variable.trainable or id(variable) in seen or owner is None or not owner.trainable:
            continue
        found.append(variable)
        seen.add(id(variable))
    return found


def trainable_flags(model: keras.Model) -> list:
    """Every layer's `trainable` flag (parents first), then every variable's.

    Args:
        model: a model.

    Returns:
        A list of `(layer or variable, flag)` pairs for `restore_trainable_flags`.

    Example:
        >>> flags = trainable_flags(model)
        >>> freeze_layers(model, 1)
        >>> restore_trainable_flags(flags)
        True
    """
    layers = [(layer, layer.trainable) for layer in _flat_layers(model)]
    return layers + [(variable, variable.trainable) for variable in model.variables]


def restore_trainable_flags(flags: list) -> bool:
    """Sets the flags `trainable_flags` recorded: layers (parents first), then variables.

    Args:
        flags: what `trainable_flags` returned.

    Returns:
        Whether any flag differed from the recorded one.

    Example:
        >>> restore_trainable_flags(trainable_flags(model))
        False
    """
    changed = any(item.trainable != flag for item, flag in flags)
    for item, flag in flags:
        if isinstance(item, keras.layers.Layer):
            set_trainable(item, flag)
        else:
            item.trainable = flag
    return changed


def unfreeze_layers(model: keras.Model, keep_frozen: Sequence[Any] = ()) -> list:
    """Makes every layer trainable, but not the variables frozen one by one.

    Args:
        model: the model.
        keep_frozen: variables to keep frozen besides the ones `frozen_variables` finds.

    Returns:
        The variables kept frozen (`frozen_variables(model, keep_frozen)` before the change).

    Example:
        >>> unfreeze_layers(model)
        []
    """
    keep = frozen_variables(model, keep_frozen)
    set_trainable(model, True)
    for variable in keep:
        variable.trainable = False
    return keep


def all_trainable_variables(model: keras.Model, keep_frozen: Sequence[Any] = ()) -> list:
    """Returns the variables that are trainable when every layer is unfrozen.

    Variables frozen one by one (see `frozen_variables`) and `keep_frozen` are not among
    them. The model's `trainable` flags (of layers and variables) are left as they were.

    Args:
        model: a built model.
        keep_frozen: variables to leave out besides the ones `frozen_variables` finds.

    Returns:
        A list of variables, in `model.trainable_variables` order.

    Example:
        >>> len(all_trainable_variables(model)) >= len(model.trainable_variables)
        True
    """
    flags = trainable_flags(model)
    try:
        unfreeze_layers(model, keep_frozen)
        variables = list(model.trainable_variables)
    finally:
        restore_trainable_flags(flags)
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


def uses_ema(optimizer: keras.optimizers.Optimizer | None) -> bool:
    """Whether an optimizer keeps moving averages of the weights (`use_ema=True`).

    Args:
        optimizer: a Keras optimizer, possibly a `LossScaleOptimizer` or a
            `MultiOptimizer` (true when any of its optimizers does), or `None`.

    Returns:
        The optimizer's `use_ema` setting.

    Example:
        >>> uses_ema(keras.optimizers.Adam(use_ema=True))
        True
    """
    inner = inner_optimizer(optimizer)
    if getattr(inner, "use_ema", False):
        return True
    return any(uses_ema(each) for each in getattr(inner, "optimizers", None) or ())


def _covers(optimizer: keras.optimizers.Optimizer, variables: list) -> bool:
    inner = inner_optimizer(optimizer)
    known = compat.optimizer_variable_keys(inner)
    if known is None:
        return True
    return all(compat.optimizer_variable_key(inner, v) in known for v in variables)


def _fits(optimizer: keras.optimizers.Optimizer, state: dict[str, Any]) -> bool:
    """Whether saved optimizer `state` holds one array of the right shape per variable."""
    return len(state) == len(optimizer.variables) and all(
        str(i) in state and tuple(state[str(i)].shape) == tuple(variable.shape)
        for i, variable in enumerate(optimizer.variables))


def _built_for(optimizer: keras.optimizers.Optimizer, variables: list) -> bool:
    """Whether the optimizer was built for exactly `variables`, in their order."""
    inner = inner_optimizer(optimizer)
    known = compat.optimizer_variable_keys(inner)
    if known is None:
        return True
    return len(known) == len(variables) and all(
        known.get(compat.optimizer_variable_key(inner, v)) == i for i, v in enumerate(variables)
    )


def _ema_setting(optimizer: keras.optimizers.Optimizer) -> str:
    return f"optimizer={type(inner_optimizer(optimizer)).__name__}(use_ema=True)"


def _build_ema_optimizer(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    # Keras writes the averages into `model.trainable_weights` by position at the end of
    # every fit (`finalize_variable_values`, no check of which variable is which), so the
    # optimizer must cover exactly those, in that order, as Keras itself would build it.
    optimizer = model.optimizer
    variables = list(model.trainable_variables)
    if optimizer.built:
        if _built_for(optimizer, variables):
            return
        built = len(compat.optimizer_variable_keys(inner_optimizer(optimizer)))
        raise ValueError(
            "The model's optimizer has `use_ema=True` and was built for other variables "
            f"than the model's trainable ones ({built} built, {len(variables)} trainable "
            "now: `trainable` flags changed after it was built). At the end of every fit "
            "Keras writes its moving averages into `model.trainable_weights` by position, "
            "so they would land in other variables. Compile the model with a fresh "
            "optimizer after the last change of `trainable` flags, e.g. "
            "`model.compile(optimizer=keras.optimizers.Adam(use_ema=True), ...)`. "
            f"Received: {_ema_setting(optimizer)}"
        )
    if variables:
        with strategy.scope():
            optimizer.build(variables)


def build_optimizer(
    model: keras.Model, strategy: tf.distribute.Strategy, saved_from: str | None = None
) -> bool:
    """Builds the model's optimizer for every variable that could be unfrozen.

    Frozen layers then carry optimizer slots they do not use, but `freeze()` /
    `unfreeze()` never need another optimizer. Variables frozen one by one (LoRA's base
    kernels, see `frozen_variables`) get no slots: they stay frozen. An optimizer that was
    already built for fewer variables (the model was trained with frozen layers before)
    cannot grow, so it is replaced by a fresh one of the same class and config: one that
    the optimizer state saved in `saved_from` fits gets it (a model loaded from that
    `.keras` file, whose optimizer Keras built for the trainable variables only and so
    could not load the state ktlite saved for all of them); otherwise with a warning, its
    step count kept and its slots restarted.

    An optimizer with `use_ema=True` is built for `model.trainable_variables` only, as
    Keras would build it: Keras writes its moving averages into `model.trainable_weights`
    by position at the end of every fit, so the set of trainable variables must not change
    afterwards (`check_trainable_kept` refuses ktlite's changes).

    Args:
        model: a compiled, built model.
        strategy: the strategy whose scope the optimizer variables belong to.
        saved_from: the `.keras` file the model was loaded from, or `None`; its optimizer
            state is read only where the optimizer must be replaced.

    Returns:
        Whether the optimizer was replaced by one that got the saved state.

    Raises:
        ValueError: if the optimizer has `use_ema=True` and was already built for other
            variables than `model.trainable_variables` (in their order).

    Example:
        >>> build_optimizer(model, tf.distribute.get_strategy())
    """
    optimizer = model.optimizer
    if uses_ema(optimizer):
        _build_ema_optimizer(model, strategy)
        return False
    variables = all_trainable_variables(model)
    if not variables:
        return False
    if optimizer.built:
        if _covers(optimizer, variables):
            return False
        steps = int(compat.step_counter(inner_optimizer(optimizer)).numpy())
        copy = type(optimizer).from_config(optimizer.get_config())
        compat.copy_weight_decay_exclusions(inner_optimizer(optimizer), inner_optimizer(copy))
        recompile(model, strategy, copy)
        with strategy.scope():
            copy.build(variables)
        state = None if saved_from is None else compat.saved_optimizer_variables(saved_from)
        if state is not None and _fits(copy, state):
            copy.load_own_variables(state)
            return True
        warn(
            "The model's optimizer was built before some layers were unfrozen and cannot "
            "track them, so ktlite gives the model a fresh optimizer of the same class and "
            "config (its step count is kept, its slots restart).",
            RuntimeWarning,
        )
        compat.step_counter(inner_optimizer(copy)).assign(steps)
        return False
    with strategy.scope():
        optimizer.build(variables)
    return False


def check_trainable_kept(model: keras.Model, change: Callable[[], Any], action: str) -> None:
    """Refuses a change of `trainable` flags that the model's EMA optimizer cannot follow.

    With `use_ema=True` the optimizer keeps one moving average per variable it was built
    for, and Keras writes them back into `model.trainable_weights` by position at the end
    of every fit: once the trainable variables change, each average lands in another
    variable (or the fit fails on a shape mismatch). `change` is tried, and every layer
    and variable flag set back as it was, before this returns or raises. Other optimizers
    follow any change: nothing is tried.

    Args:
        model: a compiled model.
        change: sets the flags the operation would set.
        action: the operation, for the message (e.g. `"freeze()"`).

    Raises:
        ValueError: if the optimizer has `use_ema=True` and `change` would change
            `model.trainable_variables`.

    Example:
        >>> check_trainable_kept(model, lambda: freeze_layers(model, 1), "freeze(1)")
    """
    optimizer = getattr(model, "optimizer", None)
    if not uses_ema(optimizer):
        return
    before = [id(v) for v in model.trainable_variables]
    flags = trainable_flags(model)
    try:
        change()
        after = [id(v) for v in model.trainable_variables]
    finally:
        restore_trainable_flags(flags)
    if after != before:
        raise ValueError(
            f"`{action}` would change which variables the model trains, but its optimizer "
            "has `use_ema=True`: at the end of every fit Keras writes the optimizer's "
            "moving averages into `model.trainable_weights` by position, so they would "
            "land in other variables. Use an optimizer without `use_ema` to freeze and "
            "unfreeze layers, or set the `trainable` flags before `model.compile(...)` "
            f"and keep them. Nothing was changed. Received: {_ema_setting(optimizer)}"
        )


def recompile(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> None:
    """Recompiles with the same optimizer object, loss and metrics as the last compile.

    `jit_compile` and `steps_per_execution` stay the model's current settings.

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
    # The model's settings now, not the ones it was compiled with: `get_learner(jit_compile=)`
    # (or its refusal of XLA, or of several steps per call, under a multi-device strategy)
    # changed them since.
    config["jit_compile"] = model.jit_compile
    config["steps_per_execution"] = model.steps_per_execution
    # Keras does not record `auto_scale_loss`; an optimizer not wrapped for loss scaling
    # under mixed_float16 was compiled with it off, and stays so.
    config["auto_scale_loss"] = isinstance(
        config["optimizer"], keras.optimizers.LossScaleOptimizer
    )
    with strategy.scope():
        model.compile(**config)


def freeze_layers(model: keras.Model, n: int | None, keep_frozen: Sequence[Any] = ()) -> int:
    """Freezes `model.layers[:n]` and unfreezes the rest.

    Variables frozen one by one (see `frozen_variables`) and `keep_frozen` stay frozen.

    Args:
        model: the model.
        n: number of leading layers to freeze; `None` freezes all but the last layer that
            has weights (the head).
        keep_frozen: variables to keep frozen besides the ones `frozen_variables` finds.

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
    keep = unfreeze_layers(model, keep_frozen)
    for i, layer in enumerate(layers):
        set_trainable(layer, i >= n)
    for variable in keep:
        variable.trainable = False
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
