"""Turning user data into batched, prefetched `tf.data` pipelines with a known length.

Every data set that ktlite trains or predicts on goes through `make_dataset`, so batching,
shuffling and (later) distribution are decided in one place. Supported inputs:

- `TaskDataset`: raw examples plus a per-batch, tf-traceable transform (e.g. a tokenizer);
  with per-example lengths, batches are length-bucketed and padded per batch
  (`ktlite.bucketing`).
- `(x, y)` tuples, or `x` alone, of numpy arrays or lists; `x` may be a dict or a list of
  arrays for a multi-input model.
- `tf.data.Dataset`, batched or not (see `is_batched` for how that is decided).
- `keras.utils.PyDataset` (each item is already a batch).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ktlite import compat
from ktlite.arguments import check_bool, check_positive_int, check_seed
from ktlite.bucketing import bucketed_indices, round_width

__all__ = ["TaskDataset", "make_dataset", "is_batched", "to_arrays", "num_samples"]


class TaskDataset:
    """Raw examples and labels plus an in-graph transform applied to each batch.

    A task package (e.g. `ktlite.text`) keeps its examples raw (strings for text) and hands
    over the transform that turns a batch of raw examples into model inputs. Applying the
    transform per batch inside `tf.data` keeps memory low and lets the pipeline overlap
    preprocessing with training.

    Args:
        x: raw inputs, anything `np.asarray` accepts (a 1-D object array of `str` for text),
            or a dict / list of arrays for a multi-input model.
        y: encoded labels (int class ids, a float 0/1 matrix, floats) or `None` for
            unlabelled data.
        transform: a tf-traceable function mapping a batch of raw `x` (a `tf.Tensor`, or the
            dict / tuple of tensors) to model inputs. `None` passes `x` through unchanged.
        task: informational task name, e.g. `"text"`.
        reporter: the task's validation report, called by `Learner.validate` as
            `reporter(model, data, predict) -> (text, result)` where `predict(data)`
            returns the model's outputs for `data` through the learner's own data path.
            `None` leaves the report to `ktlite.evaluation.report` (read from the loss).
        lengths: for sequence tasks, how many positions each example fills in the model's
            input after the transform (for text: its tokens with `[CLS]`, at most `maxlen`):
            an int array of shape `(n,)` (or `(n, k)` for `k` sequences per example, e.g.
            translation source and target), or a function of `x` returning it, called
            once when first needed. With lengths, `make_dataset` pads each batch only to
            its width (see `ktlite.bucketing`) and calls `transform(x_batch, width)`, where
            `width` is an int32 scalar tensor (a `(k,)` vector for `k` sequences) that the
            transform pads (and may cut) every sequence to. `None` (default): batches go
            through `transform(x_batch)` and keep the transform's fixed width.
        self_supervised: `True` when the transform makes the targets from `x` itself (e.g.
            masked language modelling, new masks every epoch): it then returns
            `(inputs, targets)` or `(inputs, targets, sample_weight)` and `y` must be `None`.
        sequence_labels: `True` when `y` holds one label per position of the last sequence
            (e.g. a translation's next-token ids), as wide as the transform's fixed width:
            a bucketed batch then cuts its labels to that sequence's width too, so they
            line up with the outputs. Needs `y` with a position axis and `lengths`.
        reader: how the task reads new raw examples, `reader(x, y) -> TaskDataset` (`y`
            as the user names labels, or `None`): the loaders pass their task's public
            `*_dataset` function (e.g. `ktlite.text.text_dataset`), so `Learner.predict`
            and `Learner.validate(val_data=(x, y))` take raw examples like those the
            loader read. `None` (default): plain arrays reach the model as they are.
        augment: a tf-traceable function applied to each training batch's model inputs
            after the transform (e.g. random image flips), only where `make_dataset` is
            asked to (`augment=True`, as `Learner` does for training batches), so
            evaluation and prediction never see it. `None` (default): no augmentation.
        preproc: the fitted preprocessor whose `transform` and labels these are (any
            object with `save(folder)`), or `None`. Two loader calls each fit their own
            (vocabulary, categories, scaling, classes): `Learner` refuses validation data
            whose preprocessor saves another state than the training data's (see
            `encoded_like`), which a right model would score as wrong. A task whose
            datasets each encode their inputs correctly on their own (images) leaves it out.
        layer_groups: the task's layer groups of a model for `Learner.fine_tune`,
            `layer_groups(model) -> groups` (from input to head, as `ktlite.lr.layer_groups`
            takes them) or `None` for a model it does not know; the task knows which layers
            a backbone started (a translation model's decoder is new). `None` (default):
            `ktlite.lr.layer_groups`'s automatic groups.

    Raises:
        ValueError: if `x` is empty, `y` has a different number of samples than `x`,
            `lengths` is not one non-negative int per sample (shape `(n,)`, or `(n, k)` with
            `k >= 1`), or `sequence_labels` is set without `lengths` or without `y` of at
            least two dimensions.
        TypeError: if `transform`, `reporter`, `reader`, `augment` or `layer_groups` is not
            callable, `self_supervised` or `sequence_labels` is not a bool, `lengths` is given
            without a `transform`, or `preproc` has no `save` method.

    Example:
        >>> trn = TaskDataset(np.array(["good", "bad"], dtype=object), np.array([1, 0]),
        ...                   transform=preproc.tokenize, task="text",
        ...                   lengths=preproc.sequence_lengths)
        >>> ds, n = make_dataset(trn, batch_size=32, shuffle=True)
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        transform: Callable[..., Any] | None = None,
        task: str | None = None,
        reporter: Callable[..., tuple[str, Any]] | None = None,
        lengths: Callable[[Any], Any] | Any = None,
        self_supervised: bool = False,
        sequence_labels: bool = False,
        reader: Callable[[Any, Any], TaskDataset] | None = None,
        augment: Callable[[Any], Any] | None = None,
        preproc: Any = None,
        layer_groups: Callable[[Any], Any] | None = None,
    ) -> None:
        self_supervised = check_bool(self_supervised, "self_supervised")
        sequence_labels = check_bool(sequence_labels, "sequence_labels")
        if self_supervised and (transform is None or y is not None):
            raise ValueError(
                "A self-supervised TaskDataset needs a `transform` that makes the targets and "
                f"no `y`. Received: transform={transform!r}, y={'None' if y is None else 'given'}"
            )
        for name, value in (("transform", transform), ("reporter", reporter), ("reader", reader),
                            ("augment", augment), ("layer_groups", layer_groups)):
            if value is not None and not callable(value):
                raise TypeError(f"`{name}` must be callable or None. Received: {name}={value!r}")
        if preproc is not None and not callable(getattr(preproc, "save", None)):
            raise TypeError(
                "`preproc` must be a preprocessor with a `save(folder)` method or None. "
                f"Received: preproc of type {type(preproc).__name__}"
            )
        if lengths is not None and transform is None:
            raise TypeError(
                "`lengths` needs a `transform` that pads to a given width. "
                "Received: transform=None"
            )
        self.x = to_arrays(x, name="x")
        self.y = None if y is None else to_arrays(y, name="y")
        n = num_samples(self.x, name="x")
        if n == 0:
            raise ValueError("`x` must hold at least one sample. Received: 0 samples.")
        if self.y is not None:
            n_y = num_samples(self.y, name="y")
            if n_y != n:
                raise ValueError(
                    "`x` and `y` must hold the same number of samples. "
                    f"Received: {n} samples in x and {n_y} in y."
                )
        self.transform = transform
        self.task = task
        self.reporter = reporter
        self.reader = reader
        self.augment = augment
        self.preproc = preproc
        self.layer_groups = layer_groups
        self.self_supervised = self_supervised
        self.sequence_labels = sequence_labels
        if self.sequence_labels and (
            lengths is None or not isinstance(self.y, np.ndarray) or self.y.ndim < 2
        ):
            shape = None if self.y is None else getattr(self.y, "shape", type(self.y).__name__)
            raise ValueError(
                "`sequence_labels=True` needs `lengths` and a `y` array with a position axis. "
                f"Received: lengths={'None' if lengths is None else 'given'}, y of shape {shape}"
            )
        self._lengths = lengths if lengths is None or callable(lengths) else self._check(lengths)

    @property
    def lengths(self) -> np.ndarray | None:
        """Per-example sequence lengths (`(n,)` or `(n, k)` int64), or `None`."""
        if callable(self._lengths):
            self._lengths = self._check(self._lengths(self.x))
        return self._lengths

    def _check(self, lengths: Any) -> np.ndarray:
        arr = np.asarray(lengths)
        n = len(self)
        if (
            arr.ndim not in (1, 2)
            or len(arr) != n
            or not arr.size  # (n, 0): no length column, nothing to bucket on
            or not np.issubdtype(arr.dtype, np.integer)
            or arr.min() < 0
        ):
            raise ValueError(
                f"`lengths` must hold one non-negative int per sample ({n} samples), of "
                f"shape ({n},) or ({n}, k) with k >= 1. "
                f"Received: lengths of shape {arr.shape} and dtype {arr.dtype}"
            )
        return arr.astype(np.int64)

    def subset(self, indices: Any) -> TaskDataset:
        """Returns the examples at `indices` (in that order) with the same transform.

        Args:
            indices: int positions, e.g. a permutation.

        Returns:
            A new `TaskDataset` sharing `transform`, `task`, `reporter`, `reader`,
            `augment`, `preproc` and `layer_groups`; lengths follow their examples.

        Example:
            >>> shortest_first = data.subset(np.argsort(data.lengths, kind="stable"))
        """
        idx = np.asarray(indices, dtype=np.int64)

        def pick(a: np.ndarray) -> np.ndarray:
            return a[idx]

        lengths = self._lengths
        return TaskDataset(
            tf.nest.map_structure(pick, self.x),
            None if self.y is None else tf.nest.map_structure(pick, self.y),
            self.transform,
            self.task,
            reporter=self.reporter,
            lengths=lengths if lengths is None or callable(lengths) else lengths[idx],
            self_supervised=self.self_supervised,
            sequence_labels=self.sequence_labels,
            reader=self.reader,
            augment=self.augment,
            preproc=self.preproc,
            layer_groups=self.layer_groups,
        )

    def encoded_like(self, other: TaskDataset) -> bool:
        """Whether `other`'s examples were encoded as this dataset's (the same preprocessor).

        The same preprocessor object, or one that saves the same files (e.g. a reloaded
        copy), encodes alike; so does data whose preprocessor either side does not know.

        Args:
            other: another `TaskDataset`.

        Returns:
            False only when both know their preprocessors and those save different states.

        Example:
            >>> trn.encoded_like(text_dataset(x_test, y_test, preproc))
            True
        """
        mine, theirs = self.preproc, getattr(other, "preproc", None)
        if mine is None or theirs is None or mine is theirs:
            return True
        return _saved_state(mine) == _saved_state(theirs)

    def __len__(self) -> int:
        return num_samples(self.x, name="x")

    def __repr__(self) -> str:
        labelled = "unlabelled" if self.y is None else "labelled"
        return f"TaskDataset(n={len(self)}, task={self.task!r}, {labelled})"


