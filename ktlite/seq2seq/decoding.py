"""Greedy, beam-search and sampling decoders that run inside one `tf.function`.

The decoders are model-free: they drive a *steps* object with three methods,

- ``init_caches(batch_size, length)`` -> a list of key/value caches,
- ``step(ids, index, caches, context)`` -> ``(logits (batch, n, vocab), caches)`` for the
  ``n`` new tokens ``ids`` at positions ``index...``,
- ``full(ids, context)`` -> logits for a whole prefix (used with ``use_cache=False``),

and a ``context`` (a nest of tensors with the batch first, e.g. the encoder's outputs),
repeated per beam by beam search; a dict context's ``"source_ids"`` (0-padded int ids of
each row's input, as `EncoderDecoderSteps.encode` gives them) also key the sampling
noise. `ktlite.seq2seq.models.EncoderDecoderSteps` and the generation package's
decoder-only steps implement them.

Every sequence starts with a prefix (the start token for translation, the prompt for
generation; prefixes of different lengths are forced token by token). Decoding stops
for a sequence at the end token or after ``max_length`` new tokens, and for the batch
when every sequence has stopped or the context is full. With the cache each new token
runs one position through the decoder; without it, the whole prefix is re-run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from ktlite.arguments import (
    check_bool,
    check_choice,
    check_float,
    check_int,
)

METHODS = ("greedy", "beam", "sample")
_NEG = -1e9
# Temperatures a float32 division can use: from the smallest normal float32 (sampling is
# then greedy) to the largest (sampling is then uniform among the kept tokens).
_MIN_TEMPERATURE, _MAX_TEMPERATURE = 2.0**-126, float(tf.float32.max)
_MAX_SEED = 2**31 - 1
# The most beams beam search keeps: far above any useful width (gains stop at a few beams),
# and low enough that a mistyped width is refused instead of exhausting the memory.
MAX_BEAM_WIDTH = 64
_MASK32 = 0xFFFFFFFF
# How far below `top_p` the probability already kept may fall by float32 rounding and
# still count as `top_p`.
_TOP_P_SLACK = 1e-6


@dataclass(frozen=True)
class DecodingOptions:
    """How to pick tokens; checked once, then fixed for a traced decoding graph.

    Args:
        method: ``"greedy"``, ``"beam"`` or ``"sample"``.
        beam_width: beams kept by beam search, from 1 (greedy) to `MAX_BEAM_WIDTH` (64).
        length_penalty: GNMT length penalty exponent of beam search's final ranking
            (``score / ((5 + length) / 6) ** length_penalty``; 0 ranks by log-probability).
        temperature: divides the logits before sampling (``> 0``, a normal float32:
            from ``2**-126``, where sampling is greedy, to about ``3.4e38``).
        top_k: sample among the ``top_k`` most likely tokens (0, or any number from the
            vocabulary size up: all), at any temperature.
        top_p: sample among the most likely tokens whose probabilities (after the
            temperature) add up to ``top_p`` (in ``(0, 1]``; 1: all).
        seed: seed of the sampler, in [0, 2**31). A row's random numbers depend on the
            seed, the row's index in the whole input and its own input (its prefix's and
            source's token ids): the same input at the same index gives the same text
            whatever its batch, the batch size or the padding; different inputs (and
            copies of one input at other indices) draw independent numbers.
        use_cache: run each new token through the decoder alone (default) or re-run the
            whole prefix (slower, for comparison).

    Raises:
        TypeError: for a value of the wrong type (a `method` that is not a str, an int
            option that is not an int, a number that is not a number), naming the argument.
        ValueError: for a value out of range (a `beam_width` above `MAX_BEAM_WIDTH`
            among them), naming the argument.

    Example:
        >>> DecodingOptions(method="beam", beam_width=4, length_penalty=0.6)
    """

    method: str = "greedy"
    beam_width: int = 1
    length_penalty: float = 0.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    use_cache: bool = True

    def __post_init__(self) -> None:
        check_choice(self.method, "method", METHODS)
        # NumPy scalars become Python numbers: equal options hash alike and trace alike.
        checked = {
            "beam_width": check_int(self.beam_width, "beam_width", 1, MAX_BEAM_WIDTH),
            "top_k": check_int(self.top_k, "top_k", 0),
            "seed": check_int(self.seed, "seed", 0, _MAX_SEED),
            "length_penalty": check_float(self.length_penalty, "length_penalty", low=0.0),
            "temperature": check_float(self.temperature, "temperature", _MIN_TEMPERATURE,
                                       _MAX_TEMPERATURE),
            "top_p": check_float(self.top_p, "top_p", 0.0, 1.0, include_low=False),
        }
        check_bool(self.use_cache, "use_cache")
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def check_max_length(max_length: Any, limit: int | None = None) -> int:
    """Returns `max_length` as an int, at most `limit`; raises TypeError unless it is an
    int, ValueError unless it is >= 1 (a larger one means "as long as the model allows", so
    it is cut to `limit`)."""
    check_int(max_length, "max_length", 1)
    return int(max_length) if limit is None else min(int(max_length), int(limit))


class _Runner:
    """Runs the decoder for new positions with or without the cache."""

    def __init__(self, steps: Any, context: Any, use_cache: bool) -> None:
        self.steps, self.context, self.use_cache = steps, context, use_cache

    def first(self, ids: Any, length: Any, total: Any) -> tuple[Any, list[Any]]:
        """float32 logits of position `length - 1` after reading `ids[:, :length]`."""
        if not self.use_cache:
            return _float32(self.steps.full(ids[:, :length], self.context)[:, -1]), []
        caches = self.steps.init_caches(tf.shape(ids)[0], total)
        logits, caches = self.steps.step(ids[:, :length], 0, caches, self.context)
        return _float32(logits[:, -1]), caches

    def next(self, ids: Any, position: Any, caches: list[Any]) -> tuple[Any, list[Any]]:
        """float32 logits of `position` once the token there is known."""
        if not self.use_cache:
            return _float32(self.steps.full(ids[:, : position + 1], self.context)[:, -1]), caches
        logits, caches = self.steps.step(ids[:, position : position + 1], position, caches,
                                         self.context)
        return _float32(logits[:, -1]), caches


def _float32(logits: Any) -> Any:
    """Logits as float32: a model built under a mixed precision policy gives float16 or
    bfloat16 ones, and the decoding loop keeps one dtype."""
    return tf.cast(logits, tf.float32)


def _ban_mask(logits: Any, banned_ids: tuple[int, ...]) -> Any:
    """`(1, vocab)` float32: `_NEG` at the banned ids, 0 elsewhere; added to each step's
    logits (built once per decode, not per token)."""
    vocab = tf.shape(logits)[-1]
    ban = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], tf.constant(banned_ids)), -1)
    return tf.where(ban, _NEG, 0.0)[None]


def _write(ids: Any, position: Any, tokens: Any) -> Any:
    columns = tf.range(tf.shape(ids)[1])[None, :]
    return tf.where(tf.equal(columns, position), tokens[:, None], ids)


def _mix(x: Any) -> Any:
    """A 32-bit integer hash (xor-shift-multiply rounds) on int64 values below 2**32;
    the multipliers are below 2**31, so no product overflows."""
    shift, mask = tf.bitwise.right_shift, _MASK32
    x = tf.bitwise.bitwise_xor(x, shift(x, 16))
    x = tf.bitwise.bitwise_and(x * 0x7FEB352D, mask)
    x = tf.bitwise.bitwise_xor(x, shift(x, 15))
    x = tf.bitwise.bitwise_and(x * 0x1B873593, mask)
    return tf.bitwise.bitwise_xor(x, shift(x, 16))


def _fingerprint(ids: Any, keep: Any) -> Any:
    """A 32-bit hash (int64) of each row's ids where `keep`, in their order: a sum of
    per-position hashes, so the padding after them changes nothing."""
    ids = tf.cast(ids, tf.int64)
    positions = tf.range(tf.shape(ids, out_type=tf.int64)[1])[None, :]
    pieces = _mix(tf.bitwise.bitwise_xor(_mix(positions), ids))
    total = tf.reduce_sum(tf.where(keep, pieces, tf.zeros_like(pieces)), axis=1)
    return _mix(tf.bitwise.bitwise_and(total, _MASK32))


def _row_keys(row_index: Any, prefix: Any, lengths: Any, context: Any) -> Any:
    """Each row's sampling key: its index in the input, its prefix (the prompt) and, when
    the context holds them, its `"source_ids"`, so that different inputs draw independent
    numbers while a row's do not depend on its batch or padding."""
    xor = tf.bitwise.bitwise_xor
    keep = tf.range(tf.shape(prefix)[1])[None, :] < lengths[:, None]
    key = _fingerprint(prefix, keep)
    source = context.get("source_ids") if isinstance(context, dict) else None
    if source is not None:
        key = _mix(xor(key, _fingerprint(source, tf.not_equal(source, 0))))
    return _mix(xor(key, tf.cast(row_index, tf.int64)))


