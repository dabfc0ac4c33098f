"""Checks on the model and data handed to the Learner, with errors that say what to fix.

Each check raises `TypeError` (wrong kind of thing) or `ValueError` (right kind, bad
value), naming the argument and quoting what was received.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite import compat
from ktlite.arguments import check_float
from ktlite.data import TaskDataset, num_samples, to_arrays

__all__ = [
    "check_class_weight",
    "check_model",
    "check_arrays",
    "check_batch",
    "check_data",
    "loss_name",
    "loss_from_logits",
    "output_width",
    "shape_fits",
]

_COMPILE_HINT = (
    'model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", '
    'metrics=["accuracy"])'
)
_SPARSE = {"sparse_categorical_crossentropy", "sparse_categorical_focal_crossentropy"}
_CATEGORICAL = {"categorical_crossentropy", "categorical_focal_crossentropy"}
_BINARY = {"binary_crossentropy", "binary_focal_crossentropy"}
_ALIASES = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "logcosh": "log_cosh",
}
REGRESSION_LOSSES = {
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "huber",
    "huber_loss",
    "log_cosh",
}


def check_model(model: Any) -> keras.Model:
    """Checks that `model` is a compiled `keras.Model` with an optimizer.

    Args:
        model: the user's model.

    Returns:
        The model.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if it is not compiled, or was compiled with positional arguments.

    Example:
        >>> check_model(model)  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model of type {type(model).__name__}"
        )
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "`model` must be compiled before it is given to ktlite. Compile it with keyword "
            f"arguments, e.g. {_COMPILE_HINT} (use the loss and metrics of your task). "
            f"Received: an uncompiled model {model.name!r}."
        )
    config = compat.compile_arguments(model) or {}
    loss_weights = config.get("loss_weights")
    if loss_weights and any(isinstance(w, str) for w in tf.nest.flatten(loss_weights)):
        raise ValueError(
            "`model` looks compiled with positional arguments: Keras 3's third positional "
            "argument of compile() is `loss_weights`, not `metrics`. Compile with keywords, "
            f"e.g. {_COMPILE_HINT}. Received: loss_weights={loss_weights!r}"
        )
    return model


def loss_name(model: keras.Model) -> str | None:
    """Returns the normalised name of a single-output model's loss, or `None` if unknown.

    Args:
        model: a compiled model.

    Returns:
        e.g. `"sparse_categorical_crossentropy"`, `"mean_squared_error"`, or `None` for a
        multi-output loss or a custom one without a name.

    Example:
        >>> loss_name(model)
        'sparse_categorical_crossentropy'
    """
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, str):
        name = loss
    elif isinstance(loss, keras.losses.Loss):
        fn = getattr(loss, "fn", None)
        name = getattr(fn, "__name__", None) or getattr(loss, "name", None)
    elif callable(loss):
        name = getattr(loss, "__name__", None)
    else:
        return None
    if not name:
        return None
    name = name.lower()
    return _ALIASES.get(name, name)


def loss_from_logits(model: keras.Model) -> bool:
    """Whether the model's loss takes logits (`from_logits=True`).

    Args:
        model: a Keras model, compiled or not.

    Returns:
        True only if the model is compiled with a `keras.losses.Loss` object whose
        `from_logits` is true; False for string or function losses and uncompiled models.

    Example:
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> loss_from_logits(model)
        True
    """
    loss = getattr(model, "loss", None)
    if isinstance(loss, keras.losses.Loss):
        try:
            return bool(loss.get_config().get("from_logits", False))
        except (NotImplementedError, TypeError):
            return bool(getattr(loss, "from_logits", False))
    return False


