"""`TranslationPredictor`: raw sentences in, translated sentences out, saved and exported.

Built on `ktlite.predictor.Predictor`. Tokenizing, encoding, the decoding loop (with the
key/value cache) and detokenizing run in one `tf.function` per set of decoding options
(the options, seed included, are compiled into the graph; the `_KEPT_FUNCTIONS` most
recently used sets are kept), so `predict`, `ktlite serve` and the exported SavedModel
run the same graph. The graph that `ktlite serve` and `export` use decodes with the
predictor's own options (`beam_width`, `max_length` given to the constructor; greedy by
default).
"""

from __future__ import annotations

import numbers
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite import compat
from ktlite.arguments import check_choice, check_fitted, check_float
from ktlite.predictor import Predictor
from ktlite.seq2seq.decoding import METHODS, DecodingOptions, check_max_length
from ktlite.seq2seq.inference import translate_strings
from ktlite.seq2seq.models import EncoderDecoderSteps
from ktlite.seq2seq.preprocessor import (
    CONFIG_FILE,
    SOURCE_VOCAB_FILE,
    TARGET_VOCAB_FILE,
    PairPreprocessor,
)
from ktlite.text.preprocessor import check_texts

# Decoding graphs a predictor keeps, one per set of decoding options; the least recently
# used is dropped first.
_KEPT_FUNCTIONS = 8


def decoding_options(
    beam_width: int = 1,
    length_penalty: float = 0.6,
    method: str | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    default_length_penalty: float = 0.6,
) -> DecodingOptions:
    """`DecodingOptions` from `predict`'s keywords.

    `method` None picks `"sample"` when a sampling option (`temperature`, `top_k`, `top_p`)
    is not its default, `"beam"` when `beam_width > 1`, else `"greedy"`. Options the
    picked method does not use are refused rather than ignored: sampling options (a `seed`
    other than 0 too) with another method than `"sample"`, and a `length_penalty` other
    than the caller's default
    anywhere but in beam search with `beam_width > 1` (the only decoding that ranks beams).

    Args:
        beam_width: beams of beam search.
        length_penalty: GNMT length penalty of beam search's final ranking.
        method: `"greedy"`, `"beam"`, `"sample"` or None (picked as above).
        temperature: sampling temperature.
        top_k: sample among the `top_k` most likely tokens (0: all).
        top_p: nucleus sampling mass.
        seed: sampling seed.
        default_length_penalty: the calling `predict`'s default `length_penalty`, which
            every method takes (default 0.6, `TranslationPredictor.predict`'s).

    Returns:
        The checked `DecodingOptions`.

    Raises:
        TypeError: for an option of the wrong type, naming it.
        ValueError: for an option out of range, or one the method does not use, naming it.

    Example:
        >>> decoding_options(beam_width=4, length_penalty=1.0).method
        'beam'
    """
    if method is not None:
        check_choice(method, "method", METHODS)
    wide = (isinstance(beam_width, numbers.Integral) and not isinstance(beam_width, bool)
            and beam_width > 1)
    defaults = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
    given = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    sampling = {key: value for key, value in given.items() if value != defaults[key]}
    if method is None:
        method = "sample" if sampling and not wide else "beam" if wide else "greedy"
    if sampling and method != "sample":
        given = ", ".join(f"{key}={value!r}" for key, value in sampling.items())
        raise ValueError(
            "`temperature`, `top_k` and `top_p` apply to method='sample' only. Received: "
            f"{given} with method={method!r}"
            + (f", beam_width={beam_width!r}" if wide else "")
        )
    if wide and method != "beam":
        raise ValueError(
            f"`beam_width` > 1 needs method='beam' (or None, which picks it). Received: "
            f"method={method!r}, beam_width={beam_width!r}"
        )
    # Only beam search with several beams ranks finished beams (`beam_width=1` is greedy).
    penalty = check_float(length_penalty, "length_penalty", low=0.0)
    if penalty != default_length_penalty and not (method == "beam" and wide):
        raise ValueError(
            "`length_penalty` ranks the finished beams of beam search: it applies to "
            "method='beam' with beam_width > 1 only. Set `beam_width` > 1, or leave "
            f"`length_penalty` at its default ({default_length_penalty!r}). Received: "
            f"length_penalty={length_penalty!r} with method={method!r}, "
            f"beam_width={beam_width!r}"
        )
    options = DecodingOptions(method=method, beam_width=beam_width,
                              length_penalty=length_penalty, temperature=temperature,
                              top_k=top_k, top_p=top_p, seed=seed)
    if options.seed != 0 and method != "sample":  # checked as an int by now
        raise ValueError(
            "`seed` draws the samples of method='sample' only; greedy and beam search draw "
            f"nothing. Received: seed={seed!r} with method={method!r}"
        )
    return options


