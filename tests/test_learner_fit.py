"""Learner fitting end to end: it learns, records the exact schedules, stays safe."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.learner import get_learner
from ktlite.lr import SGDR, Constant, OneCycle, Triangular

N, D, BS = 96, 4, 16
STEPS = N // BS


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


def _model(optimizer=None):
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _learner(model=None, val=True, **kwargs):
    x, y = _data()
    xv, yv = _data(48, seed=1)
    return get_learner(
        model or _model(), (x, y), (xv, yv) if val else None, batch_size=BS, verbose=0,
        **kwargs,
    )


class _Recorder(keras.callbacks.Callback):
    """Keeps the weights at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _assert_weights_equal(model, weights):
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_fit_onecycle_learns_a_separable_problem():
    learner = _learner()
    history = learner.fit_onecycle(5e-2, 6)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    assert history.history["val_accuracy"][-1] >= 0.85
    assert len(learner.step_history["losses"]) == 6 * STEPS
    assert np.all(np.isfinite(learner.step_history["losses"]))


def test_fit_onecycle_records_the_pure_onecycle_schedule():
    learner = _learner(val=False)
    learner.fit_onecycle(1e-2, 2, pct_start=0.3, div=10, div_final=100, moms=(0.9, 0.8))
    policy = OneCycle(1e-2, 2 * STEPS, pct_start=0.3, div=10, div_final=100, moms=(0.9, 0.8))
    steps = np.arange(2 * STEPS)
    np.testing.assert_allclose(learner.step_history["lrs"], policy.lr_at(steps), rtol=1e-6)
    np.testing.assert_allclose(
        learner.step_history["momentums"], policy.momentum_at(steps), rtol=1e-6
    )


def test_fit_constant_and_sgdr_record_the_pure_schedules():
    learner = _learner(val=False)
    learner.fit(3e-3, 2)
    np.testing.assert_allclose(
        learner.step_history["lrs"], Constant(3e-3, 2 * STEPS).lr_at(np.arange(2 * STEPS)),
        rtol=1e-6,
    )
    history = learner.fit(1e-2, 2, cycle_len=1, cycle_mult=2)
    assert len(history.history["loss"]) == 3
    policy = SGDR(1e-2, STEPS, 2, cycle_mult=2)
    np.testing.assert_allclose(
        learner.step_history["lrs"], policy.lr_at(np.arange(3 * STEPS)), rtol=1e-6
    )
    np.testing.assert_allclose(
        learner.step_history["momentums"], policy.momentum_at(np.arange(3 * STEPS)), rtol=1e-6
    )
    # `moms=None` leaves momentum alone (it could not be turned off before).
    learner.fit(1e-2, 1, cycle_len=1, moms=None)
    assert set(learner.step_history["momentums"]) == {None}  # none was set
    assert float(learner.model.optimizer.beta_1) == 0.9


def test_autofit_with_epochs_records_triangular_cycles():
    learner = _learner()
    learner.autofit(1e-2, 2)
    policy = Triangular(1e-2, STEPS, n_cycles=2)
    steps = np.arange(2 * STEPS)
    np.testing.assert_allclose(learner.step_history["lrs"], policy.lr_at(steps), rtol=1e-6)
    np.testing.assert_allclose(
        learner.step_history["momentums"], policy.momentum_at(steps), rtol=1e-6
    )


