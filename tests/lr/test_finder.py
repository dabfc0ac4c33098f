"""find_lr sweeps, stops, suggests, and leaves the model exactly as it was."""

import json
import math
import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite import compat
from ktlite.lr import DEFAULT_NUM_STEPS, LRFindResult, find_lr
from ktlite.lr import finder as finder_module
from step_models import MeanStepModel


def _state(model):
    optimizer = model.optimizer
    return {
        "weights": [v.numpy().copy() for v in model.variables],
        "optimizer": [v.numpy().copy() for v in optimizer.variables] if optimizer.built else [],
        "lr": float(optimizer.learning_rate.numpy()),
        "iterations": int(optimizer.iterations.numpy()),
    }


def _assert_bit_identical(before, after):
    assert before["iterations"] == after["iterations"]
    assert before["lr"] == after["lr"]
    assert len(before["weights"]) == len(after["weights"])
    for a, b in zip(before["weights"], after["weights"]):
        np.testing.assert_array_equal(a, b)
    assert len(before["optimizer"]) == len(after["optimizer"])
    for a, b in zip(before["optimizer"], after["optimizer"]):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def trained(make_model, data, dataset):
    model = make_model(keras.optimizers.Adam(1e-3), dropout=0.2)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return model


def test_sweep_restores_a_trained_model_bit_for_bit(trained, dataset):
    before = _state(trained)
    result = find_lr(trained, dataset, num_steps=40, verbose=0)
    _assert_bit_identical(before, _state(trained))
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 40
    assert result.lrs[0] == pytest.approx(1e-7, rel=1e-6)
    assert np.all(np.diff(result.lrs) > 0)


def test_sweep_cycles_through_short_data(trained, dataset):
    assert int(dataset.cardinality()) == 6
    result = find_lr(trained, dataset, start_lr=1e-6, end_lr=1e-4, num_steps=25, verbose=0)
    assert len(result.losses) == 25 and not result.config["stopped_early"]
    assert all(math.isfinite(v) for v in result.losses)


