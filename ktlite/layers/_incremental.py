"""The decoder block's incremental (cached) step, written in few plain TensorFlow ops.

Decoding one token runs one position through each block, so at small batches the
step's cost is per-op overhead, not arithmetic. On x86 CPUs TensorFlow runs matmuls
through oneDNN, whose *batched* matmul costs some 30 us a call whatever its size (a 2-D
matmul: 2 us); the Keras sublayers use batched matmuls and einsums for every projection,
and a one-token step spent most of its time there. The functions here compute the same
thing from the sublayers' own weights with 2-D matmuls for the projections and, for small
attention products, an elementwise product and a sum, so a trained block decodes exactly
as it trains (the block's tests compare every cached output with a full run).

Inference only: no dropout. Caches are laid out `(batch, 2, heads, length, head_dim)`
(keys at index 0 of axis 1, values at 1) so attention needs no transpose per token.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf


# Attention products with at most this many multiplications use an elementwise product
# and a sum instead of a batched matmul (see above): at batch 1 of the default model a
# score product takes 1.5 us that way against 28 us; at batch 64 (393,216
# multiplications) the batched matmul is ahead, 71 us against 100.
SMALL_PRODUCT = 1 << 16


def project(x: Any, dense: keras.layers.Layer) -> Any:
    """`x @ kernel + bias` of a `Dense` or `EinsumDense` over the last axis of `x`.

    An attention projection's kernel `(dim, heads, head_dim)` (or `(heads, head_dim,
    dim)` for the output) is used as the 2-D matrix it is, and `x` is flattened to 2-D,
    so one plain matmul does it.
    """
    kernel = tf.cast(dense.kernel, x.dtype)
    kernel = tf.reshape(kernel, [x.shape[-1], -1])
    y = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel)
    y = y + tf.reshape(tf.cast(dense.bias, x.dtype), [-1])
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(y)[-1:]], axis=0))


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


def layer_norm(x: Any, norm: keras.layers.LayerNormalization) -> Any:
    """What `norm(x)` computes (over the last axis, in float32 for half precision)."""
    compute = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype
    y = tf.cast(x, compute)
    mean, variance = tf.nn.moments(y, axes=[-1], keepdims=True)
    y = (y - mean) * tf.math.rsqrt(variance + norm.epsilon)
    y = y * tf.cast(norm.gamma, compute) + tf.cast(norm.beta, compute)
    return tf.cast(y, x.dtype)


def split_heads(x: Any, heads: int) -> Any:
    """`(batch, length, heads * head_dim)` -> `(batch, heads, length, head_dim)`."""
    length = tf.shape(x)[1]
    x = tf.reshape(x, [-1, length, heads, x.shape[-1] // heads])
    return tf.transpose(x, [0, 2, 1, 3])


def merge_heads(x: Any) -> Any:
    """`(batch, heads, length, head_dim)` -> `(batch, length, heads * head_dim)`."""
    x = tf.transpose(x, [0, 2, 1, 3])
    return tf.reshape(x, [-1, tf.shape(x)[1], x.shape[2] * x.shape[3]])


def _softmax(x: Any) -> Any:
    """Softmax over the last axis in plain ops: oneDNN's softmax kernel costs ~40 us a
    call at these sizes, the plain ops 6."""
    e = tf.exp(x - tf.reduce_max(x, axis=-1, keepdims=True))
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


def attend(
    attention: keras.layers.MultiHeadAttention,
    x: Any,
    keys: Any,
    values: Any,
    mask: Any,
) -> Any:
    """Attention of the positions `x` to projected `keys` and `values`.

    Args:
        attention: the `MultiHeadAttention` sublayer whose query and output
            projections apply (scaled as the layer scales).
        x: `(batch, n, dim)` queries, before projection.
        keys: `(batch, heads, length, head_dim)`.
        values: `(batch, heads, length, head_dim)`.
        mask: bool, broadcastable to `(batch, heads, n, length)`, true where a query
            may look; or `None` (every key).

    Returns:
        `(batch, n, dim)`: the attention sublayer's output.
    """
    query = split_heads(project(x, attention.query_dense), keys.shape[1])
    query = query * tf.cast(1.0 / math.sqrt(keys.shape[-1]), query.dtype)
    scores = _scores(query, keys)
    if mask is not None:
        scores = tf.where(mask, scores, tf.cast(scores.dtype.min, scores.dtype))
    weights = _softmax(tf.cast(scores, tf.float32))
    out = _mix(tf.cast(weights, values.dtype), values)
    return project(merge_heads(out), attention.output_dense)


def keys_and_values(attention: keras.layers.MultiHeadAttention, x: Any) -> Any:
    """`(batch, 2, heads, length, head_dim)` projected keys and values of `x`."""
    heads = attention.num_heads
    keys = split_heads(project(x, attention.key_dense), heads)
    values = split_heads(project(x, attention.value_dense), heads)
    return tf.stack([keys, values], axis=1)


def self_attend(
    attention: keras.layers.MultiHeadAttention, x: Any, cache: Any, index: Any
) -> tuple[Any, Any]:
    """Writes the new positions' keys and values into `cache` at `index`, then attends.

    Returns:
        `(outputs, cache)`: new position `i` (at `index + i`) sees every cached
        position up to its own.
    """
    new = tf.cast(keys_and_values(attention, x), cache.dtype)
    index = tf.cast(index, tf.int32)
    zero = tf.zeros((), tf.int32)
    cache = keras.ops.slice_update(cache, [zero, zero, zero, index, zero], new)
    query_positions = index + tf.range(tf.shape(x)[1])
    key_positions = tf.range(tf.shape(cache)[3])
    mask = key_positions[None, :] <= query_positions[:, None]
    return attend(attention, x, cache[:, 0], cache[:, 1], mask), cache


def residual(x: Any, sublayer_output: Any, norm: keras.layers.Layer, norm_first: bool) -> Any:
    """The residual sum after a sublayer, normalized unless the block is pre-norm."""
    x = x + sublayer_output
    return x if norm_first else layer_norm(x, norm)


def pre_norm(x: Any, norm: keras.layers.Layer, norm_first: bool) -> Any:
    """The sublayer's input: normalized in a pre-norm block, as is in a post-norm one."""
    return layer_norm(x, norm) if norm_first else x