def test_autofit_early_stopping_restores_best_weights_and_lowers_peak():
    # Validation labels are the opposite of the training rule, so val_loss gets worse
    # as training succeeds: the best epoch is an early one.
    x, y = _data()
    xv, yv = _data(48, seed=1)
    learner = get_learner(_model(), (x, y), (xv, 1 - yv), batch_size=BS, verbose=0)
    recorder = _Recorder()
    history = learner.autofit(
        5e-2, epochs=None, early_stopping=3, reduce_on_plateau=1, callbacks=[recorder]
    )
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    assert len(val_losses) == best + 4
    _assert_weights_equal(learner.model, recorder.weights[best])
    peaks = np.max(np.reshape(learner.step_history["lrs"], (-1, STEPS)), axis=1)
    assert peaks[0] == pytest.approx(Triangular(5e-2, STEPS).lr_at(STEPS // 2))
    ratios = peaks[1:] / peaks[:-1]
    assert np.all(np.isclose(ratios, 1.0) | np.isclose(ratios, 0.5))
    assert peaks[-1] <= peaks[0] / 4


def test_autofit_stops_early_and_lowers_the_peak_when_val_loss_is_never_finite():
    # A NaN target in a later validation batch made val_loss NaN every epoch; autofit
    # skipped such epochs and, without `epochs`, would have run 1000 of them silently.
    x, y = _data()
    xv, yv = _data(48, seed=1)
    yv = yv.astype("float32")
    yv[40] = np.nan
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(BS)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    learner = get_learner(model, (x, y.astype("float32")), val, batch_size=BS, verbose=0)
    with pytest.warns(RuntimeWarning, match="`val_loss` is not finite") as caught:
        history = learner.autofit(1e-2, epochs=None, early_stopping=2, reduce_on_plateau=1)
    assert len(history.history["loss"]) == 2
    assert len([w for w in caught if "not finite" in str(w.message)]) == 1
    peaks = np.max(np.reshape(learner.step_history["lrs"], (-1, STEPS)), axis=1)
    assert peaks[1] == pytest.approx(peaks[0] / 2)


def test_autofit_saves_best_model_to_checkpoint_folder(tmp_path):
    learner = _learner()
    learner.model.optimizer.learning_rate.assign(7e-4)  # none of the schedule's rates
    learner.autofit(1e-2, 2, checkpoint_folder=tmp_path / "ckpt")
    saved = keras.saving.load_model(tmp_path / "ckpt" / "best.keras")
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["best.keras"]
    _assert_weights_equal(learner.model, saved.get_weights())
    # The checkpoint's optimizer holds the model's own rate, not the schedule's rate at the
    # epoch's last step (a plain `fit` of the reloaded model trained at that one).
    own = float(learner.model.optimizer.learning_rate.numpy())
    assert own == pytest.approx(7e-4) and float(saved.optimizer.learning_rate.numpy()) == own
    assert not np.isclose(learner.step_history["lrs"], own).any()


@pytest.mark.parametrize("save_freq", ["epoch", 2])
def test_the_users_model_checkpoint_saves_the_optimizers_own_rate(tmp_path, save_freq):
    learner = _learner()
    learner.model.optimizer.learning_rate.assign(7e-4)  # none of the schedule's rates
    seen = []

    class Rates(keras.callbacks.Callback):  # a callback that is not a checkpoint
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate.numpy()))

    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "ckpt.keras", save_freq=save_freq)
    callbacks = [checkpoint, Rates()]
    learner.fit_onecycle(1e-2, 2, callbacks=callbacks)
    assert callbacks[0] is checkpoint and len(callbacks) == 2  # the list is the user's
    assert checkpoint.model is learner.model
    saved = keras.saving.load_model(tmp_path / "ckpt.keras")
    # It used to hold the schedule's rate at the step it saved (1e-6 after one cycle).
    assert float(saved.optimizer.learning_rate.numpy()) == pytest.approx(7e-4)
    _assert_weights_equal(learner.model, saved.get_weights())
    # Other callbacks still see the rate of the step.
    assert seen and not np.isclose(seen, 7e-4).any()
    assert seen[-1] == pytest.approx(learner.step_history["lrs"][-1])


def test_autofit_takes_keras_verbose_levels_and_fits_refuse_others_before_anything(tmp_path):
    # A learner made with verbose=2 (one line an epoch) made autofit fail: its callbacks
    # took 0 or 1 only, after the checkpoint folder had been made.
    learner = get_learner(_model(), _data(), _data(48, seed=1), batch_size=BS, verbose=2)
    assert len(learner.autofit(1e-2, 1, checkpoint_folder=tmp_path / "a").history["loss"]) == 1
    before = learner.model.get_weights()
    calls = (lambda **kw: learner.fit_onecycle(1e-2, 1, **kw),
             lambda **kw: learner.autofit(1e-2, 1, checkpoint_folder=tmp_path / "b", **kw))
    for call in calls:
        with pytest.raises(ValueError, match=r"`verbose` must be 0, 1 or 2. Received: verbose=3"):
            call(verbose=3)
        with pytest.raises(TypeError, match="`verbose` must be 0, 1 or 2"):
            call(verbose="x")
    _assert_weights_equal(learner.model, before)
    assert not (tmp_path / "b").exists()


def test_autofit_refuses_a_monitor_the_fit_does_not_log_and_names_those_it_does():
    learner = _learner()
    before = learner.model.get_weights()
    with pytest.raises(ValueError, match=r"'val_accuracy'.*monitor='val_nothing'"):
        learner.autofit(1e-3, 1, monitor="val_nothing")
    _assert_weights_equal(learner.model, before)
    history = learner.autofit(1e-3, 1, monitor="val_accuracy")
    assert "val_accuracy" in history.history


