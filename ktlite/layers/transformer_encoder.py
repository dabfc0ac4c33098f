"""One Transformer encoder block: self-attention and a feed-forward network."""

from __future__ import annotations

from typing import Any

import keras

from ktlite.layers import _masks, _validation
from ktlite.layers._transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="ktlite")
class TransformerEncoder(TransformerBlock):
    """A Transformer encoder block (bidirectional self-attention + feed-forward).

    Each of the two sublayers (multi-head self-attention, then a two-layer feed-forward
    network) sits in a residual connection with dropout and layer normalization. With
    `norm_first=False` (post-norm, as in the original Transformer and BERT) the
    normalization follows each residual sum; with `norm_first=True` (pre-norm) it is
    applied to the sublayer's input, which trains more stably in deep stacks and
    usually wants a final `LayerNormalization` after the last block.

    Padding is excluded from attention. The padding mask is taken, in this order,
    from the explicit `padding_mask` argument or from the Keras mask attached to the
    inputs (e.g. by `TokenAndPositionEmbedding(mask_zero=True)`). The output carries
    the same Keras mask, so blocks can be stacked and followed by
    `MaskedGlobalPooling`. The hidden size is the last dimension of the inputs; the
    output has the same shape as the inputs.

    Args:
        num_heads: Number of attention heads. Must divide the hidden size.
        intermediate_dim: Width of the feed-forward network's hidden layer.
        dropout: Dropout rate after the attention and feed-forward sublayers, and on
            the attention probabilities unless `attention_dropout` is set.
            Defaults to `0.1`.
        activation: Activation of the feed-forward hidden layer, a name or a
            callable. Defaults to `"gelu"`.
        norm_first: `False` (default) for post-norm, `True` for pre-norm.
        layer_norm_epsilon: Epsilon of the layer normalizations. Defaults to `1e-5`.
        attention_dropout: Dropout rate on the attention probabilities. Defaults to
            `None`, meaning `dropout`.
        kernel_initializer: Initializer of the dense kernels. Defaults to
            `"glorot_uniform"`.
        bias_initializer: Initializer of the dense biases. Defaults to `"zeros"`.
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: If a size is not an int, a rate or epsilon not a number,
            `norm_first` not a bool, or `activation` neither a name, a config nor a
            callable.
        ValueError: If an argument is out of range (a non-positive size, a rate
            outside `[0, 1)`, an unknown activation); at build time if the inputs are
            not of rank 3 or the hidden size is not divisible by `num_heads`.

    Example:
        >>> embed = TokenAndPositionEmbedding(vocab_size=100, sequence_length=8,
        ...                                   embedding_dim=16)
        >>> encoder = TransformerEncoder(num_heads=2, intermediate_dim=32)
        >>> encoder(embed(np.array([[5, 7, 2, 0, 0, 0, 0, 0]]))).shape  # (1, 8, 16)
    """

    def build(self, inputs_shape: tuple) -> None:
        hidden_dim = _validation.hidden_dim("inputs_shape", inputs_shape)
        key_dim = _validation.head_size(hidden_dim, self.num_heads)
        (
            self._self_attention, self._self_attention_norm, self._self_attention_dropout
        ) = self._attention_sublayer("self_attention", key_dim, inputs_shape, inputs_shape)
        self._ffn_norm, self._ffn_inner, self._ffn_outer, self._ffn_dropout = (
            self._feed_forward_sublayer(inputs_shape, hidden_dim)
        )
        self._inputs_shape = tuple(inputs_shape)
        self.built = True

    # Keras' default build config records every tensor passed to `call` (masks too)
    # and replays them all as keywords to `build`; only the sequence shape matters.
    def get_build_config(self) -> dict | None:
        return {"inputs_shape": self._inputs_shape} if self.built else None

    def build_from_config(self, config: dict) -> None:
        if config:
            self.build(config["inputs_shape"])

    def call(
        self,
        inputs: Any,
        padding_mask: Any = None,
        attention_mask: Any = None,
        training: bool | None = None,
        mask: Any = None,
        inputs_mask: Any = None,
    ) -> Any:
        """Runs the block.

        Args:
            inputs: Float tensor `(batch, length, hidden_dim)`.
            padding_mask: Optional `(batch, length)`, true (or 1) at real tokens.
                Overrides the Keras mask of `inputs`.
            attention_mask: Optional `(batch, length, length)`, true where query `i`
                may attend to key `j`; combined with the padding mask.
            training: Whether dropout is active.
            mask: The Keras mask of `inputs`; Keras fills it in, do not pass it.
            inputs_mask: Same as `mask`, the name Keras uses when several tensors are
                passed; do not pass it.

        Returns:
            A tensor with the shape of `inputs`.
        """
        padding = _masks.first_mask(padding_mask, mask, inputs_mask)
        attention = _masks.merge_masks(padding, attention_mask)

        x = inputs
        residual = x
        if self.norm_first:
            x = self._self_attention_norm(x)
        x = _masks.unmasked(x)
        x = self._self_attention(x, x, attention_mask=attention, training=training)
        x = residual + self._self_attention_dropout(x, training=training)
        if not self.norm_first:
            x = self._self_attention_norm(x)

        residual = x
        if self.norm_first:
            x = self._ffn_norm(x)
        x = self._ffn_outer(self._ffn_inner(x))
        x = residual + self._ffn_dropout(x, training=training)
        if not self.norm_first:
            x = self._ffn_norm(x)
        return x

    def compute_output_shape(self, inputs_shape: tuple) -> tuple:
        return tuple(inputs_shape)
