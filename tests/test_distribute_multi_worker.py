"""Multi-worker training for real: two worker processes on 127.0.0.1.

The module fixture starts two workers once with `ktlite.distribute.run_local_workers`
(free loopback ports, one `TF_CONFIG` each, a time limit, and both killed if either fails).
The workers run this file as a script: a first step (with `jit_compile=True` asked for),
then a `fit_onecycle`, writing what each ended with into a temporary folder (`.npz`
without pickles, JSON); the tests compare that with one process. Plain Keras `fit` fails
in this set-up with TF 2.21 / Keras 3.15; these runs go through ktlite's correction
(ktlite/distribute/trainer_fix.py).
"""

import json
import os
import sys
import warnings

import numpy as np
import pytest

WORKER_TIMEOUT_S = 240  # seconds; about 25 s of CPU per worker on a quiet machine
GLOBAL_BATCH = 32
N_SAMPLES = 192


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_SAMPLES, 8)).astype("float32")
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).astype("int32")
    return x, y


def build_model(keras, optimizer, steps_per_execution=1):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return model


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """The folder the two workers wrote to, and the weights they both started from."""
    from ktlite import distribute

    folder = tmp_path_factory.mktemp("multi_worker")
    start = initial_weights(folder)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    distribute.run_local_workers([sys.executable, __file__, str(folder)], num_workers=2,
                                 timeout=WORKER_TIMEOUT_S, env=env)
    return folder, start


def initial_weights(folder):
    """The starting weights, made once here so every process starts from the same point."""
    import keras

    keras.utils.set_random_seed(5)
    model = build_model(keras, "sgd")
    np.savez(folder / "init.npz", *model.get_weights())
    return model.get_weights()


def load_weights(path):
    with np.load(path, allow_pickle=False) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def one_process_fit_onecycle(start):
    """The workers' `fit_onecycle`, run in this process over the same global batches."""
    import keras

    from ktlite import get_learner

    model = build_model(keras, keras.optimizers.Adam(learning_rate=1e-3))
    model.set_weights(start)
    learner = get_learner(model, make_data(), batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    learner.fit_onecycle(5e-2, epochs=3)
    return learner.model.get_weights()


def test_two_workers_fit_onecycle_to_identical_weights_and_a_falling_loss(workers):
    folder, start = workers
    w0, w1 = (load_weights(folder / f"worker{i}.npz") for i in (0, 1))
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    # Two workers of half a batch each train like one process on the whole batches (both
    # unshuffled, so the global batches are the same): the all-reduce computes the mean.
    for worker, single, before in zip(w0, one_process_fit_onecycle(start), start):
        assert not np.allclose(worker, before)
        np.testing.assert_allclose(worker, single, rtol=1e-4, atol=1e-5)
    reports = [json.loads((folder / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert reports[0] == reports[1]
    losses = reports[0]["losses"]
    assert reports[0]["strategy"] == "MultiWorkerMirroredStrategy x2"
    assert losses[-1] < 0.8 * losses[0]
    assert reports[0]["iterations"] == 3 * N_SAMPLES // GLOBAL_BATCH
    assert reports[0]["steps_per_execution"] == 1 and reports[0]["steps_warning"]
    # Predictions are gathered from both workers, in the order of the data.
    import keras

    single = build_model(keras, "sgd")
    single.set_weights(w0)
    expected = single.predict(make_data()[0], verbose=0)
    for i in (0, 1):
        got = load_weights(folder / f"predictions{i}.npz")[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_one_worker_and_two_workers_agree_on_the_first_update(workers):
    import keras

    folder, start = workers
    x, y = make_data()
    single = build_model(keras, keras.optimizers.SGD(learning_rate=0.5))
    single.set_weights(start)
    single.fit(x[:GLOBAL_BATCH], y[:GLOBAL_BATCH], batch_size=GLOBAL_BATCH, epochs=1,
               shuffle=False, verbose=0)
    for i in (0, 1):
        report = json.loads((folder / f"first_step{i}.json").read_text())
        assert report == {"jit_compile": False, "jit_warning": True}
        worker = load_weights(folder / f"first_step{i}.npz")
        for reference, got, before in zip(single.get_weights(), worker, start):
            assert not np.allclose(got, before)  # the step did move the weights
            np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the worker processes
def _worker(folder):
    from ktlite import distribute, get_learner

    # A multi-worker strategy must exist before TensorFlow runs its first op.
    strategy = distribute.get_strategy("auto")
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

    import keras

    x, y = make_data()
    model = build_model(keras, keras.optimizers.SGD(learning_rate=0.5))
    model.set_weights(load_weights(os.path.join(folder, "init.npz")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # XLA has no cross-process collectives on CPU: ktlite must fall back, not fail.
        model = distribute.prepare_model(model, strategy="auto", jit_compile=True)
    model.fit(x[:GLOBAL_BATCH], y[:GLOBAL_BATCH], batch_size=GLOBAL_BATCH, epochs=1,
              shuffle=False, verbose=0)
    _write(folder, f"first_step{index}", model, {
        "jit_compile": bool(model.jit_compile),
        "jit_warning": any("jit_compile=True is not supported" in str(w.message)
                           for w in caught),
    })

    # Compiled for 3 steps per call, which Keras cannot train on several replicas: the
    # learner trains one per call, with a warning.
    model = build_model(keras, keras.optimizers.Adam(learning_rate=1e-3), 3)
    model.set_weights(load_weights(os.path.join(folder, "init.npz")))
    # Unshuffled, so that a one-process run sees the same global batches.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner = get_learner(model, (x, y), batch_size=GLOBAL_BATCH, strategy="auto",
                              shuffle=False, verbose=0)
    history = learner.fit_onecycle(5e-2, epochs=3)
    np.savez(os.path.join(folder, f"predictions{index}.npz"), learner.predict(x))
    _write(folder, f"worker{index}", learner.model, {
        "strategy": distribute.describe(strategy),
        "losses": [round(float(v), 6) for v in history.history["loss"]],
        "iterations": int(learner.model.optimizer.iterations.numpy()),
        "steps_per_execution": learner.model.steps_per_execution,
        "steps_warning": any("steps_per_execution=3 cannot train" in str(w.message)
                             for w in caught),
    })


def _write(folder, name, model, report):
    np.savez(os.path.join(folder, f"{name}.npz"), *model.get_weights())
    with open(os.path.join(folder, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    _worker(sys.argv[1])
