"""MirroredStrategy on two logical CPU devices, through ktlite.distribute.

Logical devices must be configured before TensorFlow initialises its devices, which the
pytest process has long done, so the checks run once in a fresh subprocess (this file run
as a script) that reports its findings as JSON; the tests below assert on that report.
"""

import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

TIMEOUT_S = 240  # seconds; about 30 s of CPU, but the CI machine may be shared


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored") / "report.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    try:
        done = subprocess.run(
            [sys.executable, __file__, str(out)],
            capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
        )
    except subprocess.TimeoutExpired as error:  # subprocess.run kills the child
        pytest.fail(f"the MirroredStrategy subprocess ran past {TIMEOUT_S} s: {error}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_mirrored_by_name_uses_both_logical_cpus(report):
    assert report["strategy"] == "MirroredStrategy x2"
    assert report["per_replica_batch"] == 16
    assert "batch_size=15" in report["odd_batch_error"]


def test_a_model_built_outside_the_scope_trains_under_mirrored(report):
    assert report["rebuilt"] and report["variables"] == "MirroredVariable"
    assert report["losses"][-1] < 0.7 * report["losses"][0]


def test_the_first_mirrored_step_equals_the_single_device_step(report):
    assert report["first_step_max_diff"] < 1e-6


def test_mirrored_predict_and_evaluate_match_the_single_device_model(report):
    assert report["predict_max_diff"] < 1e-6
    assert abs(report["evaluate_loss_diff"]) < 1e-5


def test_accumulation_under_mirrored_equals_a_double_batch_on_one_device(report):
    assert report["accumulation_max_diff"] < 1e-5
    assert report["accumulation_iterations"] == 2


def test_jit_compile_under_mirrored_falls_back_with_a_warning(report):
    assert report["jit_warning"] and report["jit_compile"] is False
    assert report["jit_fit_finite"]


def learner_report(report):
    """The learner-level part of the report."""
    error = report.get("learner_error")
    assert error is None, error
    return report["learner"]


def test_the_learner_workflow_runs_under_mirrored(report):
    learner = learner_report(report)
    assert learner["lr_find_points"] == 12 and learner["lr_find_restored"]
    assert learner["lr_find_loss_max_diff"] < 1e-5
    assert learner["onecycle_losses"][-1] < learner["onecycle_losses"][0]
    assert learner["onecycle_lrs"] == 2 * 4
    assert learner["autofit_epochs"] == 1 and learner["fit_epochs"] == 1
    assert learner["confusion_total"] == 128
    assert learner["predict_shape"] == [128, 2]
    assert learner["dataset_confusion_equal"]
    np.testing.assert_allclose(learner["dataset_top_losses"], learner["array_top_losses"],
                               rtol=1e-5)


def test_the_learner_accumulates_under_mirrored_counting_updates(report):
    learner = learner_report(report)
    assert learner["accumulation_lrs"] == 4  # 128 samples / 16 per batch / 2 batches
    assert learner["accumulation_iterations"] == 4
    assert learner["reloaded_accumulation_updates"] == 4  # was 8: load_model dropped it


def test_a_model_compiled_with_xla_falls_back_under_mirrored_and_stays_so(report):
    learner = learner_report(report)
    assert learner["own_jit_compile"] is False
    assert np.isfinite(learner["own_jit_losses"]).all()


def test_a_model_compiled_for_several_steps_per_call_trains_one_under_mirrored(report):
    learner = learner_report(report)
    assert learner["multi_step_warned"] and learner["multi_step_per_call"] == 1
    assert learner["multi_step_updates"] == 3 * 8  # 128 samples / 16 per batch
    assert learner["multi_step_losses"][-1] < learner["multi_step_losses"][0]


def test_an_eval_batch_that_does_not_split_over_the_replicas_is_refused(report):
    message = learner_report(report)["odd_eval_batch_error"]
    assert "`eval_batch_size` is the global batch" in message
    assert "eval_batch_size=15; use 14 or 16" in message


def part_report(report, name):
    """One of the report's separately run parts (see `_run_checks`)."""
    error = report.get(f"{name}_error")
    assert error is None, error
    return report[name]


def test_a_learner_trains_a_model_built_in_the_scope_under_its_strategy(report):
    scoped = part_report(report, "scoped")
    assert scoped["learner_strategy"] == "MirroredStrategy x2"
    assert scoped["learner_kept_model"]
    message = scoped["odd_batch_error"]  # None: the batch was not checked
    assert message is not None and "batch_size=15; use 14 or 16" in message


def test_a_learner_keeps_the_ktlite_accumulation_of_a_model_it_rebuilds(report):
    kept = part_report(report, "kept_accumulation")
    assert kept["steps"] == 2
    assert kept["iterations"] == 4  # 128 samples / 16 per batch / 2 batches


def test_a_policy_takes_its_step_on_updates_the_loss_scale_skips_under_mirrored(report):
    scaled = part_report(report, "loss_scale")
    assert scaled["iterations"] < 8  # some of the 8 updates were skipped
    np.testing.assert_allclose(scaled["lrs"], scaled["expected"], rtol=1e-6)


def test_token_averaged_losses_take_the_single_device_step_under_mirrored(report):
    differences = part_report(report, "token_losses")
    assert differences["sequence"] < 1e-6  # was 0.32: a mean of the replicas' token means
    assert differences["masked_lm"] < 1e-6


def test_a_first_batch_that_splits_unevenly_trains_under_mirrored(report):
    uneven = part_report(report, "uneven")
    # 15 examples, batch 32: Keras' first-batch build reduced parts of 8 and 7 and failed
    # with TensorFlow's bare AddN error (every bucketed text task, usually).
    assert np.isfinite(uneven["losses"]).all() and uneven["weights_moved"] > 1e-3


def test_a_validation_set_that_splits_unevenly_is_judged_under_mirrored(report):
    uneven = part_report(report, "uneven")
    # 15 validation examples: Keras' first-batch build reduced parts of 8 and 7 and failed.
    assert len(uneven["val_loss"]) == 1 and np.isfinite(uneven["val_loss"][0])
    assert uneven["confusion_total"] == 15  # no example repeated or lost


# ------------------------------------------------------------------ the subprocess
def test_fine_tune_under_mirrored_decays_as_on_one_device_and_keeps_the_decay(report):
    decay = part_report(report, "fine_tune_decay")
    # Each replica's thread hid and put back the decay around `apply`: the second read the
    # first's None as the optimizer's own, so updates ran undecayed, the decay stayed None
    # and the saved model could not be loaded.
    assert decay["single_decay"] == decay["mirrored_decay"] == 0.5
    assert decay["max_diff"] < 1e-5


def _learner_checks(strategy, build, x, y):
    import contextlib
    import io

    import keras
    import tensorflow as tf

    from ktlite import get_learner

    out = {}
    adam = keras.optimizers.Adam(learning_rate=1e-3)
    learner = get_learner(build(adam), (x, y), (x, y), batch_size=32, strategy=strategy,
                          verbose=0)
    before = learner.model.get_weights()
    result = learner.lr_find(num_steps=12)
    out["lr_find_points"] = len(result.lrs)
    out["lr_find_restored"] = all(
        np.array_equal(a, b) for a, b in zip(before, learner.model.get_weights()))
    # The recorded loss is the whole batch's, not the first replica's share of it (rates
    # too small to move the weights, batches in order).
    in_order = get_learner(build(keras.optimizers.Adam(1e-3)), (x, y), batch_size=32,
                           strategy=strategy, shuffle=False, verbose=0)
    swept = in_order.lr_find(start_lr=1e-30, end_lr=1e-29, num_steps=8, verbose=0)
    batch_losses = [in_order.model.evaluate(x[i:i + 32], y[i:i + 32], verbose=0,
                                            return_dict=True)["loss"]
                    for i in range(0, 128, 32)]
    out["lr_find_loss_max_diff"] = float(np.max(np.abs(
        np.asarray(swept.losses[:4]) - np.asarray(batch_losses))))
    out["onecycle_losses"] = learner.fit_onecycle(1e-2, 2).history["loss"]
    out["onecycle_lrs"] = len(learner.step_history["lrs"])
    out["autofit_epochs"] = len(learner.autofit(1e-2, epochs=1).history["loss"])
    out["fit_epochs"] = len(learner.fit(1e-2, 1).history["loss"])
    with contextlib.redirect_stdout(io.StringIO()):
        matrix = learner.validate()
    out["confusion_total"] = int(np.asarray(matrix).sum())
    out["predict_shape"] = list(learner.predict(x).shape)
    # A reshuffling tf.data validation set is judged like the arrays (batches split over
    # the replicas, each output with its own label).
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).batch(32)
    out["dataset_confusion_equal"] = bool(np.array_equal(
        learner.validate(shuffled, print_report=False), matrix))
    out["dataset_top_losses"] = [row[1] for row in learner.top_losses(3, shuffled)]
    out["array_top_losses"] = [row[1] for row in learner.top_losses(3)]

    accumulating = get_learner(build(keras.optimizers.Adam(1e-3)), (x, y), batch_size=16,
                               strategy=strategy, gradient_accumulation_steps=2, verbose=0)
    accumulating.fit_onecycle(1e-2, 1)
    out["accumulation_lrs"] = len(accumulating.step_history["lrs"])
    out["accumulation_iterations"] = int(accumulating.model.optimizer.iterations.numpy())
    # A checkpoint reloaded into the learner accumulates as the learner's first model did.
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    accumulating.save_model(path)
    accumulating.load_model(path)
    before = int(accumulating.model.optimizer.iterations.numpy())
    accumulating.fit_onecycle(1e-2, 1)
    out["reloaded_accumulation_updates"] = (
        int(accumulating.model.optimizer.iterations.numpy()) - before)

    # A model compiled with XLA falls back as one asked for XLA does, and a recompile
    # (`freeze`, `fine_tune`) keeps the fallback: both failed on their first step.
    jitted = build(keras.optimizers.Adam(1e-3))
    jitted.compile(optimizer=jitted.optimizer, loss=jitted.loss, jit_compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own_jit = get_learner(jitted, (x, y), batch_size=32, strategy=strategy, verbose=0)
    own_jit.freeze()
    own_jit.unfreeze()
    out["own_jit_compile"] = bool(own_jit.model.jit_compile)
    out["own_jit_losses"] = own_jit.fit_onecycle(1e-2, 1).history["loss"]
    # Several train steps per call fail on Keras' first call on two devices; the learner
    # trains one per call, says so, and a recompile (`freeze`) keeps it so.
    multi_step = build(keras.optimizers.Adam(1e-2))
    multi_step.compile(optimizer=multi_step.optimizer, loss=multi_step.loss,
                       steps_per_execution=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per_call = get_learner(multi_step, (x, y), batch_size=16, strategy=strategy,
                               verbose=0)
    out["multi_step_warned"] = any("steps_per_execution=4 cannot train" in str(w.message)
                                   for w in caught)
    per_call.freeze()
    per_call.unfreeze()
    out["multi_step_per_call"] = int(per_call.model.steps_per_execution)
    out["multi_step_losses"] = per_call.fit_onecycle(1e-2, 3).history["loss"]
    out["multi_step_updates"] = int(per_call.model.optimizer.iterations.numpy())
    try:
        get_learner(build(), (x, y), batch_size=16, eval_batch_size=15, strategy=strategy)
    except ValueError as error:
        out["odd_eval_batch_error"] = str(error)
    return out


def _scoped_model_checks(strategy, build, x, y):
    """A model built in the strategy's scope trains under it, the strategy not named."""
    import keras

    from ktlite import distribute, get_learner

    out = {}
    with strategy.scope():
        scoped = build(keras.optimizers.Adam(1e-3))
    learner = get_learner(scoped, (x, y), batch_size=32, verbose=0)
    out["learner_strategy"] = distribute.describe(learner.strategy)
    out["learner_kept_model"] = learner.model is scoped
    out["odd_batch_error"] = None
    try:
        get_learner(scoped, (x, y), batch_size=15, verbose=0)
    except ValueError as error:
        out["odd_batch_error"] = str(error)
    return out


def _kept_accumulation_checks(strategy, build, x, y):
    """ktlite's accumulation, enabled before, survives the rebuild into the scope."""
    import keras

    from ktlite import distribute, get_learner

    accumulating = distribute.prepare_model(build(keras.optimizers.Adam(1e-3)),
                                            gradient_accumulation_steps=2)
    learner = get_learner(accumulating, (x, y), batch_size=16, strategy=strategy, verbose=0)
    steps = distribute.accumulation_steps(learner.model)
    learner.fit_onecycle(1e-2, 1)
    return {"steps": steps, "iterations": int(learner.model.optimizer.iterations.numpy())}


def _loss_scale_checks(strategy, build, x, y):
    """A one-cycle policy counts the updates a loss scale skips on two replicas too."""
    import keras

    from ktlite.lr import OneCycle, PolicyCallback

    with strategy.scope():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.1), initial_scale=2.0**127), loss="mse")
    policy = OneCycle(1e-6, 8, moms=None)
    callback = PolicyCallback(policy)
    model.fit(x, 10.0 * y.astype("float32"), batch_size=32, epochs=2, shuffle=False,
              verbose=0, callbacks=[callback])
    return {"iterations": int(model.optimizer.iterations.numpy()),
            "lrs": callback.history["lrs"], "expected": policy.lr_at(np.arange(8)).tolist()}


