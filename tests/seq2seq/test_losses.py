"""Tests for the masked sequence loss and token accuracy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.seq2seq.losses import (
    MaskedSequenceCrossentropy,
    MaskedSequenceLoss,
    MaskedTokenAccuracy,
)
from ktlite.seq2seq.models import compile_for_sequences

RNG = np.random.default_rng(0)
LABELS = np.array([[3, 1, 2, 0], [4, 0, 0, 0]], dtype="int32")
LOGITS = RNG.normal(size=(2, 4, 6)).astype("float32")


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_loss_is_the_mean_over_real_tokens_only():
    logp = _log_softmax(LOGITS)
    real = [(0, 0), (0, 1), (0, 2), (1, 0)]
    expected = -np.mean([logp[i, t, LABELS[i, t]] for i, t in real])
    loss = MaskedSequenceCrossentropy(label_smoothing=0.0)
    np.testing.assert_allclose(float(loss(LABELS, LOGITS)), expected, rtol=1e-5)
    junk = LOGITS.copy()
    junk[LABELS == 0] = 100.0
    np.testing.assert_allclose(float(loss(LABELS, junk)), expected, rtol=1e-5)


def test_label_smoothing_mixes_in_the_uniform_cross_entropy():
    logp = _log_softmax(LOGITS)
    real = [(0, 0), (0, 1), (0, 2), (1, 0)]
    expected = np.mean([-0.9 * logp[i, t, LABELS[i, t]] - 0.1 * logp[i, t].mean()
                        for i, t in real])
    loss = MaskedSequenceCrossentropy(label_smoothing=0.1)
    np.testing.assert_allclose(float(loss(LABELS, LOGITS)), expected, rtol=1e-5)


def test_token_accuracy_ignores_padding():
    metric = MaskedTokenAccuracy()
    predictions = np.eye(6)[[[3, 1, 5, 5], [4, 5, 5, 5]]]  # 3 of 4 real tokens right
    metric.update_state(LABELS, predictions)
    assert float(metric.result()) == pytest.approx(0.75)


@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (1.0, ValueError),
                                        (True, TypeError), ("0.1", TypeError)])
def test_label_smoothing_out_of_range_raises(bad, error):
    with pytest.raises(error, match="label_smoothing"):
        MaskedSequenceCrossentropy(label_smoothing=bad)


def test_loss_metric_is_the_mean_over_every_real_token_seen():
    metric = MaskedSequenceLoss(label_smoothing=0.1)
    loss = MaskedSequenceCrossentropy(label_smoothing=0.1)
    short, long_ = LABELS[1:], LABELS[:1]  # 1 and 3 real tokens
    metric.update_state(short, LOGITS[1:])
    metric.update_state(long_, LOGITS[:1])
    expected = (1 * float(loss(short, LOGITS[1:])) + 3 * float(loss(long_, LOGITS[:1]))) / 4
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def _favours_token_3():
    """A compiled model whose logits favour token 3 everywhere: its loss is low on 3s only."""
    bias = keras.initializers.Constant([0.0, 0.0, 0.0, 5.0, 0.0, 0.0])
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(6, 6),
                              keras.layers.Dense(6, kernel_initializer="zeros",
                                                 bias_initializer=bias)])
    compile_for_sequences(model, 1e-3, 0.1, None)
    return model


def test_compiled_models_report_the_token_mean_over_batches_of_different_lengths():
    # Length bucketing makes batches like these: short sentences together, long ones
    # together. Keras' tracker would average the two batch means as equals.
    model = _favours_token_3()
    short = np.array([[3, 0, 0, 0]] * 4, dtype="int32")
    long_ = np.array([[3, 1, 2, 4]] * 4, dtype="int32")
    batches = tf.data.Dataset.from_tensor_slices(
        (np.stack([short, long_]), np.stack([short, long_])))
    loss = MaskedSequenceCrossentropy(label_smoothing=0.1)
    per_batch = [float(loss(y, model(x))) for x, y in [(short, short), (long_, long_)]]
    expected = (4 * per_batch[0] + 16 * per_batch[1]) / 20
    assert per_batch[1] > 2 * per_batch[0]  # else the weighting would not show
    scores = model.evaluate(batches, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(expected, rel=1e-5)


def test_sample_weights_weigh_sentences_in_the_reported_loss_as_in_the_loss():
    model = _favours_token_3()
    labels = np.array([[3, 0, 0, 0], [3, 1, 2, 4]], dtype="int32")
    weights = np.array([3.0, 0.5], dtype="float32")
    loss = MaskedSequenceCrossentropy(label_smoothing=0.1)
    # The loss scales each sentence's sum by batch / real tokens; undo that.
    sums = loss.call(labels, model(labels)).numpy() * 5 / 2
    scores = model.evaluate(tf.data.Dataset.from_tensors((labels, labels, weights)),
                            verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(float((weights * sums).sum() / 5), rel=1e-5)
    assert scores["loss"] == pytest.approx(float(loss(labels, model(labels), weights)), rel=1e-5)


def test_loss_metric_keeps_its_smoothing_through_its_config():
    metric = MaskedSequenceLoss.from_config(MaskedSequenceLoss(label_smoothing=0.2).get_config())
    assert metric.label_smoothing == 0.2 and metric.name == "loss"