def test_autofit_argument_errors():
    learner = _learner(val=False)
    with pytest.raises(ValueError, match="needs validation data"):
        learner.autofit(1e-3)
    with pytest.raises(ValueError, match=r"\['accuracy', 'loss'\]. Received: monitor='acc'"):
        learner.autofit(1e-3, 1, monitor="acc")
    with pytest.raises(ValueError, match="early_stopping=0"):
        learner.autofit(1e-3, monitor="loss", early_stopping=0)
    with pytest.raises(TypeError, match="reduce_on_plateau"):
        learner.autofit(1e-3, 2, monitor="loss", reduce_on_plateau=1.5)
    for factor in (2.0, 0, 1.0, float("nan")):
        with pytest.raises(ValueError, match=f"reduce_factor={factor!r}"):
            learner.autofit(1e-3, 2, monitor="loss", reduce_factor=factor)
    with pytest.raises(ValueError, match="`early_stopping`.*Received: early_stopping=-1"):
        learner.autofit(1e-3, 2, monitor="loss", early_stopping=-1)
    with pytest.raises(TypeError, match="`monitor` must be the name"):
        learner.autofit(1e-3, 2, monitor=None)
    before = learner.model.get_weights()
    with pytest.raises(ValueError, match=r"at least 2 updates an epoch. Received: 1 .*"
                       r"batch_size=16\): pass a smaller `batch_size`"):
        learner.autofit(1e-3, 2, monitor="loss", steps_per_epoch=1)
    _assert_weights_equal(learner.model, before)


@pytest.mark.parametrize("kwargs, name", [
    ({"reduce_factor": "0.5"}, "reduce_factor"),
    ({"reduce_factor": True}, "reduce_factor"),
    ({"early_stopping": "3"}, "early_stopping"),
    ({"early_stopping": False}, "early_stopping"),
    ({"reduce_on_plateau": True}, "reduce_on_plateau"),
])
def test_autofit_arguments_of_the_wrong_type_are_type_errors(kwargs, name):
    learner = _learner(val=False)
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        learner.autofit(1e-3, 2, monitor="loss", **kwargs)


class _PoisonAt(keras.callbacks.Callback):
    """Writes NaN into the output kernel at a given epoch and batch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            kernel = self.model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_loss_stops_training_and_restores_last_good_epoch():
    learner = _learner()
    recorder = _Recorder()
    with pytest.warns(RuntimeWarning, match="NaN or infinite at epoch 3, batch 2"):
        history = learner.fit_onecycle(1e-2, 5, callbacks=[recorder, _PoisonAt(2, 1)])
    assert len(history.history["loss"]) == 3
    _assert_weights_equal(learner.model, recorder.weights[1])
    assert all(np.isfinite(w).all() for w in learner.model.get_weights())
    assert all(np.isfinite(v.numpy()).all() for v in learner.model.optimizer.variables)


def test_nan_weights_under_a_finite_loss_stop_training_and_restore_the_last_finite_ones():
    # A NaN input in a later batch: the ReLU keeps the loss finite while the gradients
    # write NaN into the first kernel. The guard watched the loss alone and kept such
    # weights as the epoch's good snapshot.
    x, y = _data()
    x[50, 2] = np.nan  # the 4th batch; the first batch, which is checked, is clean
    model = _model()
    start = model.get_weights()
    learner = get_learner(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(BS),
                          None, verbose=0)
    with pytest.warns(RuntimeWarning, match="the weights became NaN or infinite at epoch 1"):
        history = learner.fit_onecycle(1e-2, 2)
    assert np.isfinite(history.history["loss"]).all() and len(history.history["loss"]) == 1
    _assert_weights_equal(learner.model, start)


class _InterruptAt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt as epoch `epoch` begins (or, with `at_end`, as it ends)."""

    def __init__(self, epoch, at_end=False):
        super().__init__()
        self.at, self.at_end = epoch, at_end

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at and not self.at_end:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at and self.at_end:
            raise KeyboardInterrupt


def test_keyboard_interrupt_keeps_best_weights_and_restores_optimizer():
    x, y = _data()
    xv, yv = _data(48, seed=1)
    model = _model()
    learner = get_learner(model, (x, y), (xv, 1 - yv), batch_size=BS, verbose=0)
    recorder = _Recorder()
    with pytest.raises(KeyboardInterrupt):
        learner.autofit(5e-2, 5, callbacks=[recorder, _InterruptAt(3)])
    assert len(recorder.weights) == 3
    best = int(np.argmin([_evaluate_with(model, w, xv, 1 - yv) for w in recorder.weights]))
    _assert_weights_equal(model, recorder.weights[best])
    assert isinstance(model.optimizer.beta_1, float) and model.optimizer.beta_1 == 0.9
    assert "train_step" not in model.__dict__


