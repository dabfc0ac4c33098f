"""ktlite's gradient accumulation (ktlite/distribute/accumulation.py) on one device.

The same mechanism under MirroredStrategy is checked in test_distribute_mirrored.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite import distribute


def data(n=64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    return x, y


def regression_model(optimizer=None, **compile_kwargs):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.1), loss="mse",
                  **compile_kwargs)
    return model


def test_accumulating_two_half_batches_equals_one_full_batch():
    x, y = data()
    reference = regression_model()
    reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    accumulating = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    accumulating.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(reference.get_weights(), accumulating.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_iterations_count_optimizer_updates_not_batches():
    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=4)
    assert distribute.accumulation_steps(model) == 4
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 8 batches
    assert int(model.optimizer.iterations.numpy()) == 2


def test_a_keras_learning_rate_schedule_counts_updates():
    x, y = data()
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.1, 0.0])
    model = distribute.prepare_model(
        regression_model(keras.optimizers.SGD(schedule)), gradient_accumulation_steps=2
    )
    before = model.get_weights()
    model.fit(x[:16], y[:16], batch_size=8, epochs=1, shuffle=False, verbose=0)
    moved = model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, moved))  # update 0: lr 0.1
    model.fit(x[16:48], y[16:48], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(moved, model.get_weights()):  # updates 1 and 2: lr 0
        np.testing.assert_array_equal(a, b)


def test_reset_drops_partly_accumulated_gradients():
    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    model.train_on_batch(x[:8], y[:8])  # half a group
    distribute.reset_accumulation(model)
    reference = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    for model_ in (model, reference):
        model_.fit(x[8:24], y[8:24], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_accumulation_with_loss_scaling_matches_plain_float32_updates():
    x, y = data()
    reference = regression_model()
    reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(learning_rate=0.1))
    scaled = distribute.prepare_model(regression_model(optimizer), gradient_accumulation_steps=2)
    scaled.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(reference.get_weights(), scaled.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_keras_optimizer_accumulating_on_one_device_is_left_alone():
    model = regression_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=3))
    assert distribute.prepare_model(model, strategy="default") is model
    assert distribute.accumulation_steps(model) == 3
    assert "make_train_function" not in model.__dict__


def test_ktlite_accumulation_replaces_the_keras_optimizers_own():
    model = regression_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=3))
    prepared = distribute.prepare_model(model, gradient_accumulation_steps=2)
    assert prepared.optimizer.gradient_accumulation_steps is None
    assert distribute.accumulation_steps(prepared) == 2


def test_one_accumulation_step_switches_accumulation_off():
    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    distribute.prepare_model(model, gradient_accumulation_steps=1)
    assert distribute.accumulation_steps(model) == 1
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 8


def test_accumulation_needs_one_step_per_execution():
    model = regression_model(steps_per_execution=4)
    with pytest.raises(ValueError, match="steps_per_execution=4"):
        distribute.prepare_model(model, gradient_accumulation_steps=2)


@pytest.mark.parametrize(
    "steps, error",
    [("4", TypeError), (True, TypeError), (2.0, TypeError), (1, ValueError), (-2, ValueError)],
)
def test_enable_rejects_wrong_types_and_out_of_range_steps(steps, error):
    from ktlite.distribute import accumulation

    model = regression_model()
    with pytest.raises(error, match=f"`steps` must be an int >= 2. Received: steps={steps!r}"):
        accumulation.enable(model, steps, tf.distribute.get_strategy())
    assert distribute.accumulation_steps(model) == 1


@pytest.mark.parametrize(
    "call",
    [
        distribute.accumulation_steps,
        distribute.enabled_accumulation_steps,
        distribute.reset_accumulation,
        lambda model: distribute.paused_accumulation(model).__enter__(),
        distribute.current_precision,
    ],
)
@pytest.mark.parametrize("model", [1, "model", None])
def test_the_distribute_helpers_refuse_what_is_not_a_model(call, model):
    with pytest.raises(TypeError, match=f"`model` must be of type Model. Received: model of "
                                        f"type {type(model).__name__}"):
        call(model)


def test_accumulators_live_in_the_strategy_scope():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    model = distribute.prepare_model(
        regression_model(), strategy=strategy, gradient_accumulation_steps=2
    )
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4


def test_paused_accumulation_updates_every_batch_and_then_resumes():
    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    model.train_on_batch(x[:8], y[:8])  # half a group, dropped
    with distribute.paused_accumulation(model):
        model.fit(x[:32], y[:32], batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4
    reference = regression_model()
    reference.set_weights(model.get_weights())
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 8
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_learner_one_cycle_counts_updates_under_accumulation():
    from ktlite import get_learner

    x, y = data()
    learner = get_learner(regression_model(keras.optimizers.Adam(1e-3)), (x, y),
                          batch_size=8, gradient_accumulation_steps=2, verbose=0)
    learner.fit_onecycle(1e-2, epochs=2, div=10.0, div_final=100.0)
    lrs = learner.step_history["lrs"]
    assert len(lrs) == 8  # 2 epochs x 8 batches / 2 batches per update
    assert int(learner.model.optimizer.iterations.numpy()) == 8
    assert lrs[0] == pytest.approx(1e-3, rel=1e-3)  # lr / div: the cycle starts ...
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)  # ... and ends on the last update


def test_learner_lr_find_pauses_accumulation_and_restores_everything():
    from ktlite import get_learner

    x, y = data()
    learner = get_learner(regression_model(keras.optimizers.Adam(1e-3)), (x, y),
                          batch_size=8, gradient_accumulation_steps=2, verbose=0)
    before = learner.model.get_weights()
    result = learner.lr_find(num_steps=12)
    assert len(result.lrs) == 12  # one learning rate per batch
    for a, b in zip(before, learner.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert distribute.accumulation_steps(learner.model) == 2
    learner.fit_onecycle(1e-2, epochs=1)
    assert int(learner.model.optimizer.iterations.numpy()) == 4


def test_a_learner_runs_a_keras_optimizers_own_accumulation_as_ktlites():
    # Keras's own cannot be paused for the sweep and its epochs need not end on an update.
    from ktlite import get_learner

    x, y = data(40)  # 5 batches of 8: not a whole number of groups of 2
    optimizer = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2)
    with pytest.warns(UserWarning, match=r"own `gradient_accumulation_steps=2` runs as ktlite"):
        learner = get_learner(regression_model(optimizer), (x, y), batch_size=8, verbose=0)
    assert learner.model.optimizer is not optimizer
    assert learner.model.optimizer.gradient_accumulation_steps is None
    assert distribute.accumulation_steps(learner.model) == 2
    result = learner.lr_find(num_steps=12, end_lr=1.0)
    assert len(result.lrs) == 12 and result.lrs[-1] > 0.1  # the whole sweep, batch by batch
    learner.fit_onecycle(1e-2, epochs=2, div=10.0, div_final=100.0)
    lrs = learner.step_history["lrs"]
    assert len(lrs) == 6  # 2 epochs x 3 updates (the last group of each epoch is 1 batch)
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)  # the cycle ends on the last update


def test_taking_over_keras_accumulation_keeps_the_optimizer_state():
    from ktlite import get_learner

    x, y = data(48)
    model = regression_model(keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 6 batches: 3 updates
    moments = {v.path.split("/", 1)[-1]: v.numpy().copy() for v in model.optimizer.variables}
    with pytest.warns(UserWarning, match="runs as ktlite") as caught:
        learner = get_learner(model, (x, y), batch_size=8, verbose=0)
    assert not [w for w in caught if "could not be carried over" in str(w.message)]
    copy = learner.model.optimizer
    assert int(copy.iterations.numpy()) == 3
    for variable in copy.variables:
        name = variable.path.split("/", 1)[-1]
        if name != "iteration":
            np.testing.assert_array_equal(variable.numpy(), moments[name])


def test_several_batches_per_call_keep_keras_accumulation_and_refuse_ktlites_untouched():
    from ktlite import get_learner

    x, y = data()
    optimizer = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2)
    model = regression_model(optimizer, steps_per_execution=4)
    get_learner(model, (x, y), batch_size=8, verbose=0)  # ktlite's cannot run: kept
    assert model.optimizer is optimizer and optimizer.gradient_accumulation_steps == 2
    with pytest.raises(ValueError, match="steps_per_execution=4"):
        get_learner(model, (x, y), batch_size=8, gradient_accumulation_steps=3, verbose=0)
    assert model.optimizer is optimizer and optimizer.gradient_accumulation_steps == 2


def test_an_epoch_shorter_than_one_group_still_trains():
    from ktlite import get_learner

    x, y = data(80)
    model = regression_model(keras.optimizers.Adam(1e-3))
    before = model.get_weights()
    learner = get_learner(model, (x, y), batch_size=128, gradient_accumulation_steps=4,
                          verbose=0)
    learner.fit_onecycle(1e-2, 3)  # one batch per epoch, four batches per group
    assert int(learner.model.optimizer.iterations.numpy()) == 3
    assert all(not np.allclose(a, b) for a, b in zip(before, learner.model.get_weights()))
    assert learner.step_history["lrs"][-1] == pytest.approx(1e-2 / 1e4)


def test_the_short_last_group_of_an_epoch_is_applied_as_its_own_mean():
    x, y = data(40)
    reference = regression_model()
    for _ in range(2):  # groups per epoch: batches 1+2, 3+4, then 5 alone
        reference.fit(x[:32], y[:32], batch_size=16, epochs=1, shuffle=False, verbose=0)
        reference.fit(x[32:], y[32:], batch_size=8, epochs=1, shuffle=False, verbose=0)
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 6
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_schedule_is_planned_on_the_updates_that_run_and_reaches_its_last_rate():
    from ktlite import get_learner

    x, y = data(40)
    learner = get_learner(regression_model(keras.optimizers.Adam(1e-3)), (x, y),
                          batch_size=8, gradient_accumulation_steps=2, shuffle=False,
                          verbose=0)
    learner.fit_onecycle(1e-2, epochs=2, div=10.0, div_final=100.0)  # 5 batches an epoch
    lrs = learner.step_history["lrs"]
    assert len(lrs) == 6 == int(learner.model.optimizer.iterations.numpy())
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4)
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)


def test_an_epoch_of_unknown_length_carries_its_last_group_with_a_warning():
    x, y = data(40)
    unknown = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(8)
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    with pytest.warns(UserWarning, match="Epoch 1 ended with 1 of 2 .*assert_cardinality"):
        model.fit(unknown, epochs=2, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 5  # 10 batches: 1+2, ..., 9+10


def test_an_interrupted_fit_leaves_no_half_accumulated_gradients():
    import ktlite

    x, y = data()

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt  # after the first batch: half a group

    learner = ktlite.get_learner(regression_model(), (x, y), batch_size=8,
                                 gradient_accumulation_steps=2, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        learner.fit_onecycle(1e-2, 1, callbacks=[Interrupt()])
    state = getattr(learner.model, "_ktlite_accumulation")
    assert state.pending == 0
    assert all(not np.any(a.numpy()) for a in state.accumulators.values())


def test_prepare_model_keeps_ktlite_accumulation_when_it_rebuilds_the_model():
    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=4)
    rebuilt = distribute.prepare_model(model, mixed_precision="bfloat16")
    assert rebuilt is not model
    assert distribute.accumulation_steps(rebuilt) == 4
    rebuilt.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 8 batches
    assert int(rebuilt.optimizer.iterations.numpy()) == 2


def test_a_learner_under_a_strategy_keeps_the_models_ktlite_accumulation():
    from ktlite import get_learner

    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=4)
    learner = get_learner(model, (x, y), batch_size=8, verbose=0,
                          strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert learner.model is not model  # rebuilt in the strategy's scope
    assert distribute.accumulation_steps(learner.model) == 4
    learner.fit_onecycle(1e-2, 1)
    assert int(learner.model.optimizer.iterations.numpy()) == 2


def unbuilt_regression_model(optimizer=None):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    return model


@pytest.mark.parametrize("loss_scaling", [False, True])
def test_a_model_built_by_its_first_fit_accumulates(loss_scaling):
    def optimizer():
        sgd = keras.optimizers.SGD(learning_rate=0.1)
        return keras.optimizers.LossScaleOptimizer(sgd) if loss_scaling else sgd

    x, y = data()
    reference = regression_model()
    reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model = distribute.prepare_model(unbuilt_regression_model(optimizer()),
                                     gradient_accumulation_steps=2)
    assert not model.built
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("first_group", [2, 1])
def test_a_model_built_by_its_first_fit_traces_its_steps_at_the_dynamic_loss_scale(
    monkeypatch, first_group
):
    # Its first step is traced before the optimizer exists; a step that kept the initial
    # loss scale as a constant would never follow the dynamic one (after an overflow).
    from ktlite.distribute import accumulation

    scales = []

    def recording(optimizer):
        scale = loss_scale(optimizer)
        scales.append((compiled_function(), isinstance(scale, keras.Variable)))
        return scale

    loss_scale = accumulation._loss_scale
    monkeypatch.setattr(accumulation, "_loss_scale", recording)
    x, y = data()
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(learning_rate=0.1))
    model = distribute.prepare_model(unbuilt_regression_model(optimizer),
                                     gradient_accumulation_steps=2)

    def compiled_function():  # as the train function keys them
        state = getattr(model, "_ktlite_accumulation")
        return state.divisor if state.mode == "update" else state.mode

    # An epoch of 8 * first_group samples: a first group of 2 starts with an accumulating
    # step, a group of 1 (the whole epoch) with an update.
    model.fit(x[:8 * first_group], y[:8 * first_group], batch_size=8, epochs=1, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    last_trace = dict(scales)  # each function runs as it was traced last
    assert set(last_trace) == {"accumulate", 2, first_group}
    assert all(last_trace.values()), scales


def test_a_learner_accumulates_on_a_model_it_builds_from_the_first_batch():
    from ktlite import get_learner

    x, y = data()
    learner = get_learner(unbuilt_regression_model(keras.optimizers.Adam(1e-3)), (x, y),
                          batch_size=8, gradient_accumulation_steps=2, verbose=0)
    learner.fit_onecycle(1e-2, 1)
    assert int(learner.model.optimizer.iterations.numpy()) == 4


def test_recompiling_an_accumulating_model_to_several_batches_per_call_is_refused():
    x, y = data()
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    model.compile(optimizer=model.optimizer, loss="mse", steps_per_execution=4)
    with pytest.raises(ValueError, match=r"steps_per_execution=1.*Received: steps_per_execution=4"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_fit_takes_a_callback_list_and_gives_it_back_unchanged():
    x, y = data(40)
    listed = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    listed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    history = keras.callbacks.History()
    callbacks = keras.callbacks.CallbackList([history], model=model, epochs=2, steps=5)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    assert callbacks.callbacks == [history] and len(history.history["loss"]) == 2
    assert int(model.optimizer.iterations.numpy()) == 6  # every epoch ends on an update
    for a, b in zip(listed.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_callback_list_without_steps_takes_the_epoch_length_from_steps_per_epoch():
    x, y = data(40)
    model = distribute.prepare_model(regression_model(), gradient_accumulation_steps=2)
    callbacks = keras.callbacks.CallbackList([keras.callbacks.History()], model=model)
    model.fit(x, y, batch_size=8, epochs=2, steps_per_epoch=5, shuffle=False, verbose=0,
              callbacks=callbacks)
    assert int(model.optimizer.iterations.numpy()) == 6


def test_a_schedule_with_keras_accumulation_across_epochs_is_refused():
    # Several batches per call keep the optimizer's own accumulation, whose groups run on
    # across epochs: 10 batches an epoch with 4 per update would plan 9 updates in 3
    # epochs and make 7.
    from ktlite import get_learner

    x, y = data(40)
    optimizer = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=4)
    learner = get_learner(regression_model(optimizer, steps_per_execution=2), (x, y),
                          batch_size=4, verbose=0)
    with pytest.raises(ValueError, match=r"steps_per_execution=1.*Received: 10 batches per "
                                         r"epoch, gradient_accumulation_steps=4"):
        learner.fit_onecycle(1e-2, 3)
    assert int(learner.model.optimizer.iterations.numpy()) == 0


def test_an_lr_sweep_under_keras_accumulation_is_refused_before_any_step():
    # Keras' own accumulation cannot be paused: 20 sweep steps would make 10 updates and
    # end at a tenth of the range, read as "too few steps".
    from ktlite import get_learner

    x, y = data(40)
    optimizer = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2)
    learner = get_learner(regression_model(optimizer, steps_per_execution=3), (x, y),
                          batch_size=4, verbose=0)
    before = [w.copy() for w in learner.model.get_weights()]
    with pytest.raises(ValueError, match=r"cannot be paused for the LR finder.*"
                                         r"Received: gradient_accumulation_steps=2"):
        learner.lr_find(num_steps=20, verbose=0)
    assert all((a == b).all() for a, b in zip(before, learner.model.get_weights()))


def test_a_schedule_with_keras_accumulation_runs_on_epochs_of_whole_updates():
    from ktlite import get_learner

    x, y = data(32)
    optimizer = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=4)
    learner = get_learner(regression_model(optimizer, steps_per_execution=2), (x, y),
                          batch_size=4, verbose=0)
    learner.fit_onecycle(1e-2, 3, div=10.0, div_final=100.0)  # 8 batches an epoch
    assert int(learner.model.optimizer.iterations.numpy()) == 6
    assert learner.step_history["lrs"][-1] == pytest.approx(1e-4)


def test_a_learner_reloads_a_checkpoint_with_the_accumulation_its_model_came_with(tmp_path):
    from ktlite import get_learner

    x, y = data()
    model = distribute.prepare_model(regression_model(keras.optimizers.Adam(1e-3)),
                                     gradient_accumulation_steps=2)
    learner = get_learner(model, (x, y), batch_size=8, verbose=0)
    path = str(tmp_path / "model.keras")
    learner.save_model(path)
    learner.load_model(path)
    assert distribute.accumulation_steps(learner.model) == 2
    learner.fit_onecycle(1e-2, 1)
    assert int(learner.model.optimizer.iterations.numpy()) == 4  # 8 batches / 2
