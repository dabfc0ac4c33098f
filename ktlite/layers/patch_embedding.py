"""Image patches to a token sequence, with a class token and learned positions (ViT)."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from ktlite.arguments import check_bool, check_positive_int
from ktlite.layers import _validation


def _patch_size(value: Any) -> tuple[int, int]:
    """Returns `(height, width)` from an int or a pair of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        size = check_positive_int(value, "patch_size")
        return size, size
    expected = "`patch_size` must be a positive int or a pair of positive ints. "
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        raise TypeError(f"{expected}Received: patch_size={value!r}")
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{expected}Received: patch_size={value!r}")
    return int(value[0]), int(value[1])


@keras.saving.register_keras_serializable(package="ktlite")
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into patches and embeds each one as a token, as in ViT.

    Images of shape `(batch, height, width, channels)` are split into non-overlapping
    `patch_size` tiles; each tile is flattened and projected linearly to
    `embedding_dim` (one strided convolution does both). With `class_token=True` a
    learned vector is put in front of the patch tokens (pool it with
    `MaskedGlobalPooling("first")`). A learned position embedding, one vector per
    token, is added to every token. The output has shape
    `(batch, num_patches (+ 1), embedding_dim)` with
    `num_patches = (height // patch_height) * (width // patch_width)` and no mask.

    The number of positions is fixed by the image size seen at build time, so height
    and width must be known then and divisible by the patch size.

    Args:
        patch_size: Side of a square patch (an int) or `(patch_height, patch_width)`.
        embedding_dim: Size of each token vector.
        class_token: Whether to prepend a learned class token. Defaults to `True`.
        kernel_initializer: Initializer of the patch projection. Defaults to
            `"glorot_uniform"`.
        embeddings_initializer: Initializer of the class token and the position
            embeddings. Defaults to a truncated normal with standard deviation 0.02
            (as in ViT).
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: If `patch_size` or `embedding_dim` is not an int (or a pair of ints)
            or `class_token` is not a bool.
        ValueError: If `patch_size` or `embedding_dim` is not positive; at build time if
            the inputs are not of rank 4, or their height or width is unknown or not
            divisible by the patch size.

    Example:
        >>> layer = PatchEmbedding(patch_size=4, embedding_dim=32)
        >>> images = np.zeros((2, 28, 28, 1), "float32")
        >>> layer(images).shape  # (2, 50, 32): 7 * 7 patches + the class token
    """

    def __init__(
        self,
        patch_size: int | tuple[int, int],
        embedding_dim: int,
        class_token: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        embeddings_initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.patch_size = _patch_size(patch_size)
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.class_token = check_bool(class_token, "class_token")
        self.kernel_initializer = _validation.initializer("kernel_initializer", kernel_initializer)
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.embeddings_initializer = _validation.initializer(
            "embeddings_initializer", embeddings_initializer)

    def build(self, inputs_shape: tuple) -> None:
        if len(inputs_shape) != 4:
            raise ValueError(
                "`PatchEmbedding` expects images of shape (batch, height, width, channels). "
                f"Received: inputs_shape={tuple(inputs_shape)}"
            )
        height, width = inputs_shape[1], inputs_shape[2]
        patch_height, patch_width = self.patch_size
        if (
            height is None or width is None
            or height % patch_height or width % patch_width
        ):
            raise ValueError(
                "The image height and width must be known and divisible by `patch_size`. "
                f"Received: inputs_shape={tuple(inputs_shape)}, "
                f"patch_size={self.patch_size}"
            )
        self.num_patches = (height // patch_height) * (width // patch_width)
        self._image_size = (height, width)
        self._projection = keras.layers.Conv2D(
            self.embedding_dim,
            kernel_size=self.patch_size,
            strides=self.patch_size,
            padding="valid",
            data_format="channels_last",
            kernel_initializer=_validation.copy_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="projection",
        )
        self._projection.build(inputs_shape)
        if self.class_token:
            self.class_embedding = self.add_weight(
                shape=(1, 1, self.embedding_dim),
                initializer=_validation.copy_initializer(self.embeddings_initializer),
                name="class_embedding",
            )
        self.position_embeddings = self.add_weight(
            shape=(self.num_patches + int(self.class_token), self.embedding_dim),
            initializer=_validation.copy_initializer(self.embeddings_initializer, copy=1),
            name="position_embeddings",
        )
        self.built = True

    def call(self, inputs: Any) -> Any:
        size = tuple(inputs.shape[1:3])
        if None not in size and size != self._image_size:
            # The position table has one row per patch of the size it was built for.
            raise ValueError(
                "The image height and width are fixed when the layer is built. Received: "
                f"images of {size[0]}x{size[1]}, built for "
                f"{self._image_size[0]}x{self._image_size[1]}"
            )
        patches = self._projection(inputs)
        batch = ops.shape(patches)[0]
        tokens = ops.reshape(patches, (batch, self.num_patches, self.embedding_dim))
        if self.class_token:
            cls = ops.cast(self.class_embedding, tokens.dtype)
            cls = ops.broadcast_to(cls, (batch, 1, self.embedding_dim))
            tokens = ops.concatenate([cls, tokens], axis=1)
        return tokens + ops.cast(self.position_embeddings, tokens.dtype)[None, :, :]

    def compute_output_shape(self, inputs_shape: tuple) -> tuple:
        height, width = inputs_shape[1], inputs_shape[2]
        if height is None or width is None:
            length = None
        else:
            patch_height, patch_width = self.patch_size
            length = (height // patch_height) * (width // patch_width) + int(self.class_token)
        return (inputs_shape[0], length, self.embedding_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "patch_size": list(self.patch_size),
                "embedding_dim": self.embedding_dim,
                "class_token": self.class_token,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
