"""`TranslationPredictor`: raw sentences in, translated sentences out, saved and exported.

Tokenizing, encoding, the decoding loop (with the key/value cache) and detokenizing run
in one `tf.function` per set of decoding options, so `predict`, `ktlite serve` and the
exported SavedModel run the same graph.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite import predictor as _core
from ktlite.seq2seq.decoding import DecodingOptions, check_max_length
from ktlite.seq2seq.inference import translate_strings
from ktlite.seq2seq.models import EncoderDecoderSteps
from ktlite.seq2seq.preprocessor import CONFIG_FILE, PairPreprocessor

MODEL_FILE = "model.keras"
MANIFEST_FILE = "ktlite.json"
FORMAT_NAME = "ktlite-predictor"
FORMAT_VERSION = 2


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_texts(inputs: Any, name: str = "inputs") -> tuple[list[str], bool]:
    """Validates raw sentences: one string, or a non-empty list of strings.

    Args:
        inputs: a str, or a list / tuple / 1-D array of str.
        name: the argument name used in errors.

    Returns:
        `(texts, single)`: the texts as a list and whether one string was given.

    Raises:
        TypeError: for None, a non-sequence, or an item that is not a str (its index is
            named).
        ValueError: for an empty list.

    Example:
        >>> check_texts("a cat")
        (['a cat'], True)
    """
    if isinstance(inputs, str):
        return [inputs], True
    if inputs is None or isinstance(inputs, (bytes, dict)) or not hasattr(inputs, "__iter__"):
        raise TypeError(
            f"`{name}` must be a string or a list of strings. Received: {name}={inputs!r:.80}"
        )
    texts = list(inputs.tolist() if isinstance(inputs, np.ndarray) else inputs)
    if not texts:
        raise ValueError(f"`{name}` must hold at least one string. Received: {name}=[]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"`{name}` must hold only strings, but item {i} is {type(text).__name__}. "
                f"Received: {name}[{i}]={text!r:.80}"
            )
    return texts, False


class TranslationPredictor:
    """A trained `translation_model` and its `PairPreprocessor`, ready to translate.

    Args:
        model: the trained model from `seq2seq.translation_model` (or loaded).
        preproc: the `PairPreprocessor` it was trained with.
        batch_size: sentences decoded together by `predict`. Defaults to 32.

    Raises:
        TypeError: if `model` is not a `keras.Model` or `preproc` not a `PairPreprocessor`.
        ValueError: if they do not belong together or `batch_size` < 1.

    Example:
        >>> p = seq2seq.TranslationPredictor(learner.model, preproc)
        >>> p.predict(["Real-time strategy game"], beam_width=4)
        ['gioco di strategia in tempo reale']
    """

    task = "seq2seq"
    output_name = "translations"

    def __init__(self, model: keras.Model, preproc: PairPreprocessor, batch_size: int = 32) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r:.80}")
        if not isinstance(preproc, PairPreprocessor) or not preproc.is_fitted:
            raise TypeError(
                f"`preproc` must be a fitted PairPreprocessor. Received: preproc={preproc!r:.80}"
            )
        self.model, self.preproc = model, preproc
        self.batch_size = _core._check_batch_size(batch_size)
        self._steps = EncoderDecoderSteps(model)
        vocab = self._steps.target_embedding.vocab_size
        if vocab != preproc.target_vocab_size:
            raise ValueError(
                f"The model's target vocabulary has {vocab} tokens but the preprocessor's "
                f"has {preproc.target_vocab_size}; they do not belong together."
            )
        self._functions: dict[DecodingOptions, Any] = {}

    # ------------------------------------------------------------------ predicting
    def _function(self, options: DecodingOptions) -> Any:
        if options not in self._functions:
            self._functions[options] = tf.function(
                lambda texts, max_length: translate_strings(
                    self._steps, self.preproc, texts, max_length, options
                ),
                input_signature=[tf.TensorSpec([None], tf.string),
                                 tf.TensorSpec([], tf.int32)],
            )
        return self._functions[options]

    def predict(
        self,
        inputs: str | list[str],
        beam_width: int = 1,
        max_length: int | None = None,
        length_penalty: float = 0.6,
        method: str | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str | list[str]:
        """Translates one sentence or a list of sentences.

        Args:
            inputs: a str or a list of str. Blank sentences translate to `""`.
            beam_width: beams of beam search; 1 (default) decodes greedily.
            max_length: most target tokens per sentence (end token included); None
                means the preprocessor's `target_maxlen`.
            length_penalty: GNMT length penalty of beam search (default 0.6).
            method: `"greedy"`, `"beam"` or `"sample"`; None picks `"beam"` when
                `beam_width > 1`, else `"greedy"`.
            temperature: sampling temperature (> 0).
            top_k: sample among the `top_k` most likely tokens (0: all).
            top_p: nucleus sampling mass in (0, 1].
            seed: sampling seed.

        Returns:
            The translation (a str for a str input), or a list of them.

        Raises:
            TypeError: for None or non-string items (the index is named).
            ValueError: for an empty list, `beam_width` or `max_length` < 1, `top_p`
                outside (0, 1], or another option out of range.

        Example:
            >>> predictor.predict("Real-time strategy game", beam_width=4)
        """
        max_length = self.preproc.target_maxlen if max_length is None else max_length
        max_length = check_max_length(max_length)
        if method is None:
            method = "beam" if isinstance(beam_width, int) and beam_width > 1 else "greedy"
        options = DecodingOptions(
            method=method, beam_width=beam_width, length_penalty=length_penalty,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
        )
        texts, single = check_texts(inputs)
        run = self._function(options)
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            batch = tf.constant(texts[i : i + self.batch_size], tf.string)
            out.extend(t.decode("utf-8") for t in run(batch, tf.constant(max_length)).numpy())
        return out[0] if single else out

    # ------------------------------------------------------------------ serving hooks
    def inputs_from_json(self, items: list) -> list[str]:
        """JSON items (strings) to what `predict` takes.

        Raises:
            ValueError: naming the index of an item that is not a string.
        """
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ValueError(f"Item {i} must be a string. Received: {item!r:.80}")
        return list(items)

    def results_to_json(self, results: list[str]) -> list[str]:
        """Translations are already JSON strings."""
        return list(results)

    def json_input_schema(self) -> dict[str, Any]:
        """The JSON schema of one input item: a source sentence."""
        return {"type": "string", "description": "A source sentence to translate."}

    def describe(self) -> dict[str, Any]:
        """Task facts for `/metadata`."""
        return {
            "task": self.task,
            "source_maxlen": self.preproc.source_maxlen,
            "target_maxlen": self.preproc.target_maxlen,
            "vocab_size": self.preproc.target_vocab_size,
            "joint_vocab": self.preproc.joint_vocab,
        }

    # ------------------------------------------------------------------ saving
    def _preprocessor_files(self) -> list[str]:
        return [CONFIG_FILE, *self.preproc.vocab_files()]

    def save(self, path: str | os.PathLike) -> None:
        """Saves the model, the preprocessor and a manifest to a folder, atomically.

        No pickle: `model.keras` (no optimizer state), the preprocessor's JSON and
        vocabulary files, and `ktlite.json` with the SHA-256 of every file.

        Args:
            path: the folder to write (new, empty, or an earlier predictor folder).

        Raises:
            FileExistsError: if `path` is a file or a non-empty folder of something else.

        Example:
            >>> predictor.save("my_translator")
        """

        def write(folder: Path) -> None:
            _core._save_model_without_optimizer(self.model, folder / MODEL_FILE)
            self.preproc.save(folder)
            files = [MODEL_FILE, *self._preprocessor_files()]
            manifest = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "predictor": f"{type(self).__module__}.{type(self).__name__}",
                "batch_size": self.batch_size,
                "files": {name: _sha256(folder / name) for name in files},
                "versions": _core._versions(),
            }
            (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n",
                                                encoding="utf-8")

        _core._write_folder_atomically(Path(path), write, _core._is_predictor_folder,
                                       "predictor")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TranslationPredictor:
        """Loads a predictor written by `save`, checking every file's SHA-256.

        Args:
            path: the predictor folder.

        Returns:
            The `TranslationPredictor`.

        Raises:
            ValueError: naming the file that is missing, changed or inconsistent.

        Example:
            >>> predictor = TranslationPredictor.load("my_translator")
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST_FILE
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            files, batch_size = dict(manifest["files"]), manifest["batch_size"]
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{manifest_path} is missing or not a predictor manifest: {err}")
        for name, digest in files.items():
            file = folder / Path(name).name
            if not file.is_file() or _sha256(file) != digest:
                raise ValueError(
                    f"{file} is missing or was changed after saving (its SHA-256 does not "
                    f"match {manifest_path}); re-save the predictor."
                )
        preproc = PairPreprocessor.load(folder)
        return cls(_core._load_model(folder / MODEL_FILE), preproc, batch_size=batch_size)

    # ------------------------------------------------------------------ export
    def export(
        self, path: str | os.PathLike, beam_width: int = 1, max_length: int | None = None
    ) -> None:
        """Exports a SavedModel that maps raw strings to translated strings.

        The `serving_default` signature takes `texts` (1-D `tf.string`) and returns
        `{"translations": 1-D tf.string}`, decoding with the options given here. Loading
        needs only `tensorflow` and `import tensorflow_text`.

        Args:
            path: the folder to write (atomically).
            beam_width: beams (1: greedy). Defaults to 1.
            max_length: most target tokens; None means `target_maxlen`.

        Raises:
            ValueError: for `beam_width` or `max_length` < 1.
            FileExistsError: if `path` is a file or a non-empty folder of something else.

        Example:
            >>> predictor.export("exported", beam_width=4)
            >>> serve = tf.saved_model.load("exported").signatures["serving_default"]
            >>> serve(texts=tf.constant(["a cat"]))["translations"]
        """
        max_length = check_max_length(
            self.preproc.target_maxlen if max_length is None else max_length
        )
        options = DecodingOptions(method="beam" if beam_width != 1 else "greedy",
                                  beam_width=beam_width, length_penalty=0.6)

        def serve(texts: Any) -> dict[str, Any]:
            return {self.output_name: translate_strings(self._steps, self.preproc, texts,
                                                        max_length, options)}

        def write(folder: Path) -> None:
            archive = keras.export.ExportArchive()
            archive.track(self.model)
            for side in ("source", "target"):
                archive.track(self.preproc.tokenizer(side))
            archive.add_endpoint(
                "serving_default", serve,
                input_signature=[tf.TensorSpec([None], tf.string, name="texts")],
            )
            archive.write_out(str(folder), verbose=False)

        _core._write_folder_atomically(Path(path), write, _core._is_saved_model, "SavedModel")

    def __repr__(self) -> str:
        return f"<TranslationPredictor {self.preproc!r} batch_size={self.batch_size}>"
