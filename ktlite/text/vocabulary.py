"""WordPiece vocabulary learning with the ``tokenizers`` package, and vocabulary checks.

The vocabulary is learned with the ``tokenizers`` package's WordPiece trainer (a few
seconds for 100k short texts). Training texts are first normalized by tensorflow-text
itself (`ktlite.text.normalization.normalize_texts`), and ``tokenizers`` then splits words
as tensorflow-text's FastWordpieceTokenizer does (whitespace, punctuation, one token per
CJK ideograph), so the vocabulary is learned from what the tokenizer will see.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from ktlite._console import warn
from ktlite.arguments import check_int
from ktlite.text.normalization import normalize_texts

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
CONTINUATION_PREFIX = "##"
DEFAULT_VOCAB_SIZE = 16000
# The largest `vocab_size` any task accepts: 2**20 pieces, four times the largest
# vocabularies in use (about 256k). The ``tokenizers`` trainer reserves memory that grows
# with the size asked for, whatever the corpus, and a size it cannot allocate
# (vocab_size=10**9: 70 GB) aborts the whole interpreter, past any `except`.
MAX_VOCAB_SIZE = 2**20
# A word longer than this many UTF-8 bytes becomes [UNK] (tensorflow-text's limit).
_MAX_BYTES_PER_WORD = 100


def _hf_tokenizer(vocab: Sequence[str] | None = None) -> Any:
    """A ``tokenizers`` WordPiece tokenizer that splits text as FastWordpieceTokenizer does.

    It expects text from `normalize_texts` (tensorflow-text's own normalizer, CJK
    ideographs already spaced apart), so the vocabulary is learned from exactly what
    ``tokenize`` sees; it only splits on whitespace and punctuation.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    kwargs = {"unk_token": "[UNK]", "max_input_chars_per_word": _MAX_BYTES_PER_WORD}
    if vocab is not None:
        kwargs["vocab"] = {t: i for i, t in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(**kwargs))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def check_vocab_size(vocab_size: Any) -> int:
    """Returns a `vocab_size` as an int if it holds the special tokens and one piece, and is
    at most `MAX_VOCAB_SIZE` (2**20: larger sizes can abort the interpreter, see there).

    Args:
        vocab_size: the largest vocabulary size asked for.

    Returns:
        `int(vocab_size)`.

    Raises:
        TypeError: if `vocab_size` is not an int.
        ValueError: if it is outside `[len(SPECIAL_TOKENS) + 1, MAX_VOCAB_SIZE]`.

    Example:
        >>> check_vocab_size(8000)
        8000
    """
    return check_int(vocab_size, "vocab_size", len(SPECIAL_TOKENS) + 1, MAX_VOCAB_SIZE)


