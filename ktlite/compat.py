"""The one module through which ktlite reaches private Keras and TensorFlow API.

Keras 3 and TensorFlow leave a few things ktlite needs without a public API: the
optimizer's learning-rate variable, a recursive walk over sublayers, the arguments of the
last `compile`, the inner structure of a `tf.data` pipeline, and the two trainer methods
that training over several replicas has to correct. Every such use is a small named hook here, with
a docstring saying what public API is missing and on which versions it was checked, so a
new Keras or TensorFlow release has one file to review.

`tests/test_compat.py` exercises each hook against the installed versions through
`verify`, which fails with the hook's name and the versions when a release drops what the
hook relies on; it also fails when another module imports `keras.src`, uses
`tf.__internal__` or reads an underscored Keras/TensorFlow attribute.

"Checked on Keras 3.x to 3.15" below means: present in the Keras sources of release 3.x,
of 3.15.1 and of Keras' main branch (August 2026), and run by the tests with the installed
Keras 3.15.1. TensorFlow hooks were run with the
installed TensorFlow 2.21.0 only (`TESTED_WITH`).

Keras and TensorFlow are imported inside the hooks that need them, so importing this module
costs nothing (`ktlite.compress.tflite_export` and `ktlite.lr` use it).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import keras

__all__ = [
    "TESTED_WITH",
    "compile_arguments",
    "copy_weight_decay_exclusions",
    "creation_strategy",
    "dataset_batch_size",
    "dataset_drop_remainder",
    "dataset_function_steps",
    "dataset_input",
    "dataset_parents",
    "flatten_layers",
    "is_batch_step",
    "is_default_strategy",
    "is_functional",
    "is_trackable",
    "is_unbatch_step",
    "learning_rate_object",
    "loss_tracker",
    "make_step_function",
    "metric_direction",
    "optimizer_variable_key",
    "optimizer_variable_keys",
    "per_instance_function",
    "producing_operation",
    "replace_symbolic_build",
    "saved_optimizer_variables",
    "set_learning_rate_object",
    "set_tflite_custom_op_registerers",
    "step_counter",
    "symbolic_build",
    "tf_trainer_sources",
    "verify",
    "uses_weight_decay",
    "decays_as_adamw",
    "weight_decay_exclusions",
]

# The newest versions every hook was run with; pyproject.toml's upper bounds follow them.
TESTED_WITH = {"keras": "3.15.1", "tensorflow": "2.21.0"}


# ---------------------------------------------------------------------- optimizers
def learning_rate_object(optimizer: keras.optimizers.Optimizer) -> Any:
    """The object an optimizer reads its learning rate from: a variable, or a schedule.

    Missing public API: `optimizer.learning_rate` evaluates a schedule instead of
    returning it, so it cannot tell a float learning rate (a variable that can be assigned
    inside the train step) from a `LearningRateSchedule`. Reads `optimizer._learning_rate`.
    Checked on Keras 3.5 to 3.15.

    Args:
        optimizer: a Keras optimizer (not a `LossScaleOptimizer` wrapper: pass its
            `inner_optimizer`).

    Returns:
        The `keras.Variable` (float learning rate) or the schedule / callable.

    Example:
        >>> learning_rate_object(keras.optimizers.Adam(1e-3))  # a keras.Variable
    """
    return optimizer._learning_rate


def set_learning_rate_object(optimizer: keras.optimizers.Optimizer, value: Any) -> None:
    """Replaces the object an optimizer reads its learning rate from.

    Missing public API: the `learning_rate` setter refuses to replace a schedule by a
    variable (and back), which the LR finder does for the length of its sweep. Writes
    `optimizer._learning_rate`; a variable it replaces is untracked
    (`optimizer._untrack_variable`), so that `optimizer.variables` (what a saved model's
    optimizer state is matched against) is as before the swap. Checked on Keras 3.5 to
    3.15.

    Args:
        optimizer: a Keras optimizer (not a `LossScaleOptimizer` wrapper).
        value: a `keras.Variable`, or the schedule that was there before.

    Raises:
        RuntimeError: if the optimizer has no such attribute (a Keras version that
            renamed it), rather than setting one nothing reads.

    Example:
        >>> set_learning_rate_object(optimizer, keras.Variable(1e-4))
    """
    import keras

    _require(optimizer, "_learning_rate", "set_learning_rate_object")
    previous = optimizer._learning_rate
    optimizer._learning_rate = value
    if isinstance(previous, keras.Variable) and previous is not value:
        _require(optimizer, "_untrack_variable", "set_learning_rate_object")
        optimizer._untrack_variable(previous)


def optimizer_variable_key(optimizer: keras.optimizers.Optimizer, variable: Any) -> Any:
    """The key under which an optimizer files a variable (its slots, decay exclusions).

    Missing public API: no public way to match a variable with the optimizer's records of
    it. Calls `optimizer._var_key`. Checked on Keras 3.5 to 3.15.

    Args:
        optimizer: a Keras optimizer (not a `LossScaleOptimizer` wrapper).
        variable: a model variable.

    Returns:
        A hashable key.

    Example:
        >>> optimizer_variable_key(optimizer, model.weights[0])
    """
    return optimizer._var_key(variable)


def optimizer_variable_keys(optimizer: keras.optimizers.Optimizer) -> Any:
    """The keys of the variables an optimizer was built for (empty before `build`), or `None`.

    Missing public API: an optimizer cannot say which variables it can update; applying it
    to another one fails inside the train step. Reads
    `optimizer._trainable_variables_indices`. Checked on Keras 3.5 to 3.15.

    Args:
        optimizer: a Keras optimizer (not a `LossScaleOptimizer` wrapper).

    Returns:
        A mapping of each `optimizer_variable_key` to the variable's position in the list
        the optimizer was built for, or `None` when the optimizer does not keep one.

    Example:
        >>> optimizer_variable_key(optimizer, v) in optimizer_variable_keys(optimizer)
        True
    """
    return getattr(optimizer, "_trainable_variables_indices", None)


def weight_decay_exclusions(optimizer: keras.optimizers.Optimizer) -> tuple[Any, Any]:
    """What `exclude_from_weight_decay` recorded: a name pattern and variable keys.

    Missing public API: the exclusions are kept out of `get_config()`, so a copied
    optimizer loses them. Reads `optimizer._exclude_from_weight_decay_pattern` and
    `optimizer._exclude_from_weight_decay`. Checked on Keras 3.5 to 3.15.

    Args:
        optimizer: a Keras optimizer (not a `LossScaleOptimizer` wrapper).

    Returns:
        `(pattern, keys)`: a compiled regex of the excluded names (or `None`) and the
        `optimizer_variable_key`s of the excluded variables (or `None`).

    Example:
        >>> optimizer.exclude_from_weight_decay(var_names=["bias"])
        >>> weight_decay_exclusions(optimizer)[0].pattern
        'bias'
    """
    return (
        getattr(optimizer, "_exclude_from_weight_decay_pattern", None),
        getattr(optimizer, "_exclude_from_weight_decay", None),
    )


def copy_weight_decay_exclusions(
    source: keras.optimizers.Optimizer,
    target: keras.optimizers.Optimizer,
    variables: Sequence[tuple[Any, Any]] | None = None,
) -> None:
    """Gives `target` the `exclude_from_weight_decay` choices of `source` (a copy made with
    `from_config(get_config())`, or a model reloaded from a `.keras` file, loses them).

    Missing public API: see `weight_decay_exclusions`; the public setter refuses a built
    optimizer. Writes `target._exclude_from_weight_decay_pattern` and
    `target._exclude_from_weight_decay`, and empties
    `target._exclude_from_weight_decay_cache`. Checked on Keras 3.5 to 3.15.

    Args:
        source: the optimizer the choices were made on (not a `LossScaleOptimizer`).
        target: its copy.
        variables: `(source's variable, target's variable)` pairs when `target` trains
            other variables than `source` (a reloaded model's): a variable excluded by
            itself is excluded through its pair. `None`: the same variables.

    Example:
        >>> copy = type(optimizer).from_config(optimizer.get_config())
        >>> copy_weight_decay_exclusions(optimizer, copy)
    """
    pattern, keys = weight_decay_exclusions(source)
    if pattern is None and keys is None:
        return
    if keys is not None and variables is not None:
        keys = type(keys)([optimizer_variable_key(target, new) for old, new in variables
                           if optimizer_variable_key(source, old) in keys])
    target._exclude_from_weight_decay_pattern = pattern
    target._exclude_from_weight_decay = set() if keys is None else type(keys)(keys)
    target._exclude_from_weight_decay_cache = {}  # answers given before the copy


def step_counter(optimizer: keras.optimizers.Optimizer) -> Any:
    """The variable that counts an optimizer's steps, assignable.

    Missing public API: with Keras' own `gradient_accumulation_steps`, `iterations` is
    computed (steps // accumulation) and cannot be assigned; the count lives in
    `optimizer._iterations`. Checked on Keras 3.5 to 3.15.

    Args:
        optimizer: a built Keras optimizer (not a `LossScaleOptimizer` wrapper).

    Returns:
        The step-count variable (`iterations` itself without accumulation).

    Example:
        >>> step_counter(new_optimizer).assign(step_counter(old_optimizer))
    """
    return getattr(optimizer, "_iterations", optimizer.iterations)


def saved_optimizer_variables(path: str) -> dict[str, Any] | None:
    """The optimizer variables a `.keras` file holds, as `Optimizer.load_own_variables`
    takes them (`{"0": array, "1": ...}`, in the order of `optimizer.variables`), or
    `None` when it holds none.

    Missing public API: Keras loads them only into an optimizer built for exactly as many
    variables, and builds the loaded model's for its trainable variables, so the state of
    one built for frozen layers too (as ktlite builds it) is skipped. This reads them from
    the archive's `model.weights.h5` (group `optimizer/vars`), the layout of Keras'
    `saving_lib` and `H5IOStore`. Checked on Keras 3.x to 3.15.

    Args:
        path: a `.keras` file (already checked to be a regular file).

    Returns:
        The arrays by their position as a string, or `None`.

    Example:
        >>> model.optimizer.load_own_variables(saved_optimizer_variables("model.keras"))
    """
    import zipfile

    import h5py
    import numpy as np

    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            return None
        # Read in place: only the optimizer's group, not the whole weights file.
        with archive.open("model.weights.h5") as weights, h5py.File(weights, "r") as store:
            group = store.get("optimizer/vars")
            if not isinstance(group, h5py.Group) or not len(group):
                return None
            return {key: np.asarray(group[key]) for key in group}


def uses_weight_decay(optimizer: keras.optimizers.Optimizer, variable: Any) -> bool:
    """Whether the optimizer applies its weight decay to `variable`.

    Missing public API: Keras keeps the `exclude_from_weight_decay` choices private; this
    asks `optimizer._use_weight_decay(variable)`, the check the optimizer itself makes.
    Checked on Keras 3.5 to 3.15.

    Args:
        optimizer: a Keras optimizer (not a `LossScaleOptimizer` wrapper).
        variable: one of the variables it trains.

    Returns:
        True if the variable is decayed.

    Example:
        >>> uses_weight_decay(keras.optimizers.AdamW(weight_decay=0.1), model.weights[0])
        True
    """
    _require(optimizer, "_use_weight_decay", "uses_weight_decay")
    return bool(optimizer._use_weight_decay(variable))


def decays_as_adamw(optimizer: keras.optimizers.Optimizer, variable: Any) -> bool:
    """Whether a `Muon` optimizer updates (and decays) `variable` on its AdamW path.

    Missing public API: Muon keeps the choice between its orthogonalised update and AdamW
    (vectors, embeddings, excluded layers), which also picks `adam_weight_decay` over
    `weight_decay`, private; this asks `optimizer._should_use_adamw(variable)`, the check
    Muon itself makes. Checked on Keras 3.10 to 3.15.

    Args:
        optimizer: a Keras `Muon` optimizer.
        variable: one of the variables it trains.

    Returns:
        True if the variable takes the AdamW path.

    Example:
        >>> decays_as_adamw(keras.optimizers.Muon(), model.layers[-1].bias)
        True
    """
    _require(optimizer, "_should_use_adamw", "decays_as_adamw")
    return bool(optimizer._should_use_adamw(variable))


# ---------------------------------------------------------------------- models and layers
def flatten_layers(
    layer: keras.layers.Layer, include_self: bool = True, recursive: bool = True
) -> list:
    """Every layer inside a layer or model, nested ones included, parents first.

    Missing public API: `model.layers` lists only the direct children. Calls
    `layer._flatten_layers` (what Keras' own `Model.quantize` walks). Checked on
    Keras 3.5 to 3.15.

    Args:
        layer: a layer or model.
        include_self: also list `layer` itself (first). Defaults to `True`.
        recursive: descend into sublayers of sublayers. Defaults to `True`.

    Returns:
        A list of layers.

    Example:
        >>> [l.name for l in flatten_layers(model, include_self=False)][:2]
        ['token_ids', 'embedding']
    """
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


def compile_arguments(model: keras.Model) -> dict | None:
    """The keyword arguments of the model's last `compile`, as the objects passed.

    Missing public API: `model.get_compile_config()` serializes them (a loss function
    that is not registered does not come back, metrics come back as new objects). Reads
    `model._compile_config.config`. Checked on Keras 3.5 to 3.15.

    Args:
        model: a Keras model.

    Returns:
        A dict (`optimizer`, `loss`, `loss_weights`, `metrics`, ...), or `None` for a
        model never compiled.

    Example:
        >>> compile_arguments(model)["loss"]
        'sparse_categorical_crossentropy'
    """
    return getattr(getattr(model, "_compile_config", None), "config", None)


def loss_tracker(model: keras.Model) -> Any:
    """The `Mean` metric in which a compiled model averages its loss over the epoch.

    Missing public API: the tracker's variables are what a per-batch loss has to be
    recovered from (Keras hands callbacks the running mean). Reads `model._loss_tracker`.
    Checked on Keras 3.5 to 3.15.

    Args:
        model: a Keras model.

    Returns:
        The metric, or `None` when the model has none (never compiled).

    Example:
        >>> [v.name for v in loss_tracker(model).variables]
        ['total', 'count']
    """
    return getattr(model, "_loss_tracker", None)


def metric_direction(metric: Any) -> str | None:
    """Whether a Keras metric improves by growing (`"up"`) or shrinking (`"down"`).

    Missing public API: Keras's own `EarlyStopping` reads `metric._direction`, which the
    built-in metrics set (accuracy, AUC, cosine similarity: up; errors: down). Checked on
    Keras 3.5 to 3.15.

    Args:
        metric: a Keras metric.

    Returns:
        `"up"`, `"down"`, or `None` when the metric does not say (e.g. `Mean`).

    Example:
        >>> metric_direction(keras.metrics.CosineSimilarity())
        'up'
    """
    direction = getattr(metric, "_direction", None)
    return direction if direction in ("up", "down") else None


def creation_strategy(model: keras.Model) -> Any:
    """The `tf.distribute` strategy that was in scope when the model object was created.

    Missing public API: `model.distribute_strategy` falls back to the strategy in scope
    now, so it cannot tell whether the variables belong to another one. Reads
    `model._distribute_strategy` (TensorFlow backend). Checked on Keras 3.5 to 3.15.

    Args:
        model: a Keras model.

    Returns:
        The strategy, or `None` when the model was created outside any strategy scope.

    Example:
        >>> creation_strategy(model) is None
        True
    """
    return getattr(model, "_distribute_strategy", None)


def producing_operation(tensor: Any) -> Any:
    """The layer (or operation) whose call produced a symbolic Keras tensor.

    Missing public API: a functional model lists its output tensors but not the layers
    that produced them. Reads `tensor._keras_history.operation`. Checked on
    Keras 3.5 to 3.15.

    Args:
        tensor: a `KerasTensor`, e.g. one of `model.outputs`.

    Returns:
        The layer or operation, or `None` for a tensor with no history (an `Input`'s
        placeholder before it is used, a non-Keras tensor).

    Example:
        >>> producing_operation(model.outputs[0]).name
        'head'
    """
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def is_functional(model: Any) -> bool:
    """Whether a model is a functional model (built from `keras.Input`s and layer calls).

    Missing public API: `keras.Model(inputs, outputs)` returns an instance of the private
    class `keras.src.models.functional.Functional`, which is not exported; the public
    `keras.Model` is also the base of subclassed models. Checked on Keras 3.5 to 3.15.

    Args:
        model: any object.

    Returns:
        `True` for functional models; `False` for `keras.Sequential` and subclassed
        models.

    Example:
        >>> is_functional(keras.Model(inputs, outputs))
        True
    """
    from keras.src.models.functional import Functional

    return isinstance(model, Functional)


# ---------------------------------------------------------------------- Keras' TF trainer
def tf_trainer_sources() -> tuple[str, str]:
    """Source code of the two trainer functions whose reductions over replicas ktlite fixes.

    Missing public API: ktlite decides whether the installed Keras still reduces in
    `TensorFlowTrainer._maybe_symbolic_build` and `reduce_per_replica` (see
    `ktlite.distribute.trainer_fix`) by reading them in
    `keras.src.backend.tensorflow.trainer`. Checked on Keras 3.5 to 3.15 (both faults
    still present in 3.15 and on Keras' main branch).

    Returns:
        `(source of _maybe_symbolic_build, source of reduce_per_replica)`.

    Raises:
        ImportError, AttributeError, OSError, TypeError: when the module, a function or its
            source cannot be found.

    Example:
        >>> "distribute_strategy.reduce(" in tf_trainer_sources()[0]
        True
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    return (
        inspect.getsource(tf_trainer.TensorFlowTrainer._maybe_symbolic_build),
        inspect.getsource(tf_trainer.reduce_per_replica),
    )


def replace_symbolic_build(model: keras.Model, function: Callable[..., Any]) -> None:
    """Gives one model its own `_maybe_symbolic_build(iterator=None, data_batch=None)`.

    Missing public API: the method `fit` calls to build a model from its first batch is
    private; ktlite replaces it on a single model instance for training over several
    replicas. Writes `model._maybe_symbolic_build`. Checked on Keras 3.5 to 3.15.

    Args:
        model: the model to correct.
        function: a function `(model, iterator=None, data_batch=None)`, bound to `model`.

    Raises:
        RuntimeError: if the model has no such method (a Keras version that renamed it).

    Example:
        >>> replace_symbolic_build(model, build_from_local_batch)
    """
    _require(model, "_maybe_symbolic_build", "replace_symbolic_build")
    model._maybe_symbolic_build = types.MethodType(function, model)


def symbolic_build(model: keras.Model, data_batch: Any) -> None:
    """Builds a compiled model (its metrics and optimizer too) from one batch of data.

    Missing public API: `model.build` does not build the compiled metrics and optimizer
    as `fit` does. Calls `model._symbolic_build(data_batch=...)`. Checked on
    Keras 3.5 to 3.15.

    Args:
        model: a compiled model.
        data_batch: one batch `(x, y)` or `(x, y, sample_weight)`, or its `tf.TensorSpec`s
            (a dataset's `element_spec`: nothing is read).

    Example:
        >>> symbolic_build(model, (x[:2], y[:2]))
    """
    model._symbolic_build(data_batch=data_batch)


def make_step_function(model: keras.Model, step: Callable[[Any], Any]) -> Callable[..., Any]:
    """Compiles a train step the way `make_train_function` would (tf.function, XLA, loop).

    Missing public API: `make_train_function` builds exactly one function from
    `model.train_step`; gradient accumulation needs two. Calls `model._make_function`,
    which Keras added in 3.7 (so `pyproject.toml` asks for keras>=3.7). Checked on
    Keras 3.7 to 3.15.

    Args:
        model: a compiled model.
        step: a function `data -> logs`, usually `model.train_step`.

    Returns:
        A function `iterator -> logs`, as `model.train_function` is.

    Example:
        >>> accumulate_fn = make_step_function(model, model.train_step)
    """
    return model._make_function(step)


# ---------------------------------------------------------------------- TensorFlow
def is_trackable(value: Any) -> bool:
    """Whether TensorFlow tracks an object's resources (tables, variables) when saving.

    Missing public API: TensorFlow exports no base class for objects such as lookup
    tables, which a serving `tf.function` may capture. Checks against
    `tf.__internal__.tracking.Trackable`. Checked on TensorFlow 2.21.

    Args:
        value: any object.

    Returns:
        `True` for trackable objects.

    Example:
        >>> is_trackable(tf.Variable(1.0))
        True
    """
    import tensorflow as tf

    return isinstance(value, tf.__internal__.tracking.Trackable)


def per_instance_function(python_function: Callable[..., Any], input_signature: list) -> Any:
    """A `tf.function` with a fixed signature that one object builds for itself.

    Missing public API: TensorFlow counts traces per *code object* of the wrapped Python
    function, not per `tf.function`, and warns ("5 out of the last 6 calls ... triggered
    tf.function retracing") once five traces come close together. A signature-fixed
    function that each preprocessor or decoding predictor builds for itself traces once
    per calling context (device, strategy), by design, so a notebook that makes a few of
    them saw that warning for nothing. There is no public switch; this sets the
    `_omit_frequent_tracing_warning` flag TensorFlow itself sets on the functions it
    restores from a SavedModel. Checked on TensorFlow 2.21.

    Args:
        python_function: the function (a bound method or closure) to trace.
        input_signature: its `tf.TensorSpec`s, as for `tf.function`.

    Returns:
        The `tf.function`.

    Raises:
        RuntimeError: if this TensorFlow's `tf.function` has no such flag.

    Example:
        >>> fn = per_instance_function(self._tokenize, [tf.TensorSpec([None], tf.string)])
    """
    import tensorflow as tf

    function = tf.function(python_function, input_signature=input_signature, autograph=False)
    _require(function, "_omit_frequent_tracing_warning", "per_instance_function")
    function._omit_frequent_tracing_warning = True
    return function


def set_tflite_custom_op_registerers(converter: Any, registerers: list) -> None:
    """Lets a TFLite converter run a model with custom ops while it calibrates int8.

    Missing public API: `tf.lite.Interpreter(custom_op_registerers=...)` is public, but
    the converter runs its own interpreter for calibration and only takes registerers in
    `converter.target_spec._experimental_custom_op_registerers`. Checked on
    TensorFlow 2.21.

    Args:
        converter: a `tf.lite.TFLiteConverter`.
        registerers: registerer names, e.g. tensorflow-text's `SELECT_TFTEXT_OPS`.

    Raises:
        RuntimeError: if the converter's target spec has no such field (a TensorFlow
            version that renamed it), rather than setting one nothing reads.

    Example:
        >>> set_tflite_custom_op_registerers(converter, list(SELECT_TFTEXT_OPS))
    """
    _require(
        converter.target_spec, "_experimental_custom_op_registerers",
        "set_tflite_custom_op_registerers",
    )
    converter.target_spec._experimental_custom_op_registerers = list(registerers)


def is_default_strategy(strategy: Any) -> bool:
    """Whether a strategy is TensorFlow's default one (no `tf.distribute` scope entered).

    Missing public API: the default strategy's class `_DefaultDistributionStrategy` is
    private and `tf.distribute.has_strategy()` only describes the current scope. Compares
    the class name. Checked on TensorFlow 2.21.

    Args:
        strategy: a strategy object.

    Returns:
        `True` for the default strategy.

    Example:
        >>> is_default_strategy(tf.distribute.get_strategy())
        True
    """
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


# ---------------------------------------------------------------------- tf.data pipelines
# `tf.data` exposes no graph of a pipeline; these read the Python objects each
# transformation returns (`_BatchDataset`, `_UnbatchDataset`, ...). Checked on TF 2.21.


def dataset_input(dataset: Any) -> Any:
    """The dataset a one-input transformation (map, batch, prefetch...) was applied to.

    Missing public API: no way to walk a `tf.data` pipeline back. Reads
    `dataset._input_dataset`. Checked on TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        The input dataset, or `None` for a source (or a several-input) dataset.

    Example:
        >>> dataset_input(tf.data.Dataset.range(4).batch(2)).cardinality()  # 4
    """
    return getattr(dataset, "_input_dataset", None)


def dataset_parents(dataset: Any) -> list:
    """All datasets a transformation was applied to (both sides of `zip`, `concatenate`).

    Missing public API: as `dataset_input`. Calls `dataset._inputs()`. Checked on
    TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        A list of datasets; empty for a source dataset or one that does not say.

    Example:
        >>> len(dataset_parents(tf.data.Dataset.zip((a, b))))
        2
    """
    try:
        return list(dataset._inputs())
    except (AttributeError, NotImplementedError, TypeError):
        return []


def dataset_batch_size(dataset: Any) -> Any:
    """The batch size of a batching transformation, or `None` for any other dataset.

    Missing public API: `element_spec` only shows `None` as the batch dimension. Reads
    `dataset._batch_size` (a scalar tensor). Checked on TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        A scalar int64 tensor, or `None`.

    Example:
        >>> int(dataset_batch_size(tf.data.Dataset.range(9).batch(4)))
        4
    """
    return getattr(dataset, "_batch_size", None)


def dataset_drop_remainder(dataset: Any) -> Any:
    """The `drop_remainder` argument of a batching transformation (`False` otherwise).

    Missing public API: as `dataset_batch_size`. Reads `dataset._drop_remainder`.
    Checked on TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        A scalar bool tensor, or `False`.

    Example:
        >>> bool(dataset_drop_remainder(tf.data.Dataset.range(9).batch(4, True)))
        True
    """
    return getattr(dataset, "_drop_remainder", False)


def is_unbatch_step(dataset: Any) -> bool:
    """Whether a dataset is the result of `unbatch()`.

    Missing public API: as `dataset_input`; reads the private class name
    (`_UnbatchDataset`). Checked on TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        `True` for an unbatching step.

    Example:
        >>> is_unbatch_step(tf.data.Dataset.range(4).batch(2).unbatch())
        True
    """
    return "Unbatch" in type(dataset).__name__


def is_batch_step(dataset: Any) -> bool:
    """Whether a dataset is the result of a batching step (`batch`, `padded_batch`...).

    Missing public API: as `dataset_input`; reads `_batch_size` and the private class
    names (`_BatchDataset`, `_PaddedBatchDataset`, `_RaggedBatchDataset`...). Check
    `is_unbatch_step` first: an unbatching step's name contains "Batch" too. Checked on
    TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        `True` for a batching step.

    Example:
        >>> is_batch_step(tf.data.Dataset.range(4).padded_batch(2))
        True
    """
    return dataset_batch_size(dataset) is not None or "Batch" in type(dataset).__name__


def dataset_function_steps(dataset: Any) -> list[str]:
    """The steps of the dataset that a `group_by_window`, `flat_map` or `interleave` step
    makes of each window or element, newest first, as TensorFlow op types.

    Missing public API: the function such a step applies is opaque; its traced graph says
    how the dataset it returns is built (`bucket_by_sequence_length` is a `group_by_window`
    whose function ends in `PaddedBatchDatasetV2`). Reads `dataset._reduce_func` or
    `dataset._map_func` (a traced function wrapper) and walks its graph back from the
    returned dataset through each step's first dataset input. Checked on TensorFlow 2.21.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        Op types such as `"BatchDatasetV2"`, `"UnbatchDataset"`, `"TensorSliceDataset"`,
        ending in `"Placeholder"` where the function's argument (the window, or a dataset
        it captured) is reached; empty for any other dataset.

    Example:
        >>> dataset_function_steps(ds.group_by_window(key, lambda k, w: w.batch(4), 4))
        ['BatchDatasetV2', 'Placeholder']
    """
    import tensorflow as tf

    wrapper = getattr(dataset, "_reduce_func", None) or getattr(dataset, "_map_func", None)
    try:
        outputs = wrapper.function.graph.outputs
    except AttributeError:
        return []
    if len(outputs) != 1 or outputs[0].dtype != tf.variant:
        return []  # a map function returning tensors, not a dataset
    steps, node = [], outputs[0].op
    while node is not None and len(steps) < 256:
        if node.type != "Identity":
            steps.append(node.type)
        variants = [tensor for tensor in node.inputs if tensor.dtype == tf.variant]
        node = variants[0].op if variants else None
    return steps


# ---------------------------------------------------------------------- checking the hooks
def verify(hook: str, check: Callable[[], Any]) -> Any:
    """Runs a check of one hook against the installed Keras and TensorFlow.

    Used by `tests/test_compat.py`: `check` calls the hook on a real object and returns
    what it found (anything but `None` or `False`) when the private API behaved as the hook
    expects. A missing module or attribute, or a `None` / `False` result, becomes one error
    that names the hook and the versions.

    Args:
        hook: the name of a hook in this module.
        check: a function of no arguments exercising the hook.

    Returns:
        What `check` returned.

    Raises:
        ValueError: if `hook` is not a hook of this module.
        RuntimeError: if the check fails, naming `ktlite.compat.<hook>`, the installed
            versions and the versions ktlite was tested with.

    Example:
        >>> verify("flatten_layers", lambda: flatten_layers(model))
    """
    if hook not in __all__ or hook in ("TESTED_WITH", "verify"):
        raise ValueError(f"`hook` must name a hook of ktlite.compat. Received: hook={hook!r}")
    try:
        result = check()
    except (ImportError, AttributeError, TypeError, KeyError, OSError) as error:
        raise RuntimeError(_dropped(hook, f"{type(error).__name__}: {error}")) from error
    if result is None or result is False:
        raise RuntimeError(_dropped(hook, f"the private API answered {result!r}"))
    return result


def _require(obj: Any, attribute: str, hook: str) -> None:
    """Refuses to write a private attribute that this Keras / TensorFlow no longer has."""
    if not hasattr(obj, attribute):
        raise RuntimeError(_dropped(hook, f"{type(obj).__name__} has no `{attribute}`"))


def _dropped(hook: str, what: str) -> str:
    import keras
    import tensorflow as tf

    return (
        f"ktlite.compat.{hook}: the private Keras/TensorFlow API it relies on was not found "
        f"or changed in keras {keras.version()} with tensorflow {tf.__version__} ({what}); "
        f"ktlite was tested with keras {TESTED_WITH['keras']} and tensorflow "
        f"{TESTED_WITH['tensorflow']}. Install those versions, or update ktlite/compat.py."
    )