def _gumbel(seed: int, rows: Any, position: Any, vocab: Any) -> Any:
    """Gumbel noise `(batch, vocab)` that depends only on (seed, row key, position, token),
    so a row samples the same text in any batch; `rows` holds each row's key (below 2**32,
    from `_row_keys`)."""
    xor = tf.bitwise.bitwise_xor
    row_keys = _mix(xor(_mix(xor(_mix(tf.constant(seed, tf.int64)), tf.cast(rows, tf.int64))),
                        tf.cast(position, tf.int64)))
    bits = _mix(xor(row_keys[:, None], _mix(tf.range(tf.cast(vocab, tf.int64)))[None, :]))
    uniform = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / 16777216.0
    return -tf.math.log(-tf.math.log(uniform))


def _sample(logits: Any, options: DecodingOptions, position: Any, rows: Any) -> Any:
    dropped = logits <= 0.5 * _NEG  # banned, at any temperature
    # Each row's largest logit is subtracted first, so no quotient overflows at a tiny
    # temperature (the largest logit alone is then finite: greedy). The temperature keeps
    # the logits' order, so top-k and top-p rank the tokens by the logits themselves (a
    # huge temperature would flush the quotients into ties).
    top = tf.reduce_max(logits, axis=-1, keepdims=True)
    # At the largest logit itself 0, not `top - top`: that is NaN where it is infinite (a
    # float16 logit past 65,504), and NaN would lose every comparison.
    scaled = tf.where(logits >= top, 0.0, logits - top) / options.temperature
    if options.top_k:
        # A `top_k` past int32 (past any vocabulary) keeps every token, as the vocabulary
        # size does.
        k = tf.minimum(min(options.top_k, tf.int32.max), tf.shape(logits)[-1])
        kth = tf.math.top_k(logits, k).values[:, -1:]
        dropped = tf.logical_or(dropped, logits < kth)
    if options.top_p < 1.0:
        order = tf.argsort(logits, axis=-1, direction="DESCENDING", stable=True)
        probabilities = tf.nn.softmax(tf.where(dropped, -math.inf, scaled))
        before = tf.cumsum(tf.gather(probabilities, order, batch_dims=1), axis=-1,
                           exclusive=True)
        # The tokens before one that already hold `top_p` up to float32 rounding (0.5 +
        # 0.3 of 0.8) leave it out; the first token is always kept.
        enough = tf.logical_and(before >= options.top_p - _TOP_P_SLACK, before > 0.0)
        kept = tf.where(enough, tf.float32.max, tf.gather(logits, order, batch_dims=1))
        dropped = tf.logical_or(dropped, logits < tf.reduce_min(kept, axis=-1, keepdims=True))
    noisy = tf.where(dropped, -math.inf, scaled) + _gumbel(
        options.seed, rows, position, tf.shape(logits)[-1])
    return tf.argmax(noisy, axis=-1, output_type=tf.int32)


