"""Tiny text corpora the tests build themselves (importable thanks to `pythonpath = tests`)."""

import numpy as np

from ktlite.data import TaskDataset

POS, NEG = ["good", "great", "superb"], ["bad", "awful", "dull"]
FILLER = ["the", "a", "movie", "film", "was", "plot", "actor", "very", "really", "it"]


def planted_corpus(n, seed, filler_words):
    """Texts whose class ("pos"/"neg") is decided by one planted word among filler words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, filler_words)) + [str(rng.choice(POS if label else NEG))]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append("pos" if label else "neg")
    return texts, labels


def task_dataset(texts, y, preproc):
    """A text `TaskDataset` tokenized by `preproc`."""
    return TaskDataset(np.array(texts, dtype=object), preproc.encode_labels(y),
                       transform=preproc.tokenize, task="text")
