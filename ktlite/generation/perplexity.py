"""Held-out perplexity per whitespace-separated word, comparable across tokenizers, and
the language model's report for `Learner.validate`."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite.generation.data import LMPreprocessor
from ktlite.arguments import check_fitted, check_positive_int
from ktlite.text.preprocessor import validate_texts


_LOG_FLOAT_MAX = math.log(sys.float_info.max)


def perplexity_per_word(
    model: keras.Model, preproc: LMPreprocessor, texts: Sequence[str], batch_size: int = 128
) -> float:
    """`exp(summed token log-loss / number of words)` over `texts`.

    The log-loss covers every token of each text and its end token (no label
    smoothing); dividing by the number of whitespace-separated words, not tokens, makes
    models with different vocabularies comparable, and an n-gram model over words too when
    it gives an unseen word the probability of its spelling (one shared "unknown word"
    probability scores a class of words, not the text). Text beyond the context
    (`preproc.maxlen`) is not scored, which lowers the figure; choose a context that holds
    the texts.

    Args:
        model: a `causal_lm`.
        preproc: its `LMPreprocessor`.
        texts: held-out texts (at least one word in all).
        batch_size: texts per forward pass.

    Returns:
        The perplexity per word; `inf` past float64's range (about `exp(709)`, reached by
        text with many tokens a word, such as Chinese, under an untrained model).

    Raises:
        TypeError: for texts that are not a sequence of strings, or a `batch_size` that
            is not an int.
        ValueError: for empty texts, a missing value, texts without any word, or a
            `batch_size` below 1.

    Example:
        >>> perplexity_per_word(model, preproc, test_texts)
    """
    texts = validate_texts(texts, "texts")
    batch_size = check_positive_int(batch_size, "batch_size")
    words = sum(len(t.split()) for t in texts)
    if words == 0:
        raise ValueError("`texts` must hold at least one word. Received: only blank texts")
    total, _ = _summed_log_loss(model, preproc, texts, batch_size)
    return _exp_mean(total, words)


def _summed_log_loss(
    model: keras.Model, preproc: LMPreprocessor, texts: list[str], batch_size: int
) -> tuple[float, int]:
    """The summed next-token log-loss of `texts` (every token and the end token) and the
    number of tokens it covers."""
    total, tokens = 0.0, 0
    for i in range(0, len(texts), batch_size):
        batch = tf.constant(texts[i : i + batch_size])
        inputs, labels = preproc.tokenize_target(batch)
        logits = tf.cast(model(inputs, training=False), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        real = tf.cast(labels != 0, tf.float32)
        total += float(tf.reduce_sum(nll * real))
        tokens += int(tf.reduce_sum(real))
    return total, tokens


def _exp_mean(total: float, count: int) -> float:
    """`exp(total / count)`; inf past float64's range (text of few words for its tokens,
    such as Chinese, from a model that has not learned it)."""
    if not np.isfinite(total) or total / count > _LOG_FLOAT_MAX:
        return math.inf
    return math.exp(total / count)


def perplexity_reporter(
    preproc: LMPreprocessor,
) -> Callable[[keras.Model, Any, Any], tuple[str, dict[str, float]]]:
    """A `TaskDataset` reporter for `Learner.validate`: perplexity of the data's texts.

    The report gives the perplexity per word (`perplexity_per_word`, comparable across
    tokenizers) and per token, from one pass over the raw texts the data set holds.

    Args:
        preproc: the model's `LMPreprocessor`.

    Returns:
        `reporter(model, data, predict) -> (text, {"perplexity_per_word",
        "perplexity_per_token", "loss"})`; ``loss`` is the mean next-token log-loss.
        Texts without any word give a per-word perplexity of NaN.

    Raises:
        TypeError: if `preproc` is not an `LMPreprocessor`.
        ValueError: if it is not fitted.

    Example:
        >>> text, scores = perplexity_reporter(preproc)(model, val, None)
    """
    check_fitted(preproc, LMPreprocessor)

    def report(model: keras.Model, data: Any, predict: Any = None) -> tuple[str, dict]:
        texts = [str(t) for t in data.x]
        words = sum(len(t.split()) for t in texts)
        total, tokens = _summed_log_loss(model, preproc, texts, 128)
        scores = {
            "perplexity_per_word": _exp_mean(total, words) if words else math.nan,
            "perplexity_per_token": _exp_mean(total, tokens),
            "loss": total / tokens,
        }
        text = (
            f"perplexity per word {scores['perplexity_per_word']:.2f}, per token "
            f"{scores['perplexity_per_token']:.3f} (loss {scores['loss']:.4f}; "
            f"{len(texts):,} texts, {words:,} words, {tokens:,} tokens)"
        )
        return text, scores

    return report
