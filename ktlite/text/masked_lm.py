"""Masked-language-model pretraining on the user's own unlabeled texts.

`pretrain(texts)` learns a WordPiece vocabulary (or takes a preprocessor), builds the
encoder of `ktlite.models.Transformer` under a masked-LM head and returns a
`MaskedLMLearner`: a `Learner` (so `lr_find`, `fit_onecycle`, `autofit` and checkpoints
apply) that also writes the encoder as a **backbone** folder. Masks are drawn in the
`tf.data` pipeline by `ktlite.text.masking.TokenMasker`: new every epoch for training,
the same every pass for the texts the model is judged on.

Example:
    >>> learner = text.pretrain(unlabeled_texts)
    >>> learner.fit_onecycle(1e-3, 3)
    >>> learner.save_backbone("my_backbone")
    >>> trn, val, preproc = text.texts_from_array(x, y, backbone="my_backbone")
    >>> model = text.text_classifier("transformer", trn, preproc=preproc, backbone="my_backbone")
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from ktlite._console import say
from ktlite.arguments import check_fitted
from ktlite.distribute.replicas import sum_over_replicas
from ktlite.learner import Learner
from ktlite.optimizers import default_optimizer
from ktlite.text.backbone import Backbone
from ktlite.text.masking import TokenMasker, check_mask_rate
from ktlite.text.preprocessor import (
    DEFAULT_VOCAB_SIZE,
    TextPreprocessor,
    check_reused_sizes,
    validate_texts,
)

__all__ = [
    "MaskedLMLearner", "pretrain", "masked_lm_model", "save_backbone", "GatherPositions",
    "MaskedTokenCrossentropy",
]

ENCODER_NAME = "encoder"


@keras.saving.register_keras_serializable(package="ktlite")
class GatherPositions(keras.layers.Layer):
    """Picks the vectors at given positions: `(batch, length, dim)`, `(batch, k)` ->
    `(batch, k, dim)`.

    Example:
        >>> GatherPositions()([sequence, positions]).shape  # (batch, k, dim)
    """

    def call(self, inputs: Sequence[Any]) -> Any:
        sequence, positions = inputs
        index = ops.expand_dims(ops.cast(positions, "int32"), -1)
        return ops.take_along_axis(sequence, index, axis=1)

    def compute_output_shape(self, input_shapes: Sequence[tuple]) -> tuple:
        sequence, positions = input_shapes
        return (sequence[0], positions[1], sequence[2])

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None


class _PerToken:
    """Makes a Keras metric count each masked token once, whatever the batch's slots.

    Keras reduces `(batch, slots)` values and weights to one value per text by averaging
    over the slots, so a batch's tokens count `1 / slots` each, and batches of short texts
    (fewer slots) would weigh more per token. Flattened, every slot is one sample.
    """

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_true = ops.reshape(y_true, (-1,))
        y_pred = ops.reshape(y_pred, (-1, ops.shape(y_pred)[-1]))
        if sample_weight is not None:
            sample_weight = ops.reshape(sample_weight, (-1,))
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self) -> Any:
        # NaN, not Keras' 0.0, for a pass that masked no token: a loss of 0.0 reads perfect.
        return ops.where(self.count > 0, super().result(), float("nan"))


@keras.saving.register_keras_serializable(package="ktlite")
class MaskedTokenCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Cross-entropy from logits averaged over the weighted predictions of the global batch.

    Keras' ``reduction="mean_with_sample_weight"`` divides by the weights of each replica's
    share of the batch, so under a tf.distribute strategy a replica holding few masked
    tokens would weigh each of them more; this divides by the weights summed over the
    replicas (`ktlite.distribute.replicas`), so its replicas take the step one device would.

    Args:
        name: loss name.
        **kwargs: other `keras.losses.Loss` arguments; `from_logits` and `reduction` are
            fixed (a saved config's are read and ignored).

    Example:
        >>> loss = MaskedTokenCrossentropy()
        >>> loss(np.array([[3, 0]]), np.zeros((1, 2, 8)), np.array([[1.0, 0.0]]))  # log(8)
    """

    def __init__(self, name: str = "masked_token_crossentropy", **kwargs: Any) -> None:
        kwargs.pop("from_logits", None)
        kwargs.pop("reduction", None)
        super().__init__(from_logits=True, reduction="sum", name=name, **kwargs)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        total = super().__call__(y_true, y_pred, sample_weight)
        if sample_weight is None:
            weight = ops.cast(ops.size(y_true), "float32")
        else:
            weight = ops.sum(ops.cast(sample_weight, "float32"))
        # Keras scales a "sum" reduction by nothing (a mean by 1 / replicas): the replicas'
        # gradients, summed, are then the global batch's mean's.
        weights, _ = sum_over_replicas(weight)
        return ops.where(weights > 0, total / ops.maximum(weights, 1e-12), 0.0)


