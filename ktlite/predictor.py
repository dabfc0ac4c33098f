"""Predictors: a trained model plus its preprocessor, saved and loaded as one folder.

A predictor turns raw inputs (for text: Python strings) into labels in one call. The
preprocessing and the forward pass run together in a single `tf.function`, traced once,
so a call costs little more than the model itself.

The saved folder (see `Predictor.save`) holds:

```
my_predictor/
  ktlite.json        format name and version, task, label mode, class names, versions
  model.keras        the Keras model, loaded back with `safe_mode=True`
  ...                the preprocessor's own files (text: preprocessor.json, vocab.txt)
```

Tasks plug in through a registry from `preproc.task` to a `Predictor` subclass, so this
module never imports a task package (such as `ktlite.text`) until a predictor of that task
is asked for.
"""

from __future__ import annotations

import importlib
import json
import numbers
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from ktlite import compat

FORMAT_NAME = "ktlite-predictor"
FORMAT_VERSION = 1
METADATA_FILE = "ktlite.json"
MODEL_FILE = "model.keras"
LABEL_MODES = ("multiclass", "multilabel", "regression")

# Task name -> Predictor subclass, or "module:ClassName" imported on first use.
_PREDICTORS: dict[str, type[Predictor] | str] = {
    "text": "ktlite.text.predictor:TextPredictor",
}

_SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb"})


def register_predictor(task: str, predictor_cls: type[Predictor] | str) -> None:
    """Registers the `Predictor` subclass that serves a task.

    Args:
        task: The task name, matched against `preproc.task` and the `task` field of a
            saved folder's `ktlite.json`.
        predictor_cls: A `Predictor` subclass, or `"package.module:ClassName"` to import
            it only when first needed.

    Raises:
        ValueError: If `task` is not a non-empty string.
        TypeError: If `predictor_cls` is neither a `Predictor` subclass nor a string.

    Example:
        >>> register_predictor("text", "ktlite.text.predictor:TextPredictor")
        >>> get_predictor(model, preproc)  # preproc.task == "text"
        <TextPredictor ...>
    """
    if not isinstance(task, str) or not task:
        raise ValueError(f"`task` must be a non-empty string. Received: task={task!r}")
    if isinstance(predictor_cls, str):
        if ":" not in predictor_cls:
            raise ValueError(
                "`predictor_cls` given as a string must look like 'package.module:ClassName'. "
                f"Received: predictor_cls={predictor_cls!r}"
            )
    elif not (isinstance(predictor_cls, type) and issubclass(predictor_cls, Predictor)):
        raise TypeError(
            "`predictor_cls` must be a Predictor subclass or a 'module:ClassName' string. "
            f"Received: predictor_cls={predictor_cls!r}"
        )
    _PREDICTORS[task] = predictor_cls


def _predictor_class(task: Any, source: str) -> type[Predictor]:
    if not isinstance(task, str) or task not in _PREDICTORS:
        raise ValueError(
            f"No predictor is registered for task {task!r} ({source}). "
            f"Known tasks: {sorted(_PREDICTORS)}."
        )
    entry = _PREDICTORS[task]
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), class_name)
        _PREDICTORS[task] = entry
    return entry


def _check_batch_size(batch_size: Any) -> int:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    return int(batch_size)


def _regression_outputs(preproc: Any) -> int:
    num_outputs = getattr(preproc, "num_outputs", None)
    return 1 if num_outputs is None else int(num_outputs)


def _versions() -> dict[str, str]:
    import ktlite

    return {"ktlite": ktlite.__version__, "keras": keras.__version__, "tensorflow": tf.__version__}