def _token_loss_checks(strategy, build, x, y):
    """Losses averaged over a batch's tokens: two replicas take the step one device takes,
    though one replica holds 12 real tokens and the other 2."""
    import contextlib

    import keras

    from ktlite.seq2seq.losses import MaskedSequenceCrossentropy
    from ktlite.text.masked_lm import MaskedTokenCrossentropy

    ids = np.array([[1, 2, 3, 4, 5, 1]] * 2 + [[1, 0, 0, 0, 0, 0]] * 2, "int32")
    labels = np.array([[2, 3, 4, 5, 1, 2]] * 2 + [[3, 0, 0, 0, 0, 0]] * 2, "int32")
    out = {}
    for name, loss, weights in (
        ("sequence", MaskedSequenceCrossentropy(label_smoothing=0.0), None),
        ("masked_lm", MaskedTokenCrossentropy(), (labels != 0).astype("float32")),
    ):
        trained = []
        for scope in (contextlib.nullcontext(), strategy.scope()):
            with scope:
                keras.utils.set_random_seed(0)
                model = keras.Sequential([keras.Input((6,), dtype="int32"),
                                          keras.layers.Embedding(6, 4), keras.layers.Dense(6)])
                model.compile(optimizer=keras.optimizers.SGD(1.0), loss=loss)
            model.fit(ids, labels, sample_weight=weights, batch_size=4, shuffle=False,
                      verbose=0)
            trained.append(model.get_weights())
        out[name] = max(float(np.abs(a - b).max()) for a, b in zip(*trained))
    return out


