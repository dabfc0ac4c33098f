"""Putting a compiled model under a strategy, a precision and a compilation mode.

ktlite users never write `with strategy.scope()`. A model built outside any scope (by the
user, or by a ktlite factory) is **rebuilt inside the strategy's scope**: same architecture
(from `get_config`), same weights, and a fresh optimizer of the same class with the same
config, then compiled with the user's own loss, loss weights and metrics. ktlite rebuilds
rather than asking factories to build in scope because it has to work for any compiled Keras
model a user hands over, and only a rebuild covers those.

The rebuilt model is a new object: after training, use `learner.model` (or copy weights
back with `model.set_weights(learner.model.get_weights())`). A model already built in the
right scope, at the right precision, is kept as is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf
from keras import tree

from ktlite import compat
from ktlite.arguments import (
    check_bool,
    check_choice,
    check_instance,
    check_positive_int,
    check_verbose,
)
from ktlite._console import say, warn
from ktlite.distribute import accumulation as _accumulation
from ktlite.distribute import trainer_fix
from ktlite.distribute.strategy import (
    describe,
    get_strategy,
    is_multi_worker,
    needs_static_shapes,
)

PRECISIONS = {
    "bfloat16": "mixed_bfloat16",
    "mixed_bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
    "mixed_float16": "mixed_float16",
    "float32": "float32",
}

_FLOAT_POLICIES = frozenset(PRECISIONS.values())

_COMPILE_KEYS = (
    "loss",
    "loss_weights",
    "metrics",
    "weighted_metrics",
    "run_eagerly",
    "steps_per_execution",
    "jit_compile",
)


def prepare_model(
    model: keras.Model,
    strategy: str | tf.distribute.Strategy | None = None,
    mixed_precision: str | None = None,
    jit_compile: bool | None = None,
    gradient_accumulation_steps: int | None = None,
    verbose: int = 0,
) -> keras.Model:
    """Returns a compiled model ready to train under a strategy, precision and XLA mode.

    What happens, in order:

    1. The strategy is resolved with `get_strategy` (so `"auto"` works here too).
    2. If the model was not built under that strategy's scope, or `mixed_precision` asks for
       another precision than the model's, the model is rebuilt in the scope from its
       config, its weights are copied over, and it is compiled with a new optimizer of the
       same class and config (optimizer slots and step count copied when the optimizer had
       already been used and the variables still line up), and with the **same** loss,
       loss weights and metrics objects (metric objects are re-created from their config
       so their state lives in the new scope). Under mixed precision, layers that produce
       the model's outputs keep `float32`, so predictions and the loss stay float32; so
       does, behind such a layer without weights (a `Rescaling`), the layer with weights
       that feeds it (a regression head).
    3. `float16` wraps the optimizer in a `keras.optimizers.LossScaleOptimizer`.
    4. `gradient_accumulation_steps` switches on ktlite's gradient accumulation
       (`ktlite/distribute/accumulation.py`), which, unlike the Keras optimizers' own,
       also runs under tf.distribute strategies. A Keras optimizer's own
       `gradient_accumulation_steps` is kept on the default strategy and converted to
       ktlite's under any other strategy.
    5. `jit_compile` is set on the model (`True`, passed or the model's own compile
       setting, is refused with a warning when one process drives several devices, where
       Keras' XLA-compiled step cannot run).
    6. A model compiled with `steps_per_execution` > 1 trains with 1, with a warning, under
       a strategy of several replicas (GPUs or CPUs of one process, or several workers):
       Keras' loop of several train steps per call fails there on its first call
       (TensorFlow's "You must feed a value for placeholder tensor"). TPUs keep the
       setting.
    7. Under a strategy of several replicas, `ktlite.distribute.trainer_fix` is applied.

    Nothing is rebuilt when nothing needs to change; the same object comes back.

    Args:
        model: A compiled `keras.Model` (compile with keywords).
        strategy: Anything `get_strategy` accepts; `None` keeps the strategy in scope.
        mixed_precision: `None` (keep the model's precision), `"bfloat16"`, `"float16"`
            (with dynamic loss scaling) or `"float32"`. bfloat16 needs no loss scaling and
            is the right choice on TPUs and Ampere-or-newer GPUs.
        jit_compile: `None` keeps the model's setting; `True`/`False` turns XLA on or off.
        gradient_accumulation_steps: `None` keeps the current setting (ktlite's
            accumulation already enabled on `model` carries over to a rebuilt copy); an int >= 1
            averages gradients over that many batches before each optimizer update
            (1 = update every batch). The effective batch is `batch_size * steps`, and
            `optimizer.iterations` counts updates, not batches.
        verbose: 0 (the default) is silent; 1 or 2 (a `Learner`'s levels) say in one line
            what was changed.

    Returns:
        The model to train: the same object, or its rebuilt copy.

    Raises:
        TypeError: If `model` is not a `keras.Model`, it cannot be rebuilt from its
            config (a subclassed model without `get_config`), `mixed_precision` is neither
            None nor a str, `jit_compile` is not a bool, or `gradient_accumulation_steps`
            or `verbose` not an int.
        ValueError: If the model is not compiled, or an argument has an invalid value.

    Example:
        >>> model = ktlite.distribute.prepare_model(model, strategy="auto",
        ...                                         mixed_precision="bfloat16")
        >>> model.fit(x, y, batch_size=64)
    """
    _check_model(model)
    policy = _check_precision(mixed_precision)
    if jit_compile is not None:
        check_bool(jit_compile, "jit_compile")
    accumulation = check_positive_int(
        gradient_accumulation_steps, "gradient_accumulation_steps", allow_none=True
    )
    verbose = check_verbose(verbose, (0, 1, 2))
    strategy = get_strategy(strategy, verbose=verbose)

    native = _inner(model.optimizer).gradient_accumulation_steps or 1
    if accumulation is None and native > 1 and not _is_default(strategy):
        # Keras' own accumulation cannot run under tf.distribute; ktlite's can.
        accumulation = native
    strip_native = accumulation is not None and native > 1
    # ktlite's accumulation lives on the model object, not in its config: a rebuilt model
    # gets it again.
    kept = _accumulation.enabled_steps(model) if accumulation is None else None
    wanted = accumulation if kept is None else kept
    if wanted is not None and wanted > 1:
        _accumulation.check_one_batch_per_call(model)  # before anything is rebuilt

    changes = []
    precision_changes = policy is not None and policy != current_precision(model)
    if precision_changes or not _built_under(model, strategy):
        model = _rebuild(model, strategy, policy, strip_native)
        if kept is not None:
            _accumulation.enable(model, kept, strategy)
        changes.append(f"rebuilt under {describe(strategy)}")
        if precision_changes:
            changes.append(policy)
    elif strip_native or _needs_loss_scaling(model, policy):
        _recompile(model, model, strategy, policy, strip_native)
        changes.append("recompiled with a new optimizer")
    if accumulation is not None:
        if accumulation > 1:
            _accumulation.enable(model, accumulation, strategy)
        else:
            _accumulation.disable(model)
        changes.append(f"gradient_accumulation_steps={accumulation}")
    if jit_compile is None and model.jit_compile is True and not _is_default(strategy):
        jit_compile = True  # compiled with XLA: checked as if asked for here
    if jit_compile is not None:
        jit = jit_compile and _jit_supported(strategy)
        if jit != model.jit_compile:
            model.jit_compile = jit
            model.train_function = model.test_function = model.predict_function = None
            changes.append(f"jit_compile={model.jit_compile}")
    per_call = getattr(model, "steps_per_execution", 1)
    if per_call != 1 and not _multi_step_supported(strategy, per_call):
        model.steps_per_execution = 1
        model.train_function = model.test_function = model.predict_function = None
        changes.append("steps_per_execution=1")
    if trainer_fix.apply(model, strategy):
        changes.append("Keras trainer correction applied (ktlite.distribute.trainer_fix)")
    if verbose and changes:
        say("ktlite: model " + ", ".join(changes) + ".")
    return model


def _jit_supported(strategy: tf.distribute.Strategy) -> bool:
    """Whether Keras' XLA-compiled train step can run under `strategy` (warns if not)."""
    if needs_static_shapes(strategy) or _is_default(strategy):
        return True
    try:
        devices = [str(d) for d in strategy.extended.worker_devices]
    except (AttributeError, RuntimeError):  # strategies that do not list their devices
        devices = []
    reason = None
    if len(devices) > 1:
        reason = (
            "Keras compiles the whole distributed step with XLA, which cannot place one "
            "computation on several devices of one process"
        )
    elif is_multi_worker(strategy) and all("CPU" in d.upper() for d in devices):
        reason = "XLA has no cross-process collectives on CPU devices"
    if reason is None:
        return True
    warn(
        f"jit_compile=True is not supported under {describe(strategy)}: {reason}. Training "
        "continues without XLA (one GPU per process, or a TPU, can use XLA).",
    )
    return False


def _multi_step_supported(strategy: tf.distribute.Strategy, per_call: int) -> bool:
    """Whether Keras can train `per_call` batches per call under `strategy` (warns if not)."""
    if needs_static_shapes(strategy) or strategy.num_replicas_in_sync < 2:
        return True
    warn(
        f"steps_per_execution={per_call!r} cannot train under {describe(strategy)}: Keras' "
        "loop of several train steps per call fails with several replicas (on GPUs or "
        "CPUs; TPUs run it). Training continues with steps_per_execution=1.",
    )
    return False


def current_precision(model: keras.Model) -> str:
    """Returns the dtype policy name most of the model's weighted layers use.

    Args:
        model: A Keras model.

    Returns:
        A policy name such as `"float32"` or `"mixed_bfloat16"`.

    Raises:
        TypeError: If `model` is not a `keras.Model`.

    Example:
        >>> ktlite.distribute.current_precision(model)
        'float32'
    """
    check_instance(model, keras.Model, "model")
    counts: dict[str, int] = {}
    outputs = _output_layers(model)
    for layer in compat.flatten_layers(model, include_self=False):
        if layer.weights and not isinstance(layer, keras.Model) and layer not in outputs:
            name = layer.dtype_policy.name
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return model.dtype_policy.name
    return max(counts, key=counts.get)


def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "`model` must be compiled before it is prepared for distribution, e.g. "
            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
            "metrics=['accuracy']). Received: an uncompiled model "
            f"{getattr(model, 'name', model)!r}"
        )


def _check_precision(mixed_precision: str | None) -> str | None:
    if check_choice(mixed_precision, "mixed_precision", list(PRECISIONS), allow_none=True):
        return PRECISIONS[mixed_precision]
    return None


def _is_default(strategy: tf.distribute.Strategy) -> bool:
    return compat.is_default_strategy(strategy)


def _built_under(model: keras.Model, strategy: tf.distribute.Strategy) -> bool:
    # Keras records the strategy in scope when a model object is created.
    built_with = compat.creation_strategy(model)
    if _is_default(strategy):
        return built_with is None or _is_default(built_with)
    return built_with is strategy


def _inner(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def _needs_loss_scaling(model: keras.Model, policy: str | None) -> bool:
    wants_scaling = (policy or current_precision(model)) == "mixed_float16"
    return wants_scaling and not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def _rebuild(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    policy: str | None,
    strip_accumulation: bool,
) -> keras.Model:
    with strategy.scope(), _global_policy(policy):
        new = _clone_architecture(model, policy)
    new.set_weights(model.get_weights())
    if policy not in (None, "float32"):
        _warn_if_outputs_not_float32(new)
    _recompile(model, new, strategy, policy, strip_accumulation)
    return new


def _clone_architecture(model: keras.Model, policy: str | None) -> keras.Model:
    if isinstance(model, keras.Sequential) or compat.is_functional(model):
        keep_float32 = _output_layers(model)

        def clone_layer(layer):
            config = layer.get_config()
            current = getattr(getattr(layer, "dtype_policy", None), "name", None)
            # Only float layers change; ops, integer and string layers keep their dtype.
            if policy is not None and layer not in keep_float32 and current in _FLOAT_POLICIES:
                config["dtype"] = policy
            return type(layer).from_config(config)

        # clone_model would also compile the copy from the *serialized* compile config,
        # which fails for unregistered loss functions and makes a second optimizer; ktlite
        # compiles the copy itself, with the original objects.
        compiled = model.compiled
        model.compiled = False
        try:
            return keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
        finally:
            model.compiled = compiled
    try:
        config = model.get_config()
        new = type(model).from_config(config)
    except NotImplementedError as error:
        raise TypeError(
            f"ktlite cannot rebuild the subclassed model {model.name!r} under a strategy or "
            "another precision because it has no `get_config()`. Implement get_config() "
            "(and from_config() if needed), or build the model inside "
            "`with strategy.scope():` yourself. Received: "
            f"model of type {type(model).__name__}"
        ) from error
    build_config = model.get_build_config() if model.built else None
    if build_config:
        new.build_from_config(build_config)
    if len(new.weights) != len(model.weights):
        raise TypeError(
            f"Rebuilding the subclassed model {model.name!r} from its config gave "
            f"{len(new.weights)} weights instead of {len(model.weights)}. Build the model "
            "inside `with strategy.scope():` yourself. Received: model of type "
            f"{type(model).__name__}"
        )
    return new


def _output_layers(model: keras.Model) -> set:
    """Layers whose outputs are model outputs and, behind such a layer without weights (a
    regression head's `Rescaling`, an `Activation`), the layers feeding it, up to those with
    weights (recursing into nested models)."""
    found: set = set()
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return found
    pending = [compat.producing_operation(tensor) for tensor in tree.flatten(outputs)]
    while pending:
        layer = pending.pop()
        if layer is None or layer in found or isinstance(layer, keras.layers.InputLayer):
            continue
        found.add(layer)
        if isinstance(layer, keras.Model):
            found |= _output_layers(layer)
        elif not getattr(layer, "weights", None):
            # A layer called several times gives its first call's inputs: at worst one more
            # layer keeps float32.
            try:
                inputs = tree.flatten(layer.input)
            except (AttributeError, ValueError):  # never called
                inputs = []
            pending.extend(compat.producing_operation(tensor) for tensor in inputs)
    return found


@contextlib.contextmanager
def _global_policy(policy: str | None) -> Iterator[None]:
    """Temporarily makes `policy` the default, for sublayers whose config names no dtype."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _warn_if_outputs_not_float32(model: keras.Model) -> None:
    outputs = getattr(model, "outputs", None) or []
    odd = [t.dtype for t in tree.flatten(outputs) if str(t.dtype) != "float32"]
    if odd:
        warn(
            f"Under mixed precision the model's outputs are {odd}, not float32. Give the "
            "layer that produces each output `dtype='float32'` to keep the loss and the "
            "predictions in float32.",
        )


def _recompile(
    source: keras.Model,
    target: keras.Model,
    strategy: tf.distribute.Strategy,
    policy: str | None,
    strip_accumulation: bool,
) -> None:
    """Compiles `target` with `source`'s compile arguments and a fresh optimizer copy."""
    settings = _compile_settings(source)
    old_optimizer = source.optimizer
    # float16 needs loss scaling; switching to bfloat16 or float32 removes the wrapper;
    # otherwise the user's choice stands.
    loss_scale = True if current_precision(target) == "mixed_float16" else None
    if policy in ("mixed_bfloat16", "float32"):
        loss_scale = False
    with strategy.scope():
        optimizer = _clone_optimizer(old_optimizer, strip_accumulation, loss_scale)
        settings["metrics"] = _fresh_metrics(settings["metrics"])
        settings["weighted_metrics"] = _fresh_metrics(settings["weighted_metrics"])
        target.compile(optimizer=optimizer, **settings)
        _copy_weight_decay_exclusions(source, target)
        if old_optimizer.built:
            _copy_optimizer_state(old_optimizer, target)


def _compile_settings(model: keras.Model) -> dict:
    config = compat.compile_arguments(model)
    if not isinstance(config, dict):
        raise ValueError(
            "ktlite could not read the compile arguments of this model (Keras "
            f"{keras.version()} stores them differently), and will not drop the loss or the "
            "metrics silently. Build and compile the model inside `with strategy.scope():` "
            "and pass it again. Received: model "
            f"{model.name!r}"
        )
    return {key: config.get(key) for key in _COMPILE_KEYS}


def _fresh_metrics(metrics: Any) -> Any:
    if metrics is None:
        return None

    def fresh(metric):
        if isinstance(metric, keras.metrics.Metric):
            return type(metric).from_config(metric.get_config())
        return metric

    return tree.map_structure(fresh, metrics)


def _clone_optimizer(
    optimizer: keras.optimizers.Optimizer, strip_accumulation: bool, loss_scale: bool | None
) -> keras.optimizers.Optimizer:
    """A new optimizer with the same config; `loss_scale` True wraps, False unwraps, None keeps."""
    inner = _inner(optimizer)
    config = inner.get_config()
    if strip_accumulation:
        config["gradient_accumulation_steps"] = None
    new_inner = type(inner).from_config(config)
    if loss_scale is not False and isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        kept = ("initial_scale", "dynamic_growth_steps", "name")
        wrapper = {k: v for k, v in optimizer.get_config().items() if k in kept}
        return keras.optimizers.LossScaleOptimizer(new_inner, **wrapper)
    if loss_scale:
        return keras.optimizers.LossScaleOptimizer(new_inner)
    return new_inner


def _copy_weight_decay_exclusions(source: keras.Model, target: keras.Model) -> None:
    """Carries `exclude_from_weight_decay` over; Keras keeps it out of the optimizer config."""
    old, new = _inner(source.optimizer), _inner(target.optimizer)
    pattern, excluded = compat.weight_decay_exclusions(old)
    if not pattern and not excluded:
        return
    by_key = {compat.optimizer_variable_key(old, v): i for i, v in enumerate(source.weights)}
    var_list = [
        target.weights[by_key[key]] for key in (excluded or ()) if key in by_key
    ]
    new.exclude_from_weight_decay(
        var_list=var_list or None,
        var_names=pattern.pattern.split("|") if pattern else None,
    )


def _copy_optimizer_state(old: keras.optimizers.Optimizer, model: keras.Model) -> None:
    new = model.optimizer
    new.build(model.trainable_variables)
    old_vars, new_vars = list(old.variables), list(new.variables)
    if len(old_vars) != len(new_vars):
        # Keras's own accumulation adds gradient accumulators; the rest lines up by name
        # (`<optimizer>/<variable>`), and the step count is the updates made.
        by_name = {v.path.split("/", 1)[-1]: v for v in old_vars}
        matched = [by_name.get(v.path.split("/", 1)[-1]) for v in new_vars]
        if all(m is not None and tuple(m.shape) == tuple(v.shape)
               for m, v in zip(matched, new_vars)):
            for source, target in zip(matched, new_vars):
                target.assign(source.value)
            compat.step_counter(_inner(new)).assign(_inner(old).iterations)
            return
    if len(old_vars) != len(new_vars) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in zip(old_vars, new_vars)
    ):
        warn(
            "The optimizer's state (step count and moments) could not be carried over to "
            "the rebuilt model because its variables changed (loss scaling or gradient "
            "accumulation added or removed); training continues from a fresh optimizer "
            "state with the same configuration.",
        )
        return
    for source, target in zip(old_vars, new_vars):
        target.assign(source.value)
