"""PolicyCallback drives the compiled optimizer per step, inside the graph."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite import compat
from ktlite.lr import Constant, OneCycle, PolicyCallback, Triangular
from step_models import MeanStepModel

STEPS_PER_EPOCH = 6  # 96 samples, batch 16


def _fit(model, data, cb, epochs=2, extra=(), callbacks_first=False, **kwargs):
    x, y = data
    callbacks = [*extra, cb] if callbacks_first else [cb, *extra]
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=callbacks, **kwargs)


def _twin(make_model, source, optimizer):
    twin = make_model(optimizer)
    twin.set_weights(source.get_weights())
    return twin


def test_records_the_policy_lr_and_leaves_the_last_one_set(make_model, data):
    model = make_model(keras.optimizers.Adam(1e-3))
    policy = OneCycle(1e-2, 2 * STEPS_PER_EPOCH)
    cb = PolicyCallback(policy)
    _fit(model, data, cb)
    expected = policy.lr_at(np.arange(12)).astype(np.float32)
    np.testing.assert_array_equal(np.float32(cb.history["lrs"]), expected)
    np.testing.assert_allclose(cb.history["momentums"], policy.momentum_at(np.arange(12)),
                               rtol=1e-6)
    assert float(model.optimizer.learning_rate.numpy()) == expected[-1]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_adam_uses_the_scheduled_beta_1(make_model, data, jit_compile):
    model = make_model(keras.optimizers.Adam(1e-2, beta_1=0.9), jit_compile=jit_compile)
    twin = _twin(make_model, model, keras.optimizers.Adam(1e-2, beta_1=0.5))
    _fit(model, data, PolicyCallback(Constant(1e-2, 12, momentum=0.5)))
    x, y = data
    twin.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... and a different beta_1 really gives different weights (the test can fail).
    other = _twin(make_model, twin, keras.optimizers.Adam(1e-2, beta_1=0.9))
    other.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(other.get_weights()[0], twin.get_weights()[0], atol=1e-6)


def test_sgd_uses_the_scheduled_momentum(make_model, data):
    model = make_model(keras.optimizers.SGD(0.1, momentum=0.9))
    twin = _twin(make_model, model, keras.optimizers.SGD(0.1, momentum=0.3))
    cb = PolicyCallback(Constant(0.1, 12, momentum=0.3))
    _fit(model, data, cb)
    assert cb.momentum_attribute == "momentum"
    x, y = data
    twin.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _ConfigSpy(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(self.model.optimizer.get_config()["beta_1"])


def test_config_stays_a_float_during_training_and_in_checkpoints(make_model, data, tmp_path):
    model = make_model(keras.optimizers.Adam(1e-3, beta_1=0.9))
    spy = _ConfigSpy()
    path = tmp_path / "mid.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(str(path), save_freq=3)
    _fit(model, data, PolicyCallback(OneCycle(1e-2, 12)), extra=[spy, checkpoint])
    assert spy.values and all(type(v) is float and v == 0.9 for v in spy.values)
    reloaded = keras.saving.load_model(path)
    assert reloaded.optimizer.get_config()["beta_1"] == 0.9
    assert type(model.optimizer.beta_1) is float


def test_model_is_put_back_after_training(make_model, data):
    optimizer = keras.optimizers.Adam(1e-3, beta_1=0.9)
    model = make_model(optimizer)
    x, y = data
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    plain_function = model.train_function
    _fit(model, data, PolicyCallback(OneCycle(1e-2, 12)))
    assert "train_step" not in model.__dict__
    assert model.train_function is plain_function
    assert optimizer.beta_1 == 0.9 and type(optimizer.beta_1) is float


def _assert_true_batch_losses(model, data, cb, history):
    """The recorded losses are each batch's own (the weights stay fixed at a rate of 1e-30),
    not Keras' running mean; the epoch log is the mean of them."""
    x, y = data
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    expected = [float(loss_fn(y[i:i + 16], model(x[i:i + 16]))) for i in range(0, 96, 16)] * 2
    np.testing.assert_allclose(cb.history["losses"], expected, rtol=1e-4)
    assert history.history["loss"][0] == pytest.approx(np.mean(expected[:6]), rel=1e-4)
    assert not np.allclose(cb.history["losses"][:6], np.cumsum(expected[:6]) / np.arange(1, 7))


