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
- A mixed-precision model (`mixed_float16`/`mixed_bfloat16`: float32 variables,
  float16/bfloat16 compute) is converted as a float32 copy (same architecture and weights,
  float32 dtype policies; the model itself is untouched): the TFLite builtins lack
  float16/bfloat16 kernels for most ops. The `.tflite` file then computes in float32, so
  its outputs differ from the mixed model's by that model's float16/bfloat16 rounding.

Quantization (`quantize=`): `None` keeps float32; `"dynamic"` stores weights as int8 and
quantizes activations on the fly; `"float16"` stores weights as float16; `"int8"` also
calibrates activation ranges on a representative sample (for a predictor: raw training
texts) so that most ops run in int8, except the attention core and divisions (`INT8_FLOAT_OPS`:
the scores/softmax/weighted-sum ops stay float32, because the padding mask's large negative
constant makes their range unusable in int8; a division, because TFLite's int8 division
fails on a divisor stored as 0). Inputs and outputs keep their types
(strings or int32 ids in, float32 out) in every mode.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ktlite import compat, saving
from ktlite._console import warn
from ktlite.arguments import check_choice, check_positive_int, check_seed
from ktlite.compress._precision import float32_copy, low_precision_policies
from ktlite.compress.quantize import _with_model, quantized_layers
from ktlite.compress.tflite_runtime import (
    FORMAT_NAME,
    FORMAT_VERSION,
    META_FILE,
    MODEL_FILE,
    _make_interpreter,
    is_tflite_export,
)
from ktlite.predictor import Predictor, class_path

__all__ = [
    "INT8_FLOAT_OPS",
    "TFLITE_QUANTIZE_MODES",
    "TFLiteExport",
    "export_tflite",
]

