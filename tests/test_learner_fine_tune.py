"""`Learner.fine_tune`: a frozen head-only phase, then every layer with per-group rates."""

import keras
import numpy as np
import pytest

import ktlite


def _model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="tanh", name="body0")(inputs)
    x = keras.layers.Dense(8, activation="tanh", name="body1")(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


class _PhaseRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.phases = []

    def on_train_begin(self, logs=None):
        self.phases.append({"begin": {layer.name: [w.copy() for w in layer.get_weights()]
                                      for layer in self.model.layers if layer.weights}})

    def on_train_end(self, logs=None):
        self.phases[-1]["end"] = {layer.name: [w.copy() for w in layer.get_weights()]
                                  for layer in self.model.layers if layer.weights}


def _changed(phase, name):
    return any(not np.array_equal(a, b) for a, b in zip(phase["begin"][name], phase["end"][name]))


def test_body_is_unchanged_in_the_frozen_phase_and_trains_after():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    learner = ktlite.get_learner(_model(), (x, y), batch_size=16, verbose=0)
    recorder = _PhaseRecorder()
    learner.fine_tune(1, base_lr=1e-2, freeze_epochs=1, lr_mult=10, callbacks=[recorder])
    frozen, unfrozen = recorder.phases
    assert not _changed(frozen, "body0") and not _changed(frozen, "body1")
    assert _changed(frozen, "head")
    assert all(_changed(unfrozen, name) for name in ("body0", "body1", "head"))
    assert all(layer.trainable for layer in learner.model.layers)
    assert "update_step" not in learner.model.optimizer.__dict__  # plain optimizer again
    # The unfrozen phase peaks at base_lr / 2 (the head's rate).
    assert max(learner.step_history["lrs"]) == pytest.approx(5e-3, rel=1e-5)


def test_fine_tune_refuses_bad_arguments():
    x = np.zeros((8, 4), "float32")
    learner = ktlite.get_learner(_model(), (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="freeze_epochs"):
        learner.fine_tune(1, base_lr=1e-3, freeze_epochs=-1)
    with pytest.raises(ValueError, match="lr_mult"):
        learner.fine_tune(1, base_lr=1e-3, lr_mult=[1.0, 2.0])
