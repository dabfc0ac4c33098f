"""Cost of the per-step learning-rate/momentum mechanism, in isolation.

`ktlite.lr.PolicyCallback` computes the learning rate and momentum inside the compiled train
step (a table lookup indexed by `optimizer.iterations`) instead of assigning them from a
Python callback before every batch. This script measures both:

- `plain`: the model's own Keras train function;
- `in-graph`: the train function with PolicyCallback's wrapped step installed (lookup,
  learning-rate assignment, momentum proxy, loss/lr/momentum recording);
- `eager assigns`: the two eager `Variable.assign` calls a Python per-batch callback would
  need (learning rate and a momentum variable), without any training step.

The train functions are called directly in alternating blocks (so background load hits all
variants alike) and the per-step times are compared block by block.

Run:
    python benchmarks/lr_mechanism.py            # MLP, 40 blocks of 100 steps
    python benchmarks/lr_mechanism.py --model embedding --blocks 20
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ktlite.lr import OneCycle, PolicyCallback  # noqa: E402


def build(kind: str):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if kind == "mlp":
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        x = rng.random((3200, 64), dtype=np.float32)
        y = rng.integers(0, 10, len(x))
        batch = 32
    else:
        model = keras.Sequential([
            keras.Input((64,), dtype="int32"),
            keras.layers.Embedding(20000, 64),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(20, activation="softmax"),
        ])
        x = rng.integers(1, 20000, (3200, 64)).astype("int32")
        y = rng.integers(0, 20, len(x))
        batch = 64
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().repeat().prefetch(4)
    return model, ds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "embedding"], default="mlp")
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100, help="steps per block")
    args = parser.parse_args()

    model, ds = build(args.model)
    model.make_train_function()
    plain = model.train_function
    callback = PolicyCallback(OneCycle(1e-3, 10**6))
    callback.set_model(model)
    callback.set_params({"steps": 100})
    callback.on_train_begin()
    in_graph = model.train_function
    callback.restore()
    iterator = iter(model.distribute_strategy.experimental_distribute_dataset(ds))
    for function in (plain, in_graph):
        for _ in range(20):  # trace, compile and warm up
            function(iterator)
    momentum = keras.Variable(0.9, trainable=False)

    def eager_assigns(_):
        model.optimizer.learning_rate.assign(1e-3)
        momentum.assign(0.9)

    variants = {"plain": plain, "in-graph": in_graph, "eager assigns": eager_assigns}
    times = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, function in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                function(iterator)
            times[name].append((time.perf_counter() - start) / args.steps)
    base = np.array(times["plain"])
    print(f"{args.model}: {args.blocks} blocks x {args.steps} steps, {os.cpu_count()} CPUs, "
          f"TF {tf.__version__}, Keras {keras.__version__}")
    for name, values in times.items():
        values = np.array(values)
        ratio = base / values if name != "eager assigns" else values / base
        label = "plain/variant" if name != "eager assigns" else "cost/plain step"
        print(f"  {name:14s} median {np.median(values) * 1e6:8.1f} us/step  "
              f"min {values.min() * 1e6:8.1f}  {label} median {np.median(ratio):.3f} "
              f"(IQR {np.percentile(ratio, 25):.3f}-{np.percentile(ratio, 75):.3f})")


if __name__ == "__main__":
    main()