def test_an_interrupt_in_a_user_callbacks_epoch_end_keeps_the_epoch_that_ended():
    x, y = _data()
    xv, yv = _data(48, seed=1)
    model = _model()
    learner = get_learner(model, (x, y), (xv, yv), batch_size=BS, verbose=0)
    recorder = _Recorder()
    with pytest.raises(KeyboardInterrupt):
        learner.autofit(5e-2, 5, callbacks=[recorder, _InterruptAt(2, at_end=True)])
    losses = [_evaluate_with(model, w, xv, yv) for w in recorder.weights]
    assert len(losses) == 3 and int(np.argmin(losses)) == 2  # the interrupted epoch was best
    _assert_weights_equal(model, recorder.weights[2])
    # The history holds the epoch the model now holds (Keras' own History ran last and
    # had not recorded it: the history's best epoch was another than the model's).
    assert learner.history.epoch == [0, 1, 2]
    np.testing.assert_allclose(learner.history.history["val_loss"][2], losses[2], rtol=1e-4)


def test_an_interrupted_fit_leaves_its_own_history_not_the_last_fits():
    learner = get_learner(_model(), _data(), _data(48, seed=1), batch_size=BS, verbose=0)
    earlier = learner.fit_onecycle(1e-2, 1)
    with pytest.raises(KeyboardInterrupt):
        learner.autofit(5e-2, 5, callbacks=[_InterruptAt(3)])
    assert learner.history is not earlier and learner.history.epoch == [0, 1, 2]
    assert len(learner.history.history["val_loss"]) == 3
    with pytest.raises(KeyboardInterrupt):
        learner.fit_onecycle(1e-2, 2, callbacks=[_InterruptAt(0)])
    assert learner.history.epoch == [] and learner.history.history == {}


class _InterruptAtBatch(keras.callbacks.Callback):
    def __init__(self, batch):
        super().__init__()
        self.at = batch
        self.seen = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


def test_a_schedule_optimizer_is_refused_before_any_callback_starts():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.5)
    learner = _learner(_model(keras.optimizers.SGD(schedule)))

    class Hooks(keras.callbacks.Callback):
        calls = []

        def on_train_begin(self, logs=None):
            self.calls.append("begin")

    with pytest.raises(ValueError, match="`learning_rate` is a schedule"):
        learner.fit_onecycle(1e-2, 1, callbacks=[Hooks()])
    assert Hooks.calls == []


