"""Token embedding plus position information, with the padding mask for id 0."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from ktlite.arguments import check_bool, check_choice, check_positive_int
from ktlite.layers import _validation

_POSITIONS = ("learned", "sinusoidal")


@keras.saving.register_keras_serializable(package="ktlite")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Embeds token ids and adds a position embedding.

    The layer maps integer token ids of shape `(batch, length)` to vectors of shape
    `(batch, length, embedding_dim)`: the sum of a token embedding and a position
    embedding. Positions are either learned (one trainable vector per position, up to
    `sequence_length`) or the fixed sine/cosine encoding of "Attention Is All You Need",
    which has no weights.

    With `mask_zero=True` (the default) id 0 is padding: the layer emits a Keras mask
    that is `False` at padding, which the ktlite encoder, decoder and pooling layers read
    automatically. Padding still receives an embedding vector; the mask is what tells
    the following layers to ignore it.

    For decoding one token at a time, `call(ids, start_index=t)` embeds ids that sit at
    positions `t, t+1, ...`. For tied input/output embeddings, `call(hidden,
    reverse=True)` maps vectors `(batch, length, embedding_dim)` to logits over the
    vocabulary with the transposed token embedding matrix.

    Args:
        vocab_size: Number of token ids, including the padding id 0. Ids must lie in
            `[0, vocab_size)`.
        sequence_length: Longest sequence the layer accepts. Inputs may be shorter
            (or of unknown length, `keras.Input((None,))`); they use the first
            positions.
        embedding_dim: Size of each embedding vector.
        mask_zero: Whether id 0 is padding. If `True`, `compute_mask` returns
            `inputs != 0`. Defaults to `True`.
        position: `"learned"` (default) or `"sinusoidal"`.
        embeddings_initializer: Initializer for the token and the learned position
            embeddings; one initializer keeps both on the same scale. Defaults to
            `"uniform"` (uniform in `[-0.05, 0.05]`, as `keras.layers.Embedding`).
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: If a size is not an int, `mask_zero` is not a bool or `position` is not
            a str.
        ValueError: If a size is not positive or `position` is unknown; at build time if
            the input is not of rank 2; when
            called on inputs longer than `sequence_length` (an `InvalidArgumentError`
            instead, at run time, for lengths a TensorFlow graph only knows then).

    Example:
        >>> layer = TokenAndPositionEmbedding(vocab_size=100, sequence_length=8,
        ...                                   embedding_dim=16)
        >>> ids = np.array([[5, 7, 2, 0, 0, 0, 0, 0]])
        >>> layer(ids).shape  # (1, 8, 16)
        >>> layer.compute_mask(ids)  # [[True, True, True, False, False, ...]]
    """

    def __init__(
        self,
        vocab_size: int,
        sequence_length: int,
        embedding_dim: int,
        mask_zero: bool = True,
        position: str = "learned",
        embeddings_initializer: Any = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.sequence_length = check_positive_int(sequence_length, "sequence_length")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.mask_zero = check_bool(mask_zero, "mask_zero")
        self.position = check_choice(position, "position", _POSITIONS)
        self.embeddings_initializer = _validation.initializer(
            "embeddings_initializer", embeddings_initializer)
        self.supports_masking = True

    def build(self, inputs_shape: tuple) -> None:
        if len(inputs_shape) != 2:
            raise ValueError(
                "`TokenAndPositionEmbedding` expects token ids of shape "
                f"(batch, length). Received: inputs_shape={tuple(inputs_shape)}"
            )
        self._check_static_length(inputs_shape[1])
        # The sublayer does not mask: `compute_mask` below owns the padding rule.
        self._token_embedding = keras.layers.Embedding(
            self.vocab_size,
            self.embedding_dim,
            embeddings_initializer=_validation.copy_initializer(
                self.embeddings_initializer
            ),
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self._token_embedding.build(inputs_shape)
        if self.position == "learned":
            self.position_embeddings = self.add_weight(
                shape=(self.sequence_length, self.embedding_dim),
                initializer=_validation.copy_initializer(self.embeddings_initializer, copy=1),
                name="position_embeddings",
            )
        self.built = True

    @property
    def token_embeddings(self):
        """The `(vocab_size, embedding_dim)` token embedding matrix (for weight tying).

        After `Model.quantize`, the matrix the ids look up: Keras keeps int8 / int4 values
        with a scale per row, which its lookup divides out and its `embeddings` does not.
        """
        table = self._token_embedding
        if table.quantization_mode is None:
            return table.embeddings
        return table(ops.arange(self.vocab_size))

    def _sinusoids(self, length) -> Any:
        # Dimension i uses frequency 1 / 10000^(2*(i//2)/dim): sine on even i, cosine
        # on odd i. Computed from i directly so an odd `embedding_dim` also works.
        positions = ops.cast(ops.arange(length), "float32")[:, None]
        dims = ops.arange(self.embedding_dim)
        rates = ops.exp(
            ops.cast(2 * (dims // 2), "float32")
            * (-math.log(10000.0) / self.embedding_dim)
        )
        angles = positions * rates[None, :]
        return ops.where(dims % 2 == 0, ops.sin(angles), ops.cos(angles))

    def _check_static_length(self, length: int | None) -> None:
        if length is not None and length > self.sequence_length:
            raise ValueError(
                "Inputs are longer than `sequence_length`. Received: "
                f"length={length}, sequence_length={self.sequence_length}"
            )

    def _check_start(self, start_index: Any, length: int | None) -> None:
        """Refuses a Python-int `start_index` whose positions run past `sequence_length`
        (a learned table has no row for them, and sinusoids would go past the length
        the layer was made for). A tensor's value is for the caller's loop to bound."""
        if not isinstance(start_index, int) or isinstance(start_index, bool):
            return
        if start_index < 0 or (length is not None
                               and start_index + length > self.sequence_length):
            raise ValueError(
                "`start_index` + the inputs' length must be within `sequence_length`, and "
                f"`start_index` >= 0. Received: start_index={start_index}, length={length}, "
                f"sequence_length={self.sequence_length}"
            )

    def _assert_length(self, inputs: Any) -> Any:
        """Checks the length when it is known (now or, in a graph, at run time); returns
        the inputs, in a graph behind the run-time check."""
        self._check_static_length(inputs.shape[1])
        if inputs.shape[1] is None and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # Lengths only known at run time (a traced `(None, None)` signature): without
            # this, a learned table would fail to slice with an unrelated message. The
            # embedding waits for the check: graph ops without a dependency run in any
            # order, and the slice failed first now and then.
            check = tf.debugging.assert_less_equal(
                tf.shape(inputs)[1], self.sequence_length,
                message=f"Inputs are longer than `sequence_length`={self.sequence_length}",
            )
            with tf.control_dependencies([check]):
                return tf.identity(inputs)
        return inputs

    def call(self, inputs: Any, start_index: Any = 0, reverse: bool = False) -> Any:
        """Embeds token ids, or maps vectors back to vocabulary logits.

        Args:
            inputs: Int ids `(batch, length)`, or with `reverse=True` float vectors
                `(batch, length, embedding_dim)`.
            start_index: Position of the first id (int or scalar int tensor), for
                incremental decoding. Defaults to `0`.
            reverse: Whether to return `inputs @ token_embeddings.T` (logits).

        Returns:
            Embeddings `(batch, length, embedding_dim)`, or logits
            `(batch, length, vocab_size)` with `reverse=True`.
        """
        if reverse:
            # One 2-D matmul: a batched one costs ~30 us more a call through oneDNN
            # (TensorFlow's x86 default), most of a one-token decoding step's logits.
            embeddings = ops.cast(self.token_embeddings, inputs.dtype)
            flat = ops.reshape(inputs, (-1, self.embedding_dim))
            logits = ops.matmul(flat, ops.transpose(embeddings))
            return ops.reshape(logits, (*ops.shape(inputs)[:-1], self.vocab_size))
        inputs = self._assert_length(inputs)
        self._check_start(start_index, inputs.shape[1])
        tokens = self._token_embedding(inputs)
        length = ops.shape(inputs)[1]
        if self.position == "learned":
            positions = ops.slice(
                self.position_embeddings,
                [ops.cast(start_index, "int32"), ops.zeros((), "int32")],
                [length, self.embedding_dim],
            )
        else:
            positions = self._sinusoids(length + start_index)[start_index:]
        return tokens + ops.cast(positions, tokens.dtype)[None, :, :]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # Keras passes only the inputs here; vectors (the reverse call) carry no mask.
        if not self.mask_zero or len(inputs.shape) == 3:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, inputs_shape: tuple) -> tuple:
        return (*inputs_shape, self.embedding_dim)

    def compute_output_spec(
        self, inputs: Any, start_index: Any = 0, reverse: bool = False
    ) -> keras.KerasTensor:
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.vocab_size), inputs.dtype)
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), self.compute_dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "mask_zero": self.mask_zero,
                "position": self.position,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
