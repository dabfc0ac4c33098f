"""Held-out perplexity per whitespace-separated word, comparable across tokenizers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from ktlite.generation.data import LMPreprocessor
from ktlite.predictor import check_batch_size
from ktlite.text.preprocessor import validate_texts


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
        The perplexity per word.

    Raises:
        ValueError: for empty or non-string texts, texts without any word, or a
            `batch_size` that is not a positive int.

    Example:
        >>> perplexity_per_word(model, preproc, test_texts)
    """
    texts = validate_texts(texts, "texts")
    batch_size = check_batch_size(batch_size)
    words = sum(len(t.split()) for t in texts)
    if words == 0:
        raise ValueError("`texts` must hold at least one word. Received: only blank texts")
    total = 0.0
    for i in range(0, len(texts), batch_size):
        batch = tf.constant(texts[i : i + batch_size])
        inputs, labels = preproc.tokenize_target(batch)
        logits = tf.cast(model(inputs, training=False), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        total += float(tf.reduce_sum(nll * tf.cast(labels != 0, tf.float32)))
    return float(math.exp(total / words)) if np.isfinite(total) else float("inf")
