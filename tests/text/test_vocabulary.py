"""Tests for ktlite.text.vocabulary: WordPiece learning and vocabulary checks."""

import pytest

from ktlite.text.vocabulary import SPECIAL_TOKENS, _validate_vocab, learn_wordpiece_vocab


def test_learned_vocab_starts_with_the_special_tokens_and_respects_the_size():
    vocab = learn_wordpiece_vocab(["a cat sat on the mat", "a dog ran"] * 5, vocab_size=60)
    assert tuple(vocab[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
    assert "cat" in vocab and len(vocab) <= 60


def test_vocab_validation_names_the_bad_token():
    good = list(SPECIAL_TOKENS) + ["a"]
    _validate_vocab(good, "vocab")
    with pytest.raises(ValueError, match="special tokens"):
        _validate_vocab(good[::-1], "vocab")
    with pytest.raises(ValueError, match=r"vocab\[5\]"):
        _validate_vocab(good[:-1] + ["a b"], "vocab")
    with pytest.raises(ValueError, match=r"repeats a token \(at index 6\)"):
        _validate_vocab(good + ["a"], "vocab")
