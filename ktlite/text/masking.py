"""BERT-style masking of token ids, drawn inside `tf.data` with new masks every epoch.

`TokenMasker` is a `TaskDataset` transform: raw texts in, `(inputs, targets,
sample_weight)` out, where `inputs` holds the corrupted ids and the positions to predict.

How tokens are chosen: of the `n` real tokens of a text (`[CLS]` and padding never count),
`k = floor(rate * n + u)` are chosen, `u` uniform in [0, 1) (stochastic rounding, so the
expected share is exactly `rate` even for short texts), uniformly without replacement. With
`whole_word=True` words are chosen the same way (a word is a piece and its `##`
continuations) and all of a chosen word's pieces are predicted. Each chosen token becomes
`[MASK]` with probability 0.8, a random vocabulary token (never a special one) with 0.1,
and stays itself with 0.1.

Prediction slots: a batch carries as many as its most-masked text needs (never more than
`TokenMasker.num_predictions`), not the longest text's share of `maxlen`. The vocabulary
projection of the masked-LM head is a large share of a pretraining step, and with length-bucketed
batches of short texts most of a fixed `num_predictions` would be padding: on WordNet
glosses (`maxlen` 64, 10 slots) a step takes 1.5x less time this way
(`benchmarks/masked_lm_step.py`).

Why a `tf.random.Generator`: Keras opens a new iterator on the data set every epoch, and a
stateful random op in a `tf.data` function restarts its sequence with each iterator when a
global seed is set, so every epoch would see the same masks. A generator keeps its state in
a variable across iterators. Batches run in parallel in `tf.data`, so which batch draws which
masks is not reproducible from run to run even with a seed; the statistics are.

Validation wants the opposite: the same masks every pass, or the loss of one model moves by
more than an epoch's progress (4.38 and 4.27 on two passes in a probe), and the best epoch is
chosen by chance. A `fixed` masker draws each text's masks from its seed and the text's own
token ids alone, so a text gets the same masks every pass, whatever its batch: `validate()`
and an epoch's `val_` values, at any batch size or bucketing, judge the same masks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ktlite.arguments import check_bool, check_fitted, check_float, check_seed
from ktlite.text.preprocessor import (
    CLS_ID,
    CONTINUATION_PREFIX,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    TextPreprocessor,
)

__all__ = ["TokenMasker", "check_mask_rate", "max_predictions"]

MASK_SHARE, RANDOM_SHARE = 0.8, 0.1


def check_mask_rate(rate: Any, name: str) -> float:
    """Returns a masking rate as a float if it is in (0, 1), naming the argument it came from.

    Args:
        rate: the share of tokens to predict.
        name: the argument name for the message (`"rate"`, `pretrain`'s `"mask_rate"`).

    Returns:
        `float(rate)`.

    Raises:
        TypeError: if `rate` is not a number.
        ValueError: if `rate` is not in (0, 1).

    Example:
        >>> check_mask_rate(0.15, "mask_rate")
        0.15
    """
    return check_float(rate, name, 0.0, 1.0, include_low=False, include_high=False)


def max_predictions(maxlen: int, rate: float, whole_word: bool) -> int:
    """The most positions predicted per text: enough for `rate` of `maxlen - 1` tokens.

    Whole words may overshoot the token share, so they get twice the room (extra chosen
    pieces beyond it are still corrupted but not predicted; rare).

    Args:
        maxlen: tokens per text, `[CLS]` included.
        rate: share of tokens chosen.
        whole_word: whether whole words are chosen.

    Returns:
        The cap on prediction slots per text (a batch uses fewer when its texts are short).

    Example:
        >>> max_predictions(64, 0.15, False)
        10
    """
    base = max(1, math.ceil(rate * (maxlen - 1)))
    return min(maxlen - 1, 2 * base + 2) if whole_word else base


class TokenMasker:
    """Turns a batch of texts into masked-language-model inputs, targets and weights.

    Args:
        preproc: a fitted `TextPreprocessor` (its `tokenize` runs first).
        rate: share of tokens to predict, in (0, 1). Default 0.15.
        whole_word: choose whole words instead of pieces. Default False.
        seed: seed of the mask generator; None for a random one (0 when `fixed`).
        fixed: draw each text's masks from `seed` and the text's own token ids alone, so a
            text gets the same masks every time, whatever its batch, its batch's padding
            or its order (for validation data: any batch size or bucketing judges it
            alike). Default False: new masks every time.

    Raises:
        TypeError: for a `rate` that is not a number, a `whole_word` or `fixed` that is not
            a bool, or a `seed` that is not an int.
        ValueError: for an unfitted preprocessor, a rate outside (0, 1) or a negative
            `seed`.

    Example:
        >>> masker = TokenMasker(preproc, rate=0.15)
        >>> (inputs, targets, weights) = masker(tf.constant(["a text"]))
        >>> inputs["token_ids"].shape, inputs["mask_positions"].shape
    """

    def __init__(self, preproc: Any, rate: float = 0.15, whole_word: bool = False,
                 seed: int | None = None, fixed: bool = False) -> None:
        import tensorflow as tf

        check_fitted(preproc, TextPreprocessor)
        rate = check_mask_rate(rate, "rate")
        check_bool(whole_word, "whole_word")
        check_seed(seed)
        self.fixed = check_bool(fixed, "fixed")
        self.preproc = preproc
        self.rate = rate
        self.whole_word = bool(whole_word)
        self.num_predictions = max_predictions(preproc.maxlen, self.rate, self.whole_word)
        continuation = np.array([t.startswith(CONTINUATION_PREFIX) for t in preproc.vocab])
        with tf.init_scope():
            self._continuation = tf.constant(continuation)
            if fixed:
                self._seed = tf.constant(0 if seed is None else int(seed), tf.int64)
            else:
                self._generator = (
                    tf.random.Generator.from_non_deterministic_state()
                    if seed is None else tf.random.Generator.from_seed(int(seed))
                )

    def __call__(self, texts: Any, width: Any = None) -> tuple[dict[str, Any], Any, Any]:
        """Tokenizes texts (padded to `width`, see `TextPreprocessor.tokenize`) and masks them."""
        return self.mask(self.preproc.tokenize(texts, width))

    @contextlib.contextmanager
    def kept_draws(self) -> Iterator[None]:
        """Inside the block masks are drawn from a copy of the generator, so masks drawn
        there (an LR sweep's) leave the next ones as they would have been. A data set built
        inside keeps drawing from the copy, also from tf.data threads that read ahead after
        the block: putting a state back at the block's end would race with those. A `fixed`
        masker draws from its seed and each text alone: it has nothing to keep.

        Example:
            >>> with masker.kept_draws():
            ...     learner.lr_find()
        """
        if self.fixed:
            yield
            return
        import tensorflow as tf

        kept = self._generator
        self._generator = tf.random.Generator.from_state(kept.state.numpy(), kept.algorithm)
        try:
            yield
        finally:
            self._generator = kept

    def mask(self, ids: Any) -> tuple[dict[str, Any], Any, Any]:
        """Masks a batch of token ids (`[CLS]` first, 0 padding).

        Args:
            ids: int32 `(batch, width)`, any width up to `maxlen`.

        Returns:
            `({"token_ids": corrupted, "mask_positions": positions}, targets, weights)`:
            positions and targets are `(batch, slots)` int32, weights float32 1 for a real
            prediction and 0 for an unused slot. `slots` is the most tokens chosen in any
            text of the batch (at least 1, at most `num_predictions`).
        """
        import tensorflow as tf

        ids = tf.convert_to_tensor(ids, tf.int32)
        draws = self._draws(ids)
        # float32 would skew the replacement token (a draw in 2**23 spread over the
        # vocabulary); the others need no more.
        count, pick, order, roll = tf.unstack(tf.cast(draws[:4], tf.float32))
        replacement = draws[4]
        real = (ids != PAD_ID) & (ids != CLS_ID) & (ids != SEP_ID)
        if self.whole_word:
            chosen = self._choose_words(ids, real, count[:, 0], pick)
        else:
            chosen = self._choose(real, count[:, 0], pick)
        # The chosen positions first (in random order), then the others.
        order_scores = order + tf.cast(chosen, tf.float32) * 2.0
        most = tf.reduce_max(tf.reduce_sum(tf.cast(chosen, tf.int32), axis=1))
        k = tf.clip_by_value(most, 1, tf.minimum(self.num_predictions, tf.shape(ids)[1]))
        _, positions = tf.math.top_k(order_scores, k=k)
        weights = tf.cast(tf.gather(chosen, positions, batch_dims=1), tf.float32)
        targets = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
        specials = len(SPECIAL_TOKENS)
        random_ids = tf.minimum(  # rounding may reach the vocabulary's end
            specials + tf.cast(replacement * float(self.preproc.vocab_size - specials),
                               tf.int32), self.preproc.vocab_size - 1)
        corrupted = tf.where(chosen & (roll < MASK_SHARE), MASK_ID, ids)
        corrupted = tf.where(
            chosen & (roll >= MASK_SHARE) & (roll < MASK_SHARE + RANDOM_SHARE),
            random_ids, corrupted,
        )
        inputs = {"token_ids": corrupted, "mask_positions": positions}
        return inputs, targets, weights

    def _draws(self, ids: Any) -> Any:
        """Five uniform float64 draws in [0, 1) for every position, `(5, batch, width)`: a
        row's count, its picks, their order, the corruption roll and the replacement token.

        Fixed, each row's come from `seed` and the row's own ids (padding adds nothing), as
        the first `width` of `maxlen` draws: a text gets the same whatever its batch."""
        import tensorflow as tf

        batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
        if not self.fixed:
            return tf.random.stateless_uniform(
                tf.stack([5, batch, width]), self._generator.make_seeds(1)[:, 0], dtype=tf.float64)
        # A position-weighted sum of the row's ids (wrapping in int64): texts differing
        # anywhere differ; the padding's zeros add nothing.
        weights = tf.range(1, tf.cast(width, tf.int64) + 1) * 2654435761
        keys = tf.math.floormod(
            tf.reduce_sum(tf.cast(ids, tf.int64) * weights, axis=1), 2**31 - 1)
        maxlen = self.preproc.maxlen

        def row(key: Any) -> Any:
            return tf.random.stateless_uniform([5, maxlen], tf.stack([self._seed, key]),
                                               dtype=tf.float64)

        draws = tf.map_fn(row, keys,  # (batch, 5, maxlen), also for no rows
                          fn_output_signature=tf.TensorSpec([5, maxlen], tf.float64))
        return tf.transpose(draws[:, :, :width], [1, 0, 2])

    def _choose(self, candidates: Any, count: Any, pick: Any) -> Any:
        """Chooses `floor(rate * n + count)` of each row's `n` candidates, those with the
        highest `pick`."""
        import tensorflow as tf

        n = tf.reduce_sum(tf.cast(candidates, tf.float32), axis=1)
        k = tf.cast(tf.floor(self.rate * n + count), tf.int32)
        scores = tf.where(candidates, pick, -1.0)
        # Rank of each candidate within its row (0 = highest score).
        rank = tf.argsort(tf.argsort(scores, axis=1, direction="DESCENDING"), axis=1)
        return candidates & (rank < k[:, None])

    def _choose_words(self, ids: Any, real: Any, count: Any, pick: Any) -> Any:
        import tensorflow as tf

        continuation = tf.gather(self._continuation, ids)
        previous_real = tf.pad(real[:, :-1], [[0, 0], [1, 0]])
        starts = real & ~(continuation & previous_real)
        word = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
        chosen_words = self._choose(starts, count, pick)
        # Word w is chosen when its start is; spread that to every piece of the word.
        word_chosen = tf.math.unsorted_segment_max(
            tf.cast(chosen_words, tf.int32),
            tf.where(starts, word, tf.shape(ids)[1]) + tf.range(tf.shape(ids)[0])[:, None]
            * (tf.shape(ids)[1] + 1),
            tf.shape(ids)[0] * (tf.shape(ids)[1] + 1),
        )
        word_chosen = tf.reshape(word_chosen, [tf.shape(ids)[0], tf.shape(ids)[1] + 1])
        return real & (tf.gather(word_chosen, tf.maximum(word, 0), batch_dims=1) > 0)