class Predictor:
    """Base class: a Keras model plus the preprocessor that feeds it.

    Subclasses serve one task (`task`) and define how raw inputs are checked
    (`_as_batch`), how a batch of raw inputs becomes model inputs inside the graph
    (`_transform`), the raw input's `tf.TensorSpec` (`_input_spec`) and how the
    preprocessor is saved and read back (`_load_preprocessor`, `preprocessor_files`).
    Everything else (batching, the fused `tf.function`, decoding, saving, loading and
    SavedModel export) lives here.

    Use `get_predictor` or `load_predictor` rather than constructing one directly.

    Args:
        model: A built `keras.Model` with one output of shape `(batch, k)`.
        preproc: The preprocessor the model was trained with. It needs `task`,
            `label_mode`, `class_names`, `decode_predictions`, `save(folder)` and a
            `load(folder)` classmethod.
        batch_size: Inputs per forward pass in `predict`. Defaults to 32.

    Raises:
        TypeError: If `model` is not a `keras.Model`.
        ValueError: If `batch_size` is invalid, or the model does not fit the
            preprocessor (output count vs classes, input shape, vocabulary).

    Example:
        >>> predictor = ktlite.get_predictor(model, preproc)   # a Predictor subclass
        >>> predictor.predict(["a new text"])
        ['positive']
        >>> predictor.save("my_predictor")

    A new task subclasses it and registers itself:

        >>> class TabularPredictor(Predictor):
        ...     task = "tabular"
        ...     preprocessor_files = ("tabular.json",)
        ...     # _as_batch, _input_spec, _transform, _load_preprocessor
        >>> register_predictor("tabular", TabularPredictor)
    """

    task: ClassVar[str] = ""
    preprocessor_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: keras.Model, preproc: Any, batch_size: int = 32) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        label_mode = getattr(preproc, "label_mode", None)
        if label_mode not in LABEL_MODES:
            raise ValueError(
                f"`preproc.label_mode` must be one of {LABEL_MODES}. "
                f"Received: preproc.label_mode={label_mode!r}"
            )
        self.model = model
        self.preproc = preproc
        self.batch_size = batch_size
        self._check_model(model, preproc)
        self._saved_metadata: dict[str, Any] | None = None
        self._graph_fn: Any = None
        self._forward: Callable[[tf.Tensor], tf.Tensor] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def batch_size(self) -> int:
        """Number of inputs per forward pass in `predict` and `predict_proba`."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = _check_batch_size(value)

    @property
    def label_mode(self) -> str:
        """`"multiclass"`, `"multilabel"` or `"regression"`, from the preprocessor."""
        return self.preproc.label_mode

    @property
    def metadata(self) -> dict[str, Any]:
        """What `save` writes to `ktlite.json`: task, label mode, classes, versions, ...

        For a predictor from `load_predictor`, the file as it was read (so `versions` names
        the libraries it was saved with).
        """
        saved = self._saved_metadata
        return json.loads(json.dumps(saved if saved is not None else self._metadata()))

    def get_classes(self) -> list[str]:
        """Returns the class names in the order of the model's outputs.

        Returns:
            A list of class names; an empty list for a regression model.

        Example:
            >>> predictor.get_classes()
            ['negative', 'positive']
        """
        if self.label_mode == "regression":
            return []
        return [str(name) for name in self.preproc.class_names]

    # ------------------------------------------------------------------ task hooks
    def _as_batch(self, inputs: Any) -> tuple[list[Any], bool]:
        """Checks raw inputs; returns them as a list and whether a single one was given."""
        raise NotImplementedError

    def _input_spec(self) -> tf.TensorSpec:
        """The spec of one batch of raw inputs, batch dimension `None`."""
        raise NotImplementedError

    def _transform(self, raw: tf.Tensor) -> Any:
        """Graph-traceable: a batch of raw inputs -> the model's inputs."""
        raise NotImplementedError

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> Any:
        """Reads the preprocessor back from its files in `folder`."""
        raise NotImplementedError

    def _check_model_inputs(self, model: keras.Model, preproc: Any) -> None:
        """Raises ValueError if the model's inputs do not fit the preprocessor."""

    def _extra_metadata(self) -> dict[str, Any]:
        """Task fields written to `ktlite.json` and checked again by `_check_metadata`."""
        return {}

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        """Raises ValueError if the loaded preprocessor disagrees with `ktlite.json`."""

    # ------------------------------------------------------------------ checks
    def _check_model(self, model: keras.Model, preproc: Any) -> None:
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
        if preproc.label_mode == "regression":
            expected = _regression_outputs(preproc)
            what = f"{expected} regression target(s)"
        else:
            class_names = preproc.class_names
            if not class_names:
                raise ValueError(
                    f"`preproc.class_names` must list the classes for label_mode="
                    f"{preproc.label_mode!r}. Received: {class_names!r}"
                )
            expected, what = len(class_names), f"{len(class_names)} classes"
        if output_shape[-1] != expected:
            raise ValueError(
                f"The model has {output_shape[-1]} outputs but the preprocessor has {what}: "
                "the model and preprocessor do not belong together."
            )
        self._check_model_inputs(model, preproc)

    # ------------------------------------------------------------------ prediction
    def _forward_fn(self) -> Any:
        """The fused `tf.function` raw inputs -> float32 outputs, built on first use.

        Its signature has batch dimension `None`, so it is traced once for every batch
        size. `predict` calls its concrete function (`self._forward`), which skips the
        argument matching a `tf.function` call does.
        """
        if self._graph_fn is None:
            model, transform = self.model, self._transform

            def forward(raw: tf.Tensor) -> tf.Tensor:
                outputs = model(transform(raw), training=False)
                return tf.cast(outputs, tf.float32)

            self._graph_fn = tf.function(forward, input_signature=[self._input_spec()])
            self._forward = self._graph_fn.get_concrete_function()
        return self._graph_fn

    def _to_tensor(self, items: list[Any]) -> tf.Tensor:
        return tf.constant(items, dtype=self._input_spec().dtype)

    def _model_outputs(self, items: list[Any]) -> np.ndarray:
        self._forward_fn()
        forward = self._forward
        step = self.batch_size
        chunks = [
            forward(self._to_tensor(items[start : start + step])).numpy()
            for start in range(0, len(items), step)
        ]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """Returns class probabilities.

        Args:
            inputs: One raw input or a list of them (text: a `str` or a list of `str`).

        Returns:
            A float32 array of shape `(n, num_classes)` for a list, `(num_classes,)` for a
            single input. Columns follow `get_classes()`.

        Raises:
            TypeError: If `inputs` is not of an accepted type.
            ValueError: If `inputs` is empty, or the model is a regression model (use
                `predict`).

        Example:
            >>> predictor.predict_proba(["great film", "dull film"]).shape
            (2, 2)
        """
        if self.label_mode == "regression":
            raise ValueError(
                "`predict_proba` needs a classifier; this predictor does regression. "
                "Use `predict(...)`, which returns floats."
            )
        items, single = self._as_batch(inputs)
        probs = self._model_outputs(items)
        return probs[0] if single else probs

    def predict(self, inputs: Any, return_proba: bool = False) -> Any:
        """Predicts labels (or values) for raw inputs.

        Args:
            inputs: One raw input or a list of them (text: a `str` or a list of `str`).
            return_proba: If True, return `predict_proba(inputs)` instead of labels.
                Defaults to False.

        Returns:
            For a single input: a label (multiclass), a list of `(label, probability)`
            pairs (multilabel) or a float (regression). For a list: a list of those.

        Raises:
            TypeError: If `inputs` is not of an accepted type.
            ValueError: If `inputs` is empty, or `return_proba=True` for regression.

        Example:
            >>> predictor.predict("great film")
            'positive'
            >>> predictor.predict(["great film", "dull film"])
            ['positive', 'negative']
        """
        if not isinstance(return_proba, bool):
            raise TypeError(
                f"`return_proba` must be True or False. Received: return_proba={return_proba!r}"
            )
        if return_proba:
            return self.predict_proba(inputs)
        items, single = self._as_batch(inputs)
        outputs = self._model_outputs(items)
        decoded = self._decode(outputs)
        return decoded[0] if single else decoded

    def _decode(self, outputs: np.ndarray) -> list[Any]:
        return list(self.preproc.decode_predictions(outputs))

    # ------------------------------------------------------------------ saving
    def _metadata(self) -> dict[str, Any]:
        files = [MODEL_FILE, *self.preprocessor_files]
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "label_mode": self.label_mode,
            "class_names": None if self.label_mode == "regression" else self.get_classes(),
            "batch_size": self.batch_size,
            "files": files,
            **self._extra_metadata(),
            "versions": _versions(),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Saves the predictor to a folder, atomically.

        The files are written to a temporary sibling folder which then replaces `path`,
        so an interrupted or failed save leaves an existing predictor at `path` intact.
        `path` may be new, an empty folder, or a predictor folder saved earlier; any
        other existing folder or file is refused so that no user data is deleted.

        Args:
            path: The folder to write (`ktlite.json`, `model.keras` and the
                preprocessor's files).

        Raises:
            FileExistsError: If `path` is a file, or a non-empty folder that is not a
                ktlite predictor.

        Example:
            >>> predictor.save("my_predictor")
            >>> ktlite.load_predictor("my_predictor").predict("a new text")
            'positive'
        """
        metadata = self._metadata()

        def write(folder: Path) -> None:
            _save_model_without_optimizer(self.model, folder / MODEL_FILE)
            self.preproc.save(str(folder))
            missing = [name for name in metadata["files"] if not (folder / name).is_file()]
            if missing:
                raise RuntimeError(
                    f"The preprocessor did not write {missing}; expected files "
                    f"{list(self.preprocessor_files)}."
                )
            # Written last: a folder without it is never mistaken for a predictor.
            (folder / METADATA_FILE).write_text(
                json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )

        _write_folder_atomically(Path(path), write, _is_predictor_folder, "predictor")

    # ------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike, format: str = "saved_model") -> None:
        """Exports a TensorFlow SavedModel that maps raw inputs to predictions.

        The `serving_default` signature takes one 1-D tensor of raw inputs (text: a
        `tf.string` tensor named `texts`) and returns:

        - multiclass: `probabilities` (float32, `(n, k)`) and `labels` (string, `(n,)`,
          the most probable class);
        - multilabel: `probabilities` (float32, `(n, k)`) and `labels` (string,
          `(n, k)`, the class name of each probability column);
        - regression: `predictions` (float32, `(n,)`).

        The SavedModel needs TensorFlow (and, for text, `import tensorflow_text` before
        loading) but not ktlite. It is written atomically like `save`.

        Args:
            path: The folder to write.
            format: Only `"saved_model"` for now. Defaults to `"saved_model"`.

        Raises:
            ValueError: If `format` is not supported.
            FileExistsError: If `path` is a file or a non-empty folder that is not a
                SavedModel.

        Example:
            >>> predictor.export("exported")
            >>> serve = tf.saved_model.load("exported").signatures["serving_default"]
            >>> serve(texts=tf.constant(["a new text"]))["labels"]
        """
        if format != "saved_model":
            raise ValueError(
                f"`format` must be 'saved_model'. Received: format={format!r}"
            )
        _write_folder_atomically(Path(path), self._write_saved_model, _is_saved_model, "SavedModel")

    def _serving_outputs(self, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        if self.label_mode == "regression":
            return {"predictions": outputs[:, 0] if outputs.shape[-1] == 1 else outputs}
        names = tf.constant(self.get_classes(), dtype=tf.string)
        if self.label_mode == "multiclass":
            labels = tf.gather(names, tf.argmax(outputs, axis=1))
        else:
            labels = tf.broadcast_to(names, tf.shape(outputs))
        return {"probabilities": outputs, "labels": labels}

    def _trackables(self) -> list[Any]:
        """TF resources (e.g. tokenizer tables) the serving graph may capture."""
        objects = [self.preproc, *vars(self.preproc).values()]
        return [o for o in objects if compat.is_trackable(o)]

    def _write_saved_model(self, folder: Path) -> None:
        forward = self._forward_fn()

        def serve(raw: tf.Tensor) -> dict[str, tf.Tensor]:
            return self._serving_outputs(forward(raw))

        archive = keras.export.ExportArchive()
        archive.track(self.model)
        for resource in self._trackables():
            archive.track(resource)
        archive.add_endpoint("serving_default", serve, input_signature=[self._input_spec()])
        archive.write_out(str(folder), verbose=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def _from_folder(cls, folder: Path, metadata: dict[str, Any]) -> Predictor:
        try:
            preproc = cls._load_preprocessor(folder)
        except (OSError, ValueError, TypeError, KeyError) as err:
            files = ", ".join(str(folder / name) for name in cls.preprocessor_files)
            raise ValueError(f"Could not load the preprocessor from {files}: {err}") from err
        actual_names = getattr(preproc, "class_names", None)
        if metadata["label_mode"] == "regression" or actual_names is None:
            pairs = {"label_mode": getattr(preproc, "label_mode", None)}
        else:
            pairs = {"label_mode": preproc.label_mode,
                     "class_names": [str(name) for name in actual_names]}
        for field, actual in pairs.items():
            if metadata[field] != actual:
                raise ValueError(
                    f"{folder / METADATA_FILE} says {field}={metadata[field]!r} but the "
                    f"preprocessor files say {actual!r}; the folder was modified or mixed up."
                )
        model = _load_model(folder / MODEL_FILE)
        try:
            predictor = cls(model, preproc, batch_size=metadata["batch_size"])
            predictor._check_metadata(metadata)
        except ValueError as err:
            raise ValueError(f"The predictor saved in {folder} is inconsistent: {err}") from err
        predictor._saved_metadata = metadata
        return predictor

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} task={self.task!r} label_mode={self.label_mode!r} "
            f"classes={len(self.get_classes())} batch_size={self.batch_size}>"
        )


def get_predictor(model: keras.Model, preproc: Any, batch_size: int = 32) -> Predictor:
    """Wraps a trained model and its preprocessor in the predictor for their task.

    Args:
        model: The trained `keras.Model` (e.g. `learner.model`).
        preproc: The preprocessor returned with the training data (e.g. by
            `ktlite.text.texts_from_array`); its `task` picks the predictor class.
        batch_size: Inputs per forward pass in `predict`. Defaults to 32.

    Returns:
        A `Predictor` subclass instance (a `TextPredictor` for text).

    Raises:
        TypeError: If `model` is not a `keras.Model` or `preproc` has no `task`.
        ValueError: If no predictor is registered for `preproc.task`, `batch_size` is
            invalid, or the model does not fit the preprocessor.

    Example:
        >>> predictor = ktlite.get_predictor(learner.model, preproc)
        >>> predictor.predict(["a new text"])
        ['positive']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    task = getattr(preproc, "task", None)
    if task is None:
        raise TypeError(
            "`preproc` must be a ktlite preprocessor with a `task` attribute. "
            f"Received: preproc={preproc!r}"
        )
    cls = _predictor_class(task, "from preproc.task")
    return cls(model, preproc, batch_size=batch_size)


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Loads a predictor saved with `Predictor.save`.

    Nothing is unpickled: `ktlite.json` and the preprocessor's files are JSON and text,
    and the model is read with `keras.saving.load_model(..., safe_mode=True,
    compile=False)`. Every file is checked, and the folder is refused with a message
    naming the offending file if one is missing, has an unknown format version, or
    does not agree with the others.

    Args:
        path: A folder written by `Predictor.save`.

    Returns:
        The predictor (e.g. a `TextPredictor`), with the saved `batch_size`.

    Raises:
        FileNotFoundError: If the folder or one of its files is missing.
        ValueError: If a file is malformed, of an unknown format version, or
            inconsistent with the others.

    Example:
        >>> predictor = ktlite.load_predictor("my_predictor")
        >>> predictor.predict("a new text")
        'positive'
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"No predictor folder at {str(folder)!r}.")
    metadata = _read_metadata(folder)
    cls = _predictor_class(metadata["task"], f"from {folder / METADATA_FILE}")
    expected = [MODEL_FILE, *cls.preprocessor_files]
    for name in dict.fromkeys(expected + metadata["files"]):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"The predictor folder {folder} is missing {name!r}.")
    return cls._from_folder(folder, metadata)


