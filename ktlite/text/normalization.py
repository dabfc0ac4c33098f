"""Text normalization as tensorflow-text does it, and the CJK-aware joining of words.

`normalize_texts` runs the same in-graph normalizer that `TextPreprocessor.tokenize` uses
(FastBertNormalizer, or NFC when case is kept) and puts spaces around CJK ideographs, so
that the vocabulary trainer (`ktlite.text.vocabulary`) sees the words the tokenizer will
see. `_join_words` is the way back: WordPieces glued into readable text.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

_PREPROCESS_CHUNK = 8192
# The CJK ideograph blocks that FastWordpieceTokenizer splits one per token (BERT's list).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_CJK_PATTERN = "([" + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in _CJK_RANGES) + "])"
_NO_SPACE_BEFORE = frozenset(".,!?;:%)]}")
_NO_SPACE_AFTER = frozenset("([{")


@functools.cache
def _normalizer_function(lowercase: bool) -> Any:
    """In-graph normalization as in `tokenize`, plus spaces around CJK ideographs.

    A `tf.function` over a batch of strings, built once per process for each `lowercase`.
    """
    import tensorflow as tf
    import tensorflow_text as tf_text

    with tf.init_scope():
        normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=lowercase)

    def normalize(texts: Any) -> Any:
        if not lowercase:
            texts = tf_text.normalize_utf8(texts, "NFC")
        texts = normalizer.normalize(texts)
        return tf.strings.regex_replace(texts, _CJK_PATTERN, r" \1 ")

    return tf.function(
        normalize, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
    )


def normalize_texts(texts: Sequence[str], lowercase: bool = True) -> list[str]:
    """Normalizes texts as `TextPreprocessor.tokenize` does, with tensorflow-text.

    With ``lowercase=True``: compatibility-decomposed (full-width letters become ASCII),
    lower-cased and stripped of accents; with ``lowercase=False``: NFC-composed. In both
    cases control characters become spaces, and CJK ideographs get a space on each side
    (the tokenizer splits them one per token anyway), so that splitting on whitespace and
    punctuation gives the words the tokenizer sees.

    Args:
        texts: the texts.
        lowercase: as in `TextPreprocessor`.

    Returns:
        The normalized texts.

    Example:
        >>> normalize_texts(["Café ＡＢＣ"])
        ['cafe abc']
    """
    chunks = _in_chunks(_normalizer_function(bool(lowercase)), texts)
    return [b.decode("utf-8") for chunk in chunks for b in chunk]


def _in_chunks(fn: Any, texts: Sequence[str]) -> list[Any]:
    """`fn` (strings -> a tensor, batch first) over `texts`, `_PREPROCESS_CHUNK` at a time.

    Returns one numpy array per chunk, none for no texts.
    """
    import tensorflow as tf

    return [
        fn(tf.constant(list(texts[i : i + _PREPROCESS_CHUNK]), tf.string)).numpy()
        for i in range(0, len(texts), _PREPROCESS_CHUNK)
    ]


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _join_words(words: list[str]) -> str:
    out: list[str] = []
    for i, word in enumerate(words):
        if i:
            prev = words[i - 1]
            glued = (
                (_is_cjk(prev[-1]) and _is_cjk(word[0]))
                or word in _NO_SPACE_BEFORE
                or prev in _NO_SPACE_AFTER
            )
            if not glued:
                out.append(" ")
        out.append(word)
    return "".join(out)