def learn_wordpiece_vocab(
    texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB_SIZE, lowercase: bool = True
) -> list[str]:
    """Learns a WordPiece vocabulary with the ``tokenizers`` package's trainer.

    Texts are first normalized in TensorFlow (`normalize_texts`), then split into words and
    counted by ``tokenizers`` the way tensorflow-text's FastWordpieceTokenizer splits them.

    Args:
        texts: the training texts (never validation or test texts).
        vocab_size: the vocabulary size aimed at, special tokens included, at most
            `MAX_VOCAB_SIZE` (2**20). A small corpus gives a smaller vocabulary; texts with
            many distinct characters a larger one (the trainer keeps every character, alone
            and as a continuation, so that any word can be written), with a warning.
        lowercase: whether text is lower-cased and stripped of accents first.

    Returns:
        The vocabulary: ``[PAD]`` (id 0), ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, then
        the learned pieces (continuations start with ``##``).

    Raises:
        TypeError: if `vocab_size` is not an int.
        ValueError: if `vocab_size` is outside `[len(SPECIAL_TOKENS) + 1, MAX_VOCAB_SIZE]`.

    Example:
        >>> vocab = learn_wordpiece_vocab(["a cat sat", "a dog ran"], vocab_size=100)
        >>> vocab[:3]
        ['[PAD]', '[UNK]', '[CLS]']
    """
    from tokenizers import trainers

    vocab_size = check_vocab_size(vocab_size)
    normalized = normalize_texts(texts, lowercase)
    tokenizer = _hf_tokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIAL_TOKENS, *_continuation_pieces(normalized)],
        continuing_subword_prefix=CONTINUATION_PREFIX,
        show_progress=False,
    )
    # Batches let the trainer spread its word counting over threads.
    batches = (normalized[i : i + 1000] for i in range(0, len(normalized), 1000))
    tokenizer.train_from_iterator(batches, trainer=trainer, length=len(normalized))
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    # ``tokenizers`` counts a word's length in characters, tensorflow-text in bytes: a
    # piece past the byte limit could never be produced, and one past 256 bytes makes
    # the in-graph tokenizer refuse the whole vocabulary.
    vocab = [token for token, _ in by_id if _piece_bytes(token) <= _MAX_BYTES_PER_WORD]
    if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise RuntimeError(f"The WordPiece trainer misplaced special tokens: {vocab[:5]}")
    if len(vocab) > vocab_size:
        warn(
            f"The vocabulary holds {len(vocab)} pieces, above vocab_size={vocab_size}: the "
            "texts' distinct characters are kept whole (each alone and as a continuation), "
            "so the trainer learned no longer pieces. Raise `vocab_size` to make room for "
            "them.",
            UserWarning,
        )
    return vocab


def _continuation_pieces(normalized: Sequence[str]) -> list[str]:
    """Every continuation of one character (``##c``) that the words of `normalized` hold,
    in code-point order.

    Given to the trainer before it counts, they have fixed ids. Otherwise it numbers them
    in the order of a hash map, which changes from process to process, and breaks ties
    between pairs of equal counts by those numbers: the same texts gave another order of
    the vocabulary in every process, and at 8,000 pieces 12-34 other pieces.
    """
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.BertPreTokenizer().pre_tokenize_str
    # The characters a word can go on with: those the pre-tokenizer does not split off.
    word_chars = [c for c in sorted(set().union(*normalized))
                  if [word for word, _ in split("a" + c)] == ["a" + c]]
    if not word_chars:
        return []
    letter = "[" + "".join(re.escape(c) for c in word_chars) + "]"
    tails = re.findall(f"{letter}({letter}+)", "\n".join(normalized))
    return [CONTINUATION_PREFIX + c for c in sorted(set().union(*tails))]


def _piece_bytes(token: str) -> int:
    """UTF-8 length of a piece, without its continuation prefix."""
    return len(token.removeprefix(CONTINUATION_PREFIX).encode("utf-8"))


def _validate_vocab(vocab: list[str], name: str) -> None:
    if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError(
            f"`{name}` must start with the special tokens {list(SPECIAL_TOKENS)}. "
            f"Received: {vocab[: len(SPECIAL_TOKENS)]!r}"
        )
    seen: set[str] = set()
    for i, token in enumerate(vocab):
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(
                f"`{name}` tokens must be non-empty strings without whitespace. "
                f"Received: an empty token or one with whitespace at {name}[{i}]"
            )
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in token):
            # The in-graph tokenizer fails on these at every call, far from the cause.
            raise ValueError(
                f"`{name}` tokens must not hold control characters or lone surrogates. "
                f"Received: a token with one at {name}[{i}]"
            )
        if _piece_bytes(token) > _MAX_BYTES_PER_WORD:
            raise ValueError(
                f"`{name}` tokens must be at most {_MAX_BYTES_PER_WORD} UTF-8 bytes long. "
                f"Received: a longer token at {name}[{i}]"
            )
        if token in seen:
            raise ValueError(f"`{name}` repeats a token (at index {i}).")
        seen.add(token)
