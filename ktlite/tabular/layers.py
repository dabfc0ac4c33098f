"""`FeatureTokenizer`: one learned token per table column (and an optional class token).

Registered with Keras under ``ktlite.tabular>``; importing `ktlite.tabular.models` (or
the predictor) registers it before a saved model is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from ktlite.arguments import check_bool, check_int, check_positive_int


@keras.saving.register_keras_serializable(package="ktlite.tabular")
class FeatureTokenizer(keras.layers.Layer):
    """Turns a row of features into `(columns, embed_dim)` tokens, as in FT-Transformer.

    Numeric column `j` with standardized value `x` and missing flag `m` becomes
    `x * W[j] + b[j] + m * M[j]`: a learned per-column linear embedding plus a learned
    "missing" vector. `M` starts at zero, so a column that was never missing in training
    treats a missing value as its mean. Categorical column `j` with id `k` becomes
    `E[offset[j] + k] + c[j]`; id 0 (the unknown bucket) contributes no embedding, only the
    column's bias `c[j]`, so a category never seen in training gives a neutral token.
    With `class_token=True` a learned token is put first (read it with
    `ktlite.layers.MaskedGlobalPooling("first")`).

    Args:
        num_numeric: number of numeric columns (inputs `"numeric"` and `"missing"`).
        category_sizes: ids per categorical column, unknown bucket included (input
            `"categorical"`, int ids with 0 = unknown).
        embed_dim: size of each token.
        class_token: put a learned class token first. Defaults to False.
        **kwargs: standard `keras.layers.Layer` arguments.

    Raises:
        TypeError: if `num_numeric`, `embed_dim` or a category size is not an int,
            `category_sizes` is not a list, or `class_token` is not a bool.
        ValueError: for no columns, a negative `num_numeric`, or a size < 1.

    Example:
        >>> tokens = FeatureTokenizer(2, [4], embed_dim=8, class_token=True)(
        ...     {"numeric": x, "missing": m, "categorical": ids})   # (batch, 4, 8)
    """

    def __init__(
        self,
        num_numeric: int,
        category_sizes: Sequence[int],
        embed_dim: int,
        class_token: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_numeric = check_int(num_numeric, "num_numeric", 0)
        if not isinstance(category_sizes, Sequence) or isinstance(category_sizes, str):
            raise TypeError(
                "`category_sizes` must be a list of ints. "
                f"Received: category_sizes={category_sizes!r:.80}"
            )
        self.category_sizes = [
            check_positive_int(size, f"category_sizes[{i}]")
            for i, size in enumerate(category_sizes)
        ]
        if self.num_numeric + len(self.category_sizes) == 0:
            raise ValueError("`FeatureTokenizer` needs at least one numeric or categorical column.")
        self.embed_dim = check_positive_int(embed_dim, "embed_dim")
        self.class_token = check_bool(class_token, "class_token")
        offsets, total = [], 0
        for size in self.category_sizes:
            offsets.append(total)
            total += size
        self._offsets = offsets
        self._total_categories = total

    def build(self, input_shape: Any = None) -> None:
        # Every shape follows from the configuration; the input shapes are not needed.
        bound = 1.0 / math.sqrt(self.embed_dim)
        init = keras.initializers.RandomUniform(-bound, bound)
        d = self.embed_dim
        if self.num_numeric:
            self.numeric_kernel = self.add_weight(
                (self.num_numeric, d), init, name="numeric_kernel"
            )
            self.numeric_bias = self.add_weight((self.num_numeric, d), init, name="numeric_bias")
            self.missing_embedding = self.add_weight(
                (self.num_numeric, d), "zeros", name="missing_embedding"
            )
        if self.category_sizes:
            self.category_embedding = self.add_weight(
                (self._total_categories, d), init, name="category_embedding"
            )
            self.category_bias = self.add_weight(
                (len(self.category_sizes), d), init, name="category_bias"
            )
        if self.class_token:
            self.class_embedding = self.add_weight((1, 1, d), init, name="class_embedding")
        self.built = True

    def call(self, inputs: dict[str, Any]) -> Any:
        tokens = []
        if self.num_numeric:
            x = ops.cast(inputs["numeric"], self.compute_dtype)[..., None]
            missing = ops.cast(inputs["missing"], self.compute_dtype)[..., None]
            tokens.append(
                x * self.numeric_kernel + self.numeric_bias + missing * self.missing_embedding
            )
        if self.category_sizes:
            ids = ops.cast(inputs["categorical"], "int32")
            embedded = ops.take(self.category_embedding, ids + ops.array(self._offsets), axis=0)
            known = ops.cast(ops.greater(ids, 0), self.compute_dtype)[..., None]
            tokens.append(embedded * known + self.category_bias)
        if self.class_token:
            batch = ops.shape(tokens[0])[0]
            tokens.insert(0, ops.tile(self.class_embedding, [batch, 1, 1]))
        return tokens[0] if len(tokens) == 1 else ops.concatenate(tokens, axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        width = self.num_numeric + len(self.category_sizes) + int(self.class_token)
        first = next(iter(input_shape.values()))
        return (first[0], width, self.embed_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_numeric": self.num_numeric,
                "category_sizes": list(self.category_sizes),
                "embed_dim": self.embed_dim,
                "class_token": self.class_token,
            }
        )
        return config
