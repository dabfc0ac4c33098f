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


def test_pieces_past_the_tokenizer_byte_limit_are_not_learned_nor_loaded():
    texts = [f"short text number {i} about films" for i in range(200)]
    texts += ["look " + "\u0e01" * 90 + " here", "x" * 300]  # 270 bytes of Thai; 300 bytes
    vocab = learn_wordpiece_vocab(texts, vocab_size=1000)
    assert max(len(t.removeprefix("##").encode()) for t in vocab) <= 100
    with pytest.raises(ValueError, match=r"at most 100 UTF-8 bytes long. Received: a longer "
                                         r"token at vocab\[5\]"):
        _validate_vocab([*SPECIAL_TOKENS, "\u0e01" * 40], "vocab")  # 120 bytes


_LEARN_IN_A_NEW_PROCESS = """
import json, sys
from ktlite.datasets import load_wordnet_lexnames
from ktlite.text.vocabulary import learn_wordpiece_vocab
texts, _ = load_wordnet_lexnames("train")
print(json.dumps(learn_wordpiece_vocab(texts[:1500], vocab_size=int(sys.argv[1]))))
"""


def test_the_same_texts_give_the_same_vocabulary_in_every_process():
    # The trainer numbered continuations ("##e") in a hash map's order, which changes from
    # process to process: ids moved, and ties between equal counts picked other pieces.
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def learn(size):
        done = subprocess.run([sys.executable, "-c", _LEARN_IN_A_NEW_PROCESS, str(size)],
                              capture_output=True, text=True, timeout=300, env=env, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = learn(3000)
    assert learn(3000) == first and len(first) == 3000