@keras.saving.register_keras_serializable(package="ktlite")
class _MaskedTokenLoss(_PerToken, keras.metrics.SparseCategoricalCrossentropy):
    """Cross-entropy from logits, averaged over all the masked tokens seen."""

    def __init__(self, name: str = "loss", from_logits: bool = True, **kwargs: Any) -> None:
        super().__init__(name=name, from_logits=from_logits, **kwargs)


@keras.saving.register_keras_serializable(package="ktlite")
class _MaskedTokenAccuracy(_PerToken, keras.metrics.SparseCategoricalAccuracy):
    """Share of all the masked tokens seen that are predicted right."""

    def __init__(self, name: str = "masked_accuracy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


def masked_lm_model(
    preproc: TextPreprocessor,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Builds and compiles the masked-LM model: the text Transformer's encoder + an LM head.

    The encoder is `ktlite.models.Transformer` without its pooling and head, as a nested
    model named `"encoder"` with the same layer names, so a text classifier can start from
    its weights. The head (dense + GELU, layer norm, projection to the vocabulary) scores
    only the positions given in `mask_positions`.

    Args:
        preproc: a fitted `TextPreprocessor`.
        embed_dim, num_heads, num_layers, ff_dim: encoder sizes, as in
            `text_classifier` (defaults 128, 4, 2, `4 * embed_dim`).
        dropout: the encoder's dropout rate while pretraining (default 0.0; see `pretrain`).
        learning_rate: initial rate of the AdamW optimizer (decay 0.01, no decay on
            biases and normalization). Default 1e-3.

    Returns:
        A compiled `keras.Model` from `{"token_ids", "mask_positions"}` to float32 logits
        `(batch, slots, vocab_size)`. Its loss (the gradient) is each batch's
        cross-entropy averaged over its real predictions; the `loss` it reports (logs,
        history, `evaluate`) is the mean over all masked tokens of the pass, so texts with
        nothing masked count for nothing. Metric: `masked_accuracy`, also per token.

    Example:
        >>> model = masked_lm_model(preproc)
    """
    from ktlite.models import Transformer

    full = Transformer(
        vocab_size=preproc.vocab_size, maxlen=preproc.maxlen, embed_dim=embed_dim,
        num_heads=num_heads, num_layers=num_layers, ff_dim=ff_dim, dropout=dropout,
        num_outputs=1, name="transformer",
    )
    sequence = full.get_layer("pooling").input
    if isinstance(sequence, (list, tuple)):  # (vectors, padding mask)
        sequence = sequence[0]
    encoder = keras.Model(full.inputs, sequence, name=ENCODER_NAME)
    # Any width, so that batches can be length-bucketed.
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    positions = keras.Input((None,), dtype="int32", name="mask_positions")
    picked = GatherPositions(name="gather_positions")([encoder(token_ids), positions])
    width = int(sequence.shape[-1])  # `embed_dim` as `Transformer` checked it (an int)
    hidden = keras.layers.Dense(width, activation="gelu", name="lm_dense")(picked)
    hidden = keras.layers.LayerNormalization(epsilon=1e-5, name="lm_norm")(hidden)
    logits = keras.layers.Dense(preproc.vocab_size, dtype="float32", name="lm_logits")(hidden)
    model = keras.Model(
        {"token_ids": token_ids, "mask_positions": positions}, logits, name="masked_lm"
    )
    model.compile(
        optimizer=default_optimizer(None, learning_rate),
        loss=MaskedTokenCrossentropy(),
        # Keras' loss tracker averages the batches' losses weighted by their number of
        # texts, so a batch of short or empty texts (length bucketing makes them) with few
        # or no masked tokens would count as much as any other. A metric named "loss" is a
        # mean over all masked tokens instead, and replaces the tracker's value in the logs
        # (Keras lists compiled metrics after the tracker). The tracker still holds each
        # batch's own loss, which the LR finder records (a batch that masked nothing has
        # sample weights summing to zero and is left out: `ktlite.lr.PolicyCallback`), and
        # `NonFiniteGuard` reads to tell this metric's NaN while it has counted nothing
        # from a diverged loss.
        weighted_metrics=[_MaskedTokenLoss(), _MaskedTokenAccuracy()],
    )
    return model


def _check_maskable(data: Any, name: str) -> None:
    """Refuses texts none of which has a token to mask: their loss would read 0.0."""
    lengths = data.lengths  # tokens + [CLS], kept for length bucketing
    if lengths is not None and int(np.max(lengths)) < 2:
        raise ValueError(
            f"`{name}` must hold at least one text with a token to mask: the masked-LM loss "
            f"and accuracy are means over masked tokens. Received: {len(lengths)} texts "
            "that tokenize to nothing (e.g. empty strings)"
        )


def _masked_lm_reporter(model: keras.Model, data: Any, predict: Any) -> tuple[str, Any]:
    """Masked-token loss and accuracy on `data` (its masks), for `Learner.validate`.

    The reporter of `pretrain`'s data for a learner of another kind, in batches of 64; a
    `MaskedLMLearner` judges its data in its own evaluation batches (`_report`).
    """
    from ktlite.data import make_dataset

    return _masked_lm_scores(model, make_dataset(data, 64)[0])


def _masked_lm_scores(model: keras.Model, dataset: Any) -> tuple[str, Any]:
    """The report of masked-token loss and accuracy over `dataset`'s batches.

    Both are means over the masked tokens of the pass; NaN when the draw masked none.
    """
    scores = model.evaluate(dataset, verbose=0, return_dict=True)
    # Both metrics count masked tokens only, so both read NaN when the draw masked none.
    loss, accuracy = float(scores["loss"]), float(scores["masked_accuracy"])
    result = {"loss": loss, "masked_accuracy": accuracy}
    text = (f"masked-token accuracy {accuracy:.4f}, loss {loss:.4f}"
            f"{' (no token was masked: the texts are too short)' if math.isnan(loss) else ''}")
    return text, result


class MaskedLMLearner(Learner):
    """A `Learner` over a masked-LM model that can save its encoder as a backbone.

    Built by `pretrain`. Training, the LR finder, checkpoints and callbacks work as for
    any `Learner`; `validate()` reports the masked-token accuracy. `predict` and
    `top_losses` need inputs and labels that stay put, and a masked-LM's are masks drawn
    at random, so they raise `TypeError` saying so.

    Args:
        model: the compiled masked-LM model (`masked_lm_model`).
        train_data: the masked training texts (a `TaskDataset` from `pretrain`).
        val_data: the masked texts judged, or None.
        preproc: the fitted `TextPreprocessor` of the texts.
        masker: the `TokenMasker` of the training data.
        **settings: the `Learner` settings (`batch_size`, `bucketing`, ...).

    Attributes:
        preproc: the `TextPreprocessor` whose vocabulary the model predicts.
        masker: the `TokenMasker` of the training data (new masks every epoch).
        val_masker: the `TokenMasker` of the data judged (`fixed`: the same masks for a
            text every pass, whatever the batch size or bucketing, so one epoch's
            `val_loss` compares with another's and with `validate()`'s).

    Example:
        >>> learner = text.pretrain(unlabeled_texts, val_texts=held_out_texts)
        >>> learner.fit_onecycle(1e-3, 3)
        >>> learner.save_backbone("my_backbone")
    """

    _val_source = "`val_texts` to `text.pretrain`"

    def __init__(self, model: keras.Model, train_data: Any, val_data: Any, preproc: Any,
                 masker: TokenMasker, **settings: Any) -> None:
        self.masker = masker
        self.val_masker = TokenMasker(preproc, masker.rate, masker.whole_word, fixed=True)
        super().__init__(model, train_data, val_data, **settings)
        self.preproc = preproc

    def _check_data(self, data: Any, name: str) -> Any:
        """As `Learner`'s; texts judged (`val_data`, given to `validate` or assigned later
        too) get the same masks every pass, training texts new masks every epoch, `validate`
        judges either in the learner's evaluation batches (`_report`), and both must hold a
        token to mask."""
        checked = super()._check_data(data, name)
        masker = self.masker if name == "train_data" else self.val_masker
        if getattr(checked, "transform", None) in (self.masker, self.val_masker) and (
                checked.transform is not masker or checked.reporter != self._report):
            checked = copy.copy(checked)
            checked.transform = masker
            checked.reporter = self._report
        if hasattr(checked, "lengths"):  # in memory, not tf.data
            _check_maskable(checked, name)
        return checked

    def _report(self, model: keras.Model, data: Any, predict: Any) -> tuple[str, Any]:
        """`validate`'s report: the masked-token loss and accuracy of `data`, in batches of
        `eval_batch_size`, shortest texts first and length-bucketed when `bucketing` is on,
        as the learner judges its validation data every epoch."""
        return _masked_lm_scores(
            model, self._dataset(self._length_sorted(data)[0], training=False)[0])

    def _kept_draws(self) -> contextlib.AbstractContextManager:
        """`lr_find` draws its masks from a copy of the training masker's generator: a
        seeded fit after it trains on the masks it would have trained on without the sweep."""
        return self.masker.kept_draws()

    @property
    def backbone(self) -> Backbone:
        """The current encoder and vocabulary, as a `Backbone` (shares the weights)."""
        return Backbone(
            self.model.get_layer(ENCODER_NAME), self.preproc,
            {"mask_rate": self.masker.rate, "whole_word": self.masker.whole_word},
        )

    def save_backbone(self, path: str | os.PathLike) -> None:
        """Writes the encoder, the vocabulary and the settings to a backbone folder.

        Atomic like every ktlite save (`ktlite.saving.write_folder`), with a manifest of
        SHA-256 hashes; no pickle. Load it with `ktlite.text.load_backbone`, or pass the
        path as `backbone=` to `texts_from_array` and `text_classifier`.

        Args:
            path: the folder to write.

        Raises:
            FileExistsError: if `path` is a file or a folder ktlite did not write.

        Example:
            >>> learner.save_backbone("my_backbone")
        """
        self.backbone.save(path)

    def predict(self, data: Any, batch_size: int | None = None, verbose: int = 0) -> Any:
        """Not available for masked-LM pretraining.

        Raises:
            TypeError: always; see the class notes.
        """
        raise TypeError(_NO_FIXED_TARGETS.format(method="predict"))

    def top_losses(self, n: int = 10, val_data: Any = None) -> list[tuple]:
        """Not available for masked-LM pretraining (`view_top_losses` neither).

        Raises:
            TypeError: always; see the class notes.
        """
        raise TypeError(_NO_FIXED_TARGETS.format(method="top_losses"))


_NO_FIXED_TARGETS = (
    "`{method}` is not available on a masked-LM learner: its inputs and targets are masks "
    "drawn at random. `validate()` reports the masked-token loss and accuracy; "
    "`learner.backbone` is the encoder, to fine-tune with `text_classifier(..., backbone=)`."
)


def pretrain(
    texts: Sequence[str],
    preproc: TextPreprocessor | None = None,
    val_texts: Sequence[str] | None = None,
    *,
    maxlen: int | None = None,
    vocab_size: int | None = None,
    mask_rate: float = 0.15,
    whole_word: bool = False,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    seed: int | None = None,
    verbose: int = 1,
    **learner_settings: Any,
) -> MaskedLMLearner:
    """Sets up masked-language-model pretraining on unlabeled texts; returns the learner.

    Args:
        texts: the unlabeled training texts.
        preproc: a fitted `TextPreprocessor` to reuse; `None` learns a WordPiece
            vocabulary from `texts` (with `maxlen` and `vocab_size`).
        val_texts: texts to report the masked-token loss and accuracy on (`validate()`,
            and the `val_` values of each epoch), or `None`: nothing is held out, and
            `learner.validate(val_data=texts)` judges texts given later. Both values are
            means over the masked tokens, so empty texts count for nothing; texts judged get
            the same masks every pass whatever their batching (`TokenMasker(fixed=True)`),
            so epochs compare.
        maxlen: tokens per text (`None`: 99% of texts whole, see `TextPreprocessor`).
            Beside `preproc`, `None` or the preprocessor's own `maxlen`.
        vocab_size: the largest vocabulary (`None`: 16000). Beside `preproc`, `None` or
            the preprocessor's size (its vocabulary's, or the largest it was asked for).
        mask_rate: share of tokens predicted (default 0.15; BERT's 80/10/10 corruption).
        whole_word: choose whole words instead of pieces (default False).
        embed_dim, num_heads, num_layers, ff_dim: encoder sizes (defaults as
            `text_classifier`: 128, 4, 2, `4 * embed_dim`).
        dropout: the encoder's dropout rate while pretraining (default 0.0: fresh masks
            each epoch regularize enough, and on WordNet 30 minutes without dropout
            reached 43% masked-token accuracy against 33% at 0.1: runs 7 and 5 of
            "Pretraining and fine-tuning" in benchmarks/RESULTS.md, as in the README).
            Models built from the backbone drop at their own rate
            (`text_classifier(dropout=0.1)`).
        learning_rate: initial rate of the AdamW optimizer (the policies set their own).
        batch_size: global batch size (default 64).
        seed: seed of the masks and the shuffling.
        verbose: 1 reports sizes; 0 is silent.
        **learner_settings: passed to the `Learner` (`strategy`, `mixed_precision`,
            `gradient_accumulation_steps`, `jit_compile`, `eval_batch_size`).

    Returns:
        A `MaskedLMLearner`: call `lr_find`, `fit_onecycle`, ..., then `save_backbone`.

    Raises:
        TypeError: for texts that are not strings, a `preproc` that is not a
            `TextPreprocessor`, or a setting that is not a `get_learner` option.
        ValueError: for invalid texts, `val_texts` none of which has a token to mask
            (`validate(val_data=)` refuses those too), an unfitted `preproc`, a `maxlen`
            or `vocab_size` beside `preproc` that differs from its own, or invalid settings.

    Example:
        >>> learner = text.pretrain(unlabeled_texts, mixed_precision="bfloat16")
        >>> learner.fit_onecycle(learner.lr_find().suggestion, 5)
        >>> learner.save_backbone("my_backbone")
    """
    from ktlite.data import TaskDataset, self_labelled_reader
    from ktlite.text.loaders import _object_array

    texts = validate_texts(texts, "texts")
    val = None if val_texts is None else validate_texts(val_texts, "val_texts")
    check_mask_rate(mask_rate, "mask_rate")
    settable = set(inspect.signature(Learner.__init__).parameters) - {
        "self", "model", "train_data", "val_data", "batch_size", "seed", "verbose"}
    unknown = sorted(set(learner_settings) - settable)
    if unknown:
        raise TypeError(
            f"`pretrain` got unknown keyword arguments {unknown}; the learner settings it "
            f"passes on are {sorted(settable)}"
        )
    if preproc is None:
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
        preproc = TextPreprocessor(maxlen=maxlen, vocab_size=vocab_size)
        preproc.fit_vocab(texts, verbose=verbose)
    else:
        check_fitted(preproc, TextPreprocessor)
        check_reused_sizes(preproc, maxlen, vocab_size, "`preproc`")
    masker = TokenMasker(preproc, rate=mask_rate, whole_word=whole_word, seed=seed)
    model = masked_lm_model(
        preproc, embed_dim=embed_dim, num_heads=num_heads,
        num_layers=num_layers, ff_dim=ff_dim, dropout=dropout, learning_rate=learning_rate,
    )

    def data(items: list[str]) -> TaskDataset:
        return TaskDataset(_object_array(items), None, masker, task="text",
                           reporter=_masked_lm_reporter, self_supervised=True,
                           lengths=preproc.sequence_lengths, reader=self_labelled_reader(
                               lambda items: data(validate_texts(items, "texts")),
                               "Masked-LM pretraining makes its targets from the texts"),
                           preproc=preproc)

    if verbose:
        say(f"masked-LM pretraining: {len(texts):,} texts, vocabulary {preproc.vocab_size}, "
            f"maxlen {preproc.maxlen}, up to {masker.num_predictions} predictions per text, "
            f"{model.count_params():,} parameters")
    train_data = data(texts)
    _check_maskable(train_data, "texts")
    val_data = None if val is None else data(val)
    if val_data is not None:
        _check_maskable(val_data, "val_texts")
    return MaskedLMLearner(
        model, train_data, val_data, preproc, masker,
        batch_size=batch_size, seed=seed, verbose=verbose, **learner_settings,
    )


def save_backbone(source: Any, path: str | os.PathLike, preproc: Any = None) -> None:
    """Writes a backbone folder from a pretraining learner, or from a model and preprocessor.

    Args:
        source: the `MaskedLMLearner` from `pretrain`, or a masked-LM model built by
            `masked_lm_model` (then `preproc` is required).
        path: the folder to write.
        preproc: the `TextPreprocessor` of a model given as `source`; `None` for a
            learner, which writes its own.

    Returns:
        None; the folder is written atomically (`Backbone.save`).

    Raises:
        TypeError: if `source` is neither, or `preproc` is missing for a model or not a
            `TextPreprocessor`.
        ValueError: if `preproc` is given beside a learner, or is not fitted.
        FileExistsError: if `path` is a file or a folder ktlite did not write.

    Example:
        >>> text.save_backbone(learner, "my_backbone")
    """
    if isinstance(source, MaskedLMLearner):
        if preproc is not None:
            raise ValueError(
                "`preproc` is for a masked-LM model given as `source`: a learner writes its "
                f"own preprocessor. Leave it out. Received: preproc={preproc!r:.80}"
            )
        source.save_backbone(path)
        return
    if not isinstance(source, keras.Model) or ENCODER_NAME not in [
        layer.name for layer in source.layers
    ]:
        raise TypeError(
            "`source` must be the learner from `ktlite.text.pretrain` or a masked-LM model "
            f"with an {ENCODER_NAME!r} layer. Received: source={source!r}"
        )
    if preproc is None:
        raise TypeError("`preproc` is required when `source` is a model.")
    Backbone(source.get_layer(ENCODER_NAME), preproc).save(path)
