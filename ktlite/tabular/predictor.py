"""TabularPredictor: table rows in, labels or values out, preprocessing inside the graph."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

# Registers the layers that saved table models refer to, before any load_model.
import ktlite.layers  # noqa: F401
from ktlite import compat
from ktlite.arguments import check_fitted
from ktlite.classifier import ClassifierPredictor
from ktlite.columns import is_series
from ktlite.tabular.layers import FeatureTokenizer
from ktlite.tabular.preprocessor import CONFIG_FILE, TabularPreprocessor


class TabularPredictor(ClassifierPredictor):
    """Predicts labels (or values) for table rows with a trained model and its preprocessor.

    Rows are read on the host (missing and unknown columns refused, values checked), then
    standardization, missing flags, the category lookup and the forward pass run in one
    `tf.function`. Columns the preprocessor dropped at training (the labels, ignored
    columns) may be present and are skipped.

    The exported SavedModel's `serving_default` takes ``numeric`` (float32, shape
    `(batch, n_numeric)`, NaN for missing) and ``categorical`` (string, shape `(batch,
    n_categorical)`, ``""`` for missing) with columns in the order of `describe()`'s
    ``numeric_columns`` and ``categorical_columns`` (a group without columns has no input).

    Args:
        model: the `keras.Model` from `tabular_classifier` / `tabular_regressor`.
        preproc: the `TabularPreprocessor` it was trained with.
        batch_size: rows per forward pass. Defaults to 32.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model does not take the preprocessor's columns, or its
            `FeatureTokenizer` has another number of ids for a categorical column than the
            preprocessor's categories (and the unknown id).

    Example:
        >>> predictor = ktlite.get_predictor(model, preproc)
        >>> predictor.predict({"age": 41, "city": "Rome"})
        'yes'
        >>> predictor.predict(df)            # a DataFrame, or a list of dict rows
        ['yes', 'no', ...]
        >>> predictor.predict(df.iloc[0])    # one row as a pandas Series
        'yes'
    """

    preprocessor_files: ClassVar[tuple[str, ...]] = (CONFIG_FILE,)

    def _input_spec(self) -> dict[str, tf.TensorSpec]:
        spec = {}
        if self.preproc.numeric:
            width = len(self.preproc.numeric)
            spec["numeric"] = tf.TensorSpec((None, width), tf.float32, name="numeric")
        if self.preproc.categorical:
            width = len(self.preproc.categorical)
            spec["categorical"] = tf.TensorSpec((None, width), tf.string, name="categorical")
        return spec

    def _transform(self, raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.preproc.transform(raw)

    def _as_batch(self, inputs: Any) -> tuple[dict[str, np.ndarray], bool]:
        single = isinstance(inputs, Mapping) or is_series(inputs)
        columns = self.preproc.to_columns(inputs, "inputs")
        return self.preproc.raw_batch(columns, "inputs"), single

    def _check_model_inputs(self, model: keras.Model, preproc: Any) -> None:
        check_fitted(preproc, TabularPreprocessor)
        expected = {
            "numeric": len(preproc.numeric),
            "missing": len(preproc.numeric),
            "categorical": len(preproc.categorical),
        }
        expected = {key: width for key, width in expected.items() if width}
        given = model.input
        found = (
            {key: tensor.shape[-1] for key, tensor in given.items()}
            if isinstance(given, dict)
            else None
        )
        if found != expected:
            raise ValueError(
                f"The model takes inputs {found} but the preprocessor makes {expected} "
                "(input name: width); the model and preprocessor do not belong together."
            )
        # Equal widths do not make equal categories: a model trained on other categories
        # would read other rows of its embedding (or none) for the preprocessor's ids.
        for layer in compat.flatten_layers(model, include_self=False):
            if not isinstance(layer, FeatureTokenizer):
                continue
            for column, size, model_size in zip(
                preproc.categorical_columns, preproc.category_sizes, layer.category_sizes
            ):
                if model_size != size:
                    raise ValueError(
                        f"The model's layer {layer.name!r} has {model_size} ids for the "
                        f"categorical column {column!r} but the preprocessor encodes it with "
                        f"{size} ({size - 1} categories and the unknown id); the model and "
                        "preprocessor do not belong together."
                    )

    def describe(self) -> dict[str, Any]:
        """The label mode, classes and the feature columns by kind."""
        return {
            **super().describe(),
            "numeric_columns": self.preproc.numeric_columns,
            "categorical_columns": self.preproc.categorical_columns,
        }

    def json_input_schema(self) -> dict[str, Any]:
        """One input is an object with a value for every feature column."""
        properties: dict[str, Any] = {
            c: {"type": ["number", "null"]} for c in self.preproc.numeric_columns
        }
        properties.update(
            {
                c: {"type": ["string", "number", "boolean", "null"]}
                for c in self.preproc.categorical_columns
            }
        )
        return {
            "type": "object",
            "properties": properties,
            "required": self.preproc.columns,
        }

    def inputs_from_json(self, items: list[Any]) -> list[dict[str, Any]]:
        """Checks the JSON rows of a request; returns them as `predict` takes them.

        Args:
            items: the request's list of rows (JSON objects).

        Returns:
            The rows.

        Raises:
            TypeError: if `items` is not a list, or for a row that is not an object or a
                value that is a JSON array or object (the row is named), as in `predict`.
            ValueError: for no rows, or a row that lacks a column, has an unknown column,
                or a non-numeric value in a numeric column (the row is named).
        """
        if not isinstance(items, list):
            raise TypeError(
                f"`inputs` must be a list of rows. Received: inputs of type {type(items).__name__}"
            )
        self._as_batch(items)
        return items

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> Any:
        return TabularPreprocessor.load(folder)
