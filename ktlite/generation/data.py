"""Plain texts for language modelling: one WordPiece vocabulary, next-token targets.

The tokenization is the target side of `ktlite.seq2seq.PairPreprocessor` (a text becomes
``[CLS] w1 .. wn`` as input and ``w1 .. wn [SEP]`` as labels), so both tasks share one
normalization, vocabulary learner and in-graph detokenizer. A text longer than the context
is cut without an end: ``[CLS] w1 .. wk`` and ``w1 .. wk+1``, so the model never learns
to end a text where the context ends.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite.arguments import check_instance, check_int, check_seed, check_verbose
from ktlite._console import say
from ktlite.seq2seq.preprocessor import (
    DEFAULT_VOCAB_SIZE,
    PAD_ID,
    START_ID,
    PairPreprocessor,
    mark_spaced_dashes,
)
from ktlite.splits import check_val_pct, split_indices
from ktlite.text.preprocessor import MAX_MAXLEN, suggest_maxlen, validate_texts


class LMPreprocessor(PairPreprocessor):
    """One vocabulary and context length for a causal language model.

    Args:
        maxlen: decoder positions (the context); None picks it from the training texts
            (99% whole, a multiple of 16).
        vocab_size: the largest vocabulary size. Defaults to 8000; at most 2**20 (see
            `ktlite.seq2seq.PairPreprocessor`).
        lowercase: lower-case and strip accents (default False).

    Raises:
        TypeError: for a size that is not an int or a `lowercase` that is not a bool.
        ValueError: for a size out of range.

    Example:
        >>> preproc = LMPreprocessor(vocab_size=200).fit(["a cat sat", "a dog ran"])
        >>> preproc.maxlen
        16
    """

    task = "generation"
    predictor_class = "ktlite.generation.predictor.GenerationPredictor"
    # A text longer than the context goes on: its last label is its next token, not an end.
    ends_cut_targets = False
    _fit_call = "fit(texts)"

    def __init__(
        self, maxlen: int | None = None, vocab_size: int = DEFAULT_VOCAB_SIZE,
        lowercase: bool = False,
    ) -> None:
        check_int(maxlen, "maxlen", 2, MAX_MAXLEN, allow_none=True)  # named as the caller named it
        super().__init__(source_maxlen=maxlen, target_maxlen=maxlen, vocab_size=vocab_size,
                         lowercase=lowercase, joint_vocab=True)

    @classmethod
    def _from_settings(cls, config: dict[str, Any]) -> LMPreprocessor:
        return cls(maxlen=config["target_maxlen"], vocab_size=config["max_vocab_size"],
                   lowercase=config["lowercase"])

    @property
    def maxlen(self) -> int | None:
        """The context length (decoder positions)."""
        return self.target_maxlen

    def fit(self, texts: Sequence[str], targets: Any = None) -> LMPreprocessor:
        """Learns the vocabulary (and `maxlen` when None) from training texts.

        Args:
            texts: the training texts.
            targets: unused; must be None.

        Returns:
            ``self``.

        Raises:
            TypeError: for texts that are not a sequence of strings.
            ValueError: for empty texts, a missing value, or `targets` given.

        Example:
            >>> LMPreprocessor(vocab_size=100).fit(["a b c"]).target_vocab[:1]
            ['[PAD]']
        """
        if targets is not None:
            raise ValueError(f"`targets` must be None for a language model. Received: {targets!r}")
        texts = validate_texts(texts, "texts")
        vocab = self._learn(mark_spaced_dashes(texts), "texts", self.lowercase)
        self._set_vocabs(vocab, vocab)
        if self.target_maxlen is None:
            self.target_maxlen = suggest_maxlen(self._lengths(texts, "target"))
            self.source_maxlen = self.target_maxlen
        return self

    def prompt_ids(self, prompts: Any) -> tuple[Any, Any]:
        """Prompts as decoding prefixes, in the graph: `[CLS]` and the last tokens.

        Args:
            prompts: a 1-D `tf.string` tensor.

        Returns:
            `(prefix, lengths)`: int32 ids `(batch, width)` padded with 0 and the int32
            length of each, at most `maxlen` (longer prompts keep their last tokens).

        Example:
            >>> prefix, lengths = preproc.prompt_ids(tf.constant(["a cat"]))
        """
        import tensorflow as tf

        pieces = self._pieces(prompts, "target")[:, -(self.maxlen - 1):]
        prefix = tf.concat([tf.fill([pieces.nrows(), 1], START_ID), pieces], axis=1)
        return prefix.to_tensor(), tf.cast(prefix.row_lengths(), tf.int32)

    def prompt_lengths(self, prompts: list[str]) -> np.ndarray:
        """Tokens per prompt before truncation (numpy).

        Args:
            prompts: the prompt texts.

        Returns:
            An int array with the number of tokens of each prompt (no `[CLS]`, not cut to
            `maxlen`).

        Example:
            >>> preproc.prompt_lengths(["a cat", "the dog sat"])
            array([2, 3])
        """
        import tensorflow as tf

        return self._pieces(tf.constant(prompts, tf.string), "target").row_lengths().numpy()

    def inputs(self, texts: Any, width: Any = None) -> Any:
        """The `TaskDataset` transform: texts to decoder input ids, in the graph.

        Args:
            texts: a 1-D ``tf.string`` tensor.
            width: None for ``maxlen`` positions, or a bucketed batch's width.

        Returns:
            ``int32`` ids ``(batch, width)``: ``[CLS] w1 .. wn`` then 0 padding.

        Example:
            >>> preproc.inputs(tf.constant(["a cat"])).shape
            TensorShape([1, 16])
        """
        return self.tokenize_target(texts, width)[0]


def _object_array(texts: list[str]) -> np.ndarray:
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    return arr


def lm_dataset(texts: Sequence[str], preproc: LMPreprocessor) -> Any:
    """A `TaskDataset` of texts for a fitted `LMPreprocessor`: input ids -> next ids.

    Args:
        texts: the texts.
        preproc: the fitted preprocessor.

    Returns:
        A `ktlite.data.TaskDataset` (raw texts, label ids, `preproc.inputs`, each text's
        length, its number of real labels, so that batches are length-bucketed, and a
        reporter: `Learner.validate` gives the perplexity per word and per token).

    Raises:
        TypeError: for texts that are not a sequence of strings, or a `preproc` that is not
            an `LMPreprocessor`.
        ValueError: for empty texts or a missing value.

    Example:
        >>> test = lm_dataset(test_texts, preproc)
    """
    from ktlite.data import TaskDataset, self_labelled_reader
    from ktlite.generation.perplexity import perplexity_reporter

    check_instance(preproc, LMPreprocessor, "preproc")
    texts = validate_texts(texts, "texts")
    labels = preproc.target_ids(texts)
    return TaskDataset(_object_array(texts), labels, transform=preproc.inputs,
                       task="generation", lengths=(labels != PAD_ID).sum(axis=1),
                       sequence_labels=True, reporter=perplexity_reporter(preproc),
                       reader=self_labelled_reader(
                           functools.partial(lm_dataset, preproc=preproc),
                           "A language model's labels are its texts' next tokens"),
                       preproc=preproc)


def texts_for_lm(
    texts: Sequence[str],
    val_texts: Sequence[str] | None = None,
    val_pct: float = 0.1,
    maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    lowercase: bool = False,
    random_state: int | None = 42,
    verbose: int = 1,
) -> tuple[Any, Any, LMPreprocessor]:
    """Builds language-model training and validation data and a fitted `LMPreprocessor`.

    Args:
        texts: training texts.
        val_texts: validation texts; when None, `val_pct` of `texts` are held out.
        val_pct: the share held out when `val_texts` is None (default 0.1; 0: no
            validation data, ``val`` is None).
        maxlen: context length; None picks it from the data.
        vocab_size: the largest vocabulary size (default 8000; at most 2**20, see
            `ktlite.seq2seq.PairPreprocessor`).
        lowercase: lower-case and strip accents (default False).
        random_state: seed of the split (default 42).
        verbose: 1 reports sizes and the vocabulary.

    Returns:
        `(trn, val, preproc)`.

    Raises:
        TypeError: for texts that are not a sequence of strings, or a `random_state` that
            is not an int.
        ValueError: for empty texts, a missing value, or `val_pct` outside [0, 1).

    Example:
        >>> trn, val, preproc = texts_for_lm(synopses)
    """
    texts = validate_texts(texts, "texts")
    val_pct = check_val_pct(val_pct)
    check_seed(random_state, "random_state")
    check_verbose(verbose)
    if val_texts is not None:
        val_texts = validate_texts(val_texts, "val_texts")
    else:
        trn_idx, val_idx = split_indices(
            np.zeros(len(texts)), False, val_pct, random_state, "texts"
        )
        val_texts = [texts[i] for i in val_idx]
        texts = [texts[i] for i in trn_idx]
    preproc = LMPreprocessor(maxlen=maxlen, vocab_size=vocab_size, lowercase=lowercase).fit(texts)
    if verbose:
        say(f"{len(texts):,} training and {len(val_texts):,} validation texts; {preproc!r}")
    val = lm_dataset(val_texts, preproc) if val_texts else None
    return lm_dataset(texts, preproc), val, preproc
