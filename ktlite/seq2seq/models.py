"""`translation_model`: a Transformer encoder-decoder built from ktlite's layers.

The model maps ``{"source_ids": (batch, S), "decoder_ids": (batch, T)}`` to logits
``(batch, T, vocab)`` over the target vocabulary. By default (a joint vocabulary) one
`TokenAndPositionEmbedding` embeds sources and targets and, transposed, projects the
decoder's outputs to logits (shared input/output embeddings). Blocks are pre-norm, with a
final layer normalization on each side. `EncoderDecoderSteps` exposes the trained layers
to the decoding loop (`ktlite.seq2seq.decoding`) with the key/value cache.

With `backbone=`, the encoder side is a pretrained text encoder (`ktlite.text.pretrain`):
its embedding becomes `source_embedding` (with `source_embedding_norm` for a post-norm
encoder), its blocks `encoder_0...` with their own norm placement and activation, and a
pre-norm encoder's final normalization `encoder_norm`; the decoder has the same sizes.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ktlite.arguments import (
    check_bool,
    check_choice,
    check_fitted,
    check_positive_int,
    check_rate,
    check_verbose,
)
from ktlite._console import say
from ktlite.layers import TokenAndPositionEmbedding, TransformerDecoder, TransformerEncoder
from ktlite.optimizers import default_optimizer
from ktlite.seq2seq.losses import (
    MaskedSequenceCrossentropy,
    MaskedSequenceLoss,
    MaskedTokenAccuracy,
)
from ktlite.seq2seq.preprocessor import PairPreprocessor

MODEL_NAMES = ("transformer",)
# The size arguments' defaults of `translation_model`, which a backbone's sizes replace.
SIZE_DEFAULTS = {"embed_dim": 128, "num_heads": 4, "num_layers": 2, "ff_dim": None}
# The layer normalizing the source embeddings, present when a post-norm backbone starts
# the encoder.
SOURCE_NORM = "source_embedding_norm"
_MODEL_NAME = "translation_transformer"


def layer_groups(model: Any) -> list[list[Any]] | None:
    """A translation model's layer groups for `Learner.fine_tune`, from input to head.

    The encoder side is grouped as `ktlite.lr.layer_groups` groups a stack (the source
    embedding with its normalization, then each encoder block, the last with the final
    encoder normalization); every other layer with weights (the target embedding, the
    decoder blocks and the output) is one head group. A backbone starts the encoder only:
    the decoder is new, so it all trains in `fine_tune`'s head-only phase and at the full
    rate afterwards. With a joint vocabulary (the default) the source side shares the
    target embedding, so there is no `source_embedding` group: the shared embedding is in
    the head. The pair loaders hand this to `Learner` (`TaskDataset.layer_groups`).

    Args:
        model: a model, `translation_model`'s or any other.

    Returns:
        The groups, or `None` for a model `translation_model` did not build.

    Example:
        >>> [[layer.name for layer in group] for group in layer_groups(model)]  # separate
        [['source_embedding', 'source_embedding_norm'], ['encoder_0'], ['encoder_1',
        'encoder_norm'], ['target_embedding', 'decoder_0', 'decoder_1', 'decoder_norm']]
    """
    layers = getattr(model, "layers", [])
    if getattr(model, "name", None) != _MODEL_NAME or "encoder_norm" not in {
        layer.name for layer in layers
    }:
        return None
    groups: list[list[Any]] = []
    head: list[Any] = []
    for layer in layers:
        if not layer.weights:
            continue
        if layer.name in (SOURCE_NORM, "encoder_norm") and groups:
            groups[-1].append(layer)
        elif layer.name == "source_embedding" or layer.name.startswith("encoder_"):
            groups.append([layer])
        else:
            head.append(layer)
    return groups + [head]


def _check_preproc(preproc: Any) -> None:
    if getattr(preproc, "task", None) != "seq2seq":  # a LMPreprocessor is a PairPreprocessor
        raise TypeError(
            "`preproc` must be the PairPreprocessor returned by a `pairs_from_*` loader. "
            f"Received: preproc of type {type(preproc).__name__}"
        )
    check_fitted(preproc, PairPreprocessor)


def check_train_data(train_data: Any, preproc: Any, loader: str) -> None:
    """Refuses training data that another preprocessor encoded, before any model is built.

    Args:
        train_data: the training `TaskDataset`, or None (nothing to check).
        preproc: the fitted `PairPreprocessor` (or `LMPreprocessor`) the model is built
            for; `train_data` must be of its `task`, with label ids of its target length
            and vocabulary.
        loader: what makes such data, for the message (e.g. "a `pairs_from_*` loader").

    Raises:
        TypeError: if `train_data` is not a labelled `TaskDataset` of `preproc.task`.
        ValueError: if its label ids are not `preproc.target_maxlen` long or reach past
            the vocabulary.

    Example:
        >>> check_train_data(trn, preproc, "a `pairs_from_*` loader")
    """
    if train_data is None:
        return
    y = getattr(train_data, "y", None)
    if getattr(train_data, "task", None) != preproc.task or y is None:
        raise TypeError(
            f"`train_data` must be the training TaskDataset from {loader}. "
            f"Received: train_data={train_data!r:.80}"
        )
    if y.shape[1] != preproc.target_maxlen or int(y.max()) >= preproc.target_vocab_size:
        raise ValueError(
            "`train_data` does not belong to `preproc`: its target ids have length "
            f"{y.shape[1]} (preproc.target_maxlen={preproc.target_maxlen}) and ids up to "
            f"{int(y.max())} (vocabulary of {preproc.target_vocab_size})."
        )


def compile_for_sequences(
    model: keras.Model, learning_rate: float, label_smoothing: float, optimizer: Any
) -> None:
    """Compiles a logits model with the masked sequence loss and token accuracy.

    The logs' ``loss`` and ``val_loss`` are means over all the epoch's real target tokens
    (`MaskedSequenceLoss`), whatever the batches' lengths; `model.evaluate()` without
    `return_dict=True` lists that loss twice.

    Args:
        model: a model whose output is logits `(batch, length, vocab)`.
        learning_rate: learning rate of the default AdamW optimizer.
        label_smoothing: see `MaskedSequenceCrossentropy`.
        optimizer: an optimizer (name or instance) or None for AdamW with weight decay
            0.01 (biases and normalization excluded).

    Raises:
        ValueError: for a non-positive learning rate or smoothing outside [0, 1).
        TypeError: for an optimizer of the wrong kind.

    Example:
        >>> compile_for_sequences(model, 1e-3, 0.1, None)
    """
    optimizer = default_optimizer(optimizer, learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=MaskedSequenceCrossentropy(label_smoothing=label_smoothing),
        metrics=[MaskedTokenAccuracy()],
        weighted_metrics=[MaskedSequenceLoss(label_smoothing=label_smoothing)],
    )


def translation_model(
    name: str = "transformer",
    train_data: Any = None,
    preproc: Any = None,
    *,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.1,
    tie_embeddings: bool = True,
    label_smoothing: float = 0.1,
    learning_rate: float = 1e-3,
    optimizer: Any = None,
    backbone: Any = None,
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles a Transformer encoder-decoder for the preprocessor's pairs.

    Args:
        name: `"transformer"` (the only model for now).
        train_data: the training `TaskDataset` from a `pairs_from_*` loader (checked
            against `preproc`), or None.
        preproc: the fitted `PairPreprocessor`.
        embed_dim: embedding and hidden size. Defaults to 128.
        num_heads: attention heads. Defaults to 4.
        num_layers: encoder blocks and decoder blocks (each). Defaults to 2.
        ff_dim: feed-forward width; None means `4 * embed_dim`.
        dropout: dropout rate. Defaults to 0.1.
        tie_embeddings: share the decoder's input embedding with the output projection
            (and, with a joint vocabulary, with the encoder's embedding). Defaults to True.
        label_smoothing: label smoothing of the loss. Defaults to 0.1.
        learning_rate: initial learning rate of the default AdamW. Defaults to 1e-3.
        optimizer: an optimizer name or instance, or None for AdamW.
        backbone: a text backbone pretrained on source-language text (folder path,
            `ktlite.text.Backbone`, or the learner from `ktlite.text.pretrain`) whose
            weights start the encoder; its sizes replace `embed_dim`, `num_heads`,
            `num_layers` and `ff_dim` (one set to another value is refused), and
            `preproc` must come from it: `pairs_from_array(..., backbone=path)`.
            Defaults to None.
        verbose: 1 prints a one-line summary, 0 is silent.

    Returns:
        A compiled `keras.Model` mapping `{"source_ids", "decoder_ids"}` to target logits,
        trained with `ktlite.get_learner` like any other ktlite model.

    Raises:
        ValueError: for an unknown `name`, an invalid size, a size beside `backbone`
            that differs from the backbone's, a `preproc` that does not tokenize
            sources as the backbone does, or `train_data` of another `preproc`.
        TypeError: when `name` is not a str, `preproc` or `train_data` is not from a
            `pairs_from_*` loader, `backbone` is of another kind, or `tie_embeddings` is
            not a bool.

    Example:
        >>> trn, val, preproc = seq2seq.pairs_from_array(en, it)
        >>> model = seq2seq.translation_model("transformer", trn, preproc=preproc)
        >>> learner = ktlite.get_learner(model, train_data=trn, val_data=val)
    """
    check_choice(name, "name", MODEL_NAMES)
    _check_preproc(preproc)
    check_train_data(train_data, preproc, "a `pairs_from_*` loader")
    encoder_block: dict[str, Any] = {"norm_first": True}
    if backbone is not None:
        backbone, sizes = _backbone_and_sizes(
            backbone, preproc, embed_dim=embed_dim, num_heads=num_heads, num_layers=num_layers,
            ff_dim=ff_dim,
        )
        embed_dim, num_heads, num_layers, ff_dim = (
            sizes["embed_dim"], sizes["num_heads"], sizes["num_layers"], sizes["ff_dim"]
        )
        encoder_block = {k: sizes[k] for k in ("norm_first", "activation", "layer_norm_epsilon")}
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    num_layers = check_positive_int(num_layers, "num_layers")
    ff_dim = check_positive_int(ff_dim if ff_dim is not None else 4 * embed_dim, "ff_dim")
    dropout = check_rate(dropout, "dropout")
    check_verbose(verbose)
    check_bool(tie_embeddings, "tie_embeddings")

    source_ids = keras.Input((None,), dtype="int32", name="source_ids")
    decoder_ids = keras.Input((None,), dtype="int32", name="decoder_ids")
    target_embedding = TokenAndPositionEmbedding(
        preproc.target_vocab_size,
        max(preproc.target_maxlen, preproc.source_maxlen if preproc.joint_vocab else 0),
        embed_dim,
        name="target_embedding",
    )
    if preproc.joint_vocab and tie_embeddings:
        source_embedding = target_embedding
    elif backbone is not None:
        source_embedding = TokenAndPositionEmbedding(
            sizes["vocab_size"], sizes["maxlen"], embed_dim, position=sizes["position"],
            name="source_embedding",
        )
    else:
        source_embedding = TokenAndPositionEmbedding(
            preproc.source_vocab_size, preproc.source_maxlen, embed_dim, name="source_embedding"
        )
    block = dict(num_heads=num_heads, intermediate_dim=ff_dim, dropout=dropout)
    x = source_embedding(source_ids)
    if not encoder_block["norm_first"]:  # a post-norm backbone normalizes its embeddings
        x = keras.layers.LayerNormalization(
            epsilon=encoder_block["layer_norm_epsilon"], name=SOURCE_NORM
        )(x)
    x = keras.layers.Dropout(dropout)(x)
    for i in range(num_layers):
        x = TransformerEncoder(**block, **encoder_block, name=f"encoder_{i}")(x)
    memory = keras.layers.LayerNormalization(
        epsilon=encoder_block.get("layer_norm_epsilon", 1e-5), name="encoder_norm"
    )(x)
    y = keras.layers.Dropout(dropout)(target_embedding(decoder_ids))
    for i in range(num_layers):
        y = TransformerDecoder(**block, norm_first=True, name=f"decoder_{i}")(y, memory)
    y = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")(y)
    if tie_embeddings:
        logits = target_embedding(y, reverse=True)
    else:
        logits = keras.layers.Dense(preproc.target_vocab_size, name="logits")(y)
    model = keras.Model({"source_ids": source_ids, "decoder_ids": decoder_ids}, logits,
                        name=_MODEL_NAME)
    if backbone is not None:
        _copy_encoder(backbone, model)
    compile_for_sequences(model, learning_rate, label_smoothing, optimizer)
    if verbose:
        say(
            f"transformer translation model: {num_layers}+{num_layers} blocks, "
            f"vocabulary {preproc.target_vocab_size}, maxlen {preproc.source_maxlen} -> "
            f"{preproc.target_maxlen}, {model.count_params():,} parameters"
        )
    return model