def output_width(model: keras.Model) -> int | None:
    """Returns the last dimension of a single-output model's output, or `None`.

    Args:
        model: a Keras model.

    Returns:
        The size of the output's last axis, or None when the model has no known outputs
        (e.g. an unbuilt subclassed model), several outputs, or an unknown last axis.

    Example:
        >>> output_width(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))
        3
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1:
        return None
    width = outputs[0].shape[-1]
    return int(width) if width is not None else None


def check_class_weight(class_weight: Any, model: keras.Model) -> dict[int, float] | None:
    """Checks a `class_weight` mapping and completes it for the model's classes.

    Keras gives a class left out of `class_weight` the weight 1 for arrays, but fails
    inside the input pipeline for the `tf.data` batches ktlite trains on: the mapping that
    comes back holds every class of a single-output classifier (missing ones at 1.0).

    Args:
        class_weight: `None`, or a mapping of class ids (ints) to weights >= 0.
        model: the model being trained.

    Returns:
        `None`, or a dict of every class id to its weight.

    Raises:
        TypeError: if `class_weight` is not a mapping, or a key is not an int or a weight
            not a number.
        ValueError: for a negative or non-finite weight, a class id outside the
            model's classes, or a model compiled for regression or multilabel
            classification (a binary loss over several outputs) or with an output per
            position (translation, language models), which Keras would weigh wrongly.

    Example:
        >>> check_class_weight({1: 3.0}, model_with_3_classes)
        {0: 1.0, 1: 3.0, 2: 1.0}
    """
    if class_weight is None:
        return None
    if not isinstance(class_weight, Mapping):
        raise TypeError(
            "`class_weight` must be a dict of class ids to weights, e.g. {0: 1.0, 1: 3.0}. "
            f"Received: class_weight of type {type(class_weight).__name__}"
        )
    for key, weight in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(
                "`class_weight` keys must be class ids (ints; a class name's id is its "
                f"position in `preproc.class_names`). Received: key {key!r}"
            )
        check_float(weight, f"class_weight[{key}]", low=0.0)
    width = output_width(model)
    name = loss_name(model) or ""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) == 1 and len(outputs[0].shape) > 2:
        # Keras reads one class per example, the largest entry's position in its label row:
        # for a label per token that is a position in the sequence, not a class.
        raise ValueError(
            "`class_weight` weighs whole examples by their class; this model gives an "
            f"output per position (shape {tuple(outputs[0].shape)}), where Keras would weigh "
            "each example by the position of its largest label id. Weigh tokens with a "
            "weighted loss, or examples with sample weights in the data, instead. "
            f"Received: class_weight={dict(class_weight)!r:.200}"
        )
    # Keras weighs a text by the class of its label row's largest entry: several 0/1 labels
    # would get their first positive label's weight, a number its rounded value's.
    if name in REGRESSION_LOSSES or (name.startswith("binary") and (width or 1) > 1):
        task, by = (("regression", "its rounded target") if name in REGRESSION_LOSSES
                    else ("multilabel classification", "its first positive label"))
        raise ValueError(
            "`class_weight` weighs the examples of single-label classifiers by their "
            f"class; this model is compiled for {task} (loss {name!r}), where Keras would "
            f"weigh each example by {by}. Weigh examples with sample weights in the data "
            f"instead. Received: class_weight={dict(class_weight)!r:.200}"
        )
    if width is None:
        return dict(class_weight)
    classes = max(width, 2)  # one sigmoid output: classes 0 and 1
    outside = sorted(int(k) for k in class_weight if not 0 <= k < classes)
    if outside:
        raise ValueError(
            f"`class_weight` names classes {outside} that the model does not have: its "
            f"classes are 0 to {classes - 1}. Received: class_weight={dict(class_weight)!r}"
        )
    return {c: float(class_weight.get(c, 1.0)) for c in range(classes)}


def _first_bad(arr: np.ndarray) -> int:
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    return int(np.argmax(bad))


def _check_finite(arrays: Any, name: str) -> None:
    flat = arrays.items() if isinstance(arrays, Mapping) else enumerate(tf.nest.flatten(arrays))
    single = not isinstance(arrays, (Mapping, list, tuple))
    for key, arr in flat:
        arr = np.asarray(arr)
        if arr.dtype.kind != "f" or np.isfinite(arr).all():
            continue
        label = name if single else f"{name}[{key!r}]"
        n_bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"`{label}` contains {n_bad} NaN or infinite value(s); the first is in sample "
            f"{_first_bad(arr)}. Remove or impute them before training. "
            f"Received: {label} of shape {arr.shape}"
        )


def _check_labels(model: keras.Model, y: np.ndarray, name: str) -> None:
    loss = loss_name(model)
    width = output_width(model)
    if loss is None or width is None or isinstance(y, (Mapping, list, tuple)):
        return
    y = np.asarray(y)
    if y.dtype.kind not in "iufb":
        raise TypeError(
            f"`{name}` must hold numbers for loss {loss!r} (encode the labels first). "
            f"Received: {name} of dtype {y.dtype}"
        )
    if loss in _SPARSE:
        outputs = getattr(model, "outputs", None) or []
        if y.ndim == 2 and y.shape[-1] > 1 and len(outputs) == 1 and len(outputs[0].shape) == 2:
            raise ValueError(
                f"`{name}` must hold one class id per sample for loss {loss!r}. Received: "
                f"{name} of shape {y.shape} (one-hot rows?). Pass the ids, e.g. "
                "`y.argmax(axis=-1)`, or compile with loss='categorical_crossentropy'."
            )
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise ValueError(
                f"`{name}` must hold integer class ids for loss {loss!r}. Received: "
                f"non-integer values such as {y[np.mod(y, 1) != 0].ravel()[0]!r}"
            )
        low, high = y.min(), y.max()
        if low < 0 or high >= width:
            raise ValueError(
                f"`{name}` holds class ids in [{low:g}, {high:g}], but the model has {width} "
                f"outputs, so ids must be in [0, {width - 1}]. Check the number of classes "
                "of the output layer."
            )
        return
    if loss in _CATEGORICAL:
        if y.ndim < 2 or y.shape[-1] != width:
            raise ValueError(
                f"`{name}` must be one-hot with {width} columns (the model's outputs) for loss "
                f"{loss!r}. Received: {name} of shape {y.shape}. For integer class ids use "
                "loss='sparse_categorical_crossentropy'."
            )
        return
    if loss in _BINARY:
        if y.min() < 0 or y.max() > 1:
            raise ValueError(
                f"`{name}` must hold values in [0, 1] for loss {loss!r}. Received: values in "
                f"[{y.min():g}, {y.max():g}]"
            )
    if loss in _BINARY or loss in REGRESSION_LOSSES:
        y_width = 1 if y.ndim == 1 else y.shape[-1]
        if y_width != width:
            raise ValueError(
                f"`{name}` has {y_width} column(s) but the model has {width} output(s). "
                f"Received: {name} of shape {y.shape}"
            )


def _input_structure(model: keras.Model) -> Any:
    """The model's inputs as it was built on them (a dict for dict inputs), or None."""
    try:
        return model.input
    except AttributeError:  # a model never called
        return None


