"""Loaders that turn raw texts and labels into ``(trn, val, preproc)``.

Every loader ends in `texts_from_array`: labels are read from all training labels, the
WordPiece vocabulary from the training texts only (after a validation split is taken off),
and ``trn``/``val`` are `ktlite.data.TaskDataset` objects holding the raw strings, the
encoded labels and ``preproc.tokenize`` as their in-graph transform.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ktlite._console import warn
from ktlite.arguments import (
    check_bool,
    check_fitted,
    check_instance,
    check_seed,
    check_verbose,
)
from ktlite.columns import (
    check_column_name,
    examples_from_frame,
    label_columns_and_classes,
    labels_from_strings,
    read_csv_rows,
)
from ktlite.saving import as_path
from ktlite.splits import check_val_pct, describe_holdout, split_indices
from ktlite.text.preprocessor import (
    DEFAULT_VOCAB_SIZE,
    TextPreprocessor,
    _say,
    check_reused_sizes,
    validate_texts,
)


def _object_array(texts: list[str]) -> np.ndarray:
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    return arr


def texts_from_array(
    x_train: Sequence[str],
    y_train: Any,
    x_test: Sequence[str] | None = None,
    y_test: Any = None,
    val_pct: float = 0.1,
    maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    random_state: int | None = 42,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    lowercase: bool | None = None,
    verbose: int = 1,
    backbone: Any = None,
) -> tuple[Any, Any, TextPreprocessor]:
    """Builds training and validation data and a fitted `TextPreprocessor` from arrays.

    Labels may be strings, ints, one-hot rows, lists of labels or a 0/1 matrix (multilabel),
    or floats (regression); see `ktlite.labels` for how they are detected.

    Args:
        x_train: training texts (list, tuple, numpy array or pandas Series of str).
        y_train: training labels, one per text.
        x_test: validation texts; when None, ``val_pct`` of the training texts are held out
            (stratified by class for multiclass labels).
        y_test: validation labels; required with ``x_test``.
        val_pct: the share held out for validation when ``x_test`` is None (default 0.1);
            0 holds out nothing and returns no validation data (``val`` is None), to train
            on every label once the settings are chosen.
        maxlen: tokens per text including ``[CLS]``; None (default) chooses the smallest
            multiple of 16 that holds 99% of the training texts whole, at most 512 (64 for
            WordNet glosses).
        vocab_size: the largest WordPiece vocabulary size (default 16000; at most 2**20,
            see `TextPreprocessor`).
        random_state: seed of the validation split (default 42; None for a random split).
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"``, or None (detect).
        class_names: class names in output order; inferred and sorted when None.
        lowercase: lower-case and strip accents before tokenizing; None (default) means
            True, or the backbone's setting with ``backbone``.
        verbose: 1 reports sizes, classes, vocabulary and ``maxlen``; 0 is silent.
        backbone: a pretrained backbone (folder path, `Backbone`, or the learner from
            `ktlite.text.pretrain`) whose vocabulary, normalization and ``maxlen`` are reused
            instead of learned; ``maxlen`` and ``lowercase`` left at None take the
            backbone's values and another value than the backbone's is refused;
            ``vocab_size`` at its default (16000, passed or not) or the backbone's size has
            no effect, and any other value is refused. Default None.

    Returns:
        ``(trn, val, preproc)``: two `ktlite.data.TaskDataset` objects (raw texts as a 1-D
        object array, encoded labels, ``transform=preproc.tokenize``, ``task="text"``,
        ``lengths=preproc.sequence_lengths`` so the learner can pad each batch only as far
        as its texts need; see `ktlite.get_learner`'s ``bucketing``; ``val`` is None with
        ``val_pct=0``) and the fitted `TextPreprocessor`.

    Raises:
        TypeError: for texts that are not a sequence of strings (the index is named), a
            ``random_state``, ``maxlen`` or ``vocab_size`` that is not an int, a
            ``lowercase`` that is not a bool, or ``class_names`` that is not a list of
            strings.
        ValueError: for a missing text (the index is named), an empty corpus, texts
            and labels of different lengths, missing (NaN/None) labels, a single class,
            ambiguous labels, validation labels outside the training classes,
            ``val_pct`` outside [0, 1), a ``vocab_size`` outside [6, 2**20], or a
            ``maxlen``, ``vocab_size`` or ``lowercase`` beside ``backbone`` that the
            backbone cannot honour.

    Example:
        >>> trn, val, preproc = texts_from_array(x_train, y_train, val_pct=0.2)
        >>> preproc.class_names
        ['neg', 'pos']
    """

    texts = validate_texts(x_train, "x_train")
    if y_train is None:
        raise ValueError("`y_train` must hold one label per text. Received: y_train=None")
    for name, labels in (("y_train", y_train), ("y_test", y_test)):
        if labels is not None and (not hasattr(labels, "__len__") or isinstance(labels, str)):
            raise TypeError(f"`{name}` must be a list or array of labels. Received: {name} "
                            f"of type {type(labels).__name__}")
    if len(y_train) != len(texts):
        raise ValueError(
            f"`x_train` and `y_train` must have the same length. Received: {len(texts)} texts "
            f"and {len(y_train)} labels"
        )
    if (x_test is None) != (y_test is None):
        raise ValueError(
            "`x_test` and `y_test` must be given together. Received: "
            f"x_test={'None' if x_test is None else 'texts'}, "
            f"y_test={'None' if y_test is None else 'labels'}"
        )
    val_pct = check_val_pct(val_pct)
    check_seed(random_state, "random_state")
    check_verbose(verbose)
    if backbone is None:
        preproc = TextPreprocessor(
            maxlen=maxlen,
            vocab_size=vocab_size,
            lowercase=True if lowercase is None else lowercase,
            label_mode=label_mode,
            class_names=class_names,
        )
    else:
        preproc = _preproc_from_backbone(
            backbone, maxlen, vocab_size, lowercase, label_mode, class_names
        )
    preproc.fit_labels(y_train, name="y_train")
    y_enc = preproc.encode_labels(y_train, name="y_train")

    if x_test is None:
        stratify = preproc.label_mode == "multiclass"
        train_idx, val_idx = split_indices(y_enc, stratify, val_pct, random_state, "texts",
                                           preproc.class_names)
        train_texts = [texts[i] for i in train_idx]
        val_texts = [texts[i] for i in val_idx]
        y_trn, y_val = y_enc[train_idx], y_enc[val_idx]
        source = describe_holdout(val_pct, "x_train", stratify)
    else:
        val_texts = validate_texts(x_test, "x_test")
        if len(y_test) != len(val_texts):
            raise ValueError(
                f"`x_test` and `y_test` must have the same length. Received: {len(val_texts)} "
                f"texts and {len(y_test)} labels"
            )
        train_texts, y_trn = texts, y_enc
        y_val = preproc.encode_labels(y_test, name="y_test")
        source = "x_test"

    _say(
        f"{len(train_texts):,} training and {len(val_texts):,} validation texts ({source}); "
        + _describe_labels(preproc),
        verbose,
    )
    if backbone is None:
        preproc.fit_vocab(train_texts, verbose=verbose, name="x_train")
    trn = _text_dataset(train_texts, y_trn, preproc)
    return trn, _text_dataset(val_texts, y_val, preproc) if val_texts else None, preproc


def text_dataset(texts: Sequence[str], labels: Any, preproc: TextPreprocessor) -> Any:
    """A `TaskDataset` of new texts for a fitted `TextPreprocessor`, e.g. a test set.

    The loaders build their own datasets with it, so `Learner.predict(texts)` and
    `Learner.validate(val_data=(texts, labels))` read raw texts through it too.

    Args:
        texts: the texts.
        labels: one label per text, in the form the loader took (class names, ints, 0/1
            rows, floats), or `None` for unlabelled texts.
        preproc: the fitted preprocessor.

    Returns:
        A `ktlite.data.TaskDataset` of the raw strings, the encoded labels,
        `preproc.tokenize` as transform, each text's length (batches are length-bucketed)
        and the classification reporter that `Learner.validate` prints.

    Raises:
        TypeError: if `preproc` is not a `TextPreprocessor`, or for texts that are not a
            sequence of strings.
        ValueError: for empty texts, a missing value, a vocabulary not fitted yet, a number
            of labels other than the number of texts, or labels the training labels never
            had.

    Example:
        >>> test = text_dataset(x_test, y_test, preproc)
        >>> learner.validate(test)
    """
    check_fitted(preproc, TextPreprocessor)
    texts = validate_texts(texts, "texts")
    y = preproc.encode_labels_of(labels, len(texts), "text")
    return _text_dataset(texts, y, preproc)


def _text_dataset(texts: list[str], y: np.ndarray | None, preproc: TextPreprocessor) -> Any:
    from ktlite.classifier import classification_reporter
    from ktlite.data import TaskDataset

    return TaskDataset(
        _object_array(texts),
        y,
        transform=preproc.tokenize,
        task="text",
        reporter=classification_reporter(preproc.labels),
        lengths=preproc.sequence_lengths,
        reader=functools.partial(text_dataset, preproc=preproc),
        preproc=preproc,
    )


def _preproc_from_backbone(
    backbone: Any,
    maxlen: int | None,
    vocab_size: int,
    lowercase: bool | None,
    label_mode: str | None,
    class_names: Any,
) -> TextPreprocessor:
    """A preprocessor with the backbone's vocabulary and normalization, labels unfitted.

    `maxlen` and `lowercase` at None take the backbone's values; `vocab_size` at its
    default (passed or not: only the value is compared) or the backbone's has no effect;
    any other value, which the backbone cannot honour, is refused rather than ignored.
    """
    from ktlite.labels import LabelEncoder
    from ktlite.text.backbone import resolve_backbone

    source = resolve_backbone(backbone).preproc
    check_reused_sizes(source, maxlen, vocab_size, "the backbone", unset=DEFAULT_VOCAB_SIZE)
    if lowercase is not None:
        lowercase = check_bool(lowercase, "lowercase")
    if lowercase is not None and lowercase != source.lowercase:
        raise ValueError(
            f"`lowercase` must be None or the backbone's {source.lowercase} (it was pretrained "
            f"on text normalized that way). Received: lowercase={lowercase!r}"
        )
    preproc = TextPreprocessor.from_config(
        {**source.get_config(), "label_mode": None, "class_names": None, "num_outputs": None},
        source.vocab,
    )
    preproc.labels = LabelEncoder(label_mode, class_names)
    return preproc


def _describe_labels(preproc: TextPreprocessor) -> str:
    if preproc.label_mode == "regression":
        return f"regression with {preproc.num_outputs} target(s)"
    names = preproc.class_names or []
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"{preproc.label_mode} with {len(names)} classes: {shown}"


# --------------------------------------------------------------------------- CSV


_COLUMNS_HINT = "Set `text_column` and `label_columns`."


def _read_csv(
    path: Any, text_column: str, label_columns: list[str], sep: str, encoding: str, arg: str
) -> tuple[list[str], Any]:
    columns = [text_column, *label_columns]
    _, rows, lines = read_csv_rows(path, columns, sep, encoding, arg, hint=_COLUMNS_HINT)
    if not rows:
        raise ValueError(f"`{arg}` has a header but no rows. Received: {arg}={os.fspath(path)!r}")
    texts = [r[0] for r in rows]
    return texts, labels_from_strings([r[1:] for r in rows], label_columns, os.fspath(path),
                                      lines)


def _texts_from_tables(
    read: Callable[[Any, str], tuple[Any, Any]],
    train: tuple[Any, str],
    val: tuple[Any, str],
    class_names: Sequence[str] | None,
    label_mode: str | None,
    **options: Any,
) -> tuple[Any, Any, TextPreprocessor]:
    """Reads training and optional validation tables and passes them to `texts_from_array`.

    Args:
        read: called as ``read(source, arg)``; returns ``(texts, labels)`` of one table and
            names ``arg`` in its errors.
        train: ``(source, arg)`` of the training table.
        val: ``(source, arg)`` of the validation table; a None source holds out
            ``val_pct`` of the training rows instead.
        class_names: as in `texts_from_array` (with several label columns, in the order
            ``read`` reads them: see `ktlite.columns.label_columns_and_classes`).
        label_mode: as in `texts_from_array`.
        **options: the other keyword arguments of `texts_from_array`.

    Returns:
        ``(trn, val, preproc)`` as in `texts_from_array`.

    Raises:
        ValueError: for any error ``read`` or `texts_from_array` raises.

    Example:
        >>> _texts_from_tables(read, (train_df, "train_df"), (None, "val_df"),
        ...                    None, None, val_pct=0.2)
    """
    x_train, y_train = read(*train)
    x_test = y_test = None
    if val[0] is not None:
        x_test, y_test = read(*val)
    return texts_from_array(
        x_train,
        y_train,
        x_test,
        y_test,
        label_mode=label_mode,
        class_names=class_names,
        **options,
    )


def texts_from_csv(
    train_filepath: str | os.PathLike,
    text_column: str = "text",
    label_columns: str | Sequence[str] = "label",
    val_filepath: str | os.PathLike | None = None,
    val_pct: float = 0.1,
    maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    random_state: int | None = 42,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    lowercase: bool | None = None,
    sep: str = ",",
    encoding: str = "utf-8",
    verbose: int = 1,
    backbone: Any = None,
) -> tuple[Any, Any, TextPreprocessor]:
    """Builds training and validation data from CSV files (``.csv`` or gzipped ``.csv.gz``).

    One label column holds one label per row: integers are classes, other numbers a
    regression target, anything else class names. Several label columns are read as a
    numeric matrix: 0/1 columns are one-hot (multiclass) or multilabel, and the column
    names become the class names; other numbers are regression targets.

    Args:
        train_filepath: the training CSV file, with a header row.
        text_column: the column holding the text (default ``"text"``).
        label_columns: the label column, or a list of label columns (default ``"label"``).
        val_filepath: a validation CSV file with the same columns; when None, ``val_pct``
            of the training rows are held out.
        val_pct: the share held out when ``val_filepath`` is None (default 0.1; 0: no
            validation data).
        maxlen: see `texts_from_array` (None picks it from the data).
        vocab_size: the largest WordPiece vocabulary size (default 16000; at most 2**20,
            see `TextPreprocessor`).
        random_state: seed of the validation split (default 42).
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"`` or None (detect).
        class_names: class names in output order; inferred when None; for several
            label columns see `ktlite.columns.label_columns_and_classes`.
        lowercase: lower-case and strip accents before tokenizing; None (default) means
            True, or the backbone's setting with ``backbone``.
        sep: the field delimiter (default ``","``).
        encoding: the file encoding (default ``"utf-8"``).
        verbose: 1 reports what was read and learned.
        backbone: reuse a pretrained backbone's vocabulary (see `texts_from_array`).

    Returns:
        ``(trn, val, preproc)`` as in `texts_from_array`.

    Raises:
        TypeError: for a ``text_column`` that is not a str or ``label_columns`` that are
            not a str or a list of them, or any type error of `texts_from_array`.
        ValueError: for a missing file, missing or repeated columns, malformed rows or
            quoting, a file without rows, empty labels, or any error `texts_from_array`
            raises.

    Example:
        >>> trn, val, preproc = texts_from_csv("train.csv", "text", "label",
        ...                                    val_filepath="test.csv")
    """
    columns, class_names = label_columns_and_classes(label_columns, class_names, label_mode)
    check_column_name(text_column, "text_column")
    return _texts_from_tables(
        lambda path, arg: _read_csv(path, text_column, columns, sep, encoding, arg),
        (train_filepath, "train_filepath"),
        (val_filepath, "val_filepath"),
        class_names,
        label_mode,
        val_pct=val_pct,
        maxlen=maxlen,
        vocab_size=vocab_size,
        random_state=random_state,
        lowercase=lowercase,
        verbose=verbose,
        backbone=backbone,
    )


# ----------------------------------------------------------------------- DataFrame


def texts_from_df(
    train_df: Any,
    text_column: str = "text",
    label_columns: str | Sequence[str] = "label",
    val_df: Any = None,
    val_pct: float = 0.1,
    maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    random_state: int | None = 42,
    label_mode: str | None = None,
    class_names: Sequence[str] | None = None,
    lowercase: bool | None = None,
    verbose: int = 1,
    backbone: Any = None,
) -> tuple[Any, Any, TextPreprocessor]:
    """Builds training and validation data from pandas DataFrames.

    pandas is never imported by ktlite; any DataFrame-like object with ``columns`` and
    column indexing works. With several label columns the column names become the class
    names (0/1 columns) or the targets are regression outputs (other numbers).

    Args:
        train_df: the training DataFrame.
        text_column: the column holding the text (default ``"text"``).
        label_columns: the label column, or a list of label columns (default ``"label"``).
            A single column may hold lists of labels (multilabel).
        val_df: a validation DataFrame with the same columns; when None, ``val_pct`` of the
            training rows are held out.
        val_pct: the share held out when ``val_df`` is None (default 0.1; 0: no validation data).
        maxlen: see `texts_from_array` (None picks it from the data).
        vocab_size: the largest WordPiece vocabulary size (default 16000; at most 2**20,
            see `TextPreprocessor`).
        random_state: seed of the validation split (default 42).
        label_mode: ``"multiclass"``, ``"multilabel"``, ``"regression"`` or None (detect).
        class_names: class names in output order; inferred when None; for several
            label columns see `ktlite.columns.label_columns_and_classes`.
        lowercase: lower-case and strip accents before tokenizing; None (default) means
            True, or the backbone's setting with ``backbone``.
        verbose: 1 reports what was read and learned.
        backbone: reuse a pretrained backbone's vocabulary (see `texts_from_array`).

    Returns:
        ``(trn, val, preproc)`` as in `texts_from_array`.

    Raises:
        TypeError: for a ``train_df`` or ``val_df`` that is not a DataFrame, a
            ``text_column`` that is not a str or ``label_columns`` that are not a str or a
            list of them, or any type error of `texts_from_array`.
        ValueError: for missing or repeated columns, missing texts or labels (NaN; the row
            is named), or any error `texts_from_array` raises.

    Example:
        >>> df = pd.DataFrame({"text": texts, "label": labels})
        >>> trn, val, preproc = texts_from_df(df, "text", "label")
    """
    columns, class_names = label_columns_and_classes(label_columns, class_names, label_mode)
    check_column_name(text_column, "text_column")
    return _texts_from_tables(
        lambda df, arg: examples_from_frame(df, text_column, columns, arg, _COLUMNS_HINT),
        (train_df, "train_df"),
        (val_df, "val_df"),
        class_names,
        label_mode,
        val_pct=val_pct,
        maxlen=maxlen,
        vocab_size=vocab_size,
        random_state=random_state,
        lowercase=lowercase,
        verbose=verbose,
        backbone=backbone,
    )


# -------------------------------------------------------------------------- folders


def _class_folders(folder: str) -> list[str]:
    return sorted(
        d
        for d in os.listdir(folder)
        if not d.startswith(".") and os.path.isdir(os.path.join(folder, d))
    )


def _text_files(class_dir: str) -> list[str]:
    """The paths of the ``.txt`` files in a folder (any case: ``.TXT`` too), sorted."""
    paths = (os.path.join(class_dir, name) for name in sorted(os.listdir(class_dir))
             if not name.startswith(".") and name.lower().endswith(".txt"))
    return [path for path in paths if os.path.isfile(path)]


def _read_folder(
    folder: str, classes: list[str], encoding: str
) -> tuple[list[str], list[str], list[str]]:
    """Reads ``folder/<class>/*.txt`` for the given classes; returns texts, labels, and the
    other sub-folders that hold texts."""
    texts: list[str] = []
    labels: list[str] = []
    for cls in classes:
        class_dir = os.path.join(folder, cls)
        if not os.path.isdir(class_dir):
            continue
        for path in _text_files(class_dir):
            try:
                with open(path, encoding=encoding) as f:
                    texts.append(f.read())
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path!r} is not valid {encoding}: {err}. Pass the files' `encoding`."
                ) from None
            labels.append(cls)
    extras = [d for d in _class_folders(folder)
              if d not in classes and _text_files(os.path.join(folder, d))]
    return texts, labels, extras


def texts_from_folder(
    root: str | os.PathLike,
    train_folder: str = "train",
    test_folder: str | None = "test",
    class_names: Sequence[str] | None = None,
    val_pct: float = 0.1,
    maxlen: int | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    random_state: int | None = 42,
    lowercase: bool | None = None,
    encoding: str = "utf-8",
    verbose: int = 1,
    backbone: Any = None,
) -> tuple[Any, Any, TextPreprocessor]:
    """Builds training and validation data from ``root/train/<class>/*.txt`` files.

    Each sub-folder of ``root/train_folder`` that holds ``.txt`` files (``.TXT`` too) is a
    class (sorted by name) and each such file in it one text; sub-folders without them are
    not classes (with a warning). ``root/test_folder`` (same layout) is the validation data; when it
    does not exist (or ``test_folder`` is None), ``val_pct`` of the training texts are held
    out instead.

    Args:
        root: the folder holding ``train_folder`` (and maybe ``test_folder``).
        train_folder: the training sub-folder (default ``"train"``).
        test_folder: the validation sub-folder (default ``"test"``), or None.
        class_names: the class folders to read, in output order; all sub-folders of
            ``train_folder`` (sorted) when None.
        val_pct: the share held out when there is no test folder (default 0.1; 0: no
            validation data).
        maxlen: see `texts_from_array` (None picks it from the data).
        vocab_size: the largest WordPiece vocabulary size (default 16000; at most 2**20,
            see `TextPreprocessor`).
        random_state: seed of the validation split (default 42).
        lowercase: lower-case and strip accents before tokenizing; None (default) means
            True, or the backbone's setting with ``backbone``.
        encoding: the files' encoding (default ``"utf-8"``).
        verbose: 1 reports what was read and learned.
        backbone: reuse a pretrained backbone's vocabulary (see `texts_from_array`).

    Returns:
        ``(trn, val, preproc)`` as in `texts_from_array`.

    Raises:
        TypeError: when ``root`` is not a path (str or ``os.PathLike``), ``train_folder``
            not a str, ``test_folder`` neither a str nor None, ``val_pct`` not a number,
            or ``class_names`` a single string rather than a list.
        ValueError: when ``val_pct`` is outside [0, 1), ``root/train_folder`` is missing
            or has fewer than 2 class folders with texts (of ``class_names`` when given), a
            named class folder is missing, a file is not valid text in ``encoding``, or the
            test folder has classes the training folder has not.

    Example:
        >>> trn, val, preproc = texts_from_folder("aclImdb", train_folder="train",
        ...                                       test_folder="test")
    """
    root = os.fspath(as_path(root, "root"))
    check_instance(train_folder, str, "train_folder")
    if test_folder is not None:
        check_instance(test_folder, str, "test_folder")
    val_pct = check_val_pct(val_pct)
    train_dir = os.path.join(root, train_folder)
    if not os.path.isdir(train_dir):
        raise ValueError(
            f"`root`/`train_folder` must be an existing folder. Received: {train_dir!r}"
        )
    found = _class_folders(train_dir)
    if class_names is None:
        classes = found
    elif isinstance(class_names, str):
        raise TypeError(f"`class_names` must be a list of folder names, not one string. "
                        f"Received: class_names={class_names!r}; pass [{class_names!r}, ...]")
    else:
        classes = [str(c) for c in class_names]
        missing = [c for c in classes if c not in found]
        if missing:
            raise ValueError(
                f"`class_names` {missing} have no folder in {train_dir!r}; it has {found}."
            )
    x_train, y_train, _ = _read_folder(train_dir, classes, encoding)
    with_texts = sorted(set(y_train))
    if len(with_texts) < 2:
        raise ValueError(
            f"{train_dir!r} must hold at least 2 class folders with .txt files "
            f"(<class>/*.txt). Received: classes with texts {with_texts} (sub-folders: {found})"
        )
    if class_names is None and len(with_texts) < len(classes):
        warn(
            f"Sub-folders of {train_dir!r} without .txt files are not classes: "
            f"{[c for c in classes if c not in with_texts]}",
        )
        classes = with_texts
    elif len(with_texts) < len(classes):
        warn(
            f"`class_names` {[c for c in classes if c not in with_texts]} have no .txt files "
            f"in {train_dir!r}, so the model never sees them in training: add texts to their "
            "folders or leave them out of `class_names`.",
        )
    x_test = y_test = None
    test_dir = None if test_folder is None else os.path.join(root, test_folder)
    if test_dir is not None and os.path.isdir(test_dir):
        x_test, y_test, extras = _read_folder(test_dir, classes, encoding)
        if extras and class_names is None:
            raise ValueError(
                f"{test_dir!r} (`test_folder`) has class folders {extras} that {train_dir!r} "
                "lacks, so the model could never predict them: remove them, pass "
                "`class_names` listing every class, or `test_folder=None`."
            )
        if not x_test:
            raise ValueError(f"No .txt files found in the class folders of {test_dir!r}.")
    elif test_dir is not None:
        held = f"holding out {val_pct:.0%} of" if val_pct else "training on all"
        _say(f"No {test_dir!r} folder: {held} the training texts.", verbose)
    return texts_from_array(
        x_train,
        y_train,
        x_test,
        y_test,
        val_pct=val_pct,
        maxlen=maxlen,
        vocab_size=vocab_size,
        random_state=random_state,
        label_mode="multiclass",
        class_names=classes,
        lowercase=lowercase,
        verbose=verbose,
        backbone=backbone,
    )
