"""Tables: loaders, the column preprocessor, FT-Transformer and MLP models, predictor.

Example:
    >>> from ktlite import tabular
    >>> trn, val, preproc = tabular.tabular_from_df(df, label_columns="income")
    >>> model = tabular.tabular_classifier("ft_transformer", trn, preproc=preproc)
"""

from __future__ import annotations

from ktlite._lazy import lazy_attributes
from ktlite.tabular.loaders import (
    tabular_dataset,
    tabular_from_array,
    tabular_from_csv,
    tabular_from_df,
)
from ktlite.tabular.preprocessor import TabularPreprocessor

# Models and the predictor import Keras layers; loaded on first use.
_LAZY = {
    "tabular_classifier": "ktlite.tabular.models",
    "tabular_regressor": "ktlite.tabular.models",
    "TabularPredictor": "ktlite.tabular.predictor",
}

__all__ = [
    "TabularPreprocessor",
    "tabular_dataset",
    "tabular_from_array",
    "tabular_from_csv",
    "tabular_from_df",
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
