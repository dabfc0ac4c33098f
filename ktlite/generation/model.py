"""`causal_lm`: a decoder-only Transformer language model built from ktlite's layers."""

from __future__ import annotations

from typing import Any

import keras

from ktlite._console import say
from ktlite.generation.data import LMPreprocessor
from ktlite.layers import TokenAndPositionEmbedding, TransformerDecoder
from ktlite.arguments import (
    check_choice,
    check_fitted,
    check_positive_int,
    check_rate,
    check_verbose,
)
from ktlite.seq2seq.models import check_train_data, compile_for_sequences, output_logits

MODEL_NAMES = ("transformer",)


def causal_lm(
    name: str = "transformer",
    train_data: Any = None,
    preproc: LMPreprocessor | None = None,
    *,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.1,
    label_smoothing: float = 0.0,
    learning_rate: float = 1e-3,
    optimizer: Any = None,
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles a GPT-style language model for the preprocessor's vocabulary.

    Token ids `(batch, length)` go through a `TokenAndPositionEmbedding`, `num_layers`
    pre-norm `TransformerDecoder` blocks without cross-attention and a final layer norm;
    the transposed embedding gives the next-token logits (tied input/output embeddings).

    Args:
        name: `"transformer"`.
        train_data: the training `TaskDataset` from `texts_for_lm` (checked), or None.
        preproc: the fitted `LMPreprocessor`.
        embed_dim: hidden size. Defaults to 128.
        num_heads: attention heads. Defaults to 4.
        num_layers: decoder blocks. Defaults to 2.
        ff_dim: feed-forward width; None means `4 * embed_dim`.
        dropout: dropout rate. Defaults to 0.1.
        label_smoothing: of the loss; 0 (default) keeps the loss a log-likelihood.
        learning_rate: of the default AdamW. Defaults to 1e-3.
        optimizer: an optimizer name or instance, or None for AdamW.
        verbose: 1 prints a one-line summary.

    Returns:
        A compiled `keras.Model` from `token_ids` to next-token logits.

    Raises:
        ValueError: for an unknown `name`, invalid sizes, or `train_data` of another
            `preproc` (labels of another length than `maxlen`, or ids past the vocabulary).
        TypeError: if `name` is not a str, `preproc` is not a fitted `LMPreprocessor`,
            `train_data` is not from `texts_for_lm`, or a size has the wrong type.

    Example:
        >>> model = causal_lm("transformer", trn, preproc=preproc)
    """
    check_choice(name, "name", MODEL_NAMES)
    check_fitted(preproc, LMPreprocessor)
    check_train_data(train_data, preproc, "`texts_for_lm`")
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    num_layers = check_positive_int(num_layers, "num_layers")
    ff_dim = check_positive_int(ff_dim if ff_dim is not None else 4 * embed_dim, "ff_dim")
    dropout = check_rate(dropout, "dropout")
    check_verbose(verbose)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    embedding = TokenAndPositionEmbedding(preproc.target_vocab_size, preproc.maxlen, embed_dim,
                                          name="target_embedding")
    x = keras.layers.Dropout(dropout)(embedding(token_ids))
    for i in range(num_layers):
        x = TransformerDecoder(num_heads=num_heads, intermediate_dim=ff_dim, dropout=dropout,
                               norm_first=True, name=f"decoder_{i}")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")(x)
    model = keras.Model(token_ids, embedding(x, reverse=True), name="causal_lm")
    compile_for_sequences(model, learning_rate, label_smoothing, optimizer)
    if verbose:
        say(f"transformer causal LM: {num_layers} blocks, vocabulary "
            f"{preproc.target_vocab_size}, context {preproc.maxlen}, "
            f"{model.count_params():,} parameters")
    return model


class DecoderOnlySteps:
    """The trained layers of a `causal_lm`, run step by step for decoding.

    Args:
        model: a model built by `causal_lm`.

    Raises:
        ValueError: if the model lacks the named layers, or is not decoder-only: it takes
            more than one input (e.g. a translation model's `source_ids`) or its decoder
            blocks have cross-attention.

    Example:
        >>> steps = DecoderOnlySteps(model)
    """

    def __init__(self, model: keras.Model) -> None:
        names = {layer.name for layer in model.layers}
        if not {"target_embedding", "decoder_norm"} <= names:
            raise ValueError("`model` must be built by `generation.causal_lm`.")
        decoders = [layer for layer in model.layers if isinstance(layer, TransformerDecoder)]
        crossing = [layer.name for layer in decoders if layer._has_cross_attention]
        if len(model.inputs) != 1 or crossing:
            inputs = [tensor.name for tensor in model.inputs]
            raise ValueError(
                "`model` must be a decoder-only (causal LM) model from `generation.causal_lm`, "
                "with one input of token ids and no cross-attention. Received: a model with "
                f"inputs {inputs}" + (f" and cross-attention in {crossing}" if crossing else "")
            )
        self.model = model
        self.embedding = model.get_layer("target_embedding")
        self.decoders = decoders
        self.norm = model.get_layer("decoder_norm")
        self.context_length = self.embedding.sequence_length

    def init_caches(self, batch_size: Any, length: Any) -> list[Any]:
        """One empty self-attention cache per block.

        Args:
            batch_size: number of sequences decoded together (int or scalar tensor).
            length: most positions each cache holds (int or scalar tensor).

        Returns:
            One zero tensor `(batch_size, 2, num_heads, length, head_dim)` per decoder
            block (see `TransformerDecoder.init_cache`).

        Example:
            >>> caches = DecoderOnlySteps(model).init_caches(batch_size=4, length=32)
        """
        return [decoder.init_cache(batch_size, length) for decoder in self.decoders]

    def step(self, ids: Any, index: Any, caches: list[Any], context: Any) -> tuple[Any, list]:
        """Logits for `ids` at positions `index...`, reading and extending the caches.

        Args:
            ids: int token ids `(batch, n)` of the `n` new positions.
            index: the position of `ids[:, 0]` (int or scalar tensor).
            caches: the caches from `init_caches` or the previous `step`.
            context: unused by a decoder-only model (the decoders pass `{}`); kept for the
                steps interface `ktlite.seq2seq.decoding` drives.

        Returns:
            `(logits, caches)`: logits `(batch, n, vocab)` and the updated caches.

        Example:
            >>> caches = steps.init_caches(1, 16)
            >>> logits, caches = steps.step(prefix, 0, caches, {})
        """
        x = self.embedding(ids, start_index=index)
        new_caches = []
        for decoder, cache in zip(self.decoders, caches):
            x, cache = decoder(x, self_attention_cache=cache, cache_index=index)
            new_caches.append(cache)
        return output_logits(self.model, self.norm(x)), new_caches

    def full(self, ids: Any, context: Any) -> Any:
        """Logits for a whole prefix without any cache.

        Args:
            ids: int token ids `(batch, length)` of the prefix.
            context: unused by a decoder-only model (the decoders pass `{}`).

        Returns:
            Logits `(batch, length, vocab)`.

        Example:
            >>> next_logits = steps.full(prefix, {})[:, -1]
        """
        x = self.embedding(ids)
        for decoder in self.decoders:
            x = decoder(x)
        return output_logits(self.model, self.norm(x))