def decode(
    steps: Any,
    context: Any,
    prefix: Any,
    prefix_lengths: Any,
    max_length: Any,
    end_id: int,
    options: DecodingOptions,
    banned_ids: tuple[int, ...] = (0,),
    context_length: Any = None,
    first_row: Any = 0,
) -> Any:
    """Decodes a batch; traceable, so it runs inside the caller's `tf.function`.

    Args:
        steps: the steps object (see the module docstring).
        context: its context, batch first; a dict's `"source_ids"` entry, when present,
            keys the sampling noise with each row's source (see `DecodingOptions.seed`).
        prefix: int32 `(batch, width)` forced tokens (padded with 0 past each length).
        prefix_lengths: int32 `(batch,)`, each >= 1.
        max_length: most new tokens per sequence (int or scalar tensor, >= 1).
        end_id: the end token; a sequence stops after producing it.
        options: a `DecodingOptions`.
        banned_ids: tokens never generated (padding, the start token).
        context_length: most positions the decoder reads (its position embedding), so
            at most `context_length + 1` tokens in all; None means no limit beyond
            `max_length`.
        first_row: the index of the batch's first row in the whole input (int or int32
            scalar tensor), so that sampling draws the same numbers for a row in any batch
            (and other numbers for a copy of it at another index).

    Returns:
        int32 ids `(batch, length)`: each prefix, then its new tokens, then 0 padding
        (the end token, when produced, is kept).

    Example:
        >>> ids = decode(steps, steps.encode(source_ids), start, tf.ones([n], tf.int32),
        ...              32, END_ID, DecodingOptions())
    """
    prefix = tf.cast(prefix, tf.int32)
    lengths = tf.cast(prefix_lengths, tf.int32)
    max_length = tf.cast(max_length, tf.int32)
    # With a 0 among the lengths: an empty batch's maximum would be int32's minimum.
    total = tf.reduce_max(tf.concat([lengths, [0]], 0)) + max_length
    if context_length is not None:
        total = tf.minimum(total, tf.cast(context_length, tf.int32) + 1)
    width = options.beam_width if options.method == "beam" else 1
    if width > 1:
        context = tf.nest.map_structure(lambda t: tf.repeat(t, width, axis=0), context)
        prefix = tf.repeat(prefix, width, axis=0)
        lengths = tf.repeat(lengths, width, axis=0)
    rows = tf.shape(prefix)[0]
    if options.method == "sample":
        row_keys = _row_keys(tf.cast(first_row, tf.int32) + tf.range(rows), prefix, lengths,
                             context)
    ids = tf.pad(prefix, [[0, 0], [0, tf.maximum(total - tf.shape(prefix)[1], 0)]])[:, :total]
    runner = _Runner(steps, context, options.use_cache)
    start = tf.reduce_min(lengths)
    logits, caches = runner.first(ids, start, total)
    scores = tf.tile(tf.concat([[0.0], tf.fill([width - 1], _NEG)], 0), [rows // width])
    finished = tf.zeros([rows], tf.bool)
    ban = _ban_mask(logits, banned_ids)

    def body(position, ids, caches, logits, scores, finished):
        forced = position < lengths
        # Greedy and sampling read the logits as they are (a row's log-softmax only shifts
        # it); beam search adds log-probabilities across steps.
        allowed = logits + ban
        if options.method == "sample":
            chosen = _sample(allowed, options, position, row_keys)
        elif options.method == "greedy":
            chosen = tf.cast(tf.argmax(allowed, axis=-1), tf.int32)
        token = tf.where(forced, ids[:, position], tf.zeros_like(lengths))
        if options.method == "beam":
            log_probs = tf.nn.log_softmax(allowed)
            vocab = tf.shape(log_probs)[-1]
            only = tf.where(finished, 0, token)  # finished beams continue with padding only
            pinned = tf.one_hot(only, vocab, on_value=0.0, off_value=_NEG)
            log_probs = tf.where((forced | finished)[:, None], pinned, log_probs)
            candidates = tf.reshape(scores[:, None] + log_probs, [-1, width * vocab])
            scores, picked = tf.math.top_k(candidates, width)
            scores = tf.reshape(scores, [-1])
            beam = picked // vocab + (tf.range(rows // width) * width)[:, None]
            beam = tf.reshape(beam, [-1])
            token = tf.reshape(picked % vocab, [-1])
            ids, finished, forced = (tf.gather(t, beam) for t in (ids, finished, forced))
            caches = [tf.gather(cache, beam) for cache in caches]
        else:
            token = tf.where(forced, token, chosen)
            token = tf.where(finished, tf.zeros_like(token), token)
        ids = _write(ids, position, token)
        finished = (
            finished
            | (~forced & tf.equal(token, end_id))
            | (position + 1 >= lengths + max_length)
        )
        # The token at the last position is never read, so it is not run.
        logits, caches = tf.cond(
            position + 1 < total,
            lambda: runner.next(ids, position, caches),
            lambda: (logits, caches),
        )
        return position + 1, ids, caches, logits, scores, finished

    def cond(position, ids, caches, logits, scores, finished):
        return (position < total) & ~tf.reduce_all(finished)

    _, ids, _, _, scores, _ = tf.while_loop(
        cond,
        body,
        (start, ids, caches, logits, scores, finished),
        shape_invariants=(
            start.shape, tf.TensorShape([None, None]),
            [tf.TensorShape([None, *c.shape[1:]]) for c in caches],
            tf.TensorShape([None, None]), tf.TensorShape([None]), tf.TensorShape([None]),
        ),
    )
    if width == 1:
        return ids
    new_tokens = tf.reduce_sum(
        tf.cast((tf.range(tf.shape(ids)[1])[None, :] >= lengths[:, None]) & (ids != 0),
                tf.float32), axis=1)
    ranked = scores / tf.pow((5.0 + new_tokens) / 6.0, options.length_penalty)
    best = tf.argmax(tf.reshape(ranked, [-1, width]), axis=1, output_type=tf.int32)
    return tf.gather(ids, best + tf.range(rows // width) * width)