def _backbone_and_sizes(backbone: Any, preproc: Any, **asked: Any) -> tuple[Any, dict]:
    """The resolved backbone and its sizes, once `preproc` is known to read sources as it."""
    from ktlite.text.backbone import backbone_sizes, resolve_backbone

    backbone = resolve_backbone(backbone)
    text_preproc = backbone.preproc
    differs = [
        name for name, matches in (
            ("vocabulary", preproc.source_vocab == list(text_preproc.vocab)),
            ("lowercase", preproc.source_lowercase == text_preproc.lowercase),
            ("maxlen", preproc.source_maxlen <= text_preproc.maxlen),
            ("joint_vocab", not preproc.joint_vocab),
            ("layout ([CLS] first)", preproc.source_cls),
        ) if not matches
    ]
    if differs:
        raise ValueError(
            f"`preproc` does not read sources as the backbone does ({', '.join(differs)} "
            "differ), so the pretrained weights would read the wrong tokens. Build the "
            "preprocessor from the backbone: `pairs_from_array(x, y, backbone=path)` (or "
            "any pairs_from_* loader with `backbone=`)."
        )
    return backbone, backbone_sizes(backbone, SIZE_DEFAULTS, **asked)


def _copy_encoder(backbone: Any, model: keras.Model) -> None:
    """Copies the backbone encoder's weights into the translation model's encoder side."""
    encoder = backbone.encoder
    names = {layer.name for layer in encoder.layers}
    pairs = [("embedding", "source_embedding")]
    pairs += [("embedding_norm", SOURCE_NORM)] if "embedding_norm" in names else []
    pairs += [("final_norm", "encoder_norm")] if "final_norm" in names else []
    pairs += [(layer.name, layer.name) for layer in encoder.layers
              if layer.name.startswith("encoder_")]
    for source, target in pairs:
        model.get_layer(target).set_weights(encoder.get_layer(source).get_weights())