def shape_fits(expected: Sequence[int | None], got: Sequence[int]) -> bool:
    """Whether a sample of shape `got` fits an input declared `expected` (None: any size).

    Args:
        expected: the input's shape without the batch axis, e.g. `(None, 16)`.
        got: one sample's shape.

    Returns:
        True if the ranks agree and every known size matches.

    Example:
        >>> shape_fits((None, 16), (12, 16)), shape_fits((4,), (5,))
        (True, False)
    """
    return len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))


def _check_inputs(model: keras.Model, x: Any, name: str) -> None:
    """Checks that `x` has an array for each model input, of a shape that input takes.

    Arrays are matched to inputs as Keras matches them: a dict by the model's dict keys
    (else the input names; extra keys are ignored), a list in order (a model built on a
    dict takes a dict only). Nested input structures are left to Keras; a last axis of 1
    may be added or dropped, as Keras does.
    """
    inputs = getattr(model, "inputs", None) or []
    structure = _input_structure(model)
    parts = list(structure.values()) if isinstance(structure, dict) else structure
    nested = isinstance(parts, (list, tuple)) and any(
        isinstance(part, (list, tuple, dict)) for part in parts
    )
    if not inputs or x is None or nested:
        return
    if isinstance(x, dict):
        specs = dict(structure) if isinstance(structure, dict) else {t.name: t for t in inputs}
        missing = sorted(set(specs) - set(x))
        if missing:
            raise ValueError(
                f"`{name}` must map each model input's key {sorted(specs)} to an array; "
                f"{missing} have none. Received: keys {sorted(x)}"
            )
        pairs = [(x[key], spec, f"{name}[{key!r}]") for key, spec in specs.items()]
    elif isinstance(x, (list, tuple)):
        if isinstance(structure, dict):
            raise ValueError(
                f"`{name}` must be a dict keyed {sorted(structure)}: the model was built on a "
                f"dict of inputs. Received: a {type(x).__name__} of {len(x)} arrays"
            )
        if len(x) != len(inputs):
            raise ValueError(
                f"`{name}` must hold one array per model input ({len(inputs)}, in the order "
                f"{[t.name for t in inputs]}). Received: {len(x)} arrays"
            )
        pairs = [(array, spec, f"{name}[{i}]") for i, (array, spec) in enumerate(zip(x, inputs))]
    elif len(inputs) == 1:
        pairs = [(x, inputs[0], name)]
    else:
        raise ValueError(
            f"`{name}` must hold one array per model input (a dict or a list): the model "
            f"has {len(inputs)}, {[t.name for t in inputs]}. Received: one {type(x).__name__}"
        )
    for array, spec, where in pairs:
        if not isinstance(array, np.ndarray):
            continue
        if _holds_text(array) and "string" not in str(spec.dtype):
            raise ValueError(
                f"`{where}` holds raw text, but the model takes {spec.dtype} inputs of shape "
                f"{tuple(spec.shape[1:])}: read raw examples with the task's loader or "
                "dataset function (e.g. `text.texts_from_array`, `text.text_dataset(x, y, "
                "preproc)`), which turn them into the model's inputs. Received: "
                f"{where} of {len(array)} strings"
            )
        if array.dtype == object:
            continue
        expected, got = tuple(spec.shape[1:]), array.shape[1:]
        if len(got) == len(expected) + 1 and got[-1] == 1:
            got = got[:-1]
        elif len(expected) == len(got) + 1 and expected[-1] == 1:
            expected = expected[:-1]
        if not shape_fits(expected, got):
            raise ValueError(
                f"`{where}` samples have shape {array.shape[1:]}, but the model expects "
                f"{tuple(spec.shape[1:])}. Received: {where} of shape {array.shape}"
            )


