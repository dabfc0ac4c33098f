"""Tests for ktlite.bucketing: widths and the length-bucketed, reshuffled index batches."""

import numpy as np
import pytest
import tensorflow as tf

from ktlite.bucketing import (
    WIDTH_STEP,
    bucketed_indices,
    check_width,
    num_bucketed_batches,
    round_width,
)

RNG = np.random.default_rng(0)
LENGTHS = RNG.integers(1, 130, size=500)  # widths 16..144: nine groups


def _epoch(ds):
    return [b.tolist() for b in ds.as_numpy_iterator()]


def test_round_width_rounds_up_to_multiples_of_16_for_arrays_and_tensors():
    assert round_width(np.array([0, 1, 16, 17, 40])).tolist() == [16, 16, 16, 32, 48]
    assert int(round_width(tf.constant(33))) == 48
    assert WIDTH_STEP == 16


def test_every_example_is_seen_exactly_once_per_epoch_and_the_count_is_known():
    ds = bucketed_indices(LENGTHS, batch_size=32, seed=1)
    for _ in range(2):
        batches = _epoch(ds)
        seen = sorted(i for b in batches for i in b)
        assert seen == list(range(len(LENGTHS)))
        assert len(batches) == int(ds.cardinality()) == num_bucketed_batches(LENGTHS, 32, False)


def test_a_batch_mixes_lengths_only_within_one_width():
    batches = _epoch(bucketed_indices(LENGTHS, batch_size=32, seed=1))
    widths = [set(round_width(LENGTHS[b]).tolist()) for b in batches]
    assert all(len(w) == 1 for w in widths)
    assert len(set.union(*widths)) == len(set(round_width(LENGTHS).tolist()))


def test_order_changes_between_epochs_batches_and_widths_are_shuffled():
    ds = bucketed_indices(LENGTHS, batch_size=32, seed=1)
    first, second = _epoch(ds), _epoch(ds)
    assert first != second
    assert sorted(map(sorted, first)) != sorted(map(sorted, second))  # new batch members
    widths = [int(round_width(LENGTHS[b[0]])) for b in first]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)
    # Within a group, membership follows the shuffle: a group's first batch is not
    # simply its lowest indices.
    group = [b for b in first if round_width(LENGTHS[b[0]]) == 16]
    assert any(b != sorted(b) for b in group)


def test_the_same_seed_gives_the_same_epochs():
    a = bucketed_indices(LENGTHS, batch_size=32, seed=7)
    b = bucketed_indices(LENGTHS, batch_size=32, seed=7)
    assert _epoch(a) == _epoch(b)


def test_drop_remainder_keeps_only_full_batches():
    ds = bucketed_indices(LENGTHS, batch_size=32, seed=0, drop_remainder=True)
    batches = _epoch(ds)
    assert batches and all(len(b) == 32 for b in batches)
    assert len(batches) == int(ds.cardinality()) == num_bucketed_batches(LENGTHS, 32, True)


def test_two_length_columns_bucket_on_both_widths():
    lengths = np.stack([LENGTHS, RNG.integers(1, 60, size=len(LENGTHS))], axis=1)
    batches = _epoch(bucketed_indices(lengths, batch_size=16, seed=0))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len({tuple(w) for w in round_width(lengths[b]).tolist()}) == 1


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_any_batch_size_covers_the_data(batch_size):
    batches = _epoch(bucketed_indices(LENGTHS[:50], batch_size=batch_size, seed=0))
    assert sorted(i for b in batches for i in b) == list(range(50))


def test_one_width_for_all_gives_plain_shuffled_batches_with_one_remainder():
    batches = _epoch(bucketed_indices(np.full(70, 9), batch_size=32, seed=0))
    assert [len(b) for b in batches] == [32, 32, 6]
    assert sorted(i for b in batches for i in b) == list(range(70))