@pytest.mark.parametrize("callback", [
    keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.5),
    keras.callbacks.ReduceLROnPlateau(),
])
def test_a_callback_that_sets_the_rate_is_refused_before_any_step(callback):
    learner = _learner()
    before = [w.copy() for w in learner.model.get_weights()]
    name = type(callback).__name__
    for fit in (lambda: learner.fit_onecycle(1e-2, 1, callbacks=[callback]),
                lambda: learner.fit(1e-2, 1, callbacks=[callback]),
                lambda: learner.autofit(1e-2, 2, callbacks=[callback]),
                lambda: learner.fine_tune(1, callbacks=[callback]),  # before its lr_find
                lambda: learner.lr_find(callbacks=[callback])):
        with pytest.raises(ValueError, match=rf"must not set the learning rate.*{name}"):
            fit()
    for w, b in zip(learner.model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    assert learner.lr_result is None and int(learner.model.optimizer.iterations) == 0


def test_backup_and_restore_is_refused_before_any_step(tmp_path):
    # Resumed after an interrupt, it rewound the step count after the schedule had been
    # anchored: the resumed last epoch trained at the warm-up rates, silently.
    learner = _learner()
    before = [w.copy() for w in learner.model.get_weights()]
    callback = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    for fit in (lambda: learner.fit_onecycle(1e-2, 1, callbacks=[callback]),
                lambda: learner.autofit(1e-2, 2, callbacks=[callback]),
                lambda: learner.lr_find(callbacks=[callback])):
        with pytest.raises(ValueError, match=r"must not hold a BackupAndRestore: .*would "
                                             r"train at the wrong rates.*`learner.load_model`"):
            fit()
    for w, b in zip(learner.model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    assert int(learner.model.optimizer.iterations) == 0 and not os.listdir(tmp_path)


def test_bad_schedule_settings_are_refused_where_they_would_be_ignored_or_invert_it():
    learner = _learner()
    # Without `cycle_len` no cycle moves momentum, but a bad pair is still a mistake.
    with pytest.raises(ValueError, match=r"`moms\[0\]` must be a float in \[0, 1\)"):
        learner.fit(1e-2, 1, moms=(2, 3))
    # A start or end above the peak `lr` is no one-cycle.
    for settings, name in (({"div": 0.5}, "div"), ({"div_final": 0.1}, "div_final")):
        with pytest.raises(ValueError, match=rf"`{name}` must be a float >= 1"):
            learner.fit_onecycle(1e-2, 1, **settings)
    assert int(learner.model.optimizer.iterations) == 0


def test_a_completed_fit_gives_the_optimizer_its_own_rate_back():
    model = _model(keras.optimizers.SGD(0.05, momentum=0.9))
    learner = _learner(model)
    learner.fit_onecycle(1e-2, 1)
    assert min(learner.step_history["lrs"]) < 1e-5  # the policy ended near zero ...
    assert float(model.optimizer.learning_rate.numpy()) == np.float32(0.05)  # ... not SGD


def test_interrupted_fit_onecycle_puts_back_the_learning_rate_and_momentum():
    model = _model(keras.optimizers.Adam(1e-3, beta_1=0.9))
    learner = _learner(model)
    with pytest.raises(KeyboardInterrupt):
        learner.fit_onecycle(5e-2, 3, callbacks=[_InterruptAtBatch(STEPS + 2)])
    assert len(learner.step_history["lrs"]) >= STEPS  # the schedule did drive the rate
    assert float(model.optimizer.learning_rate.numpy()) == np.float32(1e-3)
    assert isinstance(model.optimizer.beta_1, float) and model.optimizer.beta_1 == 0.9
    assert "train_step" not in model.__dict__


def _evaluate_with(model, weights, x, y):
    current = model.get_weights()
    model.set_weights(weights)
    loss = model.evaluate(x, y, verbose=0)[0]
    model.set_weights(current)
    return loss


def test_assigning_the_batch_size_or_the_data_takes_effect_at_the_next_fit():
    learner = _learner()
    learner.fit_onecycle(1e-3, 1)
    assert len(learner.step_history["lrs"]) == STEPS
    learner.batch_size = BS // 2
    learner.fit_onecycle(1e-3, 1)
    assert len(learner.step_history["lrs"]) == 2 * STEPS
    learner.train_data = _data(2 * N, seed=3)
    learner.fit_onecycle(1e-3, 1)
    assert len(learner.step_history["lrs"]) == 4 * STEPS
    learner.val_data = _data(BS, seed=4)
    assert learner.validate(print_report=False).sum() == BS


def test_fits_with_steps_per_epoch_draw_new_batches_and_a_seeded_learner_repeats_them():
    # Each such fit rebuilt its repeated pipeline from the seed and replayed the same
    # batches. At a rate of ~0 the weights stay put, so a batch's loss names it.
    def calls(n):
        keras.utils.set_random_seed(0)
        learner = _learner(_model(keras.optimizers.SGD(1e-9)), val=False, seed=0)
        losses = []
        for _ in range(n):
            learner.fit(1e-12, 1, steps_per_epoch=3)
            losses.append(learner.step_history["losses"])
        return losses

    first, second = calls(2), calls(2)
    assert not np.allclose(first[0], first[1])
    np.testing.assert_array_equal(first, second)


def test_a_never_built_model_trains_on_the_same_batches_with_or_without_lr_find_first():
    # Building the model read a batch of the cached training dataset, which drew its first
    # shuffled order: a fit alone started on the second, one after lr_find on the first.
    def first_epoch_losses(sweep):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.SGD(1e-9),
                      loss="sparse_categorical_crossentropy")
        learner = _learner(model, val=False, seed=1)
        if sweep:
            learner.lr_find(num_steps=5, verbose=0)
        learner.fit(1e-12, 1)
        return learner.step_history["losses"]

    np.testing.assert_array_equal(first_epoch_losses(False), first_epoch_losses(True))


def test_an_accumulated_updates_recorded_loss_is_the_mean_of_its_groups_batches():
    # The record kept the last batch of each group only. At a rate of ~0 the weights
    # stay put, so each batch's loss can be computed after the fit. 6 batches in
    # groups of 4: a group of 4, then the epoch's last, shorter group of 2.
    keras.utils.set_random_seed(0)
    learner = _learner(_model(keras.optimizers.SGD(1e-9)), val=False, shuffle=False,
                       gradient_accumulation_steps=4)
    learner.fit(1e-12, 1)
    x, y = _data()
    per_batch = [float(np.mean(keras.losses.sparse_categorical_crossentropy(
        y[i:i + BS], learner.model.predict(x[i:i + BS], verbose=0)))) for i in range(0, N, BS)]
    np.testing.assert_allclose(
        learner.step_history["losses"], [np.mean(per_batch[:4]), np.mean(per_batch[4:])],
        rtol=1e-5)


def test_class_weight_steps_per_epoch_and_sgd_momentum_pass_through():
    model = _model(keras.optimizers.SGD(1e-2, momentum=0.9))
    learner = _learner(model, val=False)
    history = learner.fit_onecycle(
        1e-2, 2, class_weight={0: 1.0, 1: 3.0}, steps_per_epoch=STEPS + 2
    )
    assert len(learner.step_history["lrs"]) == 2 * (STEPS + 2)
    assert len(history.history["loss"]) == 2
    assert max(learner.step_history["momentums"]) == pytest.approx(0.95)
    assert model.optimizer.momentum == 0.9


def test_class_weight_moves_predictions_toward_the_up_weighted_class():
    x, y = _data()
    probabilities = {}
    for weights in (None, {1: 20.0}):  # class 0 left out: weight 1, as Keras does
        keras.utils.set_random_seed(3)
        learner = get_learner(_model(), (x, y), batch_size=BS, shuffle=False, verbose=0)
        learner.fit_onecycle(1e-2, 3, class_weight=weights)
        probabilities[weights is None] = learner.predict(x)[:, 1]
    unweighted, weighted = probabilities[True], probabilities[False]
    assert weighted.mean() > unweighted.mean() + 0.05
    assert (weighted > 0.5).sum() > (unweighted > 0.5).sum()


@pytest.mark.parametrize("class_weight, error, message", [
    ([1.0, 3.0], TypeError, r"dict of class ids to weights.*Received: class_weight of type list"),
    ({"neg": 2.0}, TypeError, r"keys must be class ids .*preproc.class_names.*'neg'"),
    ({0: "2"}, TypeError, r"`class_weight\[0\]` must be a float >= 0. Received: .*\]='2'"),
    ({1: True}, TypeError, r"`class_weight\[1\]` must be a float >= 0. Received: .*\]=True"),
    ({0: -1.0}, ValueError, r"`class_weight\[0\]` must be a float >= 0. Received: .*\]=-1.0"),
    ({0: float("inf")}, ValueError, r"`class_weight\[0\]` must be a float >= 0. Received: .*=inf"),
    ({7: 2.0}, ValueError, r"classes \[7\] that the model does not have: its classes are 0 to 1"),
])
def test_bad_class_weight_is_refused_before_training(class_weight, error, message):
    learner = _learner(val=False)
    before = learner.model.get_weights()
    with pytest.raises(error, match=message):
        learner.fit_onecycle(1e-2, 1, class_weight=class_weight)
    _assert_weights_equal(learner.model, before)


@pytest.mark.parametrize("outputs, activation, loss, task", [
    (3, "sigmoid", "binary_crossentropy", "multilabel classification"),
    (1, None, "mse", "regression"),
    (2, None, keras.losses.Huber(), "regression"),
])
def test_class_weight_is_refused_where_keras_would_weigh_by_the_wrong_class(
    outputs, activation, loss, task
):
    # Keras weighs a row by the class of its largest label: a multilabel row by its first
    # positive label only, a regression target by its rounded value.
    from ktlite.validation import check_class_weight

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(outputs, activation)])
    model.compile(optimizer="adam", loss=loss)
    with pytest.raises(ValueError, match=rf"compiled for {task} .*sample weights.*"
                                         r"Received: class_weight=\{0: 5.0\}"):
        check_class_weight({0: 5.0}, model)
    model.compile(optimizer="adam", loss="binary_crossentropy")  # one output: two classes
    if outputs == 1:
        assert check_class_weight({0: 5.0}, model) == {0: 5.0, 1: 1.0}