def test_losses_are_true_per_batch_losses(make_model, data):
    # A learning rate far below float32 resolution keeps the weights fixed, so the loss of
    # each batch can be recomputed independently.
    model = make_model(keras.optimizers.SGD(1e-30))
    cb = PolicyCallback(Constant(1e-30, 12))
    history = _fit(model, data, cb)
    _assert_true_batch_losses(model, data, cb, history)


def test_every_step_is_driven_with_steps_per_execution(make_model, data):
    model = make_model(keras.optimizers.Adam(1e-3), steps_per_execution=4)
    policy = OneCycle(1e-2, 12)
    cb = PolicyCallback(policy)
    _fit(model, data, cb)
    np.testing.assert_array_equal(np.float32(cb.history["lrs"]),
                                  policy.lr_at(np.arange(12)).astype(np.float32))


def test_learning_rate_schedule_optimizer_is_refused_clearly(make_model, data):
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    model = make_model(keras.optimizers.Adam(schedule))
    with pytest.raises(ValueError, match=r"schedule.*Received: learning_rate of type "
                                         r"ExponentialDecay"):
        _fit(model, data, PolicyCallback(OneCycle(1e-2, 12)))
    assert compat.learning_rate_object(model.optimizer) is schedule


def test_optimizer_without_momentum_gets_the_learning_rate_only(make_model, data):
    model = make_model(keras.optimizers.Adagrad(1e-2))
    policy = OneCycle(1e-2, 12)
    cb = PolicyCallback(policy)
    with pytest.warns(UserWarning, match="moms=None"):
        _fit(model, data, cb)
    assert cb.history["momentums"] == [None] * 12
    np.testing.assert_array_equal(np.float32(cb.history["lrs"]),
                                  policy.lr_at(np.arange(12)).astype(np.float32))


def test_sgd_without_momentum_and_moms_none_is_quiet(make_model, data, recwarn):
    model = make_model(keras.optimizers.SGD(1e-2))
    _fit(model, data, PolicyCallback(OneCycle(1e-2, 12, moms=None)))
    assert not [w for w in recwarn if "momentum" in str(w.message)]


class _Halve(keras.callbacks.Callback):
    def __init__(self, target):
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch, logs=None):
        self.target.lr_scale = 0.5


def test_lr_scale_can_lower_the_peak_during_training(make_model, data):
    model = make_model(keras.optimizers.Adam(1e-3))
    policy = Triangular(1e-2, STEPS_PER_EPOCH)  # repeats forever
    cb = PolicyCallback(policy)
    _fit(model, data, cb, epochs=3, extra=[_Halve(cb)])
    lrs = np.float32(cb.history["lrs"])
    assert len(lrs) == 18
    one_cycle = policy.lr_at(np.arange(6)).astype(np.float32)
    np.testing.assert_allclose(lrs[:6], one_cycle, rtol=1e-6)
    np.testing.assert_allclose(lrs[6:12], one_cycle * 0.5, rtol=1e-6)


class _Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            raise KeyboardInterrupt


def test_restore_after_an_interrupt_puts_everything_back(make_model, data):
    optimizer = keras.optimizers.Adam(1e-3, beta_1=0.9)
    model = make_model(optimizer)
    cb = PolicyCallback(OneCycle(1e-2, 12))
    with pytest.raises(KeyboardInterrupt):
        _fit(model, data, cb, extra=[_Interrupt()])
    cb.flush()
    assert len(cb.history["lrs"]) == 3
    cb.restore()
    cb.restore()  # idempotent
    assert "train_step" not in model.__dict__ and type(optimizer.beta_1) is float


@pytest.mark.parametrize("policy", [lambda step: 1e-3, 1e-3, "one_cycle", None])
def test_a_policy_of_the_wrong_type_is_a_type_error(policy):
    with pytest.raises(TypeError, match="`policy` must be a ktlite.lr.schedules.Policy.*Received"):
        PolicyCallback(policy)


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf")])
def test_lr_scale_must_be_positive(value):
    cb = PolicyCallback(Constant(1e-3, 5))
    with pytest.raises(ValueError, match="`lr_scale`.*Received"):
        cb.lr_scale = value


