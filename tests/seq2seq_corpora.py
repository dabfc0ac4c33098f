"""Tiny sentence-pair tasks for the translation and generation tests."""

import numpy as np

WORDS = "a b c d e f".split()


def task_pairs(n, seed, tasks=("copy", "reverse")):
    """Sources "copy w1 .. wn" -> "w1 .. wn" and "reverse w1 .. wn" -> "wn .. w1"."""
    rng = np.random.default_rng(seed)
    sources, targets = [], []
    for i in range(n):
        words = list(rng.choice(WORDS, rng.integers(1, 5)))
        task = tasks[i % len(tasks)]
        sources.append(" ".join([task, *words]))
        targets.append(" ".join(words if task == "copy" else words[::-1]))
    return sources, targets
