"""LR-finder suggestion quality: does the suggested learning rate train as well as a grid?

For each task the script
1. builds a freshly initialised model (fixed seed) and runs `ktlite.lr.find_lr` with its
   defaults on the training data;
2. trains a copy of that same initial model with one-cycle (`ktlite.lr.OneCycle` through
   `ktlite.lr.PolicyCallback`, Adam, default pct_start/div/moms) at the finder's suggestions
   (the default `basin`, plus `valley`, `steep` and `minimum` for comparison) and at every
   point of the grid 1e-5, 3.16e-5, ..., 1e-1 (one per half decade), with the same epochs,
   batch size, seed and data order;
3. reports the final validation accuracy of each, the best grid point, and the gap
   `best grid - default suggestion` in percentage points (target: <= 1 on every task).

Tasks (all local, no download):
- `wordnet`: WordNet 3.0 lexicographer files (45 classes) from ../shared/data, a 20k-synset
  training subset, the full validation split, an embedding-bag model (mean of word
  embeddings) over the first 48 tokens.
- `digits`: scikit-learn's bundled 8x8 digits (10 classes), 3-fold cross-validation, MLP.
- `breast_cancer`: scikit-learn's bundled breast-cancer data (2 classes), 3-fold
  cross-validation, MLP.
- `digits_cnn`: the same digits as 8x8 images, a small CNN, 3-fold cross-validation; added
  after the default rule was chosen, as a check on a model family it was not designed with.
- `wordnet_gru`: a bidirectional GRU on a 10k-text WordNet subset (32 tokens); added with
  `digits_cnn` for the same reason.
- `transformer`: ktlite's own three-line text workflow with every default on the same
  WordNet subset: `texts_from_array`, `text_classifier("transformer")` (post-norm encoder,
  AdamW), `get_learner`, `learner.lr_find()`, `learner.fit_onecycle(lr, 2)`.
Small data sets use cross-validation so that one percentage point is more than a couple of
validation samples; scores are averaged over folds (the finder runs once per fold).

Run (about 35 minutes on 2 idle CPU cores, 27 of them for the Transformer, 3 for the GRU):
    python benchmarks/lr_finder.py
    python benchmarks/lr_finder.py --tasks digits --folds 2     # quick look

Data: WordNet lexnames (`wordnet_lexnames_{train,val,test}.csv.gz`) read from
../shared/data (beside the repository) for the `wordnet` and `transformer` tasks. To
rebuild it from a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ktlite.lr import DEFAULT_SUGGESTION, OneCycle, PolicyCallback, find_lr  # noqa: E402

GRID = [10.0 ** (-5 + k / 2) for k in range(9)]
RULES = ("basin", "minimum", "valley", "steep")
DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


# --------------------------------------------------------------------------- tasks
def _mlp(n_in: int, hidden: int, n_out: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(n_out, activation="softmax"),
        ]
    )


def _cv_folds(x, y, folds, seed):
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, val_idx in splitter.split(x, y):
        scaler = StandardScaler().fit(x[train_idx])
        yield (
            scaler.transform(x[train_idx]).astype("float32"), y[train_idx].astype("int32"),
            scaler.transform(x[val_idx]).astype("float32"), y[val_idx].astype("int32"),
        )


def task_digits(folds, seed):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return {
        "folds": list(_cv_folds(x, y, folds, seed)),
        "build": lambda: _mlp(64, 64, 10),
        "epochs": 8,
        "batch_size": 32,
        "about": f"sklearn digits, 1797 samples, {folds}-fold CV, MLP 64-64-10",
    }


def task_digits_cnn(folds, seed):
    """A convolutional network on the 8x8 digit images: a family the rules were not tuned on."""
    images = [
        (xt.reshape(-1, 8, 8, 1), yt, xv.reshape(-1, 8, 8, 1), yv)
        for xt, yt, xv, yv in task_digits(folds, seed)["folds"]
    ]

    def build():
        return keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(2),
                keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    return {
        "folds": images,
        "build": build,
        "epochs": 8,
        "batch_size": 32,
        "about": f"sklearn digits as 8x8 images, {folds}-fold CV, CNN conv16-pool-conv32-gap-10",
    }


def task_breast_cancer(folds, seed):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return {
        "folds": list(_cv_folds(x, y, folds, seed)),
        "build": lambda: _mlp(30, 32, 2),
        "epochs": 10,
        "batch_size": 16,
        "about": f"sklearn breast_cancer, 569 samples, {folds}-fold CV, MLP 30-32-2",
    }


def _read_wordnet(split):
    import csv

    path = os.path.join(DATA_DIR, f"wordnet_lexnames_{split}.csv.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def task_wordnet(folds, seed, n_train=20000, vocab=20000, maxlen=48, encoder="bag"):
    del folds
    texts, labels = _wordnet_subset(n_train, seed)
    val_texts, val_labels = _read_wordnet("val")
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in labels], dtype="int32")
    y_val = np.array([index[label] for label in val_labels], dtype="int32")
    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocab, output_sequence_length=maxlen, output_mode="int"
    )
    vectorizer.adapt(tf.constant(texts))
    x = vectorizer(tf.constant(texts)).numpy().astype("int32")
    x_val = vectorizer(tf.constant(val_texts)).numpy().astype("int32")

    def build():
        pool = (
            keras.layers.GlobalAveragePooling1D()
            if encoder == "bag"
            else keras.layers.Bidirectional(keras.layers.GRU(32))
        )
        return keras.Sequential(
            [
                keras.Input((maxlen,), dtype="int32"),
                keras.layers.Embedding(vocab, 64, mask_zero=True),
                pool,
                keras.layers.Dense(len(classes), activation="softmax"),
            ]
        )

    described = "embedding-bag" if encoder == "bag" else "bidirectional GRU(32)"
    return {
        "folds": [(x, y, x_val, y_val)],
        "build": build,
        "epochs": 3,
        "batch_size": 64,
        "about": (
            f"WordNet lexnames, {n_train} train / {len(y_val)} val synsets, 45 classes, "
            f"{described} (vocab {vocab}, dim 64, {maxlen} tokens)"
        ),
    }


def task_wordnet_gru(folds, seed):
    """A recurrent text model: a family the rules were not tuned on (10k-text subset)."""
    return task_wordnet(folds, seed, n_train=10000, maxlen=32, encoder="gru")


def _wordnet_subset(n_train, seed):
    texts, labels = _read_wordnet("train")
    pick = np.random.default_rng(seed).permutation(len(texts))[:n_train]
    return [texts[i] for i in pick], [labels[i] for i in pick]


def task_transformer(folds, seed, n_train=20000):
    """The text workflow with ktlite's defaults; the finder and training go through a Learner."""
    import ktlite
    from ktlite import text

    del folds
    texts, labels = _wordnet_subset(n_train, seed)
    val_texts, val_labels = _read_wordnet("val")
    trn, val, preproc = text.texts_from_array(texts, labels, val_texts, val_labels, verbose=0)

    def learner():
        keras.utils.set_random_seed(seed)  # same initial weights and data order every time
        model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
        return ktlite.get_learner(model, train_data=trn, val_data=val)

    def find(fold):
        return learner().lr_find(verbose=0)

    def score(fold, lr):
        history = learner().fit_onecycle(lr, 2, verbose=0)
        return 100.0 * history.history["val_accuracy"][-1]

    return {
        "folds": [None],
        "find": find,
        "score": score,
        "epochs": 2,
        "batch_size": 32,
        "about": (
            f"WordNet lexnames, {n_train} train / {len(val_texts)} val texts, 45 classes, "
            f"ktlite text Transformer defaults ({preproc.vocab_size} wordpieces, "
            f"maxlen {preproc.maxlen}, AdamW) through `Learner.lr_find`/`fit_onecycle`"
        ),
    }


