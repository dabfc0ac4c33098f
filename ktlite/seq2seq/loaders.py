"""Loaders that turn sentence pairs into ``(trn, val, preproc)`` for translation.

Every loader ends in `pairs_from_array`: the vocabulary is learned from the training pairs
only (after a validation split is taken off), and ``trn``/``val`` are
`ktlite.data.TaskDataset` objects holding the raw sentences as
``{"source": ..., "target": ...}``, the target labels as token ids, and
``preproc.transform`` as their in-graph transform, so a batch reaches the model as
``{"source_ids", "decoder_ids"} -> target ids``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite.arguments import check_bool, check_instance, check_seed, check_verbose
from ktlite._console import say
from ktlite.seq2seq.preprocessor import (
    DEFAULT_VOCAB_SIZE,
    PAD_ID,
    PairPreprocessor,
    backbone_preprocessor,
)
from ktlite.columns import check_column_name, check_frame_columns, read_csv_columns
from ktlite.splits import check_val_pct, split_indices
from ktlite.text.preprocessor import validate_texts

_COLUMNS_HINT = "Set `source_column` and `target_column`."


def _pairs(sources: Any, targets: Any, source_name: str, target_name: str) -> tuple:
    sources = validate_texts(sources, source_name)
    targets = validate_texts(targets, target_name)
    if len(sources) != len(targets):
        raise ValueError(
            f"`{source_name}` and `{target_name}` must have the same length. Received: "
            f"{len(sources)} sources and {len(targets)} targets"
        )
    return sources, targets


def _object_array(texts: list[str]) -> np.ndarray:
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    return arr


def _is_sentence_list(value: Any) -> bool:
    """Whether `value` can be a list of sentences: a sequence, array or Series, not a str."""
    if isinstance(value, (str, bytes, bytearray, dict, set, frozenset)):
        return False
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, Sequence) or hasattr(value, "to_numpy")


def _layer_groups(model: Any) -> Any:
    """`ktlite.seq2seq.models.layer_groups`, imported when `fine_tune` asks (it needs Keras)."""
    from ktlite.seq2seq.models import layer_groups

    return layer_groups(model)


def _read_pairs_or_refuse(x: Any, targets: Any, preproc: PairPreprocessor) -> Any:
    """`pair_dataset` as `TaskDataset.reader`: `(x, targets)`, or `x=(sources, targets)`.

    `Learner.predict` (and `Learner.validate` for data that is not a 2-tuple) hands the
    reader the user's data as `x` with no labels; for a translation model that data is the
    pair itself. A tuple of two lists of sentences is that pair; a tuple of two strings is
    two sources (a source is a string, never a list), refused like sources alone.
    """
    if targets is not None:
        return pair_dataset(x, targets, preproc)
    if (isinstance(x, tuple) and len(x) == 2 and _is_sentence_list(x[0])
            and _is_sentence_list(x[1])):
        return pair_dataset(x[0], x[1], preproc)
    if isinstance(x, tuple) and len(x) == 2 and x[1] is None:
        received = "(sources, targets) with targets=None"
    elif isinstance(x, str):
        received = "a single source without targets"
    elif isinstance(x, (list, tuple)) and x and all(_is_sentence_list(item) for item in x):
        # e.g. `[sources, targets]`: a list is examples, so the pair must be a tuple.
        received = f"a {type(x).__name__} of {len(x)} lists, not of sentences"
    elif _is_sentence_list(x):
        received = f"{len(x)} sources without targets"
    else:
        received = f"{type(x).__name__} without targets"
    raise ValueError(
        "A translation model reads each source with its target: pass `(sources, targets)` "
        "as one tuple (e.g. `learner.predict((sources, targets))`, the teacher-forced "
        "outputs); to translate sources alone, use "
        "`ktlite.get_predictor(learner.model, preproc).predict(sources)`. "
        f"Received: {received}"
    )


def pair_dataset(sources: Sequence[str], targets: Sequence[str], preproc: PairPreprocessor) -> Any:
    """A `TaskDataset` of sentence pairs for a fitted `PairPreprocessor`.

    Args:
        sources: source sentences.
        targets: target sentences, one per source.
        preproc: the fitted preprocessor.

    Returns:
        A `ktlite.data.TaskDataset` with ``x={"source", "target"}`` (raw strings),
        ``y`` the target ids, ``transform=preproc.transform``, the BLEU/chrF reporter
        (`translation_reporter`, greedy) that `Learner.validate` prints, the source
        and target lengths, so that batches are length-bucketed, and a reader that takes
        raw pairs as `(sources, targets)`: `learner.validate(val_data=(sources, targets))`
        and `learner.predict((sources, targets))` (the teacher-forced outputs, one row a
        pair; a tuple of two strings is two sources, which need their targets too), and
        the translation model's layer groups for `Learner.fine_tune` (`layer_groups`).

    Raises:
        TypeError: for lists that are not sequences of strings, or a `preproc` that is not
            a `PairPreprocessor`.
        ValueError: for empty or mismatched lists, a missing value, or no `targets`.

    Example:
        >>> test = pair_dataset(test_en, test_it, preproc)
    """
    from ktlite.data import TaskDataset
    from ktlite.seq2seq.report import translation_reporter

    check_instance(preproc, PairPreprocessor, "preproc")
    if targets is None:
        raise ValueError(
            "A translation model reads each source with its target: pass `(sources, "
            "targets)` (to translate sources alone, use `get_predictor(...).predict`). "
            "Received: targets=None"
        )
    sources, targets = _pairs(sources, targets, "sources", "targets")
    labels = preproc.target_ids(targets)
    # A target fills as many decoder positions as it has real labels.
    lengths = np.stack([preproc.source_lengths(sources), (labels != PAD_ID).sum(axis=1)], axis=1)
    return TaskDataset(
        {"source": _object_array(sources), "target": _object_array(targets)},
        labels,
        transform=preproc.transform,
        task="seq2seq",
        reporter=translation_reporter(preproc),
        lengths=lengths,
        layer_groups=_layer_groups,
        sequence_labels=True,
        reader=functools.partial(_read_pairs_or_refuse, preproc=preproc),
        preproc=preproc,
    )


def pairs_from_array(
    x_train: Sequence[str],
    y_train: Sequence[str],
    x_test: Sequence[str] | None = None,
    y_test: Sequence[str] | None = None,
    val_pct: float = 0.1,
    source_maxlen: int | None = None,
    target_maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    joint_vocab: bool | None = None,
    lowercase: bool = False,
    random_state: int | None = 42,
    verbose: int = 1,
    backbone: Any = None,
) -> tuple[Any, Any, PairPreprocessor]:
    """Builds training and validation pairs and a fitted `PairPreprocessor`.

    Args:
        x_train: training source sentences (list, array or pandas Series of str).
        y_train: training target sentences, one per source.
        x_test: validation sources; when None, ``val_pct`` of the training pairs are held
            out at random.
        y_test: validation targets; required with ``x_test``.
        val_pct: the share held out when ``x_test`` is None (default 0.1; 0: no
            validation data, ``val`` is None).
        source_maxlen: source tokens per sentence; None picks it from the data (99% of
            training sources whole, a multiple of 16).
        target_maxlen: decoder positions per target; None picks it the same way.
        vocab_size: the largest WordPiece vocabulary size (default 8000; at most 2**20,
            see `PairPreprocessor`).
        joint_vocab: one vocabulary for both sides (None, the default, means True, or
            False with ``backbone``) or one per side.
        lowercase: lower-case and strip accents (default False). The model then writes
            lower-case translations without accents, and `learner.validate()` scores them
            against the references as given, so BLEU and chrF count every capital and
            accent they lack.
        random_state: seed of the validation split (default 42).
        verbose: 1 reports sizes and the vocabulary; 0 is silent.
        backbone: a text backbone pretrained on source-language text (folder path,
            `ktlite.text.Backbone`, or the learner from `ktlite.text.pretrain`), for
            `translation_model(..., backbone=)`: the sources are tokenized with its
            vocabulary and normalization (``source_maxlen`` at most its ``maxlen``), the
            targets get their own vocabulary (``joint_vocab=True`` is refused, ``lowercase``
            is the targets'). Default None. See `backbone_preprocessor`.

    Returns:
        ``(trn, val, preproc)``: two `ktlite.data.TaskDataset` (see `pair_dataset`;
        ``val`` is None with ``val_pct=0``) and the fitted `PairPreprocessor`.

    Raises:
        TypeError: for sentences that are not strings (the index is named), a
            ``backbone`` of another kind, a ``random_state`` that is not an int, or another
            argument of the wrong type (``joint_vocab`` not a bool, a size not an int).
        ValueError: for missing sentences (the index is named), empty or mismatched lists,
            ``x_test`` without ``y_test``, ``val_pct`` outside [0, 1), or a
            ``source_maxlen`` beyond the backbone's or ``joint_vocab=True`` beside it.

    Example:
        >>> trn, val, preproc = pairs_from_array(en, it, x_test=en_val, y_test=it_val)
    """
    sources, targets = _pairs(x_train, y_train, "x_train", "y_train")
    if (x_test is None) != (y_test is None):
        raise ValueError(
            "`x_test` and `y_test` must be given together. Received: "
            f"x_test={'None' if x_test is None else 'sentences'}, "
            f"y_test={'None' if y_test is None else 'sentences'}"
        )
    val_pct = check_val_pct(val_pct)
    check_seed(random_state, "random_state")
    check_verbose(verbose)
    if x_test is None:
        trn_idx, val_idx = split_indices(
            np.zeros(len(sources)), False, val_pct, random_state, "pairs"
        )
        val_sources = [sources[i] for i in val_idx]
        val_targets = [targets[i] for i in val_idx]
        sources = [sources[i] for i in trn_idx]
        targets = [targets[i] for i in trn_idx]
    else:
        val_sources, val_targets = _pairs(x_test, y_test, "x_test", "y_test")
    if backbone is None:
        preproc = PairPreprocessor(
            source_maxlen=source_maxlen,
            target_maxlen=target_maxlen,
            vocab_size=vocab_size,
            lowercase=lowercase,
            joint_vocab=True if joint_vocab is None else joint_vocab,
        )
    else:
        if joint_vocab is not None and check_bool(joint_vocab, "joint_vocab"):
            raise ValueError(
                "`joint_vocab` must be None or False beside `backbone`: the sources keep the "
                "backbone's vocabulary and the targets get their own. Received: "
                f"joint_vocab={joint_vocab!r}"
            )
        preproc = backbone_preprocessor(
            backbone, source_maxlen, target_maxlen, vocab_size, lowercase
        )
    preproc.fit(sources, targets)
    if verbose:
        say(
            f"{len(sources):,} training and {len(val_sources):,} validation pairs; "
            f"{preproc!r}"
        )
    val = pair_dataset(val_sources, val_targets, preproc) if val_sources else None
    return pair_dataset(sources, targets, preproc), val, preproc


def _read_pairs(
    path: Any, source_column: str, target_column: str, sep: str, encoding: str, arg: str
) -> tuple[list[str], list[str]]:
    rows = read_csv_columns(path, [source_column, target_column], sep, encoding, arg,
                            hint=_COLUMNS_HINT)
    if not rows:
        raise ValueError(f"`{arg}` has a header but no pairs. Received: {arg}={os.fspath(path)!r}")
    return [r[0] for r in rows], [r[1] for r in rows]


def pairs_from_csv(
    train_filepath: str | os.PathLike,
    source_column: str = "source",
    target_column: str = "target",
    val_filepath: str | os.PathLike | None = None,
    sep: str = ",",
    encoding: str = "utf-8",
    **kwargs: Any,
) -> tuple[Any, Any, PairPreprocessor]:
    """Builds training and validation pairs from CSV files (``.csv`` or ``.csv.gz``).

    Args:
        train_filepath: the training CSV file, with a header row.
        source_column: the column of source sentences (default ``"source"``).
        target_column: the column of target sentences (default ``"target"``).
        val_filepath: a validation CSV file with the same columns; when None,
            ``val_pct`` of the training pairs are held out.
        sep: the field delimiter (default ``","``).
        encoding: the file encoding (default ``"utf-8"``).
        **kwargs: any other argument of `pairs_from_array` (``val_pct``, ``vocab_size``,
            ``joint_vocab``, ...).

    Returns:
        ``(trn, val, preproc)`` as in `pairs_from_array`.

    Raises:
        TypeError: if a file path is not a str or path, or a column not a str.
        ValueError: for a missing file or column, a short row, a file without pairs, or
            any error of `pairs_from_array`.

    Example:
        >>> trn, val, preproc = pairs_from_csv("train.csv.gz", "en", "it",
        ...                                    val_filepath="val.csv.gz")
    """
    check_column_name(source_column, "source_column")
    check_column_name(target_column, "target_column")
    sources, targets = _read_pairs(
        train_filepath, source_column, target_column, sep, encoding, "train_filepath"
    )
    val = (None, None)
    if val_filepath is not None:
        val = _read_pairs(val_filepath, source_column, target_column, sep, encoding,
                          "val_filepath")
    return pairs_from_array(sources, targets, x_test=val[0], y_test=val[1], **kwargs)


def _frame_columns(df: Any, source_column: str, target_column: str, arg: str) -> tuple:
    check_frame_columns(df, [source_column, target_column], arg, hint=_COLUMNS_HINT)
    # Checked here, so that an error names the frame and column rather than `x_train`.
    return _pairs(df[source_column], df[target_column], f"{arg}[{source_column!r}]",
                  f"{arg}[{target_column!r}]")


def pairs_from_df(
    train_df: Any,
    source_column: str = "source",
    target_column: str = "target",
    val_df: Any = None,
    **kwargs: Any,
) -> tuple[Any, Any, PairPreprocessor]:
    """Builds training and validation pairs from pandas DataFrames.

    Args:
        train_df: the training frame.
        source_column: the column of source sentences (default ``"source"``).
        target_column: the column of target sentences (default ``"target"``).
        val_df: a validation frame with the same columns; when None, ``val_pct`` of the
            training pairs are held out.
        **kwargs: any other argument of `pairs_from_array`.

    Returns:
        ``(trn, val, preproc)`` as in `pairs_from_array`.

    Raises:
        TypeError: for a non-frame, a column that is not a str, a value that is not a
            string (named as ``train_df['source'][i]``, `i` its position), or any type
            error of `pairs_from_array`.
        ValueError: for a missing column, a missing value (named the same way), or any
            error of `pairs_from_array`.

    Example:
        >>> trn, val, preproc = pairs_from_df(df, "en", "it")
    """
    check_column_name(source_column, "source_column")
    check_column_name(target_column, "target_column")
    sources, targets = _frame_columns(train_df, source_column, target_column, "train_df")
    val = (None, None)
    if val_df is not None:
        val = _frame_columns(val_df, source_column, target_column, "val_df")
    return pairs_from_array(sources, targets, x_test=val[0], y_test=val[1], **kwargs)