# ---------------------------------------------------------------------- file helpers
def _read_metadata(folder: Path) -> dict[str, Any]:
    file = folder / METADATA_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"The folder {folder} has no {METADATA_FILE}; it is not a ktlite predictor."
        )
    try:
        metadata = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{file} is not valid JSON: {err}") from err
    if not isinstance(metadata, dict):
        raise ValueError(f"{file} must hold a JSON object. Received: {type(metadata).__name__}")
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{file} is not a ktlite predictor file: format={metadata.get('format')!r}, "
            f"expected {FORMAT_NAME!r}."
        )
    version = metadata.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ValueError(
            f"{file} has format_version={version!r}; this ktlite reads version "
            f"{FORMAT_VERSION}. Save the predictor again with a matching ktlite."
        )

    def bad(field: str, expected: str) -> ValueError:
        return ValueError(
            f"{file}: `{field}` must be {expected}. Received: {field}={metadata.get(field)!r}"
        )

    if not isinstance(metadata.get("task"), str):
        raise bad("task", "a string")
    if metadata.get("label_mode") not in LABEL_MODES:
        raise bad("label_mode", f"one of {LABEL_MODES}")
    names = metadata.get("class_names")
    if metadata["label_mode"] == "regression":
        if names is not None:
            raise bad("class_names", "null for regression")
    elif not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise bad("class_names", "a non-empty list of strings")
    elif len(set(names)) != len(names):
        raise bad("class_names", "a list without duplicates")
    batch_size = metadata.get("batch_size")
    if type(batch_size) is not int or batch_size < 1:
        raise bad("batch_size", "a positive int")
    files = metadata.get("files")
    if not (
        isinstance(files, list)
        and all(isinstance(f, str) and f and Path(f).name == f for f in files)
        and MODEL_FILE in files
    ):
        raise bad("files", f"a list of plain file names including {MODEL_FILE!r}")
    return metadata


