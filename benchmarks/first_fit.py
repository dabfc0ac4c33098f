"""A new learner's first `lr_find`: the train step traced once (ktlite) or twice (Keras).

Without a distribution strategy, Keras creates a compiled model's metric variables inside
the first trace of its train step, and TensorFlow then traces the whole step again (a
`tf.function` whose first trace created variables is retraced). `ktlite.lr.preserve.
ensure_built` builds them beforehand from the dataset's element spec. This times a fresh
process's first `lr_find` (the default text Transformer on 400 texts of the WordNet sample
ktlite ships, 20 steps) both ways: "keras" switches the symbolic build off. Each run is its
own process (a trace is paid once per process); the two ways alternate.

Run:
    python benchmarks/first_fit.py --runs 3

Printed: per run the train-step traces, wall and CPU seconds of the `lr_find` call; then
the medians and their ratio (keras / ktlite).
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


def _child(mode: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import ktlite
    from ktlite import compat, text
    from ktlite.datasets import load_wordnet_lexnames

    traces = []
    step = keras.Model.train_step

    def counted(self, data):
        traces.append(1)
        return step(self, data)

    keras.Model.train_step = counted
    if mode == "keras":
        compat.symbolic_build = lambda model, data_batch: None
    x, y = load_wordnet_lexnames("train")
    trn, val, preproc = text.texts_from_array(x[:400], y[:400], val_pct=0.2, maxlen=32,
                                              vocab_size=2000, verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
    learner = ktlite.get_learner(model, trn, val, batch_size=32, verbose=0)
    wall, cpu = time.perf_counter(), time.process_time()
    learner.lr_find(num_steps=20, verbose=0)
    print(json.dumps({"traces": len(traces), "wall": time.perf_counter() - wall,
                      "cpu": time.process_time() - cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each way")
    parser.add_argument("--child", choices=["keras", "ktlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    results: dict[str, list[dict]] = {"keras": [], "ktlite": []}
    for run in range(args.runs):
        for mode in ("keras", "ktlite") if run % 2 == 0 else ("ktlite", "keras"):
            done = subprocess.run([sys.executable, __file__, "--child", mode],
                                  capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[mode].append(result)
            print(f"run {run + 1} {mode:6s}: {result['traces']} trace(s), "
                  f"{result['wall']:.2f} s wall, {result['cpu']:.2f} s CPU", flush=True)
    medians = {mode: {key: statistics.median(r[key] for r in rows) for key in ("wall", "cpu")}
               for mode, rows in results.items()}
    for key in ("wall", "cpu"):
        keras_s, ktlite_s = medians["keras"][key], medians["ktlite"][key]
        print(f"median {key}: keras {keras_s:.2f} s, ktlite {ktlite_s:.2f} s, "
              f"ratio {keras_s / ktlite_s:.2f}x")


if __name__ == "__main__":
    main()