def test_class_weight_is_refused_for_an_output_per_position():
    # A tagger, translation or language model: Keras weighed each sequence by the position
    # of its largest token id, silently (or failed inside the pipeline after training began).
    from ktlite.validation import check_class_weight

    inputs = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(20, 4)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"output per position \(shape \(None, 10, 5\)\).*"
                                         r"Received: class_weight=\{3: 0.0\}"):
        check_class_weight({3: 0.0}, model)
    x = np.random.default_rng(0).integers(0, 20, (16, 10))
    learner = get_learner(model, (x, x % 5), batch_size=8, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="output per position"):
        learner.fit_onecycle(1e-2, 1, class_weight={3: 0.0})
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_bad_seed_callbacks_and_checkpoint_folder_are_refused_naming_them():
    with pytest.raises(TypeError, match=r"`seed` must be None or an int >= 0. Received: seed='a'"):
        _learner(seed="a")
    with pytest.raises(ValueError, match=r"Received: seed=-1"):
        _learner(seed=-1)
    learner = _learner()
    with pytest.raises(TypeError, match=r"Callback objects. Received: callbacks\[0\]='x'"):
        learner.fit_onecycle(1e-2, 1, callbacks=["x"])
    with pytest.raises(TypeError, match=r"`checkpoint_folder` must be a path .*Received: "
                       r"checkpoint_folder of type int"):
        learner.autofit(1e-2, 1, checkpoint_folder=123)


