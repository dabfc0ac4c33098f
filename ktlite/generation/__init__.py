"""Text generation: a decoder-only (causal) Transformer language model over plain texts.

Example:
    >>> from ktlite import generation
    >>> trn, val, preproc = generation.texts_for_lm(texts, val_pct=0.1)
    >>> model = generation.causal_lm("transformer", trn, preproc=preproc)
    >>> learner = ktlite.get_learner(model, train_data=trn, val_data=val)
    >>> learner.fit_onecycle(1e-3, 3)
    >>> learner.validate()  # perplexity per word and per token
    >>> generation.GenerationPredictor(model, preproc).predict("a library for")
"""

from __future__ import annotations

from ktlite.generation.data import LMPreprocessor, lm_dataset, texts_for_lm
from ktlite.generation.model import DecoderOnlySteps, causal_lm
from ktlite.generation.perplexity import perplexity_per_word, perplexity_reporter
from ktlite.generation.predictor import GenerationPredictor

__all__ = [
    "DecoderOnlySteps",
    "GenerationPredictor",
    "LMPreprocessor",
    "causal_lm",
    "lm_dataset",
    "perplexity_per_word",
    "perplexity_reporter",
    "texts_for_lm",
]
