"""A tiny translator that copies or reverses words, trained once per session."""

import keras
import pytest
import tensorflow as tf

from ktlite import seq2seq
from seq2seq_corpora import task_pairs


@pytest.fixture(scope="session")
def translator():
    """(model, preproc): copies or reverses held-out sentences exactly with greedy decoding."""
    keras.utils.set_random_seed(0)
    sources, targets = task_pairs(1000, seed=0)
    trn, _, preproc = seq2seq.pairs_from_array(
        sources, targets, x_test=sources[:2], y_test=targets[:2], vocab_size=100,
        source_maxlen=8, target_maxlen=8, verbose=0,
    )
    model = seq2seq.translation_model(
        "transformer", trn, preproc=preproc, embed_dim=32, num_heads=2, num_layers=1,
        ff_dim=64, dropout=0.0, label_smoothing=0.0, learning_rate=5e-3, verbose=0,
    )
    # Many steps per call: the model is so small that Keras' per-step overhead dominates.
    model.compile(optimizer=model.optimizer, loss=model.loss, steps_per_execution=25)
    inputs = preproc.transform({k: tf.constant(v) for k, v in trn.x.items()})
    model.fit(inputs, trn.y, batch_size=40, epochs=20, verbose=0)
    return model, preproc
