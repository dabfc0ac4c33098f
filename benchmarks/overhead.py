"""Learner overhead: `learner.fit_onecycle` against plain `model.fit`, same model and data.

Two identical models (same architecture and initial weights) are trained on the same
in-memory arrays with the same batch size, one with plain Keras
(`model.fit(x, y, batch_size=..., shuffle=True)`) and one through
`ktlite.get_learner(...).fit_onecycle(...)`, alternating which goes first, several runs each,
in one process. The first epoch of every fit is skipped (it traces the train step: ktlite
retraces once per fit to install its in-graph schedule), so the rates compare steady-state
steps, which is where a per-step overhead would show.

A second comparison (`--same-pipeline`) feeds plain `model.fit` the learner's own tf.data
pipeline, isolating the cost of the per-step schedule from the input pipeline.

Run:
    python benchmarks/overhead.py                 # defaults below
    python benchmarks/overhead.py --runs 7 --epochs 4
    python benchmarks/overhead.py --threads 1     # one TF thread each: steadier timings

Target: ktlite's rate >= 0.98 of plain Keras. Printed: medians of the steady rates (wall and
CPU clock), the median and range of per-run ratios, and the fastest epoch of each side.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import ktlite  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Wall and process-CPU time of each epoch (train steps plus Keras' end-of-epoch work).

    CPU time is reported next to wall time because on a shared machine the wall clock
    mostly measures the neighbours; extra work done by ktlite shows up in both.
    """

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._start = (0.0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])


def build_model(inputs: int, hidden: int, classes: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((inputs,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def steady_rates(timer: EpochTimer, steps_per_epoch: int) -> tuple[float, float, float]:
    """Steps per wall second and per CPU second over all epochs but the first, and the
    wall rate of the fastest of those epochs."""
    steps = steps_per_epoch * len(timer.times[1:])
    fastest = steps_per_epoch / min(timer.times[1:])
    return steps / sum(timer.times[1:]), steps / sum(timer.cpu[1:]), fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--same-pipeline", action="store_true",
                        help="give plain model.fit the learner's tf.data pipeline")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra- and inter-op threads (default: TF's choice); "
                             "1 makes each step's CPU work far less noisy to time")
    args = parser.parse_args()
    if args.threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, args.inputs)).astype("float32")
    y = (x[:, :10].argmax(axis=1)).astype("int64")
    steps = -(-args.samples // args.batch_size)

    plain_model = build_model(args.inputs, args.hidden, 10, seed=1)
    learner_model = build_model(args.inputs, args.hidden, 10, seed=1)
    learner = ktlite.get_learner(
        learner_model, (x, y), batch_size=args.batch_size, verbose=0
    )
    pipeline, _ = learner._dataset(learner.train_data, training=True)

    def run_plain() -> tuple[float, float]:
        timer = EpochTimer()
        if args.same_pipeline:
            plain_model.fit(pipeline, epochs=args.epochs, shuffle=False, callbacks=[timer],
                            verbose=0)
        else:
            plain_model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                            shuffle=True, callbacks=[timer], verbose=0)
        return steady_rates(timer, steps)

    def run_learner() -> tuple[float, float]:
        timer = EpochTimer()
        learner.fit_onecycle(1e-3, args.epochs, callbacks=[timer], verbose=0)
        return steady_rates(timer, steps)

    run_plain(), run_learner()  # warm up both (tracing, thread pools)
    plain, ktl = [], []
    for run in range(args.runs):
        order = [(run_plain, plain), (run_learner, ktl)]
        for fn, rates in order if run % 2 == 0 else order[::-1]:
            rates.append(fn())
        print(f"run {run + 1}: plain {plain[-1][0]:7.1f} steps/s ({plain[-1][1]:7.1f}/cpu-s)"
              f"   ktlite {ktl[-1][0]:7.1f} steps/s ({ktl[-1][1]:7.1f}/cpu-s)", flush=True)

    baseline = "plain model.fit on the learner's tf.data pipeline" if args.same_pipeline else \
        "plain model.fit(x, y, batch_size, shuffle=True)"
    print()
    print(f"model: MLP {args.inputs}-{args.hidden}x3-10 "
          f"({learner_model.count_params():,} params), batch {args.batch_size}, "
          f"{steps} steps/epoch, {args.epochs} epochs/fit (first skipped), {args.runs} runs")
    print(f"baseline: {baseline}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, threads {args.threads}, "
          f"load avg {os.getloadavg()[0]:.1f}, TF {tf.__version__}, Keras {keras.__version__}, "
          f"devices {[d.device_type for d in tf.config.list_physical_devices()]}")
    for i, clock in enumerate(("wall", "cpu")):
        p = statistics.median(r[i] for r in plain)
        k = statistics.median(r[i] for r in ktl)
        ratios = [b[i] / a[i] for a, b in zip(plain, ktl)]
        print(f"[{clock:4}] plain {p:7.1f} steps/s ({1000 / p:6.2f} ms/step) | ktlite {k:7.1f} "
              f"steps/s ({1000 / k:6.2f} ms/step) | ratio of medians {k / p:.3f}, median of "
              f"per-run ratios {statistics.median(ratios):.3f} "
              f"[{min(ratios):.3f}, {max(ratios):.3f}]")
    # Noise from other processes only ever slows an epoch down, so the fastest epoch of each
    # side over all runs is the least disturbed estimate of its own cost.
    p, k = max(r[2] for r in plain), max(r[2] for r in ktl)
    print(f"[best] fastest epoch: plain {p:7.1f} steps/s | ktlite {k:7.1f} steps/s | "
          f"ratio {k / p:.3f}")
    print("target: ktlite/plain >= 0.98")


if __name__ == "__main__":
    main()
