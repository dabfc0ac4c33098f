"""Tests for ktlite.data: TaskDataset and make_dataset."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.data import TaskDataset, is_batched, make_dataset, to_arrays


def _batches(ds):
    return list(ds.as_numpy_iterator())


def test_arrays_are_batched_with_known_length():
    ds, n = make_dataset((np.zeros((10, 3)), np.arange(10)), batch_size=4)
    assert n == 10
    assert int(ds.cardinality()) == 3
    assert [b[0].shape[0] for b in _batches(ds)] == [4, 4, 2]


def test_lists_are_accepted_and_float64_becomes_float32():
    ds, n = make_dataset(([[1.0, 2.0], [3.0, 4.0]], [0, 1]), batch_size=8)
    (x, y), = _batches(ds)
    assert n == 2 and x.dtype == np.float32 and y.tolist() == [0, 1]


def test_shuffle_reorders_each_epoch_but_keeps_pairs():
    x = np.arange(50)
    ds, _ = make_dataset((x, x * 10), batch_size=50, shuffle=True, seed=3)
    first = _batches(ds)[0]
    second = _batches(ds)[0]
    assert sorted(first[0].tolist()) == list(range(50))
    assert not np.array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], first[0] * 10)


def test_drop_remainder_and_repeat():
    ds, n = make_dataset((np.zeros((10, 1)), np.zeros(10)), 4, drop_remainder=True)
    assert int(ds.cardinality()) == 2 and n == 10
    ds, _ = make_dataset((np.zeros((10, 1)), np.zeros(10)), 4, repeat=True)
    assert int(ds.cardinality()) == tf.data.INFINITE_CARDINALITY


def test_task_dataset_applies_transform_per_batch():
    texts = np.array(["a", "bb", "ccc"], dtype=object)
    data = TaskDataset(texts, np.array([0, 1, 2]), transform=tf.strings.length, task="text")
    assert len(data) == 3 and data.task == "text"
    ds, n = make_dataset(data, batch_size=2)
    (x1, y1), (x2, y2) = _batches(ds)
    assert n == 3
    assert x1.tolist() == [1, 2] and x2.tolist() == [3]
    assert y1.tolist() == [0, 1] and y2.tolist() == [2]


def test_augment_applies_to_training_batches_only_and_follows_subsets():
    data = TaskDataset(np.array(["a", "bb", "ccc"], dtype=object), np.array([0, 1, 2]),
                       transform=tf.strings.length, augment=lambda x: x * 10)
    plain, _ = make_dataset(data, batch_size=3)
    augmented, _ = make_dataset(data, batch_size=3, augment=True)
    assert _batches(plain)[0][0].tolist() == [1, 2, 3]
    (x, y), = _batches(augmented)
    assert x.tolist() == [10, 20, 30] and y.tolist() == [0, 1, 2]  # labels untouched
    subset, _ = make_dataset(data.subset([2, 0]), batch_size=2, augment=True)
    assert _batches(subset)[0][0].tolist() == [30, 10]
    # A self-supervised transform's targets are left alone: the inputs alone are augmented.
    masked = TaskDataset(np.array(["ab", "c"], dtype=object), self_supervised=True,
                         transform=lambda x: (tf.strings.length(x), tf.strings.length(x)),
                         augment=lambda x: x + 100)
    (inputs, targets), = _batches(make_dataset(masked, batch_size=2, augment=True)[0])
    assert inputs.tolist() == [102, 101] and targets.tolist() == [2, 1]
    with pytest.raises(TypeError, match=r"`augment` must be callable or None. Received: augm"):
        TaskDataset(np.array(["a"], dtype=object), augment="flip")
    with pytest.raises(TypeError, match=r"`augment` must be True or False. Received: augment='no'"):
        make_dataset(data, batch_size=3, augment="no")


def test_learner_augments_what_it_fits_on_and_never_what_it_predicts():
    import ktlite

    seen = []

    def augment(x):
        seen.append("traced")
        return x + 1000.0

    x = np.linspace(0, 1, 16, dtype="float32")[:, None]
    data = TaskDataset(x, (x[:, 0] > 0.5).astype("float32"), augment=augment)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile("sgd", "mse")
    learner = ktlite.get_learner(model, train_data=data, batch_size=8, verbose=0)
    np.testing.assert_allclose(learner.predict(data), learner.predict(x), atol=1e-6)
    assert not seen
    before = model.get_weights()[0].copy()
    learner.fit(1e-7, 1, verbose=0)
    assert seen  # fitting read augmented batches...
    # ...whose inputs near 1000 moved the weight far more than inputs in [0, 1] could.
    assert np.abs(model.get_weights()[0] - before).max() > 1e-3


def test_unlabelled_task_dataset_yields_inputs_only():
    data = TaskDataset(np.array(["a", "bb"], dtype=object), transform=tf.strings.length)
    ds, _ = make_dataset(data, batch_size=2)
    assert _batches(ds)[0].tolist() == [1, 2]


def test_task_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same number of samples"):
        TaskDataset(np.array(["a", "b"], dtype=object), np.array([1]))
    with pytest.raises(ValueError, match="at least one sample"):
        TaskDataset(np.array([], dtype=object))
    with pytest.raises(TypeError, match="transform"):
        TaskDataset(np.array(["a"], dtype=object), transform="tokenize")
    with pytest.raises(TypeError, match=r"`reader` must be callable or None. Received: reader="):
        TaskDataset(np.array(["a"], dtype=object), reader="text")
    with pytest.raises(TypeError, match=r"`layer_groups` must be callable or None. Received"):
        TaskDataset(np.array(["a"], dtype=object), layer_groups=[["embedding"]])


def test_multi_input_dict_and_list():
    ds, n = make_dataset(({"a": np.zeros((5, 2)), "b": np.ones(5)}, np.arange(5)), 2)
    assert n == 5 and set(ds.element_spec[0]) == {"a", "b"}
    ds, n = make_dataset(([np.zeros((5, 2)), np.zeros((5, 1))], np.arange(5)), 2)
    x, _ = ds.element_spec
    assert isinstance(x, tuple) and x[0].shape[-1] == 2 and x[1].shape[-1] == 1


def test_to_arrays_reads_list_of_arrays_as_inputs_and_list_of_rows_as_samples():
    assert isinstance(to_arrays([np.zeros(3), np.zeros(3)]), list)
    assert to_arrays([[1, 2], [3, 4]]).shape == (2, 2)


def test_unbatched_tf_dataset_is_batched_and_counted():
    raw = tf.data.Dataset.from_tensor_slices((np.arange(10.0), np.arange(10)))
    assert not is_batched(raw)
    ds, n = make_dataset(raw, batch_size=4)
    assert n == 10 and int(ds.cardinality()) == 3


def test_batched_tf_dataset_is_used_as_is():
    raw = tf.data.Dataset.from_tensor_slices((np.arange(10.0), np.arange(10)))
    batched = raw.batch(3).map(lambda a, b: (a, b))
    assert is_batched(batched)
    ds, n = make_dataset(batched, batch_size=5)
    assert n == 10 and int(ds.cardinality()) == 4
    _, n = make_dataset(raw.batch(3, drop_remainder=True), batch_size=5)
    assert n == 9


def test_tf_dataset_of_unknown_length_gives_none():
    raw = tf.data.Dataset.from_tensor_slices(np.arange(10.0)).filter(lambda a: a > 2)
    ds, n = make_dataset(raw, batch_size=4)
    assert n is None and sum(b.shape[0] for b in _batches(ds)) == 7


class _Batches(keras.utils.PyDataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return np.full((4, 2), i, dtype="float32"), np.arange(4)


def test_pydataset_items_are_batches():
    ds, n = make_dataset(_Batches(), batch_size=99)
    batches = _batches(ds)
    assert n is None and int(ds.cardinality()) == 3
    assert [b[0][0, 0] for b in batches] == [0, 1, 2]


class _PaddedBatches(keras.utils.PyDataset):
    """Token ids padded per batch to the batch's longest sequence: widths 3, 5, 4."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return np.ones((2, (3, 5, 4)[i]), dtype="int32"), np.arange(2)


