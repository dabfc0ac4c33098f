"""Tests for ktlite.splits: the train/validation split every task's loaders share."""

import numpy as np
import pytest

from ktlite.splits import check_val_pct, split_indices


def test_stratified_split_keeps_each_class_share_and_covers_every_example_once():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    train, val = split_indices(y, stratify=True, val_pct=0.2, random_state=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert np.bincount(y[val]).tolist() == [10, 6, 4]


def test_a_class_with_one_example_stays_in_training():
    y = np.array([0] * 20 + [1])
    train, val = split_indices(y, stratify=True, val_pct=0.5, random_state=0)
    assert 20 in train and 20 not in val


def test_same_seed_same_split_and_unstratified_split_has_the_asked_size():
    y = np.zeros(40)
    a = split_indices(y, stratify=False, val_pct=0.25, random_state=3)
    b = split_indices(y, stratify=False, val_pct=0.25, random_state=3)
    np.testing.assert_array_equal(a[1], b[1])
    assert len(a[1]) == 10


def test_a_split_that_leaves_a_part_empty_is_refused_naming_the_examples():
    with pytest.raises(ValueError, match="empty training or validation split for 3 pairs"):
        split_indices(np.zeros(3), stratify=False, val_pct=0.1, random_state=0, noun="pairs")


def test_unique_integer_labels_get_a_hint_about_regression():
    with pytest.raises(ValueError, match="label_mode='regression'"):
        split_indices(np.arange(50), True, 0.1, 0)


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan")])
def test_check_val_pct_out_of_range_is_a_value_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match="`val_pct`.*Received: val_pct="):
        check_val_pct(bad)


@pytest.mark.parametrize("bad", [True, "0.1", None, [0.1]])
def test_check_val_pct_of_the_wrong_type_is_a_type_error_naming_the_argument(bad):
    with pytest.raises(TypeError, match="`val_pct` must be a float in \\[0, 1\\). Received"):
        check_val_pct(bad)


def test_check_val_pct_takes_numpy_numbers():
    assert check_val_pct(np.float32(0.25)) == 0.25 and check_val_pct(np.int64(0)) == 0.0


@pytest.mark.parametrize("stratify", [True, False])
def test_val_pct_zero_holds_out_nothing(stratify):
    assert check_val_pct(0) == 0.0
    train, val = split_indices(np.array([0, 1] * 5), stratify, 0.0, random_state=0)
    assert train.tolist() == list(range(10)) and val.size == 0


def test_a_stratified_split_short_of_val_pct_says_how_many_it_held_out():
    y = np.repeat(np.arange(5), 2)  # each class keeps one of its two in training
    with pytest.warns(UserWarning, match=r"`val_pct`=0.9 held out 5 of 10 texts \(50%\), "
                                         r"not 9: a stratified split keeps"):
        train, val = split_indices(y, True, 0.9, 0, "texts")
    assert len(val) == 5


def test_a_multilabel_split_keeps_a_positive_of_every_label_in_training():
    y = np.zeros((20, 3), "float32")
    y[:, 0] = 1
    y[::2, 1] = 1
    y[7, 2] = 1  # the rare label's only positive
    draws = [split_indices(y, False, 0.5, seed, "texts", ["a", "b", "rare"])
             for seed in range(10)]
    assert all(7 in train for train, _ in draws)  # in half the first draws it went to val
    # Two labels whose only positives are two examples, with room for one in training.
    y[:, 1] = 0
    y[12, 1] = 1
    message = r"All the texts with the label\(s\) '.*' went to the validation split, in each of 20"
    with pytest.warns(UserWarning, match=message):
        split_indices(y, False, 0.95, 0, "texts", ["a", "b", "rare"])
