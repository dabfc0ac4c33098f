"""Unit tests for the safety callbacks the Learner adds to each fit (ktlite.callbacks)."""

import keras
import numpy as np
import pytest

from ktlite import saving
from ktlite.callbacks import (
    BestWeights,
    NonFiniteGuard,
    PeakReducer,
    as_fit_leaves_it,
    monitor_mode,
    restore_state,
    snapshot_state,
)


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _bump(model, value):
    model.set_weights([np.full_like(w, value) for w in model.get_weights()])


@pytest.mark.parametrize("monitor, mode", [("val_loss", "min"), ("val_accuracy", "max"),
                                           ("auc", "max"), ("val_mae", "min")])
def test_monitor_mode(monitor, mode):
    assert monitor_mode(monitor) == mode


def test_a_compiled_metric_states_its_own_direction():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile("adam", "mse", metrics=[keras.metrics.CosineSimilarity(name="cos"),
                                          keras.metrics.MeanAbsoluteError(name="acc_gap")])
    model.fit(np.zeros((4, 2)), np.ones((4, 2)), verbose=0)  # builds the compiled metrics
    # Names alone would mislead both ways: "cos" grows, "acc_gap" (an error) shrinks.
    assert (monitor_mode("val_cos"), monitor_mode("val_acc_gap")) == ("min", "max")
    assert monitor_mode("val_cos", model) == "max"
    assert monitor_mode("val_acc_gap", model) == "min"
    best, reducer = BestWeights("val_cos", verbose=0), PeakReducer(_Target(), "val_cos")
    for callback in (best, reducer):
        callback.set_model(model)
        callback.on_train_begin()
    best.on_epoch_end(0, {"val_cos": 0.1})
    best.on_epoch_end(1, {"val_cos": 0.6})
    reducer.on_epoch_end(0, {"val_cos": 0.1})
    assert best.mode == reducer.mode == "max" and best.best_epoch == 1


def test_direction_is_read_in_a_first_fit_and_from_multi_output_log_names():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, {"a": keras.layers.Dense(2, name="a")(inputs),
                                 "b": keras.layers.Dense(2, name="b")(inputs)})
    model.compile("sgd", {"a": "mse", "b": "mse"},
                  metrics={"a": [keras.metrics.CosineSimilarity(name="cos")], "b": ["mae"]})
    best = BestWeights("val_a_cos", verbose=0)  # the compiled metrics are not built yet
    x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    model.fit(x, {"a": x, "b": x}, validation_data=(x, {"a": x, "b": x}), epochs=2,
              callbacks=[best], verbose=0)
    assert best.mode == "max"
    assert monitor_mode("val_b_mae", model) == "min"


def test_snapshot_and_restore_cover_weights_and_optimizer():
    model = _model()
    _bump(model, 1.0)
    state = snapshot_state(model)
    _bump(model, 2.0)
    model.optimizer.iterations.assign(7)
    restore_state(model, state)
    assert all(np.all(w == 1.0) for w in model.get_weights())
    assert int(model.optimizer.iterations.numpy()) == 0


def test_best_weights_tracks_min_stops_and_restores():
    model = _model()
    best = BestWeights("val_loss", patience=2, verbose=0)
    best.set_model(model)
    best.on_train_begin()
    for epoch, (value, loss) in enumerate([(1.0, 3.0), (2.0, 1.0), (3.0, 2.0), (4.0, 1.5)]):
        _bump(model, value)
        best.on_epoch_end(epoch, {"val_loss": loss})
    assert best.best_epoch == 1 and best.stopped_epoch == 3 and model.stop_training
    best.on_train_end()
    assert all(np.all(w == 2.0) for w in model.get_weights())


