"""Benchmark: in-graph tokenization throughput and its cost inside a training pipeline.

1. texts/s of ``TextPreprocessor.tokenize`` (tensorflow-text FastBertTokenizer) mapped over
   batches in ``tf.data`` on the 93,822 WordNet lexnames training texts (target >= 100,000/s
   on 2 cores), raw and through ``ktlite.data.make_dataset`` (what the Learner uses).
2. training steps/s and CPU ms/step of small models fed by the real pipeline (tokenization
   per batch in ``tf.data``) versus pre-tokenized int32 tensors, alternating the two feeds
   so that load from other processes hits both alike, plus the rate of the feed alone. On a
   shared machine the CPU time per step is the steadier of the two measures.

Usage:
    python benchmarks/tokenization.py [--data PATH] [--steps 200] [--batch-size 32]

Data: WordNet lexnames (`wordnet_lexnames_{train,val,test}.csv.gz`) read from
`--data` (default ../shared/data). To rebuild it from a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from make_wordnet_lexnames import read_split, split_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"
)


def throughput(make_ds, n: int, repeats: int = 3) -> tuple[float, float]:
    """Best-of-``repeats`` texts/s (wall) and texts per CPU-second for full passes."""
    rates, per_cpu = [], []
    for _ in range(repeats):
        ds = make_ds()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _batch in ds:
            pass
        rates.append(n / (time.perf_counter() - start))
        per_cpu.append(n / (time.process_time() - start_cpu))
    return max(rates), max(per_cpu)


def fit_rate(model, ds, steps: int) -> tuple[float, float]:
    """Steps/s (wall) and CPU ms/step (all threads of this process) of one fit."""
    start, start_cpu = time.perf_counter(), time.process_time()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return steps / wall, 1000 * cpu / steps


def build_models(vocab_size: int, maxlen: int, num_classes: int):
    import keras

    from ktlite.models import Transformer

    transformer = Transformer(
        vocab_size, maxlen, embed_dim=64, num_heads=4, num_layers=2, num_outputs=num_classes
    )
    inputs = keras.Input((maxlen,), dtype="int32")
    h = keras.layers.Embedding(vocab_size, 64, mask_zero=True)(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    bag = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))
    return {"Transformer(embed 64, 2 layers, 4 heads)": transformer, "embedding bag (64)": bag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="folder of wordnet_lexnames_train.csv.gz (default ../shared/data)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from ktlite.data import TaskDataset, make_dataset
    from ktlite.text import texts_from_array

    texts, labels = read_split(split_path(args.data, "train"))
    n = len(texts)
    trn, _, preproc = texts_from_array(texts, labels, val_pct=0.01, verbose=0)
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores visible, tensorflow "
        f"{tf.__version__}; load average at start {os.getloadavg()[0]:.1f}",
        f"preprocessor: vocab {preproc.vocab_size}, maxlen {preproc.maxlen} (auto)",
    ]

    every = TaskDataset(np.asarray(texts, dtype=object), transform=preproc.tokenize)
    for bs in (32, 256, 1024):

        def raw(bs=bs):
            return (
                tf.data.Dataset.from_tensor_slices(texts)
                .batch(bs)
                .map(preproc.tokenize, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE)
            )

        rate_raw, cpu_raw = throughput(raw, n, args.repeats)
        rate_kt, cpu_kt = throughput(lambda bs=bs: make_dataset(every, bs)[0], n, args.repeats)
        lines.append(
            f"tokenize in tf.data, batch {bs}: {rate_raw:,.0f} texts/s ({cpu_raw:,.0f} per "
            f"CPU-second) with from_tensor_slices.batch.map; {rate_kt:,.0f} texts/s "
            f"({cpu_kt:,.0f} per CPU-second) through ktlite make_dataset"
        )

    ids = preproc.preprocess(list(trn.x))
    piped, _ = make_dataset(trn, args.batch_size, shuffle=True, seed=0, repeat=True)
    pretok, _ = make_dataset((ids, trn.y), args.batch_size, shuffle=True, seed=0, repeat=True)
    feed = iter(piped)
    next(feed)  # start-up (shuffle buffer, autotuning) is paid once per fit, not per step
    start = time.perf_counter()
    for _ in range(2000):
        next(feed)
    feed_rate = 2000 / (time.perf_counter() - start)
    lines.append(
        f"the training feed alone (make_dataset(trn, {args.batch_size}, shuffle=True), "
        f"tokenizing): {feed_rate:,.0f} batches/s"
    )
    models = build_models(preproc.vocab_size, preproc.maxlen, len(preproc.class_names))
    for name, model in models.items():
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        # Warm up both feeds (tracing), then alternate them so load changes hit both alike.
        model.fit(piped, epochs=1, steps_per_epoch=12, verbose=0)
        model.fit(pretok, epochs=1, steps_per_epoch=12, verbose=0)
        piped_runs, pretok_runs = [], []
        for _ in range(args.repeats):
            piped_runs.append(fit_rate(model, piped, args.steps))
            pretok_runs.append(fit_rate(model, pretok, args.steps))
        a = statistics.median(r[0] for r in piped_runs)
        b = statistics.median(r[0] for r in pretok_runs)
        cpu_a = statistics.median(r[1] for r in piped_runs)
        cpu_b = statistics.median(r[1] for r in pretok_runs)
        lines.append(
            f"{name}, batch {args.batch_size} (medians of {args.repeats} alternating runs of "
            f"{args.steps} steps): tokenizing in the pipeline {a:.1f} steps/s, "
            f"{cpu_a:.1f} CPU ms/step; pre-tokenized {b:.1f} steps/s, {cpu_b:.1f} CPU ms/step "
            f"(wall ratio {a / b:.2f}x, CPU ratio {cpu_a / cpu_b:.2f}x); the feed alone "
            f"runs {feed_rate / a:,.0f}x faster than the model consumes it"
        )
    lines.append(f"load average at end {os.getloadavg()[0]:.1f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