TASKS = {
    "wordnet": task_wordnet,
    "digits": task_digits,
    "breast_cancer": task_breast_cancer,
    "transformer": task_transformer,
    "digits_cnn": task_digits_cnn,
    "wordnet_gru": task_wordnet_gru,
}


# --------------------------------------------------------------------------- runs
def _compiled(build, seed, init_weights=None):
    keras.utils.set_random_seed(seed)
    model = build()
    if init_weights is not None:
        model.set_weights(init_weights)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


def _train_score(task, fold, lr, seed, init_weights):
    x, y, x_val, y_val = fold
    model = _compiled(task["build"], seed, init_weights)
    steps = int(np.ceil(len(x) / task["batch_size"]))
    keras.utils.set_random_seed(seed)  # same data order for every learning rate
    model.fit(
        x, y, batch_size=task["batch_size"], epochs=task["epochs"], shuffle=True, verbose=0,
        callbacks=[PolicyCallback(OneCycle(lr, steps * task["epochs"]))],
    )
    _, acc = model.evaluate(x_val, y_val, batch_size=256, verbose=0)
    return 100.0 * acc


def _array_task_runners(task, seed):
    """`find(fold)` and `score(fold, lr)` for tasks given as arrays and a model builder."""
    init = {}

    def find(fold):
        x, y = fold[0], fold[1]
        model = _compiled(task["build"], seed)
        init["weights"] = model.get_weights()
        ds = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed)
            .batch(task["batch_size"])
        )
        return find_lr(model, ds, verbose=0)

    def score(fold, lr):
        return _train_score(task, fold, lr, seed, init["weights"])

    return find, score


