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
models are interpolated Kneser-Ney trigrams over whitespace words (discount 0.75), written
here because nltk is not a dependency of ktlite, in three forms:

- open vocabulary (the comparison of record): words seen fewer than `min_count` times in
  training are `<unk>` in its counts, and a test word outside its vocabulary costs
  P(`<unk>` | two words before) x P(its spelling), the spelling from an interpolated
  character n-gram fitted on the rare training words. Like the causal LM, which spells a
  new word in WordPiece pieces, it gives every exact text a probability, so the two
  perplexities are of the same events. `min_count` and the character order are chosen on
  a tenth of the training texts held out, never on the test texts.
- the same without the spelling: every unseen word costs P(`<unk>` | context) alone, as
  if all unseen words were one (nltk's Kneser-Ney gives unseen words no probability at
  all, nltk issue #3211, whose answer is this `<unk>` mapping). A closed vocabulary again.
- closed vocabulary (kept for comparison with the runs before it): every training word
  kept, the lowest order mixed with a uniform distribution over the vocabulary plus one
  unknown word, so each unseen test word gets the same small probability, whatever its
  spelling. That is the probability of "some unseen word", not of the word, so its
  figure is not one of the same events as the LM's on texts holding unseen words.

Examples:
    python benchmarks/generation.py --quick           # ~3 minutes
    python benchmarks/generation.py --minutes 20
    python benchmarks/generation.py --minutes 20 --corpus wordnet
    python benchmarks/generation.py --minutes 20 --vocab-size 2000   # RESULTS probe
    python benchmarks/generation.py --minutes 20 --dropout 0.3       # RESULTS probe
"""

from __future__ import annotations

import argparse
import copy
import csv
import gzip
import math
import random
import time
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
START_OF_WORD, END_OF_WORD = "\t", "\n"  # never inside a whitespace-split word


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

    def neg_log_likelihood(self, words: list[str]) -> float:
        """Of the words of one text and of its end."""
        tokens = [BOS, BOS, *words, EOS]
        return -sum(math.log(self.prob(u, v, w))
                    for u, v, w in zip(tokens, tokens[1:], tokens[2:]))

    def perplexity_per_word(self, texts: list[str]) -> float:
        split = [text.split() for text in texts]
        return math.exp(sum(map(self.neg_log_likelihood, split)) / sum(map(len, split)))


class CharacterNgram:
    """Interpolated absolute-discounting character n-gram over spellings (with an end mark).

    `log_prob(word)` is the log-probability of the exact string: every character given the
    `order - 1` before it (start marks before the first), then the end of the word; the
    lowest order is uniform over the characters seen, the end mark and one unseen
    character, so any spelling has a probability.
    """

    def __init__(self, words: list[str], order: int, discount: float = 0.75) -> None:
        self.order, self.d = order, discount
        self.counts, self.totals = Counter(), Counter()  # (history, char), history
        self.followers = defaultdict(set)  # history -> distinct next chars
        alphabet = set()
        for word in words:
            alphabet.update(word)
            marked = self._marked(word)
            for i in range(order - 1, len(marked)):
                for n in range(order):
                    history = marked[i - n:i]
                    self.counts[(history, marked[i])] += 1
                    self.totals[history] += 1
                    self.followers[history].add(marked[i])
        self.uniform = 1.0 / (len(alphabet) + 2)

    def _marked(self, word: str) -> str:
        return START_OF_WORD * (self.order - 1) + word + END_OF_WORD

    def _prob(self, history: str, char: str) -> float:
        p = self.uniform
        for n in range(len(history) + 1):  # shortest history first
            h = history[len(history) - n:]
            total = self.totals[h]
            if not total:
                break
            mass = self.d * len(self.followers[h]) / total
            p = max(self.counts[(h, char)] - self.d, 0) / total + mass * p
        return p

    def log_prob(self, word: str) -> float:
        marked = self._marked(word)
        return sum(math.log(self._prob(marked[i - self.order + 1:i], marked[i]))
                   for i in range(self.order - 1, len(marked)))


class OpenVocabularyTrigram:
    """Kneser-Ney trigram over words seen `min_count` times or more, the rest `<unk>`.

    A word outside the vocabulary costs P(`<unk>` | context) times its spelling's
    probability under a `CharacterNgram` of the given order, fitted on the training words
    that became `<unk>`.
    """

    def __init__(self, texts: list[str], min_count: int, char_order: int) -> None:
        counts = Counter(w for text in texts for w in text.split())
        self.min_count = min_count
        self.vocab = {w for w, n in counts.items() if n >= min_count}
        self.rare = [w for w in counts if w not in self.vocab]
        self.words = KneserNeyTrigram([" ".join(self._known(t.split())) for t in texts])
        self.spelling = CharacterNgram(self.rare, char_order)

    def respelled(self, char_order: int) -> OpenVocabularyTrigram:
        """The same word model with a character model of another order."""
        model = copy.copy(self)
        model.spelling = CharacterNgram(self.rare, char_order)
        return model

    def _known(self, words: list[str]) -> list[str]:
        return [w if w in self.vocab else UNK for w in words]

    def perplexity_per_word(self, texts: list[str], spelled: bool = True) -> float:
        """With `spelled=False` an unseen word costs only P(`<unk>` | context), as if every
        unseen word were one and the same (a closed vocabulary, nltk's advice for OOV)."""
        nll, words = 0.0, 0
        for text in texts:
            raw = text.split()
            words += len(raw)
            nll += self.words.neg_log_likelihood(self._known(raw))
            if spelled:
                nll -= sum(self.spelling.log_prob(w) for w in raw if w not in self.vocab)
        return math.exp(nll / words)


def choose_open_vocabulary(train: list[str]) -> OpenVocabularyTrigram:
    """The open-vocabulary trigram whose settings do best on a tenth of `train` held out.

    Tries `min_count` 2 and 3 and character orders 4-7 on the other nine tenths (seeded
    split), prints each held-out perplexity, and refits the best on all of `train`.
    """
    order = random.Random(0).sample(range(len(train)), len(train))
    held = len(train) // 10
    fit = [train[i] for i in order[held:]]
    val = [train[i] for i in order[:held]]
    scores = {}
    for min_count in (2, 3):
        words_only = OpenVocabularyTrigram(fit, min_count, char_order=1)
        for char_order in (4, 5, 6, 7):
            model = words_only.respelled(char_order)
            scores[(min_count, char_order)] = model.perplexity_per_word(val)
    best = min(scores, key=scores.get)
    print("open-vocabulary trigram, held-out tenth of the training texts: "
          + ", ".join(f"min_count {m} / char order {c}: {p:.1f}" for (m, c), p in scores.items())
          + f"; chosen: min_count {best[0]}, char order {best[1]}")
    return OpenVocabularyTrigram(train, *best)


def breakdown(ngrams: dict, lm_perplexity, train: list[str], test: list[str]) -> None:
    """Every model on the test texts whose words were all seen in training, and on the rest.

    `ngrams` maps a label to a function from texts to perplexity per word.

    The closed-vocabulary n-gram gives every unseen word one fixed share of its uniform
    floor, whatever its spelling; the open-vocabulary one and the causal LM pay for its
    spelling (in characters, in WordPiece pieces). Splitting the test texts shows how much
    of each gap is that.
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
            scores = ", ".join(f"{label} {score(texts):.1f}" for label, score in ngrams.items())
            print(f"  {name} ({len(texts)}): {scores}, causal LM {lm_perplexity(texts):.1f}")


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
    open_vocabulary = choose_open_vocabulary(train)
    ngrams = {"open-vocabulary trigram": open_vocabulary.perplexity_per_word,
              "the same, unseen words as one <unk>": partial(open_vocabulary.perplexity_per_word,
                                                             spelled=False),
              "closed-vocabulary trigram": KneserNeyTrigram(train).perplexity_per_word}
    print(f"Kneser-Ney trigrams fitted and chosen in {time.perf_counter() - t:.1f} s")

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
              "left out of every score")
    ppl = generation.perplexity_per_word(learner.model, preproc, test)
    print(f"perplexity per word on {len(test)} test texts:")
    for label, score in ngrams.items():
        figure = score(test)
        print(f"  Kneser-Ney {label}: {figure:.1f} (causal LM / this: {ppl / figure:.2f}x)")
    print(f"  ktlite causal LM ({elapsed / 60:.1f} min of training): {ppl:.1f}")
    breakdown(ngrams, lambda texts: generation.perplexity_per_word(learner.model, preproc, texts),
              train, test)
    predictor = ktlite.get_predictor(learner.model, preproc)
    prompts = (["violin:", "run:", "a large"] if args.corpus == "wordnet"
               else ["library for", "Python bindings", "documentation"])
    print("greedy:", dict(zip(prompts, predictor.predict(prompts, max_length=12))))
    sampled = predictor.predict(prompts, max_length=12, method="sample", top_p=0.9)
    print("top-p 0.9:", dict(zip(prompts, sampled)))


if __name__ == "__main__":
    main()
