"""A `use_ema=True` optimizer with ktlite: built as Keras builds it, flags that stay put.

Keras writes an EMA optimizer's moving averages into `model.trainable_weights` by position
at the end of every fit, so the optimizer must cover exactly the trainable variables, in
their order, and they must not change afterwards.
"""

import re

import keras
import numpy as np
import pytest

import ktlite
from ktlite import model_tools

N = 64


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)


def _model(optimizer, frozen=("d1",)):
    # Square layers: an average written into the wrong layer fits it, so nothing fails loudly.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, activation="tanh", name="d1")(inputs)
    x = keras.layers.Dense(4, activation="tanh", name="d2")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(x))
    for name in frozen:
        model.get_layer(name).trainable = False
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def _weights(model):
    return {w.path: w.numpy().copy() for w in model.weights}


def _flags(model):
    return ([layer.trainable for layer in model.layers]
            + [w.trainable for w in model.weights])


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for path in a:
        np.testing.assert_allclose(a[path], b[path], rtol=1e-5, atol=1e-6, err_msg=path)


def test_ema_with_a_frozen_layer_leaves_each_layer_its_own_average():
    # With `ema_momentum=0` the average is the latest value, so the fit must end exactly as
    # one without EMA: an average written into another layer shows.
    x, y = _data()
    results = []
    for optimizer in (keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.0),
                      keras.optimizers.Adam(1e-2)):
        model = _model(optimizer)
        start = _weights(model)
        learner = ktlite.get_learner(model, (x, y), batch_size=16, seed=0, verbose=0)
        learner.fit_onecycle(1e-2, 2)
        end = _weights(model)
        np.testing.assert_array_equal(end["d1/kernel"], start["d1/kernel"])  # frozen
        results.append(end)
    _assert_same(*results)


def test_the_users_own_fit_after_get_learner_matches_plain_keras():
    x, y = _data()
    plain = _model(keras.optimizers.Adam(1e-2, use_ema=True))
    plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True))
    ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    _assert_same(_weights(model), _weights(plain))


def test_freeze_unfreeze_and_fine_tune_are_refused_with_ema_and_change_nothing():
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True))
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    flags, weights = _flags(model), _weights(model)
    calls = [("unfreeze()", learner.unfreeze),
             ("freeze()", learner.freeze),
             ("freeze(0)", lambda: learner.freeze(0)),
             ("fine_tune()", lambda: learner.fine_tune(1, base_lr=1e-2))]
    for action, call in calls:
        with pytest.raises(ValueError, match=(
            rf"`{re.escape(action)}` would change which variables the model trains, but "
            r"its optimizer has `use_ema=True`.*optimizer without `use_ema`.*before "
            r"`model.compile\(...\)`.*Received: optimizer=Adam\(use_ema=True\)"
        )):
            call()
        assert _flags(model) == flags
    _assert_same(_weights(model), weights)
    learner.freeze(2)  # the input and d1: the same trainable variables, so allowed
    assert _flags(model)[1:] == flags[1:]
    learner.fit_onecycle(1e-2, 1)  # and the optimizer still fits the model
    np.testing.assert_array_equal(model.get_layer("d1").kernel.numpy(), weights["d1/kernel"])


def test_unfreeze_with_ema_and_nothing_frozen_is_allowed():
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True), frozen=())
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    learner.unfreeze()
    with pytest.raises(ValueError, match="`freeze\\(\\)` would change"):
        learner.freeze()
    assert all(layer.trainable for layer in model.layers)


def test_fine_tune_with_ema_and_no_frozen_phase_trains_every_layer():
    # With `freeze_epochs=0` and a rate given nothing is frozen, so EMA is no obstacle; with
    # no rate the finder would sweep the frozen model, so that is still refused.
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True), frozen=())
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="`fine_tune\\(\\)` would change"):
        learner.fine_tune(1, freeze_epochs=0)
    start = _weights(model)
    learner.fine_tune(1, base_lr=1e-2, freeze_epochs=0)
    end = _weights(model)
    for name in ("d1/kernel", "d2/kernel", "head/kernel"):
        assert not np.array_equal(start[name], end[name]), name
    assert all(layer.trainable for layer in model.layers)


