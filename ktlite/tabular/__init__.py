"""Tables: loaders, the column preprocessor, FT-Transformer and MLP models, predictor.

Example:
    >>> from ktlite import tabular
    >>> trn, val, preproc = tabular.tabular_from_df(df, label_columns="income")
    >>> model = tabular.tabular_classifier("ft_transformer", trn, preproc=preproc)
"""

from __future__ import annotations

import importlib
from typing import Any

from ktlite.tabular.loaders import tabular_from_array, tabular_from_csv, tabular_from_df
from ktlite.tabular.preprocessor import TabularPreprocessor

# Models and the predictor import Keras layers; loaded on first use.
_LAZY = {
    "tabular_classifier": "ktlite.tabular.models",
    "tabular_regressor": "ktlite.tabular.models",
    "TabularPredictor": "ktlite.tabular.predictor",
}

__all__ = [
    "TabularPreprocessor",
    "tabular_from_array",
    "tabular_from_csv",
    "tabular_from_df",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ktlite.tabular' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
