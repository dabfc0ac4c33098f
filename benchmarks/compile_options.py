"""`jit_compile` and `steps_per_execution` on CPU for the default text Transformer (issue 12).

Trains the default `text_classifier("transformer")` on a WordNet lexnames subset (maxlen
64, bucketing on, batch size 32) under compile settings chosen with ``--settings``: plain
graph mode (``graph``), XLA (``xla``: `jit_compile=True`), `steps_per_execution=8`
(``spe8``), and both (``xla+spe8``). Each setting gets a fresh model with the same initial
weights; epoch 1 (tracing, and XLA's compilations: one per batch width) is reported apart
from the steady epochs. Settings are run in rounds (each round runs every setting for one
epoch), so load from other processes on a shared machine hits all alike. Wall and process
CPU seconds are both reported.

Data: ``wordnet_lexnames_train.csv.gz`` (columns id,label,text). To rebuild it from a clone
of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data

Usage:
    python benchmarks/compile_options.py \\
        --train ../shared/data/wordnet_lexnames_train.csv.gz --train-size 1000 --epochs 3 \\
        --settings graph,xla,spe8
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from make_wordnet_lexnames import read_split  # noqa: E402

_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETTINGS = {
    "graph": {"jit_compile": False, "steps_per_execution": 1},
    "xla": {"jit_compile": True, "steps_per_execution": 1},
    "spe8": {"jit_compile": False, "steps_per_execution": 8},
    "xla+spe8": {"jit_compile": True, "steps_per_execution": 8},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=_DATA / "wordnet_lexnames_train.csv.gz")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default="graph,xla,spe8,xla+spe8",
                        help="comma-separated subset of " + ",".join(SETTINGS))
    args = parser.parse_args()
    chosen = args.settings.split(",")
    if not chosen or any(name not in SETTINGS for name in chosen) or "graph" not in chosen:
        parser.error(f"--settings must list names from {list(SETTINGS)}, graph included")

    import keras

    import ktlite
    from ktlite import text

    texts, labels = read_split(args.train)
    picked = np.random.default_rng(args.seed).permutation(len(texts))[: args.train_size]
    x = [texts[i] for i in picked]
    y = [labels[i] for i in picked]
    trn, _, preproc = text.texts_from_array(x, y, val_pct=0.1, verbose=0, maxlen=64)
    learners = {}
    for name in chosen:
        options = SETTINGS[name]
        keras.utils.set_random_seed(args.seed)
        model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                      **options)
        learners[name] = ktlite.get_learner(model, trn, seed=args.seed, verbose=0)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in chosen}
    for epoch in range(args.epochs):
        for name in chosen if epoch % 2 == 0 else chosen[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            learners[name].fit_onecycle(1e-3, 1, verbose=0)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            print(f"epoch {epoch + 1} {name}: {times[name][-1][0]:.1f} s wall, "
                  f"{times[name][-1][1]:.1f} s cpu (load {os.getloadavg()[0]:.1f})", flush=True)
    steps = -(-len(trn) // 32)

    def steady(name: str, column: int) -> float:
        return float(np.median([t[column] for t in times[name][1:] or times[name]]))

    summary = {
        name: {
            "first_epoch_wall_s": round(times[name][0][0], 1),
            "first_epoch_cpu_s": round(times[name][0][1], 1),
            "steady_epoch_wall_s": round(steady(name, 0), 2),
            "steady_epoch_cpu_s": round(steady(name, 1), 2),
            "steady_cpu_ms_per_step": round(1000 * steady(name, 1) / steps, 1),
            "cpu_speedup_vs_graph": round(steady("graph", 1) / steady(name, 1), 2),
        }
        for name in chosen
    }
    summary["setup"] = {"train": len(trn), "steps_per_epoch": steps, "maxlen": preproc.maxlen,
                        "params": learners["graph"].model.count_params(),
                        "load_at_end": round(os.getloadavg()[0], 1)}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