def self_labelled_reader(
    read: Callable[[Any], TaskDataset], why: str
) -> Callable[[Any, Any], TaskDataset]:
    """A `TaskDataset` reader for a task that makes its labels from its examples.

    Args:
        read: builds the dataset from raw examples alone (e.g. a language model's texts).
        why: the sentence that says where the labels come from, for the refusal.

    Returns:
        `reader(x, labels)`: `read(x)`, refusing any `labels` with `ValueError`.

    Example:
        >>> reader = self_labelled_reader(make, "A language model's labels are its texts")
    """

    def reader(x: Any, labels: Any) -> TaskDataset:
        if labels is not None:
            raise ValueError(
                f"{why}: pass the examples alone. Received: labels of type "
                f"{type(labels).__name__}"
            )
        return read(x)

    return reader


def to_arrays(data: Any, name: str = "x") -> Any:
    """Converts in-memory data to numpy arrays, keeping dict / list structure for multi-input.

    A dict becomes a dict of arrays. A list or tuple whose items are all arrays (numpy
    arrays or tensors, at least 1-D) is taken as one array per model input; any other list
    (of numbers, strings, rows) is one array of samples. Wrap a list of per-sample arrays in
    `np.asarray` if you mean samples rather than inputs.

    Args:
        data: the data to convert.
        name: argument name used in error messages.

    Returns:
        A numpy array, or a dict / list of numpy arrays.

    Raises:
        TypeError: if `data` cannot be converted to an array.

    Example:
        >>> to_arrays([[1, 2], [3, 4]]).shape
        (2, 2)
    """
    if isinstance(data, Mapping):
        return {k: _one_array(v, f"{name}[{k!r}]") for k, v in data.items()}
    if isinstance(data, (list, tuple)) and data and all(_is_array(v) for v in data):
        return [_one_array(v, f"{name}[{i}]") for i, v in enumerate(data)]
    return _one_array(data, name)


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, tf.Tensor)) and len(value.shape) >= 1


