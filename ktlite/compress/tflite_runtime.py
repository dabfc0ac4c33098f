"""Running a ktlite TensorFlow Lite export: `load_tflite` and `TFLitePredictor`.

The folder `ktlite.compress.tflite_export.export_tflite` writes holds `model.tflite` and
`tflite.json` (format, signature, input/output, quantization, the predictor class and its
labels), plus the preprocessor's files when the preprocessing stays outside the `.tflite`
graph. Outputs are decoded through the same `ktlite.labels.LabelEncoder` as
`Predictor.predict`, so the two never disagree.

Since format version 2, `tflite.json` records a SHA-256 of every other file (`files`), as a
predictor folder's `ktlite.json` does: loading checks them before the interpreter or any
parser reads a byte, so a changed or damaged `model.tflite` is refused rather than run (or
crashing the interpreter), and an export replaces only an export whose files all match.
A version-1 export (written before the hashes) still loads, with a warning, and is
replaced or recovered as it was then: when it holds its own file names alone.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ktlite import saving
from ktlite._console import warn
from ktlite.arguments import check_positive_int
from ktlite.labels import LabelEncoder
from ktlite.predictor import import_predictor_class
from ktlite.text_inputs import check_texts

__all__ = ["TFLitePredictor", "load_tflite"]

MODEL_FILE = "model.tflite"
META_FILE = "tflite.json"
FORMAT_NAME = "ktlite-tflite"
FORMAT_VERSION = 2
# Version 1 recorded no hashes of the files: still loaded (with a warning).
READ_VERSIONS = (1, FORMAT_VERSION)
_KIND = "TFLite export"


def _make_interpreter(content: bytes, custom_ops: bool, num_threads: int | None) -> Any:
    import tensorflow as tf

    with warnings.catch_warnings():
        # tf.lite.Interpreter warns about its move to ai_edge_litert on every construction.
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated.*")
        if custom_ops:
            import tensorflow_text as tf_text

            # The public tf.lite.Interpreter takes no op registerers; this subclass does.
            from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

            return InterpreterWithCustomOps(
                model_content=content,
                custom_op_registerers=list(tf_text.tflite_registrar.SELECT_TFTEXT_OPS),
                num_threads=num_threads,
            )
        return tf.lite.Interpreter(model_content=content, num_threads=num_threads)


class TFLitePredictor:
    """Runs an `export_tflite` folder with the TFLite interpreter.

    Preprocesses with the saved preprocessor's `preprocess(inputs)` (TensorFlow) when the
    preprocessing is not inside the `.tflite` graph, and registers the tensorflow-text ops
    when it is. Build it with `load_tflite`. As `ktlite.load_predictor` does, it first
    finishes or rolls back an export that crashed half-way, then reads the files under the
    shared lock that exports wait for.

    Args:
        path: the export folder.
        num_threads: interpreter threads, a positive int; `None` lets TFLite choose (one
            thread).
        batch_size: texts per interpreter call. Defaults to 32.

    Raises:
        TypeError: if `batch_size` or `num_threads` is not an int (`"32"`, `True`).
        ValueError: if the folder is not a ktlite TFLite export of a known version, its
            files are invalid or do not match the SHA-256 that `tflite.json` records (the
            message names the file and quotes none of it), or `batch_size` / `num_threads`
            is below 1.

    Warns:
        UserWarning: for a version-1 export, which records no hashes to check.

    Example:
        >>> runner = TFLitePredictor("exported_tflite", num_threads=2)  # or load_tflite(...)
        >>> runner.predict(["a new text"])
    """

    def __init__(
        self, path: str | os.PathLike, num_threads: int | None = None, batch_size: int = 32
    ) -> None:
        batch_size = check_positive_int(batch_size, "batch_size")
        num_threads = check_positive_int(num_threads, "num_threads", allow_none=True)
        folder = saving.as_path(path, "path")
        # As `load_predictor` does: finish a swap that a crashed export left half done, then
        # read every file under the shared lock, so a concurrent export cannot pair this
        # folder's `tflite.json` with the next one's `model.tflite`.
        saving.finish_interrupted_save(folder, is_tflite_export)
        if not folder.is_dir():  # checked first: no lock file is created beside nothing
            raise ValueError(
                f"`path` is not a ktlite TFLite export (no folder there). Received: "
                f"path={str(folder)!r}"
            )
        with saving.folder_lock(folder, exclusive=False):
            meta, self.labels = _read_meta(folder)
            files = _verified_files(folder, meta)  # before anything parses the files
            if files is None:
                warn(
                    f"{str(folder)!r} is a TFLite export written by an older ktlite: its "
                    f"{META_FILE} records no SHA-256 of its files, so a changed or damaged "
                    f"{MODEL_FILE} cannot be detected before the interpreter reads it. Export "
                    "it again (to a new folder) to record them.",
                )
            preproc = None if meta["tokenizer_inside"] else self._load_preproc(folder, meta)
            content = saving.read_bytes(folder / MODEL_FILE)
        # The bytes the interpreter gets are checked themselves: a process outside ktlite's
        # lock may have replaced the file since `_verified_files` hashed it.
        if files is not None and hashlib.sha256(content).hexdigest() != files[MODEL_FILE]:
            raise _changed(folder / MODEL_FILE)
        self.meta = meta
        self.batch_size = batch_size
        self.tokenizer_inside = meta["tokenizer_inside"]
        self.label_mode = None if self.labels is None else self.labels.label_mode
        self.class_names = [] if self.labels is None else list(self.labels.class_names or [])
        self.preproc = preproc
        self.interpreter = _make_interpreter(content, self.tokenizer_inside, num_threads)
        signature = self.interpreter.get_signature_list().get(meta["signature"])
        if signature is None or (
            meta["input"]["name"] not in signature["inputs"]
            or meta["output"]["name"] not in signature["outputs"]
        ):
            raise saving.invalid_file(folder / META_FILE, "TFLite export", ValueError(
                f"its signature, input or output names none of {MODEL_FILE}'s"))
        self._runner = self.interpreter.get_signature_runner(meta["signature"])

    @staticmethod
    def _load_preproc(folder: Path, meta: dict[str, Any]) -> Any:
        if meta.get("predictor") is None:
            return None
        cls = import_predictor_class(meta["predictor"], str(folder / META_FILE))
        return cls._load_preprocessor(folder)

    def _as_batch(self, inputs: Any) -> tuple[Any, bool]:
        """Checks `inputs` as `Predictor.predict` would; returns the batch and whether one
        text was given."""
        if self.tokenizer_inside or self.preproc is not None:  # a predictor's export
            return check_texts(inputs, "inputs")
        return _check_arrays(inputs, "inputs", self.meta["input"]), False

    def _inputs(self, batch: Any) -> np.ndarray:
        if self.tokenizer_inside:
            return np.array(batch, dtype=object)
        if self.preproc is not None:
            return self.preproc.preprocess(batch)
        return batch

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """Returns the model outputs (probabilities) for texts, or for model inputs.

        Args:
            inputs: a str or a non-empty list of str for a predictor export; a non-empty
                array (or nested list) of model inputs, numbers, for a model export.

        Returns:
            A float32 array `(n, k)` (`(k,)` for a single string).

        Raises:
            TypeError: if `inputs` is None, bytes, or holds an item that is not a str (a
                predictor export) or not a number, or is ragged (a model export).
            ValueError: if `inputs` is empty, holds a missing value (a predictor export),
                has the wrong shape, or holds non-integral values for integer inputs (a
                model export).

        Example:
            >>> load_tflite("tflite_int8").predict_proba(["a new text"])
        """
        items, single = self._as_batch(inputs)
        name = self.meta["input"]["name"]
        out = self.meta["output"]["name"]
        step = self.batch_size
        chunks = [
            self._runner(**{name: self._inputs(items[i : i + step])})[out]
            for i in range(0, len(items), step)
        ]
        result = np.concatenate(chunks, axis=0)
        return result[0] if single else result

    def predict(self, inputs: Any) -> Any:
        """Returns labels, decoded like `Predictor.predict`: a class name per text
        (multiclass), `(label, probability)` pairs for every class (multilabel), or floats
        (regression); class ids for a bare model's export.

        Args:
            inputs: a str or a non-empty list of str; model inputs for a model's export.

        Returns:
            One prediction for a str, a list for a list.

        Raises:
            TypeError, ValueError: as `predict_proba` raises them.

        Example:
            >>> load_tflite("tflite_int8").predict("a new text")
            'noun.animal'
        """
        items, single = self._as_batch(inputs)
        probs = np.atleast_2d(self.predict_proba(items))
        if self.label_mode is None:
            preds: list[Any] = [int(i) for i in probs.argmax(axis=1)]
        else:
            preds = self.labels.decode(probs)
        return preds[0] if single else preds


def _check_arrays(inputs: Any, name: str, spec: dict[str, Any]) -> np.ndarray:
    """A model export's inputs as an array of its input dtype: numbers, non-empty, of the
    exported shape, and whole numbers where the model takes integers (token ids)."""
    if inputs is None or isinstance(inputs, (str, bytes, bytearray)):
        raise TypeError(
            f"`{name}` must be an array of model inputs (numbers): this export holds a bare "
            f"model, not a predictor, so it takes no texts. Received: {name}={inputs!r:.80}"
        )
    try:
        array = np.asarray(inputs)
    except (TypeError, ValueError) as err:  # ragged lists: a TypeError, as in ktlite.data
        raise TypeError(
            f"`{name}` must be an array of model inputs (numbers) ({err}). Received: {name} "
            f"of type {type(inputs).__name__}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must hold only numbers (this export holds a bare model and takes its "
            f"inputs, not texts). Received: {name} of dtype {array.dtype} "
            f"({np.ravel(array)[:1].tolist()!r:.80}...)"
        )
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(
            f"`{name}` must not be empty. Received: {name} with shape {array.shape}"
        )
    shape = spec.get("shape")
    if isinstance(shape, list) and (
        array.ndim != len(shape)
        or any(isinstance(d, int) and d != n for d, n in zip(shape[1:], array.shape[1:]))
    ):
        expected = tuple("batch" if d is None else d for d in [None, *shape[1:]])
        raise ValueError(
            f"`{name}` must have shape {expected} (a batch of model inputs). Received: "
            f"{name} with shape {array.shape}"
        )
    try:
        dtype = np.dtype(spec.get("dtype")) if isinstance(spec.get("dtype"), str) else None
    except TypeError:  # not a dtype name: as given
        dtype = None
    if dtype is None or dtype == array.dtype:
        return array
    if dtype.kind in "iu" and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            bad = array[~(np.isfinite(array) & (array == np.round(array)))].ravel()[0].item()
            raise ValueError(
                f"`{name}` must hold whole numbers: the model takes {dtype} inputs (e.g. "
                f"token ids), and {bad!r} would be truncated. Received: {name} of dtype "
                f"{array.dtype}"
            )
    return array.astype(dtype)


def _check_meta(meta: dict[str, Any]) -> LabelEncoder | None:
    """Checks the fields of `tflite.json` that running reads; returns its labels."""
    if not isinstance(meta.get("tokenizer_inside"), bool):
        raise ValueError("`tokenizer_inside` must be a bool.")
    if not isinstance(meta.get("signature"), str):
        raise ValueError("`signature` must be a string.")
    for key in ("input", "output"):
        if not (isinstance(meta.get(key), dict) and isinstance(meta[key].get("name"), str)):
            raise ValueError(f"`{key}` must be an object with a string `name`.")
    shape = meta["output"].get("shape")
    if not (isinstance(shape, list) and shape and type(shape[-1]) is int and shape[-1] >= 1):
        raise ValueError("`output.shape` must be a list ending in the number of outputs.")
    if meta.get("predictor") is not None and not isinstance(meta["predictor"], str):
        raise ValueError("`predictor` must be a string or null.")
    return None if meta.get("labels") is None else LabelEncoder.from_config(meta["labels"])


def is_tflite_export(folder: Path) -> bool:
    """Whether ktlite provably wrote all of `folder`: a TFLite export whose `tflite.json`
    lists exactly the other files present, each with its recorded SHA-256.

    An export replaces only such a folder, and of the folders a crashed export left, the
    one that passes is kept: loading and exporting recover alike. A version-1 export, which
    records no hashes, passes when it holds its own file names alone (as then).

    Args:
        folder: the folder to look at.

    Returns:
        True when its `tflite.json` is valid, lists every other file, and each file is
        unchanged; False otherwise.

    Example:
        >>> is_tflite_export(Path("my_model_tflite"))
        True
    """
    try:
        meta, _ = _read_meta(folder)
        files = _verified_files(folder, meta)
    except (OSError, ValueError):
        return False
    present = {entry.name for entry in folder.iterdir()}
    if files is None:
        # Version 1 recorded no hashes: its own file names alone, as it was judged then,
        # so an export made before keeps being replaced and recovered after a crash.
        return META_FILE in present and present <= {META_FILE, *_expected_files(meta)}
    return present == {META_FILE, *files}


def _expected_files(meta: dict[str, Any]) -> set[str]:
    """The files besides `tflite.json` that an export with this (checked) `meta` holds."""
    if meta["tokenizer_inside"] or meta.get("predictor") is None:
        return {MODEL_FILE}
    cls = import_predictor_class(meta["predictor"], META_FILE)
    return {MODEL_FILE, *cls.preprocessor_files}


def _changed(file: Path) -> saving.InvalidFileError:
    return saving.invalid_file(file, _KIND, ValueError(
        f"the file does not match the SHA-256 recorded in {META_FILE}: it was changed or "
        "replaced after the export. Export again"))


def _verified_files(folder: Path, meta: dict[str, Any]) -> dict[str, str] | None:
    """Checks every file of the export against the SHA-256 that `tflite.json` records,
    reading nothing but to hash it; returns the `files` mapping (`None` for version 1).

    Only the export's own file names are accepted in `files`, so a message names a file
    ktlite knows and quotes nothing of `tflite.json`.
    """
    if meta["format_version"] == 1:
        return None
    files = meta.get("files")
    try:
        expected = _expected_files(meta)
    except ValueError as err:
        raise saving.invalid_file(folder / META_FILE, _KIND, err) from None
    if not isinstance(files, dict) or set(files) != expected:
        raise saving.invalid_file(folder / META_FILE, _KIND, ValueError(
            f"`files` must map each of {sorted(expected)} to its SHA-256"))
    for name in sorted(files):
        digest = files[name]
        if not (isinstance(digest, str) and len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest)):
            raise saving.invalid_file(folder / META_FILE, _KIND, ValueError(
                f"`files` must give {name!r} a SHA-256 of 64 lowercase hex digits"))
        try:
            actual = saving.sha256_file(folder / name)
        except FileNotFoundError:
            raise saving.invalid_file(folder / name, _KIND, ValueError(
                "the file is missing")) from None
        except ValueError:
            raise saving.invalid_file(folder / name, _KIND, ValueError(
                "the file is a symbolic link or not a regular file")) from None
        if actual != digest:
            raise _changed(folder / name)
    return files


def _read_meta(folder: Path) -> tuple[dict[str, Any], LabelEncoder | None]:
    """Reads and checks `tflite.json`; returns it and its labels."""
    try:
        meta = saving.read_json(folder / META_FILE)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"`path` is not a ktlite TFLite export ({err}). Received: path={str(folder)!r}"
        ) from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT_NAME
        or type(meta.get("format_version")) is not int  # JSON true is not version 1
        or meta["format_version"] not in READ_VERSIONS
    ):
        raise ValueError(
            f"`path` holds an unknown TFLite export format. Expected {FORMAT_NAME!r} version "
            f"{' or '.join(map(str, READ_VERSIONS))}. Received: {str(folder / META_FILE)!r}"
        )
    try:
        return meta, _check_meta(meta)
    except (TypeError, ValueError) as err:
        raise saving.invalid_file(folder / META_FILE, "TFLite export", err) from None


def load_tflite(
    path: str | os.PathLike, num_threads: int | None = None, batch_size: int = 32
) -> TFLitePredictor:
    """Loads an `export_tflite` folder for prediction in Python.

    An export that crashed half-way is finished or rolled back first, and the files are read
    under a shared lock, so a concurrent export is never read half old, half new.

    Args:
        path: the export folder.
        num_threads: interpreter threads, a positive int; `None` (default) lets TFLite
            choose.
        batch_size: texts per interpreter call. Defaults to 32.

    Returns:
        A `TFLitePredictor`.

    Raises:
        TypeError: if `batch_size` or `num_threads` is not an int (`"32"`, `True`).
        ValueError: if the folder is not a ktlite TFLite export, one of its files does
            not match the SHA-256 its `tflite.json` records (checked before the interpreter
            or any parser reads it; the message names the file), or `batch_size` /
            `num_threads` is below 1.

    Warns:
        UserWarning: for an export written before `tflite.json` recorded the hashes
            (format version 1): it loads unchecked; export it again to record them.

    Example:
        >>> runner = load_tflite("exported_tflite")
        >>> runner.predict(["a new text"])
    """
    return TFLitePredictor(path, num_threads=num_threads, batch_size=batch_size)