class StringDecodingPredictor(Predictor):
    """What translation and generation predictors share: strings in, decoded strings out.

    A subclass gives `_decode_strings(texts, max_length, options, first_row)`, the graph
    from a batch of raw strings (the first at `first_row` of the whole input) to decoded
    strings, and sets `self._serving = (options, max_length)` for
    `export` and `ktlite serve`; this class makes one `tf.function` per set of decoding
    options and runs `predict`'s batches through it.

    Example:
        >>> class Echo(StringDecodingPredictor):
        ...     def _decode_strings(self, texts, max_length, options, first_row):
        ...         return texts
    """

    def __init__(self, model: keras.Model, preproc: Any, batch_size: int = 32) -> None:
        super().__init__(model, preproc, batch_size=batch_size)
        self._functions: OrderedDict[DecodingOptions, Any] = OrderedDict()

    def _decode_strings(self, texts: Any, max_length: Any, options: DecodingOptions,
                        first_row: Any) -> Any:
        raise NotImplementedError

    def _as_batch(self, inputs: Any) -> tuple[list[str], bool]:
        return check_texts(inputs, "inputs")

    def _input_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([None], tf.string, name="texts")

    def _graph_outputs(self, raw: Any) -> Any:
        options, max_length = self._serving
        return self._decode_strings(raw, max_length, options, 0)

    def _decode(self, outputs: np.ndarray, **options: Any) -> list[str]:
        return [t.decode("utf-8") for t in outputs]

    def _function(self, options: DecodingOptions) -> Any:
        """The decoding graph for `options`, built (traced once) on first use."""
        if options in self._functions:
            self._functions.move_to_end(options)
        else:
            self._functions[options] = compat.per_instance_function(
                lambda texts, max_length, first_row: self._decode_strings(
                    texts, max_length, options, first_row),
                [self._input_spec(), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)],
            )
            if len(self._functions) > _KEPT_FUNCTIONS:
                self._functions.popitem(last=False)
        return self._functions[options]

    def _export_with(self, path: Any, format: str, options: dict[str, Any],
                     **serving: Any) -> None:
        """`Predictor.export` with other serving settings (`None` keeps this one's)."""
        changed = {key: value for key, value in serving.items() if value is not None}
        if not changed:
            super().export(path, format=format, **options)
            return
        type(self)(self.model, self.preproc, self.batch_size,
                   **{**self._settings(), **changed}).export(path, format=format, **options)

    def _decode_batches(
        self, texts: list[str], max_length: int, options: DecodingOptions
    ) -> list[str]:
        run = self._function(options)
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            batch = tf.constant(texts[i : i + self.batch_size], tf.string)
            out.extend(self._decode(run(batch, tf.constant(max_length), tf.constant(i)).numpy()))
        return out