def _one_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None or np.isscalar(value):
        raise TypeError(
            f"`{name}` must be an array-like of samples. "
            f"Received: {name} of type {type(value).__name__}"
        )
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(
            f"`{name}` could not be converted to a numpy array ({err}). "
            f"Received: {name} of type {type(value).__name__}"
        ) from None
    if arr.ndim == 0:
        raise TypeError(f"`{name}` must have a sample axis. Received: a 0-d array {arr!r}")
    if arr.dtype.kind == "U":
        arr = arr.astype(object)
    elif arr.dtype == np.float64:
        # Keras computes in float32; converting once here halves the pipeline's memory.
        arr = arr.astype(np.float32)
    return arr


def num_samples(arrays: Any, name: str = "x") -> int:
    """Returns the number of samples in an array or dict / list of arrays.

    Args:
        arrays: output of `to_arrays`.
        name: argument name used in error messages.

    Returns:
        The common length of the leading axis.

    Raises:
        ValueError: if the arrays have different lengths.

    Example:
        >>> num_samples({"a": np.zeros((3, 2)), "b": np.zeros(3)})
        3
    """
    leaves = tf.nest.flatten(arrays)
    lengths = {len(a) for a in leaves}
    if len(lengths) > 1:
        raise ValueError(
            f"All inputs in `{name}` must hold the same number of samples. "
            f"Received lengths: {sorted(lengths)}"
        )
    return lengths.pop() if lengths else 0