def _load_model(file: Path) -> keras.Model:
    try:
        model = keras.saving.load_model(str(file), compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged archive.
        raise ValueError(f"Could not load the Keras model {file}: {err}") from err
    if not isinstance(model, keras.Model):
        raise ValueError(f"{file} does not hold a keras.Model. Received: {type(model).__name__}")
    return model


def _is_predictor_folder(folder: Path) -> bool:
    """A folder `save` may replace: a valid ktlite.json and only the files it lists."""
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        listed = set(metadata["files"]) | {METADATA_FILE}
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return metadata.get("format") == FORMAT_NAME and {p.name for p in folder.iterdir()} <= listed


def _is_saved_model(folder: Path) -> bool:
    """A folder `export` may replace: nothing but a SavedModel's entries."""
    names = {p.name for p in folder.iterdir()}
    return "saved_model.pb" in names and names <= _SAVED_MODEL_ENTRIES


def _save_model_without_optimizer(model: keras.Model, path: Path) -> None:
    """Writes `model` in the `.keras` format without its optimizer's state.

    A predictor only predicts (it is loaded with `compile=False`), so the optimizer's
    variables (for Adam, twice the size of the weights) would be dead weight in the folder.
    Keras saves whatever optimizer the model holds, so it is detached only while writing and
    put back, the same object, in `finally`.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        keras.saving.save_model(model, str(path))
        return
    model.optimizer = None
    try:
        keras.saving.save_model(model, str(path))
    finally:
        model.optimizer = optimizer


def _write_folder_atomically(
    path: Path,
    write: Callable[[Path], None],
    replaceable: Callable[[Path], bool],
    what: str,
) -> None:
    """Calls `write(tmp)` on a fresh sibling folder, then moves it to `path`.

    An existing `path` is first renamed aside and deleted only once the new folder is in
    place, and put back if that move fails; the window in which `path` is absent is two
    renames long.
    """
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise FileExistsError(f"Cannot save a {what} to {str(path)!r}: it is not a folder.")
        if any(path.iterdir()) and not replaceable(path):
            raise FileExistsError(
                f"Cannot save a {what} to {str(path)!r}: the folder is not empty and does not "
                f"hold a ktlite {what}. Choose a new or empty folder, or remove it first."
            )
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = parent / f".{path.name}.tmp-{token}"
    tmp.mkdir()
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not path.exists():
        try:
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return
    old = parent / f".{path.name}.old-{token}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "Predictor",
    "get_predictor",
    "load_predictor",
    "register_predictor",
    "FORMAT_VERSION",
]