TFLITE_QUANTIZE_MODES: tuple[str | None, ...] = (None, "dynamic", "float16", "int8")
# Op types kept in float32 by quantize="int8": the attention core, and divisions. The
# attention scores go through a select with the padding mask's large negative constant, so
# their calibrated range spans about 1e9 and no int8 scale can resolve the real scores
# (measured: a tiny Transformer's predictions changed on 25-50% of texts); int8 attention
# probabilities at 1/256 resolution also hurt. And divisions: mean pooling divides by the
# number of real tokens, and TFLite's int8 DIV refuses a divisor whose stored value is 0,
# which the count of half the calibration's longest text gets (a text of that length
# failed to predict). Projections, feed-forward, norms and the head stay int8.
INT8_FLOAT_OPS: tuple[str, ...] = ("BATCH_MATMUL", "SOFTMAX", "SELECT_V2", "TRANSPOSE", "DIV")


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

    Example:
        >>> info = export_tflite(predictor, "tflite_dynamic", quantize="dynamic")
        >>> info.model_file, info.size_bytes
    """

    path: str
    model_file: str
    tokenizer_inside: bool
    quantize: str | None
    size_bytes: int
    input_name: str


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
                # tensorflow-text ops.
                compat.set_tflite_custom_op_registerers(
                    converter, tf_text.tflite_registrar.SELECT_TFTEXT_OPS
                )
            # The public selective-quantization tool: everything in int8 except the op
            # types of the attention core and divisions (see INT8_FLOAT_OPS).
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


def _raw_from(predictor: Predictor, data: Any) -> list[Any]:
    """Raw inputs for calibration: a batch the predictor accepts, or a TaskDataset of them."""
    raw = getattr(data, "x", data)  # a TaskDataset holds the raw inputs in `x`
    try:
        items, single = predictor._as_batch(raw)
    except (TypeError, ValueError) as err:
        raise TypeError(
            "`representative_data` must be training inputs the predictor accepts (or the "
            f"training TaskDataset). Received: representative_data rejected with: {err}"
        ) from None
    if single:
        raise TypeError(
            "`representative_data` must be a batch of inputs, not a single one. "
            f"Received: representative_data={data!r:.80}"
        )
    return list(items)


def _arrays_from(data: Any, spec: Any) -> np.ndarray:
    """The model inputs in `representative_data`, checked against the model's input `spec`
    (a Keras tensor) before any conversion work, so a mismatch names the argument."""
    transform = getattr(data, "transform", None)
    raw = getattr(data, "x", data)
    if isinstance(data, tuple) and len(data) == 2:
        raw = data[0]
    try:
        arr = np.asarray(raw)
        if transform is not None:
            arr = np.asarray(transform(arr))
    except ValueError as err:  # numpy refuses ragged nested lists
        raise ValueError(
            "`representative_data` must be an array of model inputs of one shape. "
            f"Received: representative_data that numpy cannot stack ({err})"
        ) from None
    if arr.ndim == 0 or len(arr) == 0:
        raise ValueError(
            "`representative_data` must hold at least one model input. "
            f"Received: an array of shape {arr.shape}"
        )
    expected = ("batch", *(d if d is not None else "any" for d in spec.shape[1:]))
    numeric = str(spec.dtype).startswith(("float", "bfloat", "int", "uint", "bool"))
    if numeric and arr.dtype.kind not in "biuf":
        raise TypeError(
            f"`representative_data` must hold numbers: inputs of the model, of dtype "
            f"{spec.dtype} and shape {expected}. Received: an array of dtype {arr.dtype}"
        )
    dims = list(spec.shape[1:])
    if arr.ndim != len(dims) + 1 or any(
        d is not None and d != n for d, n in zip(dims, arr.shape[1:])
    ):
        raise ValueError(
            f"`representative_data` must be model inputs of shape {expected}. "
            f"Received: an array of shape {arr.shape}"
        )
    return arr


def _output_name(predictor: Predictor) -> str:
    return "predictions" if getattr(predictor, "label_mode", None) == "regression" else (
        "probabilities"
    )


def _write(folder: Path, content: bytes, meta: dict[str, Any], preproc: Any) -> None:
    """Writes the export atomically; `tflite.json`, written last, records a SHA-256 of
    every other file, which `load_tflite` checks and without which no export is replaced."""

    def write(tmp: Path) -> None:
        saving.write_bytes(tmp / MODEL_FILE, content)
        if preproc is not None and not meta["tokenizer_inside"]:
            preproc.save(str(tmp))
        files = {entry.name: saving.sha256_file(entry) for entry in sorted(tmp.iterdir())}
        saving.write_json(tmp / META_FILE, {**meta, "files": files})

    saving.write_folder(Path(folder), write, is_tflite_export, "TFLite export")


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

    Given a text predictor (a `.model` and a `.preproc` with a tf-traceable `tokenize`;
    other predictors are refused: export a single-input model bare, e.g. an image model's
    `predictor.model`, or use `predictor.export` for a SavedModel), the graph is tokenizer
    + model, from a 1-D string tensor `texts` to
    `probabilities` (`predictions` for regression) when the tokenizer can run in TFLite,
    else model only, from `token_ids`. Given a bare `keras.Model`, the graph is the model,
    with its own input and an `outputs` output. See the module notes for what runs where.
    A mixed-precision model (`mixed_float16`/`mixed_bfloat16`) is exported as a float32 copy
    (its weights are float32 already); the model itself is left as it is.

    Args:
        model_or_predictor: a ktlite predictor or a built functional or `Sequential`
            `keras.Model` with one input and one output (wrap a subclassed model:
            `keras.Model(inputs, model(inputs))` with `inputs = keras.Input(...)`).
        path: the folder to write (`model.tflite`, `tflite.json`, plus `preprocessor.json`
            and `vocab.txt` when tokenization stays outside; `tflite.json` records a
            SHA-256 of each other file, which `load_tflite` checks). An existing export is
            replaced only when each of its files matches its recorded hash.
        quantize: `None` (float32, default), `"dynamic"`, `"float16"` or `"int8"`.
        representative_data: required for `"int8"`: for a predictor, training texts (a
            list of str or the training `TaskDataset`); for a model, an array of model
            inputs of the model's input shape (or a `TaskDataset`/`(x, y)` whose `x`
            gives them), checked whenever given.
        include_tokenizer: `None` (default) puts the tokenizer inside when it converts and
            runs, else exports the model alone with a warning; `True` requires it inside
            (raises otherwise); `False` always exports the model alone.
        num_calibration_samples: how many representative inputs calibrate `"int8"`
            (sampled without replacement with `seed`). Defaults to 256.
        seed: seed of that sample, an int >= 0 (`None`: a fresh one). Defaults to 0.

    Returns:
        A `TFLiteExport` describing the written files.

    Raises:
        ValueError: unknown `quantize`, missing `representative_data` for `"int8"`,
            `num_calibration_samples < 1`, a negative `seed`, `include_tokenizer=True`
            when the tokenizer cannot run in TFLite or with a bare model, a predictor of
            another task than text, a bare model that is subclassed or unbuilt (no
            `inputs`) or has several inputs or outputs, `representative_data` for a bare
            model that is not one array of its input's shape, a model quantized by Keras
            in `"int8"` (TFLite cannot take its int8
            activations; export the float model with `quantize="int8"` instead), or a
            mixed-precision model that cannot be rebuilt in float32 from its config or is
            already quantized by Keras (the message says what to do).
        TypeError: if `path` is not a str or `os.PathLike`, `model_or_predictor` is
            neither a predictor nor a `keras.Model`,
            `quantize` is neither None nor a str, `representative_data` has the wrong
            type (for a bare model with numeric inputs: anything but numbers),
            `include_tokenizer` is not None or a bool, or `num_calibration_samples`
            / `seed` is not an int (`"256"`, `True`).
        FileExistsError: if `path` is a file or a non-empty folder that ktlite cannot
            prove it wrote: anything but a TFLite export whose files all match the SHA-256
            its `tflite.json` records (a hand-made or changed export is kept: export to a
            new folder or remove it first), or an export written before the hashes were
            recorded that holds its own file names alone.

    Example:
        >>> info = export_tflite(predictor, "tflite_int8", quantize="int8",
        ...                      representative_data=trn)
        >>> load_tflite("tflite_int8").predict(["a new text"])
    """
    import keras

    folder = saving.as_path(path, "path")
    quantize = check_choice(quantize, "quantize", [m for m in TFLITE_QUANTIZE_MODES if m],
                            allow_none=True)
    if include_tokenizer is not None and not isinstance(include_tokenizer, bool):
        raise TypeError(
            "`include_tokenizer` must be None, True or False. "
            f"Received: include_tokenizer={include_tokenizer!r}"
        )
    num_calibration_samples = check_positive_int(
        num_calibration_samples, "num_calibration_samples"
    )
    seed = check_seed(seed)
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`representative_data` is required for quantize='int8' (a sample of training "
            "inputs calibrates the activation ranges). Received: representative_data=None"
        )
    predictor = isinstance(model_or_predictor, Predictor)
    model = model_or_predictor.model if predictor else model_or_predictor
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model_or_predictor` must be a ktlite predictor or a keras.Model. "
            f"Received: {type(model_or_predictor).__name__}"
        )
    task = getattr(getattr(model_or_predictor, "preproc", None), "task", None)
    if predictor and task != "text":
        raise ValueError(
            "`model_or_predictor` must be a text predictor or a keras.Model: a predictor's "
            "TFLite graph holds its tokenizer. Export a single-input model itself "
            "(`export_tflite(predictor.model, ...)`, e.g. an image model) or a SavedModel "
            f"with `predictor.export(path)`. Received: a {type(model_or_predictor).__name__} "
            f"(task {task!r})"
        )
    arr = None
    if not predictor:
        spec = _model_input(model, include_tokenizer)
        if representative_data is not None:
            arr = _arrays_from(representative_data, spec)
    int8_layers = [name for name, mode in quantized_layers(model).items() if mode == "int8"]
    if int8_layers:
        raise ValueError(
            "`model_or_predictor` holds Keras int8-quantized layers, whose int8 inputs TFLite "
            "cannot take; export the float model with quantize='int8' (TFLite's own int8) "
            "or quantize it with Keras' 'int4'. Received: int8 layers "
            f"{int8_layers[:3]}{' ...' if len(int8_layers) > 3 else ''}"
        )
    if low_precision_policies(model):
        # The TFLite builtins have no float16/bfloat16 kernels for most ops (`AddV2`,
        # `Erfc`, ...), so a mixed-precision graph does not convert; its float32 copy does.
        model = float32_copy(model, "converts to TFLite")
        if predictor:
            model_or_predictor = _with_model(model_or_predictor, model)
    if not predictor:
        return _export_model(model, folder, quantize, arr, num_calibration_samples, seed)

    samples = None
    if representative_data is not None:
        samples = _sample(
            _raw_from(model_or_predictor, representative_data), num_calibration_samples, seed
        )
    return _export_predictor(model_or_predictor, folder, quantize, samples, include_tokenizer)


def _export_predictor(
    predictor: Predictor,
    path: Path,
    quantize: str | None,
    samples: list[Any] | None,
    include_tokenizer: bool | None,
) -> TFLiteExport:
    import tensorflow as tf

    model = predictor.model
    out_name = _output_name(predictor)
    probe = samples[:4] if samples else predictor.example_inputs()
    raw_spec = predictor._input_spec()
    if include_tokenizer is not False:
        content = _convert_with_preprocessing(
            predictor, out_name, quantize, samples, probe, include_tokenizer
        )
        if content is not None:
            meta = _meta(predictor.model, quantize, True, raw_spec.name, raw_spec.dtype.name,
                         [None], out_name, predictor)
            _write(path, content, meta, predictor.preproc)
            return _info(path, meta)

    # Outside the graph the preprocessor's `preprocess` gives fixed-width model inputs
    # (`TFLitePredictor` calls the same), so the TFLite graph has one static width.
    preprocess = predictor.preproc.preprocess
    probe_ids = np.asarray(preprocess(probe))
    ids_spec = tf.TensorSpec([None, *probe_ids.shape[1:]], tf.as_dtype(probe_ids.dtype),
                             name="token_ids")

    def serve_ids(ids: Any) -> dict[str, Any]:
        return {out_name: _answer(predictor, model(ids, training=False))}

    def calibrate_ids() -> Iterator[list[np.ndarray]]:
        for item in samples:
            yield [np.asarray(preprocess([item]))]

    content = _convert(
        serve_ids, [model], ids_spec, quantize, calibrate_ids if samples else None,
        custom_ops=False,
    )
    _run(_make_interpreter(content, False, None), "token_ids", probe_ids)
    meta = _meta(model, quantize, False, "token_ids", ids_spec.dtype.name,
                 list(ids_spec.shape), out_name, predictor)
    _write(path, content, meta, predictor.preproc)
    return _info(path, meta)


def _answer(predictor: Predictor, outputs: Any) -> Any:
    """What the predictor answers from the model's outputs, in float32: a classifier's class
    probabilities (a softmax or sigmoid over logits, `[1 - p, p]` from one output over two
    classes), as its own predictions and SavedModel give them; else the outputs."""
    import tensorflow as tf

    outputs = tf.cast(outputs, tf.float32)
    probabilities = getattr(predictor, "_probabilities", None)
    return outputs if probabilities is None else probabilities(outputs)


def _reason(error: Exception) -> str:
    """An error's type and first line, with the next line when the first only leads to it
    (the calibrator's "Failed to initialize op resolver for calibration:" names no op)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    text = lines[0] if not lines[0].endswith(":") or len(lines) < 2 else f"{lines[0]} {lines[1]}"
    return f"{type(error).__name__}: {text[:300]}"


def _convert_with_preprocessing(
    predictor: Predictor,
    out_name: str,
    quantize: str | None,
    samples: list[Any] | None,
    probe: list[Any],
    required: bool | None,
) -> bytes | None:
    """The preprocessing + model graph, checked in the interpreter; `None` if it cannot run."""
    model = predictor.model
    predictor._transform(predictor._to_tensor(probe[:1]))  # builds lookup tables first
    trackables = [model, *predictor._trackables()]

    def serve_raw(raw: Any) -> dict[str, Any]:
        return {out_name: _answer(predictor, model(predictor._transform(raw), training=False))}

    def calibrate_raw() -> Iterator[list[np.ndarray]]:
        for item in samples:
            # Bytes, not str: the calibrator misreads numpy unicode and tf.string input.
            yield [np.array([item.encode("utf-8") if isinstance(item, str) else item])]

    try:
        content = _convert(
            serve_raw,
            trackables,
            predictor._input_spec(),
            quantize,
            calibrate_raw if samples else None,
            custom_ops=True,
        )
        _run(
            _make_interpreter(content, custom_ops=True, num_threads=None),
            predictor._input_spec().name,
            np.array(probe, dtype=object),
        )
    except Exception as err:  # the converter and the interpreter raise many error types
        reason = _reason(err)
        if required:
            raise ValueError(
                "The preprocessing cannot run inside TFLite with the TFLite builtins and the "
                f"tensorflow-text ops ({reason}). Use include_tokenizer=False to export "
                "the model alone. Received: include_tokenizer=True"
            ) from err
        warn(
            f"The preprocessing could not be put inside the TFLite model ({reason}); "
            "exporting the model alone, which takes token ids. The folder also holds "
            "the preprocessor, so preprocess with it before calling the TFLite model.",
        )
        return None
    return content


def _model_input(model: Any, include_tokenizer: bool | None) -> Any:
    """The one input (a Keras tensor) of a bare model to export; refuses, before any
    conversion work, what the export cannot take."""
    if include_tokenizer:
        raise ValueError(
            "`include_tokenizer=True` requires a text predictor, whose tokenizer goes inside "
            "the TFLite graph; a keras.Model has none. Pass include_tokenizer=None (or "
            f"False), or the predictor. Received: include_tokenizer=True with a "
            f"{type(model).__name__} {model.name!r}"
        )
    # A subclassed model has no `inputs`, and an unbuilt Sequential one raises on them.
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "`model_or_predictor` must be a built functional or Sequential keras.Model (its "
            "input's shape and dtype make the TFLite signature); a subclassed or unbuilt "
            "model has no `inputs`. Wrap it: `inputs = keras.Input(shape, dtype=...)`, then "
            "export `keras.Model(inputs, model(inputs))`. Received: a "
            f"{type(model).__name__} {model.name!r} without inputs"
        )
    if len(inputs) != 1:
        raise ValueError(
            "`model_or_predictor` must have one input for TFLite export. "
            f"Received: a model with {len(inputs)} inputs"
        )
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1:
        raise ValueError(
            "`model_or_predictor` must have one output for TFLite export (the file's "
            "`outputs`). Export `keras.Model(model.inputs, model.outputs[i])` for output i. "
            f"Received: a model with {len(outputs)} outputs"
        )
    return inputs[0]


def _export_model(
    model: Any, path: Path, quantize: str | None, arr: np.ndarray | None, n: int, seed: int
) -> TFLiteExport:
    import keras
    import tensorflow as tf

    spec = model.inputs[0]
    dtype = tf.as_dtype(spec.dtype)
    samples = None
    if arr is not None:
        samples = [arr[i] for i in sorted(np.random.default_rng(seed).permutation(len(arr))[:n])]
    shape = [None, *_fixed_dims(model, spec.shape[1:], arr)]

    def serve(x: Any) -> dict[str, Any]:
        # A one-output model may still return its output in a list or dict.
        (output,) = keras.tree.flatten(model(x, training=False))
        return {"outputs": tf.cast(output, tf.float32)}

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
    predictor: Predictor | None,
) -> dict[str, Any]:
    import tensorflow as tf

    width = int(model.outputs[0].shape[-1])
    labels = None if predictor is None else getattr(predictor.preproc, "labels", None)
    if labels is not None and labels.label_mode != "regression":
        width = labels.num_outputs  # the probabilities' width (two for one sigmoid output)
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
            "shape": [None, width],
        },
        "quantize": quantize,
        "tensorflow_version": tf.__version__,
    }
    if predictor is not None:
        meta.update(
            predictor=class_path(type(predictor)),
            labels=None if labels is None else labels.get_config(),
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
