"""Length bucketing: batches of similar-length examples, padded only as far as they need.

A sequence model spends most of its time on padding when every batch is padded to the
longest text the model accepts. With bucketing, each example's length is known up front
(`ktlite.data.TaskDataset` takes a length function), examples are grouped by their *width*
(the length rounded up to a multiple of `WIDTH_STEP`), and each batch is padded to its
group's width only. Because widths are multiples of 16, the model only ever sees a few
distinct shapes (at most ``maxlen / 16``), so compiled functions stay few.

Training order stays random: every epoch the examples are shuffled, streamed into one
group per width (a group emits a batch as soon as it holds ``batch_size`` examples, so
batches form within a moving window of the shuffled stream), and the finished batches are
shuffled again before they reach the model.

Nothing here knows about text. A task supplies per-example lengths and a transform that
pads to a given width; a task with several sequences per example (translation: source and
target) passes one length column per sequence and gets one width per sequence.

Bucketing is only safe for a model whose outputs do not depend on padding (one that masks
it, as every ktlite model does). `padding_invariant` checks that once per model by running
a few examples padded both ways; the learner and the text predictor pad to the full width
for a model that fails it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import tensorflow as tf

from ktlite._console import warn
from ktlite.arguments import check_bool, check_positive_int, check_seed

__all__ = [
    "WIDTH_STEP", "check_width", "round_width", "bucketed_indices", "num_bucketed_batches",
    "padding_invariant",
]

#: Batch widths are multiples of this many positions.
WIDTH_STEP = 16
# Finished batches wait in a buffer of this many batches to be shuffled before use.
_BATCH_SHUFFLE_BUFFER = 64
# model -> {source of its inputs: (training step, whether per-batch padding is safe)}.
_INVARIANCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WARNED: weakref.WeakSet = weakref.WeakSet()  # models warned about once already
# How far the two paddings' outputs may differ, relative to the outputs' largest value. In
# float32 a masking model's differ by rounding only (below 1e-6); one that averages or
# attends over padding moves its outputs by 1e-4 and more even with untrained weights. In
# float16 / bfloat16 other widths may round differently (about 1e-3), so only larger
# changes count; those a model that does not mask shows once it has trained.
_TOLERANCE = {"float16": 1e-2, "bfloat16": 1e-2}
# What `_probe` finds.
_SAME, _CHANGED, _NO_CUT, _CONSTANT = "same", "changed", "no cut", "constant"


def check_width(width: Any, name: str = "width") -> Any:
    """Checks how many positions a batch is padded (and cut) to.

    A zero or negative width would reach `RaggedTensor.to_tensor` as a width of -1 (pad
    to the longest example) or less (an error from inside TensorFlow). A tensor's value is
    checked where it is known before the graph runs; the widths a bucketed pipeline
    computes in its graph (`round_width`) are at least 1.

    Args:
        width: an int >= 1, or an integer scalar tensor (or 0-d array) of one.
        name: the argument's name in errors.

    Returns:
        `width`: a Python int as an int, a tensor as a tensor.

    Raises:
        TypeError: for a width that is neither an int nor an integer tensor (a float, a
            bool, a float tensor).
        ValueError: for a width below 1.

    Example:
        >>> check_width(32)
        32
    """
    if isinstance(width, np.ndarray):  # a 0-d array, as a tensor would be
        width = tf.convert_to_tensor(width)
    if not isinstance(width, (tf.Tensor, tf.Variable)):
        return check_positive_int(width, name)
    if not width.dtype.is_integer:
        raise TypeError(f"`{name}` must be an int >= 1 or an integer tensor. Received: "
                        f"{name} of dtype {width.dtype.name}")
    value = tf.get_static_value(tf.convert_to_tensor(width))
    if value is not None and np.size(value) and np.min(value) < 1:
        raise ValueError(f"`{name}` must be an int >= 1 or an integer tensor. Received: "
                         f"{name}={np.asarray(value).tolist()!r:.80}")
    return width


def round_width(lengths: Any, step: int = WIDTH_STEP) -> Any:
    """Rounds sequence lengths up to the padded width their batch gets.

    Args:
        lengths: an int, a numpy array or an integer `tf.Tensor` of lengths >= 0.
        step: the width granularity (default `WIDTH_STEP`, 16).

    Returns:
        The smallest multiple of ``step`` that is >= each length (at least ``step``), of the
        same kind as ``lengths``.

    Raises:
        TypeError: if `step` is not an int, or `lengths` is not of an integer type (a float
            or bool array, a float tensor).
        ValueError: if `step` < 1, or a length is negative (checked where the values are
            known: not for a tensor inside a traced function).

    Example:
        >>> round_width(np.array([1, 16, 17, 40]))
        array([16, 16, 32, 48])
    """
    check_positive_int(step, "step")
    if isinstance(lengths, (tf.Tensor, tf.Variable)):
        _check_lengths(lengths.dtype.as_numpy_dtype,
                       tf.get_static_value(tf.convert_to_tensor(lengths)))
        lengths = tf.maximum(lengths, 1)
        return (lengths + step - 1) // step * step
    arr = np.asarray(lengths)
    _check_lengths(arr.dtype, arr)
    return (np.maximum(arr, 1) + step - 1) // step * step


def _check_lengths(dtype: Any, values: np.ndarray | None) -> None:
    """Refuses `round_width` lengths that are not ints, or (when known) are negative."""
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(
            "`lengths` must be ints (an int, an integer array or tensor). "
            f"Received: lengths of dtype {np.dtype(dtype).name}"
        )
    if values is not None and np.size(values) and np.min(values) < 0:
        raise ValueError(
            f"`lengths` must be ints >= 0. Received: lengths with a value of {np.min(values)}"
        )


def _checked(lengths: Any, batch_size: Any) -> tuple[np.ndarray, int]:
    """`lengths` as a non-empty int array `(n,)` / `(n, k)` of lengths >= 0, and `batch_size`."""
    batch_size = check_positive_int(batch_size, "batch_size")
    arr = np.asarray(lengths)
    if (
        arr.ndim not in (1, 2)
        or not arr.size  # no examples, or (n, 0): no length column
        or not np.issubdtype(arr.dtype, np.integer)
        or arr.min() < 0
    ):
        raise ValueError(
            "`lengths` must hold one int >= 0 per example "
            "(shape (n,) or (n, k), n >= 1, k >= 1). "
            f"Received: lengths of shape {arr.shape} and dtype {arr.dtype}"
        )
    return arr, batch_size


def _bucket_keys(lengths: np.ndarray) -> np.ndarray:
    """One group id per example: examples share a group when every width matches."""
    widths = round_width(lengths).reshape(len(lengths), -1) // WIDTH_STEP
    if widths.shape[1] == 1:
        return widths[:, 0].astype(np.int64)
    _, keys = np.unique(widths, axis=0, return_inverse=True)
    return keys.reshape(-1).astype(np.int64)


def num_bucketed_batches(lengths: np.ndarray, batch_size: int, drop_remainder: bool) -> int:
    """The number of batches `bucketed_indices` yields per pass (the same every epoch).

    Args:
        lengths: per-example lengths, shape ``(n,)`` or ``(n, k)``.
        batch_size: examples per batch.
        drop_remainder: whether each group's last, smaller batch is dropped.

    Returns:
        The number of batches.

    Raises:
        TypeError: if `batch_size` is not an int, or `drop_remainder` is not a bool.
        ValueError: if `batch_size` < 1, or `lengths` is empty (no examples, or no length
            column) or not ints >= 0.

    Example:
        >>> num_bucketed_batches(np.array([3, 4, 20, 21, 22]), 2, False)
        3
    """
    lengths, batch_size = _checked(lengths, batch_size)
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    counts = np.bincount(_bucket_keys(lengths))
    counts = counts[counts > 0]
    if drop_remainder:
        return int(np.sum(counts // batch_size))
    return int(np.sum(-(-counts // batch_size)))


def bucketed_indices(
    lengths: np.ndarray, batch_size: int, seed: int | None = None, drop_remainder: bool = False
) -> tf.data.Dataset:
    """A dataset of index batches, each drawn from one width group, reshuffled every epoch.

    Every pass visits each example exactly once. Within a batch all examples have the same
    width (every length column rounded up to a multiple of `WIDTH_STEP`). Each group's last
    batch of the pass may be smaller than ``batch_size`` (dropped with ``drop_remainder``).

    Args:
        lengths: per-example lengths, shape ``(n,)``, or ``(n, k)`` for ``k`` sequences
            per example.
        batch_size: examples per batch.
        seed: the shuffle seed; None for a different order every run.
        drop_remainder: drop each group's last, smaller batch.

    Returns:
        A `tf.data.Dataset` of int64 index vectors with a known cardinality.

    Raises:
        TypeError: if `batch_size` or `seed` is not an int, or `drop_remainder` is not a bool.
        ValueError: if `batch_size` < 1, `seed` < 0, or `lengths` is empty (no examples, or
            no length column) or not ints >= 0.

    Example:
        >>> ds = bucketed_indices(np.array([3, 40, 5, 38]), batch_size=2, seed=0)
        >>> sorted(sorted(b.tolist()) for b in ds.as_numpy_iterator())
        [[0, 2], [1, 3]]
    """
    lengths, batch_size = _checked(lengths, batch_size)
    seed = check_seed(seed)
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    keys = _bucket_keys(lengths)
    n = len(keys)
    indices = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if len(np.unique(keys)) == 1:
        # One width for all (e.g. maxlen <= 16): plain shuffled batches, nothing to group.
        return indices.batch(batch_size, drop_remainder=drop_remainder)
    n_batches = num_bucketed_batches(lengths, batch_size, drop_remainder)
    keys = tf.constant(keys, tf.int64)
    batches = indices.group_by_window(
        key_func=lambda i: tf.gather(keys, i),
        reduce_func=lambda _, window: window.batch(batch_size),
        window_size=batch_size,
    )
    if drop_remainder:
        batches = batches.filter(lambda idx: tf.shape(idx)[0] == batch_size)
    # Groups finish their last batches together at the end of a pass: shuffling the
    # batches spreads them (and the widths) over the epoch.
    batches = batches.shuffle(
        _BATCH_SHUFFLE_BUFFER, seed=None if seed is None else seed + 1,
        reshuffle_each_iteration=True,
    )
    return batches.apply(tf.data.experimental.assert_cardinality(n_batches))


def padding_invariant(
    model: Any, source: Hashable, make_inputs: Callable[[], tuple[Any, Any]]
) -> bool:
    """Whether padding a batch only to its longest example leaves `model`'s outputs unchanged.

    Bucketing feeds a model its examples with less padding after them. A model that masks
    padding (every ktlite model; `keras.layers.Embedding(mask_zero=True)` followed by
    layers that keep the mask) gives the same outputs either way; one that averages, pools
    or attends over padding positions does not, and would give an example other results
    depending on the batch it lands in. Looking at the layers cannot tell (any layer may
    drop a mask), so this runs the model twice on a few examples: as narrow as they
    allow, and padded with zeros (id 0) to the full width. Outputs per position are
    compared where both runs have them, and must agree to 1e-5 of the outputs' largest
    value (1e-2 when the model computes in float16 or bfloat16, whose rounding hides
    smaller changes).

    The answer is kept per model, `source` and training step (the optimizer's
    `iterations`): the check runs once, and again after the weights have trained, since
    training can make a padding effect grow. The first time a model fails it, one warning
    says how to make it mask padding. Examples that fill the full width leave nothing to
    compare: the answer is False (padding per batch could not narrow them anyway), kept
    like the others. A model whose outputs are the same for every example (e.g. a head
    initialized to zeros) tells nothing: the answer is False and is not kept.

    Args:
        model: a `keras.Model` taking token ids (one tensor, or a tuple / list / dict of
            them) of shape `(batch, width)`, padded at the end with id 0.
        source: what makes the model's inputs (e.g. the transform), as a key: equal
            sources share an answer (an unhashable one is told apart by its identity).
        make_inputs: called only when no answer is kept; returns `(narrow, full)`: a few
            examples as the model takes them at a narrow width, most filling it with no
            padding at all (as the longest example of a batch does: a model that lets
            padding in, e.g. through max pooling, shows it best so), e.g. cut to a few
            tokens; and the same at the full width. Only the widths of `full` are used: the
            wide run is `narrow` with zeros after it, so that both runs see the same token
            ids even where a transform draws random ones (masked-LM masking).

    Returns:
        True if batches may be padded per batch without changing the outputs.

    Raises:
        Whatever the model raises on the inputs `make_inputs` returns.

    Example:
        >>> padding_invariant(model, preproc.tokenize, lambda: (
        ...     preproc.tokenize(texts, width=8), preproc.tokenize(texts)))
        True
    """
    kept = _INVARIANCE.setdefault(model, {})
    try:
        hash(source)
    except TypeError:  # e.g. a transform object that defines __eq__ only
        source = id(source)
    with tf.init_scope():  # eager, also when first asked while a function is traced
        step = _training_step(model)
        if source in kept and kept[source][0] == step:
            return kept[source][1]
        found = _probe(model, *make_inputs())
    if found == _CONSTANT:
        return False
    answer = found == _SAME
    if found == _CHANGED and model not in _WARNED:
        _WARNED.add(model)
        warn(
            "The model's outputs change with the padding after an example, so ktlite pads "
            "every batch to the full width (`maxlen`) instead of only to its longest "
            "example: with length bucketing an example's result would depend on the "
            "other examples in its batch. To bucket (faster when lengths vary), make the "
            "model ignore padding, e.g. `keras.layers.Embedding(..., mask_zero=True)` "
            "followed by layers that keep the mask (pooling, attention, RNNs), or use a "
            "ktlite text model. `get_learner(..., bucketing=False)` pads to the full width "
            "without this check.",
        )
    kept[source] = (step, answer)
    return answer


def _training_step(model: Any) -> int | None:
    """The optimizer's update count (None without one): the weights change only with it."""
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    return None if iterations is None else int(np.asarray(iterations))