def test_a_refused_autofit_leaves_no_checkpoint_folder(tmp_path):
    learner = _learner()
    for kwargs in ({"steps_per_epoch": "3"}, {"steps_per_epoch": 1}, {"callbacks": ["x"]}):
        with pytest.raises((TypeError, ValueError)):
            learner.autofit(1e-2, 1, checkpoint_folder=tmp_path / "ckpt", **kwargs)
        assert not (tmp_path / "ckpt").exists()


def test_a_checkpoint_folder_that_is_a_file_is_refused_naming_it(tmp_path):
    (tmp_path / "ckpt").write_text("notes")
    with pytest.raises(FileExistsError, match=r"`checkpoint_folder` must be a folder, not a "
                       r"file: '.*ckpt' is a file"):
        _learner().autofit(1e-2, 1, checkpoint_folder=tmp_path / "ckpt")


@pytest.mark.parametrize("make, folder, message", [
    (lambda tmp: (tmp / "ckpt" / "best.keras").mkdir(parents=True), "ckpt",
     r"`checkpoint_folder` cannot hold the checkpoint '.*best\.keras': '.*best\.keras' is a "
     r"folder, not a file\. Received: checkpoint_folder='.*ckpt'"),
    (lambda tmp: (tmp / "notes").write_text("x"), "notes/ckpt",
     r"`checkpoint_folder` cannot hold the checkpoint '.*best\.keras': '.*notes' is a file, "
     r"not a folder\. Received: checkpoint_folder='.*notes/ckpt'"),
])
def test_a_checkpoint_folder_that_cannot_hold_the_checkpoint_is_refused_before_training(
        tmp_path, make, folder, message):
    # A folder named best.keras failed after the first epoch (IsADirectoryError naming a
    # hidden temporary file); a folder below a file with a raw NotADirectoryError.
    make(tmp_path)
    learner = _learner()
    before = learner.model.get_weights()
    with pytest.raises(ValueError, match=message):
        learner.autofit(1e-2, 1, checkpoint_folder=tmp_path / folder)
    _assert_weights_equal(learner.model, before)
    assert int(learner.model.optimizer.iterations.numpy()) == 0


def test_an_empty_checkpoint_folder_is_refused_not_saved_to_the_working_directory(
        tmp_path, monkeypatch):
    # "" was taken as the working directory: best.keras appeared there unasked.
    monkeypatch.chdir(tmp_path)
    learner = _learner()
    with pytest.raises(ValueError, match=r"`checkpoint_folder` must name a folder.*pass '\.'"
                       r".*Received: checkpoint_folder=''"):
        learner.autofit(1e-2, 1, checkpoint_folder="")
    assert list(tmp_path.iterdir()) == []
    assert int(learner.model.optimizer.iterations.numpy()) == 0