def _walk_pipeline(dataset: tf.data.Dataset):
    """Yields the dataset and the datasets it was built from, newest first."""
    seen = 0
    node = dataset
    while node is not None and seen < 256:
        yield node
        seen += 1
        node = compat.dataset_input(node)


def is_batched(dataset: tf.data.Dataset) -> bool:
    """Tells whether a `tf.data.Dataset` already yields batches.

    A dataset counts as batched when its pipeline holds a batching step (`batch`,
    `padded_batch`, `ragged_batch`, `bucket_by_sequence_length`...) that no later `unbatch`
    undoes, found by walking back through the datasets it was built from (through `zip`
    and `concatenate` too). A `group_by_window`, `flat_map` or `interleave` step is judged
    by the dataset its function returns: batched when that ends in a batching step (as in
    `group_by_window(key, lambda k, w: w.batch(4), 4)` or `interleave(lambda i:
    ds.batch(4))`), unbatched when it ends in `unbatch` or `from_tensor_slices` (as in
    `batch(4).flat_map(tf.data.Dataset.from_tensor_slices)`), else by its input. Datasets
    from `from_generator` or `from_tensors` whose items are already batches carry no such
    step: `ktlite.get_learner` then compares the items' rank with the model's input rank
    (or, for a model without symbolic inputs, takes items whose tensors all have an unknown
    first dimension as batches), and `make_dataset(..., batched=True)` says so explicitly.

    Args:
        dataset: the dataset to inspect.

    Returns:
        `True` if a batching step was found.

    Example:
        >>> is_batched(tf.data.Dataset.range(10).batch(4))
        True
    """
    stack, seen = [dataset], 0
    while stack and seen < 1024:
        node = stack.pop()
        seen += 1
        if compat.is_unbatch_step(node):
            continue
        if compat.is_batch_step(node):
            return True
        made_batched = _function_batching(node)
        if made_batched:
            return True
        if made_batched is None:
            stack.extend(compat.dataset_parents(node))
    return False


