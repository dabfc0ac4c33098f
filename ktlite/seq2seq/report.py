"""Judging a translation model: corpus BLEU and chrF (sacrebleu), and its worst sentences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite._console import say
from ktlite.arguments import check_fitted, check_int, check_positive_int
from ktlite.seq2seq.decoding import MAX_BEAM_WIDTH
from ktlite.seq2seq.losses import MaskedSequenceCrossentropy
from ktlite.seq2seq.predictor import TranslationPredictor
from ktlite.seq2seq.preprocessor import PairPreprocessor


def _check_pairs(data: Any) -> None:
    x = getattr(data, "x", None)
    if getattr(data, "task", None) != "seq2seq" or not isinstance(x, dict):
        raise TypeError(
            "`data` must be a TaskDataset of sentence pairs from a `pairs_from_*` loader or "
            f"`pair_dataset`. Received: data={data!r:.80}"
        )


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF with sacrebleu's defaults (13a tokenization, chrF n=6).

    BLEU counts n-grams up to 4 tokens, so a corpus of sentences shorter than 4 tokens
    scores 0 even when every translation is right; chrF, on characters, does not.

    Args:
        hypotheses: system translations.
        references: one reference per hypothesis.

    Returns:
        `{"bleu": ..., "chrf": ...}` on a 0-100 scale.

    Example:
        >>> round(corpus_scores(["il gatto nero dorme"], ["il gatto nero dorme"])["bleu"], 6)
        100.0
        >>> corpus_scores(["il gatto"], ["il gatto"])  # 2 tokens: no 4-gram to match
        {'bleu': 0.0, 'chrf': 100.0}
    """
    import sacrebleu

    return {
        "bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
    }


def translation_reporter(
    preproc: PairPreprocessor, beam_width: int = 1, max_length: int | None = None
) -> Callable[[keras.Model, Any, Any], tuple[str, dict[str, float]]]:
    """A `TaskDataset` reporter for `Learner.validate`: BLEU and chrF of the decoded data.

    The learner's teacher-forced outputs are not translations, so the reporter decodes
    the sources itself (with `TranslationPredictor`) and scores them against the raw
    target sentences the data set holds.

    Args:
        preproc: the model's `PairPreprocessor`.
        beam_width: beams (1: greedy).
        max_length: most target tokens; None means `target_maxlen`.

    Returns:
        `reporter(model, data, predict) -> (text, {"bleu", "chrf"})`; the text says when
        every reference is shorter than 4 words (BLEU is then 0: read chrF).

    Raises:
        TypeError: if `preproc` is not a `PairPreprocessor`, or `beam_width` or
            `max_length` is not an int.
        ValueError: if `preproc` is not fitted, `beam_width` or `max_length` < 1, or
            `beam_width` above 64 (`ktlite.seq2seq.decoding.MAX_BEAM_WIDTH`).

    Example:
        >>> text, scores = translation_reporter(preproc)(model, val, None)
    """
    check_fitted(preproc, PairPreprocessor)
    beam_width = check_int(beam_width, "beam_width", 1, MAX_BEAM_WIDTH)  # now, not after a fit
    max_length = check_positive_int(max_length, "max_length", allow_none=True)

    def report(model: keras.Model, data: Any, predict: Any = None) -> tuple[str, dict]:
        _check_pairs(data)
        translator = TranslationPredictor(model, preproc, batch_size=64)
        hypotheses = translator.predict(list(data.x["source"]), beam_width=beam_width,
                                        max_length=max_length)
        references = list(data.x["target"])
        scores = corpus_scores(hypotheses, references)
        return _score_text(scores, references, beam_width), scores

    return report


def _score_text(scores: dict[str, float], references: list[str], beam_width: int) -> str:
    """The report's line; it says why BLEU reads 0 on references all shorter than 4 words."""
    text = (f"BLEU {scores['bleu']:.1f}  chrF {scores['chrf']:.1f}  "
            f"({len(references):,} sentences, beam width {beam_width})")
    if scores["bleu"] == 0.0 and max((len(r.split()) for r in references), default=0) < 4:
        text += ("; every reference has fewer than 4 words, and BLEU counts 4-grams: it "
                 "reads 0 however good the translations, read chrF")
    return text


def top_losses(model: keras.Model, data: Any, n: int = 5) -> list[tuple[int, float]]:
    """The `n` pairs with the highest mean token loss (teacher-forced, no smoothing).

    Args:
        model: a `translation_model`.
        data: a `TaskDataset` of pairs.
        n: how many.

    Returns:
        `(index, loss)` pairs, highest loss first.

    Raises:
        TypeError: if `data` is not a pair data set or `n` is not an int.
        ValueError: if `n` < 1.

    Example:
        >>> top_losses(model, val, 3)
    """
    _check_pairs(data)
    n = check_positive_int(n, "n")
    loss = MaskedSequenceCrossentropy(label_smoothing=0.0)
    losses = []
    for i in range(0, len(data), 256):
        batch = {k: tf.constant(v[i : i + 256]) for k, v in data.x.items()}
        logits = model(data.transform(batch), training=False)
        losses.extend(np.asarray(loss.per_example(data.y[i : i + 256], logits)).tolist())
    order = np.argsort(losses)[::-1][:n]
    return [(int(i), float(losses[i])) for i in order]


def view_top_losses(
    model: keras.Model, preproc: PairPreprocessor, data: Any, n: int = 5
) -> list[tuple[int, float]]:
    """Prints the worst pairs: source, reference, the model's translation and the loss.

    Args:
        model: a `translation_model`.
        preproc: its `PairPreprocessor`.
        data: a `TaskDataset` of pairs.
        n: how many.

    Returns:
        The `(index, loss)` pairs of `top_losses`.

    Raises:
        TypeError: if `data` is not a pair data set or `n` is not an int.
        ValueError: if `n` < 1.

    Example:
        >>> view_top_losses(learner.model, preproc, val, 3)
    """
    rows = top_losses(model, data, n)
    sources = [data.x["source"][i] for i, _ in rows]
    translations = TranslationPredictor(model, preproc).predict(sources)
    for (i, value), source, output in zip(rows, sources, translations):
        say(
            f"[{i}] loss {value:.3f}\n  source:    {source}\n  reference: "
            f"{data.x['target'][i]}\n  predicted: {output}"
        )
    return rows
