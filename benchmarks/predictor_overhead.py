"""Predictor overhead: `predictor.predict` vs tokenization + a bare forward pass.

Issue 3 targets, for the default text Transformer (`text.text_classifier` defaults) on
WordNet lexnames glosses:

- `predict` on 1,000 texts within 1.2x of tokenize + bare forward pass (same batch size);
- one text's median latency within 2 ms of the bare forward pass.

"Tokenize + bare forward" is the floor a hand-written loop reaches: `preproc.tokenize` and
`model(ids, training=False)`, each in its own `tf.function`, per batch. The predictor adds
input checks, the Python list -> tensor step and label decoding. Keras' `model.predict` is
timed too, for reference. The model is untrained: timing does not depend on the weights.

Usage: python benchmarks/predictor_overhead.py [--data ../shared/data] [--repeats 7]
The last lines printed are Markdown, ready to append to benchmarks/RESULTS.md.

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
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from make_wordnet_lexnames import read_split, split_path  # noqa: E402

HERE = Path(__file__).resolve().parent


def best_and_median(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--single-calls", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    load_start = os.getloadavg()[0]
    import ktlite
    from ktlite import text
    from ktlite.data import TaskDataset

    x_train, y_train = read_split(split_path(args.data, "train"))
    x_test, _ = read_split(split_path(args.data, "test"))
    texts = x_test[:1000]

    preproc = text.TextPreprocessor().fit(x_train, y_train)
    trn = TaskDataset(
        np.array(x_train, dtype=object), preproc.encode_labels(y_train),
        transform=preproc.tokenize, task="text",
    )
    model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
    predictor = ktlite.get_predictor(model, preproc, batch_size=args.batch_size)
    bs = args.batch_size

    string_spec = tf.TensorSpec([None], tf.string)
    ids_spec = tf.TensorSpec([None, preproc.maxlen], tf.int32)
    # Concrete functions: the cheapest way to call a traced graph from Python.
    tokenize = tf.function(preproc.tokenize, input_signature=[string_spec]).get_concrete_function()
    forward = tf.function(
        lambda ids: model(ids, training=False), input_signature=[ids_spec]
    ).get_concrete_function()

    def bare_batch() -> None:
        for i in range(0, len(texts), bs):
            forward(tokenize(tf.constant(texts[i : i + bs]))).numpy()

    def predictor_batch() -> None:
        predictor.predict(texts)

    # Warm up (traces) and check both paths agree.
    bare_batch()
    predictor_batch()
    ref = forward(tokenize(tf.constant(texts[:64]))).numpy()
    assert np.allclose(predictor.predict_proba(texts[:64]), ref, atol=1e-5)

    bare_runs, pred_runs = [], []
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        bare_runs.append(best_and_median(bare_batch, 1)[0])
        pred_runs.append(best_and_median(predictor_batch, 1)[0])
    bare_1000, pred_1000 = statistics.median(bare_runs), statistics.median(pred_runs)

    one_text = texts[0]
    one_ids = tokenize(tf.constant([one_text]))
    keras_ids = one_ids.numpy()
    model.predict(keras_ids, verbose=0)
    lat = {"bare forward": [], "tokenize + forward": [], "predictor.predict": [],
           "keras model.predict": []}
    for i in range(args.single_calls):
        start = time.perf_counter()
        forward(one_ids).numpy()
        lat["bare forward"].append(time.perf_counter() - start)
        start = time.perf_counter()
        forward(tokenize(tf.constant([one_text]))).numpy()
        lat["tokenize + forward"].append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(one_text)
        lat["predictor.predict"].append(time.perf_counter() - start)
        if i % 10 == 0:  # slow; fewer samples
            start = time.perf_counter()
            model.predict(keras_ids, verbose=0)
            lat["keras model.predict"].append(time.perf_counter() - start)
    med = {k: 1000 * statistics.median(v) for k, v in lat.items()}
    best = {k: 1000 * min(v) for k, v in lat.items()}

    ratio = pred_1000 / bare_1000
    gap = med["predictor.predict"] - med["bare forward"]
    best_gap = best["predictor.predict"] - best["bare forward"]
    lines = [
        f"model: text_classifier('transformer') defaults, {model.count_params():,} params, "
        f"maxlen {preproc.maxlen}, vocab {preproc.vocab_size}, {len(preproc.class_names)} classes",
        f"{len(texts):,} texts, batch_size {bs} (median of {args.repeats}): tokenize + bare "
        f"forward {bare_1000 * 1000:.0f} ms, predictor.predict {pred_1000 * 1000:.0f} ms, "
        f"ratio {ratio:.2f}x (target <= 1.2x)",
        "single text, median (min) of {} interleaved calls: {}".format(
            args.single_calls,
            ", ".join(f"{k} {med[k]:.2f} ({best[k]:.2f}) ms" for k in med),
        ),
        f"single-text gap predictor.predict - bare forward: median {gap:.2f} ms, min "
        f"{best_gap:.2f} ms (target <= 2 ms)",
        f"load average (1 min) at start / end: {load_start:.1f} / {os.getloadavg()[0]:.1f}",
    ]
    machine = (
        f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores "
        f"visible, Python {platform.python_version()}, TF {tf.__version__}, "
        f"Keras {keras.__version__}, ktlite {ktlite.__version__}"
    )
    print(f"\nmachine: {machine}; {time.strftime('%Y-%m-%d')}")
    for line in lines:
        print(f"- {line}")


if __name__ == "__main__":
    main()