@pytest.mark.parametrize("value", ["0.5", True, None])
def test_lr_scale_of_the_wrong_type_is_a_type_error(value):
    cb = PolicyCallback(Constant(1e-3, 5))
    with pytest.raises(TypeError, match="`lr_scale` must be a positive float. Received"):
        cb.lr_scale = value
    assert cb.lr_scale == 1.0


def test_uncompiled_model_gets_a_clear_error(data):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    cb = PolicyCallback(Constant(1e-3, 5))
    cb.set_model(model)
    with pytest.raises(ValueError, match="not compiled"):
        cb.on_train_begin()


def test_a_new_callback_starts_its_policy_at_step_zero(make_model, data):
    # The policy index is counted from the optimizer's iterations when training starts.
    model = make_model(keras.optimizers.Adam(1e-3))
    _fit(model, data, PolicyCallback(Constant(1e-3, 6)), epochs=1)
    cb = PolicyCallback(OneCycle(1e-2, 6))
    _fit(model, data, cb, epochs=1)
    assert np.float32(cb.history["lrs"][0]) == np.float32(1e-2 / 25)
    assert int(model.optimizer.iterations.numpy()) == 12


class _FunctionSpy(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.function = self.model.train_function


def test_traced_step_is_reused_across_fits_until_recompile(make_model, data):
    model = make_model(keras.optimizers.Adam(1e-3))
    spies = [_FunctionSpy() for _ in range(3)]
    policies = [OneCycle(1e-2, 6), Triangular(1e-3, 6), OneCycle(3e-2, 12)]
    callbacks = [PolicyCallback(p) for p in policies]
    _fit(model, data, callbacks[0], epochs=1, extra=[spies[0]])
    _fit(model, data, callbacks[1], epochs=1, extra=[spies[1]])
    assert spies[0].function is spies[1].function
    model.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    _fit(model, data, callbacks[2], epochs=2, extra=[spies[2]])
    assert spies[2].function is not spies[1].function
    assert callbacks[2].momentum_attribute == "momentum"
    for cb, policy in zip(callbacks, policies):
        n = len(cb.history["lrs"])
        np.testing.assert_array_equal(np.float32(cb.history["lrs"]),
                                      policy.lr_at(np.arange(n)).astype(np.float32))


class OwnStepModel(keras.Model):
    """A custom train_step that never touches Keras' loss tracker."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(y, self(x, training=True))
            loss = keras.ops.mean(loss)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def test_custom_train_step_without_loss_tracker_still_records_losses(data):
    model = OwnStepModel()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    cb = PolicyCallback(OneCycle(1e-2, 6))
    with pytest.warns(RuntimeWarning, match="updates no loss tracker"):
        _fit(model, data, cb, epochs=1)
    assert len(cb.history["losses"]) == 6
    assert np.all(np.isfinite(cb.history["losses"]))


@pytest.mark.parametrize("weighted", [False, True])
def test_a_custom_step_averaging_its_loss_in_a_mean_records_each_batch_loss(data, weighted):
    # A learning rate far below float32 resolution keeps the weights fixed (see above).
    model = MeanStepModel(weighted)
    model.compile(optimizer=keras.optimizers.SGD(1e-30), loss="sparse_categorical_crossentropy",
                  jit_compile=False)
    cb = PolicyCallback(Constant(1e-30, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = _fit(model, data, cb)
    _assert_true_batch_losses(model, data, cb, history)


class RunningMeanStepModel(OwnStepModel):
    """A custom train_step returning a running mean it keeps in plain variables."""

    def __init__(self):
        super().__init__()
        self.total = tf.Variable(0.0, trainable=False)
        self.steps = tf.Variable(0.0, trainable=False)

    def train_step(self, data):
        loss = super().train_step(data)["loss"]
        self.total.assign_add(loss)
        self.steps.assign_add(1.0)
        return {"loss": self.total / self.steps}


def test_a_loss_that_cannot_be_read_per_batch_warns_once_and_is_recorded_as_returned(data):
    model = RunningMeanStepModel()
    model.compile(optimizer=keras.optimizers.SGD(1e-30), jit_compile=False)
    cb = PolicyCallback(Constant(1e-30, 12))
    with pytest.warns(RuntimeWarning, match=r"updates no loss tracker.*If that is a running "
                                            r"mean over the epoch, they are running means") as w:
        _fit(model, data, cb)
    assert len([m for m in w if "no loss tracker" in str(m.message)]) == 1  # two epochs
    x, y = data
    batch = [float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        y[i:i + 16], model(x[i:i + 16])))) for i in range(0, 96, 16)]
    running = np.cumsum(batch * 2) / np.arange(1, 13)
    np.testing.assert_allclose(cb.history["losses"], running, rtol=1e-4)


def test_a_compiled_model_records_its_losses_without_a_warning(make_model, data):
    model = make_model(keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    cb = PolicyCallback(OneCycle(1e-2, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _fit(model, data, cb)
    assert len(cb.history["losses"]) == 12


def test_policy_variables_have_static_shapes_and_a_longer_policy_gets_larger_tables(
    make_model, data
):
    # A TPU cannot hold variables of unknown shape (`[None]`).
    from ktlite.lr.policy_callback import model_drivers

    model = make_model(keras.optimizers.Adam(1e-3))
    policies = [OneCycle(1e-2, 6), Constant(1e-3, 300), OneCycle(3e-2, 600)]
    callbacks = [PolicyCallback(p) for p in policies]
    _fit(model, data, callbacks[0], epochs=1)
    _fit(model, data, callbacks[1], epochs=1)
    _fit(model, data, callbacks[2], epochs=2)  # the whole table is loaded at the start
    drivers = list(model_drivers(model).values())
    assert max(driver.table_capacity for driver in drivers) >= 600
    for driver in drivers:
        for table in (driver.lr_table, driver.mom_table, driver.record):
            assert table.shape.is_fully_defined(), table
    for cb, policy in zip(callbacks, policies):
        n = len(cb.history["lrs"])
        np.testing.assert_array_equal(np.float32(cb.history["lrs"]),
                                      policy.lr_at(np.arange(n)).astype(np.float32))


def test_a_policy_holding_momentum_reuses_the_train_step_of_one_cycling_it(make_model, data):
    # lr_find (no momentum) then fit_onecycle (cycled momentum) must not trace twice.
    from ktlite.lr.policy_callback import model_drivers

    model = make_model(keras.optimizers.Adam(1e-3, beta_1=0.8))
    constant = PolicyCallback(Constant(1e-3, 12))
    _fit(model, data, constant)
    (driver,) = model_drivers(model).values()
    traced = driver.function
    assert constant.history["momentums"] == [None] * 12 and constant.momentum_attribute is None
    assert model.optimizer.beta_1 == 0.8 and type(model.optimizer.beta_1) is float
    cycling = PolicyCallback(OneCycle(1e-2, 12))
    _fit(model, data, cycling)
    assert list(model_drivers(model).values()) == [driver] and driver.function is traced
    assert cycling.momentum_attribute == "beta_1"
    np.testing.assert_allclose(cycling.history["momentums"],
                               OneCycle(1e-2, 12).momentum_at(np.arange(12)), rtol=1e-6)


def test_a_model_trained_under_a_policy_is_freed_once_dropped(make_model, data):
    import gc
    import weakref

    model = make_model(keras.optimizers.Adam(1e-3))
    _fit(model, data, PolicyCallback(OneCycle(1e-2, 6)), epochs=1)
    assert model.variables and "_ktlite_policy_drivers" in model.__dict__
    assert not any("ktlite" in v.path for v in model.variables)  # not tracked as weights
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


class _Rebuilder(keras.callbacks.Callback):
    """Rebuilds the train function at train end, as pruning does to drop its masks."""

    def on_train_end(self, logs=None):
        self.model.make_train_function(force=True)
        self.rebuilt = self.model.train_function


def test_a_train_function_replaced_during_the_fit_is_not_put_back(make_model, data):
    model = make_model(keras.optimizers.Adam(1e-3))
    x, y = data
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    plain_function = model.train_function
    spies, rebuilder = [_FunctionSpy(), _FunctionSpy()], _Rebuilder()
    # The policy callback runs last, as in a learner: its restore comes after the rebuild.
    _fit(model, data, PolicyCallback(OneCycle(1e-2, 6)), epochs=1,
         extra=[rebuilder, spies[0]], callbacks_first=True)
    assert "train_step" not in model.__dict__
    assert model.train_function is not plain_function
    assert model.train_function is not rebuilder.rebuilt  # that one wraps the policy's step
    # The scheduled step traced before the rebuild is retraced, not reused.
    _fit(model, data, PolicyCallback(OneCycle(1e-2, 6)), epochs=1, extra=[spies[1]])
    assert spies[1].function is not spies[0].function


def _overflowing_model(make_model, accumulation=None):
    """A float32 model whose loss scale starts so high that its first updates overflow
    and are skipped (the scale halves each time) until the scale fits the gradients."""
    sgd = keras.optimizers.SGD(0.1, gradient_accumulation_steps=accumulation)
    scaled = keras.optimizers.LossScaleOptimizer(sgd, initial_scale=2.0**127)
    return make_model(scaled, loss="mse", n_out=1)


def _overflowing_fit(model, data, policy):
    x, y = data
    cb = PolicyCallback(policy)
    model.fit(x, 10.0 * y.astype("float32"), batch_size=16, epochs=2, shuffle=False,
              verbose=0, callbacks=[cb])
    return cb


def test_updates_the_loss_scale_skips_still_take_their_step_of_the_policy(make_model, data):
    model = _overflowing_model(make_model)
    policy = OneCycle(1e-6, 12, moms=None)
    cb = _overflowing_fit(model, data, policy)
    assert int(model.optimizer.iterations.numpy()) < 12  # some updates were skipped
    np.testing.assert_allclose(cb.history["lrs"], policy.lr_at(np.arange(12)), rtol=1e-6)
    assert np.float32(model.optimizer.learning_rate.numpy()) == np.float32(policy.lr_at(11))
    # A second policy starts at its own step 0, after the skipped and the made updates.
    follow = OneCycle(1e-6, 12, moms=None)
    assert _overflowing_fit(model, data, follow).history["lrs"][0] == pytest.approx(
        follow.lr_at(0), rel=1e-6)


@pytest.mark.parametrize("by", ["keras", "ktlite"])
def test_skipped_updates_count_once_per_group_of_accumulated_batches(make_model, data, by):
    from ktlite import distribute

    if by == "keras":
        model = _overflowing_model(make_model, accumulation=2)
    else:
        model = distribute.prepare_model(_overflowing_model(make_model),
                                         gradient_accumulation_steps=2)
    policy = OneCycle(1e-6, 6, moms=None)  # 12 batches, 6 updates
    cb = _overflowing_fit(model, data, policy)
    assert int(model.optimizer.iterations.numpy()) < 6
    np.testing.assert_allclose(cb.history["lrs"], policy.lr_at(np.arange(6)), rtol=1e-6)
    assert np.float32(model.optimizer.learning_rate.numpy()) == np.float32(policy.lr_at(5))


def test_a_batch_whose_sample_weights_sum_to_zero_is_left_out_not_recorded_as_zero(
    make_model, data
):
    # Such a batch (a masked-LM batch that masked no token) has no loss of its own: Keras'
    # tracker counted it as 0.0, which an LR finder read as a perfect batch.
    x, y = data
    weights = np.ones(len(x), "float32")
    weights[16:32] = weights[64:80] = 0.0  # batches 2 and 5 of each epoch weigh nothing
    model = make_model(keras.optimizers.SGD(1e-30))
    cb = PolicyCallback(Constant(1e-30, 12))
    _fit(model, data, cb, sample_weight=weights)
    kept = [0, 2, 3, 5]
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    expected = [float(loss_fn(y[i * 16:(i + 1) * 16], model(x[i * 16:(i + 1) * 16])))
                for i in kept] * 2
    np.testing.assert_allclose(cb.history["losses"], expected, rtol=1e-4)
    assert len(cb.history["lrs"]) == len(cb.history["momentums"]) == 8
