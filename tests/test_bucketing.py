"""Tests for ktlite.bucketing: widths and the length-bucketed, reshuffled index batches."""

import numpy as np
import pytest
import tensorflow as tf

from ktlite.bucketing import WIDTH_STEP, bucketed_indices, num_bucketed_batches, round_width

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
