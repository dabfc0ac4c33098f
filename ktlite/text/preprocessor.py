"""`TextPreprocessor`: a WordPiece vocabulary learned from training texts, used in the graph.

The vocabulary is learned by `ktlite.text.vocabulary` from texts normalized as in
`ktlite.text.normalization`. Tokenization always runs in TensorFlow
(`TextPreprocessor.tokenize`), so a ``tf.data`` training pipeline, ``predict`` and an
exported SavedModel share one graph.

Text is split the BERT way: control characters dropped, whitespace and punctuation split
off, every CJK ideograph its own word, then each word cut into the longest vocabulary
pieces (continuations start with ``##``; a word that cannot be cut becomes ``[UNK]``).
With ``lowercase=True`` (the default) text is compatibility-decomposed, lower-cased and
stripped of accents ("Café" -> "cafe", full-width "ＡＢＣ" -> "abc"); with
``lowercase=False`` it is NFC-composed and keeps case and accents. Stripping drops every
combining mark, including those that change a word in other scripts (Japanese "が" reads
as "か", Devanagari loses its viramas and nasal marks): keep ``lowercase=False`` there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite import compat, saving
from ktlite.arguments import check_bool, check_int, check_verbose
from ktlite import labels as _labels
from ktlite._console import say
from ktlite.labels import LabeledPreprocessor, LabelEncoder
from ktlite.text.normalization import _in_chunks, _join_words, normalize_texts
from ktlite.text_inputs import check_texts, validate_texts
from ktlite.text.vocabulary import (
    CLS_ID,
    CONTINUATION_PREFIX,
    DEFAULT_VOCAB_SIZE,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    _MAX_BYTES_PER_WORD,
    _validate_vocab,
    check_vocab_size,
    learn_wordpiece_vocab,
)

# Re-exported: these names were public here before the vocabulary, normalization and text
# checking code moved to their own modules.
__all__ = [
    "CLS_ID",
    "CONTINUATION_PREFIX",
    "DEFAULT_VOCAB_SIZE",
    "MASK_ID",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "TextPreprocessor",
    "check_texts",
    "learn_wordpiece_vocab",
    "normalize_texts",
    "suggest_maxlen",
    "validate_texts",
]

FORMAT_VERSION = 1
CONFIG_FILE = "preprocessor.json"
VOCAB_FILE = "vocab.txt"
MAX_AUTO_MAXLEN = 512
# The longest `maxlen` taken (a config's too): widths are int32 in the graph, and attention
# over more positions than this would not fit in memory anyway.
MAX_MAXLEN = 65_536
_MAXLEN_SAMPLE = 200_000
_CONFIG_KEYS = frozenset(
    {
        "format_version",
        "task",
        "maxlen",
        "vocab_size",
        "max_vocab_size",
        "lowercase",
        "label_mode",
        "class_names",
        "num_outputs",
    }
)


def _say(message: str, verbose: int) -> None:
    if verbose:
        say(message)


def _checked_width(width: Any) -> Any:
    """`tokenize`'s `width`: None, "longest", or a width `ktlite.bucketing.check_width` takes."""
    if width is None:
        return None
    if isinstance(width, str):
        if width != "longest":
            raise ValueError(
                f"`width` must be None, an int >= 1 or 'longest'. Received: width={width!r:.80}"
            )
        return width
    from ktlite.bucketing import check_width

    return check_width(width, "width")


def check_reused_sizes(
    preproc: TextPreprocessor, maxlen: Any, vocab_size: Any, owner: str, unset: Any = None
) -> None:
    """Refuses a `maxlen` or `vocab_size` that a reused preprocessor cannot honour.

    A backbone's or a given preprocessor's length and vocabulary are reused as they are,
    so another value would be ignored: `maxlen` must be None or `preproc`'s, `vocab_size`
    `unset` or `preproc`'s size (its vocabulary's, or the largest it was asked for).

    Args:
        preproc: the fitted preprocessor reused.
        maxlen: the `maxlen` passed (int or None).
        vocab_size: the `vocab_size` passed.
        owner: whose sizes they are, for messages (``"the backbone"``, ``"`preproc`"``).
        unset: the `vocab_size` that asks for nothing (the caller's default).

    Raises:
        TypeError: for a `maxlen` or `vocab_size` of the wrong type.
        ValueError: for a value that is not `preproc`'s.

    Example:
        >>> check_reused_sizes(preproc, None, None, "`preproc`")
    """
    maxlen = check_int(maxlen, "maxlen", 2, allow_none=True)
    if vocab_size is not None or unset is not None:
        vocab_size = check_vocab_size(vocab_size)
    if maxlen is not None and maxlen != preproc.maxlen:
        raise ValueError(
            f"`maxlen` must be None or {owner}'s {preproc.maxlen} (its length is reused). "
            f"Received: maxlen={maxlen!r}"
        )
    if vocab_size != unset and vocab_size not in (preproc.vocab_size, preproc.max_vocab_size):
        raise ValueError(
            f"`vocab_size` must be {unset} or {owner}'s {preproc.vocab_size} (its vocabulary "
            f"is reused). Received: vocab_size={vocab_size!r}"
        )