def run_task(name, task, seed, save_dir=None):
    if "find" in task:
        find, score = task["find"], task["score"]
    else:
        find, score = _array_task_runners(task, seed)
    per_fold = []
    for k, fold in enumerate(task["folds"]):
        t0 = time.perf_counter()
        result = find(fold)
        t_find = time.perf_counter() - t0
        by_lr = {}  # rules that agree on a rate share one training run

        def scored(lr):
            if lr not in by_lr:
                by_lr[lr] = score(fold, lr)
            return by_lr[lr]

        scores = {f"grid {lr:.1e}": scored(lr) for lr in GRID}
        for rule, lr in result.suggestions.items():
            scores[rule] = scored(lr)
        per_fold.append({"suggestions": result.suggestions, "scores": scores,
                         "steps": len(result.lrs), "t_find": t_find})
        if save_dir:
            os.makedirs(save_dir, exist_ok=True)
            result.save(os.path.join(save_dir, f"{name}_fold{k}_lr_find.json"))
            with open(os.path.join(save_dir, f"{name}_fold{k}_scores.json"), "w") as f:
                json.dump(scores, f)
        print(
            f"  {name} fold {k}: finder {len(result.lrs)} steps in {t_find:.1f}s; "
            + ", ".join(f"{r}={lr:.2e} ({scores[r]:.1f}%)" for r, lr in result.suggestions.items())
            + f"; best grid {max(v for n, v in scores.items() if n.startswith('grid')):.1f}%",
            flush=True,
        )
    return per_fold


def summarise(name, task, per_fold):
    keys = per_fold[0]["scores"].keys()
    mean = {key: float(np.mean([f["scores"][key] for f in per_fold])) for key in keys}
    grid = {key: v for key, v in mean.items() if key.startswith("grid")}
    best_key = max(grid, key=grid.get)
    lines = [f"### {name}: {task['about']}; {task['epochs']} epochs one-cycle, "
             f"batch {task['batch_size']}"]
    lines.append("| lr | val acc % (mean over folds) |")
    lines.append("| --- | --- |")
    for key in grid:
        mark = " (best grid)" if key == best_key else ""
        lines.append(f"| {key[5:]}{mark} | {grid[key]:.2f} |")
    gaps = {}
    for rule in RULES:
        lrs = ", ".join(f"{f['suggestions'][rule]:.2e}" for f in per_fold)
        gaps[rule] = grid[best_key] - mean[rule]
        default = " (default)" if rule == DEFAULT_SUGGESTION else ""
        lines.append(f"| {rule}{default}: {lrs} | {mean[rule]:.2f} (gap {gaps[rule]:+.2f} pt) |")
    rule = DEFAULT_SUGGESTION
    verdict = "PASS" if gaps[rule] <= 1.0 else "FAIL"
    lines.append(
        f"\nDefault suggestion ({rule}) {mean[rule]:.2f}% vs best grid "
        f"{grid[best_key]:.2f}% at {best_key[5:]}: gap {gaps[rule]:+.2f} pt -> {verdict} "
        "(target <= 1 pt)"
    )
    return "\n".join(lines), gaps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="folder for each fold's curve and scores")
    args = parser.parse_args()
    print(f"# LR finder benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}")
    start = time.perf_counter()
    reports, gaps = [], {}
    for name in args.tasks:
        t0 = time.perf_counter()
        task = TASKS[name](args.folds, args.seed)
        per_fold = run_task(name, task, args.seed, args.save)
        report, gaps[name] = summarise(name, task, per_fold)
        reports.append(report + f"\n(task time {time.perf_counter() - t0:.0f} s)")
        print(reports[-1], flush=True)
    print(f"\nTotal {time.perf_counter() - start:.0f} s. Gap to the best grid point (pt):")
    for rule in RULES:
        default = " (default)" if rule == DEFAULT_SUGGESTION else ""
        print(f"  {rule}{default}: "
              + ", ".join(f"{name} {g[rule]:+.2f}" for name, g in gaps.items()))


if __name__ == "__main__":
    main()