def test_callbacks_read_the_rate_and_cannot_set_it_as_the_fits_document():
    learner = _learner()

    class Rates(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begin, self.end = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.begin.append(float(self.model.optimizer.learning_rate.numpy()))

        def on_train_batch_end(self, batch, logs=None):
            self.end.append(float(self.model.optimizer.learning_rate.numpy()))

    class Setter(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate.assign(0.5)

    rates = Rates()
    learner.fit_onecycle(1e-2, 2, callbacks=[rates, Setter()])
    lrs = learner.step_history["lrs"]
    np.testing.assert_allclose(rates.end, lrs, rtol=1e-6)  # the step's, not the 0.5 set
    np.testing.assert_allclose(rates.begin[1:], lrs[:-1], rtol=1e-6)  # the previous step's
    assert max(lrs) == pytest.approx(1e-2, rel=1e-5)
    # The docstrings said callbacks "see the rate of the step", and not that the schedule
    # owns it.
    doc = " ".join(learner.fit_onecycle.__doc__.split())
    assert "the previous step's in `on_train_batch_begin`" in doc
    assert "assigns `optimizer.learning_rate` itself has no effect" in doc
    for fit in (learner.fit, learner.autofit):
        assert "schedule owns the optimizer's learning rate" in " ".join(fit.__doc__.split())


def test_step_history_plots():
    import matplotlib.figure

    learner = _learner(val=False)
    with pytest.raises(ValueError, match="train first"):
        learner.plot("lr")
    learner.fit_onecycle(1e-2, 1)
    for kind in ("lr", "momentum", "loss"):
        assert isinstance(learner.plot(kind), matplotlib.figure.Figure)
    with pytest.raises(ValueError, match="kind"):
        learner.plot("accuracy")


@pytest.mark.parametrize("kind", [None, 1, ["lr"]])
def test_plot_kind_of_the_wrong_type_is_a_type_error(kind):
    learner = _learner(val=False)
    with pytest.raises(TypeError, match=r"`kind` must be one of \[.*\]. Received: kind="):
        learner.plot(kind)


@pytest.mark.parametrize("kwargs, name", [
    ({"shuffle": 1}, "shuffle"),
    ({"shuffle": "yes"}, "shuffle"),
    ({"shuffle": None}, "shuffle"),
    ({"mixed_precision": 16}, "mixed_precision"),
    ({"mixed_precision": True}, "mixed_precision"),
])
def test_get_learner_settings_of_the_wrong_type_are_type_errors(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        _learner(**kwargs)


def test_get_learner_takes_a_numpy_bool_for_shuffle():
    assert _learner(shuffle=np.bool_(False)).shuffle is False


def test_training_data_that_repeats_forever_needs_steps_per_epoch_and_no_lr_find_epochs():
    x, y = _data()
    endless = tf.data.Dataset.from_tensor_slices((x, y)).batch(BS).repeat()
    learner = get_learner(_model(), endless, batch_size=BS, verbose=0)
    with pytest.raises(ValueError, match=r"repeats forever.*pass `steps_per_epoch` to the fit"):
        learner.fit_onecycle(1e-2, 1)
    with pytest.raises(ValueError, match=r"`lr_find\(epochs=\.\.\.\)`.*leave `epochs` out"):
        learner.lr_find(epochs=2, num_steps=10, verbose=0)
    assert len(learner.fit_onecycle(1e-2, 1, steps_per_epoch=3).history["loss"]) == 1


def _varying_passes():
    """Batches of samples, of unknown length, whose passes shrink: 6, 5, 4, 3, 3... batches."""
    x, y = _data()
    passes = iter(range(10_000))

    def samples():
        n = N - BS * min(next(passes), 3)
        yield from zip(x[:n], y[:n])

    spec = (tf.TensorSpec((D,), tf.float32), tf.TensorSpec((), tf.int64))
    return tf.data.Dataset.from_generator(samples, output_signature=spec).batch(BS)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_training_data_whose_length_varies_between_passes_trains_the_planned_schedule(
        accumulation):
    model = _model()
    learner = get_learner(model, _varying_passes(), batch_size=BS, verbose=0,
                          gradient_accumulation_steps=accumulation)
    updates = 3 * -(-learner._train_steps() // accumulation)
    learner.fit_onecycle(1e-2, 3)
    lrs = learner.step_history["lrs"]
    assert len(lrs) == updates == int(model.optimizer.iterations.numpy())
    np.testing.assert_allclose(lrs[-1], OneCycle(1e-2, updates).lr_at(updates - 1), rtol=1e-6)
    assert learner.lr_find(num_steps=8, epochs=3, verbose=0).config["planned_steps"] == updates


def test_a_schedule_covers_the_batches_keras_runs_with_steps_per_execution():
    # With steps_per_execution=3 and steps_per_epoch=5 Keras runs 6 batches an epoch; the
    # one-cycle schedule was planned for 5, so its last steps ran at lr / div_final.
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  steps_per_execution=3)
    learner = get_learner(model, _data(), batch_size=BS, verbose=0)
    learner.fit_onecycle(1e-2, 2, steps_per_epoch=5)
    lrs = learner.step_history["lrs"]
    assert len(lrs) == 12 == int(model.optimizer.iterations.numpy())
    np.testing.assert_allclose(lrs, OneCycle(1e-2, 12).lr_at(np.arange(12)), rtol=1e-6)
