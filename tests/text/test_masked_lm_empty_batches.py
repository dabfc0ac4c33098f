"""Masked-LM batches that mask no token (empty texts bucketed together, or one-word texts
whose draw chose nothing) count for nothing: in a fit, in the LR finder, in the logs."""

import warnings

import numpy as np
import pytest

from ktlite import text


def _learner():
    """24 texts of 20 words (width 32) and 48 empty ones (width 16): length bucketing puts
    the empty ones in 6 batches of their own, which mask nothing, beside 3 that do."""
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 30, size=20)) for _ in range(24)]
    return text.pretrain(texts + [""] * 48, maxlen=32, vocab_size=60, embed_dim=8,
                         num_heads=1, num_layers=1, batch_size=8, seed=0, verbose=0)


def test_a_fit_whose_epochs_start_with_batches_that_mask_nothing_runs_every_epoch():
    # The logged `loss` (a mean over masked tokens) is NaN until a batch masks a token, and
    # the divergence guard took that for a diverged loss: it stopped the fit and rolled the
    # weights back ("Try a lower learning rate").
    learner = _learner()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Training stopped", RuntimeWarning)
        history = learner.fit_onecycle(1e-3, 3, verbose=0).history
    assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"]))
    # Only the 3 batches of each epoch that predicted something are steps with a loss.
    assert len(learner.step_history["losses"]) == 9
    assert min(learner.step_history["losses"]) > 1.0  # about log(vocabulary size)


def test_a_diverged_masked_lm_loss_still_stops_the_fit():
    learner = _learner()
    head = learner.model.get_layer("lm_logits")
    kernel, bias = head.get_weights()
    head.set_weights([kernel, np.full_like(bias, np.nan)])
    with pytest.warns(RuntimeWarning, match="the loss became NaN or infinite at epoch 1"):
        history = learner.fit_onecycle(1e-3, 3, verbose=0).history
    assert len(history["loss"]) == 1


def test_lr_find_leaves_out_the_batches_that_mask_nothing():
    # They were recorded as a loss of 0.0, a perfect batch: the curve dipped to zero and the
    # rules read the dips (30 steps: 20 of them zeros here).
    learner = _learner()
    result = learner.lr_find(num_steps=30, stop_factor=1e6, verbose=0)
    losses = np.asarray(result.losses)
    assert len(losses) == 10
    assert np.all(np.isfinite(losses)) and np.all(losses > 1.0)
