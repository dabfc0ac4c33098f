"""Predictors: a trained model plus its preprocessor, saved and loaded as one folder.

`Predictor` knows no task. It owns what every task shares: input batching, the fused
preprocess + forward `tf.function` (traced once for every batch size), saving, loading,
SavedModel export and quantization. A task subclasses it and fills in a few hooks (how
raw inputs are checked and turned into model inputs, how outputs are decoded, what the
SavedModel returns, how inputs arrive as JSON); `ktlite.classifier.ClassifierPredictor`
does the decoding part once for every task that classifies or regresses.

The saved folder (see `Predictor.save`, format version 2):

```
my_predictor/
  ktlite.json        format, version, the predictor class to load (only under `ktlite.`),
                     batch size, library versions, the SHA-256 of every other file, and
                     for a classifier `model_outputs`: whether its model outputs
                     "probabilities" or "logits" (absent in older folders: probabilities)
  model.keras        the Keras model, loaded back with `safe_mode=True`
  ...                the preprocessor's own files (text: preprocessor.json, vocab.txt)
```

Each fact lives in one file: the task's facts (classes, maxlen, ...) are in the
preprocessor's files only, and `Predictor.metadata` reads them from the loaded objects.
Folders of format version 1 (`"format_version": 1` in `ktlite.json`, which names a `task`
instead of a predictor class and lists its `files` without hashes) still load.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from ktlite import compat, saving
from ktlite.arguments import check_positive_int

FORMAT_NAME = "ktlite-predictor"
FORMAT_VERSION = 2
MODEL_FILE = "model.keras"
# Folders of format version 1 named a task instead of a class; text was the only one.
_V1_TASKS = {"text": "ktlite.text.predictor.TextPredictor"}
_SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb"})
# What ktlite adds to its SavedModels, in the folder TensorFlow leaves to other tools: the
# mark `export` looks for before it replaces a folder.
_EXPORT_MARK = ("assets.extra", "ktlite_export.json")
_EXPORT_FORMAT = "ktlite-savedmodel"
_VARIABLE_FILE = re.compile(r"^variables\.(index|data-\d{5}-of-\d{5})$")
_CLASS_PATH = re.compile(r"^ktlite(\.[A-Za-z_][A-Za-z0-9_]*)+$")
# What a classifier's model outputs (`ktlite.json`'s `model_outputs`; a folder without it
# predates the field, and its model's outputs were read as probabilities).
MODEL_OUTPUTS = ("probabilities", "logits")


def class_path(cls: type) -> str:
    """The dotted path `ktlite.json` records for a predictor class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_predictor_class(path: Any, source: str) -> type[Predictor]:
    """Imports the `Predictor` subclass named by a dotted path under `ktlite.`.

    Args:
        path: e.g. `"ktlite.text.predictor.TextPredictor"`.
        source: where the path came from, for messages (e.g. the manifest's file name).

    Returns:
        The class.

    Raises:
        ValueError: if the path is not under `ktlite.`, cannot be imported, or does not
            name a task's `Predictor` subclass (one that reads its preprocessor back).

    Example:
        >>> import_predictor_class("ktlite.text.predictor.TextPredictor", "ktlite.json")
    """
    if not isinstance(path, str) or not _CLASS_PATH.match(path):
        raise ValueError(
            f"{source}: the predictor class must be a dotted path under 'ktlite.' (only ktlite's "
            "own classes are loaded)."
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):  # the path is the file's: not repeated
        raise ValueError(f"{source}: it names a predictor class this ktlite does not have "
                         "(saved by another version?).") from None
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise ValueError(f"{source}: it names something that is not a ktlite Predictor class.")
    if cls._load_preprocessor.__func__ is Predictor._load_preprocessor.__func__:
        raise ValueError(f"{source}: it names a base Predictor class, which no saved folder "
                         "holds (a task's predictor reads its preprocessor).")
    return cls


def library_versions() -> dict[str, str]:
    """The ktlite, Keras and TensorFlow versions, as `ktlite.json` records them.

    Returns:
        A dict with the version strings under `"ktlite"`, `"keras"` and `"tensorflow"`.

    Example:
        >>> sorted(library_versions())
        ['keras', 'ktlite', 'tensorflow']
    """
    import ktlite

    return {"ktlite": ktlite.__version__, "keras": keras.__version__, "tensorflow": tf.__version__}


