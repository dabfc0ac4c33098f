"""Train/validation splits shared by every task's loaders.

`split_indices` holds out a share of the examples, stratified by class when asked, so that
text, tables, images, translation and language-model loaders split the same way. Nothing
here knows what an example is: it works on the encoded labels only. A share of 0 holds out
nothing: the loaders then return no validation data (``None``), for a final fit on every
label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ktlite.arguments import check_rate

__all__ = ["check_val_pct", "split_indices", "describe_holdout"]


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
) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(len(y))`` into sorted train and validation indices.

    With ``stratify`` every class keeps its share in both parts (largest-remainder
    rounding), and a class with one example stays in training.

    Args:
        y: the encoded labels (class ids when ``stratify``), one per example.
        stratify: keep each class's share in both parts.
        val_pct: the share held out for validation, in [0, 1); 0 holds out nothing.
        random_state: the seed of the split, or None.
        noun: what the examples are called in errors (``"texts"``, ``"pairs"``, ...).

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
    if len(val) == 0:
        many = (f" Every class has one example ({len(classes)} classes): if the labels are "
                "numbers to predict, pass label_mode='regression'." if counts.max() == 1
                else "")
        raise ValueError(
            f"`val_pct`={val_pct} leaves no validation {noun} after a stratified split of "
            f"{n} {noun}. Use a larger val_pct or pass validation data.{many}"
        )
    return train, val


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
