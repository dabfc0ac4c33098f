"""Length bucketing on vs off: epoch time, test accuracy and traced shapes (issue 12).

Side by side in one run, for each corpus: the same default text Transformer (same initial
weights, same data, same seed) is trained once with `get_learner(..., bucketing=True)`
(batches of similar-length texts padded to their width, a multiple of 16) and once with
`bucketing=False` (every batch padded to `maxlen`). Epochs alternate between the two runs
(on, off, on, off, ...) so that load from other processes on a shared machine hits both
alike; each epoch is one one-cycle schedule (`fit_onecycle(lr, 1)`), the same for both.

Corpora:
- ``wordnet``: WordNet lexnames (a gloss -> its lexicographer file; short texts, maxlen 64).
- ``longtail``: glosses joined in random groups of 1 to 12 (lengths from a few tokens to
  several hundred), labelled by the first gloss's class; built from the train split for
  training and from the test split for testing.

Reported per corpus and mode: wall and CPU seconds per epoch (epoch 1 includes tracing),
test accuracy after the last epoch, and the distinct batch widths of one training epoch
(the number of input shapes the model sees; with `jit_compile`, one XLA compilation each).

Data: ``wordnet_lexnames_{train,test}.csv.gz`` (columns id,label,text). To rebuild them from
a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data

Usage:
    python benchmarks/bucketing.py --train ../shared/data/wordnet_lexnames_train.csv.gz \\
        --test ../shared/data/wordnet_lexnames_test.csv.gz --train-size 20000 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from make_wordnet_lexnames import read_split  # noqa: E402

_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def long_tail(texts: list[str], labels: list[str], n: int, seed: int) -> tuple[list, list]:
    """`n` texts, each 1 to 12 random glosses joined, labelled by the first gloss."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 13, size=n)
    out_texts, out_labels = [], []
    for size in sizes:
        picked = rng.integers(0, len(texts), size=size)
        out_texts.append(" ".join(texts[i] for i in picked))
        out_labels.append(labels[picked[0]])
    return out_texts, out_labels


def subsample(texts: list, labels: list, n: int | None, seed: int) -> tuple[list, list]:
    if n is None or n >= len(texts):
        return texts, labels
    picked = np.sort(np.random.default_rng(seed).permutation(len(texts))[:n])
    return [texts[i] for i in picked], [labels[i] for i in picked]


def batch_widths(learner, data) -> list[int]:
    """The distinct input widths of one training epoch, as the learner batches it."""
    dataset, _ = learner._dataset(data, training=True)
    return sorted({int(x.shape[1]) for x, _ in dataset})


def run_corpus(name, x_train, y_train, x_test, y_test, args) -> dict:
    import keras

    import ktlite
    from ktlite import text

    # Every class named up front: a subset may miss a rare class in training.
    trn, test, preproc = text.texts_from_array(
        x_train, y_train, x_test, y_test, verbose=0, random_state=args.seed,
        class_names=sorted(set(y_train) | set(y_test)),
    )
    lengths = trn.lengths
    learners = {}
    for mode in ("on", "off"):
        keras.utils.set_random_seed(args.seed)  # the same initial weights for both
        model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
        learners[mode] = ktlite.get_learner(
            model, trn, batch_size=args.batch_size, seed=args.seed, verbose=0,
            bucketing=mode == "on",
        )
    result = {
        "corpus": name,
        "train": len(trn),
        "test": len(test),
        "maxlen": preproc.maxlen,
        "median_tokens": int(np.median(lengths)),
        "p99_tokens": int(np.percentile(lengths, 99)),
        "padded_share_off": float(1 - lengths.sum() / (len(lengths) * preproc.maxlen)),
    }
    times: dict[str, list] = {"on": [], "off": []}
    for epoch in range(args.epochs):
        for mode in ("on", "off") if epoch % 2 == 0 else ("off", "on"):
            wall, cpu = time.perf_counter(), time.process_time()
            learners[mode].fit_onecycle(args.lr, 1, verbose=0)
            times[mode].append((time.perf_counter() - wall, time.process_time() - cpu))
            print(f"  {name} epoch {epoch + 1} bucketing {mode}: {times[mode][-1][0]:.1f} s "
                  f"wall, {times[mode][-1][1]:.1f} s cpu, load {os.getloadavg()[0]:.1f}",
                  flush=True)
    for mode, learner in learners.items():
        probs = learner.predict(test)
        accuracy = float(np.mean(np.argmax(probs, axis=1) == test.y))
        steady = times[mode][1:] or times[mode]
        result[mode] = {
            "epoch_wall_s": [round(t[0], 1) for t in times[mode]],
            "epoch_cpu_s": [round(t[1], 1) for t in times[mode]],
            "steady_wall_s": round(float(np.mean([t[0] for t in steady])), 1),
            "steady_cpu_s": round(float(np.mean([t[1] for t in steady])), 1),
            "test_accuracy": round(accuracy, 4),
            "widths": batch_widths(learner, trn),
        }
    for kind in ("wall", "cpu"):
        ratio = result["off"][f"steady_{kind}_s"] / result["on"][f"steady_{kind}_s"]
        result[f"speedup_{kind}"] = round(ratio, 2)
    result["accuracy_gap_points"] = round(
        100 * (result["on"]["test_accuracy"] - result["off"]["test_accuracy"]), 2
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=_DATA / "wordnet_lexnames_train.csv.gz")
    parser.add_argument("--test", type=Path, default=_DATA / "wordnet_lexnames_test.csv.gz")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training texts per corpus (default: all 93,822)")
    parser.add_argument("--test-size", type=int, default=None,
                        help="test texts per corpus (default: all 11,908)")
    parser.add_argument("--longtail-size", type=int, default=None,
                        help="training texts of the long-tailed corpus (default: --train-size); "
                             "its test set holds half as many texts (at most --test-size)")
    parser.add_argument("--corpus", choices=["wordnet", "longtail", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    x_train, y_train = read_split(args.train)
    x_test, y_test = read_split(args.test)
    n_train = args.train_size or len(x_train)
    n_test = args.test_size or len(x_test)
    corpora = []
    if args.corpus in ("wordnet", "both"):
        corpora.append(("wordnet",
                        *subsample(x_train, y_train, n_train, args.seed),
                        *subsample(x_test, y_test, n_test, args.seed)))
    if args.corpus in ("longtail", "both"):
        n_long = args.longtail_size or n_train
        corpora.append(("longtail",
                        *long_tail(x_train, y_train, n_long, args.seed),
                        *long_tail(x_test, y_test, min(n_test, max(1, n_long // 2)),
                                   args.seed + 1)))
    start = time.perf_counter()
    results = []
    for name, xtr, ytr, xte, yte in corpora:
        results.append(run_corpus(name, xtr, ytr, xte, yte, args))
        print(json.dumps(results[-1]), flush=True)
    summary = {
        "results": results,
        "total_s": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load at end "
                   f"{os.getloadavg()[0]:.1f}",
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
