"""The n-gram baselines of `benchmarks/generation.py`: the issue's target is read against
them, so each must be a probability distribution, and the open-vocabulary one must charge
an unseen word for its spelling."""

import importlib.util
import math
import re
from collections import Counter
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "generation.py"
_spec = importlib.util.spec_from_file_location("generation_benchmark", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TEXTS = [
    "library for reading files", "library for writing files", "tools for reading mail",
    "Python bindings for the library", "documentation for the tools", "reading tools",
    "library for Python", "files for the mail tools", "writing mail",
]


def test_the_character_model_is_a_distribution_over_the_next_character():
    model = bench.CharacterNgram(["reading", "writing", "read", "ring"], order=3)
    alphabet = set("readingwt") | {bench.END_OF_WORD, "\u2603"}  # + one unseen character
    marks = bench.START_OF_WORD * 2
    for history in (marks, marks[1:] + "r", "re", "in", "ng", "zq"):
        total = sum(model._prob(history, c) for c in alphabet)
        assert total == pytest.approx(1.0, abs=1e-12), history


def test_the_closed_trigram_is_a_distribution_over_its_vocabulary_and_one_unseen_word():
    model = bench.KneserNeyTrigram(TEXTS)
    outcomes = [*model.unigram_left, "an-unseen-word"]
    for u, v in ((bench.BOS, bench.BOS), (bench.BOS, "library"), ("library", "for"),
                 ("for", "the"), ("never", "seen")):
        assert sum(model.prob(u, v, w) for w in outcomes) == pytest.approx(1.0, abs=1e-12)


def test_an_unseen_word_costs_its_spelling_under_the_open_vocabulary_model_only():
    open_vocab = bench.OpenVocabularyTrigram(TEXTS, min_count=2, char_order=3)
    closed = bench.KneserNeyTrigram(TEXTS)
    plain, odd = "library for readings", "library for xqzvkwpj"
    # The closed model gives every unseen word the same probability...
    assert closed.perplexity_per_word([plain]) == pytest.approx(closed.perplexity_per_word([odd]))
    # ...the open one prices the spelling: a word like the training words is cheaper.
    assert open_vocab.perplexity_per_word([plain]) < open_vocab.perplexity_per_word([odd])
    # Unspelled, the unseen word is just `<unk>`, whatever its spelling.
    assert open_vocab.perplexity_per_word([plain], spelled=False) == pytest.approx(
        open_vocab.perplexity_per_word(["library for readingz"], spelled=False))
    # Exactly: the words' trigram probabilities (`<unk>` for the unseen one), times the
    # unseen word's spelling probability.
    words = "library for xqzvkwpj".split()
    tokens = [bench.BOS, bench.BOS, "library", "for", bench.UNK, bench.EOS]
    nll = -sum(math.log(open_vocab.words.prob(u, v, w))
               for u, v, w in zip(tokens, tokens[1:], tokens[2:]))
    nll -= open_vocab.spelling.log_prob("xqzvkwpj")
    assert open_vocab.perplexity_per_word([odd]) == pytest.approx(math.exp(nll / len(words)))


def test_the_settings_with_the_lowest_held_out_perplexity_are_refitted_on_all_texts(capsys):
    texts = [f"{t} item{i % 7}" for i, t in enumerate(TEXTS * 4)]
    model = bench.choose_open_vocabulary(texts)
    printed = capsys.readouterr().out
    found = {(int(m), int(c)): float(p)
             for m, c, p in re.findall(r"min_count (\d) / char order (\d): ([\d.]+)", printed)}
    assert len(found) == 8
    best = min(found, key=found.get)
    assert (model.min_count, model.spelling.order) == best
    # Refitted on every text: its vocabulary is that of all of them, not of nine tenths.
    counts = Counter(w for t in texts for w in t.split())
    assert model.vocab == {w for w, n in counts.items() if n >= best[0]}