def test_diverging_sweep_stops_at_nan_and_restores(make_model, data):
    x, y = data
    model = make_model(keras.optimizers.SGD(1e-3), loss="mse", n_out=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32") * 100)).batch(16)
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    before = _state(model)
    result = find_lr(model, ds, start_lr=1e-4, end_lr=1e8, num_steps=60, stop_factor=1e30,
                     verbose=0)
    assert result.config["stopped_early"]
    assert not math.isfinite(result.losses[-1])
    assert len(result.losses) < 60
    _assert_bit_identical(before, _state(model))
    assert math.isfinite(result.suggestion)


def test_stops_once_smoothed_loss_exceeds_stop_factor(trained, dataset):
    result = find_lr(trained, dataset, start_lr=1e-3, end_lr=1e4, num_steps=80, verbose=0)
    assert result.config["stopped_early"]
    smoothed = np.asarray(result.smoothed)
    last = smoothed[-1]
    assert not math.isfinite(last) or last > 4.0 * np.min(smoothed[:-1])
    assert np.all(smoothed[:-1] <= 4.0 * np.minimum.accumulate(smoothed[:-1]))


class _Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 5:
            raise KeyboardInterrupt


def test_keyboard_interrupt_restores_and_propagates(trained, dataset):
    before = _state(trained)
    beta_1 = trained.optimizer.beta_1
    with pytest.raises(KeyboardInterrupt):
        find_lr(trained, dataset, num_steps=40, verbose=0, callbacks=[_Interrupt()])
    _assert_bit_identical(before, _state(trained))
    assert "train_step" not in trained.__dict__
    assert trained.optimizer.beta_1 is beta_1
    # The model trains normally afterwards.
    trained.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert int(trained.optimizer.iterations.numpy()) == before["iterations"] + 6


def test_unbuilt_optimizer_stays_unbuilt_and_training_is_unchanged(make_model, dataset):
    model = make_model(keras.optimizers.Adam(1e-2))
    twin = make_model(keras.optimizers.Adam(1e-2))
    twin.set_weights(model.get_weights())
    optimizer = model.optimizer
    n_variables = len(optimizer.variables)
    find_lr(model, dataset, num_steps=20, verbose=0)
    assert model.optimizer is optimizer and not optimizer.built
    assert len(optimizer.variables) == n_variables
    assert int(optimizer.iterations.numpy()) == 0
    model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    twin.fit(dataset, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_schedule_optimizer_is_swept_and_keeps_its_schedule(make_model, dataset):
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    model = make_model(keras.optimizers.Adam(schedule))
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    before = [v.numpy().copy() for v in model.optimizer.variables]
    result = find_lr(model, dataset, start_lr=1e-5, end_lr=1e-1, num_steps=20, verbose=0)
    assert compat.learning_rate_object(model.optimizer) is schedule
    assert result.lrs[-1] == pytest.approx(1e-1, rel=1e-6)
    find_lr(model, dataset, num_steps=5, verbose=0)
    assert len(model.optimizer.variables) == len(before)  # no stray sweep variable
    for a, v in zip(before, model.optimizer.variables):
        np.testing.assert_array_equal(a, v.numpy())


def test_history_attribute_is_kept(trained, dataset):
    history = trained.history
    find_lr(trained, dataset, num_steps=10, verbose=0)
    assert trained.history is history


def test_default_sweep_is_bounded(trained, dataset):
    assert 100 <= DEFAULT_NUM_STEPS <= 300
    result = find_lr(trained, dataset, verbose=0)
    assert len(result.lrs) <= DEFAULT_NUM_STEPS
    assert set(result.suggestions) == {"valley", "steep", "minimum", "basin", "descent",
                                       "consensus"}
    assert result.suggestion == result.suggestions["basin"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"end_lr": float("inf")}, "end_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr"),
        ({"num_steps": 3}, "num_steps"),
        ({"stop_factor": 1.0}, "stop_factor"),
        ({"beta": 1.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"verbose": 5}, "verbose"),
        ({"sweeps": 0}, "sweeps"),
        ({"sweeps": 101}, "sweeps"),
    ],
)
def test_bad_arguments_are_named(make_model, dataset, kwargs, name):
    model = make_model(keras.optimizers.Adam())
    with pytest.raises(ValueError, match=f"`{name}`.*Received: .*{name}="):
        find_lr(model, dataset, **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"start_lr": "1e-7"}, "start_lr"),
        ({"end_lr": True}, "end_lr"),
        ({"num_steps": 10.0}, "num_steps"),
        ({"num_steps": "50"}, "num_steps"),
        ({"stop_factor": "4"}, "stop_factor"),
        ({"beta": None}, "beta"),
        ({"verbose": True}, "verbose"),
        ({"verbose": "1"}, "verbose"),
        ({"planned_steps": "100"}, "planned_steps"),
        ({"planned_steps": 100.0}, "planned_steps"),
        ({"sweeps": 3.0}, "sweeps"),
    ],
)
def test_arguments_of_the_wrong_type_are_type_errors(make_model, dataset, kwargs, name):
    model = make_model(keras.optimizers.Adam())
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        find_lr(model, dataset, **kwargs)


@pytest.mark.parametrize("beta, error", [("0.9", TypeError), (1.5, ValueError)])
def test_from_curve_checks_beta(beta, error):
    with pytest.raises(error, match="`beta`.*Received: beta="):
        LRFindResult.from_curve(np.logspace(-6, 0, 20), np.ones(20), beta=beta)


def test_from_curve_keeps_a_numpy_beta_as_a_plain_float():
    result = LRFindResult.from_curve(np.logspace(-6, 0, 20), np.ones(20), beta=np.float32(0.5))
    assert type(result.config["beta"]) is float and result.config["beta"] == 0.5


def test_a_callback_of_the_wrong_type_is_a_type_error(make_model, dataset):
    with pytest.raises(TypeError, match="`callbacks`"):
        find_lr(make_model(keras.optimizers.Adam()), dataset, callbacks=[object()])
    with pytest.raises(TypeError, match=r"not one callback: pass \[_Interrupt\(...\)\]"):
        find_lr(make_model(keras.optimizers.Adam()), dataset, callbacks=_Interrupt())


