"""Tests for the masked sequence loss and token accuracy."""

import numpy as np
import pytest

from ktlite.seq2seq.losses import MaskedSequenceCrossentropy, MaskedTokenAccuracy

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
