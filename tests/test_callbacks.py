"""NonFiniteGuard (ktlite.callbacks) on a model that logs a metric of its own as `loss`."""

import keras
import numpy as np
import pytest

from ktlite import compat
from ktlite.callbacks import NonFiniteGuard


def test_the_guard_takes_a_nan_loss_for_divergence_only_if_the_loss_tracker_is_not_finite():
    # A metric logged as `loss` may be NaN while it has counted nothing (the masked-LM
    # mean over masked tokens, until a batch masks one); the tracker holds every batch's
    # own loss, so only a non-finite tracker is a diverged loss.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    tracker = compat.loss_tracker(model)
    guard = NonFiniteGuard()
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    tracker.update_state(0.0, sample_weight=8)  # a batch that predicted nothing: loss 0.0
    guard.on_train_batch_end(0, {"loss": float("nan")})
    guard.on_epoch_end(0, {"loss": float("nan")})
    assert guard.stopped is None and not model.stop_training
    tracker.update_state(np.nan, sample_weight=8)
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(1, {"loss": float("nan")})
    assert guard.stopped == (1, 1) and model.stop_training
    with pytest.warns(RuntimeWarning, match="epoch 2, batch 2.*end of epoch 1"):
        guard.on_epoch_end(1, {"loss": float("nan")})