class TranslationPredictor(StringDecodingPredictor):
    """A trained `translation_model` and its `PairPreprocessor`, ready to translate.

    Args:
        model: the trained model from `seq2seq.translation_model` (or loaded).
        preproc: the `PairPreprocessor` it was trained with.
        batch_size: sentences decoded together by `predict`. Defaults to 32.
        beam_width: beams used by `ktlite serve` and `export` (1: greedy). `predict`
            takes its own.
        max_length: most target tokens for `ktlite serve` and `export`; None (or more)
            means the preprocessor's `target_maxlen`.

    Raises:
        TypeError: if `model` is not a `keras.Model` or `preproc` not a `PairPreprocessor`.
        ValueError: if they do not belong together, `batch_size`, `beam_width` or
            `max_length` < 1, or `beam_width` > `seq2seq.decoding.MAX_BEAM_WIDTH` (64).

    Example:
        >>> p = ktlite.get_predictor(learner.model, preproc)
        >>> p.predict(["Real-time strategy game"], beam_width=4)
        ['gioco di strategia in tempo reale']
    """

    preprocessor_files = (CONFIG_FILE, SOURCE_VOCAB_FILE, TARGET_VOCAB_FILE)
    output_name = "translations"

    def __init__(
        self,
        model: keras.Model,
        preproc: PairPreprocessor,
        batch_size: int = 32,
        beam_width: int = 1,
        max_length: int | None = None,
    ) -> None:
        check_fitted(preproc, PairPreprocessor)
        super().__init__(model, preproc, batch_size=batch_size)
        self._steps = EncoderDecoderSteps(model)
        self._serving = (
            decoding_options(beam_width=beam_width),
            check_max_length(preproc.target_maxlen if max_length is None else max_length,
                             preproc.target_maxlen),
        )

    # ------------------------------------------------------------------ core hooks
    def _settings(self) -> dict[str, Any]:
        options, max_length = self._serving
        return {"beam_width": options.beam_width, "max_length": max_length}

    def _check_model(self, model: keras.Model, preproc: PairPreprocessor) -> None:
        vocab = EncoderDecoderSteps(model).target_embedding.vocab_size
        if vocab != preproc.target_vocab_size:
            raise ValueError(
                f"The model's target vocabulary has {vocab} tokens but the preprocessor's "
                f"has {preproc.target_vocab_size}; they do not belong together."
            )

    def _transform(self, raw: tf.Tensor) -> Any:
        return self.preproc.tokenize_source(raw)

    def _serving_outputs(self, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {self.output_name: outputs}

    def _trackables(self) -> list[Any]:
        return [self.preproc.tokenizer(side) for side in ("source", "target")]

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> PairPreprocessor:
        return PairPreprocessor.load(folder)

    def describe(self) -> dict[str, Any]:
        """Task facts for `metadata` and `/metadata`."""
        options, max_length = self._serving
        return {
            "task": "seq2seq",
            "source_maxlen": self.preproc.source_maxlen,
            "target_maxlen": self.preproc.target_maxlen,
            "vocab_size": self.preproc.target_vocab_size,
            "joint_vocab": self.preproc.joint_vocab,
            "lowercase": self.preproc.lowercase,
            "source_lowercase": self.preproc.source_lowercase,
            "source_cls": self.preproc.source_cls,
            "serving_beam_width": options.beam_width,
            "serving_max_length": max_length,
        }

    def json_input_schema(self) -> dict[str, Any]:
        """The JSON schema of one input item: a source sentence."""
        return {"type": "string", "description": "A source sentence to translate."}

    def inputs_from_json(self, items: list) -> list[str]:
        """JSON items (strings) to what `predict` takes.

        Raises:
            ValueError: naming the index of an item that is not a string.
        """
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ValueError(f"Item {i} must be a string. Received: {item!r:.80}")
        return list(items)

    # ------------------------------------------------------------------ predicting
    def _decode_strings(self, texts: Any, max_length: Any, options: DecodingOptions,
                        first_row: Any) -> Any:
        return translate_strings(self._steps, self.preproc, texts, max_length, options,
                                 first_row)

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
            max_length: most target tokens per sentence (end token included); None (or
                more) means the preprocessor's `target_maxlen`.
            length_penalty: GNMT length penalty of beam search (default 0.6); another value
                needs beam search (`beam_width > 1`).
            method: `"greedy"`, `"beam"` or `"sample"`; None picks `"sample"` when a
                sampling option (`temperature`, `top_k`, `top_p`) is given, `"beam"` when
                `beam_width > 1`, else `"greedy"`.
            temperature: sampling temperature (> 0).
            top_k: sample among the `top_k` most likely tokens (0, or any number from the
                vocabulary size up: all).
            top_p: nucleus sampling mass in (0, 1].
            seed: sampling seed. A sentence's random numbers depend on the seed, the
                sentence's tokens and its index in `inputs` (not on `batch_size` or the
                other sentences), so different sentences sample independently and the
                same call repeats its samples. Each new set of options, seed included,
                compiles its own decoding graph on first use (about a second); for
                several samples of one sentence, repeat it in `inputs`: each row samples
                on its own.

        Returns:
            The translation (a str for a str input), or a list of them.

        Raises:
            TypeError: for None or items that are not strings (the index is named), or an
                option of the wrong type (`method=1`, `beam_width="4"`).
            ValueError: for an empty list, a missing value, an unknown `method`,
                `beam_width` or `max_length` < 1, `beam_width` > 64 (`MAX_BEAM_WIDTH`),
                `top_p` outside (0, 1], another option out of range, a sampling option
                with a method other than `"sample"`, or a `length_penalty` other than 0.6
                without beam search (`beam_width > 1`).

        Example:
            >>> predictor.predict("Real-time strategy game", beam_width=4)
        """
        max_length = check_max_length(
            self.preproc.target_maxlen if max_length is None else max_length,
            self.preproc.target_maxlen,
        )
        options = decoding_options(beam_width, length_penalty, method, temperature, top_k,
                                   top_p, seed)
        texts, single = check_texts(inputs, "inputs")
        out = self._decode_batches(texts, max_length, options)
        return out[0] if single else out

    # ------------------------------------------------------------------ export
    def export(
        self,
        path: str | os.PathLike,
        format: str = "saved_model",
        beam_width: int | None = None,
        max_length: int | None = None,
        **options: Any,
    ) -> None:
        """Exports a SavedModel that maps raw strings to translated strings.

        The `serving_default` signature takes `texts` (1-D `tf.string`) and returns
        `{"translations": 1-D tf.string}`. Loading needs only `tensorflow` and
        `import tensorflow_text`.

        Args:
            path: the folder to write (atomically).
            format: `"saved_model"` (default).
            beam_width: beams of the exported graph; None keeps the predictor's.
            max_length: most target tokens; None keeps the predictor's.
            **options: passed on to `Predictor.export`.

        Raises:
            ValueError: for `beam_width` or `max_length` < 1, `beam_width` > 64
                (`MAX_BEAM_WIDTH`), or an unknown format.
            FileExistsError: if `path` is a file or a non-empty folder of something else.

        Example:
            >>> predictor.export("exported", beam_width=4)
            >>> serve = tf.saved_model.load("exported").signatures["serving_default"]
            >>> serve(texts=tf.constant(["a cat"]))["translations"]
        """
        self._export_with(path, format, options, beam_width=beam_width, max_length=max_length)