def suggest_maxlen(token_counts: np.ndarray, coverage: float = 0.99) -> int:
    """Picks a sequence length that holds ``coverage`` of the texts whole.

    Args:
        token_counts: WordPiece tokens per text (without ``[CLS]``).
        coverage: the share of texts that should not be truncated.

    Returns:
        The smallest multiple of 16 that holds at least ``coverage`` of the texts with their
        ``[CLS]`` token, kept within ``[16, 512]``.

    Example:
        >>> suggest_maxlen(np.array([10, 20, 30, 40]))
        48
    """
    needed = np.sort(np.asarray(token_counts, dtype=np.int64) + 1)
    if needed.size == 0:
        return 16
    # The length of the text at the coverage rank, so the count is exact (no interpolation).
    rank = max(0, math.ceil(coverage * needed.size) - 1)
    length = int(needed[rank])
    return int(min(MAX_AUTO_MAXLEN, max(16, 16 * math.ceil(length / 16))))


class TextPreprocessor(LabeledPreprocessor):
    """Learns a WordPiece vocabulary and labels; tokenizes text inside the TensorFlow graph.

    ``tokenize`` maps a batch of strings to ``int32`` ids of shape ``(batch, maxlen)``:
    ``[CLS]`` first (so first-token pooling works), then the WordPiece ids of the text
    truncated to ``maxlen - 1`` tokens, then ``[PAD]`` (id 0) up to ``maxlen``. No
    ``[SEP]`` is appended: single-text models do not need it, and it would cost a position.

    Args:
        maxlen: tokens per text, ``[CLS]`` included. None (the default) picks it when the
            vocabulary is learned, with `suggest_maxlen`: long enough for 99% of the training
            texts, a multiple of 16, at most 512. At most 65,536 (`MAX_MAXLEN`).
        vocab_size: the largest vocabulary size, special tokens included (default 16000),
            at most `ktlite.text.vocabulary.MAX_VOCAB_SIZE` (2**20, four times the largest
            vocabularies in use: the ``tokenizers`` trainer reserves memory that grows with
            it, and a size it cannot allocate aborts the interpreter). After fitting,
            ``vocab_size`` is the actual size (smaller for a small corpus; larger when the
            texts hold more distinct characters than that, since every character is kept
            so that any word can be spelled).
        lowercase: lower-case, compatibility-decompose and strip accents (default True);
            when False, text is NFC-normalized and keeps case and accents. Stripping also
            drops combining marks that change words in scripts such as Japanese kana and
            Devanagari; use False for them.
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"``, or None to detect
            it from the training labels (see `ktlite.labels`).
        class_names: class names in the order of the model's outputs; inferred (sorted)
            from the training labels when None.

    Attributes:
        task: ``"text"``.
        pad_id: 0.
        vocab: the vocabulary, a list of str (empty until fitted).
        class_names: the class names, or None for regression or before labels are fitted.
        num_outputs: the number of model outputs the labels need.

    Raises:
        TypeError: for a ``maxlen`` or ``vocab_size`` that is not an int, a ``lowercase``
            that is not a bool, or ``class_names`` that is not a list of strings.
        ValueError: for an invalid ``maxlen``, ``vocab_size``, ``label_mode`` or
            ``class_names``.

    Example:
        >>> preproc = TextPreprocessor(maxlen=16, vocab_size=200)
        >>> preproc = preproc.fit(["a good film", "a bad film"], ["pos", "neg"])
        >>> preproc.preprocess(["a good one"]).shape
        (1, 16)
    """

    task = "text"
    predictor_class = "ktlite.text.predictor.TextPredictor"
    pad_id = PAD_ID

    def __init__(
        self,
        maxlen: int | None = None,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        lowercase: bool = True,
        label_mode: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        check_int(maxlen, "maxlen", 2, MAX_MAXLEN, allow_none=True)  # [CLS] and one token
        check_vocab_size(vocab_size)
        check_bool(lowercase, "lowercase")
        self.labels = LabelEncoder(label_mode, class_names)
        self.maxlen = None if maxlen is None else int(maxlen)
        self.max_vocab_size = int(vocab_size)
        self.lowercase = bool(lowercase)
        self.vocab: list[str] = []
        self._tokenizer = None
        self._tokenize_fn = None
        self._lengths_fn = None

    # ------------------------------------------------------------------ fitting

    @property
    def vocab_size(self) -> int:
        """The vocabulary size: ``len(vocab)`` once fitted, the requested size before."""
        return len(self.vocab) if self.vocab else self.max_vocab_size

    @property
    def is_fitted(self) -> bool:
        """Whether the vocabulary has been learned (or loaded)."""
        return bool(self.vocab)

    def fit(self, texts: Sequence[str], y: Any = None, verbose: int = 0) -> TextPreprocessor:
        """Learns the labels (when given) and the vocabulary from training data.

        Args:
            texts: the training texts.
            y: the training labels, or None to learn only the vocabulary.
            verbose: 0 (the default) is silent; 1 reports the vocabulary size and chosen
                ``maxlen``; 2 reports as 1 does (the level a `Learner` also takes).

        Returns:
            ``self``.

        Raises:
            TypeError: for a ``verbose`` that is not an int, or texts that are not strings.
            ValueError: for a ``verbose`` other than 0, 1 or 2, or invalid texts or labels
                (see `fit_vocab` and `fit_labels`).

        Example:
            >>> preproc = TextPreprocessor(maxlen=16).fit(["a b", "b c"], ["x", "y"])
        """
        verbose = check_verbose(verbose, (0, 1, 2))
        texts = validate_texts(texts, "texts")
        if y is not None:
            if len(y) != len(texts):
                raise ValueError(
                    f"`texts` and `y` must have the same length. Received: {len(texts)} "
                    f"texts and {len(y)} labels"
                )
            self.fit_labels(y)
        return self.fit_vocab(texts, verbose=verbose)

    def fit_labels(self, y: Any, name: str = "y_train") -> TextPreprocessor:
        """Learns the label mode, class names and number of outputs from training labels.

        Args:
            y: the training labels (see `ktlite.labels`).
            name: the argument name used in error messages.

        Returns:
            ``self``.

        Raises:
            ValueError: for missing, mixed or ambiguous labels, or a single class.

        Example:
            >>> TextPreprocessor().fit_labels(["pos", "neg"]).class_names
            ['neg', 'pos']
        """
        self.labels.fit(y, name)
        return self

    def fit_vocab(
        self, texts: Sequence[str], verbose: int = 0, name: str = "texts"
    ) -> TextPreprocessor:
        """Learns the WordPiece vocabulary (and ``maxlen`` when it is None) from texts.

        Args:
            texts: the training texts only; never include validation or test texts.
            verbose: 0 (the default) is silent; 1 reports the vocabulary size, ``maxlen``
                and the share truncated; 2 reports as 1 does (`pretrain` passes its
                learner's level).
            name: what the user called the texts, for error messages.

        Returns:
            ``self``.

        Raises:
            TypeError: when ``texts`` is not a sequence of strings, or ``verbose`` not an
                int.
            ValueError: when ``texts`` is empty or holds a missing value, when the texts
                hold no word at all, or when ``verbose`` is not 0, 1 or 2.

        Example:
            >>> TextPreprocessor(maxlen=8).fit_vocab(["a b c"]).vocab[:2]
            ['[PAD]', '[UNK]']
        """
        verbose = check_verbose(verbose, (0, 1, 2))
        texts = validate_texts(texts, name)
        vocab = learn_wordpiece_vocab(texts, self.max_vocab_size, self.lowercase)
        if len(vocab) == len(SPECIAL_TOKENS):
            raise ValueError(
                f"`{name}` must hold words to learn a vocabulary from; its {len(texts):,} "
                f"texts hold only whitespace or control characters. Received: {texts[:3]!r}"
            )
        self._set_vocab(vocab)
        counts = self._token_counts(texts)
        if self.maxlen is None:
            self.maxlen = suggest_maxlen(counts)
        truncated = float(np.mean(counts + 1 > self.maxlen)) if len(counts) else 0.0
        _say(
            f"WordPiece vocabulary: {len(vocab)} tokens; maxlen={self.maxlen} "
            f"({truncated:.1%} of training texts truncated; median "
            f"{int(np.median(counts)) + 1} tokens)",
            verbose,
        )
        return self

    def _set_vocab(self, vocab: list[str]) -> None:
        _validate_vocab(list(vocab), "vocab")
        self.vocab = list(vocab)
        self._tokenizer = None
        self._tokenize_fn = None
        self._lengths_fn = None

    def _token_counts(self, texts: list[str]) -> np.ndarray:
        """WordPiece tokens per text (for a sample of at most 200,000 texts)."""
        import tensorflow as tf

        if len(texts) > _MAXLEN_SAMPLE:
            rng = np.random.default_rng(0)
            picked = rng.choice(len(texts), size=_MAXLEN_SAMPLE, replace=False)
            texts = [texts[i] for i in picked]
        ragged = self._get_tokenizer().tokenize(self._normalize(tf.constant(texts, tf.string)))
        return ragged.row_lengths().numpy()

    # ------------------------------------------------------------ tokenization

    def _check_fitted(self) -> None:
        if not self.vocab or self.maxlen is None:
            raise ValueError(
                "This TextPreprocessor has no vocabulary yet. Call `fit(texts)` or "
                "`TextPreprocessor.load(folder)` first."
            )

    def _get_tokenizer(self) -> Any:
        """The tensorflow-text tokenizer, built eagerly once so every graph can capture it."""
        if self._tokenizer is None:
            import tensorflow as tf
            import tensorflow_text as tf_text

            with tf.init_scope():
                self._tokenizer = tf_text.FastBertTokenizer(
                    vocab=self.vocab,
                    suffix_indicator=CONTINUATION_PREFIX,
                    max_bytes_per_word=_MAX_BYTES_PER_WORD,
                    token_out_type=tf.int32,
                    unknown_token=SPECIAL_TOKENS[UNK_ID],
                    lower_case_nfd_strip_accents=self.lowercase,
                )
        return self._tokenizer

    @property
    def tokenizer(self) -> Any:
        """The ``tensorflow_text.FastBertTokenizer`` (a ``tf.Module``) used by `tokenize`."""
        self._check_fitted()
        return self._get_tokenizer()

    def _normalize(self, texts: Any) -> Any:
        if self.lowercase:
            return texts  # FastBertTokenizer normalizes with FastBertNormalizer itself.
        import tensorflow_text as tf_text

        return tf_text.normalize_utf8(texts, "NFC")

    def tokenize(self, texts: Any, width: Any = None) -> Any:
        """Tokenizes a batch of strings with TensorFlow ops only.

        Usable eagerly, in ``tf.function``, in ``tf.data`` and in an exported SavedModel
        (which needs ``import tensorflow_text`` to load).

        Args:
            texts: a 1-D ``tf.string`` tensor (a scalar or a ``(batch, 1)`` tensor is
                reshaped to 1-D).
            width: how many positions to pad (and cut) to: None (default) for ``maxlen``;
                an int >= 1 or an integer scalar tensor for that many (a larger one is cut
                to ``maxlen``; 1 holds ``[CLS]`` alone), as the length-bucketed batches of
                `ktlite.data.make_dataset` ask; or ``"longest"`` for the batch's longest
                text rounded up to a multiple of 16 (at most ``maxlen``), as the predictor
                does. Models that mask padding (every ktlite text model) give the same
                outputs at any width that holds the text.

        Returns:
            An ``int32`` tensor of shape ``(batch, width)``: ``[CLS]``, the WordPiece ids
            (truncated to ``width - 1``), then 0 padding.

        Raises:
            TypeError: when ``width`` is not None, a str, an int or an integer tensor (a
                float, a bool, a float tensor).
            ValueError: when the preprocessor is not fitted, ``texts`` has rank > 2, or
                ``width`` is a string other than ``"longest"`` or an int < 1 (a tensor's
                value is checked when known before the graph runs).

        Example:
            >>> ids = preproc.tokenize(tf.constant(["a good film"]))
            >>> ids.shape
            TensorShape([1, 16])
        """
        import tensorflow as tf

        self._check_fitted()
        width = _checked_width(width)
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        rank = texts.shape.rank
        if rank == 0:
            texts = tf.reshape(texts, [1])
        elif rank == 2:
            texts = tf.reshape(texts, [-1])
        elif rank is None:
            texts = tf.reshape(texts, [-1])
        elif rank != 1:
            raise ValueError(
                f"`texts` must be a 1-D string tensor. Received: texts with shape {texts.shape}"
            )
        pieces = self._get_tokenizer().tokenize(self._normalize(texts))
        if width is None:
            # A static width, so the output shape is known when traced (export, TFLite).
            body = pieces.to_tensor(default_value=PAD_ID, shape=[None, self.maxlen - 1])
        else:
            if isinstance(width, str):
                from ktlite.bucketing import round_width

                # A 0 appended so that an empty batch has a longest text too.
                longest = tf.reduce_max(tf.pad(pieces.row_lengths(), [[0, 1]]))
                width = round_width(tf.cast(longest, tf.int32) + 1)
            width = tf.minimum(tf.cast(width, tf.int32), self.maxlen)
            body = pieces.to_tensor(default_value=PAD_ID, shape=tf.stack([-1, width - 1]))
        cls = tf.fill(tf.stack([tf.shape(body)[0], 1]), tf.constant(CLS_ID, tf.int32))
        return tf.concat([cls, body], axis=1)

    def sequence_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """How many positions each text fills in `tokenize`'s output: tokens + ``[CLS]``.

        This is the length function of the `ktlite.data.TaskDataset` objects that
        `ktlite.text.texts_from_array` returns, used to bucket batches by length.

        Args:
            texts: a list (or array, or pandas Series) of str.

        Returns:
            ``np.int64`` array ``(len(texts),)``, each in ``[1, maxlen]``.

        Raises:
            TypeError: when ``texts`` is not a sequence of strings.
            ValueError: when not fitted, or when ``texts`` holds a missing value.

        Example:
            >>> preproc.sequence_lengths(["a good film", ""])
            array([4, 1])
        """
        import tensorflow as tf

        self._check_fitted()
        texts = validate_texts(texts, "texts", allow_empty=True)
        if self._lengths_fn is None:

            def count(batch: Any) -> Any:
                return self._get_tokenizer().tokenize(self._normalize(batch)).row_lengths()

            self._lengths_fn = compat.per_instance_function(
                count, [tf.TensorSpec([None], tf.string)]
            )
        counts = [np.zeros(0, np.int64)] + _in_chunks(self._lengths_fn, texts)
        return np.minimum(np.concatenate(counts).astype(np.int64) + 1, self.maxlen)

    def preprocess(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenizes a list of strings into a numpy array of ids.

        Args:
            texts: a list (or array, or pandas Series) of str.

        Returns:
            ``np.int32`` array of shape ``(len(texts), maxlen)``.

        Raises:
            TypeError: when ``texts`` is not a sequence of strings.
            ValueError: when not fitted, or when ``texts`` holds a missing value.

        Example:
            >>> preproc.preprocess(["a good film", "bad"]).shape
            (2, 16)
        """
        import tensorflow as tf

        self._check_fitted()
        texts = validate_texts(texts, "texts", allow_empty=True)
        if not texts:
            return np.zeros((0, self.maxlen), dtype=np.int32)
        if self._tokenize_fn is None:
            self._tokenize_fn = compat.per_instance_function(
                self.tokenize, [tf.TensorSpec([None], tf.string)]
            )
        return np.concatenate(_in_chunks(self._tokenize_fn, texts)).astype(np.int32, copy=False)

    def undo(self, ids: Any) -> list[str]:
        """Turns token ids back into text, joining WordPieces.

        ``[PAD]``, ``[CLS]`` and ``[SEP]`` are dropped, ``##`` pieces are glued to the piece
        before, CJK characters are joined without spaces, and no space is put before
        ``. , ! ? ; : % ) ] }`` or after ``( [ {``. Case and accents removed by
        ``lowercase=True`` do not come back.

        Args:
            ids: ids of shape ``(n, length)`` (an array, tensor or nested list), or one
                sequence of ids.

        Returns:
            One string per sequence (a list of one string for a single sequence).

        Raises:
            ValueError: when not fitted or when an id is outside the vocabulary.

        Example:
            >>> preproc.undo(preproc.preprocess(["A good film!"]))
            ['a good film!']
        """
        self._check_fitted()
        arr = np.asarray(ids.numpy() if hasattr(ids, "numpy") else ids)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(
                f"`ids` must be integer ids of shape (n, length). Received: ids with shape "
                f"{arr.shape} and dtype {arr.dtype}"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= len(self.vocab)):
            bad = int(arr.min() if arr.min() < 0 else arr.max())
            raise ValueError(
                f"`ids` must be in [0, {len(self.vocab)}) for this vocabulary. "
                f"Received: id {bad}"
            )
        skip = {PAD_ID, CLS_ID, SEP_ID}
        texts = []
        for row in arr.tolist():
            words: list[str] = []
            for i in row:
                if i in skip:
                    continue
                token = self.vocab[i]
                if token.startswith(CONTINUATION_PREFIX) and words:
                    words[-1] += token[len(CONTINUATION_PREFIX) :]
                else:
                    words.append(token)
            texts.append(_join_words(words))
        return texts

    # ------------------------------------------------------------------ labels

    def encode_labels(self, y: Any, name: str = "y") -> np.ndarray:
        """Encodes labels with the classes learned by `fit_labels`.

        Args:
            y: labels in the same form as the training labels.
            name: the argument name used in error messages.

        Returns:
            ``int32`` class ids ``(n,)`` (multiclass), a ``float32`` 0/1 matrix
            ``(n, num_classes)`` (multilabel) or ``float32`` targets (regression).

        Raises:
            ValueError: when labels were not fitted, or ``y`` holds missing labels or labels
                outside the classes.

        Example:
            >>> preproc.encode_labels(["pos", "neg"])
            array([1, 0], dtype=int32)
        """
        return self.labels.encode(y, name=name)

    def decode_predictions(self, probs: Any) -> list[Any]:
        """Turns model outputs into labels.

        Args:
            probs: model outputs of shape ``(n, num_outputs)``.

        Returns:
            Class names (multiclass), lists of ``(class_name, prob)`` pairs in class order
            (multilabel), or floats (regression).

        Raises:
            ValueError: when labels were not fitted or the shape does not match.

        Example:
            >>> preproc.decode_predictions(np.array([[0.1, 0.9]]))
            ['pos']
        """
        return self.labels.decode(probs)

    # ------------------------------------------------------------ persistence

    def get_config(self) -> dict[str, Any]:
        """Returns the JSON-able settings (everything but the vocabulary).

        Returns:
            A dict with ``format_version``, ``task``, ``maxlen``, ``vocab_size`` (actual),
            ``max_vocab_size`` (requested), ``lowercase``, ``label_mode``, ``class_names``
            and ``num_outputs``.

        Example:
            >>> TextPreprocessor(maxlen=32).get_config()["maxlen"]
            32
        """
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "maxlen": self.maxlen,
            "vocab_size": self.vocab_size,
            "max_vocab_size": self.max_vocab_size,
            "lowercase": self.lowercase,
            "label_mode": self.label_mode,
            "class_names": None if self.class_names is None else list(self.class_names),
            "num_outputs": self.num_outputs,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], vocab: Sequence[str] | None = None
    ) -> TextPreprocessor:
        """Rebuilds a preprocessor from `get_config` output and a vocabulary.

        Args:
            config: a dict from `get_config`.
            vocab: the vocabulary; required when ``config["vocab_size"]`` describes a fitted
                preprocessor that should tokenize.

        Returns:
            A `TextPreprocessor`.

        Raises:
            ValueError: for unknown or missing keys, invalid values, or a vocabulary that
                does not match ``config``.

        Example:
            >>> clone = TextPreprocessor.from_config(preproc.get_config(), preproc.vocab)
        """
        _validate_config(config)
        preproc = cls(
            maxlen=config["maxlen"],
            vocab_size=config["max_vocab_size"],
            lowercase=config["lowercase"],
        )
        preproc.labels = LabelEncoder.from_config(config)
        if vocab is not None:
            vocab = list(vocab)
            _validate_vocab(vocab, "vocab")
            if len(vocab) != config["vocab_size"]:
                raise ValueError(
                    f"The vocabulary has {len(vocab)} tokens but the config says vocab_size="
                    f"{config['vocab_size']}; the files do not belong together."
                )
            preproc._set_vocab(vocab)
        return preproc

    def save(self, folder: str | os.PathLike) -> None:
        """Writes ``preprocessor.json`` and ``vocab.txt`` into ``folder`` (created if needed).

        Each file is written to a temporary name and then renamed, so an interrupted save
        never leaves half a file.

        Args:
            folder: the destination folder.

        Raises:
            TypeError: when ``folder`` is not a str or `os.PathLike`.
            ValueError: when the preprocessor is not fitted.
            FileExistsError: when ``folder`` is a file.

        Example:
            >>> preproc.save("my_preprocessor")
        """
        self._check_fitted()
        folder = saving.make_folder(folder)
        saving.write_text(folder / VOCAB_FILE, "\n".join(self.vocab) + "\n")
        saving.write_json(folder / CONFIG_FILE, self.get_config())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TextPreprocessor:
        """Reads a preprocessor written by `save`, validating both files.

        Args:
            folder: a folder holding ``preprocessor.json`` and ``vocab.txt``.

        Returns:
            The `TextPreprocessor`, ready to tokenize.

        Raises:
            TypeError: when ``folder`` is not a str or `os.PathLike`.
            FileNotFoundError: when the folder or a file is missing.
            ValueError: when a file is a link, not valid UTF-8 or JSON, the config has
                unknown, missing or invalid keys or an unknown format version, or the
                vocabulary does not match the config.

        Example:
            >>> preproc = TextPreprocessor.load("my_preprocessor")
        """
        folder = os.fspath(saving.as_path(folder, "folder"))
        config_path, vocab_path = saving.saved_files(
            folder, (CONFIG_FILE, VOCAB_FILE), cls.__name__
        )
        config = saving.read_json(config_path)
        vocab = saving.read_lines(vocab_path)
        try:
            return cls.from_config(config, vocab)
        except (TypeError, ValueError) as err:
            raise saving.invalid_file(folder, cls.__name__, err) from None

    def __repr__(self) -> str:
        return (
            f"TextPreprocessor(maxlen={self.maxlen}, vocab_size={self.vocab_size}, "
            f"lowercase={self.lowercase}, label_mode={self.label_mode!r}, "
            f"num_classes={None if self.class_names is None else len(self.class_names)})"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ValueError(f"The config must be a JSON object. Received: {type(config).__name__}")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"The config has unknown keys; expected only {sorted(_CONFIG_KEYS)}. "
            f"Received: {unknown}"
        )
    missing = sorted(_CONFIG_KEYS - set(config))
    if missing:
        raise ValueError(f"The config is missing keys {missing}")
    saving.check_config_header(config, TextPreprocessor.task, FORMAT_VERSION)
    checks = {
        "maxlen": config["maxlen"] is None
        or (_is_int(config["maxlen"]) and 2 <= config["maxlen"] <= MAX_MAXLEN),
        "vocab_size": _is_int(config["vocab_size"]) and config["vocab_size"] > len(SPECIAL_TOKENS),
        # No upper bound here: a folder saved before the bound still loads (a refit checks).
        "max_vocab_size": _is_int(config["max_vocab_size"])
        and config["max_vocab_size"] > len(SPECIAL_TOKENS),
        "lowercase": isinstance(config["lowercase"], bool),
        "label_mode": config["label_mode"] is None or config["label_mode"] in _labels.LABEL_MODES,
        "class_names": config["class_names"] is None
        or (
            isinstance(config["class_names"], list)
            and all(isinstance(c, str) for c in config["class_names"])
        ),
        "num_outputs": config["num_outputs"] is None
        or (_is_int(config["num_outputs"]) and config["num_outputs"] >= 1),
    }
    for key, ok in checks.items():
        if not ok:
            raise ValueError(f"The config has an invalid {key}. Received: {key}={config[key]!r}")
    names = config["class_names"]
    if names is not None and config["num_outputs"] != len(names):
        raise ValueError(
            f"The config's num_outputs does not match its {len(names)} class_names. "
            f"Received: num_outputs={config['num_outputs']!r}"
        )
    if (config["label_mode"] is None) != (config["num_outputs"] is None):
        raise ValueError(
            "The config must set label_mode and num_outputs together. Received: "
            f"label_mode={config['label_mode']!r}, num_outputs={config['num_outputs']!r}"
        )
