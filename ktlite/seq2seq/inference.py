"""The strings-to-strings translation graph: tokenize, encode, decode, detokenize."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from ktlite.seq2seq.decoding import DecodingOptions, decode
from ktlite.seq2seq.models import EncoderDecoderSteps
from ktlite.seq2seq.preprocessor import END_ID, PAD_ID, START_ID, PairPreprocessor


def translate_ids(
    steps: EncoderDecoderSteps,
    preproc: PairPreprocessor,
    source_ids: Any,
    max_length: Any,
    options: DecodingOptions,
    first_row: Any = 0,
) -> Any:
    """Decodes target ids (start token dropped) for source ids; traceable.

    Args:
        steps: the model's `EncoderDecoderSteps`.
        preproc: its `PairPreprocessor`.
        source_ids: int32 `(batch, source_length)`.
        max_length: most target tokens per sentence (end token included).
        options: the `DecodingOptions`.
        first_row: the batch's first row's index in the whole input (see `decode`).

    Returns:
        int32 `(batch, length)` target ids, 0-padded after the end token.

    Example:
        >>> ids = translate_ids(steps, preproc, preproc.tokenize_source(s), 32, options)
    """
    rows = tf.shape(source_ids)[0]
    ids = decode(
        steps,
        steps.encode(source_ids),
        tf.fill([rows, 1], START_ID),
        tf.ones([rows], tf.int32),
        max_length,
        END_ID,
        options,
        banned_ids=(PAD_ID, START_ID),
        context_length=preproc.target_maxlen,
        first_row=first_row,
    )
    return ids[:, 1:]


def translate_strings(
    steps: EncoderDecoderSteps,
    preproc: PairPreprocessor,
    texts: Any,
    max_length: Any,
    options: DecodingOptions,
    first_row: Any = 0,
) -> Any:
    """Translates a 1-D string tensor; blank sources give the empty string. Traceable.

    A source is blank when it has no word pieces: empty, or only whitespace of any kind
    (non-breaking and ideographic spaces, zero-width characters).

    Args:
        steps: the model's `EncoderDecoderSteps`.
        preproc: its `PairPreprocessor`.
        texts: 1-D `tf.string` source sentences.
        max_length: most target tokens per sentence.
        options: the `DecodingOptions`.
        first_row: the batch's first row's index in the whole input (see `decode`).

    Returns:
        A 1-D `tf.string` tensor of translations.

    Example:
        >>> translate_strings(steps, preproc, tf.constant(["a cat"]), 32, DecodingOptions())
    """
    texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
    source_ids = preproc.tokenize_source(texts)
    ids = translate_ids(steps, preproc, source_ids, max_length, options, first_row)
    return tf.where(preproc.blank_sources(source_ids), tf.constant(""), preproc.detokenize(ids))