def test_a_callback_that_fights_the_sweep_is_refused_and_a_backup_is_kept(
        make_model, dataset, tmp_path):
    # A BackupAndRestore passed to a sweep would load an interrupted fit's backup into the
    # sweep and delete it when the sweep ends; a rate setter would fight the sweep's rates.
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"an interrupted fit's state")
    model = make_model(keras.optimizers.Adam())
    with pytest.raises(ValueError, match=r"must not hold a BackupAndRestore.*Received: "
                                         r"callbacks\[1\]=BackupAndRestore"):
        find_lr(model, dataset, callbacks=[keras.callbacks.CSVLogger(str(tmp_path / "l")),
                                           keras.callbacks.BackupAndRestore(str(backup))])
    assert os.listdir(backup) == ["latest.weights.h5"]
    with pytest.raises(ValueError, match=r"must not set the learning rate.*Received: "
                                         r"LearningRateScheduler"):
        find_lr(model, dataset, callbacks=(keras.callbacks.LearningRateScheduler(abs),))


def test_bad_model_and_data_are_refused(make_model, data, dataset):
    uncompiled = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not compiled"):
        find_lr(uncompiled, dataset)
    model = make_model(keras.optimizers.Adam())
    with pytest.raises(ValueError, match="empty"):
        find_lr(model, dataset.take(0))


@pytest.mark.parametrize("model, sweep, name", [
    ("model", "dataset", "model"), (None, "dataset", "model"),
    ("compiled", "arrays", "dataset"), ("compiled", None, "dataset"),
    ("compiled", [1, 2], "dataset"),
])
def test_a_model_or_dataset_of_the_wrong_type_is_a_type_error(
    make_model, data, dataset, model, sweep, name
):
    given = {"compiled": make_model(keras.optimizers.Adam()), "dataset": dataset,
             "arrays": data}
    model, sweep_data = (given.get(a, a) if isinstance(a, str) else a for a in (model, sweep))
    with pytest.raises(TypeError, match=f"`{name}` must be a .*Received: {name} of type"):
        find_lr(model, sweep_data)


_UNBATCHED = r"`dataset` must be batched.*Call `\.batch\(n\)`.*Received: an unbatched tf\.data"
_UNLABELLED = r"`dataset` must yield `\(x, y\)` or `\(x, y, sample_weight\)` batches.*Received: "


@pytest.mark.parametrize("which", ["trained", "fresh"])
@pytest.mark.parametrize("make_sweep, error", [
    (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)), _UNBATCHED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(y), "float32"))),
     _UNBATCHED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(16).unbatch(), _UNBATCHED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices(x), _UNBATCHED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices(x).batch(16), _UNLABELLED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices((x,)).batch(16), _UNLABELLED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y, y, y)).batch(16), _UNLABELLED),
    (lambda x, y: tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(16), _UNLABELLED),
], ids=["unbatched", "unbatched-weighted", "unbatch-step", "unbatched-x-only", "x-only",
        "x-in-1-tuple", "4-tuple", "dict"])
def test_an_unbatched_or_unlabelled_dataset_is_refused_before_training(
    trained, make_model, data, which, make_sweep, error
):
    model = trained if which == "trained" else make_model(keras.optimizers.Adam(1e-3))
    before = _state(model)
    with pytest.raises(ValueError, match=error + r".*element_spec \S"):
        find_lr(model, make_sweep(*data), num_steps=10, verbose=0)
    _assert_bit_identical(before, _state(model))
    assert model.optimizer.built == (which == "trained")


def test_scalar_elements_are_refused_for_a_model_without_inputs(data):
    model = keras.Sequential([keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data
    with pytest.raises(ValueError, match=_UNBATCHED + r".*TensorSpec\(\(\), float32\)"):
        find_lr(model, tf.data.Dataset.from_tensor_slices((x[:, 0], y)), verbose=0)
    assert not model.built and not model.optimizer.built


def test_unbatched_dict_inputs_are_refused_and_batched_ones_swept(data):
    x, y = data
    inputs = {"b": keras.Input((2,), name="b"), "a": keras.Input((4,), name="a")}
    merged = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(merged))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices(({"a": x[:, :4], "b": x[:, 4:]}, y))
    before = _state(model)
    with pytest.raises(ValueError, match=_UNBATCHED + r".*\{'a': TensorSpec\(\(4,\)"):
        find_lr(model, ds, num_steps=10, verbose=0)
    _assert_bit_identical(before, _state(model))
    result = find_lr(model, ds.batch(16), num_steps=10, verbose=0)
    assert len(result.losses) == 10
    _assert_bit_identical(before, _state(model))


def test_weighted_batches_and_generator_batches_are_swept(make_model, data):
    x, y = data
    model = make_model(keras.optimizers.Adam(1e-3))
    weighted = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(y), "float32"))).batch(16)
    assert len(find_lr(model, weighted, num_steps=10, verbose=0).losses) == 10

    def batches():  # items that are batches, with no batching step in the pipeline
        for start in range(0, len(x), 16):
            yield x[start:start + 16], y[start:start + 16]

    generated = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, 6), tf.float32), tf.TensorSpec((None,), tf.int32)))
    assert len(find_lr(model, generated, num_steps=10, verbose=0).losses) == 10


