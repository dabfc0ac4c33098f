"""Training speed under tf.distribute: one device, MirroredStrategy, two workers.

Three set-ups train the same small Transformer (`ktlite.models.Transformer`) on the same
synthetic token data with the same *global* batch:

- `single`: TensorFlow's default strategy, one CPU device;
- `mirrored`: MirroredStrategy over two logical CPU devices (one process);
- `multi_worker`: MultiWorkerMirroredStrategy, two worker processes on 127.0.0.1.

In each set-up ktlite (`get_learner(..., strategy=...).fit_onecycle`) and plain Keras
(`model.fit` on a model built and compiled inside `strategy.scope()`) alternate, several
rounds each, in the same process(es). The first epoch of every fit is skipped (it traces
the step); steps/s and samples/s are the median over the remaining epochs. Plain Keras `fit`
fails under MultiWorkerMirroredStrategy with TF 2.21 / Keras 3.15 (see
ktlite/distribute/trainer_fix.py): the table says so instead of a ratio.

All numbers are wall-clock on whatever machine runs this; on a CPU-only machine the
"devices" share the same cores, so distribution shows its overhead, not a speed-up.

Run:
    python benchmarks/distribute.py              # defaults below, about 3-5 minutes on 2 cores
    python benchmarks/distribute.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

VOCAB, MAXLEN = 2000, 64


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="global batch size")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=4, help="per fit; the first is skipped")
    parser.add_argument("--rounds", type=int, default=2, help="alternating keras/ktlite rounds")
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--setups", default="single,mirrored,multi_worker")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per set-up")
    parser.add_argument("--_run", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.epochs, args.rounds, args.embed = 512, 2, 1, 32
    return args


# ------------------------------------------------------------------ inside one set-up
def _data(args):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, size=(args.samples, MAXLEN)).astype("int32")
    y = (x[:, 0] % 2).astype("int32")
    return x, y


def _model(args, keras):
    from ktlite.models import Transformer

    keras.utils.set_random_seed(0)
    model = Transformer(VOCAB, MAXLEN, embed_dim=args.embed, num_heads=4,
                        num_layers=args.layers, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _epoch_timer(keras):
    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


def _measure(setup, args):
    """Runs in the set-up's own process; returns {impl: [epoch seconds]} and step count."""
    import tensorflow as tf

    if setup == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ktlite import distribute, get_learner

    strategy = distribute.get_strategy("auto" if setup == "multi_worker" else
                                       ("mirrored" if setup == "mirrored" else "default"))
    import keras

    x, y = _data(args)
    times = {"keras": [], "ktlite": []}
    errors = {}
    for _ in range(args.rounds):
        for impl in ("keras", "ktlite"):
            if impl in errors:
                continue
            timer = _epoch_timer(keras)
            try:
                if impl == "keras":
                    with strategy.scope():
                        model = _model(args, keras)
                    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, shuffle=True,
                              callbacks=[timer], verbose=0)
                else:
                    learner = get_learner(_model(args, keras), (x, y), batch_size=args.batch,
                                          strategy=strategy, seed=0, verbose=0)
                    learner.fit_onecycle(1e-3, args.epochs, callbacks=[timer], verbose=0)
            except Exception as error:  # noqa: BLE001 - reported in the table
                errors[impl] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                continue
            times[impl].extend(timer.times[1:])
    return {"times": times, "errors": errors, "steps": -(-args.samples // args.batch),
            "replicas": strategy.num_replicas_in_sync}


def _child(args):
    setup = args._run
    result = _measure(setup, args)
    index = 0
    if setup == "multi_worker":
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    if index == 0:
        print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ the driver
def _run_setup(setup, args, argv):
    command = [sys.executable, os.path.abspath(__file__), *argv, "--_run", setup]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if setup == "multi_worker":
        from ktlite.distribute import run_local_workers

        results = run_local_workers(command, num_workers=2, timeout=args.timeout, env=env,
                                    check=False)
        output = results[0].output
        failed = [r for r in results if r.returncode != 0]
        if failed:
            raise RuntimeError(f"worker {failed[0].index} failed:\n{failed[0].output[-2000:]}")
    else:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=args.timeout)
        output = done.stdout
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _rate(seconds, steps, batch):
    if not seconds:
        return None, None
    epoch = statistics.median(seconds)
    return steps / epoch, steps * batch / epoch


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args._run:
        _child(args)
        return
    rows = []
    for setup in args.setups.split(","):
        started = time.perf_counter()
        result = _run_setup(setup, args, argv)
        rows.append((setup, result, time.perf_counter() - started))
    print(f"\nglobal batch {args.batch}, {args.samples} samples, Transformer("
          f"embed {args.embed}, {args.layers} layers, maxlen {MAXLEN}), "
          f"{args.epochs - 1} timed epochs x {args.rounds} rounds")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    header = ("| set-up | replicas | plain Keras steps/s | ktlite steps/s | "
              "ktlite samples/s | ktlite / Keras |")
    print(header)
    print("|" + "---|" * 6)
    for setup, result, _ in rows:
        keras_rate = _rate(result["times"]["keras"], result["steps"], args.batch)
        ktlite_rate = _rate(result["times"]["ktlite"], result["steps"], args.batch)
        keras_cell = (f"{keras_rate[0]:.2f}" if keras_rate[0] else
                      "fails: " + result["errors"].get("keras", "no data"))
        ktlite_cell = (f"{ktlite_rate[0]:.2f}" if ktlite_rate[0] else
                       "fails: " + result["errors"].get("ktlite", "no data"))
        samples = f"{ktlite_rate[1]:.0f}" if ktlite_rate[1] else "-"
        ratio = (f"{ktlite_rate[0] / keras_rate[0]:.3f}"
                 if ktlite_rate[0] and keras_rate[0] else "n/a")
        print(f"| {setup} | {result['replicas']} | {keras_cell} | {ktlite_cell} | "
              f"{samples} | {ratio} |")


if __name__ == "__main__":
    main()
