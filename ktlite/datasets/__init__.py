"""Small real data sets shipped with ktlite, for the demo, the notebooks and the tests.

``wordnet_lexnames``: 31,903 WordNet 3.0 synsets (a deterministic 30% sample of the
93,822 / 11,908 train / test split), each a short text (the synset's words and gloss) labelled
with its lexicographer file, 45 classes such as ``noun.animal`` or ``verb.motion``. Licence:
WordNet 3.0 (see ``LICENSE-WORDNET.txt`` beside this file). Rebuild with
``python -m ktlite.datasets.build_wordnet_lexnames``.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from ktlite.arguments import check_choice

__all__ = ["load_wordnet_lexnames"]

_HERE = Path(__file__).resolve().parent
_SPLITS = ("train", "test")


def load_wordnet_lexnames(split: str = "train") -> tuple[list[str], list[str]]:
    """Loads the shipped WordNet lexnames sample.

    Args:
        split: ``"train"`` (28,334 texts) or ``"test"`` (3,569 texts).

    Returns:
        ``(texts, labels)``: two lists of str of equal length.

    Raises:
        TypeError: if `split` is not a str.
        ValueError: if `split` is not one of ``"train"``, ``"test"``.

    Example:
        >>> texts, labels = load_wordnet_lexnames("test")
        >>> labels[0], texts[0][:30]
    """
    check_choice(split, "split", _SPLITS)
    texts: list[str] = []
    labels: list[str] = []
    with gzip.open(_HERE / f"wordnet_lexnames_{split}.csv.gz", "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            labels.append(row["label"])
            texts.append(row["text"])
    return texts, labels