def test_result_round_trips_through_json(tmp_path):
    lrs = np.logspace(-6, 0, 40)
    losses = np.r_[np.linspace(2, 1, 35), [1.5, 3, 9, 30, np.nan]]
    result = LRFindResult.from_curve(lrs, losses, start_lr=1e-6)
    data = result.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["losses"][-1] is None
    again = LRFindResult.from_dict(data)
    assert again == result and math.isnan(again.losses[-1])
    path = tmp_path / "sweep.json"
    result.save(path)
    loaded = LRFindResult.load(path)
    assert loaded == result
    assert loaded.suggestion == result.suggestions["basin"]
    assert loaded.config["start_lr"] == 1e-6


def test_load_names_the_file_and_quotes_nothing_from_a_foreign_one(tmp_path):
    path = tmp_path / "sweep.json"
    for content in ('{"format": "private-format"}', '["private"]',
                    json.dumps({**LRFindResult.from_curve(np.logspace(-6, 0, 20), np.ones(20))
                                .to_dict(), "lrs": "private"})):
        path.write_text(content)
        with pytest.raises(ValueError, match=r"sweep\.json is not an LR-finder result") as info:
            LRFindResult.load(path)
        assert "private" not in str(info.value)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"sweep\.json is not valid UTF-8 JSON"):
        LRFindResult.load(path)


def test_from_dict_refuses_foreign_data():
    with pytest.raises(ValueError, match="format"):
        LRFindResult.from_dict({"lrs": []})


def test_unbuilt_model_is_built_with_untrained_weights(data, dataset):
    def fresh():
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy", jit_compile=False)
        return model

    swept, reference = fresh(), fresh()
    assert not swept.built
    find_lr(swept, dataset, num_steps=20, verbose=0)
    reference(data[0][:16])
    assert swept.built and len(swept.weights) == len(reference.weights) == 4
    for a, b in zip(swept.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def _cosine_sweep(loss, num_steps=100):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 4))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=False)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    return find_lr(model, dataset, num_steps=num_steps, verbose=0)


def test_a_negative_loss_sweep_runs_all_its_steps_and_suggests_as_the_shifted_loss():
    # Cosine similarity falls below zero as the model learns: a ratio to a best loss below
    # zero read the next improvement as divergence and stopped the sweep at once.
    negative = _cosine_sweep(keras.losses.CosineSimilarity())
    shifted = _cosine_sweep(lambda y, p: keras.losses.cosine_similarity(y, p) + 1.0)
    assert len(negative.losses) == len(shifted.losses) == 100
    assert not negative.config["stopped_early"] and not shifted.config["stopped_early"]
    assert min(negative.smoothed) < -0.2
    np.testing.assert_allclose(negative.losses, np.asarray(shifted.losses) - 1.0, atol=1e-5)
    assert negative.suggestions == shifted.suggestions
    assert math.isfinite(negative.suggestion)


def test_a_negative_loss_that_blows_up_still_stops_the_sweep(make_model, data):
    x, y = data
    model = make_model(keras.optimizers.SGD(1e-3), n_out=1,
                       loss=lambda t, p: keras.losses.mean_squared_error(t, p) - 10.0)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).batch(16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its short fall is within the noise
        result = find_lr(model, ds, start_lr=1e-3, end_lr=1e6, num_steps=60, verbose=0)
    assert result.config["stopped_early"] and len(result.losses) < 60
    smoothed = np.asarray(result.smoothed)
    assert np.min(smoothed[:-1]) < smoothed[0] < 0.0  # it fell first, below zero
    best = np.minimum.accumulate(smoothed[:-1])
    scale = np.maximum(-best, smoothed[0] - best)
    assert np.all(smoothed[1:-1] - best[:-1] <= 3.0 * scale[:-1])
    last = smoothed[-1]
    assert not math.isfinite(last) or last - best[-1] > 3.0 * scale[-1]


def test_a_flat_sweep_warns_and_keeps_its_suggestions_within_the_swept_range(trained, dataset):
    with pytest.warns(RuntimeWarning, match=r"did not fall over the LR sweep from 1e-09 to "
                                            r"1e-07 by more than its batch-to-batch noise"):
        result = find_lr(trained, dataset, start_lr=1e-9, end_lr=1e-7, num_steps=100,
                         verbose=0)
    assert result.config["flat"] and len(result.losses) == 100
    for rule, lr in result.suggestions.items():
        assert math.isnan(lr) or result.lrs[0] <= lr <= result.lrs[-1], rule
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]


