"""Generation benchmark: held-out perplexity per word, causal LM vs a Kneser-Ney trigram.

Data: the English (or, with `--column it`, Italian) side of the Debian package synopses
`debian_en_it_{train,test}.csv.gz`, built by `make_debian_pairs.py` kept beside the data
in the shared data folder (its docstring says how), or with `--corpus wordnet` the WordNet
glosses of `wordnet_lexnames_{train,test}.csv.gz` (`make_wordnet_lexnames.py`, same
folder; "lemma: gloss" texts, labels unused). Pass the folder with `--data-dir` (default
`../shared/data` relative to the repository).

Both models are scored the same way: summed negative log-likelihood of every word of a
synopsis and of its end, divided by the number of whitespace-separated words, then
exponentiated (`ktlite.generation.perplexity_per_word` for the Transformer). The n-gram
model is an interpolated Kneser-Ney trigram over whitespace words (discount 0.75), written
here because nltk is not a dependency of ktlite; its lowest order is mixed with a uniform
distribution over the vocabulary plus one unknown word, so unseen test words get a
probability instead of an infinite loss.

Examples:
    python benchmarks/generation.py --quick           # ~3 minutes
    python benchmarks/generation.py --minutes 20
    python benchmarks/generation.py --minutes 20 --corpus wordnet
    python benchmarks/generation.py --minutes 20 --vocab-size 2000   # RESULTS probe
    python benchmarks/generation.py --minutes 20 --dropout 0.3       # RESULTS probe
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BOS, EOS = "<s>", "</s>"


def read_texts(data_dir: Path, split: str, corpus: str, column: str,
               limit: int | None) -> list[str]:
    name, column = (("wordnet_lexnames", "text") if corpus == "wordnet"
                    else ("debian_en_it", column))
    with gzip.open(Path(data_dir) / f"{name}_{split}.csv.gz", "rt", encoding="utf-8",
                   newline="") as f:
        texts = [row[column] for row in csv.DictReader(f)]
    return texts[:limit] if limit else texts


class KneserNeyTrigram:
    """Interpolated Kneser-Ney trigram over whitespace words (fixed discount)."""

    def __init__(self, texts: list[str], discount: float = 0.75, uniform: float = 0.01) -> None:
        self.d, self.uniform = discount, uniform
        self.tri, self.bi_ctx = Counter(), Counter()
        self.tri_followers = defaultdict(set)
        self.bi_left = defaultdict(set)  # (v, w) -> distinct u before it
        for text in texts:
            words = [BOS, BOS, *text.split(), EOS]
            for u, v, w in zip(words, words[1:], words[2:]):
                self.tri[(u, v, w)] += 1
                self.bi_ctx[(u, v)] += 1
                self.tri_followers[(u, v)].add(w)
                self.bi_left[(v, w)].add(u)
        self.cont_bi = Counter({vw: len(us) for vw, us in self.bi_left.items()})
        self.cont_ctx, self.cont_followers = Counter(), Counter()
        self.unigram_left = Counter()
        for (v, w), n in self.cont_bi.items():
            self.cont_ctx[v] += n
            self.cont_followers[v] += 1
            self.unigram_left[w] += 1
        self.unigram_total = sum(self.unigram_left.values())
        self.vocab = len(self.unigram_left) + 1

    def _unigram(self, w: str) -> float:
        kn = self.unigram_left[w] / self.unigram_total
        return (1 - self.uniform) * kn + self.uniform / self.vocab

    def _bigram(self, v: str, w: str) -> float:
        total = self.cont_ctx[v]
        if not total:
            return self._unigram(w)
        mass = self.d * self.cont_followers[v] / total
        return max(self.cont_bi[(v, w)] - self.d, 0) / total + mass * self._unigram(w)

    def prob(self, u: str, v: str, w: str) -> float:
        total = self.bi_ctx[(u, v)]
        if not total:
            return self._bigram(v, w)
        mass = self.d * len(self.tri_followers[(u, v)]) / total
        return max(self.tri[(u, v, w)] - self.d, 0) / total + mass * self._bigram(v, w)

    def perplexity_per_word(self, texts: list[str]) -> float:
        nll, words = 0.0, 0
        for text in texts:
            tokens = [BOS, BOS, *text.split(), EOS]
            words += len(tokens) - 3
            nll -= sum(math.log(self.prob(u, v, w))
                       for u, v, w in zip(tokens, tokens[1:], tokens[2:]))
        return math.exp(nll / words)


def breakdown(ngram: KneserNeyTrigram, lm_perplexity, train: list[str], test: list[str]) -> None:
    """Both models on the test texts whose words were all seen in training, and on the rest.

    The n-gram model gives every unseen word one fixed share of its uniform floor, whatever
    its spelling; the causal LM pays for each WordPiece of it. Splitting the test texts shows
    how much of the gap is that.
    """
    seen = {w for text in train for w in text.split()}
    unseen_per_text = [sum(w not in seen for w in t.split()) for t in test]
    known = [t for t, n in zip(test, unseen_per_text) if not n]
    novel = [t for t, n in zip(test, unseen_per_text) if n]
    unseen_words = sum(unseen_per_text)
    all_words = sum(len(t.split()) for t in test)
    print(f"unseen words: {unseen_words} of {all_words} test words "
          f"({unseen_words / all_words:.1%}), in {len(novel)} of {len(test)} texts")
    for name, texts in (("texts with only seen words", known),
                        ("texts with an unseen word", novel)):
        if texts:
            print(f"  {name} ({len(texts)}): n-gram {ngram.perplexity_per_word(texts):.1f}, "
                  f"causal LM {lm_perplexity(texts):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--corpus", choices=("debian", "wordnet"), default="debian")
    parser.add_argument("--column", choices=("en", "it"), default="en",
                        help="side of the Debian pairs")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="WordPiece vocabulary of the causal LM (default: ktlite's)")
    parser.add_argument("--embed-dim", type=int, default=None,
                        help="width of the causal LM (default: ktlite's)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout of the causal LM (default: ktlite's)")
    parser.add_argument("--quick", action="store_true", help="small slice, about 3 minutes")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.test_size = args.train_size or 5000, args.test_size or 500
        args.minutes = min(args.minutes, 1.5)

    train = read_texts(args.data_dir, "train", args.corpus, args.column, args.train_size)
    test = read_texts(args.data_dir, "test", args.corpus, args.column, args.test_size)
    test = [t for t in test if t.split()]
    t = time.perf_counter()
    ngram = KneserNeyTrigram(train)
    print(f"Kneser-Ney trigram: perplexity per word {ngram.perplexity_per_word(test):.1f} "
          f"({time.perf_counter() - t:.1f} s)")

    import numpy as np

    import ktlite
    from ktlite import generation

    start = time.perf_counter()
    vocab = {} if args.vocab_size is None else {"vocab_size": args.vocab_size}
    model_args = {name: value for name, value in (("embed_dim", args.embed_dim),
                                                  ("dropout", args.dropout)) if value is not None}
    trn, val, preproc = generation.texts_for_lm(train, **vocab)
    model = generation.causal_lm("transformer", trn, preproc=preproc, **model_args)
    learner = ktlite.get_learner(model, train_data=trn, val_data=val, batch_size=64)
    t = time.perf_counter()
    found = learner.lr_find(verbose=0, num_steps=50 if args.quick else None)
    per_step = (time.perf_counter() - t) / max(len(found.lrs), 1)
    steps_per_epoch = int(np.ceil(len(trn) / 64))
    left = args.minutes * 60 - (time.perf_counter() - start)
    total = max(20, int(left / (per_step * 1.15)))
    # The fewest epochs of at most one pass each that hold the planned steps (flooring to
    # whole passes left up to half the budget unused).
    epochs = -(-total // steps_per_epoch)
    learner.fit_onecycle(found.suggestion, epochs, steps_per_epoch=total // epochs, verbose=2)
    elapsed = time.perf_counter() - start
    # The causal LM does not score text past its context, so both models are scored on the
    # test texts it holds whole (with their end token).
    fits = preproc.prompt_lengths(test) + 1 <= preproc.maxlen
    if not fits.all():
        test = [t for t, ok in zip(test, fits) if ok]
        print(f"{int((~fits).sum())} test texts longer than the context ({preproc.maxlen}) "
              f"left out; Kneser-Ney trigram on the {len(test)} others: perplexity per word "
              f"{ngram.perplexity_per_word(test):.1f}")
    ppl = generation.perplexity_per_word(learner.model, preproc, test)
    print(f"ktlite causal LM ({elapsed / 60:.1f} min): perplexity per word {ppl:.1f}")
    breakdown(ngram, lambda texts: generation.perplexity_per_word(learner.model, preproc, texts),
              train, test)
    predictor = ktlite.get_predictor(learner.model, preproc)
    prompts = (["violin:", "run:", "a large"] if args.corpus == "wordnet"
               else ["library for", "Python bindings", "documentation"])
    print("greedy:", dict(zip(prompts, predictor.predict(prompts, max_length=12))))
    sampled = predictor.predict(prompts, max_length=12, method="sample", top_p=0.9)
    print("top-p 0.9:", dict(zip(prompts, sampled)))


if __name__ == "__main__":
    main()
