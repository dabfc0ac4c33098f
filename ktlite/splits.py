"""Train/validation splits shared by every task's loaders.

`split_indices` holds out a share of the examples, stratified by class when asked, so that
text, tables, images, translation and language-model loaders split the same way. Nothing
here knows what an example is: it works on the encoded labels only. A share of 0 holds out
nothing: the loaders then return no validation data (``None``), for a final fit on every
label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ktlite._console import warn
from ktlite.arguments import check_rate

__all__ = ["check_val_pct", "split_indices", "describe_holdout"]

# Random splits drawn for multilabel data before warning that a label has no training
# positive (a label with few positives is held out whole in some of them).
_MULTILABEL_DRAWS = 20


def check_val_pct(val_pct: Any) -> float:
    """Checks the share of examples held out for validation.

    Args:
        val_pct: the share, a float in [0, 1); 0 holds out nothing (no validation data).

    Returns:
        ``val_pct`` as a float.

    Raises:
        TypeError: when ``val_pct`` is not a number.
        ValueError: when ``val_pct`` is outside [0, 1).

    Example:
        >>> check_val_pct(0.1)
        0.1
    """
    return check_rate(val_pct, "val_pct")


def split_indices(
    y: np.ndarray,
    stratify: bool,
    val_pct: float,
    random_state: int | None,
    noun: str = "examples",
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(len(y))`` into sorted train and validation indices.

    With ``stratify`` every class keeps its share in both parts (largest-remainder
    rounding), and a class with one example stays in training: where that leaves fewer
    held out than ``val_pct`` asks, a warning says how many. Multilabel indicators
    (``y`` of shape ``(n, labels)``) are split at random, drawn again (up to
    ``_MULTILABEL_DRAWS`` times) while some label would keep no positive example in
    training, with a warning naming such labels if every draw does.

    Args:
        y: the encoded labels (class ids when ``stratify``), one per example.
        stratify: keep each class's share in both parts.
        val_pct: the share held out for validation, in [0, 1); 0 holds out nothing.
        random_state: the seed of the split, or None.
        noun: what the examples are called in errors (``"texts"``, ``"pairs"``, ...).
        class_names: the names of multilabel indicator columns, for the warning; default
            their positions.

    Returns:
        ``(train, val)``: sorted index arrays that together cover every example once;
        ``val`` is empty when ``val_pct`` is 0.

    Raises:
        ValueError: when a ``val_pct`` above 0 leaves no training or no validation example.

    Example:
        >>> train, val = split_indices(np.array([0, 0, 1, 1] * 5), True, 0.2, 42)
        >>> len(train), len(val)
        (16, 4)
    """
    n = len(y)
    if val_pct == 0:
        return np.arange(n), np.arange(0)
    n_val = int(round(n * val_pct))
    if n_val < 1 or n_val >= n:
        raise ValueError(
            f"`val_pct`={val_pct} leaves an empty training or validation split for {n} "
            f"{noun}. Use more {noun}, another val_pct, or pass validation data."
        )
    rng = np.random.default_rng(random_state)
    if not stratify:
        perm = rng.permutation(n)
        if y.ndim == 2:
            perm = _keep_labels_in_training(y, perm, n_val, rng, noun, class_names)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quotas = counts * val_pct
    take = np.minimum(np.floor(quotas).astype(int), counts - 1)
    order = np.argsort(-(quotas - np.floor(quotas)), kind="stable")
    for c in order:
        if take.sum() >= n_val:
            break
        if take[c] < counts[c] - 1:
            take[c] += 1
    val_parts = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        val_parts.append(rng.permutation(members)[: take[c]])
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(n), val, assume_unique=True)
    if 0 < len(val) < n_val:
        warn(
            f"`val_pct`={val_pct} held out {len(val)} of {n} {noun} ({len(val) / n:.0%}), not "
            f"{n_val}: a stratified split keeps at least one example of each class in "
            "training."
        )
    if len(val) == 0:
        many = (f" Every class has one example ({len(classes)} classes): if the labels are "
                "numbers to predict, pass label_mode='regression'." if counts.max() == 1
                else "")
        raise ValueError(
            f"`val_pct`={val_pct} leaves no validation {noun} after a stratified split of "
            f"{n} {noun}. Use a larger val_pct or pass validation data.{many}"
        )
    return train, val


def _keep_labels_in_training(
    y: np.ndarray,
    perm: np.ndarray,
    n_val: int,
    rng: np.random.Generator,
    noun: str,
    class_names: Sequence[str] | None,
) -> np.ndarray:
    """A permutation whose training part holds a positive example of every label that has
    one, drawn again while it does not (warns, naming the labels, when no draw does)."""
    present = y.sum(axis=0) > 0
    for draw in range(_MULTILABEL_DRAWS):
        hidden = np.flatnonzero(present & (y[perm[n_val:]].sum(axis=0) == 0))
        if not hidden.size:
            return perm
        if draw < _MULTILABEL_DRAWS - 1:
            perm = rng.permutation(len(y))
    names = [str(class_names[i]) if class_names is not None else str(i) for i in hidden]
    shown = ", ".join(repr(name) for name in names[:10]) + (", ..." if len(names) > 10 else "")
    warn(
        f"All the {noun} with the label(s) {shown} went to the validation split, in each of "
        f"{_MULTILABEL_DRAWS} random splits: the model would train without a positive "
        "example of them. Pass validation data, or a smaller val_pct."
    )
    return perm


def describe_holdout(val_pct: float, of: str, stratified: bool = False) -> str:
    """How a loader's validation data was held out, for the line it reports.

    Args:
        val_pct: the share held out (0: none).
        of: what it was held out of (``"x_train"``, ``"the rows"``).
        stratified: whether the split kept each class's share.

    Returns:
        The description.

    Example:
        >>> describe_holdout(0.1, "x_train", stratified=True)
        '10% of x_train held out, stratified'
    """
    if not val_pct:
        return "val_pct=0: none held out"
    return f"{val_pct:.0%} of {of} held out{', stratified' if stratified else ''}"