def test_an_ordinary_sweep_is_not_flat(trained, dataset, recwarn):
    result = find_lr(trained, dataset, num_steps=100, verbose=0)
    assert not result.config["flat"] and math.isfinite(result.suggestion)
    assert not [w for w in recwarn if "did not fall" in str(w.message)]


class _Updates(keras.callbacks.Callback):
    """The optimizer updates a fit made, read at its end."""

    def on_train_begin(self, logs=None):
        self.start = int(self.model.optimizer.iterations.numpy())

    def on_train_end(self, logs=None):
        self.made = int(self.model.optimizer.iterations.numpy()) - self.start


@pytest.mark.parametrize("steps_per_execution", [3, 4, 16])
def test_a_sweep_with_steps_per_execution_trains_and_records_num_steps_steps(
    make_model, dataset, steps_per_execution
):
    # Keras runs whole executions within an epoch of a given length: 12 or 16 steps for a
    # sweep of 10, the last ones at `end_lr` past the sweep.
    from ktlite.lr import ExponentialSweep

    model = make_model(keras.optimizers.Adam(1e-3), steps_per_execution=steps_per_execution)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    before = _state(model)
    updates = _Updates()
    result = find_lr(model, dataset, start_lr=1e-4, end_lr=1e-2, num_steps=10,
                     stop_factor=1e6, verbose=0, callbacks=[updates])
    assert updates.made == 10
    assert len(result.lrs) == len(result.losses) == 10 and not result.config["stopped_early"]
    np.testing.assert_array_equal(
        np.float32(result.lrs),
        ExponentialSweep(1e-4, 1e-2, 10).lr_at(np.arange(10)).astype(np.float32),
    )
    assert all(math.isfinite(v) for v in result.losses)
    _assert_bit_identical(before, _state(model))