def _probe(model: Any, narrow: Any, full: Any) -> str:
    """Compares the model on `narrow` and on it padded with zeros to `full`'s widths.

    Returns `_SAME` or `_CHANGED` (the outputs agree or differ), `_NO_CUT` (`narrow` is
    as wide as `full`, so there is nothing to compare) or `_CONSTANT` (the outputs are
    the same for every example, so they tell nothing).
    """
    narrow = tf.nest.map_structure(tf.convert_to_tensor, narrow)

    def widen(t: tf.Tensor, like: Any) -> tf.Tensor:
        extra = int(like.shape[1]) - int(t.shape[1]) if t.shape.rank == 2 else 0
        if not t.dtype.is_integer or extra <= 0:
            return t
        return tf.concat([t, tf.zeros([tf.shape(t)[0], extra], t.dtype)], axis=1)

    wide = tf.nest.map_structure(widen, narrow, full)
    if all(a.shape == b.shape for a, b in zip(tf.nest.flatten(wide), tf.nest.flatten(narrow))):
        return _NO_CUT
    outputs = [[np.asarray(tf.cast(o, tf.float64)) for o in tf.nest.flatten(
        model(inputs, training=False))] for inputs in (wide, narrow)]
    rows = np.concatenate([np.asarray(t).reshape(len(t), -1) for t in tf.nest.flatten(narrow)
                           if t.dtype.is_integer], axis=1)
    if len(np.unique(rows, axis=0)) > 1 and all(np.all(o == o[:1]) for o in outputs[0]):
        return _CONSTANT
    tolerance = max(_TOLERANCE.get(dtype, 1e-5) for dtype in _compute_dtypes(model))
    for a, b in zip(*outputs):
        if a.shape != b.shape:
            if a.ndim < 2 or a.shape[:1] + a.shape[2:] != b.shape[:1] + b.shape[2:]:
                return _CHANGED
            # Outputs per position: compare the positions both runs have.
            a, b = a[:, : b.shape[1]], b[:, : a.shape[1]]
        scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
        if not np.allclose(a, b, rtol=0.0, atol=tolerance * scale, equal_nan=True):
            return _CHANGED
    return _SAME


def _compute_dtypes(model: Any) -> set:
    """The compute dtypes of `model` and of every layer of the models nested in it: a model
    loaded from a file can call itself float32 while its inner layers run in float16, and
    the check must allow the loosest precision."""
    dtypes, models = set(), [model]
    while models:
        current = models.pop()
        dtypes.add(getattr(current, "compute_dtype", None))
        models.extend(getattr(current, "layers", []))
    return dtypes
