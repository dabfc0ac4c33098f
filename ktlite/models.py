"""Ready-made Keras models built from `ktlite.layers`."""

from __future__ import annotations

from typing import Any

import keras

from ktlite.arguments import (
    check_bool,
    check_choice,
    check_positive_float,
    check_positive_int,
    check_rate,
)
from ktlite.layers import (
    MaskedGlobalPooling,
    TokenAndPositionEmbedding,
    TransformerEncoder,
)
from ktlite.layers import _validation
from ktlite.layers.masked_pooling import POOLING_MODES

__all__ = ["DEFAULT_MAXLEN", "Transformer"]

# Longest input of a `Transformer(maxlen=None)`: its number of learned position vectors.
DEFAULT_MAXLEN = 512


def Transformer(  # noqa: N802 - a model "class" users look for under this name
    vocab_size: int,
    maxlen: int | None = None,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.1,
    num_outputs: int = 2,
    head_activation: Any = "softmax",
    pooling: str = "mean",
    norm_first: bool = False,
    head_hidden: int | None = None,
    position: str = "learned",
    activation: Any = "gelu",
    layer_norm_epsilon: float = 1e-5,
    name: str = "transformer",
) -> keras.Model:
    """Builds a Transformer encoder with a pooling + dense head (not compiled).

    Token ids `(batch, length)` (int32, 0 = padding, any `length` up to `maxlen`) pass
    through a
    `TokenAndPositionEmbedding`, `num_layers` `TransformerEncoder` blocks, a
    `MaskedGlobalPooling` that ignores padding, and a dense head producing
    `num_outputs` values. Post-norm models (the default) normalize the embeddings;
    pre-norm models (`norm_first=True`) normalize the last block's output instead.
    The output layer always computes in float32, so the model can run under the
    `"mixed_bfloat16"` or `"mixed_float16"` policies and still return float32
    probabilities.

    Args:
        vocab_size: Number of token ids, including padding id 0.
        maxlen: The longest input sequence (the number of learned positions). `None`
            (default) allows `DEFAULT_MAXLEN` (512) positions. The input shape is always
            `(None, None)`, so batches padded only to their longest sequence run as they
            are; a longer input raises an error naming `sequence_length`.
        embed_dim: Hidden size of the embeddings and every block. Must be divisible
            by `num_heads`. Defaults to `128`.
        num_heads: Attention heads per block. Defaults to `4`.
        num_layers: Number of encoder blocks. Defaults to `2`.
        ff_dim: Width of each block's feed-forward layer. Defaults to `None`,
            meaning `4 * embed_dim`.
        dropout: Dropout rate in the embeddings, the blocks and the head.
            Defaults to `0.1`.
        num_outputs: Size of the output (e.g. the number of classes).
            Defaults to `2`.
        head_activation: Activation of the output layer: `"softmax"` (default) for
            single-label classification, `"sigmoid"` for multilabel, `None` or
            `"linear"` for regression or logits.
        pooling: How the sequence becomes one vector: `"mean"` (default, over real
            tokens only), `"max"` or `"first"` (the first token, e.g. `[CLS]`).
        norm_first: `False` (default) for post-norm blocks, `True` for pre-norm.
        head_hidden: If set, the head gets a hidden dense layer of this width (with
            `activation`) before the output layer. Defaults to `None`.
        position: `"learned"` (default) or `"sinusoidal"` position embeddings.
        activation: Activation of the feed-forward layers and the hidden head layer.
            Defaults to `"gelu"`.
        layer_norm_epsilon: Epsilon of every layer normalization. Defaults to `1e-5`.
        name: Name of the model. Defaults to `"transformer"`.

    Returns:
        An uncompiled functional `keras.Model` mapping int32 `(batch, length)` token
        ids (`length <= maxlen`, or `DEFAULT_MAXLEN` when `maxlen=None`) to float32
        `(batch, num_outputs)`.

    Raises:
        TypeError: If a size is not an int, `dropout` or `layer_norm_epsilon` not a
            number, `norm_first` not a bool, `pooling` or `position` not a str, or an
            activation neither a name, a config nor a callable.
        ValueError: If a size is not positive (`maxlen` may be `None`),
            `embed_dim` is not divisible by `num_heads`, `dropout` is outside `[0, 1)`,
            or `pooling`, `position` or an activation is unknown.

    Example:
        >>> model = Transformer(vocab_size=8000, maxlen=128, num_outputs=3)
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> model.predict(token_ids).shape  # (n, 3)
        >>> any_length = Transformer(vocab_size=1000, embed_dim=128, num_heads=4, num_layers=2)
        >>> any_length.predict(np.ones((2, 50), "int32")).shape  # up to 512 token ids
        (2, 2)
    """
    vocab_size, embed_dim, num_heads, num_layers = (
        check_positive_int(value, name)
        for name, value in [("vocab_size", vocab_size), ("embed_dim", embed_dim),
                            ("num_heads", num_heads), ("num_layers", num_layers)]
    )
    maxlen = check_positive_int(maxlen, "maxlen", allow_none=True)
    if embed_dim % num_heads:
        raise ValueError(
            "`embed_dim` must be divisible by `num_heads`. "
            f"Received: embed_dim={embed_dim}, num_heads={num_heads}"
        )
    ff_dim = 4 * embed_dim if ff_dim is None else check_positive_int(ff_dim, "ff_dim")
    if head_hidden is not None:
        head_hidden = check_positive_int(head_hidden, "head_hidden")
    num_outputs = check_positive_int(num_outputs, "num_outputs")
    dropout = check_rate(dropout, "dropout")
    head_activation = _validation.activation("head_activation", head_activation)
    activation = _validation.activation("activation", activation)
    pooling = check_choice(pooling, "pooling", POOLING_MODES)
    position = check_choice(position, "position", ("learned", "sinusoidal"))
    norm_first = check_bool(norm_first, "norm_first")
    layer_norm_epsilon = check_positive_float(layer_norm_epsilon, "layer_norm_epsilon")

    # Any length up to `maxlen`: batches padded only to their longest text run as they are.
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = TokenAndPositionEmbedding(
        vocab_size, maxlen or DEFAULT_MAXLEN, embed_dim, position=position, name="embedding"
    )(token_ids)
    if not norm_first:
        x = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="embedding_norm"
        )(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(num_layers):
        x = TransformerEncoder(
            num_heads=num_heads,
            intermediate_dim=ff_dim,
            dropout=dropout,
            activation=activation,
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            name=f"encoder_{i}",
        )(x)
    if norm_first:
        # Pre-norm blocks leave the residual stream unnormalized.
        x = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="final_norm"
        )(x)
    x = MaskedGlobalPooling(pooling, name="pooling")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if head_hidden is not None:
        x = keras.layers.Dense(head_hidden, activation=activation, name="head_hidden")(x)
        x = keras.layers.Dropout(dropout, name="head_hidden_dropout")(x)
    # float32 output: softmax/sigmoid in bfloat16 would round probabilities and
    # feed imprecise values to the loss under a mixed-precision policy.
    outputs = keras.layers.Dense(
        num_outputs, activation=head_activation, dtype="float32", name="head"
    )(x)
    return keras.Model(token_ids, outputs, name=name)
