"""Counts summed over the replicas of a distributed step, for losses that average over a
count of the whole global batch (real target tokens, masked tokens).

Keras computes a loss on each replica's share of the batch and averages the replicas'
gradients. A loss that divides by its own share's count (its real tokens) therefore weighs
a token on a replica holding few of them more than one on a replica holding many: two
replicas are not one device. Divided by the count summed over the replicas, every token
of the global batch weighs the same, as on one device.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def sum_over_replicas(value: Any) -> tuple[Any, int]:
    """Returns `value` summed over the replicas running this step, and their number.

    Outside a step run by several replicas in sync (one device, the default strategy,
    cross-replica code) that is `value` itself and 1. Gradients do not flow through the
    sum (it is a count).

    Args:
        value: a scalar tensor, this replica's count.

    Returns:
        `(total, replicas)`. Keras scales a loss reduced by a mean (its default) by
        `1 / replicas` and sums the replicas' gradients, so such a loss, summed over this
        replica's share of the batch and divided by `total / replicas`, gives the mean
        over the whole global batch; a loss reduced by `"sum"`, which Keras does not
        scale, divides by `total`.

    Example:
        >>> total, replicas = sum_over_replicas(ops.sum(mask))
        >>> loss = ops.sum(token_losses * mask) * replicas / ops.maximum(total, 1.0)
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value, 1
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(value))
    return total, context.num_replicas_in_sync