def test_ema_under_loss_scaling_is_refused_too():
    x, y = _data()
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2, use_ema=True))
    model = _model(optimizer, frozen=())
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="use_ema=True"):
        learner.freeze()
    assert all(layer.trainable for layer in model.layers)


def test_an_ema_optimizer_built_for_other_variables_is_refused_at_get_learner():
    x, y = _data()
    optimizer = keras.optimizers.Adam(1e-2, use_ema=True)
    model = _model(optimizer, frozen=())
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # built for every layer
    model.get_layer("d1").trainable = False
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=(
        r"`use_ema=True` and was built for other variables than the model's trainable ones "
        r"\(6 built, 4 trainable now.*Compile the model with a fresh optimizer"
    )):
        ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)


def test_an_ema_optimizer_is_built_for_the_trainable_variables_only():
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True))
    ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    averages = [v for v in model.optimizer.variables if "average" in v.name]
    assert [tuple(v.shape) for v in averages] == [
        tuple(v.shape) for v in model.trainable_variables
    ]


def test_a_plain_optimizer_still_covers_frozen_layers():
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2))
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    assert len(model.trainable_variables) == 4
    assert len([v for v in model.optimizer.variables if "momentum" in v.name]) == 6
    learner.unfreeze()
    learner.fit_onecycle(1e-2, 1)
    assert all(layer.trainable for layer in model.layers)


def test_uses_ema_sees_through_wrappers():
    adam, ema = keras.optimizers.Adam(), keras.optimizers.Adam(use_ema=True)
    assert not model_tools.uses_ema(adam) and not model_tools.uses_ema(None)
    assert model_tools.uses_ema(keras.optimizers.LossScaleOptimizer(ema))
    mapping = keras.optimizers.OptimizerMap(adam, {"head": keras.optimizers.SGD(use_ema=True)})
    assert model_tools.uses_ema(keras.optimizers.MultiOptimizer(mapping))
    assert not model_tools.uses_ema(keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(keras.optimizers.Adam())))


def test_flags_the_user_changes_after_get_learner_are_refused_at_the_next_fit():
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True), frozen=())
    learner = ktlite.get_learner(model, (x, y), batch_size=16)
    model.get_layer("d2").trainable = False  # by hand, without recompiling
    before = _weights(model)
    with pytest.raises(ValueError, match=r"use_ema=True.*6 built, 4 trainable now"):
        learner.fit_onecycle(1e-2, 1)
    _assert_same(_weights(model), before)
    model.get_layer("d2").trainable = True  # put back: it trains again
    learner.fit_onecycle(1e-2, 1)
    assert not np.array_equal(model.get_layer("head").kernel.numpy(), before["head/kernel"])


class _Averages(keras.callbacks.Callback):
    """Keeps, at the end of each epoch, the optimizer's moving averages (in the order of
    `model.trainable_variables`) and the raw trainable weights."""

    def __init__(self):
        super().__init__()
        self.averages, self.raw = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.averages.append([v.numpy().copy() for v in self.model.optimizer.variables
                              if "average" in v.name])
        self.raw.append([v.numpy().copy() for v in self.model.trainable_variables])


def test_autofit_with_ema_keeps_and_saves_the_best_epochs_averages_not_its_raw_weights(
        tmp_path):
    # BestWeights kept `get_weights()` (the raw weights) and put them back after Keras had
    # written the averages into the model, and its checkpoint held them too: autofit ended
    # with other weights than a plain fit or `fit_onecycle` would.
    x, y = _data()
    model = _model(keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.9), frozen=())
    learner = ktlite.get_learner(model, (x, y), _data(1), batch_size=16, seed=0, verbose=0)
    seen = _Averages()
    history = learner.autofit(1e-2, 3, checkpoint_folder=tmp_path, callbacks=[seen])
    best = int(np.argmin(history.history["val_loss"]))
    want = seen.averages[best]
    assert any(not np.allclose(a, r) for a, r in zip(want, seen.raw[best]))  # they differ
    for got, average in zip(model.trainable_variables, want):
        np.testing.assert_array_equal(got.numpy(), average, err_msg=got.path)
    saved = keras.saving.load_model(tmp_path / "best.keras")
    for got, average in zip(saved.trainable_variables, want):
        np.testing.assert_array_equal(got.numpy(), average, err_msg=got.path)