def _holds_text(array: np.ndarray) -> bool:
    """Whether an input array holds strings (NumPy text, or Python / TF byte strings)."""
    if array.dtype.kind in "US":
        return True
    return array.dtype == object and array.size > 0 and isinstance(
        array.flat[0], (str, bytes))


def check_arrays(model: keras.Model, x: Any, y: Any, name: str = "train_data") -> None:
    """Checks in-memory inputs and labels against each other and against the model.

    Args:
        model: the compiled model.
        x: inputs as returned by `ktlite.data.to_arrays` (raw strings allowed).
        y: labels, or `None`.
        name: the argument the data came from, used in messages.

    Raises:
        ValueError: for NaN/inf in float inputs or labels, input shapes the model cannot
            take, raw text for a model that does not take strings, or labels that do not
            fit the model's output and loss.
        TypeError: for non-numeric labels.

    Example:
        >>> check_arrays(model, x, y, name="train_data")
    """
    _check_finite(x, f"{name} x")
    _check_inputs(model, x, f"{name} x")
    if y is not None:
        _check_finite(y, f"{name} y")
        _check_labels(model, y, f"{name} y")


def check_batch(model: keras.Model, batch: Any, name: str = "train_data") -> None:
    """Checks the first batch of a dataset the same way `check_arrays` checks arrays.

    Only the first batch is inspected, so NaN in later batches is caught during training
    (the Learner then stops and restores the last good weights).

    Args:
        model: the compiled model.
        batch: one element of the batched dataset: `(x, y)`, `(x, y, sample_weight)` or `x`.
        name: the argument the data came from, used in messages.

    Example:
        >>> check_batch(model, next(iter(dataset)), name="val_data")
    """
    to_np = lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t)  # noqa: E731
    if isinstance(batch, tuple) and len(batch) in (2, 3):
        x, y = batch[0], batch[1]
    else:
        x, y = batch, None
    x = tf.nest.map_structure(to_np, x)
    y = None if y is None else tf.nest.map_structure(to_np, y)
    check_arrays(model, x, y, name=f"{name} (first batch)")


