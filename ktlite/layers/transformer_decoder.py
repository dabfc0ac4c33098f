"""One Transformer decoder block: causal self-attention, cross-attention, feed-forward."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ktlite.layers import _incremental, _masks, _validation
from ktlite.layers._transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="ktlite")
class TransformerDecoder(TransformerBlock):
    """A Transformer decoder block with causal self-attention.

    The block runs masked (causal) self-attention, so position `t` only attends to
    positions `<= t`; then, if an `encoder_sequence` is given, cross-attention from the
    decoder positions to the encoder outputs; then a two-layer feed-forward network.
    Each sublayer sits in a residual connection with dropout and layer normalization,
    after the sum (`norm_first=False`, post-norm) or before the sublayer
    (`norm_first=True`, pre-norm).

    Whether the block has cross-attention is fixed by the first call: a block first
    called with an `encoder_sequence` must always get one, and a block first called
    without one (a decoder-only, GPT-style block) must never get one.

    Masks: the decoder padding mask comes from `decoder_padding_mask` or the Keras
    mask of `decoder_sequence`; the encoder padding mask from `encoder_padding_mask`
    or the Keras mask of `encoder_sequence`. Padded encoder positions are never
    attended to. The output carries the decoder's Keras mask.

    Args:
        num_heads: Number of attention heads. Must divide the decoder's hidden size.
        intermediate_dim: Width of the feed-forward network's hidden layer.
        dropout: Dropout rate after each sublayer, and on the attention probabilities
            unless `attention_dropout` is set. Defaults to `0.1`.
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

    Incremental decoding: pass `self_attention_cache` (from `init_cache`) and
    `cache_index` to run only the new positions `[cache_index, cache_index + n)`; the
    block writes their self-attention keys and values into the cache and attends to
    every cached position up to each new one, so one new token costs one position.
    The call then returns `(outputs, updated_cache)`. Cross-attention keys and values
    can be projected once per source with `cross_attention_cache` and passed the same
    way. This mode is for inference: it applies no dropout (`training=True` is
    refused) and ignores the decoder's padding masks (decoded prefixes have no
    padding); it runs the same weights through few plain TensorFlow ops, since
    decoding runs it once per token.

    Raises:
        TypeError: If a size is not an int, a rate or epsilon not a number,
            `norm_first` not a bool, or `activation` neither a name, a config nor a
            callable.
        ValueError: If an argument is out of range; at build time if an input is not
            of rank 3 or the decoder's hidden size is not divisible by `num_heads`; at
            call time if `encoder_sequence` is given to a block built without
            cross-attention, or missing for one built with it.

    Example:
        >>> decoder = TransformerDecoder(num_heads=2, intermediate_dim=32)
        >>> targets = np.random.rand(2, 5, 16).astype("float32")
        >>> sources = np.random.rand(2, 7, 16).astype("float32")
        >>> decoder(targets, sources).shape  # (2, 5, 16)
        >>> cache = decoder.init_cache(batch_size=2, max_length=5)
        >>> step, cache = decoder(targets[:, :1], sources, self_attention_cache=cache,
        ...                       cache_index=0)
    """

    # Fixed by the first `build`; `None` until then.
    _has_cross_attention: bool | None = None

    def build(
        self,
        decoder_sequence_shape: tuple,
        encoder_sequence_shape: tuple | None = None,
    ) -> None:
        hidden_dim = _validation.hidden_dim(
            "decoder_sequence_shape", decoder_sequence_shape
        )
        key_dim = _validation.head_size(hidden_dim, self.num_heads)

        (
            self._self_attention, self._self_attention_norm, self._self_attention_dropout
        ) = self._attention_sublayer(
            "self_attention", key_dim, decoder_sequence_shape, decoder_sequence_shape
        )

        self._has_cross_attention = encoder_sequence_shape is not None
        if self._has_cross_attention:
            _validation.hidden_dim("encoder_sequence_shape", encoder_sequence_shape)
            (
                self._cross_attention, self._cross_attention_norm, self._cross_attention_dropout
            ) = self._attention_sublayer(
                "cross_attention", key_dim, decoder_sequence_shape, encoder_sequence_shape
            )

        self._ffn_norm, self._ffn_inner, self._ffn_outer, self._ffn_dropout = (
            self._feed_forward_sublayer(decoder_sequence_shape, hidden_dim)
        )
        self._sequence_shapes = {
            "decoder_sequence_shape": tuple(decoder_sequence_shape),
            "encoder_sequence_shape": None
            if encoder_sequence_shape is None
            else tuple(encoder_sequence_shape),
        }
        self.built = True

    # Keras' default build config records every tensor passed to `call` (masks too)
    # and replays them all as keywords to `build`; only the two sequences matter.
    def get_build_config(self) -> dict | None:
        return dict(self._sequence_shapes) if self.built else None

    def build_from_config(self, config: dict) -> None:
        if config:
            self.build(**config)

    def _pre_norm(self, x: Any, norm: keras.layers.Layer) -> Any:
        return norm(x) if self.norm_first else x

    def _add_and_post_norm(
        self,
        residual: Any,
        x: Any,
        dropout: keras.layers.Layer,
        norm: keras.layers.Layer,
        training: bool | None,
    ) -> Any:
        x = residual + dropout(x, training=training)
        return x if self.norm_first else norm(x)

    def call(
        self,
        decoder_sequence: Any,
        encoder_sequence: Any = None,
        decoder_padding_mask: Any = None,
        decoder_attention_mask: Any = None,
        encoder_padding_mask: Any = None,
        encoder_attention_mask: Any = None,
        use_causal_mask: bool = True,
        training: bool | None = None,
        mask: Any = None,
        decoder_sequence_mask: Any = None,
        encoder_sequence_mask: Any = None,
        self_attention_cache: Any = None,
        cache_index: Any = None,
        cross_attention_cache: Any = None,
    ) -> Any:
        """Runs the block.

        Args:
            decoder_sequence: Float tensor `(batch, target_length, hidden_dim)`.
            encoder_sequence: Optional float tensor `(batch, source_length, dim)`,
                the encoder's output, attended to by cross-attention.
            decoder_padding_mask: Optional `(batch, target_length)`, true at real
                tokens. Overrides the Keras mask of `decoder_sequence`.
            decoder_attention_mask: Optional `(batch, target_length, target_length)`,
                combined with the causal and padding masks.
            encoder_padding_mask: Optional `(batch, source_length)`, true at real
                tokens. Overrides the Keras mask of `encoder_sequence`.
            encoder_attention_mask: Optional `(batch, target_length, source_length)`,
                combined with the encoder padding mask.
            use_causal_mask: Whether self-attention is causal. Defaults to `True`;
                `False` turns the block into an encoder block with cross-attention.
            training: Whether dropout is active.
            mask: Keras fills this in with the Keras mask of `decoder_sequence`
                when it is the only tensor passed; do not pass it.
            decoder_sequence_mask: Keras fills this in with the Keras mask of
                `decoder_sequence` when several tensors are passed; do not pass it.
            encoder_sequence_mask: Keras fills this in with the Keras mask of
                `encoder_sequence`; do not pass it.
            self_attention_cache: Optional `(batch, 2, num_heads, max_length,
                head_dim)` keys and values of earlier positions (see `init_cache`).
                `decoder_sequence` then holds only the new positions.
            cache_index: Position of the first new token; required with
                `self_attention_cache` (an int or a scalar int tensor).
            cross_attention_cache: Optional `(batch, 2, num_heads, source_length,
                head_dim)` encoder keys and values from `cross_attention_cache`, used
                instead of projecting `encoder_sequence` again (which may then be
                `None`; `encoder_padding_mask` still applies).

        Returns:
            A tensor with the shape of `decoder_sequence`; with `self_attention_cache`,
            a tuple `(outputs, updated_cache)`.

        Raises:
            ValueError: If `encoder_sequence` does not match how the block was built,
                or `training` is true with `self_attention_cache`.
        """
        has_source = encoder_sequence is not None or cross_attention_cache is not None
        if has_source != self._has_cross_attention:
            raise ValueError(
                "A `TransformerDecoder` block built "
                f"{'with' if self._has_cross_attention else 'without'} cross-attention "
                "must always be called "
                f"{'with' if self._has_cross_attention else 'without'} an "
                "`encoder_sequence`. Received: encoder_sequence="
                f"{None if encoder_sequence is None else 'a tensor'}"
            )
        if (self_attention_cache is None) != (cache_index is None):
            raise ValueError(
                "`self_attention_cache` and `cache_index` must be given together. "
                f"Received: cache_index={cache_index!r}"
            )

        encoder_padding = _masks.first_mask(encoder_padding_mask, encoder_sequence_mask)
        cross_mask = _masks.merge_masks(encoder_padding, encoder_attention_mask)
        if self_attention_cache is not None:
            if training:
                raise ValueError(
                    "Incremental decoding (`self_attention_cache`) runs at inference only. "
                    f"Received: training={training!r}"
                )
            return self._incremental_call(
                decoder_sequence, encoder_sequence, cross_mask, self_attention_cache,
                cache_index, cross_attention_cache,
            )

        x = decoder_sequence
        residual = x
        x = self._pre_norm(x, self._self_attention_norm)
        decoder_padding = _masks.first_mask(decoder_padding_mask, mask, decoder_sequence_mask)
        self_mask = _masks.merge_masks(decoder_padding, decoder_attention_mask)
        query = _masks.unmasked(x)
        x = self._self_attention(
            query,
            query,
            attention_mask=self_mask,
            use_causal_mask=use_causal_mask,
            training=training,
        )
        x = self._add_and_post_norm(
            residual, x, self._self_attention_dropout, self._self_attention_norm, training
        )

        if self._has_cross_attention:
            residual = x
            x = self._pre_norm(x, self._cross_attention_norm)
            x = self._cross_attention(
                _masks.unmasked(x),
                _masks.unmasked(encoder_sequence),
                attention_mask=cross_mask,
                training=training,
            )
            x = self._add_and_post_norm(
                residual, x, self._cross_attention_dropout, self._cross_attention_norm,
                training,
            )

        residual = x
        x = self._pre_norm(x, self._ffn_norm)
        x = self._ffn_outer(self._ffn_inner(x))
        return self._add_and_post_norm(residual, x, self._ffn_dropout, self._ffn_norm, training)

    def _incremental_call(
        self,
        x: Any,
        encoder_sequence: Any,
        cross_mask: Any,
        cache: Any,
        index: Any,
        memory: Any,
    ) -> tuple[Any, Any]:
        """The block on new positions only, with cached keys and values (inference).

        The same computation as `call` without dropout, in few plain ops (see
        `_incremental`), since decoding runs it once per token.
        """
        if self._has_cross_attention and memory is None:
            memory = self.cross_attention_cache(encoder_sequence)
        return _incremental.block_step(self, x, cross_mask, cache, index, memory)

    def init_cache(self, batch_size: Any, max_length: Any) -> Any:
        """An empty self-attention cache for incremental decoding.

        Args:
            batch_size: Number of sequences decoded together (int or scalar tensor).
            max_length: Most positions the cache holds (int or scalar tensor).

        Returns:
            A zero tensor `(batch_size, 2, num_heads, max_length, head_dim)` in the
            block's compute dtype: index 0 of axis 1 holds keys, index 1 values.

        Raises:
            ValueError: If the block is not built yet.

        Example:
            >>> cache = decoder.init_cache(batch_size=4, max_length=32)
        """
        if not self.built:
            raise ValueError("Call the `TransformerDecoder` once before `init_cache`.")
        head_dim = self._self_attention.key_dense.kernel.shape[-1]
        return ops.zeros(
            (batch_size, 2, self.num_heads, max_length, head_dim), dtype=self.compute_dtype
        )

    def cross_attention_cache(self, encoder_sequence: Any) -> Any:
        """Projects encoder outputs once into cross-attention keys and values.

        Args:
            encoder_sequence: Float tensor `(batch, source_length, dim)`.

        Returns:
            A tensor `(batch, 2, num_heads, source_length, head_dim)` to pass as
            `cross_attention_cache` at every decoding step.

        Raises:
            ValueError: If the block has no cross-attention.

        Example:
            >>> memory = decoder.cross_attention_cache(encoder_outputs)
        """
        if not self._has_cross_attention:
            raise ValueError(
                "This `TransformerDecoder` block has no cross-attention, so it has no "
                "cross-attention cache."
            )
        return _incremental.keys_and_values(self._cross_attention, encoder_sequence)

    def compute_output_shape(
        self,
        decoder_sequence_shape: tuple,
        encoder_sequence_shape: tuple | None = None,
    ) -> tuple:
        return tuple(decoder_sequence_shape)