def _uneven_checks(strategy, build, x, y):
    """Batches that do not split evenly over the two replicas."""
    import contextlib
    import io

    from ktlite import get_learner

    learner = get_learner(build(), (x[:15], y[:15]), batch_size=32, strategy=strategy,
                          shuffle=False, verbose=0)
    before = learner.model.get_weights()
    out = {"losses": learner.fit(0.5, 2).history["loss"],
           "weights_moved": max(float(np.abs(a - b).max())
                                for a, b in zip(before, learner.model.get_weights()))}
    judged = get_learner(build(), (x, y), (x[:15], y[:15]), batch_size=32, strategy=strategy,
                         verbose=0)
    out["val_loss"] = judged.fit_onecycle(1e-2, 1).history["val_loss"]
    with contextlib.redirect_stdout(io.StringIO()):
        out["confusion_total"] = int(np.asarray(judged.validate()).sum())
    return out


def _fine_tune_decay_checks(strategy, build, x, y):
    """`fine_tune`'s per-group rates with AdamW's weight decay, on one device and mirrored."""
    import tempfile

    import keras

    from ktlite import get_learner

    out, trained = {}, {}
    for name, chosen in (("single", None), ("mirrored", strategy)):
        learner = get_learner(build(keras.optimizers.AdamW(1e-2, weight_decay=0.5)), (x, y),
                              batch_size=32, strategy=chosen, shuffle=False, verbose=0)
        learner.fine_tune(1, base_lr=1e-2, freeze_epochs=1, verbose=0)
        out[f"{name}_decay"] = learner.get_weight_decay()
        trained[name] = learner.model.get_weights()
        with tempfile.TemporaryDirectory() as folder:
            learner.load_model(learner.save_model(os.path.join(folder, "m.keras")))
    out["max_diff"] = max(float(np.abs(a - b).max())
                          for a, b in zip(trained["single"], trained["mirrored"]))
    return out