def to_json(value: Any) -> Any:
    """Turns numpy scalars and arrays, bytes, tuples and dicts into plain JSON values.

    Args:
        value: anything a prediction or metadata holds.

    Returns:
        The same value made of lists, dicts, str, numbers, bools and None.

    Example:
        >>> to_json({"p": np.float32(0.5), "ids": np.arange(2)})
        {'p': 0.5, 'ids': [0, 1]}
    """
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return value


class Predictor:
    """Base class: a Keras model plus the preprocessor that feeds it, for any task.

    A task subclasses it and defines the hooks below; everything else (batching, the fused
    `tf.function`, saving, loading, export, quantization, JSON for the HTTP app) is here.

    Hooks a task defines:
        - `preprocessor_files`: the files `preproc.save(folder)` writes.
        - `_as_batch(inputs)`: check raw inputs; return them as a batch and whether a
          single input was given.
        - `_input_spec()`: the `tf.TensorSpec` (or a dict of them) of one batch of raw
          inputs.
        - `_transform(raw)`: graph-traceable raw batch -> model inputs.
        - `_check_model(model, preproc)`: raise ValueError if they do not belong together.
        - `_decode(outputs, **options)`: model outputs -> one result per input.
        - `_serving_outputs(outputs)`: the SavedModel's named outputs.
        - `_load_preprocessor(folder)` (classmethod): read the preprocessor back.
        - optionally `describe()`, `json_input_schema()`, `inputs_from_json(items)`,
          `json_response(outputs, **options)`, `_graph_outputs(raw)` (e.g. a decoding
          loop for generation, or a classifier's softmax over logits), `_serve(raw)` and
          `_restore(manifest)` (facts `ktlite.json` records beyond the constructor's).

    Use `get_predictor` or `load_predictor` rather than constructing one directly.

    Args:
        model: A built `keras.Model`.
        preproc: The preprocessor the model was trained with; it must have `save(folder)`
            and a `load(folder)` classmethod.
        batch_size: Inputs per forward pass in `predict`. Defaults to 32.

    Raises:
        TypeError: If `model` is not a `keras.Model` or `batch_size` not an int.
        ValueError: If `batch_size` is not positive or the model does not fit the
            preprocessor.

    Example:
        >>> predictor = ktlite.get_predictor(model, preproc)   # a task's subclass
        >>> predictor.predict(["a new text"])
        ['positive']
        >>> predictor.save("my_predictor")
    """

    preprocessor_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: keras.Model, preproc: Any, batch_size: int = 32) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        self.model = model
        self.preproc = preproc
        self.batch_size = batch_size
        self._check_model(model, preproc)
        self._saved_versions: dict[str, Any] | None = None
        self._graph_fn: Any = None
        self._forward: Any = None

    # ------------------------------------------------------------------ properties
    @property
    def batch_size(self) -> int:
        """Number of inputs per forward pass in `predict`."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = check_positive_int(value, "batch_size")

    @property
    def metadata(self) -> dict[str, Any]:
        """The predictor class, batch size, task facts (`describe()`) and library versions.

        For a predictor from `load_predictor`, `versions` names the libraries it was saved
        with.
        """
        return to_json({
            "predictor": class_path(type(self)),
            "batch_size": self.batch_size,
            **self.describe(),
            "versions": self._saved_versions or library_versions(),
        })

    def describe(self) -> dict[str, Any]:
        """Task facts for `metadata` and the HTTP app's `/metadata` (none by default).

        Returns:
            A dict of JSON-ready facts; the base class returns `{}`, a task adds its own
            (e.g. a classifier's `label_mode` and `classes`).

        Example:
            >>> predictor.describe()["classes"]
            ['neg', 'pos']
        """
        return {}

    # ------------------------------------------------------------------ task hooks
    def _as_batch(self, inputs: Any) -> tuple[Any, bool]:
        """Checks raw inputs; returns them as a batch and whether a single one was given."""
        raise NotImplementedError

    def _input_spec(self) -> tf.TensorSpec:
        """The spec of one batch of raw inputs, batch dimension `None`."""
        raise NotImplementedError

    def _transform(self, raw: tf.Tensor) -> Any:
        """Graph-traceable: a batch of raw inputs -> the model's inputs."""
        raise NotImplementedError

    def _check_model(self, model: keras.Model, preproc: Any) -> None:
        """Raises ValueError if the model does not fit the preprocessor."""
        raise NotImplementedError

    def _decode(self, outputs: np.ndarray, **options: Any) -> list[Any]:
        """Model outputs (one row per input) -> one result per input."""
        raise NotImplementedError

    def _serving_outputs(self, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """The SavedModel signature's named outputs, from what `_serve` passes."""
        raise NotImplementedError

    def _serve(self, raw: Any) -> dict[str, tf.Tensor]:
        """Graph-traceable: raw batch -> the `serving_default` signature's named outputs.

        `_serving_outputs` of the fused function's outputs; a task whose other signatures
        pass the model's own outputs to `_serving_outputs` (a classifier) passes those here
        too.
        """
        return self._serving_outputs(self._forward_fn()(raw))

    def _restore(self, manifest: dict[str, Any]) -> None:
        """Takes back what `_manifest_fields` recorded beyond the constructor's keywords,
        from a checked `ktlite.json` (or this predictor's own fields, for a copy around a
        rebuilt model); nothing here."""

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> Any:
        """Reads the preprocessor back from its files in `folder`."""
        raise NotImplementedError

    def example_inputs(self) -> Any:
        """A small valid batch of raw inputs, for warm-up and export checks.

        Returns:
            A batch of raw inputs as `predict` takes them (e.g. a list of texts).

        Raises:
            NotImplementedError: for a task that defines none (all but text): pass your
                own inputs where they are asked for (e.g. `samples=`).

        Example:
            >>> predictor.example_inputs()  # a TextPredictor
            ['a short probe text', 'another one']
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no built-in example inputs: pass a few of your own "
            "where they are asked for (e.g. `samples=`)."
        )

    def _to_tensor(self, items: Any) -> Any:
        """A batch from `_as_batch` -> the tensor (or dict of tensors) `_input_spec` describes."""
        spec = self._input_spec()
        if isinstance(spec, dict):
            return {key: tf.constant(items[key], dtype=s.dtype) for key, s in spec.items()}
        return tf.constant(items, dtype=spec.dtype)

    @staticmethod
    def _slice(items: Any, start: int, stop: int) -> Any:
        if isinstance(items, dict):
            return {key: value[start:stop] for key, value in items.items()}
        return items[start:stop]

    @staticmethod
    def _length(items: Any) -> int:
        return len(next(iter(items.values()))) if isinstance(items, dict) else len(items)

    def _model_outputs(self, raw: Any) -> Any:
        """Graph-traceable: raw batch -> the model's outputs, as float32."""
        outputs = self.model(self._transform(raw), training=False)
        return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)

    def _graph_outputs(self, raw: Any) -> Any:
        """Graph-traceable: raw batch -> what `predict_outputs` returns (the model's
        float32 outputs here)."""
        return self._model_outputs(raw)

    # ------------------------------------------------------------------ JSON hooks (apps)
    def json_input_schema(self) -> dict[str, Any]:
        """The JSON schema of one input item, for the HTTP app's OpenAPI description.

        Returns:
            A JSON schema dict; the base class returns `{}` (any value), a task narrows it.

        Example:
            >>> predictor.json_input_schema()  # a TextPredictor
            {'type': 'string'}
        """
        return {}

    def inputs_from_json(self, items: list[Any]) -> Any:
        """Turns the JSON `inputs` of a request into what `predict` takes.

        The default checks them as `predict` would (`_as_batch`), so the HTTP app refuses a
        bad input before it joins a batch.

        Args:
            items: the request's list of inputs.

        Returns:
            A batch for `predict_outputs`.

        Raises:
            TypeError, ValueError: naming the first bad item.

        Example:
            >>> batch = predictor.inputs_from_json(["great film", "dull plot"])
        """
        return self._as_batch(items)[0]

    def json_response(self, outputs: np.ndarray, **options: Any) -> dict[str, Any]:
        """Builds the HTTP answer for one request from its rows of model outputs.

        Args:
            outputs: `predict_outputs` rows for the request's inputs.
            **options: the request's options (e.g. `return_proba`).

        Returns:
            A JSON-ready dict with at least `predictions`.

        Example:
            >>> predictor.json_response(predictor.predict_outputs(["great film"]))
            {'predictions': ['pos']}
        """
        return {"predictions": to_json(self._decode(outputs, **options))}

    # ------------------------------------------------------------------ prediction
    def _forward_fn(self) -> Any:
        """The fused `tf.function` raw inputs -> outputs, built on first use.

        Its signature has batch dimension `None`, so it is traced once for every batch
        size. `predict_outputs` calls its concrete function (`self._forward`), which skips
        the argument matching a `tf.function` call does.
        """
        if self._graph_fn is None:
            self._graph_fn = tf.function(
                self._graph_outputs, input_signature=[self._input_spec()], autograph=False
            )
            self._forward = self._graph_fn.get_concrete_function()
        return self._graph_fn

    def predict_outputs(self, inputs: Any) -> np.ndarray:
        """Returns the fused function's outputs for raw inputs, one row per input, in batches.

        These are the model's outputs, except for a classifier: its class probabilities
        (see `ktlite.classifier.ClassifierPredictor`).

        Args:
            inputs: a batch of raw inputs as `predict` takes them (a list for text).

        Returns:
            The outputs as a numpy array with one row per input.

        Raises:
            TypeError, ValueError: for inputs the task does not accept.

        Example:
            >>> predictor.predict_outputs(["great film"]).shape
            (1, 2)
        """
        items, _ = self._as_batch(inputs)
        return self._run(items)

    def _passes(self, items: Any) -> list[tuple[int, int]]:
        """`(start, stop)` of each forward pass over `items`: `batch_size` inputs each."""
        n = self._length(items)
        return [(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]

    def _run(self, items: Any) -> Any:
        self._forward_fn()
        forward = self._forward
        chunks = [
            tf.nest.map_structure(
                lambda t: t.numpy(), forward(self._to_tensor(self._slice(items, start, stop)))
            )
            for start, stop in self._passes(items)
        ]
        if len(chunks) == 1:
            return chunks[0]
        return tf.nest.map_structure(lambda *parts: np.concatenate(parts, axis=0), *chunks)

    def predict(self, inputs: Any, **options: Any) -> Any:
        """Predicts for raw inputs.

        Args:
            inputs: One raw input or a batch of them (text: a `str` or a list of `str`).
            **options: task options (e.g. `return_proba` for classifiers).

        Returns:
            One result for a single input, else a list with one result per input.

        Raises:
            TypeError: If `inputs` is not of an accepted type, or an option is unknown or of
                the wrong type (a classifier's `return_proba="yes"`).
            ValueError: If `inputs` is empty or an option's value is invalid.

        Example:
            >>> predictor.predict("a new text")
            'positive'
        """
        items, single = self._as_batch(inputs)
        results = self._decode(self._run(items), **options)
        return results[0] if single else results

    # ------------------------------------------------------------------ saving
    def _settings(self) -> dict[str, Any]:
        """Constructor keywords beyond `batch_size` that a saved folder keeps (JSON numbers,
        strings, booleans or null), e.g. a translator's serving `beam_width`; none here."""
        return {}

    def _manifest_fields(self) -> dict[str, Any]:
        fields = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "predictor": class_path(type(self)),
            "batch_size": self.batch_size,
            "versions": library_versions(),
        }
        if self._settings():
            fields["settings"] = self._settings()
        return fields

    def save(self, path: str | os.PathLike) -> None:
        """Saves the predictor to a folder, atomically.

        The files are written to a hidden sibling folder that then replaces `path` (see
        `ktlite.saving.write_folder`): a crash or a failed save leaves the previous
        predictor at `path`, and concurrent saves to one path take turns. `path` may be
        new, an empty folder, or a predictor folder ktlite saved (holding only its own,
        unchanged files); any other existing folder or file is refused so no user data is
        deleted. The model is saved without its optimizer's state.

        Args:
            path: The folder to write (`ktlite.json`, `model.keras` and the
                preprocessor's files).

        Returns:
            None, once the folder is complete at `path` (`ktlite.load_predictor` reads it).

        Raises:
            TypeError: If `path` is not a str or `os.PathLike`.
            FileExistsError: If `path` is a file, or a non-empty folder that ktlite cannot
                prove it wrote.

        Example:
            >>> predictor.save("my_predictor")
            >>> ktlite.load_predictor("my_predictor").predict("a new text")
            'positive'
        """
        fields = self._manifest_fields()

        def write(folder: Path) -> None:
            saving.save_keras_model(self.model, folder / MODEL_FILE, include_optimizer=False)
            self.preproc.save(str(folder))
            expected = {MODEL_FILE, *self.preprocessor_files}
            written = {entry.name for entry in folder.iterdir()}
            if written != expected:
                raise RuntimeError(
                    f"The preprocessor wrote {sorted(written - {MODEL_FILE})}; expected "
                    f"{sorted(self.preprocessor_files)}."
                )
            saving.write_manifest(folder, fields)  # last: marks the folder complete

        saving.write_folder(saving.as_path(path, "path"), write, is_predictor_folder, "predictor")

    # ------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike, format: str = "saved_model", **options: Any) -> None:
        """Exports a SavedModel (or a TensorFlow Lite model) mapping raw inputs to outputs.

        The SavedModel's `serving_default` signature takes one batch of raw inputs (text: a
        `tf.string` tensor named `texts`) and returns the task's `_serving_outputs` (for
        classifiers `probabilities` and `labels`, or `predictions` for regression). It
        needs TensorFlow (and, for text, `import tensorflow_text` before loading) but not
        ktlite. `format="tflite"` delegates to `ktlite.compress.export_tflite` with
        `**options` (`quantize`, `representative_data`, `include_tokenizer`). Written
        atomically like `save`; ktlite marks its SavedModels
        (`assets.extra/ktlite_export.json`, a folder TensorFlow leaves to other tools) and
        replaces only a folder so marked that holds nothing but the SavedModel's files.

        Args:
            path: The folder to write.
            format: `"saved_model"` (default) or `"tflite"`.
            **options: TFLite options; none are accepted for a SavedModel.

        Returns:
            None, once the export is complete at `path`.

        Raises:
            TypeError: If `path` is not a str or `os.PathLike`, or `format` is not a str.
            ValueError: If `format` is unknown or options are given for a SavedModel.
            FileExistsError: If `path` is a file, or a non-empty folder that is not a
                ktlite SavedModel (exports of ktlite before 2026-12-04 carry no mark:
                delete them first).

        Example:
            >>> predictor.export("exported")
            >>> serve = tf.saved_model.load("exported").signatures["serving_default"]
        """
        folder = saving.as_path(path, "path")
        if not isinstance(format, str):
            raise TypeError(
                f"`format` must be 'saved_model' or 'tflite'. Received: format={format!r:.80}"
            )
        if format == "tflite":
            from ktlite.compress.tflite_export import export_tflite

            export_tflite(self, folder, **options)
            return
        if format not in ("saved_model", "savedmodel"):
            raise ValueError(
                f"`format` must be 'saved_model' or 'tflite'. Received: format={format!r}"
            )
        if options:
            # The subclass's own `export` may take more (a decoder's `max_length`).
            takes = [f"`{name}`" for name, parameter in inspect.signature(self.export)
                     .parameters.items() if parameter.kind is parameter.POSITIONAL_OR_KEYWORD]
            received = ", ".join(f"{key}={value!r}" for key, value in sorted(options.items()))
            raise ValueError(
                f"{', '.join(f'`{key}`' for key in sorted(options))} "
                f"{'is not an option' if len(options) == 1 else 'are not options'} of "
                f"{type(self).__name__}.export(format='saved_model'), which takes "
                f"{', '.join(takes)}. TFLite's options (`ktlite.compress.export_tflite`) go "
                "with format='tflite', for the predictors it exports; "
                "predictor.quantize(mode).export(path) writes a quantized SavedModel. "
                f"Received: {received}"
            )
        saving.write_folder(folder, self._write_saved_model, _is_saved_model, "SavedModel")

    def _trackables(self) -> list[Any]:
        """TF resources (e.g. tokenizer tables) the serving graph may capture."""
        objects = [self.preproc, *vars(self.preproc).values()]
        return [o for o in objects if compat.is_trackable(o)]

    def _extra_endpoints(self) -> dict[str, tuple[Any, list[Any]]]:
        """More SavedModel signatures beside `serving_default`: name -> (fn, input_signature).

        `fn` maps its inputs to the same named outputs as `_serving_outputs` (e.g. images as
        pixel arrays instead of encoded bytes). None by default.
        """
        return {}

    def _write_saved_model(self, folder: Path) -> None:
        self._forward_fn()  # traced here, not inside the endpoint's trace
        archive = keras.export.ExportArchive()
        archive.track(self.model)
        for resource in self._trackables():
            archive.track(resource)
        archive.add_endpoint("serving_default", self._serve, input_signature=[self._input_spec()])
        for name, (fn, signature) in self._extra_endpoints().items():
            archive.add_endpoint(name, fn, input_signature=signature)
        with _no_tensorflow_info():
            archive.write_out(str(folder), verbose=False)
        (folder / _EXPORT_MARK[0]).mkdir()
        saving.write_json(folder.joinpath(*_EXPORT_MARK),
                          {"format": _EXPORT_FORMAT, "predictor": class_path(type(self))})

    # ------------------------------------------------------------------ quantization
    def quantize(self, mode: str = "int8", exclude: str | list[str] | None = None) -> Predictor:
        """Returns a new predictor of the same class with a weight-quantized copy of the model.

        Delegates to `ktlite.compress.quantize_predictor`: Keras quantizes the `Dense`,
        `EinsumDense` and `Embedding` layers; this predictor is unchanged.

        Args:
            mode: `"int8"` (default) or `"int4"`.
            exclude: regex(es) searched (`re.search`) in the layer paths that
                `ktlite.compress.quantized_layers` reports (e.g. `"encoder_0/ffn_outer"`)
                or in bare layer names; matching layers stay float. Defaults to `None`.

        Returns:
            A new predictor that saves, loads and exports like any other.

        Raises:
            TypeError: If `mode` is not a str.
            ValueError: If `mode` is not `"int8"` or `"int4"`, or an `exclude` pattern
                matches no quantizable layer.

        Example:
            >>> small = predictor.quantize("int8")
            >>> small.save("predictor_int8")
        """
        from ktlite.compress.quantize import quantize_predictor

        return quantize_predictor(self, mode=mode, exclude=exclude)

    # ------------------------------------------------------------------ loading
    @classmethod
    def _from_folder(cls, folder: Path, batch_size: int,
                     settings: dict[str, Any] | None = None) -> Predictor:
        try:
            preproc = cls._load_preprocessor(folder)
        except (OSError, ValueError, TypeError, KeyError) as err:
            files = ", ".join(str(folder / name) for name in cls.preprocessor_files)
            # A file that failed validation: its reason, not a second "cannot load <path>".
            reason = f"{err.reason}." if isinstance(err, saving.InvalidFileError) else err
            raise ValueError(f"Could not load the preprocessor from {files}: {reason}") from err
        model = saving.load_keras_model(folder / MODEL_FILE)
        if settings:
            try:
                return cls(model, preproc, batch_size=batch_size, **settings)
            except (TypeError, ValueError):
                pass  # the settings, or a model that does not fit: built without them, below
        try:
            predictor = cls(model, preproc, batch_size=batch_size)
        except ValueError as err:
            raise ValueError(f"The predictor saved in {folder} is inconsistent: {err}") from err
        if settings:  # quote nothing from the file
            raise ValueError(
                f"{folder / saving.MANIFEST_FILE}: its `settings` are not valid for a "
                f"{cls.__name__}."
            )
        return predictor

    def __repr__(self) -> str:
        facts = " ".join(f"{k}={v!r}" for k, v in self.describe().items() if np.isscalar(v))
        return f"<{type(self).__name__} {facts} batch_size={self.batch_size}>".replace("  ", " ")


def get_predictor(model: keras.Model, preproc: Any, batch_size: int = 32) -> Predictor:
    """Wraps a trained model and its preprocessor in the predictor for their task.

    The preprocessor names its predictor class (`preproc.predictor_class`, a dotted path
    under `ktlite.`), so no task needs registering.

    A classifier's probabilities: a model compiled with a loss that takes logits
    (`from_logits=True`) gets a softmax (multiclass) or sigmoid (multilabel) applied once,
    inside the predictor, in `predict`, `predict_proba`, the HTTP app and the exported
    SavedModel alike, and `save` records it. A model that is not compiled cannot say: its
    outputs are read as probabilities, as they always were (set
    `predictor.model_outputs = "logits"` if they are logits; outputs outside [0, 1] raise
    `RuntimeError` at prediction, saying so). One sigmoid output over two classes gives the
    probabilities `[1 - p, p]`.

    Args:
        model: The trained `keras.Model` (e.g. `learner.model`).
        preproc: The preprocessor returned with the training data (e.g. by
            `ktlite.text.texts_from_array`).
        batch_size: Inputs per forward pass in `predict`. Defaults to 32.

    Returns:
        An instance of the task's `Predictor` subclass (a `TextPredictor` for text).

    Raises:
        TypeError: If `model` is not a `keras.Model`, `preproc` names no predictor class,
            or `batch_size` is not an int.
        ValueError: If `batch_size` is not positive or the model does not fit the
            preprocessor.

    Example:
        >>> predictor = ktlite.get_predictor(learner.model, preproc)
        >>> predictor.predict(["a new text"])
        ['positive']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    path = getattr(preproc, "predictor_class", None)
    if path is None:
        raise TypeError(
            "`preproc` must be a ktlite preprocessor with a `predictor_class` attribute. "
            f"Received: preproc={preproc!r}"
        )
    cls = import_predictor_class(path, f"{type(preproc).__name__}.predictor_class")
    return cls(model, preproc, batch_size=batch_size)


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Loads a predictor saved with `Predictor.save`.

    Nothing is unpickled: `ktlite.json` and the preprocessor's files are JSON and text,
    and the model is read with `keras.saving.load_model(..., safe_mode=True,
    compile=False)`. Before anything is parsed, every file is checked against the SHA-256
    in `ktlite.json`; links and files outside the folder are refused; a save that crashed
    half-way is finished or rolled back first. Folders of format version 1 still load.
    The model comes without its loss or optimizer: to train on later, save the learner's
    (`Learner.save_model`) and load that (`Learner.load_model`).

    Args:
        path: A folder written by `Predictor.save`.

    Returns:
        The predictor (e.g. a `TextPredictor`), with the saved `batch_size`.

    Raises:
        TypeError: If `path` is not a str or `os.PathLike`.
        FileNotFoundError: If the folder or one of its files is missing.
        ValueError: If a file is malformed, was changed after saving, is a link, is of an
            unknown format version, or the files do not belong together.

    Example:
        >>> predictor = ktlite.load_predictor("my_predictor")
        >>> predictor.predict("a new text")
        'positive'
    """
    folder = saving.as_path(path, "path")
    saving.finish_interrupted_save(folder, is_predictor_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No predictor folder at {str(folder)!r}.")
    with saving.folder_lock(folder, exclusive=False):
        cls, manifest = _read_manifest(folder)
        predictor = cls._from_folder(folder, manifest["batch_size"], manifest.get("settings"))
    predictor._restore(manifest)
    predictor._saved_versions = manifest.get("versions")
    return predictor


# ---------------------------------------------------------------------- folder checks
def _read_manifest(folder: Path) -> tuple[type[Predictor], dict[str, Any]]:
    """Reads and checks `ktlite.json`, verifies the files, returns the class to load."""
    file = folder / saving.MANIFEST_FILE
    if not os.path.lexists(file):
        raise FileNotFoundError(
            f"The folder {folder} has no {saving.MANIFEST_FILE}; it is not a ktlite predictor."
        )
    manifest = saving.read_json(file)
    if not isinstance(manifest, dict):
        raise ValueError(f"{file} must hold a JSON object.")
    if manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{file} is not a ktlite predictor file (format is not {FORMAT_NAME!r}).")
    version = manifest.get("format_version")
    if type(version) is not int or version not in (1, FORMAT_VERSION):
        raise ValueError(
            f"{file} has an unknown format_version; this ktlite reads versions 1 and "
            f"{FORMAT_VERSION}. Save the predictor again with a matching ktlite."
        )
    batch_size = manifest.get("batch_size")
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(f"{file}: `batch_size` must be a positive int.")
    versions = manifest.get("versions", {})
    if not isinstance(versions, dict) or len(versions) > 8 or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 32 and len(v) <= 64
        and (k + v).isprintable() for k, v in versions.items()
    ):
        raise ValueError(f"{file}: `versions` must map package names to short version strings.")
    settings = manifest.get("settings", {})
    if not isinstance(settings, dict) or not all(
        isinstance(k, str) and (v is None or type(v) in (int, float, str, bool))
        for k, v in settings.items()
    ):
        raise ValueError(f"{file}: `settings` must map names to JSON numbers, strings, "
                         "booleans or null.")
    if manifest.get("model_outputs", MODEL_OUTPUTS[0]) not in MODEL_OUTPUTS:
        raise ValueError(f"{file}: `model_outputs` must be one of {list(MODEL_OUTPUTS)}.")
    if version == 1:
        return _read_v1(folder, file, manifest), manifest
    cls = import_predictor_class(manifest.get("predictor"), str(file))
    saving.verify_files(folder, manifest.get("files"), {MODEL_FILE, *cls.preprocessor_files},
                        f"a {cls.__name__} folder")
    return cls, manifest


def _read_v1(folder: Path, file: Path, manifest: dict[str, Any]) -> type[Predictor]:
    """Format version 1: a `task` name instead of a predictor class, and `files` a list of
    names without hashes (only checked to be present and regular files)."""
    task = manifest.get("task")
    if task not in _V1_TASKS:
        raise ValueError(f"{file}: unknown task for a version-1 folder.")
    cls = import_predictor_class(_V1_TASKS[task], str(file))
    for name in (MODEL_FILE, *cls.preprocessor_files):
        if not os.path.lexists(folder / name):
            raise FileNotFoundError(f"The predictor folder {folder} is missing {name!r}.")
        saving.check_regular_file(folder / name)
    return cls


def is_predictor_folder(folder: Path) -> bool:
    """Whether ktlite provably wrote all of `folder`: a valid version-2 manifest whose
    class writes exactly the files present, each with its recorded SHA-256 (or a version-1
    folder holding only the files its manifest lists).

    Args:
        folder: the folder to check, a `pathlib.Path`.

    Returns:
        True if the folder holds exactly the files of a predictor ktlite saved, unchanged;
        False otherwise (also when the manifest is missing, unreadable or invalid).

    Example:
        >>> is_predictor_folder(Path("my_predictor"))
        True
    """
    try:
        cls, manifest = _read_manifest(folder)
    except (OSError, ValueError):
        return False
    present = {entry.name for entry in folder.iterdir()}
    if manifest["format_version"] == 1:
        return present == {saving.MANIFEST_FILE, MODEL_FILE, *cls.preprocessor_files}
    return present == {saving.MANIFEST_FILE, *manifest["files"]}


@contextlib.contextmanager
def _no_tensorflow_info() -> Iterator[None]:
    """Holds the `tensorflow` logger at WARNING or above.

    In notebooks TensorFlow's logger shows INFO records, and writing a SavedModel logs
    "Assets written to: <folder>": the hidden folder a save writes before its rename,
    which the user never sees and cannot use.
    """
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_saved_model(folder: Path) -> bool:
    """A folder `export` may replace: a SavedModel ktlite wrote (its mark present), holding
    nothing else: no links, only TensorFlow's variable files, plain files as assets."""
    entries = {p.name: p for p in folder.iterdir()}
    if "saved_model.pb" not in entries or not set(entries) <= _SAVED_MODEL_ENTRIES | {
        _EXPORT_MARK[0]
    } or any(p.is_symlink() for p in entries.values()):
        return False
    mark = folder.joinpath(*_EXPORT_MARK)
    if not mark.parent.is_dir() or [p.name for p in mark.parent.iterdir()] != [mark.name] \
            or mark.is_symlink():
        return False
    try:
        if saving.read_json(mark).get("format") != _EXPORT_FORMAT:
            return False
    except (OSError, ValueError, AttributeError):
        return False
    variables = entries.get("variables")
    if variables is not None and not all(
        _VARIABLE_FILE.match(p.name) and p.is_file() and not p.is_symlink()
        for p in variables.iterdir()
    ):
        return False
    assets = entries.get("assets")
    return assets is None or all(p.is_file() and not p.is_symlink() for p in assets.iterdir())


__all__ = [
    "FORMAT_VERSION",
    "MODEL_OUTPUTS",
    "Predictor",
    "get_predictor",
    "import_predictor_class",
    "is_predictor_folder",
    "library_versions",
    "load_predictor",
    "to_json",
]
