"""The decoder block's incremental (cached) step, written in few plain TensorFlow ops.

Decoding one token runs one position through each block, so at small batches the
step's cost is per-call overhead, not arithmetic. On x86 CPUs TensorFlow runs matmuls
and softmax through oneDNN, whose batched matmul, einsum and softmax cost some 30-70 us
a call whatever the size (a 2-D matmul: 2 us; a small elementwise op: under 1 us); the
Keras sublayers use them for every projection, and a one-token step spent most of its
time there. The step here computes the same thing from the sublayers' own weights: the
hidden states stay 2-D `(batch * n, dim)` through the block so every projection is one
2-D matmul, small attention products are an elementwise product and a sum, the softmax
is plain ops, and the batch and length are read once per call. A trained block thus decodes
exactly as it trains (the block's tests compare every cached output with a full run).

Inference only: no dropout. Caches are laid out `(batch, 2, heads, length, head_dim)`
(keys at index 0 of axis 1, values at 1) so attention needs no transpose per token.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

# Attention products with at most this many multiplications use an elementwise product
# and a sum instead of a batched matmul: at batch 1 of the default translation model a
# score product takes 1.5 us that way against 28 us; at batch 64 (393,216
# multiplications) the batched matmul is ahead, 71 us against 100.
SMALL_PRODUCT = 1 << 16


class _Heads:
    """Reshapes between 2-D rows `(batch * n, dim)` and heads `(batch, heads, n, hd)`.

    Args:
        x: the block's input `(batch, n, dim)`, whose batch and length it reads once.
        heads: number of attention heads.
    """

    def __init__(self, x: Any, heads: int) -> None:
        self.dim = x.shape[-1]
        self.count = heads
        self.shape = tf.shape(x)

    def split(self, rows: Any, dense: keras.layers.Layer) -> Any:
        """The heads of `rows` projected by `dense` (an `EinsumDense` whose kernel is
        `(dim, heads, head_dim)`: the head size is the projection's, not `x`'s)."""
        shape = tf.concat([self.shape[:2], [self.count, dense.kernel.shape[-1]]], axis=0)
        return tf.transpose(tf.reshape(_project(rows, dense), shape), [0, 2, 1, 3])

    def merge(self, x: Any, width: int) -> Any:
        return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, width])


def _project(rows: Any, dense: keras.layers.Layer) -> Any:
    """`rows @ kernel + bias` of a `Dense` or `EinsumDense`, `rows` 2-D.

    An attention projection's kernel `(dim, heads, head_dim)` (or `(heads, head_dim,
    dim)` for the output) is used as the 2-D matrix it is, so one matmul does it.
    """
    kernel = tf.cast(dense.kernel, rows.dtype)
    bias = tf.cast(dense.bias, rows.dtype)
    if len(kernel.shape) != 2:
        kernel = tf.reshape(kernel, [rows.shape[-1], -1])
        bias = tf.reshape(bias, [-1])
    return tf.matmul(rows, kernel) + bias


def _layer_norm(x: Any, norm: keras.layers.LayerNormalization) -> Any:
    """What `norm(x)` computes (over the last axis, in float32 for half precision)."""
    compute = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype
    y = tf.cast(x, compute)
    mean, variance = tf.nn.moments(y, axes=[-1], keepdims=True)
    y = (y - mean) * tf.math.rsqrt(variance + norm.epsilon)
    y = y * tf.cast(norm.gamma, compute) + tf.cast(norm.beta, compute)
    return tf.cast(y, x.dtype)


def _product(size: Any, small: Any, large: Any) -> Any:
    """`small()` if the product has at most `SMALL_PRODUCT` multiplications, else `large()`."""
    return tf.cond(size <= SMALL_PRODUCT, small, large)


def _scores(query: Any, keys: Any) -> Any:
    """`(batch, heads, n, hd) x (batch, heads, length, hd)` -> `(batch, heads, n, length)`."""
    return _product(
        tf.size(query) * tf.shape(keys)[2],
        lambda: tf.reduce_sum(query[:, :, :, None, :] * keys[:, :, None, :, :], axis=-1),
        lambda: tf.matmul(query, keys, transpose_b=True),
    )


def _mix(weights: Any, values: Any) -> Any:
    """`(batch, heads, n, length) x (batch, heads, length, hd)` -> `(batch, heads, n, hd)`."""
    return _product(
        tf.size(weights) * tf.shape(values)[-1],
        lambda: tf.reduce_sum(weights[:, :, :, :, None] * values[:, :, None, :, :], axis=3),
        lambda: tf.matmul(weights, values),
    )


def _softmax(x: Any) -> Any:
    """Softmax over the last axis in plain ops (oneDNN's kernel: ~40 us a call here)."""
    e = tf.exp(x - tf.reduce_max(x, axis=-1, keepdims=True))
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


def _attend(
    attention: keras.layers.MultiHeadAttention,
    heads: _Heads,
    rows: Any,
    keys: Any,
    values: Any,
    mask: Any,
) -> Any:
    """The attention sublayer's output rows for query `rows` and projected keys/values.

    `keys` and `values` are `(batch, heads, length, head_dim)`; `mask` is bool,
    broadcastable to `(batch, heads, n, length)`, true where a query may look, or
    `None`.
    """
    query = heads.split(rows, attention.query_dense)
    query = query * tf.cast(1.0 / math.sqrt(attention.key_dim), query.dtype)
    scores = _scores(query, keys)
    if mask is not None:
        scores = tf.where(mask, scores, tf.cast(scores.dtype.min, scores.dtype))
    weights = _softmax(tf.cast(scores, tf.float32))
    out = _mix(tf.cast(weights, values.dtype), values)
    width = attention.num_heads * attention.value_dim
    return _project(heads.merge(out, width), attention.output_dense)


def _keys_and_values(
    attention: keras.layers.MultiHeadAttention, heads: _Heads, rows: Any
) -> Any:
    keys = heads.split(rows, attention.key_dense)
    values = heads.split(rows, attention.value_dense)
    return tf.stack([keys, values], axis=1)


def keys_and_values(attention: keras.layers.MultiHeadAttention, x: Any) -> Any:
    """`(batch, 2, heads, length, head_dim)` projected keys and values of `x`."""
    heads = _Heads(x, attention.num_heads)
    return _keys_and_values(attention, heads, tf.reshape(x, [-1, heads.dim]))


def _self_attend(
    attention: keras.layers.MultiHeadAttention,
    heads: _Heads,
    rows: Any,
    cache: Any,
    index: Any,
) -> tuple[Any, Any]:
    """Writes the new rows' keys and values into `cache` at `index`, then attends:
    new position `i` (at `index + i`) sees every cached position up to its own."""
    new = tf.cast(_keys_and_values(attention, heads, rows), cache.dtype)
    start = tf.cast(index, tf.int32)
    zero = tf.zeros((), tf.int32)
    cache = keras.ops.slice_update(cache, [zero, zero, zero, start, zero], new)
    query_positions = start + tf.range(heads.shape[1])
    mask = tf.range(tf.shape(cache)[3])[None, :] <= query_positions[:, None]
    return _attend(attention, heads, rows, cache[:, 0], cache[:, 1], mask), cache


def _sublayer_input(rows: Any, norm: keras.layers.Layer, norm_first: bool) -> Any:
    return _layer_norm(rows, norm) if norm_first else rows


def _residual(rows: Any, out: Any, norm: keras.layers.Layer, norm_first: bool) -> Any:
    return rows + out if norm_first else _layer_norm(rows + out, norm)


def block_step(
    block: Any, x: Any, cross_mask: Any, cache: Any, index: Any, memory: Any
) -> tuple[Any, Any]:
    """A `TransformerDecoder` block on new positions `x`, reading and extending `cache`.

    Args:
        block: the built block (its sublayers hold the weights).
        x: `(batch, n, dim)` new positions, at `index, index + 1, ...`.
        cross_mask: the bool encoder mask, broadcastable to `(batch, n, source_length)`,
            or `None`; unused by a block without cross-attention.
        cache: `(batch, 2, heads, length, head_dim)` keys and values so far.
        index: position of the first new token (int or scalar int tensor).
        memory: `(batch, 2, heads, source_length, head_dim)` projected encoder keys
            and values, or `None` for a block without cross-attention.

    Returns:
        `(outputs, cache)`: outputs shaped like `x`, and the cache with the new
        positions written in.
    """
    heads = _Heads(x, block.num_heads)
    first = block.norm_first
    rows = tf.reshape(x, [-1, heads.dim])

    norm = block._self_attention_norm
    out, cache = _self_attend(block._self_attention, heads,
                              _sublayer_input(rows, norm, first), cache, index)
    rows = _residual(rows, out, norm, first)

    if memory is not None:
        if cross_mask is not None:
            cross_mask = tf.expand_dims(cross_mask, axis=1)  # the same for every head
        norm = block._cross_attention_norm
        out = _attend(block._cross_attention, heads, _sublayer_input(rows, norm, first),
                      memory[:, 0], memory[:, 1], cross_mask)
        rows = _residual(rows, out, norm, first)

    norm, inner = block._ffn_norm, block._ffn_inner
    out = inner.activation(_project(_sublayer_input(rows, norm, first), inner))
    rows = _residual(rows, _project(out, block._ffn_outer), norm, first)
    return tf.reshape(rows, heads.shape), cache
