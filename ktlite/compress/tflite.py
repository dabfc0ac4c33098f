"""TensorFlow Lite export of a Keras model or a predictor, with post-training quantization.

What runs where (measured with TF 2.21 and tensorflow-text 2.21 on Linux):

- The ktlite text tokenizer (tensorflow-text `FastBertTokenizer`: `FastBertNormalize`,
  `FastWordpieceTokenizeWithOffsets`, `RaggedTensorToTensor`) converts to TFLite **custom
  ops** that tensorflow-text implements for TFLite. A `.tflite` file that holds the
  tokenizer therefore takes raw strings, but only runs in an interpreter that registers
  those ops: in Python `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` (what
  `load_tflite` does), on a device the tensorflow-text TFLite op library linked into the app.
- "Select TF ops" (the Flex delegate) are deliberately not used: the Python interpreter
  shipped with TF 2.21 cannot run them, so a model needing them could not be checked here.
  A preprocessor whose graph needs ops outside the TFLite builtins and the tensorflow-text
  set (e.g. `lowercase=False`, which adds a `NormalizeUTF8` op) is exported without its
  tokenizer: the `.tflite` file then takes `int32` token ids of shape `(n, maxlen)` and the
  folder also holds `preprocessor.json` and `vocab.txt`, so the caller tokenizes outside
  (`load_tflite` does it with TensorFlow). `tflite.json` records which case applies.
- Every export is run once in the interpreter before it is written, so a file that cannot
  be loaded is never produced silently.

Quantization (`quantize=`): `None` keeps float32; `"dynamic"` stores weights as int8 and
quantizes activations on the fly; `"float16"` stores weights as float16; `"int8"` also
calibrates activation ranges on a representative sample (for a predictor: raw training
texts) so that most ops run in int8, except the attention core (`INT8_FLOAT_OPS`: the
scores/softmax/weighted-sum ops stay float32, because the padding mask's large negative
constant makes their range unusable in int8). Inputs and outputs keep their types
(strings or int32 ids in, float32 out) in every mode.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INT8_FLOAT_OPS",
    "TFLITE_QUANTIZE_MODES",
    "TFLiteExport",
    "TFLitePredictor",
    "export_tflite",
    "load_tflite",
]

TFLITE_QUANTIZE_MODES: tuple[str | None, ...] = (None, "dynamic", "float16", "int8")
# Op types kept in float32 by quantize="int8": the attention core. The attention scores go
# through a select with the padding mask's large negative constant, so their calibrated
# range spans about 1e9 and no int8 scale can resolve the real scores (measured: a tiny
# Transformer's predictions changed on 25-50% of texts); int8 attention probabilities at
# 1/256 resolution also hurt. Projections, feed-forward, norms and the head stay int8.
INT8_FLOAT_OPS: tuple[str, ...] = ("BATCH_MATMUL", "SOFTMAX", "SELECT_V2", "TRANSPOSE")
MODEL_FILE = "model.tflite"
META_FILE = "tflite.json"
FORMAT_NAME = "ktlite-tflite"
FORMAT_VERSION = 1


@dataclass
class TFLiteExport:
    """What `export_tflite` wrote.

    Attributes:
        path: the export folder.
        model_file: the `.tflite` file inside it.
        tokenizer_inside: whether the `.tflite` graph takes raw strings (`True`) or token
            ids (`False`); `False` for a plain Keras model.
        quantize: the quantization mode used.
        size_bytes: size of the `.tflite` file.
        input_name: name of the signature input (`"texts"`, `"token_ids"` or the model's).
    """

    path: str
    model_file: str
    tokenizer_inside: bool
    quantize: str | None
    size_bytes: int
    input_name: str


def _check_quantize(quantize: Any) -> str | None:
    if quantize is not None and (
        not isinstance(quantize, str) or quantize not in TFLITE_QUANTIZE_MODES
    ):
        raise ValueError(
            f"`quantize` must be one of {TFLITE_QUANTIZE_MODES}. Received: quantize={quantize!r}"
        )
    return quantize


def _is_predictor(obj: Any) -> bool:
    preproc = getattr(obj, "preproc", None)
    return hasattr(obj, "model") and callable(getattr(preproc, "tokenize", None))


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


def _convert(
    fn: Callable[[Any], dict[str, Any]],
    trackables: Sequence[Any],
    input_spec: Any,
    quantize: str | None,
    calibration: Callable[[], Iterator[list[np.ndarray]]] | None,
    custom_ops: bool,
) -> bytes:
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        # Keras' ExportArchive freezes Keras 3 variables correctly; a bare tf.Module
        # holding the model leaves resource variables that TFLite reads as NaN.
        archive = keras.export.ExportArchive()
        for obj in trackables:
            archive.track(obj)
        archive.add_endpoint("serve", fn, input_signature=[input_spec])
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serve"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = custom_ops
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        with warnings.catch_warnings():
            # int8 calibration builds tf.lite.Interpreters, which warn about their move.
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated.*")
            if quantize != "int8":
                return converter.convert()
            converter.representative_dataset = calibration
            if custom_ops:
                import tensorflow_text as tf_text

                # Calibration runs the float model in an interpreter, which needs the
                # tensorflow-text ops; the converter only exposes this as a private field.
                converter.target_spec._experimental_custom_op_registerers = list(
                    tf_text.tflite_registrar.SELECT_TFTEXT_OPS
                )
            # The public selective-quantization tool: everything in int8 except the op
            # types of the attention core (see INT8_FLOAT_OPS).
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=calibration,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=list(INT8_FLOAT_OPS)
                ),
            )
            return debugger.get_nondebug_quantized_model()


def _run(interpreter: Any, input_name: str, value: np.ndarray) -> dict[str, np.ndarray]:
    runner = interpreter.get_signature_runner("serve")
    return runner(**{input_name: value})


def _sample(items: Sequence[Any], n: int, seed: int) -> list[Any]:
    if len(items) <= n:
        return list(items)
    index = np.random.default_rng(seed).choice(len(items), size=n, replace=False)
    return [items[i] for i in sorted(index)]


def _texts_from(data: Any) -> list[str]:
    raw = getattr(data, "x", data)  # a TaskDataset holds the raw texts in `x`
    if isinstance(raw, str) or not isinstance(raw, (Sequence, np.ndarray)):
        raise TypeError(
            "`representative_data` must be a list of training texts (or a TaskDataset of "
            f"them). Received: representative_data of type {type(data).__name__}"
        )
    texts = np.asarray(raw, dtype=object).ravel().tolist()
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError(
            "`representative_data` must hold at least one text, all of type str. "
            f"Received: {len(texts)} item(s) starting with {texts[:1]!r}"
        )
    return texts


def _arrays_from(data: Any) -> np.ndarray:
    transform = getattr(data, "transform", None)
    raw = getattr(data, "x", data)
    if isinstance(data, tuple) and len(data) == 2:
        raw = data[0]
    arr = np.asarray(raw)
    if transform is not None:
        arr = np.asarray(transform(arr))
    if arr.ndim == 0 or len(arr) == 0:
        raise ValueError(
            "`representative_data` must hold at least one model input. "
            f"Received: an array of shape {arr.shape}"
        )
    return arr


def _output_name(preproc: Any) -> str:
    return (
        "predictions" if getattr(preproc, "label_mode", None) == "regression" else "probabilities"
    )


def _write(folder: Path, content: bytes, meta: dict[str, Any], preproc: Any) -> None:
    folder = Path(folder)
    if folder.exists() and (
        not folder.is_dir() or (any(folder.iterdir()) and not (folder / META_FILE).exists())
    ):
        raise FileExistsError(
            "`path` must be a new folder or a previous TFLite export. "
            f"Received: path={str(folder)!r}"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / MODEL_FILE).write_bytes(content)
        if preproc is not None and not meta["tokenizer_inside"]:
            preproc.save(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_tflite(
    model_or_predictor: Any,
    path: str | os.PathLike,
    quantize: str | None = None,
    representative_data: Any = None,
    include_tokenizer: bool | None = None,
    num_calibration_samples: int = 256,
    seed: int = 0,
) -> TFLiteExport:
    """Writes a TensorFlow Lite model (and a small JSON description) to a folder.

    Given a predictor (anything with `.model` and a `.preproc` that has a tf-traceable
    `tokenize`), the graph is tokenizer + model, from a 1-D string tensor `texts` to
    `probabilities` (`predictions` for regression) when the tokenizer can run in TFLite,
    else model only, from `token_ids`. Given a bare `keras.Model`, the graph is the model,
    with its own input and an `outputs` output. See the module notes for what runs where.

    Args:
        model_or_predictor: a ktlite predictor or a built single-input `keras.Model`.
        path: the folder to write (`model.tflite`, `tflite.json`, plus `preprocessor.json`
            and `vocab.txt` when tokenization stays outside). An existing export is replaced.
        quantize: `None` (float32, default), `"dynamic"`, `"float16"` or `"int8"`.
        representative_data: required for `"int8"`: for a predictor, training texts (a
            list of str or the training `TaskDataset`); for a model, an array of model
            inputs (or a `TaskDataset`/`(x, y)` whose `x` gives them).
        include_tokenizer: `None` (default) puts the tokenizer inside when it converts and
            runs, else exports the model alone with a warning; `True` requires it inside
            (raises otherwise); `False` always exports the model alone.
        num_calibration_samples: how many representative inputs calibrate `"int8"`
            (sampled without replacement with `seed`). Defaults to 256.
        seed: seed of that sample. Defaults to 0.

    Returns:
        A `TFLiteExport` describing the written files.

    Raises:
        ValueError: unknown `quantize`, missing `representative_data` for `"int8"`, bad
            `num_calibration_samples`, or `include_tokenizer=True` when the tokenizer
            cannot run in TFLite.
        TypeError: if `model_or_predictor` is neither a predictor nor a `keras.Model`, or
            `representative_data` has the wrong type.
        FileExistsError: if `path` is a file or a non-empty folder that is no TFLite export.

    Example:
        >>> info = export_tflite(predictor, "tflite_int8", quantize="int8",
        ...                      representative_data=trn)
        >>> load_tflite("tflite_int8").predict(["a new text"])
    """
    import keras

    quantize = _check_quantize(quantize)
    if include_tokenizer is not None and not isinstance(include_tokenizer, bool):
        raise TypeError(
            "`include_tokenizer` must be None, True or False. "
            f"Received: include_tokenizer={include_tokenizer!r}"
        )
    if (
        isinstance(num_calibration_samples, bool)
        or not isinstance(num_calibration_samples, int)
        or num_calibration_samples < 1
    ):
        raise ValueError(
            "`num_calibration_samples` must be a positive int. "
            f"Received: num_calibration_samples={num_calibration_samples!r}"
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`representative_data` is required for quantize='int8' (a sample of training "
            "inputs calibrates the activation ranges). Received: representative_data=None"
        )
    predictor = _is_predictor(model_or_predictor)
    model = model_or_predictor.model if predictor else model_or_predictor
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model_or_predictor` must be a ktlite predictor or a keras.Model. "
            f"Received: {type(model_or_predictor).__name__}"
        )
    if not predictor:
        return _export_model(
            model, Path(path), quantize, representative_data, num_calibration_samples, seed
        )

    texts = None
    if representative_data is not None:
        texts = _sample(_texts_from(representative_data), num_calibration_samples, seed)
    return _export_predictor(model_or_predictor, Path(path), quantize, texts, include_tokenizer)


def _export_predictor(
    predictor: Any,
    path: Path,
    quantize: str | None,
    texts: list[str] | None,
    include_tokenizer: bool | None,
) -> TFLiteExport:
    import tensorflow as tf

    model, preproc = predictor.model, predictor.preproc
    out_name = _output_name(preproc)
    probe = texts[:4] if texts else ["a short probe text", "another one"]
    if include_tokenizer is not False:
        content = _convert_with_tokenizer(
            model, preproc, out_name, quantize, texts, probe, include_tokenizer
        )
        if content is not None:
            meta = _meta(model, quantize, True, "texts", "string", [None], out_name, preproc)
            _write(path, content, meta, preproc)
            return _info(path, meta)

    # Models that take any length get the preprocessor's fixed maxlen in the TFLite graph.
    maxlen = int(model.inputs[0].shape[1] or preproc.maxlen)

    def serve_ids(ids: Any) -> dict[str, Any]:
        return {out_name: tf.cast(model(ids, training=False), tf.float32)}

    def calibrate_ids() -> Iterator[list[np.ndarray]]:
        for ids in preproc.preprocess(texts):
            yield [ids[None, :]]

    content = _convert(
        serve_ids,
        [model],
        tf.TensorSpec([None, maxlen], tf.int32, name="token_ids"),
        quantize,
        calibrate_ids if texts else None,
        custom_ops=False,
    )
    _run(_make_interpreter(content, False, None), "token_ids", preproc.preprocess(probe))
    meta = _meta(model, quantize, False, "token_ids", "int32", [None, maxlen], out_name, preproc)
    _write(path, content, meta, preproc)
    return _info(path, meta)


def _convert_with_tokenizer(
    model: Any,
    preproc: Any,
    out_name: str,
    quantize: str | None,
    texts: list[str] | None,
    probe: list[str],
    required: bool | None,
) -> bytes | None:
    """The tokenizer + model graph, checked in the interpreter; `None` when it cannot run."""
    import tensorflow as tf

    preproc.tokenize(tf.constant(probe[:1]))  # builds the tokenizer before tracing
    trackables = [
        model,
        *[v for v in vars(preproc).values() if isinstance(v, tf.__internal__.tracking.Trackable)],
    ]

    def serve_texts(raw: Any) -> dict[str, Any]:
        return {out_name: tf.cast(model(preproc.tokenize(raw), training=False), tf.float32)}

    def calibrate_texts() -> Iterator[list[np.ndarray]]:
        for text in texts:
            # Bytes, not str: the calibrator misreads numpy unicode and tf.string input.
            yield [np.array([text.encode("utf-8")])]

    try:
        content = _convert(
            serve_texts,
            trackables,
            tf.TensorSpec([None], tf.string, name="texts"),
            quantize,
            calibrate_texts if texts else None,
            custom_ops=True,
        )
        _run(
            _make_interpreter(content, custom_ops=True, num_threads=None),
            "texts",
            np.array(probe, dtype=object),
        )
    except Exception as err:  # the converter and the interpreter raise many error types
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
        if required:
            raise ValueError(
                "The tokenizer cannot run inside TFLite with the TFLite builtins and the "
                f"tensorflow-text ops ({reason}). Use include_tokenizer=False to export "
                "the model alone. Received: include_tokenizer=True"
            ) from err
        warnings.warn(
            f"The tokenizer could not be put inside the TFLite model ({reason}); "
            "exporting the model alone, which takes token ids. The folder also holds "
            "the preprocessor, so tokenize with it before calling the TFLite model.",
            stacklevel=4,
        )
        return None
    return content


def _export_model(
    model: Any, path: Path, quantize: str | None, representative_data: Any, n: int, seed: int
) -> TFLiteExport:
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise ValueError(
            "`model_or_predictor` must have one input for TFLite export. "
            f"Received: a model with {len(model.inputs)} inputs"
        )
    spec = model.inputs[0]
    dtype = tf.as_dtype(spec.dtype)
    samples = None
    arr = None
    if representative_data is not None:
        arr = _arrays_from(representative_data)
        samples = [arr[i] for i in sorted(np.random.default_rng(seed).permutation(len(arr))[:n])]
    shape = [None, *_fixed_dims(model, spec.shape[1:], arr)]

    def serve(x: Any) -> dict[str, Any]:
        return {"outputs": tf.cast(model(x, training=False), tf.float32)}

    def calibrate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [np.asarray(sample, dtype=dtype.as_numpy_dtype)[None]]

    content = _convert(
        serve,
        [model],
        tf.TensorSpec(shape, dtype, name="inputs"),
        quantize,
        calibrate if samples else None,
        custom_ops=False,
    )
    probe = np.zeros([1, *shape[1:]], dtype=dtype.as_numpy_dtype)
    _run(_make_interpreter(content, False, None), "inputs", probe)
    meta = _meta(model, quantize, False, "inputs", dtype.name, shape, "outputs", None)
    _write(path, content, meta, None)
    return _info(path, meta)


def _fixed_dims(model: Any, dims: Any, arr: np.ndarray | None) -> list[int]:
    """The input's non-batch dims for TFLite; free ones (a model that takes token ids of
    any length) are fixed to the representative data's, else to the model's position table.
    """
    dims = list(dims)
    if all(d is not None for d in dims):
        return dims
    if arr is not None:
        return [d if d is not None else int(arr.shape[1 + i]) for i, d in enumerate(dims)]
    for layer in model.layers:
        try:
            positions = layer.get_config().get("sequence_length")
        except NotImplementedError:
            continue
        if len(dims) == 1 and isinstance(positions, int):
            return [positions]
    raise ValueError(
        "The model takes inputs of any length; TFLite needs a fixed one. Pass "
        f"`representative_data` of the shape to export. Received: input dims {dims}"
    )


def _meta(
    model: Any,
    quantize: str | None,
    inside: bool,
    input_name: str,
    dtype: str,
    shape: list[int | None],
    output_name: str,
    preproc: Any,
) -> dict[str, Any]:
    import tensorflow as tf

    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "signature": "serve",
        "tokenizer_inside": inside,
        "custom_ops": "tensorflow_text" if inside else None,
        "input": {"name": input_name, "dtype": dtype, "shape": shape},
        "output": {
            "name": output_name,
            "dtype": "float32",
            "shape": [None, int(model.outputs[0].shape[-1])],
        },
        "quantize": quantize,
        "tensorflow_version": tf.__version__,
    }
    if preproc is not None:
        cls = type(preproc)
        meta.update(
            task=getattr(preproc, "task", None),
            label_mode=getattr(preproc, "label_mode", None),
            class_names=list(getattr(preproc, "class_names", None) or []),
            preprocessor_class=f"{cls.__module__}:{cls.__qualname__}",
        )
    return meta


def _info(path: str | os.PathLike, meta: dict[str, Any]) -> TFLiteExport:
    folder = Path(path)
    return TFLiteExport(
        path=str(folder),
        model_file=str(folder / MODEL_FILE),
        tokenizer_inside=meta["tokenizer_inside"],
        quantize=meta["quantize"],
        size_bytes=(folder / MODEL_FILE).stat().st_size,
        input_name=meta["input"]["name"],
    )


class TFLitePredictor:
    """Runs an `export_tflite` folder with the TFLite interpreter.

    Tokenizes with the saved preprocessor (TensorFlow) when the tokenizer is not inside the
    `.tflite` graph, and registers the tensorflow-text ops when it is. Build it with
    `load_tflite`.

    Args:
        path: the export folder.
        num_threads: interpreter threads; `None` lets TFLite choose (one thread).
        batch_size: texts per interpreter call. Defaults to 32.

    Raises:
        ValueError: if the folder is not a ktlite TFLite export of a known version.
    """

    def __init__(
        self, path: str | os.PathLike, num_threads: int | None = None, batch_size: int = 32
    ) -> None:
        folder = Path(path)
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(
                f"`path` is not a ktlite TFLite export ({err}). Received: path={str(folder)!r}"
            ) from None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT_NAME
            or meta.get("format_version") != FORMAT_VERSION
        ):
            raise ValueError(
                f"`path` holds an unknown TFLite export format. Expected {FORMAT_NAME!r} version "
                f"{FORMAT_VERSION}. Received: {str(folder / META_FILE)!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
            )
        self.meta = meta
        self.batch_size = batch_size
        self.tokenizer_inside = bool(meta["tokenizer_inside"])
        self.class_names: list[str] = list(meta.get("class_names") or [])
        self.label_mode: str | None = meta.get("label_mode")
        self.preproc = None if self.tokenizer_inside else self._load_preproc(folder, meta)
        self.interpreter = _make_interpreter(
            (folder / MODEL_FILE).read_bytes(), self.tokenizer_inside, num_threads
        )
        self._runner = self.interpreter.get_signature_runner(meta["signature"])

    @staticmethod
    def _load_preproc(folder: Path, meta: dict[str, Any]) -> Any:
        spec = meta.get("preprocessor_class")
        if spec is None:
            return None
        module, _, name = str(spec).partition(":")
        if not module.startswith("ktlite.") or not name.isidentifier():
            raise ValueError(
                "`tflite.json` names a preprocessor class outside ktlite, which is refused. "
                f"Received: preprocessor_class={spec!r}"
            )
        return getattr(importlib.import_module(module), name).load(str(folder))

    def _inputs(self, batch: list[Any]) -> np.ndarray:
        if self.tokenizer_inside:
            return np.array(batch, dtype=object)
        if self.preproc is not None:
            return self.preproc.preprocess(batch)
        return np.asarray(batch)

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """Returns the model outputs (probabilities) for texts, or for model inputs.

        Args:
            inputs: a str or list of str for a predictor export; an array of model inputs
                for a model export.

        Returns:
            A float32 array `(n, k)` (`(k,)` for a single string).

        Example:
            >>> load_tflite("tflite_int8").predict_proba(["a new text"])
        """
        single = isinstance(inputs, str)
        items = [inputs] if single else list(inputs)
        name = self.meta["input"]["name"]
        out = self.meta["output"]["name"]
        step = self.batch_size
        chunks = [
            self._runner(**{name: self._inputs(items[i : i + step])})[out]
            for i in range(0, len(items), step)
        ]
        result = (
            np.concatenate(chunks, axis=0)
            if chunks
            else np.zeros((0, self.meta["output"]["shape"][-1]), "float32")
        )
        return result[0] if single else result

    def predict(self, inputs: Any) -> Any:
        """Returns labels: a class name per text (multiclass), `(label, prob)` pairs above
        0.5 (multilabel), or floats (regression); class ids when no class names are known.

        Args:
            inputs: a str or a list of str.

        Returns:
            One prediction for a str, a list for a list.

        Example:
            >>> load_tflite("tflite_int8").predict("a new text")
            'noun.animal'
        """
        single = isinstance(inputs, str)
        probs = np.atleast_2d(self.predict_proba([inputs] if single else inputs))
        if self.label_mode == "regression":
            preds: list[Any] = [float(row[0]) if len(row) == 1 else row.tolist() for row in probs]
        elif self.label_mode == "multilabel":
            preds = [
                [(self.class_names[j], float(p)) for j, p in enumerate(row) if p > 0.5]
                for row in probs
            ]
        else:
            ids = probs.argmax(axis=1)
            preds = [self.class_names[i] if self.class_names else int(i) for i in ids]
        return preds[0] if single else preds


def load_tflite(
    path: str | os.PathLike, num_threads: int | None = None, batch_size: int = 32
) -> TFLitePredictor:
    """Loads an `export_tflite` folder for prediction in Python.

    Args:
        path: the export folder.
        num_threads: interpreter threads; `None` (default) lets TFLite choose.
        batch_size: texts per interpreter call. Defaults to 32.

    Returns:
        A `TFLitePredictor`.

    Raises:
        ValueError: if the folder is not a ktlite TFLite export.

    Example:
        >>> runner = load_tflite("exported_tflite")
        >>> runner.predict(["a new text"])
    """
    return TFLitePredictor(path, num_threads=num_threads, batch_size=batch_size)
