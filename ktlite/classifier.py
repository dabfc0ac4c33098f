"""The classification / regression head shared by every task that predicts labels or values.

`ClassifierPredictor` turns the model's outputs into class probabilities (a softmax or
sigmoid over logits, `[1 - p, p]` from one sigmoid output over two classes), decodes them,
builds the SavedModel's outputs and the HTTP answer, and checks the model's output width,
all through the preprocessor's `ktlite.labels.LabelEncoder` (`preproc.labels`). A task
(text, tables, images) subclasses it and adds only its input hooks.
`classification_reporter` gives a task's datasets the validation report that names the
classes; `target_scale` puts a regression head's outputs on its targets' scale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite import evaluation
from ktlite.arguments import check_bool, check_choice
from ktlite.labels import LabelEncoder
from ktlite.predictor import MODEL_OUTPUTS, Predictor, to_json
from ktlite.validation import loss_from_logits


# How far outside [0, 1] a probability may stray by rounding (a float16 softmax, an int8
# model's dequantized outputs) before the outputs are taken for no probabilities at all.
_PROBABILITY_SLACK = 0.01


class ClassifierPredictor(Predictor):
    """A `Predictor` whose model outputs class probabilities or logits, or regression values.

    The preprocessor must expose `labels`, a fitted `ktlite.labels.LabelEncoder`. A task
    subclass defines the input hooks (`_as_batch`, `_input_spec`, `_transform`,
    `_load_preprocessor`, `preprocessor_files`) and may check its inputs in
    `_check_model_inputs`.

    A model compiled with a loss that takes logits (`from_logits=True`) outputs logits
    (`model_outputs == "logits"`): the fused function applies a softmax to them (multiclass)
    or a sigmoid (multilabel), once, so `predict`, `predict_proba`, `predict_outputs` (the
    HTTP app's answers) and the exported SavedModel all give probabilities. `save` records
    it, since the saved model loads uncompiled. A model that is not compiled cannot say:
    its outputs are read as probabilities unless you set `model_outputs = "logits"`, and
    predictions whose probabilities fall outside [0, 1] (logits read as probabilities, or a
    regressor paired with a classifier's preprocessor of the same width) raise
    `RuntimeError` instead of answering (the exported SavedModel does not check). A model
    with one sigmoid output over two classes (`Dense(1, "sigmoid")` with
    `binary_crossentropy`) gives the probabilities `[1 - p, p]` of the two classes.

    Args:
        model: A built `keras.Model` with one output of shape `(batch, k)` (`(batch, 1)`
            also for two classes).
        preproc: The task's preprocessor, with a fitted `labels`.
        batch_size: Inputs per forward pass. Defaults to 32.

    Raises:
        TypeError: If `model` is not a `keras.Model`.
        ValueError: If the labels are not fitted or the model's output does not match them.

    Example:
        >>> predictor = ktlite.get_predictor(model, preproc)   # e.g. a TextPredictor
        >>> predictor.predict(["great film"], return_proba=True)
        array([[0.1, 0.9]], dtype=float32)
    """

    def __init__(self, model: keras.Model, preproc: Any, batch_size: int = 32) -> None:
        super().__init__(model, preproc, batch_size)
        self._logits = self.label_mode != "regression" and loss_from_logits(model)

    @property
    def labels(self) -> LabelEncoder:
        """The preprocessor's label encoder."""
        return self.preproc.labels

    @property
    def model_outputs(self) -> str | None:
        """What the model outputs: `"probabilities"` or `"logits"` (`None` for regression).

        Read from the model's compiled loss (`from_logits`) when the predictor is made, from
        `ktlite.json` when it is loaded; a model that is not compiled counts as outputting
        probabilities. Set it to `"logits"` for such a model whose outputs are logits.

        Raises (on setting):
            TypeError: if the value is not a str.
            ValueError: if it is not `"probabilities"` or `"logits"`, or the predictor does
                regression.
        """
        if self.label_mode == "regression":
            return None
        return "logits" if self._logits else "probabilities"

    @model_outputs.setter
    def model_outputs(self, value: str) -> None:
        check_choice(value, "model_outputs", MODEL_OUTPUTS)
        self._require_classifier("`model_outputs`")
        self._logits = value == "logits"
        self._graph_fn = self._forward = None  # traced again with the new activation

    @property
    def label_mode(self) -> str:
        """`"multiclass"`, `"multilabel"` or `"regression"`."""
        return self.labels.label_mode

    def get_classes(self) -> list[str]:
        """Returns the class names in the order of the model's outputs (empty for regression).

        Example:
            >>> predictor.get_classes()
            ['negative', 'positive']
        """
        if self.label_mode == "regression":
            return []
        return [str(name) for name in self.labels.class_names]

    def describe(self) -> dict[str, Any]:
        """The label mode and classes."""
        return {"label_mode": self.label_mode, "classes": self.get_classes()}

    def _check_model_inputs(self, model: keras.Model, preproc: Any) -> None:
        """Raises ValueError if the model's inputs do not fit the preprocessor."""

    def _check_model(self, model: keras.Model, preproc: Any) -> None:
        labels = getattr(preproc, "labels", None)
        if not isinstance(labels, LabelEncoder) or not labels.is_fitted:
            raise ValueError(
                "`preproc` must have fitted labels (`preproc.labels`, a LabelEncoder): use the "
                f"preprocessor returned with the training data. Received: preproc={preproc!r}"
            )
        if len(model.outputs) != 1:
            raise ValueError(
                f"`model` must have exactly one output. Received a model with "
                f"{len(model.outputs)} outputs."
            )
        output_shape = tuple(model.outputs[0].shape)
        if len(output_shape) != 2:
            raise ValueError(
                f"`model` must output a 2-D tensor (batch, outputs). Received output "
                f"shape {output_shape}."
            )
        if labels.label_mode == "regression":
            what = f"{labels.num_outputs} regression target(s)"
        else:
            what = f"{len(labels.class_names)} classes"
        # One sigmoid output over two classes is the probability of the second.
        binary = labels.label_mode == "multiclass" and labels.num_outputs == 2
        if output_shape[-1] != labels.num_outputs and not (binary and output_shape[-1] == 1):
            raise ValueError(
                f"The model has {output_shape[-1]} outputs but the preprocessor has {what}: "
                "the model and preprocessor do not belong together."
            )
        self._check_model_inputs(model, preproc)

    def _probabilities(self, outputs: tf.Tensor) -> tf.Tensor:
        """Graph-traceable: the model's float32 outputs -> class probabilities (a
        regressor's values unchanged), `(batch, num_classes)`."""
        if self.label_mode == "regression":
            return outputs
        if outputs.shape[-1] == 1 and self.labels.num_outputs == 2:
            positive = tf.sigmoid(outputs) if self._logits else outputs
            return tf.concat([1.0 - positive, positive], axis=-1)
        if not self._logits:
            return outputs
        if self.label_mode == "multilabel":
            return tf.sigmoid(outputs)
        return tf.nn.softmax(outputs, axis=-1)

    def _graph_outputs(self, raw: Any) -> tf.Tensor:
        return self._probabilities(self._model_outputs(raw))

    def _serve(self, raw: Any) -> dict[str, tf.Tensor]:
        return self._serving_outputs(self._model_outputs(raw))

    def _manifest_fields(self) -> dict[str, Any]:
        fields = super()._manifest_fields()
        if self.model_outputs is not None:
            fields["model_outputs"] = self.model_outputs
        return fields

    def _restore(self, manifest: dict[str, Any]) -> None:
        super()._restore(manifest)
        if self.label_mode != "regression":
            # A folder saved before the field existed held a model read as probabilities.
            self.model_outputs = manifest.get("model_outputs", MODEL_OUTPUTS[0])

    def _run(self, items: Any) -> np.ndarray:
        """The probabilities (or a regressor's values), refusing probabilities outside
        [0, 1]: a model whose outputs are logits or no probabilities at all (a regressor's,
        paired with a classifier's preprocessor of the same width) would give wrong
        probabilities and labels, silently."""
        outputs = super()._run(items)
        finite = outputs[np.isfinite(outputs)]
        if self.label_mode != "regression" and finite.size and not (
                finite.min() >= -_PROBABILITY_SLACK and finite.max() <= 1.0 + _PROBABILITY_SLACK):
            raise RuntimeError(
                "The model's outputs are not probabilities: they range from "
                f"{finite.min():.3g} to {finite.max():.3g}, outside [0, 1]. A "
                "model that outputs logits needs `predictor.model_outputs = 'logits'` (or "
                "a loss compiled with `from_logits=True`); otherwise the model does not "
                f"classify these {len(self.get_classes())} classes (a regressor?): pair it "
                "with the preprocessor it was trained with."
            )
        return outputs

    def _decode(self, outputs: np.ndarray, return_proba: bool = False) -> Any:
        if return_proba:
            self._require_classifier("return_proba=True")
            return outputs
        return self.labels.decode(outputs)

    def predict(self, inputs: Any, return_proba: bool = False) -> Any:
        """Predicts labels (or values) for raw inputs.

        Args:
            inputs: One raw input or a list of them (text: a `str` or a list of `str`).
            return_proba: Return class probabilities instead of labels. Defaults to False.

        Returns:
            multiclass: a class name per input; multilabel: a list of `(class, probability)`
            pairs for every class per input; regression: a float per input (a list of
            floats for several targets). A single input gives a single result. With
            `return_proba`, the array `predict_proba` returns.

        Raises:
            TypeError: If `inputs` is not of an accepted type, or `return_proba` is not a
                bool.
            ValueError: If `inputs` is empty, or `return_proba` is asked of a regressor.
            RuntimeError: If a classifier's model outputs no probabilities (see above).

        Example:
            >>> predictor.predict(["great film", "dull film"])
            ['positive', 'negative']
        """
        return super().predict(inputs, return_proba=check_bool(return_proba, "return_proba"))

    def _require_classifier(self, what: str) -> None:
        if self.label_mode == "regression":
            raise ValueError(
                f"{what} needs a classifier; this predictor does regression. Use "
                "`predict(...)`, which returns floats."
            )

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """Returns class probabilities.

        Args:
            inputs: One raw input or a list of them.

        Returns:
            A float32 array of shape `(n, num_classes)` for a list, `(num_classes,)` for a
            single input. Columns follow `get_classes()`.

        Raises:
            TypeError: If `inputs` is not of an accepted type.
            ValueError: If `inputs` is empty, or the model is a regression model.
            RuntimeError: If the model outputs no probabilities (see the class).

        Example:
            >>> predictor.predict_proba(["great film", "dull film"]).shape
            (2, 2)
        """
        self._require_classifier("`predict_proba`")
        return self.predict(inputs, return_proba=True)

    def _serving_outputs(self, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        # From the model's own outputs, as every signature passes them (`_serve`, and e.g.
        # the image predictor's pixel signature): the probabilities are made here.
        if self.label_mode == "regression":
            return {"predictions": outputs[:, 0] if outputs.shape[-1] == 1 else outputs}
        probabilities = self._probabilities(outputs)
        names = tf.constant(self.get_classes(), dtype=tf.string)
        if self.label_mode == "multiclass":
            labels = tf.gather(names, tf.argmax(probabilities, axis=1))
        else:
            labels = tf.broadcast_to(names, tf.shape(probabilities))
        return {"probabilities": probabilities, "labels": labels}

    def json_response(self, outputs: np.ndarray, return_proba: bool = False) -> dict[str, Any]:
        """`{"predictions": [...]}`, plus `probabilities` and `classes` with `return_proba`.

        Args:
            outputs: the request's rows of `predict_outputs` (class probabilities for a
                classifier).
            return_proba: add each input's class probabilities.

        Returns:
            The JSON-ready answer.

        Raises:
            ValueError: if `return_proba` is asked of a regressor.
        """
        answer: dict[str, Any] = {"predictions": to_json(self.labels.decode(outputs))}
        if return_proba:
            self._require_classifier("return_proba=true")
            answer["probabilities"] = np.asarray(outputs, dtype=float).tolist()
            answer["classes"] = self.get_classes()
        return answer


class _ClassificationReporter:
    """A classifying task's validation report; `class_names` say what its label ids mean."""

    def __init__(self, labels: LabelEncoder) -> None:
        self.labels = labels
        self.class_names = None if labels.label_mode == "regression" else labels.class_names

    def __call__(self, model: keras.Model, data: Any, predict: Callable[[Any], np.ndarray]) -> Any:
        return evaluation.report(model, np.asarray(data.y), predict(data), self.class_names)


def classification_reporter(labels: LabelEncoder) -> Callable[..., tuple[str, Any]]:
    """The validation report of a classifying task, naming its classes.

    Its `class_names` attribute (`None` for regression) tells `Learner` which classes the
    data's label ids stand for, so validation data encoded with other classes than the
    training data's is refused (see `encoded_class_names`).

    Args:
        labels: the task's fitted `LabelEncoder`.

    Returns:
        A `TaskDataset` reporter: `reporter(model, data, predict) -> (text, result)`, the
        scikit-learn classification report and confusion matrix (or MAE / MSE for
        regression), as `evaluation.report` builds them.

    Raises:
        TypeError: if `labels` is not a `LabelEncoder`.

    Example:
        >>> trn = TaskDataset(x, y, transform, reporter=classification_reporter(labels))
    """
    if not isinstance(labels, LabelEncoder):
        raise TypeError(f"`labels` must be a LabelEncoder. Received: labels={labels!r}")
    return _ClassificationReporter(labels)


def encoded_class_names(data: Any) -> list[str] | None:
    """The classes whose ids a task's data holds as labels, or `None` when it does not say.

    Args:
        data: anything a `Learner` takes as data; a `TaskDataset` built by a classifying
            task's loader says (through its `classification_reporter`).

    Returns:
        The class names in id order, or `None` (other data, regression, other tasks).

    Example:
        >>> encoded_class_names(trn)
        ['neg', 'pos']
    """
    reporter = getattr(data, "reporter", None)
    if isinstance(reporter, _ClassificationReporter):
        return reporter.class_names
    return None


def target_scale(outputs: Any, targets: Any) -> Any:
    """Puts a regression head's outputs on the targets' scale: `outputs * std + mean`.

    A head that starts near 0 with unit spread then starts at the targets' mean with their
    spread, per target column, so targets such as prices near 1,000 train like standardized
    ones (without it, a short fit lands worse than predicting the mean). The layer has no
    weights and is a plain `keras.layers.Rescaling` named `target_scale`, so a saved model
    loads in safe mode.

    Args:
        outputs: the symbolic output of the model's linear head, `(batch, k)`.
        targets: the training targets, `(n,)` or `(n, k)` floats.

    Returns:
        The rescaled symbolic output (float32).

    Raises:
        ValueError: if `targets` is empty or holds a non-finite value.

    Example:
        >>> outputs = target_scale(keras.layers.Dense(1, name="head")(x), trn.y)
    """
    values = np.asarray(targets, np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(
            "`targets` must be a non-empty array of finite numbers. "
            f"Received: {values.size} values, finite: {bool(np.isfinite(values).all())}"
        )
    values = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
    std = values.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return keras.layers.Rescaling(
        scale=[float(v) for v in std], offset=[float(v) for v in values.mean(axis=0)],
        dtype="float32", name="target_scale",
    )(outputs)


__all__ = [
    "ClassifierPredictor", "classification_reporter", "encoded_class_names", "target_scale",
]