def test_best_weights_maximises_accuracy_and_counts_nan_as_no_improvement():
    # A NaN epoch was skipped: a value NaN every epoch never ran out the patience.
    model = _model()
    best = BestWeights("val_accuracy", patience=3, verbose=0)
    best.set_model(model)
    best.on_train_begin()
    with pytest.warns(RuntimeWarning, match="`val_accuracy` is not finite.*epoch 3") as caught:
        for epoch, acc in enumerate([0.5, 0.9, float("nan"), 0.7, float("inf")]):
            best.on_epoch_end(epoch, {"val_accuracy": acc})
    assert best.best_epoch == 1 and best.best == 0.9 and best.stopped_epoch == 4
    assert len([w for w in caught if "not finite" in str(w.message)]) == 1


def test_best_weights_and_peak_reducer_count_a_value_never_finite_and_warn_once_between_them():
    model, target = _model(), _Target()
    best = BestWeights("val_loss", patience=2, verbose=0)
    reducer = PeakReducer(target, "val_loss", patience=1, factor=0.5, verbose=0)
    for callback in (best, reducer):
        callback.set_model(model)
        callback.on_train_begin()
    with pytest.warns(RuntimeWarning, match="validation data or its targets") as caught:
        for epoch in range(2):
            for callback in (best, reducer):
                callback.on_epoch_end(epoch, {"val_loss": float("nan")})
    assert len(caught) == 1
    assert best.stopped_epoch == 1 and model.stop_training and best.best is None
    assert reducer.reductions == [0, 1] and target.lr_scale == 0.25


class _Target:
    lr_scale = 1.0


def test_peak_reducer_scales_target_after_patience():
    target = _Target()
    reducer = PeakReducer(target, "val_loss", patience=2, factor=0.5, verbose=0)
    reducer.on_train_begin()
    for epoch, loss in enumerate([1.0, 1.1, 1.2, 0.9, 1.0, 1.0]):
        reducer.on_epoch_end(epoch, {"val_loss": loss})
    assert reducer.reductions == [2, 5] and target.lr_scale == 0.25
    # The next fit starts from the peak it was given (it ran at a quarter of it, with no
    # reduction in `reductions`), and `min_scale` is a share of that peak.
    reducer.on_train_end()
    assert target.lr_scale == 1.0
    target.lr_scale = 0.5
    floor = PeakReducer(target, "val_loss", patience=1, factor=0.1, min_scale=0.5, verbose=0)
    floor.on_train_begin()
    for epoch, loss in enumerate([1.0, 2.0, 3.0]):
        floor.on_epoch_end(epoch, {"val_loss": loss})
    assert floor.reductions == [1] and target.lr_scale == 0.25
    with pytest.raises(ValueError, match="factor"):
        PeakReducer(target, factor=1.5)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"monitor": 3}, TypeError, "`monitor` must be the name of a logged value"),
    ({"patience": 0}, ValueError, "`patience` must be a positive int or None. Received: "
                                  "patience=0"),
    ({"patience": "3"}, TypeError, "`patience` must be a positive int"),
    ({"restore": 1}, TypeError, "`restore` must be True or False"),
    ({"checkpoint_path": "best.h5"}, ValueError, "`checkpoint_path` must end with '.keras'"),
    ({"checkpoint_path": 5}, TypeError, "`checkpoint_path` must be a path"),
    ({"min_delta": "0.1"}, TypeError, "`min_delta` must be"),
    ({"verbose": 3}, ValueError, "`verbose` must be 0, 1 or 2"),
    ({"saving_context": 5}, TypeError, "`saving_context` must be callable or None"),
])
def test_best_weights_refuses_bad_arguments_when_made_not_after_an_epoch(kwargs, error, message):
    # A bad checkpoint path used to fail at the first improvement, after an epoch of training.
    with pytest.raises(error, match=message):
        BestWeights(**kwargs)


