"""Pooling a sequence into one vector per example, ignoring padding."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ktlite.arguments import check_choice
from ktlite.layers import _masks

POOLING_MODES = ("mean", "max", "first")  # the poolings `mode` may name
_FLOAT32_LOWEST = -3.4028234663852886e38


@keras.saving.register_keras_serializable(package="ktlite")
class MaskedGlobalPooling(keras.layers.Layer):
    """Pools `(batch, length, dim)` to `(batch, dim)` over real tokens only.

    Modes:
    - `"mean"`: the average over the positions the padding mask marks as real. An
      example with no real token pools to zeros.
    - `"max"`: the element-wise maximum over real positions (zeros if none).
    - `"first"`: the vector at position 0, e.g. a `[CLS]` token; the mask is not
      needed.

    The padding mask comes from the `padding_mask` argument or from the Keras mask
    attached to the inputs (e.g. by `TokenAndPositionEmbedding(mask_zero=True)`); with
    neither, every position counts. The sums are taken in float32 so that mean pooling
    under a `"mixed_bfloat16"` policy does not lose precision over long sequences; the
    output has the layer's compute dtype. The output has no Keras mask.

    Args:
        mode: `"mean"` (default), `"max"` or `"first"`.
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: If `mode` is not a str.
        ValueError: If `mode` is unknown, or the inputs are not of rank 3.

    Example:
        >>> x = np.ones((1, 4, 8), "float32")
        >>> MaskedGlobalPooling("mean")(x, padding_mask=np.array([[1, 1, 0, 0]]))
        >>> # -> shape (1, 8), the mean of the first two vectors
    """

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = check_choice(mode, "mode", POOLING_MODES)
        self.supports_masking = True

    def build(self, inputs_shape: tuple) -> None:
        self._inputs_shape = tuple(inputs_shape)
        if len(inputs_shape) != 3:
            raise ValueError(
                "`MaskedGlobalPooling` expects inputs of shape (batch, length, dim). "
                f"Received: inputs_shape={tuple(inputs_shape)}"
            )
        self.built = True

    # Keras' default build config also records the mask passed to `call`.
    def get_build_config(self) -> dict | None:
        return {"inputs_shape": self._inputs_shape} if self.built else None

    def build_from_config(self, config: dict) -> None:
        if config:
            self.build(config["inputs_shape"])

    def call(
        self,
        inputs: Any,
        padding_mask: Any = None,
        mask: Any = None,
        inputs_mask: Any = None,
    ) -> Any:
        """Pools the sequence.

        Args:
            inputs: Float tensor `(batch, length, dim)`.
            padding_mask: Optional `(batch, length)`, true (or 1) at real tokens.
                Overrides the Keras mask of `inputs`.
            mask: The Keras mask of `inputs`; Keras fills it in, do not pass it.
            inputs_mask: Same as `mask`, the name Keras uses when several tensors are
                passed; do not pass it.

        Returns:
            A tensor of shape `(batch, dim)`.
        """
        if self.mode == "first":
            return inputs[:, 0, :]
        padding = _masks.first_mask(padding_mask, mask, inputs_mask)
        values = ops.cast(inputs, "float32")
        if padding is None:
            padding = ops.ones(ops.shape(values)[:2], dtype="bool")
        real = ops.expand_dims(ops.cast(padding, "bool"), axis=-1)
        if self.mode == "mean":
            weights = ops.cast(real, "float32")
            total = ops.sum(values * weights, axis=1)
            count = ops.maximum(ops.sum(weights, axis=1), 1.0)
            pooled = total / count
        else:
            # Padding gets float32's lowest value so it never wins the maximum.
            pooled = ops.max(ops.where(real, values, _FLOAT32_LOWEST), axis=1)
            pooled = ops.where(ops.any(real, axis=1), pooled, 0.0)
        return ops.cast(pooled, self.compute_dtype)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, inputs_shape: tuple) -> tuple:
        return (inputs_shape[0], inputs_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config["mode"] = self.mode
        return config
