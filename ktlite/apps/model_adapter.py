"""`ModelAdapter`: a bare Keras model made servable by `APIApp`, arrays in, arrays out.

`APIApp(model, input_shape=(16,))` wraps a compiled (or just built) `keras.Model` in this
adapter. It speaks the same JSON hooks as a `ktlite.predictor.Predictor`: each input is a
nested JSON list of the model's input shape (token ids for an int model, features for a
float one), checked here one by one so a bad input gets a 422 naming it, and the answer is
the model's raw outputs as JSON lists.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ktlite import compat
from ktlite.arguments import check_positive_int
from ktlite.predictor import to_json, library_versions
from ktlite.validation import shape_fits


class ModelAdapter:
    """Serves a single-input, single-output `keras.Model` on arrays of a fixed shape.

    Args:
        model: a built `keras.Model` with one input and one output.
        input_shape: the shape of one input, without the batch dimension (e.g. `(16,)` for
            16 token ids). It must agree with the model's input wherever that is known.
        batch_size: inputs per forward pass. Defaults to 32.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if `input_shape` is not a tuple of positive ints matching the model's
            input, or the model has no symbolic inputs (subclassed) or several inputs or
            outputs.

    Example:
        >>> adapter = ModelAdapter(model, input_shape=(4,))
        >>> adapter.predict_outputs(adapter.inputs_from_json([[0.1, 0.2, 0.3, 0.4]]))
        array([[0.3, 0.7]], dtype=float32)
    """

    def __init__(self, model: keras.Model, input_shape: Any, batch_size: int = 32) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        try:
            inputs, outputs = model.inputs, model.outputs
        except AttributeError:  # a subclassed model, or a Sequential without an Input
            inputs = outputs = None
        if not inputs:
            raise ValueError(
                "`model` must have symbolic inputs (a functional model, or a Sequential that "
                "starts with `keras.Input`) to be served from arrays; wrap any other model: "
                "`inputs = keras.Input(input_shape); keras.Model(inputs, model(inputs))`. "
                f"Received: a {type(model).__name__} model without them"
            )
        if len(inputs) != 1 or len(outputs or ()) != 1:
            raise ValueError(
                "`model` must be built with exactly one input and one output to be served "
                f"from arrays. Received a model with {len(inputs)} inputs and "
                f"{len(outputs or ())} outputs."
            )
        if (
            not isinstance(input_shape, (tuple, list))
            or not input_shape
            or not all(type(d) is int and d > 0 for d in input_shape)
        ):
            raise ValueError(
                "`input_shape` must be a non-empty tuple of positive ints (one input, without "
                f"the batch dimension). Received: input_shape={input_shape!r}"
            )
        declared = tuple(inputs[0].shape[1:])
        if not shape_fits(declared, input_shape):
            raise ValueError(
                f"`input_shape` must match the model's input shape {declared}. "
                f"Received: input_shape={tuple(input_shape)!r}"
            )
        self.model = model
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(keras.backend.standardize_dtype(inputs[0].dtype))
        self.batch_size = check_positive_int(batch_size, "batch_size")
        # Integer inputs usually index an embedding: ids past its rows fail inside the
        # model (a server error), so they are refused up front as a client error.
        self.id_limit = None
        if self.dtype.kind in "iu":
            embeddings = [layer for layer in compat.flatten_layers(model)
                          if isinstance(layer, keras.layers.Embedding)]
            if embeddings:
                self.id_limit = int(embeddings[0].input_dim)

    @property
    def metadata(self) -> dict[str, Any]:
        """The model's name, input shape and dtype, output shape and library versions."""
        return to_json({
            "predictor": f"{type(self).__module__}.{type(self).__qualname__}",
            "batch_size": self.batch_size,
            **self.describe(),
            "versions": library_versions(),
        })

    def describe(self) -> dict[str, Any]:
        """The model's name, one input's shape and dtype, and one output's shape.

        Returns:
            A dict with `model`, `input_shape`, `input_dtype` and `output_shape`.

        Example:
            >>> ModelAdapter(model, input_shape=(4,)).describe()["input_shape"]
            [4]
        """
        return {
            "model": self.model.name,
            "input_shape": list(self.input_shape),
            "input_dtype": self.dtype.name,
            "output_shape": list(self.model.outputs[0].shape[1:]),
        }

    def json_input_schema(self) -> dict[str, Any]:
        """Nested arrays of `input_shape`, of integers or numbers by the model's dtype.

        Returns:
            A JSON schema dict: one `array` level per dimension of `input_shape` (with
            `minItems` = `maxItems` = its size) around `integer` for an integer model, else
            `number`.

        Example:
            >>> ModelAdapter(model, input_shape=(2,)).json_input_schema()["items"]
            {'type': 'number'}
        """
        schema: dict[str, Any] = {"type": "integer" if self.dtype.kind in "iu" else "number"}
        for size in reversed(self.input_shape):
            schema = {"type": "array", "items": schema, "minItems": size, "maxItems": size}
        return schema

    def inputs_from_json(self, items: list[Any]) -> np.ndarray:
        """Checks each input's shape and values; returns them as one array.

        Args:
            items: the request's inputs, each a nested list of `input_shape`.

        Returns:
            An array of shape `(len(items), *input_shape)` in the model's input dtype.

        Raises:
            TypeError: naming the first input that holds a value other than a number
                (`true`, `null`, a string).
            ValueError: if `items` is not a non-empty list, or naming the first input of the
                wrong shape, with a non-finite number, a number past the range of the
                model's float dtype (1e39 for float32), or (for an integer model) a value
                that is not an integer in the dtype's range, or past the rows of the model's
                first embedding.

        Example:
            >>> adapter.inputs_from_json([[0.1, 0.2, 0.3, 0.4]]).shape
            (1, 4)
        """
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError(f"`inputs` must be a non-empty list. Received: inputs={items!r:.80}")
        rows = [self._check_item(i, item) for i, item in enumerate(items)]
        return np.stack(rows)

    def _check_item(self, index: int, item: Any) -> np.ndarray:
        where = f"`inputs[{index}]`"
        # Each value's type first: numpy would read true beside numbers as 1 and say nothing.
        try:
            values = np.asarray(item, dtype=object).ravel().tolist()
        except ValueError:  # ragged: the shape check below says so
            values = []
        for kind in dict.fromkeys(map(type, values)):  # each type once, in C loops
            if kind in (list, tuple):  # ragged nesting: the shape check below says so
                continue
            if issubclass(kind, (bool, np.bool_)) or not issubclass(kind, (int, float, np.number)):
                value = next(v for v in values if type(v) is kind)
                raise TypeError(f"{where} must hold only numbers. Received a value of type "
                                f"{kind.__name__}: {value!r:.40}.")
        try:
            array = np.asarray(item)
        except ValueError:  # ragged nesting
            array = None
        if array is None or array.shape != self.input_shape:
            shape = "a ragged list" if array is None else f"shape {array.shape}"
            raise ValueError(f"{where} must have shape {self.input_shape}. Received {shape}.")
        if array.dtype == object:  # integers past int64 (every value is a number)
            try:
                array = array.astype(np.float64)
            except OverflowError:  # past float64 too
                raise ValueError(self._range_problem(where)) from None
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{where} must hold only finite numbers.")
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            if np.any(array != np.round(array)) or array.min() < info.min or array.max() > info.max:
                raise ValueError(self._range_problem(where))
            if self.id_limit is not None and (array.min() < 0 or array.max() >= self.id_limit):
                raise ValueError(
                    f"{where} must hold token ids in [0, {self.id_limit}) (the rows of the "
                    "model's first embedding)."
                )
        with np.errstate(over="ignore"):  # overflow is refused below, by name
            cast = array.astype(self.dtype)
        # Checked after the cast too: 1e39 is finite as a JSON number but inf in float32.
        if self.dtype.kind == "f" and not np.all(np.isfinite(cast)):
            raise ValueError(self._range_problem(where))
        return cast

    def _range_problem(self, where: str) -> str:
        """What an input with a number past the model's dtype must hold instead."""
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            return (f"{where} must hold integers in [{info.min}, {info.max}] (the model takes "
                    f"{self.dtype.name}).")
        return (f"{where} must hold numbers within the range of {self.dtype.name}, which the "
                f"model takes (magnitude at most {np.finfo(self.dtype).max:.4g}).")

    def predict_outputs(self, inputs: np.ndarray) -> np.ndarray:
        """Runs the model on a batch of checked inputs, `batch_size` at a time.

        Args:
            inputs: an array from `inputs_from_json`.

        Returns:
            The model's outputs as a float32 array, one row per input.

        Example:
            >>> adapter.predict_outputs(adapter.inputs_from_json([[0.1, 0.2, 0.3, 0.4]]))
            array([[0.3, 0.7]], dtype=float32)
        """
        step = self.batch_size
        chunks = [
            np.asarray(self.model.predict_on_batch(inputs[i: i + step]), dtype=np.float32)
            for i in range(0, len(inputs), step)
        ]
        return np.concatenate(chunks)

    def json_response(self, outputs: np.ndarray) -> dict[str, Any]:
        """`{"predictions": [...]}`: each input's raw model output as (nested) lists.

        Args:
            outputs: the request's rows of model outputs.

        Returns:
            The JSON-ready answer.

        Example:
            >>> adapter.json_response(np.array([[0.3, 0.7]], dtype=np.float32))
            {'predictions': [[0.30000001192092896, 0.699999988079071]]}
        """
        return {"predictions": np.asarray(outputs, dtype=float).tolist()}


__all__ = ["ModelAdapter"]