@pytest.mark.parametrize("target, kwargs, error, message", [
    (object(), {}, TypeError, "`target` must have an `lr_scale` attribute"),
    (_Target(), {"monitor": None}, TypeError, "`monitor` must be the name"),
    (_Target(), {"patience": 0}, ValueError, "`patience` must be a positive int"),
    (_Target(), {"factor": "0.5"}, TypeError, "`factor` must be"),
    (_Target(), {"min_scale": 0.0}, ValueError, "`min_scale` must be"),
    (_Target(), {"verbose": True}, TypeError, "`verbose` must be 0, 1 or 2"),
])
def test_peak_reducer_refuses_bad_arguments(target, kwargs, error, message):
    with pytest.raises(error, match=message):
        PeakReducer(target, **kwargs)


def test_non_finite_guard_rolls_back_to_last_good_epoch():
    model = _model()
    guard = NonFiniteGuard()
    guard.set_model(model)
    _bump(model, 1.0)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    _bump(model, 2.0)
    guard.on_epoch_end(0, {"loss": 0.5})
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(3, {"loss": float("inf")})
    assert model.stop_training and guard.stopped == (1, 3)
    _bump(model, float("nan"))
    with pytest.warns(RuntimeWarning, match="epoch 2, batch 4.*end of epoch 1"):
        guard.on_epoch_end(1, {"loss": float("nan")})
    assert all(np.all(w == 2.0) for w in model.get_weights())
    guard.on_train_end()  # restores once only
    assert guard.restored_epoch == 1


def _ema_model(average):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="mse")
    model.optimizer.build(model.trainable_variables)
    for variable in model.optimizer.variables:
        if "average" in variable.name:
            variable.assign(np.full(variable.shape, average, variable.dtype))
    return model


def test_best_weights_keeps_an_ema_optimizers_averages_and_trains_on_from_the_raw_ones(
        tmp_path):
    # It kept the raw weights, so restoring them undid the averages Keras writes into the
    # model at the end of a fit (and the checkpoint held the raw weights too).
    model = _ema_model(3.0)
    _bump(model, 1.0)
    best = BestWeights("val_loss", checkpoint_path=tmp_path / "best.keras", verbose=0)
    best.set_model(model)
    best.on_train_begin()
    best.on_epoch_end(0, {"val_loss": 1.0})
    assert all(np.all(w == 1.0) for w in model.get_weights())  # training goes on from these
    saved = keras.saving.load_model(tmp_path / "best.keras")
    assert all(np.all(w == 3.0) for w in saved.get_weights())
    best.on_epoch_end(1, {"val_loss": 2.0})  # worse: nothing kept
    model.optimizer.finalize_variable_values(model.trainable_weights)  # as `fit` ends
    _bump(model, 5.0)
    assert best.restore_best()
    assert all(np.all(w == 3.0) for w in model.get_weights())


def test_as_fit_leaves_it_holds_the_averages_inside_and_changes_nothing_without_ema():
    model = _model()
    _bump(model, 1.0)
    with as_fit_leaves_it(model):
        assert all(np.all(w == 1.0) for w in model.get_weights())
    ema = _ema_model(3.0)
    _bump(ema, 1.0)
    with as_fit_leaves_it(ema):
        assert all(np.all(w == 3.0) for w in ema.get_weights())
    assert all(np.all(w == 1.0) for w in ema.get_weights())


@pytest.mark.parametrize("make, path, problem", [
    (lambda tmp: (tmp / "best.keras").mkdir(), "best.keras",
     r"'.*best\.keras' is a folder, not a file"),
    (lambda tmp: (tmp / "runs").write_text("x"), "runs/best.keras",
     r"'.*runs' is a file, not a folder"),
])
def test_best_weights_refuses_a_checkpoint_path_it_could_not_save_to(tmp_path, make, path,
                                                                     problem):
    # It was accepted, and saving failed after the first epoch (IsADirectoryError naming a
    # hidden temporary file, or NotADirectoryError).
    make(tmp_path)
    with pytest.raises(ValueError, match=rf"`checkpoint_path` cannot be saved to: {problem}\. "
                       rf"Received: checkpoint_path='.*{path}'"):
        BestWeights(checkpoint_path=tmp_path / path)
    assert saving.save_path_problem(tmp_path / "new" / "best.keras") is None