def test_a_custom_step_averaging_its_loss_in_a_mean_records_each_batch_loss(data, dataset):
    keras.utils.set_random_seed(3)
    model = MeanStepModel(hidden=8)
    model.compile(optimizer=keras.optimizers.SGD(1e-2),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    model(data[0][:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 24 steps barely fall: flat
        warnings.filterwarnings("error", message=".*updates no loss tracker")  # goes first
        result = find_lr(model, dataset, start_lr=1e-3, end_lr=1.0, num_steps=24, verbose=0)
    assert len(result.losses) == 24
    # The same steps by hand, from the same (restored) weights.
    x, y = data
    optimizer = keras.optimizers.SGD(1e-2)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    expected = []
    for step, lr in enumerate(result.lrs):
        start = (step % 6) * 16
        optimizer.learning_rate = lr
        with tf.GradientTape() as tape:
            loss = loss_fn(y[start:start + 16], model(x[start:start + 16], training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        expected.append(float(loss))
    np.testing.assert_allclose(result.losses, expected, rtol=1e-4)
    running = np.cumsum(expected[:6]) / np.arange(1, 7)
    assert not np.allclose(result.losses[:6], running, rtol=1e-3)


def _broken_model_sweep(make_model, data, cause):
    x, y = data
    if cause == "inf bias":
        model = make_model(keras.optimizers.Adam(1e-3))
        bias = model.layers[-1].bias
        bias.assign(np.r_[np.inf, np.zeros(bias.shape[0] - 1)].astype("float32"))
    else:
        model = make_model(keras.optimizers.Adam(1e-3), loss="mse", n_out=1)
        y = np.where(np.arange(len(y)) % 2, np.nan, y).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    before = _state(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = find_lr(model, ds, num_steps=20, verbose=0)
    _assert_bit_identical(before, _state(model))
    return result, [str(w.message) for w in caught if w.category is RuntimeWarning]


@pytest.mark.parametrize("cause", ["inf bias", "nan labels"])
def test_a_loss_nan_from_the_first_batch_blames_the_model_or_data_not_start_lr(
    make_model, data, cause
):
    # The first loss comes before any update: advising a lower `start_lr` sent users after a
    # rate that plays no part in it.
    result, messages = _broken_model_sweep(make_model, data, cause)
    assert result.config["stopped_early"] and len(result.losses) == 1
    assert math.isnan(result.suggestion)
    assert len(messages) == 1, messages
    assert re.search(r"the loss was already nan at the first step, computed before any "
                     r"update at the lowest rate \(1e-07\), so lowering `start_lr` cannot "
                     r"help: the model or the data produce it\. Check the data for nan/inf "
                     r"values, the model's initialization and outputs", messages[0])
    assert "lower `start_lr` (it was" not in messages[0]


def test_a_loss_that_diverges_after_finite_steps_still_advises_a_lower_start_lr(
    make_model, data
):
    x, y = data
    model = make_model(keras.optimizers.SGD(1e-3), loss="mse", n_out=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32") * 100)).batch(16)
    with pytest.warns(RuntimeWarning, match=r"the loss diverged after \d+ of 50 steps: lower "
                                            r"`start_lr` \(it was 1000\)") as caught:
        result = find_lr(model, ds, start_lr=1e3, end_lr=1e6, num_steps=50, verbose=0)
    assert result.config["stopped_early"] and math.isfinite(result.losses[0])
    assert not any("already" in str(w.message) for w in caught)


def _fitted_model_and_batches(offsets):
    """A linear model that fits its data but for a constant offset of each 16-row batch's
    labels: batch `b`'s loss is `offsets[b] ** 2` at rates too low to train."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(6, 1)).astype("float32")
    x = rng.normal(size=(16 * len(offsets), 6)).astype("float32")
    y = x @ kernel + np.repeat(np.asarray(offsets, "float32"), 16)[:, None]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=False)
    model.layers[0].set_weights([kernel])
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def test_one_noisy_batch_at_the_start_does_not_stop_the_sweep(recwarn):
    # The second batch's loss was 12 times the first's at 1e-7, where nothing trains: the
    # sweep took it for divergence and stopped at step 2, advising a lower `start_lr`.
    model, ds = _fitted_model_and_batches([0.1, 0.35] + [0.1] * 6)
    result = find_lr(model, ds, num_steps=100, verbose=0)
    assert result.losses[1] > 10 * result.losses[0] and result.lrs[1] < 2e-7
    assert len(result.losses) > 50 and result.lrs[-1] > 1e-2
    assert result.config["stopped_early"]  # where it truly diverges, at a high rate
    assert not [w for w in recwarn if "start_lr" in str(w.message)]


def test_a_sweep_stopped_by_noise_near_start_lr_says_the_loss_may_be_at_noise_level():
    # A first batch fitted exactly, the others not: a lower `start_lr` cannot help, but the
    # warning advised only that. The sweep now waits out its warm-up before it stops.
    model, ds = _fitted_model_and_batches([0.0] + [0.2] * 7)
    with pytest.warns(RuntimeWarning, match=r"The LR sweep stopped after 6 of 100 steps, "
                                            r"within a decade of `start_lr` \(1e-07\).*past "
                                            r"`stop_factor` \(4\) times its lowest .*Either "
                                            r"`start_lr` is already too high \(lower it\), or "
                                            r"the loss is at noise level.*as when the model "
                                            r"already fits the training batches") as caught:
        result = find_lr(model, ds, num_steps=100, verbose=0)
    assert result.losses[0] < 1e-6 < 1e-3 < result.losses[1]
    assert result.config["stopped_early"] and len(result.losses) == 6
    assert len(caught) == 1


def test_a_sweep_reaches_end_lr_through_updates_the_loss_scale_skips(make_model, data):
    # The scale starts so high that the first updates overflow and are skipped: each skipped
    # batch is a step of the sweep still, which ends at `end_lr` after `num_steps` batches.
    x, y = data
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1e-3),
                                                 initial_scale=2.0**127)
    model = make_model(scaled, loss="mse", n_out=1)
    ds = tf.data.Dataset.from_tensor_slices((x, 10.0 * y.astype("float32"))).batch(16)
    before = _state(model)
    result = find_lr(model, ds, start_lr=1e-7, end_lr=1e-5, num_steps=20, verbose=0)
    assert len(result.lrs) == 20 and not result.config["stopped_early"]
    assert result.lrs[-1] == pytest.approx(1e-5, rel=1e-5)
    _assert_bit_identical(before, _state(model))


def test_a_result_saved_before_the_consensus_rule_gets_it_from_its_curve():
    lrs = np.logspace(-6, 0, 60)
    losses = np.r_[np.linspace(2, 1, 50), np.linspace(1.2, 9, 10)]
    result = LRFindResult.from_curve(lrs, losses)
    data = result.to_dict()
    del data["suggestions"]["consensus"]  # as saved before the rule existed
    loaded = LRFindResult.from_dict(data)
    assert loaded.suggestions["consensus"] == result.suggestions["consensus"]
    assert loaded.suggest(rule="consensus") == result.suggestions["consensus"]
    assert loaded.suggestion == result.suggestion == result.suggestions["basin"]


def test_several_sweeps_restore_bit_for_bit_and_average_every_rule(trained, dataset, tmp_path):
    before = _state(trained)
    result = find_lr(trained, dataset, num_steps=40, verbose=0, sweeps=3)
    _assert_bit_identical(before, _state(trained))
    assert len(result.per_sweep) == 3 and result.config["sweeps"] == 3
    assert result.lrs == result.per_sweep[0].lrs and result.losses == result.per_sweep[0].losses
    assert result.per_sweep[1].losses != result.per_sweep[0].losses  # other batches
    for rule, combined in result.suggestions.items():
        values = [s.suggestions[rule] for s in result.per_sweep]
        assert combined == pytest.approx(math.exp(np.mean(np.log(values))), rel=1e-12)
    assert result.suggestion == result.suggestions["basin"]
    assert min(s.suggestion for s in result.per_sweep) < result.suggestion
    assert max(s.suggestion for s in result.per_sweep) > result.suggestion
    assert "first of 3 sweeps" in repr(result)
    result.save(tmp_path / "sweeps.json")
    loaded = LRFindResult.load(tmp_path / "sweeps.json")
    assert loaded == result and loaded.per_sweep[2].losses == result.per_sweep[2].losses
    one = find_lr(trained, dataset, num_steps=40, verbose=0)
    assert one.per_sweep == [] and one.config["sweeps"] == 1


def _first_losses(offsets, sweeps, num_steps, unknown_length=False):
    model, ds = _fitted_model_and_batches(offsets)
    if unknown_length:
        ds = ds.filter(lambda x, y: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = find_lr(model, ds, end_lr=1e-4, num_steps=num_steps, verbose=0,
                         sweeps=sweeps)
    messages = [str(w.message) for w in caught if "same losses" in str(w.message)]
    return [s.losses[0] for s in result.per_sweep], messages


def test_sweeps_over_data_that_does_not_reshuffle_begin_at_other_batches():
    # Batch b's loss is offsets[b] ** 2 at the first step (rate 1e-7). Sweeps used to begin
    # `num_steps` batches after each other: over 8 batches and 16 steps, all at batch 0.
    offsets = [1.0 + 0.05 * b for b in range(8)]
    for num_steps in (16, 21):
        firsts, repeated = _first_losses(offsets, 3, num_steps)
        assert firsts == pytest.approx([offsets[b] ** 2 for b in (0, 2, 4)], rel=1e-3)
        assert not repeated
    # Of unknown length: after the previous sweep's batches.
    firsts, _ = _first_losses(offsets, 3, 21, unknown_length=True)
    assert firsts == pytest.approx([offsets[b] ** 2 for b in (0, 5, 2)], rel=1e-3)


def test_sweeps_that_read_the_same_batches_are_named():
    firsts, repeated = _first_losses([1.0, 1.1], 3, 20)
    assert firsts[0] == firsts[2] != firsts[1]
    assert len(repeated) == 1 and repeated[0].startswith(
        "Sweeps 1 and 3 of the LR finder recorded the same losses")


def test_sweeps_over_one_batch_say_so_instead_of_advising_to_shuffle():
    firsts, repeated = _first_losses([1.0], 2, 20)
    assert firsts[0] == firsts[1]
    assert len(repeated) == 1 and "the dataset holds one batch, which every sweep reads" \
        in repeated[0] and "Use a smaller `batch_size`" in repeated[0]
    assert "Shuffle" not in repeated[0]


def test_sweeps_whose_same_losses_hold_nan_are_named(recwarn):
    lrs = list(np.logspace(-6, 0, 8))
    curve = [2.0, 1.9, 1.7, 1.4, 1.0, 0.9, 3.0, math.nan]
    other = [2.0, 1.8, 1.7, 1.4, 1.0, 0.9, 3.0, math.nan]
    results = [LRFindResult.from_curve(lrs, list(losses)) for losses in (curve, other, curve)]
    finder_module._warn_about_repeated_sweeps(results, 8)
    messages = [str(w.message) for w in recwarn]
    assert len(messages) == 1 and messages[0].startswith(
        "Sweeps 1 and 3 of the LR finder recorded the same losses")


def test_sweeps_that_warn_alike_give_one_warning_naming_them(trained, dataset):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = find_lr(trained, dataset, start_lr=1e-12, end_lr=1e-10, num_steps=100,
                         verbose=0, sweeps=5)
    flat = [str(w.message) for w in caught if "did not fall" in str(w.message)]
    assert all(s.config["flat"] for s in result.per_sweep)
    # Flat sweeps whose rules still read a rate warn one way, those that read none another.
    assert 1 <= len(flat) <= 2 and all("Likewise sweep" in m for m in flat), flat


def test_notes_of_one_kind_are_warned_once_in_the_first_sweeps_words(recwarn):
    notes = [(0, "flat", "Sweep 1 of 9: flat."), (1, "too_few", "Sweep 2 of 9: short."),
             (2, "flat", "Sweep 3 of 9: flat."), (3, "flat", "Sweep 4 of 9: flat."),
             (6, "flat", "Sweep 7 of 9: flat.")]
    finder_module._warn_once_per_kind(notes, 9)
    assert [str(w.message) for w in recwarn] == [
        "Sweep 1 of 9: flat. Likewise sweeps 3-4, 7 of 9 (each sweep's curve is in "
        "`result.per_sweep`).",
        "Sweep 2 of 9: short.",
    ]


def test_sweep_numbers_are_joined_in_runs():
    assert finder_module._runs([1]) == "2"
    assert finder_module._runs([1, 2, 3, 6, 8, 9]) == "2-4, 7, 9-10"


def test_each_rule_is_averaged_over_the_sweeps_that_read_it():
    losses = np.r_[np.linspace(2, 1, 50), np.linspace(1, 4, 10)]
    combined = finder_module._combined([
        LRFindResult.from_curve(np.logspace(-6, 0, 60), losses),
        LRFindResult.from_curve(np.logspace(-6, 0, 3), [1.0, 1.0, 1.0]),
    ])
    first, short = combined.per_sweep
    assert math.isnan(short.suggestions["basin"])
    assert combined.suggestions["basin"] == pytest.approx(first.suggestions["basin"],
                                                          rel=1e-12)


def test_no_sweep_that_can_read_the_curve_leaves_a_nan_and_says_why(make_model, data):
    x, y = data
    model = make_model(keras.optimizers.Adam())
    model.layers[-1].bias.assign(np.asarray([np.inf, 0.0, 0.0], "float32"))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = find_lr(model, ds, num_steps=20, verbose=0, sweeps=2)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert math.isnan(result.suggestion) and len(result.per_sweep) == 2
    assert any(m.startswith("Sweep 1 of 2 of the LR finder could not read a learning rate "
                            "(its suggestion is nan, left out of `result.suggestion`): the "
                            "loss was already nan at the first step") and
               m.endswith("Likewise sweep 2 of 2 (each sweep's curve is in "
                          "`result.per_sweep`).") for m in messages), messages
    assert len(messages) == 2  # the sweeps' one warning, and the nan suggestion's
    assert messages[-1].startswith("The LR finder could not suggest a learning rate "
                                   "(`result.suggestion` is nan): none of its 2 sweeps could")


def test_from_dict_refuses_per_sweep_results_that_are_not_results():
    data = LRFindResult.from_curve(np.logspace(-6, 0, 20), np.ones(20)).to_dict()
    for per_sweep in ("abc", [{"format": "other"}], 3):
        with pytest.raises(ValueError, match="a list of such dicts under per_sweep"):
            LRFindResult.from_dict({**data, "per_sweep": per_sweep})
