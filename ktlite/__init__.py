"""ktlite: train and ship Keras Transformer models in three lines.

The top-level names are imported lazily, so ``import ktlite`` (and the ``ktlite`` command
line) stays fast until a function that needs TensorFlow is first used.

Example:
    >>> import ktlite
    >>> learner = ktlite.get_learner(model, train_data=(x, y), batch_size=32)
    >>> learner.fit_onecycle(learner.lr_find().suggestion, 3)
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Learner": "ktlite.learner",
    "get_learner": "ktlite.learner",
    "Predictor": "ktlite.predictor",
    "get_predictor": "ktlite.predictor",
    "load_predictor": "ktlite.predictor",
    "TaskDataset": "ktlite.data",
    "distill": "ktlite.compress",
}


def _submodules() -> list[str]:
    """Every public module and package of ktlite, found on disk: a new task folder needs no
    edit here to be reachable as `ktlite.<task>`."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )


__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"ktlite.{name}") is not None:
        value = importlib.import_module(f"ktlite.{name}")
    else:
        raise AttributeError(f"module 'ktlite' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_submodules()))
