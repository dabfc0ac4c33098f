"""Judging a trained model on labelled data: reports, confusion matrices and top losses.

The task (multiclass, binary, multilabel, regression) is read from the model's loss and
output width, so the same calls work for any compiled Keras model. Outputs of one score
vector per position (`(samples, positions, vocabulary)`, a translation or language model)
are judged token by token, label 0 being padding as in ktlite's sequence tasks.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from ktlite.arguments import check_bool, check_choice
from ktlite.labels import check_class_names
from ktlite.validation import (
    REGRESSION_LOSSES,
    loss_from_logits,
    loss_name,
    output_width,
)

__all__ = [
    "infer_task",
    "predicted_labels",
    "true_labels",
    "report",
    "per_sample_loss",
    "top_losses",
    "describe_example",
    "top_loss_lines",
]

_TASKS = ("multiclass", "binary", "multilabel", "regression", "sequence")


def infer_task(model: keras.Model, y_true: np.ndarray | None = None) -> str:
    """Names the task a model was compiled for.

    Args:
        model: a compiled single-output model.
        y_true: labels, used only when the loss does not tell.

    Returns:
        `"multiclass"`, `"binary"`, `"multilabel"` or `"regression"`.

    Example:
        >>> infer_task(model)
        'multiclass'
    """
    name = loss_name(model) or ""
    width = output_width(model)
    if "categorical" in name:
        return "multiclass"
    if name.startswith("binary"):
        return "binary" if width in (None, 1) else "multilabel"
    if name in REGRESSION_LOSSES:
        return "regression"
    if y_true is not None and width and width > 1:
        return _task_from_labels(np.asarray(y_true), width)
    return "regression"


def _task_from_labels(y: np.ndarray, width: int) -> str:
    """The task a model of `width` outputs, compiled with a loss ktlite does not know (the
    user's own, `"kl_divergence"`), was given labels for: int class ids, whole floats in
    ``[0, width)`` or 0/1 rows with one 1 each are classes, other 0/1 rows of `width`
    columns labels, anything else regression targets."""
    if y.dtype.kind not in "iufb" or y.size == 0:
        return "regression"
    if y.ndim == 2 and y.shape[1] == 1:  # class ids as a column, e.g. df[["label"]]
        y = y[:, 0]
    values = y.astype(float)
    if not np.isfinite(values).all():
        return "regression"
    whole = bool(np.all(values == np.round(values)))
    if y.ndim == 1 and (y.dtype.kind in "iu"
                        or (whole and values.min() >= 0 and values.max() < width)):
        return "multiclass"
    if y.ndim == 2 and y.shape[1] == width and np.isin(values, (0.0, 1.0)).all():
        return "multiclass" if np.all(values.sum(axis=1) == 1) else "multilabel"
    return "regression"


def _task_of(model: keras.Model, y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """`infer_task`, or `"sequence"` for per-position scores against per-position ids."""
    if np.ndim(y_pred) == 3 and np.ndim(y_true) == 2:
        return "sequence"
    return infer_task(model, y_true)


def _values(y: np.ndarray) -> np.ndarray:
    """Regression values as floats: `(n,)` for one target (labels `(n,)` and outputs
    `(n, 1)` alike), `(n, k)` for several."""
    values = y.astype(float).reshape(len(y), -1)
    return values[:, 0] if values.shape[1] == 1 else values


def true_labels(task: str, y_true: np.ndarray) -> np.ndarray:
    """Class ids (multiclass), 0/1 (binary), a 0/1 matrix (multilabel) or floats.

    Args:
        task: `"multiclass"`, `"binary"`, `"multilabel"` or anything else for regression
            (as `infer_task` names it).
        y_true: labels as fed to the model: class ids or one-hot rows (multiclass), 0/1 or
            probabilities (binary, multilabel; thresholded at 0.5), or target values.

    Returns:
        `(n,)` int class ids or 0/1, an `(n, k)` 0/1 matrix (multilabel), or float values:
        `(n,)` for one regression target, `(n, k)` for several.

    Example:
        >>> true_labels("multiclass", np.array([[0, 1, 0], [1, 0, 0]]))
        array([1, 0])
    """
    y = np.asarray(y_true)
    if task == "multiclass":
        if y.ndim >= 2 and y.shape[-1] > 1:
            return np.argmax(y, axis=-1)
        return y.reshape(len(y)).astype(int)
    if task == "binary":
        return (y.reshape(len(y)) >= 0.5).astype(int)
    if task == "multilabel":
        return (y >= 0.5).astype(int)
    return _values(y)


def predicted_labels(task: str, y_pred: np.ndarray, from_logits: bool = False) -> np.ndarray:
    """Turns raw model outputs into labels of the same form as `true_labels`.

    Args:
        task: `"multiclass"`, `"binary"`, `"multilabel"` or anything else for regression
            (as `infer_task` names it).
        y_pred: raw model outputs, one row per sample.
        from_logits: whether the outputs are logits: binary and multilabel outputs are then
            thresholded at 0 instead of 0.5. Defaults to False.

    Returns:
        The argmax class ids (multiclass), 0/1 (binary), a 0/1 matrix (multilabel) or
        float values (regression).

    Raises:
        TypeError: if `from_logits` is not a bool.

    Example:
        >>> predicted_labels("binary", np.array([[0.2], [0.9]]))
        array([0, 1])
    """
    from_logits = check_bool(from_logits, "from_logits")
    p = np.asarray(y_pred)
    threshold = 0.0 if from_logits else 0.5
    if task == "multiclass":
        return np.argmax(p, axis=-1)
    if task == "binary":
        return (p.reshape(len(p)) > threshold).astype(int)
    if task == "multilabel":
        return (p > threshold).astype(int)
    return _values(p)


def _check_single_output(y_pred: Any) -> None:
    """Refuses the outputs of a multi-output model (a dict or list of arrays)."""
    if isinstance(y_pred, (dict, list, tuple)):
        names = list(y_pred) if isinstance(y_pred, dict) else len(y_pred)
        raise ValueError(
            "Reports and per-sample losses judge a single-output model; judge each output "
            f"of a multi-output model with `model.evaluate`. Received: outputs {names}"
        )


def _same_rank(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and outputs whose ranks differ by a last axis of 1, paired as Keras pairs
    them when training: a rank-1 side gains the axis, otherwise the other side loses it.
    (A bare loss function would broadcast `(n,)` against `(n, 1)` to `(n, n)`.)"""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_pred.ndim == 1:
            return y_true, y_pred[:, None]
        return y_true[..., 0], y_pred
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        if y_true.ndim == 1:
            return y_true[:, None], y_pred
        return y_true, y_pred[..., 0]
    return y_true, y_pred


def report(
    model: keras.Model,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: list[str] | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[str, Any]:
    """Builds a text report and the matching result for predictions against labels.

    Args:
        model: the compiled model (its loss names the task).
        y_true: labels as fed to the model.
        y_pred: raw model outputs.
        class_names: names for the classes (or labels, for multilabel), in id order.
        sample_weight: one weight per sample (per position, for per-position outputs, may
            be given too), as the data gave it to the loss; None weighs all alike. The
            scores, supports and confusion matrices are then weighted sums.

    Returns:
        `(text, result)`: for classification the scikit-learn classification report and the
        confusion matrix (`(n_labels, 2, 2)` per-label matrices for multilabel); for
        regression a short text and `{"mae": ..., "mse": ...}`; for per-position outputs
        `{"token_accuracy": ...}` over the positions whose label is not 0. A class no
        sample is predicted as (or none has) scores 0 where its precision (or recall) has
        nothing to divide by, in the per-class rows and the micro, macro and weighted
        averages. The multilabel report's "samples avg" row differs in one way: a sample
        with no true labels and no predicted ones (a right "no labels") scores 1 for
        precision, recall and F1, not 0, so a model that abstains rightly is not reported
        as failing there.

    Raises:
        TypeError: if `class_names` is not a list of strings.
        ValueError: if `class_names` does not have one name per class, the model has
            several outputs, or `sample_weight` does not hold one weight per sample.

    Example:
        >>> text, cm = report(model, y_val, model.predict(x_val))
    """
    from sklearn import metrics

    class_names = check_class_names(class_names)
    _check_single_output(y_pred)
    task = _task_of(model, y_true, y_pred)
    if task == "sequence":
        real = np.asarray(y_true) != 0
        weight = real * _position_weights(sample_weight, real.shape)
        right = (np.argmax(y_pred, axis=-1) == np.asarray(y_true)) * weight
        accuracy = float(right.sum() / max(1e-12, weight.sum()))
        return (f"token accuracy {accuracy:.4f} over {int(real.sum()):,} tokens (label 0 is "
                "padding)", {"token_accuracy": accuracy})
    weights = None if sample_weight is None else _sample_weights(sample_weight, len(y_true))
    truth = true_labels(task, y_true)
    pred = predicted_labels(task, y_pred, loss_from_logits(model))
    if task == "regression":
        truth, pred = truth.reshape(len(truth), -1), pred.reshape(len(pred), -1)
        mae = float(metrics.mean_absolute_error(truth, pred, sample_weight=weights))
        mse = float(metrics.mean_squared_error(truth, pred, sample_weight=weights))
        return f"MAE: {mae:.6g}\nMSE: {mse:.6g}", {"mae": mae, "mse": mse}
    if task == "multilabel":
        n = truth.shape[-1]
    elif task == "binary":
        n = 2
    else:
        n = max(output_width(model) or 0, int(truth.max()) + 1, int(pred.max()) + 1)
    if class_names is not None and len(class_names) != n:
        raise ValueError(
            f"`class_names` must have one name per class ({n}). "
            f"Received: {len(class_names)} names {list(class_names)!r}"
        )
    labels = list(range(n))
    text = metrics.classification_report(
        truth, pred, labels=labels, target_names=class_names, zero_division=0,
        sample_weight=weights,
    )
    if task == "multilabel":
        text = _with_samples_average(text, truth, pred, weights)
        matrix = metrics.multilabel_confusion_matrix(truth, pred, labels=labels,
                                                     sample_weight=weights)
    else:
        matrix = metrics.confusion_matrix(truth, pred, labels=labels, sample_weight=weights)
    return text, matrix


def _sample_weights(sample_weight: Any, n: int) -> np.ndarray:
    """One float weight per sample (a weight per position is averaged over the sample's
    positions, as a per-position loss is)."""
    weights = np.asarray(sample_weight, dtype=float)
    if weights.ndim == 0 or len(weights) != n:
        raise ValueError(
            f"`sample_weight` must hold one weight per sample ({n}). Received: shape "
            f"{weights.shape}"
        )
    weights = weights.reshape(n, -1).mean(axis=1)
    if not weights.any():
        raise ValueError(
            "`sample_weight` must give some sample a weight above 0: there is nothing to "
            f"judge. Received: {n} weights of 0"
        )
    return weights


def _position_weights(sample_weight: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Weights of shape `shape` (samples, positions): a sample's weight for each of its
    positions, or the weights given per position; ones when None."""
    if sample_weight is None:
        return np.ones(shape)
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape == shape:
        return weights
    return np.broadcast_to(_sample_weights(weights, shape[0])[:, None], shape)


def _with_samples_average(text: str, truth: np.ndarray, pred: np.ndarray,
                          weights: np.ndarray | None = None) -> str:
    """The report with its "samples avg" precision, recall and F1 replaced by means that
    score a sample with no true and no predicted labels as 1 (scikit-learn's
    `zero_division=0` scores it 0, like a wrong one). Other samples score as scikit-learn
    scores them: 0 where precision or recall has nothing to divide by."""
    hits = (truth * pred).sum(axis=1).astype(float)
    n_true, n_pred = truth.sum(axis=1), pred.sum(axis=1)
    empty = (n_true == 0) & (n_pred == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, hits / n_pred, empty)
        recall = np.where(n_true > 0, hits / n_true, empty)
        f1 = np.where(empty, 1.0, 2 * hits / (n_true + n_pred))
    values = iter([np.average(v, weights=weights) for v in (precision, recall, f1)])

    def same_field(number: re.Match) -> str:  # the width and digits the row had
        digits = len(number[2].partition(".")[2])
        return f"{next(values):.{digits}f}".rjust(len(number[0]))

    lines = text.split("\n")
    for i in reversed(range(len(lines))):  # the last row: a class may be named so too
        row = re.fullmatch(r"(\s*samples avg)((?:\s+\S+){3})(\s+\S+\s*)", lines[i])
        if row:
            lines[i] = row[1] + re.sub(r"(\s+)(\S+)", same_field, row[2]) + row[3]
            break
    return "\n".join(lines)


def per_sample_loss(model: keras.Model, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Evaluates the model's own loss for each sample separately.

    Args:
        model: the compiled single-output model.
        y_true: labels, one per sample.
        y_pred: raw model outputs, one per sample.

    Returns:
        A float array with one loss per sample (averaged over any extra axes). A loss
        with a `per_example(y_true, y_pred)` method gives its values (a loss whose `call`
        scales a sample's value by the rest of the batch, such as one averaged over a
        batch's tokens, gives each sample its own there).

    Raises:
        ValueError: if the model has several outputs or losses, or a loss function that
            returns one value for the whole batch.

    Example:
        >>> per_sample_loss(model, y_val, model.predict(x_val)).shape
        (100,)
    """
    _check_single_output(y_pred)
    loss = model.loss
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if callable(getattr(loss, "per_example", None)):
        fn = loss.per_example
    elif isinstance(loss, keras.losses.Loss):
        fn = loss.call
    elif callable(loss):
        fn = loss
    else:
        raise ValueError(
            "Per-sample losses need a single-output model with one loss. "
            f"Received: model.loss={model.loss!r}"
        )
    y_true, y_pred = _same_rank(np.asarray(y_true), np.asarray(y_pred))
    values = []
    for start in range(0, len(y_true), 1024):
        yt = keras.ops.convert_to_tensor(y_true[start : start + 1024])
        yp = keras.ops.convert_to_tensor(y_pred[start : start + 1024])
        out = keras.ops.convert_to_numpy(fn(yt, yp))
        if np.ndim(out) == 0 or len(out) != len(y_true[start : start + 1024]):
            raise ValueError(
                "Per-example losses need a loss that returns one value per example; "
                f"model.loss ({getattr(loss, '__name__', type(loss).__name__)}) returned "
                f"shape {np.shape(out)} for {len(yt)} examples (a mean over the batch?). "
                "Compile with a loss that does not reduce over the batch: a function "
                "returning one value per example, or a `keras.losses.Loss` whose `call` does."
            )
        values.append(out.reshape(len(out), -1).mean(axis=1))
    return np.concatenate(values).astype(float)


def top_losses(
    model: keras.Model, y_true: np.ndarray, y_pred: np.ndarray, n: int,
    sample_weight: np.ndarray | None = None,
) -> list[tuple[int, float, Any, Any]]:
    """Returns the `n` samples with the highest loss.

    Args:
        model: the compiled model.
        y_true: labels.
        y_pred: raw model outputs, in the same order.
        n: how many samples.
        sample_weight: one weight per sample, as the data gave it to the loss: each loss
            is weighted (a sample of weight 0 loses nothing). None weighs all alike.

    Returns:
        `(index, loss, true, pred)` tuples, highest loss first; `true` and `pred` are
        class ids, 0/1 lists (multilabel), values (regression) or, for per-position
        outputs, the token ids of the positions whose label is not 0, as Python objects.

    Raises:
        ValueError: as `per_sample_loss`, or if `sample_weight` does not hold one weight
            per sample.

    Example:
        >>> top_losses(model, y_val, model.predict(x_val), 3)[0]
        (17, 4.2, 1, 0)
    """
    losses = per_sample_loss(model, y_true, y_pred)
    if sample_weight is not None:
        losses = losses * _sample_weights(sample_weight, len(losses))
    order = np.argsort(-losses, kind="stable")[:n]
    task = _task_of(model, y_true, y_pred)
    if task == "sequence":
        truth, preds = np.asarray(y_true), np.argmax(y_pred, axis=-1)
        return [(int(i), float(losses[i]), truth[i][truth[i] != 0].tolist(),
                 preds[i][truth[i] != 0].tolist()) for i in order]
    truth = true_labels(task, y_true)
    preds = predicted_labels(task, y_pred, loss_from_logits(model))
    return [
        (int(i), float(losses[i]), np.asarray(truth[i]).tolist(), np.asarray(preds[i]).tolist())
        for i in order
    ]


def describe_example(raw: Any, index: int, preproc: Any = None) -> str:
    """Text for one raw example: `preproc.example_text(example)` where the preprocessor has
    it (tables), a string, token ids turned back by `preproc.undo`, or the shape of an
    image (an array of two or more axes), not its pixels.

    Args:
        raw: the raw inputs: an array of examples, a dict of per-column arrays (the
            example is the dict of each column's item) or a list / tuple of per-input
            arrays (the example is the list of each input's item).
        index: the position of the example in `raw`.
        preproc: optional object with `example_text(example)` and/or `undo(ids)`.

    Returns:
        One line describing the example (bytes are decoded as UTF-8).

    Example:
        >>> describe_example(np.array(["a great film", "a dull plot"]), 1)
        'a dull plot'
    """
    if isinstance(raw, dict):
        example: Any = {k: v[index] for k, v in raw.items()}
    elif isinstance(raw, (list, tuple)):
        example = [v[index] for v in raw]
    else:
        example = raw[index]
    example_text = getattr(preproc, "example_text", None)
    if callable(example_text):
        return str(example_text(example))
    undo = getattr(preproc, "undo", None)
    if undo is not None and isinstance(example, np.ndarray) and example.dtype.kind in "iu":
        return str(undo(example[None, :])[0])
    if isinstance(example, bytes):
        return example.decode("utf-8", errors="replace")
    if isinstance(example, np.ndarray) and example.ndim >= 2:
        return f"<image {'x'.join(map(str, example.shape))} {example.dtype}>"
    return str(example)


def top_loss_lines(
    rows: list[tuple], raw: Any = None, preproc: Any = None, task: str | None = None
) -> list[str]:
    """Formats `top_losses` rows (with raw examples when given) for printing.

    Args:
        rows: output of `top_losses`.
        raw: the raw inputs the indices refer to, or `None`.
        preproc: optional object with `class_names` (class ids and multilabel 0/1 rows are
            named), `undo(ids)` (token ids, as inputs or as a sequence's labels, become
            text) and/or `example_text(example)` (how a raw example reads).
        task: the model's task as `infer_task` names it (or `"sequence"`), or `None`
            (default) to tell from the rows. With `"multilabel"` each true / predicted
            list is a 0/1 row: it shows the class names that are on (`['a', 'c']`) where
            `preproc` has one name per label, otherwise the positions that are on
            (`[0, 2]`), and never goes through `undo`. With another task a list of ints is
            token ids, for `undo`. With `None` a 0/1 list as long as `class_names` is read
            as a multilabel row and any other list of ints as token ids.

    Returns:
        The lines to print.

    Raises:
        TypeError: if `task` is neither a str nor None.
        ValueError: if `task` is a str that names no task.

    Example:
        >>> print("\\n".join(top_loss_lines(rows, texts, task="multilabel")))
    """
    check_choice(task, "task", _TASKS, allow_none=True)
    names = getattr(preproc, "class_names", None)
    undo = getattr(preproc, "undo", None)

    def name_of(value: Any) -> Any:
        if names and isinstance(value, int) and 0 <= value < len(names):
            return names[value]
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            return value
        one_per_name = bool(names) and len(value) == len(names)
        if task == "multilabel" or (task is None and one_per_name and set(value) <= {0, 1}):
            on = [i for i, v in enumerate(value) if v]
            return [names[i] for i in on] if one_per_name else on
        if undo is not None and value:  # a sequence's token ids
            return repr(undo(np.asarray([value]))[0])
        return value

    lines = []
    for index, loss, true, pred in rows:
        lines.append("-" * 40)
        lines.append(
            f"id: {index} | loss: {loss:.4f} | true: {name_of(true)} | pred: {name_of(pred)}"
        )
        if raw is not None:
            lines.append(describe_example(raw, index, preproc))
    return lines
