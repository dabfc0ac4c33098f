"""Knowledge distillation: train a small student on a teacher's softened outputs.

For a batch with true class `y`, teacher probabilities `q` and student probabilities `p`
(both softmax outputs over `k` classes), the loss is

    alpha * T^2 * KL(softmax(log q / T) || softmax(log p / T)) + (1 - alpha) * CE(y, p)

`softmax(log p / T)` is the distribution the model would give with its logits divided by
`T`, so probabilities are enough (no access to logits needed). The `T^2` factor keeps the
soft term's gradients on the same scale as the hard term's when `T` changes. `alpha=1`
trains on the teacher alone, `alpha=0` on the labels alone.

How the teacher's outputs reach the loss: the soft targets travel in the training labels.
Each training label becomes the row `[q_1, ..., q_k, y]` (`k + 1` floats), and the loss
recognises that width; validation data keeps its plain labels, so validation loss and
accuracy are the ordinary ones and every Learner feature (lr_find, fit_onecycle,
validate, top_losses, predict, save_model) works on the student unchanged.

- `soft_targets="precompute"` (default for in-memory data: arrays, lists, `TaskDataset`)
  runs the teacher once over the training set (`n * k` floats kept in memory, e.g. 94k
  texts x 45 classes = 17 MB) so each epoch costs only the student's forward/backward.
- `soft_targets="on_the_fly"` (the only choice for a `tf.data.Dataset` or a `PyDataset`)
  calls the teacher inside the input pipeline on every batch of every epoch: no memory, but
  a teacher forward pass per step.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np

from ktlite import compat
from ktlite.arguments import (
    check_bool,
    check_choice,
    check_float,
    check_positive_float,
    check_positive_int,
    check_seed,
)

__all__ = ["DistillationLoss", "DistillationAccuracy", "distill", "SOFT_TARGET_MODES"]

SOFT_TARGET_MODES: tuple[str, ...] = ("precompute", "on_the_fly")
# Keras' loss reductions (`keras.losses.Loss`); None is taken too, as "none".
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none")
_EPSILON = 1e-7


def _split_targets(y_true: Any, num_classes: int) -> tuple[Any, Any]:
    """`(teacher_probs or None, class_ids)` from packed or plain labels (static shapes)."""
    ops = keras.ops
    width = y_true.shape[-1] if len(y_true.shape) > 1 else 1
    if width == num_classes + 1:
        return y_true[..., :num_classes], ops.cast(y_true[..., num_classes], "int32")
    if width == num_classes and num_classes > 1:  # one-hot labels
        return None, ops.cast(ops.argmax(y_true, axis=-1), "int32")
    return None, ops.cast(ops.reshape(y_true, (-1,)), "int32")


# Above this, float32 rounding in the softened outputs, scaled by T**2, outweighs the
# signal (T=1e4 read 5.2 for a loss of 5.9, T=1e5 went negative); Hinton et al. used T <= 20.
MAX_TEMPERATURE = 100.0


def _check_temperature(temperature: Any) -> float:
    """`temperature` as a float in `(0, MAX_TEMPERATURE]`, else the error that names it."""
    temperature = check_positive_float(temperature, "temperature")
    if temperature > MAX_TEMPERATURE:
        raise ValueError(
            f"`temperature` must be at most {MAX_TEMPERATURE:g}: beyond it float32 rounding "
            "in the softened outputs, scaled by T**2, outweighs what the teacher teaches. "
            f"Received: temperature={temperature!r}"
        )
    return temperature


@keras.saving.register_keras_serializable(package="ktlite")
class DistillationLoss(keras.losses.Loss):
    """Soft teacher term plus hard label term (see the module notes for the formula).

    Labels of width `k + 1` (teacher probabilities then the class id, as built by
    `distill`) give the full loss; plain labels (class ids or one-hot) give the
    cross-entropy alone, so validation data needs no teacher.

    Args:
        temperature: softening temperature `T` in `(0, 100]`. Defaults to 2.0.
        alpha: weight of the teacher term, in [0, 1]; the label term gets `1 - alpha`.
            Defaults to 0.5.
        from_logits: whether the student outputs logits instead of probabilities.
            Defaults to `False` (softmax heads, as ktlite's text models).
        name: loss name. Defaults to `"distillation_loss"`.
        reduction: Keras reduction: `"sum_over_batch_size"` (default), `"sum"`,
            `"mean"`, `"mean_with_sample_weight"`, `"none"` or None.

    Raises:
        TypeError: if `temperature` or `alpha` is not a number, `from_logits` is not a
            bool, or `reduction` is neither a str nor None.
        ValueError: if `temperature` is not in `(0, 100]`, `alpha` is outside [0, 1],
            or `reduction` is not one of Keras' reductions.

    Example:
        >>> loss = DistillationLoss(temperature=2.0, alpha=0.5)
        >>> student.compile(optimizer="adam", loss=loss)
    """

    def __init__(
        self,
        temperature: float = 2.0,
        alpha: float = 0.5,
        from_logits: bool = False,
        name: str = "distillation_loss",
        reduction: str = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        check_choice(reduction, "reduction", _REDUCTIONS, allow_none=True)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)
        self.alpha = check_float(alpha, "alpha", 0.0, 1.0)
        self.from_logits = check_bool(from_logits, "from_logits")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        k = y_pred.shape[-1]
        teacher, labels = _split_targets(y_true, k)
        if self.from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            log_p = ops.log(ops.clip(y_pred, _EPSILON, 1.0))
        hard = -ops.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
        if teacher is None:
            return hard
        t = self.temperature
        log_q_t = ops.log_softmax(ops.log(ops.clip(teacher, _EPSILON, 1.0)) / t, axis=-1)
        log_p_t = ops.log_softmax(log_p / t, axis=-1)
        kl = ops.sum(ops.exp(log_q_t) * (log_q_t - log_p_t), axis=-1)
        return self.alpha * (t**2) * kl + (1.0 - self.alpha) * hard

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(temperature=self.temperature, alpha=self.alpha, from_logits=self.from_logits)
        return config


def distillation_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Accuracy of `y_pred` against the class id in packed or plain labels."""
    _, labels = _split_targets(y_true, y_pred.shape[-1])
    predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32")
    return keras.ops.cast(keras.ops.equal(predicted, labels), "float32")


@keras.saving.register_keras_serializable(package="ktlite")
class DistillationAccuracy(keras.metrics.MeanMetricWrapper):
    """Classification accuracy that reads the class id from packed distillation labels.

    Args:
        name: metric name. Defaults to `"accuracy"`, so logs read `accuracy` /
            `val_accuracy` as for any classifier.
        dtype: metric dtype.

    Example:
        >>> student.compile(optimizer="adam", loss=DistillationLoss(),
        ...                 metrics=[DistillationAccuracy()])
    """

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(fn=distillation_accuracy, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def _unwrap_model(obj: Any, name: str) -> keras.Model:
    model = getattr(obj, "model", obj) if not isinstance(obj, keras.Model) else obj
    if not isinstance(model, keras.Model):
        raise TypeError(f"`{name}` must be a keras.Model or a predictor. Received: {name}={obj!r}")
    return model


def _num_classes(model: keras.Model, name: str) -> int:
    outputs = getattr(model, "outputs", None)
    if (
        not outputs
        or len(outputs) != 1
        or outputs[0].shape[-1] is None
        or len(outputs[0].shape) != 2
    ):
        raise ValueError(
            f"`{name}` must have one output of shape (batch, num_classes). "
            f"Received: {name} with outputs {[tuple(o.shape) for o in outputs or []]}"
        )
    return int(outputs[0].shape[-1])


def _class_ids(y: Any, k: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == k and k > 1:
        return y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            "`train_data` labels must be class ids or one-hot rows for distillation "
            f"(multiclass only). Received: labels of shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(
            f"`train_data` labels must be class ids in [0, {k}) (the teacher's {k} classes). "
            f"Received: labels of dtype {y.dtype}"
        )
    values = y.astype("float64")
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= k)
    if bad.any():
        raise ValueError(
            f"`train_data` labels must be class ids in [0, {k}) (the teacher's {k} classes). "
            f"Received: the label {y[bad.argmax()]!r} at index {int(bad.argmax())}"
        )
    return y


def _check_probs(probs: Any, name: str) -> None:
    """Refuses a model whose outputs are not class probabilities (e.g. logits)."""
    probs = np.asarray(keras.ops.convert_to_numpy(probs), dtype="float64")
    sums = probs.sum(axis=1)
    if probs.min() < -1e-6 or not np.allclose(sums, 1.0, atol=1e-3):
        raise ValueError(
            f"`{name}` must output class probabilities (a softmax head): distill supports "
            "multiclass classifiers only (not multilabel or regression models) and reads "
            f"both models' outputs as probabilities; a {name} that outputs logits needs a "
            "softmax on top, e.g. `keras.Sequential([model, keras.layers.Softmax()])`. "
            f"Received: {name} outputs whose rows sum to [{sums.min():.3g}, {sums.max():.3g}]"
        )


def _pack(probs: Any, ids: Any) -> Any:
    ops = keras.ops
    return ops.concatenate(
        [ops.cast(probs, "float32"), ops.cast(ops.reshape(ids, (-1, 1)), "float32")], axis=-1
    )


def _precompute(teacher: keras.Model, train_data: Any, k: int, batch_size: int) -> Any:
    from ktlite.data import TaskDataset, make_dataset

    x, y, transform, task = train_data.x, train_data.y, train_data.transform, train_data.task
    augment = train_data.augment
    if y is None:
        raise ValueError("`train_data` must be labelled. Received: train_data with y=None")
    ids = _class_ids(y, k)
    dataset, _ = make_dataset(TaskDataset(x, None, transform=transform), batch_size)
    probs = teacher.predict(dataset, verbose=0)
    if len(probs) != len(ids):
        raise ValueError(
            f"`teacher` gave {len(probs)} predictions for {len(ids)} training samples. "
            "Received: train_data whose inputs and labels differ in length"
        )
    _check_probs(probs, "teacher")
    packed = np.concatenate([probs.astype("float32"), ids.astype("float32")[:, None]], axis=1)
    # The teacher read plain inputs; the student still trains on augmented ones, in
    # length-bucketed batches, and reads raw examples (predict, validate) as the task does.
    return TaskDataset(x, packed, transform=transform, task=task, augment=augment,
                       lengths=train_data.lengths, reader=train_data.reader,
                       preproc=train_data.preproc, layer_groups=train_data.layer_groups)


def _on_the_fly(teacher: keras.Model, train_data: Any, batch_size: int, seed: int | None) -> Any:
    import tensorflow as tf

    from ktlite.data import make_dataset

    dataset, _ = make_dataset(train_data, batch_size, shuffle=True, seed=seed, augment=True)
    k = int(teacher.outputs[0].shape[-1])
    first_inputs = next(iter(dataset.take(1)))[0]
    _check_probs(teacher(first_inputs, training=False), "teacher")

    def add_soft_targets(x: Any, y: Any, *rest: Any) -> Any:
        y = tf.convert_to_tensor(y)
        if y.shape.rank == 2 and y.shape[-1] == k and k > 1:
            ids = tf.argmax(y, axis=-1)
        else:
            ids = tf.reshape(y, [-1])
        in_range = tf.reduce_all((ids >= 0) & (ids < k) & (tf.round(ids) == ids))
        check = tf.debugging.Assert(
            in_range, [f"`train_data` labels must be class ids in [0, {k}); found", ids]
        )
        with tf.control_dependencies([check]):
            ids = tf.identity(ids)
        return (x, _pack(teacher(x, training=False), ids), *rest)

    return dataset.map(add_soft_targets, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def distill(
    teacher: Any,
    student: keras.Model,
    train_data: Any,
    val_data: Any = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    batch_size: int = 32,
    soft_targets: str | None = None,
    optimizer: Any = None,
    seed: int | None = None,
    **learner_kwargs: Any,
) -> Any:
    """Returns a ktlite Learner that trains `student` to imitate `teacher` and fit the labels.

    The student is (re)compiled with `DistillationLoss(temperature, alpha)` and a
    `DistillationAccuracy` metric named `accuracy`, keeping its optimizer if it was
    compiled. Both data sets pass `get_learner`'s checks before the teacher runs on
    them. The teacher is never trained. Then train with any Learner method, e.g.
    `learner.fit_onecycle(1e-3, 5)`; `learner.model` is the student.

    Args:
        teacher: the trained model (or a predictor, whose `.model` is used). It must take
            the same inputs as the student and end in a softmax over the same classes.
        student: the (smaller) `keras.Model` to train, same inputs and output width.
        train_data: training data with class-id or one-hot labels, in any form
            `ktlite.get_learner` accepts.
        val_data: optional validation data with plain labels, in any form `get_learner`
            accepts (raw examples too, read like the training data's).
        temperature: softening temperature `T` in `(0, 100]`. Defaults to 2.0.
        alpha: weight of the teacher term in [0, 1] (labels get `1 - alpha`). Default 0.5.
        batch_size: training batch size (also used to run the teacher). Defaults to 32.
        soft_targets: `"precompute"` (teacher run once) or `"on_the_fly"` (teacher run in
            the input pipeline each step). `None` (default) precomputes for in-memory data
            and goes on the fly for a `tf.data.Dataset` / `PyDataset`. See module notes.
        optimizer: optimizer for the student; `None` keeps the student's own (if
            compiled) or uses Adam(1e-3).
        seed: shuffling seed for `"on_the_fly"` and for the Learner.
        **learner_kwargs: passed to `ktlite.get_learner` (e.g. `eval_batch_size`).

    Returns:
        A `ktlite.learner.Learner` whose `model` is the student.

    Raises:
        TypeError: if `teacher`/`student` are not models, `temperature`, `alpha`,
            `batch_size`, `seed` or `soft_targets` has the wrong type (e.g.
            `batch_size="32"` or `True`, `soft_targets=1`), a keyword argument is one
            `get_learner` does not take (e.g. `epochs=3`), named before anything runs, or
            `train_data` / `val_data` of a kind `get_learner` refuses (e.g.
            `val_data="oops"`, labels that are not numbers), before the teacher runs.
        ValueError: for a `temperature` outside `(0, 100]`, `alpha` outside [0, 1],
            `batch_size < 1`, an `optimizer` Keras cannot make, a
            negative `seed`, unknown `soft_targets`, teacher and student output shapes
            that differ, a teacher or student without a softmax output, `"precompute"`
            asked for a streamed dataset, data `get_learner` refuses (e.g. raw texts for
            a model that takes token ids), or a label that is not a class id in
            `[0, num_classes)` (streamed data stops at fit time with
            `tf.errors.InvalidArgumentError` on the first such batch).

    Example:
        >>> learner = ktlite.compress.distill(teacher, student, trn, val, temperature=2.0)
        >>> learner.fit_onecycle(1e-3, 5)
        >>> learner.validate()
    """
    from ktlite.data import TaskDataset, make_dataset
    from ktlite.learner import get_learner

    temperature = _check_temperature(temperature)
    alpha = check_float(alpha, "alpha", 0.0, 1.0)
    batch_size = check_positive_int(batch_size, "batch_size")
    if optimizer is not None:
        try:
            optimizer = keras.optimizers.get(optimizer)
        except ValueError:
            raise ValueError(
                "`optimizer` must be a Keras optimizer, its name, or None (the student's own). "
                f"Received: optimizer={optimizer!r:.80}"
            ) from None
    seed = check_seed(seed)
    check_choice(soft_targets, "soft_targets", SOFT_TARGET_MODES, allow_none=True)
    # Before the student is recompiled and the teacher run: a misspelt option is refused
    # while the user's model is as they left it.
    taken = set(inspect.signature(get_learner).parameters) - {
        "model", "train_data", "val_data", "batch_size", "seed"}
    unknown = sorted(set(learner_kwargs) - taken)
    if unknown:
        raise TypeError(
            f"`distill` passes its other keyword arguments to `ktlite.get_learner`, which "
            f"does not take {unknown}. Accepted: {sorted(taken)}"
        )
    teacher_model = _unwrap_model(teacher, "teacher")
    if not isinstance(student, keras.Model):
        raise TypeError(f"`student` must be a keras.Model. Received: student={student!r}")
    if teacher_model is student:
        raise ValueError(
            "`teacher` and `student` must be different models. Received: the same model twice"
        )
    k = _num_classes(teacher_model, "teacher")
    k_student = _num_classes(student, "student")
    if k != k_student:
        raise ValueError(
            "`teacher` and `student` must have the same output shape. Received: teacher "
            f"output (None, {k}) and student output (None, {k_student})"
        )
    in_memory = isinstance(train_data, TaskDataset) or (
        isinstance(train_data, tuple) and len(train_data) == 2
    )
    if soft_targets is None:
        soft_targets = "precompute" if in_memory else "on_the_fly"
    if soft_targets == "precompute" and not in_memory:
        raise ValueError(
            "`soft_targets='precompute'` needs in-memory train_data ((x, y) arrays or a "
            "TaskDataset); use 'on_the_fly' for a streamed dataset. "
            f"Received: train_data of type {type(train_data).__name__}"
        )

    if optimizer is None:
        optimizer = getattr(student, "optimizer", None) or keras.optimizers.Adam(1e-3)
    own = compat.compile_arguments(student)
    student.compile(
        optimizer=optimizer,
        loss=DistillationLoss(temperature=temperature, alpha=alpha),
        metrics=[DistillationAccuracy()],
        steps_per_execution=getattr(student, "steps_per_execution", 1),  # the user's
    )
    try:
        # The learner's own checks of both data sets (raw texts for a model that takes
        # token ids, a `val_data` of the wrong type) run before the teacher does.
        learner = get_learner(
            student,
            train_data=train_data,
            val_data=val_data,
            batch_size=batch_size,
            seed=seed,
            **learner_kwargs,
        )
        train_data = learner.train_data  # in-memory data now a TaskDataset
        # Both models on one batch, the teacher first: before its pass over every example.
        batch = next(iter(make_dataset(train_data, batch_size)[0].take(1)))
        inputs = batch[0] if isinstance(batch, tuple) else batch
        _check_probs(teacher_model(inputs, training=False), "teacher")
        _check_probs(student(inputs, training=False), "student")
        if soft_targets == "precompute":
            learner.train_data = _precompute(teacher_model, train_data, k, batch_size)
        else:
            learner.train_data = _on_the_fly(teacher_model, train_data, batch_size, seed)
    except (TypeError, ValueError):
        if own:  # a refused option or data set leaves the user's student compiled as it was
            student.compile(**own)
        raise
    return learner
