"""`GenerationPredictor`: continues prompts with greedy, beam or sampled decoding.

Built on `ktlite.predictor.Predictor`, so it saves, loads (`ktlite.load_predictor`) and
exports like any predictor; the exported SavedModel and `ktlite serve` continue prompts
greedily with up to `max_length` (constructor) new tokens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from ktlite._console import warn
from ktlite.arguments import check_fitted
from ktlite.generation.data import LMPreprocessor
from ktlite.generation.model import DecoderOnlySteps
from ktlite.seq2seq.decoding import DecodingOptions, check_max_length, decode
from ktlite.seq2seq.predictor import StringDecodingPredictor, decoding_options
from ktlite.seq2seq.preprocessor import (
    CONFIG_FILE,
    END_ID,
    PAD_ID,
    SOURCE_VOCAB_FILE,
    START_ID,
    TARGET_VOCAB_FILE,
)
from ktlite.text.preprocessor import check_texts


class GenerationPredictor(StringDecodingPredictor):
    """A trained `causal_lm` and its `LMPreprocessor`, ready to continue prompts.

    Each prompt becomes `[CLS]` plus its tokens; prompts longer than the context keep
    their last `maxlen - 1` tokens. Generation stops at the end token, after `max_length`
    new tokens, or when the context is full; a warning says so once per predictor when a
    prompt fills the context (cut or not), as then one new token is all that fits.

    Args:
        model: the trained `causal_lm`.
        preproc: its `LMPreprocessor`.
        batch_size: prompts decoded together. Defaults to 32.
        max_length: new tokens for `ktlite serve` and `export` (greedy). Defaults to 32.

    Raises:
        TypeError: for a model or preprocessor of the wrong kind, or a `batch_size` or
            `max_length` that is not an int.
        ValueError: if `batch_size` or `max_length` < 1, or the model's vocabulary size or
            context length differs from the preprocessor's (`target_vocab_size`, `maxlen`).

    Example:
        >>> GenerationPredictor(model, preproc).predict("library for", max_length=8)
        'reading and writing images'
    """

    preprocessor_files = (CONFIG_FILE, SOURCE_VOCAB_FILE, TARGET_VOCAB_FILE)

    def __init__(
        self, model: keras.Model, preproc: LMPreprocessor, batch_size: int = 32,
        max_length: int = 32,
    ) -> None:
        check_fitted(preproc, LMPreprocessor)
        super().__init__(model, preproc, batch_size=batch_size)
        self._steps = DecoderOnlySteps(model)
        self._serving = (DecodingOptions(), check_max_length(max_length, preproc.maxlen))
        self._warned = False

    # ------------------------------------------------------------------ core hooks
    def _settings(self) -> dict[str, Any]:
        return {"max_length": self._serving[1]}

    def _check_model(self, model: keras.Model, preproc: LMPreprocessor) -> None:
        steps = DecoderOnlySteps(model)
        vocab = steps.embedding.vocab_size
        if vocab != preproc.target_vocab_size:
            raise ValueError(
                f"The model has {vocab} token ids but the preprocessor's vocabulary has "
                f"{preproc.target_vocab_size}; they do not belong together."
            )
        # `causal_lm` sizes the context to `preproc.maxlen`, which decoding reads as the
        # model's: a smaller context would fail inside the decoding graph.
        if steps.context_length != preproc.maxlen:
            raise ValueError(
                f"The model has a context of {steps.context_length} positions but the "
                f"preprocessor's maxlen is {preproc.maxlen}; they do not belong together."
            )

    def _transform(self, raw: tf.Tensor) -> Any:
        return self.preproc.prompt_ids(raw)[0]

    def _serving_outputs(self, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"continuations": outputs}

    def _trackables(self) -> list[Any]:
        return [self.preproc.tokenizer("target")]

    @classmethod
    def _load_preprocessor(cls, folder: Path) -> LMPreprocessor:
        return LMPreprocessor.load(folder)

    def describe(self) -> dict[str, Any]:
        """Task facts for `metadata` and `/metadata`."""
        return {"task": "generation", "maxlen": self.preproc.maxlen,
                "vocab_size": self.preproc.target_vocab_size,
                "serving_max_length": self._serving[1]}

    def json_input_schema(self) -> dict[str, Any]:
        """The JSON schema of one input item: a prompt."""
        return {"type": "string", "description": "A prompt to continue."}

    # ------------------------------------------------------------------ predicting
    def _decode_strings(self, prompts: Any, max_length: Any, options: DecodingOptions,
                        first_row: Any) -> Any:
        prefix, lengths = self.preproc.prompt_ids(prompts)
        ids = decode(self._steps, {}, prefix, lengths, max_length,
                     END_ID, options, banned_ids=(PAD_ID, START_ID),
                     context_length=self.preproc.maxlen, first_row=first_row)
        new = tf.range(tf.shape(ids)[1])[None, :] >= lengths[:, None]
        continuation = tf.ragged.boolean_mask(ids, new).to_tensor()
        return self.preproc.detokenize(continuation)

    def _warn_if_truncated(self, prompts: list[str], max_length: int) -> None:
        """Warns once when a prompt fills the context (the start token, the prompt's tokens
        and the new ones share `maxlen` positions), so that one new token is all that fits,
        and says whether the prompt was cut."""
        if self._warned:
            return
        maxlen = self.preproc.maxlen
        longest = int(self.preproc.prompt_lengths(prompts).max())
        if longest < maxlen - 1 or (longest == maxlen - 1 and max_length == 1):
            return
        self._warned = True
        cut = (f"A prompt is longer than the model's context of {maxlen} tokens; only its "
               f"last {maxlen - 1} tokens are used" if longest > maxlen - 1 else
               f"A prompt of {longest} tokens fills the model's context of {maxlen}")
        warn(
            f"{cut}, which leaves room for 1 new token (max_length={max_length}). Shorten the "
            "prompt to keep its beginning and to continue it further.",
        )

    def export(
        self,
        path: str | os.PathLike,
        format: str = "saved_model",
        max_length: int | None = None,
        **options: Any,
    ) -> None:
        """Exports a SavedModel that maps prompts to their greedy continuations.

        The `serving_default` signature takes `texts` (1-D `tf.string`) and returns
        `{"continuations": 1-D tf.string}`. Loading needs only `tensorflow` and
        `import tensorflow_text`.

        Args:
            path: the folder to write (atomically).
            format: `"saved_model"` (default).
            max_length: most new tokens of the exported graph; None keeps the
                predictor's.
            **options: passed on to `Predictor.export`.

        Raises:
            ValueError: for `max_length` < 1, or an unknown format.
            FileExistsError: if `path` is a file or a non-empty folder of something else.

        Example:
            >>> predictor.export("exported", max_length=8)
        """
        self._export_with(path, format, options, max_length=max_length)

    def predict(
        self,
        inputs: str | list[str],
        max_length: int = 32,
        method: str | None = None,
        beam_width: int = 1,
        length_penalty: float = 0.0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str | list[str]:
        """Continues one prompt or a list of prompts.

        Args:
            inputs: a str or a list of str (an empty prompt starts from scratch).
            max_length: most new tokens (end token included). Defaults to 32.
            method: `"greedy"`, `"beam"` or `"sample"`; None picks `"sample"` when a
                sampling option (`temperature`, `top_k`, `top_p`) is given, `"beam"` when
                `beam_width > 1`, else `"greedy"`.
            beam_width: beams of beam search.
            length_penalty: GNMT length penalty of beam search (default 0.0); another value
                needs beam search (`beam_width > 1`).
            temperature: sampling temperature (> 0).
            top_k: sample among the `top_k` most likely tokens (0, or any number from the
                vocabulary size up: all).
            top_p: nucleus sampling mass in (0, 1].
            seed: sampling seed. A prompt's random numbers depend on the seed, the
                prompt's tokens and its index in `inputs` (not on `batch_size` or the
                other prompts), so different prompts sample independently and the same
                call repeats its samples. Each new set of options, seed included,
                compiles its own decoding graph on first use (about a second); for
                several samples of one prompt, repeat it in `inputs`: each row samples
                on its own.

        Returns:
            The continuation (without the prompt): a str for a str input, else a list.
            It is detokenized on its own, so when its first word piece continues the
            prompt's last word (a WordPiece `##` piece: "the ca" continued by "##t sat"),
            nothing marks it, and joining prompt and continuation with a space splits
            that word ("the ca t sat").

        Raises:
            TypeError: for None or items that are not strings (the index is named), or an
                option of the wrong type (`method=1`, `beam_width="4"`).
            ValueError: for an empty list, a missing value, an unknown `method`,
                `max_length` or `beam_width` < 1, `beam_width` above 64
                (`ktlite.seq2seq.decoding.MAX_BEAM_WIDTH`), `top_p` outside (0, 1], another
                option out of range, a sampling option with a method other than `"sample"`, or a
                `length_penalty` other than 0.0 without beam search (`beam_width > 1`).

        Example:
            >>> predictor.predict(["a library"], method="sample", top_p=0.9, seed=1)
        """
        max_length = check_max_length(max_length, self.preproc.maxlen)
        options = decoding_options(beam_width, length_penalty, method, temperature, top_k,
                                   top_p, seed, default_length_penalty=0.0)
        prompts, single = check_texts(inputs, "inputs")
        self._warn_if_truncated(prompts, max_length)
        out = self._decode_batches(prompts, max_length, options)
        return out[0] if single else out
