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


def _learner():
    """A learner of `_model` on 64 rows whose class is the sign of the first column."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return ktlite.get_learner(_model(), (x, y), batch_size=16, verbose=0)


def test_body_is_unchanged_in_the_frozen_phase_and_trains_after():
    learner = _learner()
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


def test_class_weight_weighs_both_phases():
    # Every class weighted 0: neither phase may move a weight.
    learner = _learner()
    recorder = _PhaseRecorder()
    learner.fine_tune(1, base_lr=1e-2, callbacks=[recorder], class_weight={0: 0.0, 1: 0.0})
    assert len(recorder.phases) == 2
    assert not any(_changed(phase, name) for phase in recorder.phases
                   for name in ("body0", "body1", "head"))
    with pytest.raises(ValueError, match="`class_weight` names classes \\[5\\]"):
        learner.fine_tune(1, class_weight={5: 1.0})  # before the LR finder runs


def test_fine_tune_refuses_bad_arguments():
    x = np.zeros((8, 4), "float32")
    learner = ktlite.get_learner(_model(), (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="`freeze_epochs`.*Received: freeze_epochs=-1"):
        learner.fine_tune(1, base_lr=1e-3, freeze_epochs=-1)
    with pytest.raises(ValueError, match="lr_mult"):
        learner.fine_tune(1, base_lr=1e-3, lr_mult=[1.0, 2.0])
    with pytest.raises(ValueError, match="`lr_mult` must be a float >= 1"):
        learner.fine_tune(1, base_lr=1e-3, lr_mult=0.5)


@pytest.mark.parametrize("kwargs, name", [
    ({"freeze_epochs": "1"}, "freeze_epochs"),
    ({"freeze_epochs": True}, "freeze_epochs"),
    ({"freeze_epochs": 1.0}, "freeze_epochs"),
    ({"base_lr": "1e-3"}, "base_lr"),
    ({"base_lr": True}, "base_lr"),
    ({"lr_mult": "10"}, "lr_mult"),
])
def test_fine_tune_arguments_of_the_wrong_type_are_type_errors(kwargs, name):
    x = np.zeros((8, 4), "float32")
    learner = ktlite.get_learner(_model(), (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    before = [w.copy() for w in learner.model.get_weights()]
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        learner.fine_tune(1, **{"base_lr": 1e-3, **kwargs})
    assert all(layer.trainable for layer in learner.model.layers)
    for a, b in zip(before, learner.model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("groups, match", [
    ("body0", "`layer_groups` must be a list of groups.*Received: layer_groups='body0'"),
    ([["body0"], 1, ["head"]],
     "Each member of a group in `layer_groups` must be a layer .*Received: 1 of type int"),
])
def test_layer_groups_of_the_wrong_type_are_type_errors(groups, match):
    x = np.zeros((8, 4), "float32")
    learner = ktlite.get_learner(_model(), (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    with pytest.raises(TypeError, match=match):
        learner.fine_tune(1, base_lr=1e-3, layer_groups=groups)
    assert all(layer.trainable for layer in learner.model.layers)


@pytest.mark.parametrize("groups, match", [
    ([["body0"]], r"`layer_groups` must put every layer with weights in a group; these are "
                  r"in none: \[.*'head'"),
    ([["body0"], [], ["head"]], "`layer_groups` must not hold an empty group"),
    ([["nope"], ["head"]], "a group in `layer_groups` must be a layer .*Received: 'nope'"),
])
def test_layer_groups_that_do_not_fit_the_model_are_named_as_fine_tunes_argument(groups, match):
    x = np.zeros((8, 4), "float32")
    learner = ktlite.get_learner(_model(), (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match=match):
        learner.fine_tune(1, base_lr=1e-3, layer_groups=groups)


def test_layers_the_user_froze_stay_frozen_and_flags_come_back_after_an_error():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = _model()
    model.get_layer("body0").trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    body0 = model.get_layer("body0").get_weights()[0].copy()
    recorder = _PhaseRecorder()
    learner.fine_tune(1, base_lr=1e-2, callbacks=[recorder])
    assert _changed(recorder.phases[1], "body1")  # the user's trainable layers train ...
    np.testing.assert_array_equal(model.get_layer("body0").get_weights()[0], body0)  # not it
    assert [layer.trainable for layer in model.layers[1:]] == [False, True, True]

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learner.fine_tune(1, base_lr=1e-2, callbacks=[Interrupt()])
    assert [layer.trainable for layer in model.layers[1:]] == [False, True, True]


@pytest.mark.parametrize("base_lr", [None, 1e-2])
def test_a_head_the_user_froze_is_refused_for_the_frozen_phase_naming_it(base_lr):
    # With nothing to train, the finder read no curve and `fit_onecycle` named an `lr`
    # fine_tune has no argument of; with `base_lr` the phase silently trained nothing.
    learner = _learner()
    learner.model.get_layer("head").trainable = False
    weights = [w.copy() for w in learner.model.get_weights()]
    with pytest.raises(ValueError, match=r"the last group of `layer_groups` \(\['head'\]\).*"
                       r"no trainable weights.*freeze_epochs=0"):
        learner.fine_tune(1, base_lr=base_lr)
    assert [layer.trainable for layer in learner.model.layers[1:]] == [True, True, False]
    for before, after in zip(weights, learner.model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_a_finder_that_suggests_no_rate_is_named_as_base_lr(monkeypatch):
    learner = _learner()
    monkeypatch.setattr(learner, "lr_find",
                        lambda **kwargs: type("Result", (), {"suggestion": float("nan")})())
    with pytest.raises(ValueError, match=r"Pass `base_lr`. Received: base_lr=None"):
        learner.fine_tune(1)
    assert all(layer.trainable for layer in learner.model.layers)


def test_bad_settings_are_refused_before_anything_trains():
    x = np.zeros((8, 4), "float32")
    learner = ktlite.get_learner(_model(), (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    before = [w.copy() for w in learner.model.get_weights()]
    for kwargs, match in [({"base_lr": -1.0}, "`base_lr` must be a positive float"),
                          ({"base_lr": 1e-2, "pct_start": 2.0}, "pct_start"),
                          ({"base_lr": 1e-2, "moms": (0.9,)}, "moms")]:
        with pytest.raises(ValueError, match=match):
            learner.fine_tune(1, **kwargs)
        assert all(layer.trainable for layer in learner.model.layers)
    for a, b in zip(before, learner.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_schedule_optimizer_is_refused_before_the_finder_runs():
    x = np.zeros((8, 4), "float32")
    model = _model()
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    learner = ktlite.get_learner(model, (x, np.zeros(8, "int32")), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="needs an optimizer created with a float learning rate"):
        learner.fine_tune(1)  # base_lr=None would sweep the frozen model first
    assert learner.lr_result is None  # no sweep ran
    assert all(layer.trainable for layer in learner.model.layers)


def _lora_model():
    model = _model()
    model.get_layer("body1").enable_lora(2)  # freezes body1's kernel on its own
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def _variable(model, path):
    return next(w for w in model.weights if w.path == path)


def test_fine_tune_keeps_a_lora_base_kernel_frozen_and_its_flag_after_it():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = _lora_model()
    kernel = _variable(model, "body1/kernel")
    lora = [_variable(model, f"body1/lora_kernel_{ab}") for ab in "ab"]
    before = [v.numpy().copy() for v in [kernel, *lora]]
    trainable = [v.path for v in model.trainable_variables]
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    learner.fine_tune(2, base_lr=1e-2, freeze_epochs=1)
    np.testing.assert_array_equal(kernel.numpy(), before[0])
    assert all(not np.array_equal(v.numpy(), b) for v, b in zip(lora, before[1:]))
    assert not kernel.trainable and [v.path for v in model.trainable_variables] == trainable

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    for freeze_epochs in (1, 0):  # stopped in the frozen phase, then in the unfrozen one
        with pytest.raises(KeyboardInterrupt):
            learner.fine_tune(1, base_lr=1e-2, freeze_epochs=freeze_epochs,
                              callbacks=[Interrupt()])
        assert not kernel.trainable and [v.path for v in model.trainable_variables] == trainable
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # the user's own fit still works
    np.testing.assert_array_equal(kernel.numpy(), before[0])


@pytest.mark.parametrize("learner_verbose, verbose, said", [
    (1, 0, False), (0, None, False), (0, 1, True)])
def test_the_base_lr_found_is_reported_only_when_verbose(
        capsys, learner_verbose, verbose, said):
    # It was printed whatever `verbose` said, while lr_find and fit_onecycle were silent.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    learner = ktlite.get_learner(_model(), (x, (x[:, 0] > 0).astype("int32")), batch_size=16,
                                 verbose=learner_verbose)
    learner.fine_tune(1, freeze_epochs=0, verbose=verbose)
    out = capsys.readouterr().out
    assert ("fine_tune: base_lr=" in out) == said
    if verbose == 0 or (verbose is None and not learner_verbose):
        assert out == ""
