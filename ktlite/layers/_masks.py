"""Turning padding masks and attention masks into one mask for attention."""

from __future__ import annotations

from typing import Any

from keras import ops


def merge_masks(padding_mask: Any = None, attention_mask: Any = None) -> Any:
    """Combines a key padding mask and an attention mask into one boolean mask.

    Args:
        padding_mask: `(batch, key_length)`, true (or 1) at real tokens, or `None`.
        attention_mask: `(batch, query_length, key_length)`, true where a query may
            attend to a key, or `None`.

    Returns:
        A boolean mask that broadcasts to `(batch, query_length, key_length)`, or
        `None` when both inputs are `None`. A padding mask alone stays
        `(batch, 1, key_length)`: Keras' masked softmax broadcasts it, which saves
        materialising a `length x length` tensor per example.
    """
    mask = None
    if padding_mask is not None:
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)
    if attention_mask is not None:
        attention_mask = ops.cast(attention_mask, "bool")
        mask = attention_mask if mask is None else ops.logical_and(mask, attention_mask)
    return mask


def first_mask(*masks: Any) -> Any:
    """Returns the first of `masks` that is not `None` (explicit masks come first)."""
    for mask in masks:
        if mask is not None:
            return mask
    return None


def unmasked(x: Any) -> Any:
    """Returns a copy of `x` that carries no Keras mask, for `MultiHeadAttention`.

    `MultiHeadAttention` reads the Keras masks attached to its query and value and then
    deletes them from those tensors in place. The ktlite blocks pass every mask
    explicitly, so handing it a copy keeps a caller's tensor (and its padding mask)
    intact when it is reused, e.g. eagerly fed to two blocks in turn.
    """
    return ops.copy(x)
