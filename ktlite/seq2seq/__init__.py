"""Translation: sentence-pair loaders, the pair preprocessor, encoder-decoder models, decoding.

Example:
    >>> from ktlite import seq2seq
    >>> trn, val, preproc = seq2seq.pairs_from_array(en, it, x_test=en_val, y_test=it_val)
    >>> model = seq2seq.translation_model("transformer", trn, preproc=preproc)
"""

from __future__ import annotations

from ktlite._lazy import lazy_attributes
from ktlite.seq2seq.loaders import pair_dataset, pairs_from_array, pairs_from_csv, pairs_from_df
from ktlite.seq2seq.preprocessor import PairPreprocessor, backbone_preprocessor

# Imported on first use: they pull in Keras models and the decoding graph.
_LAZY = {
    "translation_model": "ktlite.seq2seq.models",
    "TranslationPredictor": "ktlite.seq2seq.predictor",
    "translation_reporter": "ktlite.seq2seq.report",
    "view_top_losses": "ktlite.seq2seq.report",
}

__all__ = [
    "PairPreprocessor",
    "backbone_preprocessor",
    "pair_dataset",
    "pairs_from_array",
    "pairs_from_csv",
    "pairs_from_df",
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