def _run_checks(out_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    from ktlite import distribute

    report = {}
    strategy = distribute.get_strategy("mirrored")
    report["strategy"] = distribute.describe(strategy)
    report["per_replica_batch"] = distribute.check_batch_size(32, strategy)
    try:
        distribute.check_batch_size(15, strategy)
    except ValueError as error:
        report["odd_batch_error"] = str(error)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")

    def build(optimizer=None):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.5),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    single = build()
    model = distribute.prepare_model(build(), strategy=strategy)
    report["rebuilt"] = model.distribute_strategy is strategy
    report["variables"] = type(model.weights[0].value).__name__

    # One step, global batch 32, on one device and on two replicas.
    single.fit(x[:32], y[:32], batch_size=32, epochs=1, shuffle=False, verbose=0)
    model.fit(x[:32], y[:32], batch_size=32, epochs=1, shuffle=False, verbose=0)
    report["first_step_max_diff"] = max(
        float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), model.get_weights())
    )
    history = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)
    report["losses"] = history.history["loss"]
    single.set_weights(model.get_weights())
    report["predict_max_diff"] = float(
        np.abs(single.predict(x, verbose=0) - model.predict(x, batch_size=32, verbose=0)).max()
    )
    report["evaluate_loss_diff"] = float(
        single.evaluate(x, y, verbose=0)[0] - model.evaluate(x, y, batch_size=32, verbose=0)[0]
    )

    # Accumulation: 2 x 16 under MirroredStrategy == one batch of 32 on one device.
    single = build()
    single.fit(x[:64], y[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
    accumulating = distribute.prepare_model(build(), strategy=strategy,
                                            gradient_accumulation_steps=2)
    accumulating.fit(x[:64], y[:64], batch_size=16, epochs=1, shuffle=False, verbose=0)
    report["accumulation_max_diff"] = max(
        float(np.abs(a - b).max())
        for a, b in zip(single.get_weights(), accumulating.get_weights())
    )
    report["accumulation_iterations"] = int(accumulating.optimizer.iterations.numpy())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jitted = distribute.prepare_model(build(), strategy=strategy, jit_compile=True)
    report["jit_warning"] = any("jit_compile=True is not supported" in str(w.message)
                                for w in caught)
    report["jit_compile"] = bool(jitted.jit_compile)
    losses = jitted.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"]
    report["jit_fit_finite"] = bool(np.isfinite(losses).all())

    try:
        report["learner"] = _learner_checks(strategy, build, x, y)
        report["learner_error"] = None
    except Exception as error:  # noqa: BLE001 - reported to the tests above
        import traceback

        report["learner_error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"

    # Parts run apart, so that one failing leaves the others' findings.
    for name, checks in (("scoped", _scoped_model_checks),
                         ("kept_accumulation", _kept_accumulation_checks),
                         ("loss_scale", _loss_scale_checks),
                         ("token_losses", _token_loss_checks),
                         ("uneven", _uneven_checks),
                         ("fine_tune_decay", _fine_tune_decay_checks)):
        try:
            report[name] = checks(strategy, build, x, y)
            report[f"{name}_error"] = None
        except Exception as error:  # noqa: BLE001 - reported to the tests above
            import traceback

            report[f"{name}_error"] = (
                f"{type(error).__name__}: {error}\n{traceback.format_exc()}")

    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    _run_checks(sys.argv[1])
