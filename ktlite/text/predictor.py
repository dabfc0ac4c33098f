"""TextPredictor: raw strings in, labels out, tokenization inside the model's graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

# Registers the custom layers that saved text models refer to, before any load_model.
import ktlite.layers  # noqa: F401
import ktlite.text.models  # noqa: F401
from ktlite.bucketing import WIDTH_STEP, padding_invariant
from ktlite.classifier import ClassifierPredictor
from ktlite.arguments import check_fitted
from ktlite.text.preprocessor import TextPreprocessor, check_texts


class TextPredictor(ClassifierPredictor):
    """Predicts labels for raw texts with a trained text model and its preprocessor.

    Tokenization (tensorflow-text, `preproc.tokenize`) and the forward pass run in one
    `tf.function` with a `(None,)` string signature, traced once for every batch size,
    so `predict` skips Keras' `model.predict` machinery.

    When the model takes token ids of any length and masks padding (every ktlite text
    model does), a request is sorted by text length, each batch is padded only to its
    longest text (rounded up to a multiple of 16, at most `maxlen`), and results come
    back in the request's order; the exported SavedModel pads the same way. Whether the
    model masks padding is checked once, on a few probe texts padded both ways
    (`ktlite.bucketing.padding_invariant`): a model whose outputs change with the padding
    (e.g. `Embedding` without `mask_zero=True` before a pooling layer) gets every batch
    padded to `maxlen`, with one warning. Either way a text's outputs do not depend on
    the other texts of its request.

    Args:
        model: A `keras.Model` taking int32 token ids of shape `(batch, preproc.maxlen)`
            or `(batch, None)` and returning one `(batch, k)` output.
        preproc: The `ktlite.text.TextPreprocessor` the model was trained with.
        batch_size: Texts per forward pass. Defaults to 32.

    Raises:
        TypeError: If `model` is not a `keras.Model` or `batch_size` is not an int.
        ValueError: If the model does not fit the preprocessor (classes, `maxlen`,
            vocabulary size) or `batch_size` is below 1.

    Example:
        >>> predictor = ktlite.get_predictor(model, preproc)
        >>> predictor.predict("the movie was great")
        'positive'
        >>> predictor.predict(["great", "awful"], return_proba=True).shape
        (2, 2)
    """

    preprocessor_files: ClassVar[tuple[str, ...]] = ("preprocessor.json", "vocab.txt")
    # What the padding check runs on, cut to _PROBE_WIDTH tokens: all but the first fill
    # that width with no padding, as the longest text of a batch does.
    _PROBE_TEXTS: ClassVar[tuple[str, ...]] = (
        "a", "a short probe text", "another probe text", "the last probe text",
    )
    _PROBE_WIDTH = 4

    def _input_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec(shape=(None,), dtype=tf.string, name="texts")

    def _pads_per_batch(self) -> bool:
        """Whether each batch is padded to its longest text: the model takes any length,
        `maxlen` leaves room to pad less, and padding cannot change the model's outputs
        (checked once per model, see `ktlite.bucketing.padding_invariant`)."""
        if self.model.inputs[0].shape[1] is not None or self.preproc.maxlen <= WIDTH_STEP:
            return False
        # A key of its own: the learner's answer for its data may rest on no evidence.
        return padding_invariant(self.model, (TextPredictor, self.preproc.tokenize),
                                 self._probe_ids)

    def _probe_ids(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The probe texts' token ids, cut to a few positions and at `maxlen`."""
        texts = tf.constant(self._PROBE_TEXTS)
        return (self.preproc.tokenize(texts, width=self._PROBE_WIDTH),
                self.preproc.tokenize(texts))

    def _transform(self, raw: tf.Tensor) -> tf.Tensor:
        return self.preproc.tokenize(raw, width="longest" if self._pads_per_batch() else None)

    def _run(self, items: list[str]) -> np.ndarray:
        # Texts of similar length share a batch, so each batch pads little; the character
        # count is a cheap stand-in for the token count, and the batch width is exact.
        if not self._pads_per_batch() or len(items) <= self.batch_size:
            return super()._run(items)
        order = np.argsort([len(text) for text in items], kind="stable")
        outputs = super()._run([items[i] for i in order])
        restored = np.empty_like(outputs)
        restored[order] = outputs
        return restored

    def _as_batch(self, inputs: Any) -> tuple[list[str], bool]:
        return check_texts(inputs, "inputs")

    def _check_model_inputs(self, model: keras.Model, preproc: Any) -> None:
        check_fitted(preproc, TextPreprocessor)
        if len(model.inputs) != 1:
            raise ValueError(
                f"A text model must take one input (token ids). Received a model with "
                f"{len(model.inputs)} inputs."
            )
        shape = tuple(model.inputs[0].shape)
        if len(shape) != 2 or shape[1] not in (None, preproc.maxlen):
            raise ValueError(
                f"The model takes inputs of shape {shape} but the preprocessor produces "
                f"(batch, {preproc.maxlen}) token ids (preproc.maxlen={preproc.maxlen})."
            )
        positions = _layer_config_int(model, "sequence_length")
        if shape[1] is None and positions is not None and positions < preproc.maxlen:
            raise ValueError(
                f"The model has {positions} positions but the preprocessor produces up to "
                f"{preproc.maxlen} token ids (preproc.maxlen={preproc.maxlen})."
            )
        vocab_size = _token_vocab_size(model)
        if vocab_size is not None and vocab_size < preproc.vocab_size:
            raise ValueError(
                f"The model embeds {vocab_size} token ids but the preprocessor's vocabulary "
                f"has {preproc.vocab_size} (preproc.vocab_size); token ids would fall "
                "outside the embedding."
            )

    def describe(self) -> dict[str, Any]:
        """The label mode, classes, `maxlen` and vocabulary size."""
        return {
            **super().describe(),
            "maxlen": int(self.preproc.maxlen),
            "vocab_size": int(self.preproc.vocab_size),
        }

    def example_inputs(self) -> list[str]:
        """Two short texts."""
        return ["a short probe text", "another one"]

    def json_input_schema(self) -> dict[str, Any]:
        """One input is a string."""
        return {"type": "string"}

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> Any:
        return TextPreprocessor.load(str(folder))

    def explain(
        self, text: str, top_k: int = 10, as_html: bool = False,
        target: int | str | None = None,
    ) -> Any:
        """Explains the prediction for one text; see `ktlite.text.explain.explain`.

        Args:
            text: The text to explain.
            top_k: Number of words to report. Defaults to 10.
            as_html: Return an HTML rendering instead of plain data. Defaults to False.
            target: The output column to explain: a class index or name (instead of the
                predicted class) or, for regression, the output. Defaults to None: the
                predicted class, or the only regression output (several regression outputs
                need an int).

        Returns:
            What `ktlite.text.explain.explain` returns.

        Raises:
            TypeError: If `target` is neither None, an int nor a class name (or another
                argument has the wrong type).
            ValueError: If `target` is outside ``[0, number of outputs - 1]`` or names no
                class, or is None for a regression model with several outputs (or another
                argument is invalid).

        Example:
            >>> predictor.explain("the movie was great", top_k=3)
            >>> predictor.explain("the movie was great", target=0)  # why not class 0
        """
        from ktlite.text.explain import explain

        return explain(self, text, top_k=top_k, as_html=as_html, target=target)


def _token_vocab_size(model: keras.Model) -> int | None:
    """The number of token ids the model's first embedding accepts, if one is found."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            return int(layer.input_dim)
        if _config_int(layer, "vocab_size") is not None:
            return _config_int(layer, "vocab_size")
    return None


def _layer_config_int(model: keras.Model, key: str) -> int | None:
    """The int `key` of the first layer whose config has one (e.g. a position table size)."""
    for layer in model.layers:
        value = _config_int(layer, key)
        if value is not None:
            return value
    return None


def _config_int(layer: keras.layers.Layer, key: str) -> int | None:
    if isinstance(layer, keras.layers.InputLayer):
        return None
    try:
        value = layer.get_config().get(key)
    except NotImplementedError:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
