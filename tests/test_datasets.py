"""ktlite.datasets: the shipped WordNet lexnames sample and its `split` argument."""

import pytest

from ktlite.datasets import load_wordnet_lexnames


def test_the_test_split_loads_as_two_lists_of_equal_length():
    texts, labels = load_wordnet_lexnames("test")
    assert len(texts) == len(labels) == 3569
    assert all(isinstance(t, str) for t in texts[:10]) and "." in labels[0]


def test_an_unknown_split_is_a_value_error():
    with pytest.raises(ValueError, match=r"`split` must be one of \['train', 'test'\]. "
                                         "Received: split='validation'"):
        load_wordnet_lexnames("validation")


@pytest.mark.parametrize("split", [None, 0, ["test"]])
def test_a_split_of_the_wrong_type_is_a_type_error(split):
    with pytest.raises(TypeError, match=r"`split` must be one of \['train', 'test'\]. "
                                        "Received: split="):
        load_wordnet_lexnames(split)