@pytest.mark.parametrize("call, error, message", [
    (lambda: num_bucketed_batches([], 2, False), ValueError, r"Received: lengths of shape \(0,\)"),
    (lambda: bucketed_indices([], 2), ValueError, r"one int >= 0 per example"),
    (lambda: num_bucketed_batches([3, 4], -1, False), ValueError, r"batch_size=-1"),
    (lambda: bucketed_indices([3, 4], 0), ValueError, r"batch_size=0"),
    (lambda: bucketed_indices([3, 4], 2.0), TypeError, r"batch_size=2.0"),
    (lambda: bucketed_indices([3.0, float("nan")], 2), ValueError, r"dtype float64"),
    (lambda: bucketed_indices([3, -1], 2), ValueError, r"one int >= 0 per example"),
    (lambda: bucketed_indices([3, 4], 2, seed="x"), TypeError, r"seed='x'"),
    (lambda: round_width(np.array([3]), step=0), ValueError, r"step=0"),
    (lambda: round_width(np.array([3]), step=2.0), TypeError, r"step=2.0"),
    (lambda: bucketed_indices([3, 4], 2, seed=-1), ValueError, r"seed=-1"),
])
def test_bad_arguments_are_refused_naming_them(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call", [
    lambda: num_bucketed_batches(np.zeros((3, 0), int), 2, False),
    lambda: bucketed_indices(np.zeros((3, 0), int), 2, seed=0),
])
def test_lengths_without_a_column_are_refused_naming_the_shape(call):
    with pytest.raises(ValueError, match=r"`lengths` must hold .*k >= 1.*shape \(3, 0\)"):
        call()


@pytest.mark.parametrize("drop_remainder", ["no", 1, None])
def test_a_drop_remainder_that_is_no_bool_is_a_type_error(drop_remainder):
    message = f"`drop_remainder` must be True or False. Received: drop_remainder={drop_remainder!r}"
    with pytest.raises(TypeError, match=message):
        num_bucketed_batches(np.array([3, 20, 40, 5]), 2, drop_remainder)
    with pytest.raises(TypeError, match=message):
        bucketed_indices(np.array([3, 20, 40, 5]), 2, seed=0, drop_remainder=drop_remainder)


def test_a_numpy_bool_drop_remainder_is_taken():
    assert num_bucketed_batches(np.array([3, 4, 20, 21, 22]), 2, np.bool_(True)) == 2


@pytest.mark.parametrize("lengths", [
    np.array([1.5, 17.2]), [3.0], 2.5, np.array([True]), tf.constant([1.5]),
])
def test_round_width_refuses_lengths_that_are_no_ints(lengths):
    with pytest.raises(TypeError, match="`lengths` must be ints.*Received: lengths of dtype"):
        round_width(lengths)


@pytest.mark.parametrize("lengths", [np.array([3, -5]), -1, tf.constant(-3), tf.Variable([-4])])
def test_round_width_refuses_negative_lengths(lengths):
    with pytest.raises(ValueError, match="`lengths` must be ints >= 0. Received: lengths with"):
        round_width(lengths)


def test_round_width_takes_ints_numpy_ints_and_traced_int_tensors():
    assert round_width(5) == 16 and round_width(np.int32(17)) == 32
    assert round_width(np.zeros(0, np.int64)).tolist() == []
    traced = tf.function(lambda x: round_width(tf.reduce_max(x)))
    assert int(traced(tf.constant([3, 40]))) == 48


@pytest.mark.parametrize("width", [1, np.int64(7), np.array(7), tf.constant(7), tf.Variable(7)])
def test_check_width_takes_ints_and_integer_tensors_as_they_are(width):
    assert check_width(width) is width or check_width(width) == 7


@pytest.mark.parametrize("width, error", [(0, ValueError), (tf.constant(-2), ValueError),
                                          (np.array(0), ValueError), (1.0, TypeError),
                                          (False, TypeError), (tf.constant(1.0), TypeError),
                                          ("16", TypeError)])
def test_check_width_refuses_what_is_no_int_above_zero_naming_the_argument(width, error):
    with pytest.raises(error, match=r"`batch_width`.*Received: batch_width"):
        check_width(width, "batch_width")
