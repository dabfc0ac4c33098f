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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ktlite.arguments import check_positive_int, check_seed

__all__ = ["WIDTH_STEP", "round_width", "bucketed_indices", "num_bucketed_batches"]

#: Batch widths are multiples of this many positions.
WIDTH_STEP = 16
# Finished batches wait in a buffer of this many batches to be shuffled before use.
_BATCH_SHUFFLE_BUFFER = 64


def round_width(lengths: Any, step: int = WIDTH_STEP) -> Any:
    """Rounds sequence lengths up to the padded width their batch gets.

    Args:
        lengths: an int, a numpy array or an integer `tf.Tensor` of lengths.
        step: the width granularity (default `WIDTH_STEP`, 16).

    Returns:
        The smallest multiple of ``step`` that is >= each length (at least ``step``), of the
        same kind as ``lengths``.

    Raises:
        TypeError: if `step` is not an int.
        ValueError: if `step` < 1.

    Example:
        >>> round_width(np.array([1, 16, 17, 40]))
        array([16, 16, 32, 48])
    """
    check_positive_int(step, "step")
    if isinstance(lengths, (tf.Tensor, tf.Variable)):
        lengths = tf.maximum(lengths, 1)
        return (lengths + step - 1) // step * step
    return (np.maximum(np.asarray(lengths), 1) + step - 1) // step * step


def _checked(lengths: Any, batch_size: Any) -> tuple[np.ndarray, int]:
    """`lengths` as a non-empty int array `(n,)` / `(n, k)` of lengths >= 0, and `batch_size`."""
    batch_size = check_positive_int(batch_size, "batch_size")
    arr = np.asarray(lengths)
    if (
        arr.ndim not in (1, 2)
        or not len(arr)
        or not np.issubdtype(arr.dtype, np.integer)
        or arr.min() < 0
    ):
        raise ValueError(
            "`lengths` must hold one int >= 0 per example (shape (n,) or (n, k), n >= 1). "
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
        TypeError: if `batch_size` is not an int.
        ValueError: if `batch_size` < 1, or `lengths` is empty or not ints >= 0.

    Example:
        >>> num_bucketed_batches(np.array([3, 4, 20, 21, 22]), 2, False)
        3
    """
    lengths, batch_size = _checked(lengths, batch_size)
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
        TypeError: if `batch_size` or `seed` is not an int.
        ValueError: if `batch_size` < 1, `seed` < 0, or `lengths` is empty or not ints >= 0.

    Example:
        >>> ds = bucketed_indices(np.array([3, 40, 5, 38]), batch_size=2, seed=0)
        >>> sorted(sorted(b.tolist()) for b in ds.as_numpy_iterator())
        [[0, 2], [1, 3]]
    """
    lengths, batch_size = _checked(lengths, batch_size)
    seed = check_seed(seed)
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
