"""`PairPreprocessor`: WordPiece vocabularies for source and target, used in the graph.

The vocabulary (one joint vocabulary by default, or one per side) is learned with the
``tokenizers`` package through `ktlite.text`'s WordPiece machinery, so text is normalized
and split exactly as `ktlite.text` does it (CJK ideographs one per token). Tokenizing
(`tokenize_source`, `tokenize_target`) and the reverse (`detokenize`) are TensorFlow ops
only (tensorflow-text), so the training pipeline, decoding and an exported SavedModel
share one graph.

Source sequences are the WordPiece ids followed by ``[SEP]`` (so even an empty source
has one real token), or, for sources read by a pretrained text backbone
(`backbone_preprocessor`), laid out as the backbone was pretrained: ``[CLS]`` then the
ids. Target sequences start with ``[CLS]`` (the start token) and end with ``[SEP]`` (the
end token); the decoder reads ``[CLS] w1 .. wn`` and learns to predict ``w1 .. wn [SEP]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite import saving
from ktlite.arguments import check_bool, check_int
from ktlite.text.normalization import _CJK_RANGES, _in_chunks
from ktlite.text.preprocessor import MAX_MAXLEN, suggest_maxlen, validate_texts
from ktlite.text.vocabulary import (
    _MAX_BYTES_PER_WORD,
    CLS_ID,
    CONTINUATION_PREFIX,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    _validate_vocab,
    check_vocab_size,
    learn_wordpiece_vocab,
)

START_ID = CLS_ID
END_ID = SEP_ID
DEFAULT_VOCAB_SIZE = 8000
CONFIG_FILE = "pair_preprocessor.json"
SOURCE_VOCAB_FILE = "source_vocab.txt"
TARGET_VOCAB_FILE = "target_vocab.txt"
FORMAT_VERSION = 1
_CONFIG_KEYS = frozenset(
    {"format_version", "task", "source_maxlen", "target_maxlen", "max_vocab_size",
     "lowercase", "joint_vocab"}
)
# Written since sources could come from a backbone; a file without them lowercases both
# sides alike and ends sources with [SEP].
_OPTIONAL_CONFIG_KEYS = frozenset({"source_lowercase", "source_cls"})
# Detokenization: no space before closing punctuation, none after opening brackets, and
# none around word-internal joiners ("real-time", "l'utente", "input/output", "c++").
_GLUE_BEFORE = r" ([.,!?;:%)\]}+])"
_GLUE_AFTER = r"([(\[{$€£¿¡]) "
_GLUE_AROUND = r" ?([-'/_@]) ?"
# Numbers, whose separator `_GLUE_BEFORE` leaves spaced from the digits after it: "3.50",
# "10:30", and "1,000" (a comma before exactly three digits: "1, 2" stays a list).
_DECIMAL = r"(\d)([.:]) (\d)"
_THOUSANDS = r"(\d), (\d{3})(\D|$)"
# Abbreviations of single letters with dots ("e.g.", "U.S.A."), spaced as "e. g." by
# `_GLUE_BEFORE` alone.
_INITIALS = r"(^|[^\pL])(\pL)\. (\pL)\."
# Straight double quotes come in pairs: '" ciao "' is '"ciao"'.
_QUOTED = r'" ([^"]*?) "'
# A dash written between spaces ("GTK - documentation", "-- data") is a token of its own
# in the targets, a private-use character, so that it comes back spaced while a word's
# joiner ("real-time") comes back glued: tokenization alone cannot tell them apart, and
# Debian synopses hold more of the first than of the second. Targets are marked only when
# the vocabulary learned the mark (preprocessors fitted before it glue every dash).
SPACED_DASH = "\ue000"
_SPACED_DASHES = ((r"(^|\s)--(\s|$)", rf"\1{SPACED_DASH * 2}\2"),
                  (r"(^|\s)-(\s|$)", rf"\1{SPACED_DASH}\2"))
# Scripts written without spaces: the ideographs, kana, CJK punctuation ("。", "、") and the
# full-width forms ("！", "，"); a space between two of their characters is removed.
_UNSPACED = "([" + "".join(
    f"\\x{{{lo:X}}}-\\x{{{hi:X}}}"
    for lo, hi in (*_CJK_RANGES, (0x3000, 0x30FF), (0x31F0, 0x31FF), (0xFF00, 0xFFEF))
) + "])"


def mark_spaced_dashes(texts: Any) -> Any:
    """`texts` with each dash written between spaces as `SPACED_DASH` (see there).

    A preprocessor's target vocabulary is learned from marked texts, and its targets are
    marked when tokenized, so a spaced dash and a word's joiner are different tokens.

    Args:
        texts: a list of str (returned as a list) or a 1-D string tensor (in the graph).

    Returns:
        The marked texts, of the same kind.

    Example:
        >>> mark_spaced_dashes(["GTK - docs", "real-time"]) == [f"GTK {SPACED_DASH} docs",
        ...                                                     "real-time"]
        True
    """
    import tensorflow as tf

    marked = tf.convert_to_tensor(texts, tf.string)
    for pattern, replacement in _SPACED_DASHES:
        marked = tf.strings.regex_replace(marked, pattern, replacement)
    if isinstance(texts, list):
        return [t.decode("utf-8") for t in marked.numpy()]
    return marked


def _padded_shape(width: Any, maxlen: int) -> Any:
    """The `to_tensor` shape of a side: static ``maxlen`` wide (None), else ``width`` <= it."""
    if width is None:
        # A static width, so the output shape is known when traced (export, decoding).
        return [None, maxlen]
    import tensorflow as tf

    from ktlite.bucketing import check_width

    return tf.stack([-1, tf.minimum(tf.cast(check_width(width), tf.int32), maxlen)])


class PairPreprocessor:
    """Learns WordPiece vocabularies for sentence pairs; tokenizes and detokenizes in TF.

    Args:
        source_maxlen: tokens per source sentence (``[SEP]`` included); None picks the
            smallest multiple of 16 that holds 99% of the training sources whole.
        target_maxlen: decoder positions per target sentence (the start token or the end
            token included); None picks it the same way.
        vocab_size: the largest vocabulary size (each vocabulary when not joint),
            special tokens included. Defaults to 8000; at most 2**20
            (`ktlite.text.vocabulary.MAX_VOCAB_SIZE`: the ``tokenizers`` trainer reserves
            memory that grows with it, and a size it cannot allocate aborts the
            interpreter).
        lowercase: lower-case and strip accents (default False: translations keep case
            and accents, which BLEU counts; with True the scores compare lower-case,
            unaccented translations with the references as given).
        joint_vocab: one vocabulary learned from sources and targets together (default
            True, which lets the model tie its encoder, decoder and output embeddings),
            or one per side.
        source_lowercase: the sources' own `lowercase`, for one vocabulary per side;
            None (default) follows `lowercase`. `backbone_preprocessor` sets it to the
            backbone's.
        source_cls: lay sources out as `ktlite.text` does, ``[CLS]`` then the word
            pieces, instead of the pieces then ``[SEP]`` (default False).
            `backbone_preprocessor` sets it, so a pretrained encoder reads what it was
            pretrained on.

    Attributes:
        task: ``"seq2seq"``.
        source_vocab, target_vocab: the vocabularies (the same list when joint).
        source_fixed: whether the source vocabulary is a backbone's, kept by `fit`.

    Raises:
        TypeError: for a flag (``lowercase``, ``joint_vocab``, ...) that is not a bool.
        ValueError: for an invalid argument, or a joint vocabulary with sources and
            targets normalized differently.

    Example:
        >>> preproc = PairPreprocessor(vocab_size=200).fit(["a cat"], ["un gatto"])
        >>> preproc.detokenize(preproc.tokenize_target(tf.constant(["un gatto"]))[1])
    """

    task = "seq2seq"
    predictor_class = "ktlite.seq2seq.predictor.TranslationPredictor"
    # A target cut to the width ends there: a translation must stop within its width. A
    # language model's text goes on past its context instead (`LMPreprocessor`).
    ends_cut_targets = True
    # How the unfitted-preprocessor error tells to fit this class.
    _fit_call = "fit(sources, targets)"

    def __init__(
        self,
        source_maxlen: int | None = None,
        target_maxlen: int | None = None,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        lowercase: bool = False,
        joint_vocab: bool = True,
        source_lowercase: bool | None = None,
        source_cls: bool = False,
    ) -> None:
        self.source_maxlen = check_int(source_maxlen, "source_maxlen", 2, MAX_MAXLEN,
                                       allow_none=True)
        self.target_maxlen = check_int(target_maxlen, "target_maxlen", 2, MAX_MAXLEN,
                                       allow_none=True)
        self.max_vocab_size = check_vocab_size(vocab_size)
        if source_lowercase is None:
            source_lowercase = lowercase
        for name, value in (("lowercase", lowercase), ("joint_vocab", joint_vocab),
                            ("source_lowercase", source_lowercase), ("source_cls", source_cls)):
            check_bool(value, name)
        if joint_vocab and source_lowercase != lowercase:
            raise ValueError(
                "A joint vocabulary needs sources and targets normalized alike. Received: "
                f"joint_vocab=True, lowercase={lowercase!r}, "
                f"source_lowercase={source_lowercase!r}"
            )
        self.lowercase = bool(lowercase)
        self.source_lowercase = bool(source_lowercase)
        self.source_cls = bool(source_cls)
        self.joint_vocab = bool(joint_vocab)
        self.source_fixed = False
        self._backbone_maxlen: int | None = None
        self.source_vocab: list[str] = []
        self.target_vocab: list[str] = []
        self._tokenizers: dict[str, Any] = {}
        self._target_table = None

    # ------------------------------------------------------------------ fitting

    @property
    def is_fitted(self) -> bool:
        """Whether the vocabularies have been learned (or loaded)."""
        return bool(self.target_vocab)

    @property
    def source_vocab_size(self) -> int:
        """Size of the source vocabulary."""
        return len(self.source_vocab)

    @property
    def target_vocab_size(self) -> int:
        """Size of the target vocabulary (the decoder's output size)."""
        return len(self.target_vocab)

    def fit(self, sources: Sequence[str], targets: Sequence[str]) -> PairPreprocessor:
        """Learns the vocabularies (and the unset maxlens) from training pairs.

        Args:
            sources: training source sentences.
            targets: training target sentences, one per source.

        Returns:
            ``self``.

        Raises:
            TypeError: for items that are not strings.
            ValueError: for empty or mismatched lists, a missing value, or sentences
                with no word at all.

        Example:
            >>> PairPreprocessor(vocab_size=100).fit(["a b"], ["c d"]).target_vocab[:2]
            ['[PAD]', '[UNK]']
        """
        sources = validate_texts(sources, "sources")
        targets = validate_texts(targets, "targets")
        if len(sources) != len(targets):
            raise ValueError(
                "`sources` and `targets` must have the same length. Received: "
                f"{len(sources)} sources and {len(targets)} targets"
            )
        marked = mark_spaced_dashes(targets)
        if self.joint_vocab:
            vocab = self._learn(sources + marked, "sources and targets", self.lowercase)
            self._set_vocabs(vocab, vocab)
        elif self.source_fixed:
            self._set_vocabs(self.source_vocab, self._learn(marked, "targets", self.lowercase))
        else:
            self._set_vocabs(self._learn(sources, "sources", self.source_lowercase),
                             self._learn(marked, "targets", self.lowercase))
        if self.source_maxlen is None:
            self.source_maxlen = suggest_maxlen(self._lengths(sources, "source"))
            if self._backbone_maxlen is not None:
                self.source_maxlen = min(self.source_maxlen, self._backbone_maxlen)
        if self.target_maxlen is None:
            self.target_maxlen = suggest_maxlen(self._lengths(targets, "target"))
        return self

    def _learn(self, texts: list[str], name: str, lowercase: bool) -> list[str]:
        vocab = learn_wordpiece_vocab(texts, self.max_vocab_size, lowercase)
        if len(vocab) == len(SPECIAL_TOKENS):
            raise ValueError(
                f"The {name} hold no words to learn a vocabulary from. Received: "
                f"{texts[:3]!r}"
            )
        return vocab

    def _set_vocabs(self, source_vocab: list[str], target_vocab: list[str]) -> None:
        self.source_vocab, self.target_vocab = list(source_vocab), list(target_vocab)
        self._tokenizers = {}
        self._target_table = None

    def _lengths(self, texts: list[str], side: str) -> np.ndarray:
        import tensorflow as tf

        pieces = self._pieces(tf.constant(texts[:200_000], tf.string), side)
        return pieces.row_lengths().numpy()

    # ------------------------------------------------------------ tokenization

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            name = type(self).__name__
            raise ValueError(
                f"This {name} has no vocabulary yet. Call `{self._fit_call}` or "
                f"`{name}.load(folder)` first."
            )

    def tokenizer(self, side: str) -> Any:
        """The tensorflow-text tokenizer (a `tf.Module`) of `"source"` or `"target"`.

        Built eagerly once, so every graph (and an exported SavedModel) can capture it.

        Args:
            side: `"source"` for the source vocabulary (and its lowercasing), `"target"`
                for the target one. With `joint_vocab`, both sides share one tokenizer.

        Returns:
            A `tensorflow_text.FastBertTokenizer` giving int32 word-piece ids.

        Example:
            >>> preproc.tokenizer("source").tokenize(tf.constant(["a cat"]))
        """
        if side not in self._tokenizers:
            import tensorflow as tf
            import tensorflow_text as tf_text

            vocab = self.source_vocab if side == "source" else self.target_vocab
            lowercase = self.source_lowercase if side == "source" else self.lowercase
            if self.joint_vocab and self._tokenizers:
                self._tokenizers[side] = next(iter(self._tokenizers.values()))
            else:
                with tf.init_scope():
                    self._tokenizers[side] = tf_text.FastBertTokenizer(
                        vocab=vocab,
                        suffix_indicator=CONTINUATION_PREFIX,
                        max_bytes_per_word=_MAX_BYTES_PER_WORD,
                        token_out_type=tf.int32,
                        unknown_token=SPECIAL_TOKENS[UNK_ID],
                        lower_case_nfd_strip_accents=lowercase,
                    )
        return self._tokenizers[side]

    def _pieces(self, texts: Any, side: str) -> Any:
        import tensorflow as tf
        import tensorflow_text as tf_text

        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        if side == "target" and SPACED_DASH in self.target_vocab:
            texts = mark_spaced_dashes(texts)
        if not (self.source_lowercase if side == "source" else self.lowercase):
            texts = tf_text.normalize_utf8(texts, "NFC")
        return self.tokenizer(side).tokenize(texts)

    def tokenize_source(self, sources: Any, width: Any = None) -> Any:
        """Source ids with TensorFlow ops only.

        Args:
            sources: a 1-D ``tf.string`` tensor.
            width: how many positions to pad (and cut) to, at most ``source_maxlen``:
                None (default) for ``source_maxlen``, or an int >= 1 / integer scalar
                tensor (a bucketed batch's width).

        Returns:
            ``int32`` ids ``(batch, width)``: WordPiece ids (truncated), ``[SEP]``,
            then 0 padding; with ``source_cls``, ``[CLS]``, the ids, then 0 padding.

        Raises:
            ValueError: when not fitted, or `width` is below 1.
            TypeError: when `width` is neither None, an int nor an integer tensor.

        Example:
            >>> preproc.tokenize_source(tf.constant(["a cat"])).shape
            TensorShape([1, 16])
        """
        import tensorflow as tf

        self._check_fitted()
        pieces = self._pieces(sources, "source")[:, : self.source_maxlen - 1]
        marks = tf.fill([pieces.nrows(), 1], tf.constant(
            START_ID if self.source_cls else END_ID, tf.int32))
        full = tf.concat([marks, pieces] if self.source_cls else [pieces, marks], axis=1)
        return full.to_tensor(default_value=PAD_ID, shape=_padded_shape(width, self.source_maxlen))

    def blank_sources(self, source_ids: Any) -> Any:
        """Which rows of `tokenize_source`'s output hold no word piece (a blank source).

        Args:
            source_ids: ``int32`` ids ``(batch, width)`` from `tokenize_source`.

        Returns:
            A ``bool`` tensor ``(batch,)``.

        Example:
            >>> preproc.blank_sources(preproc.tokenize_source(tf.constant(["", "a"])))
        """
        import tensorflow as tf

        if self.source_cls:
            return tf.reduce_all(tf.equal(source_ids[:, 1:], PAD_ID), axis=1)
        return tf.equal(source_ids[:, 0], END_ID)  # the end token first: no pieces

    def tokenize_target(self, targets: Any, width: Any = None) -> tuple[Any, Any]:
        """Decoder inputs and labels for target sentences, with TensorFlow ops only.

        Args:
            targets: a 1-D ``tf.string`` tensor.
            width: as in `tokenize_source`, for ``target_maxlen``.

        Returns:
            ``(decoder_ids, target_ids)``, both ``int32`` ``(batch, width)``:
            ``[CLS] w1 .. wn`` and ``w1 .. wn [SEP]``, padded with 0. A longer target is cut:
            to ``[CLS] w1 .. wk`` and ``w1 .. wk [SEP]`` when `ends_cut_targets` (the
            class's choice), else to ``[CLS] w1 .. wk`` and ``w1 .. wk+1``.

        Raises:
            ValueError: when not fitted, or `width` is below 1.
            TypeError: when `width` is neither None, an int nor an integer tensor.

        Example:
            >>> decoder_ids, target_ids = preproc.tokenize_target(tf.constant(["un gatto"]))
        """
        import tensorflow as tf

        self._check_fitted()
        maxlen = self.target_maxlen
        kept = maxlen - 1 if self.ends_cut_targets else maxlen
        pieces = self._pieces(targets, "target")[:, :kept]
        rows = [pieces.nrows(), 1]
        starts = tf.fill(rows, tf.constant(START_ID, tf.int32))
        ends = tf.fill(rows, tf.constant(END_ID, tf.int32))
        full = tf.concat([starts, pieces, ends], axis=1)
        shape = _padded_shape(width, maxlen)
        return (
            full[:, :-1][:, :maxlen].to_tensor(default_value=PAD_ID, shape=shape),
            full[:, 1:][:, :maxlen].to_tensor(default_value=PAD_ID, shape=shape),
        )

    def transform(self, pair: dict[str, Any], width: Any = None) -> dict[str, Any]:
        """The `TaskDataset` transform: raw pairs to model inputs, in the graph.

        Args:
            pair: ``{"source": strings, "target": strings}`` (1-D string tensors).
            width: None for the fixed widths, or a bucketed batch's ``(source, target)``
                widths (an int32 ``(2,)`` tensor).

        Returns:
            ``{"source_ids": ..., "decoder_ids": ...}``.

        Example:
            >>> inputs = preproc.transform({"source": s, "target": t})
        """
        source_width, target_width = (None, None) if width is None else (width[0], width[1])
        return {
            "source_ids": self.tokenize_source(pair["source"], source_width),
            "decoder_ids": self.tokenize_target(pair["target"], target_width)[0],
        }

    def source_lengths(self, sources: Sequence[str]) -> np.ndarray:
        """Positions each source fills in `tokenize_source`'s output, for length bucketing.

        With the target lengths (the real labels of `target_ids`), the lengths of the
        `TaskDataset` objects that `pairs_from_array` returns.

        Args:
            sources: a list (or array) of str.

        Returns:
            ``np.int64`` ``(len(sources),)``: tokens + ``[SEP]`` (or ``[CLS]``), at most
            `source_maxlen`.

        Raises:
            TypeError: for an item that is not a string.
            ValueError: when not fitted, or for a missing value.

        Example:
            >>> preproc.source_lengths(["a cat"])
            array([3])
        """
        import tensorflow as tf

        self._check_fitted()
        sources = validate_texts(sources, "sources", allow_empty=True)

        def count(batch: Any) -> Any:
            return tf.minimum(self._pieces(batch, "source").row_lengths() + 1, self.source_maxlen)

        return np.concatenate([np.zeros(0, np.int64)] + _in_chunks(count, sources)).astype(np.int64)

    def target_ids(self, targets: Sequence[str]) -> np.ndarray:
        """The labels (``w1 .. wn [SEP]``) of target sentences, as a numpy array.

        Args:
            targets: a list of str.

        Returns:
            ``int32`` ``(len(targets), target_maxlen)``.

        Example:
            >>> preproc.target_ids(["un gatto"]).shape
            (1, 16)
        """
        self._check_fitted()
        targets = validate_texts(targets, "targets", allow_empty=True)
        out = _in_chunks(lambda batch: self.tokenize_target(batch)[1], targets)
        if not out:
            return np.zeros((0, self.target_maxlen), np.int32)
        return np.concatenate(out).astype(np.int32, copy=False)

    def detokenize(self, ids: Any) -> Any:
        """Target ids back to strings, with TensorFlow ops only.

        Reading stops at the first ``[SEP]``; special tokens are dropped, ``##``
        pieces glued to the piece before, CJK characters joined without spaces, and
        punctuation spaced as in ordinary text: none before closing punctuation, none
        after opening brackets, currency signs and Spanish ``¿`` / ``¡``, none around word
        joiners (``-``, ``'``, ``/``: "real-time" comes back as written, while a dash the
        target text wrote between spaces, learned as `SPACED_DASH`, comes back spaced:
        "Roma - Milano"), none inside numbers ("3.50", "10:30", "1,000"), abbreviations
        of single letters ("e.g.", "U.S.A.") or a pair of straight double quotes.
        Case and accents removed by ``lowercase=True`` do not come back.

        Args:
            ids: ``int`` ids ``(batch, length)`` (a tensor or an array).

        Returns:
            A 1-D ``tf.string`` tensor, one sentence per row.

        Raises:
            ValueError: when not fitted.

        Example:
            >>> preproc.detokenize(preproc.tokenize_target(tf.constant(["un gatto"]))[1])
            <tf.Tensor: ... numpy=array([b'un gatto'], dtype=object)>
        """
        import tensorflow as tf

        self._check_fitted()
        if self._target_table is None:
            with tf.init_scope():
                self._target_table = tf.constant(self.target_vocab, tf.string)
        ids = tf.cast(ids, tf.int32)
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1), 0)
        keep = before_end & (ids >= len(SPECIAL_TOKENS)) & (ids < len(self.target_vocab))
        tokens = tf.ragged.boolean_mask(tf.gather(self._target_table, tf.maximum(ids, 0)), keep)
        text = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        # Continuations join the piece before; one at the very start (a sampled or
        # truncated sentence) loses its marker.
        text = tf.strings.regex_replace(text, f"(^| ){CONTINUATION_PREFIX}", "")
        text = tf.strings.regex_replace(text, _GLUE_BEFORE, r"\1")
        text = tf.strings.regex_replace(text, _GLUE_AFTER, r"\1")
        text = tf.strings.regex_replace(text, _GLUE_AROUND, r"\1")
        text = tf.strings.regex_replace(text, _QUOTED, r'"\1"')
        # Two passes join every run of spaced CJK characters, of number groups
        # ("1, 000, 000", "192. 168. 0. 1") and of initials ("U. S. A."), since matches do
        # not overlap.
        for _ in range(2):
            text = tf.strings.regex_replace(text, f"{_UNSPACED} {_UNSPACED}", r"\1\2")
            text = tf.strings.regex_replace(text, _DECIMAL, r"\1\2\3")
            text = tf.strings.regex_replace(text, _THOUSANDS, r"\1,\2\3")
            text = tf.strings.regex_replace(text, _INITIALS, r"\1\2.\3.")
        return tf.strings.regex_replace(text, SPACED_DASH, "-")

    def undo(self, ids: Any) -> list[str]:
        """Target ids back to a list of Python strings (see `detokenize`).

        Args:
            ids: ``(n, length)`` ids, or one sequence.

        Returns:
            One string per sequence.

        Example:
            >>> preproc.undo(preproc.target_ids(["un gatto"]))
            ['un gatto']
        """
        arr = np.asarray(ids)
        if arr.ndim == 1:
            arr = arr[None, :]
        return [t.decode("utf-8") for t in self.detokenize(arr).numpy()]

    # ------------------------------------------------------------ persistence

    def get_config(self) -> dict[str, Any]:
        """The JSON-safe settings (everything but the vocabularies).

        Returns:
            A dict with ``format_version``, ``task``, both maxlens, ``max_vocab_size``,
            ``lowercase``, ``joint_vocab``, ``source_lowercase`` and ``source_cls``.

        Example:
            >>> PairPreprocessor(source_maxlen=16).get_config()["source_maxlen"]
            16
        """
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "source_maxlen": self.source_maxlen,
            "target_maxlen": self.target_maxlen,
            "max_vocab_size": self.max_vocab_size,
            "lowercase": self.lowercase,
            "joint_vocab": self.joint_vocab,
            "source_lowercase": self.source_lowercase,
            "source_cls": self.source_cls,
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        source_vocab: Sequence[str],
        target_vocab: Sequence[str] | None = None,
    ) -> PairPreprocessor:
        """Rebuilds a fitted preprocessor from `get_config` output and vocabularies.

        Args:
            config: a dict from `get_config`.
            source_vocab: the source vocabulary (the joint one when joint).
            target_vocab: the target vocabulary; None (or the same list) when joint.

        Returns:
            A `PairPreprocessor`.

        Raises:
            TypeError: for a value of the wrong type (e.g. a size that is not an int).
            ValueError: for unknown or missing keys, invalid values or vocabularies.

        Example:
            >>> clone = PairPreprocessor.from_config(p.get_config(), p.source_vocab)
        """
        if not isinstance(config, dict) or not (
            _CONFIG_KEYS <= set(config) <= _CONFIG_KEYS | _OPTIONAL_CONFIG_KEYS
        ):
            raise ValueError(
                f"The config must have the keys {sorted(_CONFIG_KEYS)} (and may have "
                f"{sorted(_OPTIONAL_CONFIG_KEYS)}). Received: "
                f"{sorted(config) if isinstance(config, dict) else type(config).__name__}"
            )
        saving.check_config_header(config, cls.task, FORMAT_VERSION)
        for name in ("source_maxlen", "target_maxlen"):
            check_int(config[name], name, 2)
        preproc = cls._from_settings(config)
        source_vocab = list(source_vocab)
        if target_vocab is None and not preproc.joint_vocab:
            raise ValueError("`target_vocab` is required when the config says joint_vocab=False.")
        target_vocab = source_vocab if target_vocab is None else list(target_vocab)
        if preproc.joint_vocab and target_vocab != source_vocab:
            raise ValueError(
                "The config says joint_vocab=True but the source and target vocabularies "
                "differ; the files do not belong together."
            )
        _validate_vocab(source_vocab, "source_vocab")
        _validate_vocab(target_vocab, "target_vocab")
        preproc._set_vocabs(source_vocab, target_vocab)
        # Sources laid out for a backbone keep its vocabulary if `fit` is called again.
        preproc.source_fixed = preproc.source_cls
        return preproc

    @classmethod
    def _from_settings(cls, config: dict[str, Any]) -> PairPreprocessor:
        """An unfitted preprocessor with the settings of a checked config."""
        return cls(
            source_maxlen=config["source_maxlen"],
            target_maxlen=config["target_maxlen"],
            vocab_size=config["max_vocab_size"],
            lowercase=config["lowercase"],
            joint_vocab=config["joint_vocab"],
            source_lowercase=config.get("source_lowercase"),
            source_cls=config.get("source_cls", False),
        )

    def save(self, folder: str | os.PathLike) -> None:
        """Writes the config and vocabularies into ``folder`` (created if needed), each
        file atomically (`ktlite.saving`), so a crash never leaves half a file.

        Args:
            folder: the destination folder.

        Raises:
            TypeError: when ``folder`` is not a str or `os.PathLike`.
            ValueError: when not fitted.
            FileExistsError: when ``folder`` is a file.

        Example:
            >>> preproc.save("my_preproc")
        """
        self._check_fitted()
        folder = saving.make_folder(folder)
        # Both files always exist (identical for a joint vocabulary), so a saved folder
        # has one fixed list of files.
        for name, vocab in ((SOURCE_VOCAB_FILE, self.source_vocab),
                            (TARGET_VOCAB_FILE, self.target_vocab)):
            saving.write_text(folder / name, "\n".join(vocab) + "\n")
        saving.write_json(folder / CONFIG_FILE, self.get_config())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PairPreprocessor:
        """Reads a preprocessor written by `save`.

        Args:
            folder: a folder holding the config and vocabulary files.

        Returns:
            The `PairPreprocessor`.

        Raises:
            TypeError: when ``folder`` is not a str or `os.PathLike`.
            FileNotFoundError: naming the folder or the file that is missing.
            ValueError: naming the file that is a link, corrupt or inconsistent.

        Example:
            >>> preproc = PairPreprocessor.load("my_preproc")
        """
        folder = os.fspath(saving.as_path(folder, "folder"))
        paths = saving.saved_files(folder, (CONFIG_FILE, SOURCE_VOCAB_FILE, TARGET_VOCAB_FILE),
                                   cls.__name__)
        config = saving.read_json(paths[0])
        vocabs = [saving.read_lines(path) for path in paths[1:]]
        try:
            return cls.from_config(config, *vocabs)
        except (TypeError, ValueError) as err:
            raise saving.invalid_file(folder, cls.__name__, err) from None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(source_maxlen={self.source_maxlen}, "
            f"target_maxlen={self.target_maxlen}, vocab_size={self.target_vocab_size}, "
            f"joint_vocab={self.joint_vocab}, lowercase={self.lowercase}"
            + (f", source_lowercase={self.source_lowercase}"
               if self.source_lowercase != self.lowercase else "")
            + (", source_cls=True" if self.source_cls else "")
            + ")"
        )