def test_pydataset_batches_may_differ_in_a_non_batch_dimension():
    ds, _ = make_dataset(_PaddedBatches(), batch_size=99)
    assert [b[0].shape[1] for b in _batches(ds)] == [3, 5, 4]
    assert ds.element_spec[0].shape.as_list() == [None, None]


class _OddMiddleBatch(_PaddedBatches):
    """Widths 8, 8, 5, 8: the batches the spec is read from agree on 8."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.ones((2, (8, 8, 5, 8)[i]), dtype="int32"), np.arange(2)


def test_a_pydataset_batch_that_does_not_fit_the_shape_read_is_named():
    ds, _ = make_dataset(_OddMiddleBatch(), batch_size=99)
    with pytest.raises(Exception, match=r"`data` batch 2 has a part of shape \(2, 5\), "
                                        r"but batches \[0, 1, 3\] had \(8,\)"):
        _batches(ds)


def test_pydataset_dimensions_the_batches_agree_on_stay_known():
    ds, _ = make_dataset(_Batches(), batch_size=99)
    assert ds.element_spec[0].shape.as_list() == [None, 2]


@pytest.mark.parametrize(
    "data, error, match",
    [
        ((np.zeros((0, 3)), np.zeros(0)), ValueError, "at least one sample"),
        ((np.zeros((3, 3)), np.zeros(2)), ValueError, "3 samples in x and 2 in y"),
        (({"a": np.zeros(3), "b": np.zeros(2)}, np.zeros(3)), ValueError, "same number"),
        ("abc", TypeError, "data of type str"),
        (5, TypeError, "data of type int"),
    ],
)
def test_bad_data_is_rejected(data, error, match):
    with pytest.raises(error, match=match):
        make_dataset(data, batch_size=2)


@pytest.mark.parametrize(
    "batch_size, error",
    [(0, ValueError), (-3, ValueError), (True, TypeError), (2.0, TypeError), ("2", TypeError)],
)
def test_bad_batch_size_is_rejected(batch_size, error):
    with pytest.raises(error, match="`batch_size` must be a positive int. Received: batch_size="):
        make_dataset(np.zeros(3), batch_size=batch_size)


@pytest.mark.parametrize("kwargs, name", [
    ({"shuffle": 1}, "shuffle"),
    ({"shuffle": "yes"}, "shuffle"),
    ({"shuffle": None}, "shuffle"),
    ({"drop_remainder": 1}, "drop_remainder"),
    ({"repeat": "no"}, "repeat"),
    ({"batched": 0}, "batched"),
    ({"bucketing": None}, "bucketing"),
])
def test_flags_of_the_wrong_type_are_type_errors(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}` must be True or False. Received: {name}="):
        make_dataset((np.zeros((4, 2)), np.zeros(4)), batch_size=2, **kwargs)


@pytest.mark.parametrize("seed, error", [("1", TypeError), (1.0, TypeError), (True, TypeError),
                                         (-1, ValueError)])
def test_a_bad_seed_is_refused(seed, error):
    with pytest.raises(error, match="`seed` must be None or an int >= 0. Received: seed="):
        make_dataset((np.zeros((4, 2)), np.zeros(4)), batch_size=2, shuffle=True, seed=seed)


def test_numpy_flags_and_seeds_are_taken():
    ds, n = make_dataset((np.zeros((4, 2)), np.zeros(4)), batch_size=2, shuffle=np.bool_(True),
                         seed=np.int64(3), drop_remainder=np.bool_(False))
    assert n == 4 and int(ds.cardinality()) == 2


@pytest.mark.parametrize("kwargs, name", [
    ({"self_supervised": 1}, "self_supervised"),
    ({"sequence_labels": "yes"}, "sequence_labels"),
    ({"sequence_labels": None}, "sequence_labels"),
])
def test_task_dataset_flags_of_the_wrong_type_are_type_errors(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}` must be True or False. Received: {name}="):
        TaskDataset(np.array(["a", "b"], dtype=object), **kwargs)


def test_a_numpy_batch_size_is_taken():
    dataset, n = make_dataset(np.zeros(3), batch_size=np.int64(2))
    assert n == 3 and int(dataset.cardinality()) == 2


def test_batching_is_found_through_zip_and_undone_by_unbatch():
    a = tf.data.Dataset.range(10).batch(2)
    b = tf.data.Dataset.range(10).batch(2)
    assert is_batched(tf.data.Dataset.zip((a, b)).map(lambda u, v: (u, v)))
    assert not is_batched(a.unbatch())
    assert is_batched(a.unbatch().batch(3))


_SAMPLES = tf.data.Dataset.range(20)


@pytest.mark.parametrize("make, batched", [
    (lambda d: d.bucket_by_sequence_length(lambda v: tf.constant(1), [5], [4, 4]), True),
    (lambda d: d.group_by_window(lambda v: v % 2, lambda k, w: w.batch(4), window_size=4), True),
    (lambda d: d.group_by_window(lambda v: v % 2, lambda k, w: w, window_size=4), False),
    (lambda d: d.batch(2).group_by_window(lambda v: v[0] % 2, lambda k, w: w, 4), True),
    (lambda d: d.batch(4).flat_map(tf.data.Dataset.from_tensor_slices), False),
    (lambda d: d.batch(4).flat_map(lambda v: tf.data.Dataset.from_tensors(v).unbatch()), False),
    (lambda d: d.batch(4).flat_map(tf.data.Dataset.from_tensors), True),
    (lambda d: d.window(4).flat_map(lambda w: w.batch(4)), True),
    (lambda d: tf.data.Dataset.range(2).interleave(lambda i: d.batch(4)), True),
    (lambda d: tf.data.Dataset.range(2).interleave(lambda i: d.batch(4).map(lambda v: v)), True),
    (lambda d: tf.data.Dataset.range(2).interleave(lambda i: d), False),
], ids=["bucket_by_sequence_length", "group_by_window", "group_by_window_of_samples",
        "group_by_window_of_batches", "flat_map_slices", "flat_map_unbatch",
        "flat_map_of_batches", "window_flat_map_batch", "interleave_batched",
        "interleave_batched_then_mapped", "interleave_of_samples"])
def test_batching_is_judged_by_what_a_windowing_or_flat_map_step_returns(make, batched):
    dataset = make(_SAMPLES)
    assert is_batched(dataset) is batched
    assert dataset.element_spec.shape.rank == int(batched)


def test_batched_flag_overrides_detection():
    gen = tf.data.Dataset.from_tensors((np.zeros((4, 2), "float32"), np.zeros(4))).repeat(3)
    ds, _ = make_dataset(gen, batch_size=8, batched=True)
    assert ds.element_spec[0].shape.as_list() == [4, 2]
    ds, _ = make_dataset(gen, batch_size=8)
    assert ds.element_spec[0].shape.as_list() == [None, 4, 2]


# ----------------------------------------------------------------- length bucketing
def _ragged_task(n=200, maxlen=64, seed=0, **kwargs):
    """Examples whose value is their length; the transform pads a 1 per position."""
    lengths = np.random.default_rng(seed).integers(1, maxlen + 1, size=n)
    calls = []

    def transform(x, width=None):
        calls.append(width)
        width = maxlen if width is None else width
        return tf.sequence_mask(x, width, dtype=tf.int32)

    data = TaskDataset(lengths, lengths * 10, transform=transform, lengths=lengths, **kwargs)
    return data, lengths, calls


def test_bucketed_batches_are_padded_to_their_width_and_mix_only_one_width():
    data, lengths, _ = _ragged_task()
    ds, n = make_dataset(data, batch_size=16, shuffle=True, seed=0)
    batches = _batches(ds)
    assert n == 200 and len(batches) == int(ds.cardinality())
    for x, y in batches:
        real = x.sum(axis=1)
        widths = set(((real + 15) // 16 * 16).tolist())
        assert widths == {x.shape[1]}
        np.testing.assert_array_equal(real * 10, y)
    assert sorted(int(v) for _, y in batches for v in y // 10) == sorted(lengths.tolist())


def test_unshuffled_bucketed_batches_keep_the_order_and_pad_to_the_batch():
    data, lengths, _ = _ragged_task()
    ds, _ = make_dataset(data, batch_size=16)
    batches = _batches(ds)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), lengths * 10)
    for x, _ in batches:
        assert x.shape[1] == (x.sum(axis=1).max() + 15) // 16 * 16


def test_bucketing_off_calls_the_transform_without_width_and_keeps_the_full_width():
    data, _, calls = _ragged_task()
    ds, _ = make_dataset(data, batch_size=16, shuffle=True, seed=0, bucketing=False)
    assert {x.shape[1] for x, _ in _batches(ds)} == {64}
    assert calls and all(width is None for width in calls)


def test_lengths_may_be_a_function_of_x_called_once():
    calls = []

    def lengths_of(x):
        calls.append(1)
        return np.asarray(x)

    data = TaskDataset(np.array([3, 20]), transform=lambda x, w=None: x, lengths=lengths_of)
    assert data.lengths.tolist() == [3, 20] and data.lengths.tolist() == [3, 20]
    assert len(calls) == 1


def test_lengths_are_checked():
    with pytest.raises(ValueError, match="one non-negative int per sample"):
        TaskDataset(np.zeros(3), transform=lambda x, w=None: x, lengths=[1, 2])
    with pytest.raises(ValueError, match="one non-negative int per sample"):
        TaskDataset(np.zeros(2), transform=lambda x, w=None: x, lengths=[1.5, 2.0])
    with pytest.raises(TypeError, match="transform"):
        TaskDataset(np.zeros(2), lengths=[1, 2])


@pytest.mark.parametrize("lengths", [np.zeros((3, 0), int), lambda x: np.zeros((3, 0), int)])
def test_lengths_without_a_column_are_refused_naming_the_shapes(lengths):
    with pytest.raises(ValueError, match=r"`lengths` .*shape \(3,\) or \(3, k\) with k >= 1\. "
                                         r"Received: lengths of shape \(3, 0\)"):
        data = TaskDataset(np.array(["a", "b", "c"], dtype=object), np.zeros(3),
                           transform=lambda x, w=None: x, lengths=lengths)
        data.lengths  # a function of x is called when first needed


def test_subset_keeps_examples_labels_and_lengths_together():
    data, lengths, _ = _ragged_task(n=10)
    order = np.argsort(lengths, kind="stable")[::-1]
    sub = data.subset(order)
    np.testing.assert_array_equal(sub.x, lengths[order])
    np.testing.assert_array_equal(sub.y, lengths[order] * 10)
    np.testing.assert_array_equal(sub.lengths, lengths[order])
    assert sub.transform is data.transform


def test_sequence_labels_are_cut_to_the_last_sequence_width():
    lengths = np.random.default_rng(0).integers(1, 33, size=(60, 2))

    def transform(x, width=None):
        widths = [48, 48] if width is None else [width[0], width[1]]
        return {"a": tf.sequence_mask(x[:, 0], widths[0], dtype=tf.int32),
                "b": tf.sequence_mask(x[:, 1], widths[1], dtype=tf.int32)}

    labels = np.stack([np.where(np.arange(48) < n, n, 0) for n in lengths[:, 1]])
    data = TaskDataset(lengths, labels, transform=transform, lengths=lengths,
                       sequence_labels=True)
    batches = _batches(make_dataset(data, batch_size=8, shuffle=True, seed=0)[0])
    assert {y.shape[1] for _, y in batches} > {16}  # several widths, not the fixed 48
    for x, y in batches:
        assert y.shape[1] == x["b"].shape[1] < 48
        np.testing.assert_array_equal(y != 0, x["b"] != 0)  # every label kept, aligned
    fixed = _batches(make_dataset(data, batch_size=8, bucketing=False)[0])
    assert {y.shape[1] for _, y in fixed} == {48}
    assert data.subset([2, 1]).sequence_labels


def test_sequence_labels_need_lengths_and_positioned_labels():
    with pytest.raises(ValueError, match="sequence_labels.*lengths=None"):
        TaskDataset(np.zeros((2, 3)), np.zeros((2, 3)), transform=lambda x, w=None: x,
                    sequence_labels=True)
    with pytest.raises(ValueError, match=r"sequence_labels.*shape \(2,\)"):
        TaskDataset(np.zeros((2, 3)), np.zeros(2), transform=lambda x, w=None: x,
                    lengths=[1, 2], sequence_labels=True)