def check_data(
    model: keras.Model,
    data: Any,
    name: str,
    batches: Callable[[Any], tf.data.Dataset],
) -> Any:
    """Validates labelled data for the model; in-memory data comes back as a `TaskDataset`.

    In-memory data (a `TaskDataset` or an `(x, y)` tuple) is checked whole. A
    `tf.data.Dataset` or `keras.utils.PyDataset` is checked on its first batch, taken from
    `batches(data)` (the learner's own pipeline, so the check sees what the model sees).

    Args:
        model: the compiled model.
        data: the user's data.
        name: the argument name (`"train_data"`, `"val_data"`) for messages.
        batches: builds the batched dataset for `data`.

    Returns:
        A `TaskDataset` for in-memory data, else `data` itself.

    Raises:
        TypeError: for unsupported types or non-numeric labels.
        ValueError: for empty or unlabelled data, x/y length mismatch, NaN/inf, or labels
            that do not fit the model.

    Example:
        >>> train = check_data(model, (x, y), "train_data", lambda d: make_dataset(d, 32)[0])
    """
    if isinstance(data, TaskDataset) and data.self_supervised:
        check_batch(model, next(iter(batches(data).take(1))), name=name)
        return data
    if isinstance(data, TaskDataset):
        if data.y is None:
            raise ValueError(f"`{name}` must be labelled. Received: a TaskDataset with y=None")
        check_arrays(model, data.x if data.transform is None else None, data.y, name=name)
        return data
    if isinstance(data, (tf.data.Dataset, keras.utils.PyDataset)):
        empty = ValueError(f"`{name}` must hold at least one sample. Received: an empty dataset")
        if isinstance(data, tf.data.Dataset) and int(data.cardinality()) == 0:
            raise empty
        try:
            first = next(iter(batches(data).take(1)))
        except StopIteration:
            raise empty from None
        if not (isinstance(first, tuple) and len(first) in (2, 3)):
            raise ValueError(
                f"`{name}` must yield labelled batches `(x, y)` or `(x, y, sample_weight)`. "
                f"Received: elements of type {type(first).__name__}"
            )
        check_batch(model, first, name=name)
        return data
    if isinstance(data, tuple) and len(data) == 2:
        x, y = to_arrays(data[0], name=f"{name} x"), to_arrays(data[1], name=f"{name} y")
        n_x, n_y = num_samples(x, f"{name} x"), num_samples(y, f"{name} y")
        if n_x == 0:
            raise ValueError(f"`{name}` must hold at least one sample. Received: 0 samples")
        if n_x != n_y:
            raise ValueError(
                f"`{name}` x and y must hold the same number of samples. "
                f"Received: {n_x} samples in x and {n_y} in y"
            )
        check_arrays(model, x, y, name=name)
        return TaskDataset(x, y)
    received = (f"a tuple of {len(data)} items (sample weights go in a tf.data.Dataset of "
                "(x, y, sample_weight) batches)" if isinstance(data, tuple)
                else f"{name} of type {type(data).__name__}")
    raise TypeError(
        f"`{name}` must be an (x, y) tuple of arrays or lists, a TaskDataset, a "
        f"tf.data.Dataset or a keras.utils.PyDataset. Received: {received}"
    )
