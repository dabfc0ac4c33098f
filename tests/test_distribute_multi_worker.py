"""Multi-worker training for real: two worker processes on 127.0.0.1.

Each test starts two workers with `ktlite.distribute.run_local_workers` (free loopback
ports, one `TF_CONFIG` each, a time limit, and both killed if either fails). The workers
run this file as a script and write what they ended with into a temporary folder (`.npz`
without pickles, JSON). Plain Keras `fit` fails in this set-up with TF 2.21 / Keras 3.15;
these runs go through ktlite's correction (ktlite/distribute/multi_worker_fix.py).
"""

import json
import os
import sys

import numpy as np

WORKER_TIMEOUT_S = 180  # seconds; about 20 s of CPU per worker on a quiet machine
GLOBAL_BATCH = 32
N_SAMPLES = 192


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_SAMPLES, 8)).astype("float32")
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).astype("int32")
    return x, y


def build_model(keras, optimizer):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def run_two_workers(mode, folder):
    from ktlite import distribute

    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return distribute.run_local_workers(
        [sys.executable, __file__, mode, str(folder)], num_workers=2,
        timeout=WORKER_TIMEOUT_S, env=env,
    )


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


def test_two_workers_fit_onecycle_to_identical_weights_and_a_falling_loss(tmp_path):
    start = initial_weights(tmp_path)
    run_two_workers("fit_onecycle", tmp_path)
    w0, w1 = (load_weights(tmp_path / f"worker{i}.npz") for i in (0, 1))
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    # Two workers of half a batch each train like one process on the whole batches (both
    # unshuffled, so the global batches are the same): the all-reduce computes the mean.
    for worker, single, before in zip(w0, one_process_fit_onecycle(start), start):
        assert not np.allclose(worker, before)
        np.testing.assert_allclose(worker, single, rtol=1e-4, atol=1e-5)
    reports = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert reports[0] == reports[1]
    losses = reports[0]["losses"]
    assert reports[0]["strategy"] == "MultiWorkerMirroredStrategy x2"
    assert losses[-1] < 0.8 * losses[0]
    assert reports[0]["iterations"] == 3 * N_SAMPLES // GLOBAL_BATCH
    # Predictions are gathered from both workers, in the order of the data.
    import keras

    single = build_model(keras, "sgd")
    single.set_weights(w0)
    expected = single.predict(make_data()[0], verbose=0)
    for i in (0, 1):
        got = load_weights(tmp_path / f"predictions{i}.npz")[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_one_worker_and_two_workers_agree_on_the_first_update(tmp_path):
    import keras

    start = initial_weights(tmp_path)
    run_two_workers("first_step", tmp_path)
    x, y = make_data()
    single = build_model(keras, keras.optimizers.SGD(learning_rate=0.5))
    single.set_weights(start)
    single.fit(x[:GLOBAL_BATCH], y[:GLOBAL_BATCH], batch_size=GLOBAL_BATCH, epochs=1,
               shuffle=False, verbose=0)
    for i in (0, 1):
        report = json.loads((tmp_path / f"worker{i}.json").read_text())
        assert report == {"jit_compile": False, "jit_warning": True}
        worker = load_weights(tmp_path / f"worker{i}.npz")
        for reference, got, before in zip(single.get_weights(), worker, start):
            assert not np.allclose(got, before)  # the step did move the weights
            np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the worker processes
def _worker(mode, folder):
    from ktlite import distribute

    # A multi-worker strategy must exist before TensorFlow runs its first op.
    strategy = distribute.get_strategy("auto")
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

    import keras

    x, y = make_data()
    if mode == "first_step":
        model = build_model(keras, keras.optimizers.SGD(learning_rate=0.5))
        model.set_weights(load_weights(os.path.join(folder, "init.npz")))
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # XLA has no cross-process collectives on CPU: ktlite must fall back, not fail.
            model = distribute.prepare_model(model, strategy="auto", jit_compile=True)
        model.fit(x[:GLOBAL_BATCH], y[:GLOBAL_BATCH], batch_size=GLOBAL_BATCH, epochs=1,
                  shuffle=False, verbose=0)
        report = {
            "jit_compile": bool(model.jit_compile),
            "jit_warning": any("jit_compile=True is not supported" in str(w.message)
                               for w in caught),
        }
    else:
        from ktlite import get_learner

        model = build_model(keras, keras.optimizers.Adam(learning_rate=1e-3))
        model.set_weights(load_weights(os.path.join(folder, "init.npz")))
        # Unshuffled, so that a one-process run sees the same global batches.
        learner = get_learner(model, (x, y), batch_size=GLOBAL_BATCH, strategy="auto",
                              shuffle=False, verbose=0)
        history = learner.fit_onecycle(5e-2, epochs=3)
        model = learner.model
        report = {
            "strategy": distribute.describe(strategy),
            "losses": [round(float(v), 6) for v in history.history["loss"]],
            "iterations": int(model.optimizer.iterations.numpy()),
        }
        np.savez(os.path.join(folder, f"predictions{index}.npz"), learner.predict(x))
    np.savez(os.path.join(folder, f"worker{index}.npz"), *model.get_weights())
    with open(os.path.join(folder, f"worker{index}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
