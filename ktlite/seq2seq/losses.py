"""Loss and accuracy over the real tokens of padded target sequences (id 0 is padding)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ktlite.arguments import check_rate
from ktlite.distribute.replicas import sum_over_replicas


@keras.saving.register_keras_serializable(package="ktlite")
class MaskedSequenceCrossentropy(keras.losses.Loss):
    """Label-smoothed cross-entropy from logits, averaged over real target tokens only.

    Padding positions (label 0) add nothing, and the batch loss is the mean over the
    batch's real tokens: each sentence's summed loss is scaled by
    `batch_size / real_tokens`, so Keras' mean over the batch gives exactly
    `sum(token losses) / real_tokens`. Under a tf.distribute strategy `real_tokens` counts
    the whole global batch's (`ktlite.distribute.replicas`), so its replicas take the step
    one device would.

    Args:
        label_smoothing: Share of the probability mass spread uniformly over the
            vocabulary. Defaults to `0.1`.
        name: Loss name.
        **kwargs: Other `keras.losses.Loss` arguments.

    Raises:
        TypeError: If `label_smoothing` is not a number.
        ValueError: If `label_smoothing` is outside `[0, 1)`.

    Example:
        >>> loss = MaskedSequenceCrossentropy(label_smoothing=0.1)
        >>> loss(np.array([[3, 0]]), np.zeros((1, 2, 8)))  # log(8), padding ignored
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        name: str = "masked_sequence_crossentropy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = check_rate(label_smoothing, "label_smoothing")

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        # The labels' padding says which positions count. A Keras mask on the logits (a
        # head that passes the decoder's on, such as an untied `Dense`) is per token, while
        # this loss is per sentence: Keras would multiply the two. A copy carries no mask.
        return super().__call__(y_true, ops.copy(y_pred), sample_weight)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        token_loss, mask = _token_losses(y_true, y_pred, self.label_smoothing)
        per_sentence = ops.sum(token_loss * mask, axis=-1)
        batch = ops.cast(ops.shape(y_true)[0], "float32")
        tokens, replicas = sum_over_replicas(ops.sum(mask))
        return per_sentence * (batch * replicas) / ops.maximum(tokens, 1.0)

    def per_example(self, y_true: Any, y_pred: Any) -> Any:
        """Each sentence's own mean loss over its real tokens (0 for one without any): what
        `ktlite.evaluation.per_sample_loss` ranks by, whatever the other sentences hold.

        Example:
            >>> MaskedSequenceCrossentropy(0.0).per_example(np.array([[3, 0]]),
            ...                                             np.zeros((1, 2, 8)))  # [log(8)]
        """
        token_loss, mask = _token_losses(y_true, y_pred, self.label_smoothing)
        return ops.sum(token_loss * mask, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0)

    def get_config(self) -> dict:
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config


def _token_losses(y_true: Any, y_pred: Any, label_smoothing: float) -> tuple[Any, Any]:
    """Each position's label-smoothed cross-entropy and whether it is a real token (1.0)."""
    y_true = ops.cast(y_true, "int32")
    log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
    nll = -ops.squeeze(ops.take_along_axis(log_probs, y_true[..., None], axis=-1), -1)
    token_loss = (1.0 - label_smoothing) * nll
    if label_smoothing:
        token_loss += label_smoothing * -ops.mean(log_probs, axis=-1)
    return token_loss, ops.cast(ops.not_equal(y_true, 0), "float32")


@keras.saving.register_keras_serializable(package="ktlite")
class MaskedSequenceLoss(keras.metrics.Metric):
    """`MaskedSequenceCrossentropy` averaged over every real target token seen.

    Keras' own loss tracker averages the batches' losses weighted by their number of
    sentences, so with length-bucketed batches a batch of short sentences counts as much
    as a batch of long ones, and an epoch's `loss` and `val_loss` lean towards the short,
    easy ones. Compiled as a weighted metric named ``"loss"``, this mean over all real
    tokens replaces the tracker's value in the logs (Keras lists compiled metrics after
    it); the tracker still holds each batch's own loss, which the LR finder records. With
    sample weights (one per sentence) it weighs the sentences as the loss does. One
    trace of the trick: `model.evaluate()` without `return_dict=True` lists ``loss``
    twice (the tracker's slot and this metric's, both this value).

    Args:
        label_smoothing: as in `MaskedSequenceCrossentropy`; the same value as the loss.
            Defaults to `0.1`.
        name: Metric name. Defaults to `"loss"`.
        **kwargs: Other `keras.metrics.Metric` arguments.

    Raises:
        TypeError: If `label_smoothing` is not a number.
        ValueError: If `label_smoothing` is outside `[0, 1)`.

    Example:
        >>> metric = MaskedSequenceLoss(label_smoothing=0.0)
        >>> metric.update_state(np.array([[3, 0]]), np.zeros((1, 2, 8)))
        >>> float(metric.result())  # log(8): the padded position does not count
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = check_rate(label_smoothing, "label_smoothing")
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.tokens = self.add_variable((), initializer="zeros", name="tokens")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        token_loss, mask = _token_losses(y_true, y_pred, self.label_smoothing)
        self.tokens.assign_add(ops.sum(mask))
        if sample_weight is not None:
            # As the loss weighs them: each sentence's summed loss times its weight, over
            # the unweighted count of real tokens.
            token_loss = token_loss * ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        self.total.assign_add(ops.sum(token_loss * mask))

    def result(self) -> Any:
        return self.total / ops.maximum(self.tokens, 1.0)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.tokens.assign(0.0)

    def get_config(self) -> dict:
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config


@keras.saving.register_keras_serializable(package="ktlite")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of real target tokens (label != 0) whose arg-max prediction is right.

    Args:
        name: Metric name. Defaults to `"token_accuracy"`.
        **kwargs: Other `keras.metrics.Metric` arguments.

    Example:
        >>> metric = MaskedTokenAccuracy()
        >>> metric.update_state(np.array([[2, 0]]), np.eye(4)[[[2, 1]]])
        >>> float(metric.result())  # 1.0: the padded position does not count
    """

    def __init__(self, name: str = "token_accuracy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), y_true), "float32")
        self.correct.assign_add(ops.sum(hits * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self) -> Any:
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self) -> None:
        self.correct.assign(0.0)
        self.total.assign(0.0)