def _decoder_blocks(model: keras.Model) -> list[TransformerDecoder]:
    return [layer for layer in model.layers if isinstance(layer, TransformerDecoder)]


def output_logits(model: keras.Model, hidden: Any) -> Any:
    """Logits from the final hidden states, tied or through the `logits` dense layer."""
    names = {layer.name for layer in model.layers}
    if "logits" in names:
        return model.get_layer("logits")(hidden)
    return model.get_layer("target_embedding")(hidden, reverse=True)


class EncoderDecoderSteps:
    """The trained layers of a `translation_model`, run step by step for decoding.

    Args:
        model: a model built by `translation_model` (or loaded from one).

    Raises:
        ValueError: if the model lacks the named layers of a translation model.

    Example:
        >>> steps = EncoderDecoderSteps(model)
        >>> context = steps.encode(source_ids)
    """

    def __init__(self, model: keras.Model) -> None:
        names = {layer.name for layer in model.layers}
        needed = {"target_embedding", "encoder_norm", "decoder_norm"}
        if not needed <= names:
            raise ValueError(
                "`model` must be built by `seq2seq.translation_model`; it lacks the layers "
                f"{sorted(needed - names)}."
            )
        self.model = model
        self.target_embedding = model.get_layer("target_embedding")
        self.source_embedding = model.get_layer(
            "source_embedding" if "source_embedding" in names else "target_embedding"
        )
        self.encoders = [layer for layer in model.layers if isinstance(layer, TransformerEncoder)]
        self.decoders = _decoder_blocks(model)
        self.source_norm = model.get_layer(SOURCE_NORM) if SOURCE_NORM in names else None
        self.encoder_norm = model.get_layer("encoder_norm")
        self.decoder_norm = model.get_layer("decoder_norm")
        self.context_length = self.target_embedding.sequence_length

    def encode(self, source_ids: Any) -> dict[str, Any]:
        """Runs the encoder once; returns the context every decoding step reads.

        Args:
            source_ids: int ids `(batch, source_length)`.

        Returns:
            `{"outputs", "padding", "memory", "source_ids"}`: encoder outputs, the source
            padding mask, each decoder block's projected cross-attention keys and values,
            and the source ids themselves (sampling's noise depends on them).
        """
        padding = tf.not_equal(source_ids, 0)
        x = self.source_embedding(source_ids)
        if self.source_norm is not None:
            x = self.source_norm(x)
        for encoder in self.encoders:
            x = encoder(x, padding_mask=padding)
        x = self.encoder_norm(x)
        memory = [decoder.cross_attention_cache(x) for decoder in self.decoders]
        return {"outputs": x, "padding": padding, "memory": memory, "source_ids": source_ids}

    def init_caches(self, batch_size: Any, length: Any) -> list[Any]:
        """One empty self-attention cache per decoder block."""
        return [decoder.init_cache(batch_size, length) for decoder in self.decoders]

    def step(
        self, ids: Any, index: Any, caches: list[Any], context: dict[str, Any]
    ) -> tuple[Any, list[Any]]:
        """Logits for `ids` at positions `index...`, reading and extending the caches."""
        y = self.target_embedding(ids, start_index=index)
        new_caches = []
        for decoder, cache, memory in zip(self.decoders, caches, context["memory"]):
            y, cache = decoder(
                y, None, encoder_padding_mask=context["padding"], self_attention_cache=cache,
                cache_index=index, cross_attention_cache=memory,
            )
            new_caches.append(cache)
        return output_logits(self.model, self.decoder_norm(y)), new_caches

    def full(self, ids: Any, context: dict[str, Any]) -> Any:
        """Logits for a whole prefix without any cache (what a cache saves)."""
        y = self.target_embedding(ids)
        for decoder in self.decoders:
            y = decoder(y, context["outputs"], encoder_padding_mask=context["padding"])
        return output_logits(self.model, self.decoder_norm(y))
