"""Text classification and regression: loaders, the WordPiece preprocessor, models, predictor.

Example:
    >>> from ktlite import text
    >>> trn, val, preproc = text.texts_from_array(x_train, y_train, x_test, y_test)
    >>> model = text.text_classifier("transformer", trn, preproc=preproc)
"""

from __future__ import annotations

from ktlite._lazy import lazy_attributes
from ktlite.text.loaders import (
    text_dataset,
    texts_from_array,
    texts_from_csv,
    texts_from_df,
    texts_from_folder,
)
from ktlite.text.preprocessor import TextPreprocessor

# Imported on first use: they pull in Keras models, which `from ktlite import text` need not.
_LAZY = {
    "text_classifier": "ktlite.text.models",
    "text_regression_model": "ktlite.text.models",
    "TextPredictor": "ktlite.text.predictor",
    "pretrain": "ktlite.text.masked_lm",
    "MaskedLMLearner": "ktlite.text.masked_lm",
    "Backbone": "ktlite.text.backbone",
    "load_backbone": "ktlite.text.backbone",
    "save_backbone": "ktlite.text.masked_lm",
}

__all__ = [
    "TextPreprocessor",
    "text_dataset",
    "texts_from_array",
    "texts_from_csv",
    "texts_from_df",
    "texts_from_folder",
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