def backbone_preprocessor(
    backbone: Any,
    source_maxlen: int | None = None,
    target_maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    lowercase: bool = False,
) -> PairPreprocessor:
    """A `PairPreprocessor` whose sources are tokenized as a pretrained backbone's texts.

    The source vocabulary, normalization and layout (``[CLS]`` first) are the backbone's
    (kept by `fit`); the target vocabulary is learned by `fit`, with its own `lowercase`.

    Args:
        backbone: a backbone folder path, a `ktlite.text.Backbone`, or the learner from
            `ktlite.text.pretrain`.
        source_maxlen: source tokens per sentence, at most the backbone's `maxlen` (its
            position embeddings); None picks it from the data, up to that.
        target_maxlen: decoder positions per target; None picks it from the data.
        vocab_size: the largest target vocabulary size. Defaults to 8000; at most 2**20
            (see `PairPreprocessor`).
        lowercase: lower-case and strip accents in the targets (default False).

    Returns:
        An unfitted `PairPreprocessor` with `source_fixed=True`.

    Raises:
        TypeError: for a `backbone` of another kind, or an argument of the wrong type (a
            size that is not an int, a `lowercase` that is not a bool).
        ValueError: for a `source_maxlen` beyond the backbone's, or an argument out of
            range.

    Example:
        >>> preproc = backbone_preprocessor("my_backbone").fit(en, it)
    """
    from ktlite.text.backbone import resolve_backbone

    text_preproc = resolve_backbone(backbone).preproc
    source_maxlen = check_int(source_maxlen, "source_maxlen", 2, MAX_MAXLEN, allow_none=True)
    if source_maxlen is not None and source_maxlen > text_preproc.maxlen:
        raise ValueError(
            f"`source_maxlen` must be at most the backbone's {text_preproc.maxlen} (its "
            f"position embeddings). Received: source_maxlen={source_maxlen!r}"
        )
    preproc = PairPreprocessor(source_maxlen, target_maxlen, vocab_size, lowercase,
                               joint_vocab=False, source_lowercase=text_preproc.lowercase,
                               source_cls=True)
    preproc.source_fixed = True
    preproc.source_vocab = list(text_preproc.vocab)
    preproc._backbone_maxlen = text_preproc.maxlen
    return preproc