def _function_batching(dataset: tf.data.Dataset) -> bool | None:
    """Whether the datasets a `group_by_window`, `flat_map` or `interleave` step makes are
    batched; `None` when their last steps do not say (they pass on what they were given)."""
    for step in compat.dataset_function_steps(dataset):
        if "Unbatch" in step or step == "TensorSliceDataset":
            return False
        if "Batch" in step:
            return True
    return None


def _batched_num_samples(dataset: tf.data.Dataset) -> int | None:
    """Number of samples of a batched dataset, when the batching step's input is finite."""
    n_batches = int(dataset.cardinality())
    for node in _walk_pipeline(dataset):
        batch_size = compat.dataset_batch_size(node)
        if batch_size is None:
            continue
        inner = compat.dataset_input(node)
        if inner is None:
            return None
        n = int(inner.cardinality())
        try:
            bs = int(tf.get_static_value(batch_size))
        except (TypeError, ValueError):
            return None
        drop = bool(tf.get_static_value(compat.dataset_drop_remainder(node)))
        expected = n // bs if drop else math.ceil(n / bs)
        if n < 0 or n_batches != expected:
            return None
        return n - n % bs if drop else n
    return None


def _pydataset_to_tf(py_dataset: Any) -> tf.data.Dataset:
    """Wraps a `keras.utils.PyDataset` (items are batches) as a batched `tf.data.Dataset`.

    The batches' spec keeps each tensor's rank and dtype. A dimension other than the batch
    one stays fixed only when the first two batches and the last one agree on it (Keras's
    own adapter compares the first two), so batches padded each to its own longest
    sequence, or images of several sizes, get `None` there. A batch that then does not fit
    (another size where those three agreed) stops the pass with an error naming it.
    """
    n_batches = len(py_dataset)
    if n_batches == 0:
        raise ValueError("`data` must hold at least one batch. Received: an empty PyDataset.")
    sampled = sorted({0, min(1, n_batches - 1), n_batches - 1})
    samples = [_as_tuple(py_dataset[i]) for i in sampled]

    def spec_of(*values: Any) -> tf.TensorSpec:
        tensors = [tf.convert_to_tensor(value) for value in values]
        shapes = [tensor.shape for tensor in tensors]
        if len({shape.rank for shape in shapes}) > 1:
            raise ValueError(
                "`data` must keep each part of its batches at one rank. Received: a "
                f"PyDataset whose batches have shapes {[tuple(shape) for shape in shapes]}"
            )
        dims = [dim if all(shape[axis] == dim for shape in shapes) else None
                for axis, dim in enumerate(shapes[0])]
        return tf.TensorSpec((None, *dims[1:]), tensors[0].dtype)

    signature = tf.nest.map_structure(spec_of, *samples)
    specs = tf.nest.flatten(signature)

    def generate():
        for i in range(n_batches):
            batch = _as_tuple(py_dataset[i])
            for spec, value in zip(specs, tf.nest.flatten(batch)):
                shape = tf.TensorShape(np.shape(value))
                if not spec.shape.is_compatible_with(shape):
                    raise ValueError(
                        f"`data` batch {i} has a part of shape {tuple(shape)}, but batches "
                        f"{sampled} had {tuple(spec.shape)[1:]} after the batch axis, and "
                        "ktlite reads the sizes they agree on as fixed. Give every batch "
                        "one size on that axis (e.g. pad to a fixed width)."
                    )
            yield batch
        py_dataset.on_epoch_end()

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches))


def _as_tuple(item: Any) -> Any:
    return tuple(item) if isinstance(item, list) else item


