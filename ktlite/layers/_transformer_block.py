"""The constructor, sublayer factories and config shared by the Transformer blocks."""

from __future__ import annotations

from typing import Any

import keras

from ktlite.arguments import check_bool, check_positive_float, check_positive_int, check_rate
from ktlite.layers import _validation


class TransformerBlock(keras.layers.Layer):
    """Base of `TransformerEncoder` and `TransformerDecoder`; not used on its own.

    It validates and stores the arguments both blocks take, builds their attention,
    normalization and dense sublayers with the shared settings, and writes the shared
    `get_config`. Subclasses keep their own registered names and docstrings.

    Args:
        See `TransformerEncoder`, whose public docstring documents every argument.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> class Block(TransformerBlock):
        ...     pass
        >>> Block(num_heads=2, intermediate_dim=32).num_heads  # 2
    """

    def __init__(
        self,
        num_heads: int,
        intermediate_dim: int,
        dropout: float = 0.1,
        activation: Any = "gelu",
        norm_first: bool = False,
        layer_norm_epsilon: float = 1e-5,
        attention_dropout: float | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.intermediate_dim = check_positive_int(intermediate_dim, "intermediate_dim")
        self.dropout = check_rate(dropout, "dropout")
        self.attention_dropout = (
            self.dropout
            if attention_dropout is None
            else check_rate(attention_dropout, "attention_dropout")
        )
        self.activation = _validation.activation("activation", activation)
        self.norm_first = check_bool(norm_first, "norm_first")
        self.layer_norm_epsilon = check_positive_float(layer_norm_epsilon, "layer_norm_epsilon")
        self.kernel_initializer = _validation.initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = _validation.initializer("bias_initializer", bias_initializer)
        self.supports_masking = True

    def _attention(self, key_dim: int, name: str) -> keras.layers.MultiHeadAttention:
        return keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            dropout=self.attention_dropout,
            kernel_initializer=_validation.copy_initializer(self.kernel_initializer),
            bias_initializer=_validation.copy_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, name: str) -> keras.layers.LayerNormalization:
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )

    def _dense(self, units: int, name: str, activation: Any = None) -> keras.layers.Dense:
        return keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=_validation.copy_initializer(self.kernel_initializer),
            bias_initializer=_validation.copy_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _attention_sublayer(
        self, name: str, key_dim: int, query_shape: tuple, value_shape: tuple
    ) -> tuple[keras.layers.Layer, keras.layers.Layer, keras.layers.Layer]:
        """The attention layer, its layer norm and its dropout, built for `query_shape`."""
        attention = self._attention(key_dim, name)
        attention.build(query_shape, value_shape)
        norm = self._norm(f"{name}_norm")
        norm.build(query_shape)
        dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name=f"{name}_dropout"
        )
        return attention, norm, dropout

    def _feed_forward_sublayer(
        self, sequence_shape: tuple, hidden_dim: int
    ) -> tuple[keras.layers.Layer, keras.layers.Layer, keras.layers.Layer, keras.layers.Layer]:
        """Built feed-forward block: its layer norm, inner and outer dense, and dropout."""
        norm = self._norm("ffn_norm")
        norm.build(sequence_shape)
        inner = self._dense(self.intermediate_dim, "ffn_inner", activation=self.activation)
        inner.build(sequence_shape)
        outer = self._dense(hidden_dim, "ffn_outer")
        outer.build((*sequence_shape[:-1], self.intermediate_dim))
        dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="ffn_dropout")
        return norm, inner, outer, dropout

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "attention_dropout": self.attention_dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