def _gather_pipeline(
    x: Any,
    y: Any,
    n: int,
    batch_size: int,
    shuffle: bool,
    seed: int | None,
    drop_remainder: bool,
    transform: Callable[..., Any] | None,
    lengths: np.ndarray | None = None,
    self_supervised: bool = False,
    sequence_labels: bool = False,
    augment: Callable[[Any], Any] | None = None,
) -> tf.data.Dataset:
    # Shuffling and batching indices, then gathering whole batches, is the same as
    # from_tensor_slices -> shuffle -> batch but avoids per-element work.
    # tf.data stacks lists into one tensor, so multi-input lists travel as tuples.
    xs = tf.nest.map_structure(tf.convert_to_tensor, _as_tuple(x))
    ys = None if y is None else tf.nest.map_structure(tf.convert_to_tensor, _as_tuple(y))
    if lengths is not None and shuffle:
        indices = bucketed_indices(lengths, batch_size, seed, drop_remainder)
    else:
        indices = tf.data.Dataset.range(n)
        if shuffle:
            indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        indices = indices.batch(batch_size, drop_remainder=drop_remainder)
    # A batch's width: its longest example, rounded up (per sequence column).
    widths = None if lengths is None else tf.constant(lengths, tf.int32)

    def take(idx):
        bx = tf.nest.map_structure(lambda a: tf.gather(a, idx), xs)
        by = None if ys is None else tf.nest.map_structure(lambda a: tf.gather(a, idx), ys)
        if widths is not None:
            width = round_width(tf.reduce_max(tf.gather(widths, idx), axis=0))
            bx = transform(bx, width)
            if sequence_labels:  # labels follow the last sequence's width
                by = by[:, : tf.reshape(width, [-1])[-1]]
        elif transform is not None:
            bx = transform(bx)
        if augment is not None:  # the model inputs only, not a self-supervised target
            bx = (augment(bx[0]), *bx[1:]) if self_supervised else augment(bx)
        if self_supervised:
            return bx  # (inputs, targets[, sample_weight]) made by the transform
        if by is None:
            # Keras reads a 2-tuple element as (x, y): wrap tuple inputs as (x,).
            return (bx,) if isinstance(bx, tuple) else bx
        return bx, by

    # Transforms are plain TensorFlow ops: AutoGraph's rewrite of every function they call
    # cost about 5 s on the first dataset of a process (a text or translation task).
    take = tf.autograph.experimental.do_not_convert(take)
    return indices.map(take, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _saved_state(preproc: Any) -> dict[str, bytes]:
    """The files `preproc.save` writes, by name (its whole fitted state)."""
    with tempfile.TemporaryDirectory(prefix="ktlite-state-") as folder:
        preproc.save(folder)
        root = Path(folder)
        return {str(path.relative_to(root)): path.read_bytes()
                for path in sorted(root.rglob("*")) if path.is_file()}


def make_dataset(
    data: Any,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    repeat: bool = False,
    batched: bool | None = None,
    bucketing: bool = True,
    augment: bool = False,
) -> tuple[tf.data.Dataset, int | None]:
    """Builds a batched, prefetched `tf.data.Dataset` from any supported data.

    In-memory data (a `TaskDataset`, an `(x, y)` tuple, or `x` alone) is shuffled per epoch
    when `shuffle=True`, batched, passed through the `TaskDataset` transform per batch, and
    prefetched. A batched `tf.data.Dataset` or a `PyDataset` is used as it is (its own batch
    size wins, `shuffle` and `seed` are ignored: shuffle it yourself); an unbatched
    `tf.data.Dataset` is batched with `batch_size` (and shuffled with a buffer of
    `10 * batch_size` elements when `shuffle=True`).

    Args:
        data: a `TaskDataset`; a tuple `(x, y)` or `(x,)` of arrays or lists; `x` alone (an
            array, or a dict of arrays); a `tf.data.Dataset`; or a `keras.utils.PyDataset`.
            A 2-tuple is always read as `(x, y)`: pass a multi-input `x` as a list or dict.
        batch_size: number of samples per batch (for data that is not yet batched).
        shuffle: reshuffle in-memory data every epoch. Default `False`.
        seed: seed for the shuffle. Default `None`.
        drop_remainder: drop the last, smaller batch. Default `False`.
        repeat: repeat the data forever. Default `False`.
        batched: for a `tf.data.Dataset`, whether its items are already batches; `None`
            (default) decides with `is_batched`.
        bucketing: for a `TaskDataset` with `lengths`: pad each batch only to the width
            its examples need (their longest length rounded up to a multiple of 16), and,
            when shuffling, draw each batch from examples of one width (see
            `ktlite.bucketing`). Without shuffling the order is kept, so sort the data by
            length first (`TaskDataset.subset`) for the full gain. `False` pads every batch
            to the transform's fixed width. Default `True`; other data is unaffected.
        augment: apply a `TaskDataset`'s `augment` to its batches: `True` for training
            batches only. Default `False`; other data is unaffected.

    Returns:
        `(dataset, n_samples)`: the dataset yields `(inputs, y)` batches (or `inputs` alone
        for unlabelled data, as `(inputs,)` when the inputs are a tuple); `n_samples` is
        the number of samples per pass, or `None` when it cannot be known without iterating.

    Raises:
        TypeError: if `data` is of an unsupported type, `batch_size` is not an int, `seed`
            is neither None nor an int, or `shuffle`, `drop_remainder`, `repeat`,
            `batched` (when not None), `bucketing` or `augment` is not a bool.
        ValueError: if `data` is empty, its parts differ in length, `batch_size` < 1 or
            `seed` < 0.

    Example:
        >>> ds, n = make_dataset((np.zeros((10, 3)), np.zeros(10)), batch_size=4)
        >>> n, int(ds.cardinality())
        (10, 3)
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    shuffle = check_bool(shuffle, "shuffle")
    seed = check_seed(seed)
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    repeat = check_bool(repeat, "repeat")
    if batched is not None:
        batched = check_bool(batched, "batched")
    bucketing = check_bool(bucketing, "bucketing")
    augment = check_bool(augment, "augment")

    if isinstance(data, tf.data.Dataset):
        if is_batched(data) if batched is None else batched:
            dataset, n = data, _batched_num_samples(data)
        else:
            n = int(data.cardinality())
            n = n if n >= 0 else None
            if n == 0:
                raise ValueError("`data` must hold at least one sample. Received: 0 samples.")
            dataset = data
            if shuffle:
                dataset = dataset.shuffle(10 * batch_size, seed=seed)
            dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    elif _is_pydataset(data):
        dataset, n = _pydataset_to_tf(data), None
    else:
        lengths = None
        self_supervised = sequence_labels = False
        augment_fn = None
        if isinstance(data, TaskDataset):
            x, y, transform = data.x, data.y, data.transform
            augment_fn = data.augment if augment else None
            lengths = data.lengths if bucketing else None
            self_supervised, sequence_labels = data.self_supervised, data.sequence_labels
        elif isinstance(data, tuple) and len(data) in (1, 2):
            x = to_arrays(data[0], name="x")
            y = to_arrays(data[1], name="y") if len(data) == 2 and data[1] is not None else None
            transform = None
        elif isinstance(data, (np.ndarray, Mapping, list)):
            x, y, transform = to_arrays(data, name="x"), None, None
        else:
            raise TypeError(
                "`data` must be a TaskDataset, an (x, y) tuple, an array, a dict of arrays, "
                "a tf.data.Dataset or a keras.utils.PyDataset. "
                f"Received: data of type {type(data).__name__}"
            )
        n = num_samples(x, name="x")
        if n == 0:
            raise ValueError("`data` must hold at least one sample. Received: 0 samples.")
        if y is not None and num_samples(y, name="y") != n:
            raise ValueError(
                "`x` and `y` must hold the same number of samples. "
                f"Received: {n} samples in x and {num_samples(y, name='y')} in y."
            )
        dataset = _gather_pipeline(
            x, y, n, batch_size, shuffle, seed, drop_remainder, transform, lengths,
            self_supervised, sequence_labels, augment_fn,
        )
    if repeat:
        dataset = dataset.repeat()
    return dataset.prefetch(tf.data.AUTOTUNE), n


def _is_pydataset(data: Any) -> bool:
    try:
        import keras

        return isinstance(data, keras.utils.PyDataset)
    except (ImportError, AttributeError):
        return False
