"""LR-finder suggestion quality on a suite of tasks: every rule, two budgets, held-out families.

For each task (a model family on a data set, with an optimizer) and each fold the script
1. builds a freshly initialised model (fixed seed) and runs the finder with its defaults;
   four more sweeps of the same initial model with other batch orders measure how much each
   rule's suggestion moves (`spread` = largest / smallest of the five);
2. trains copies of that initial model with one-cycle (`ktlite.lr.OneCycle` through
   `ktlite.lr.PolicyCallback`, default pct_start/div/moms) for each budget (default a short
   fit of 3 epochs and a long one of 10) at every grid rate 1e-5, 3.16e-5, ..., 1e-1 and at
   every rule's suggestion, as read off the curve (`rule`) and scaled for the budget's
   number of updates (`rule+b`, `ktlite.lr.budget`);
3. runs the confirming pass (`ktlite.lr.confirm`, judged on the validation split) per
   budget, trains at the rate it picks, and records its time beside the finder's.
Score: final validation accuracy (%), mean over folds; gap = best grid rate - rule (points).

The default rule is chosen by leave-one-family-out: for each family, the candidate (rule,
with or without the budget scaling) with the fewest task-budget pairs more than 1 point off
the best grid rate (then the smallest mean gap) on the *other* families is scored on the
held-out one. The table of every rule on every task-budget pair is printed as well.

Tasks (all local, no download), by family:
- `mlp`: `digits_mlp_adam`, `digits_mlp_sgd`, `breast_cancer_mlp_adam`, `wine_mlp_sgd`
  (scikit-learn's bundled sets, standardised, stratified k-fold CV, one hidden layer);
- `logistic`: `iris_logistic_adam`, `breast_cancer_logistic_sgd`, `wine_logistic_adam`,
  `digits_logistic_sgd` (a single softmax layer);
- `cnn`: `digits_cnn_adam` (the 8x8 digit images, conv16-pool-conv32-GAP), `fashion_cnn`
  (ktlite `image_classifier("cnn")`, 2,000 Fashion-MNIST images);
- `vit`: `fashion_vit` (ktlite `image_classifier("vit")`, the same images) and
  `fashion_vit_20k` (20,000 images: a sweep that sees distinct batches, as on the full set);
- `rnn`: `wordnet_gru` (bidirectional GRU(32), 10k WordNet texts, 32 tokens, Adam);
- `bag`: `wordnet_fasttext` (ktlite `text_classifier("fasttext")`);
- `transformer`: `wordnet_transformer` (ktlite's default text Transformer);
- `table`: `digits_ft_transformer`, `breast_cancer_ft_transformer` (ktlite
  `tabular_classifier("ft_transformer")` on scikit-learn's sets read as tables, the same
  stratified k-fold CV; with one fold a stratified quarter for validation);
- `seq2seq`: `debian_translation` (ktlite `translation_model`, 2,000 English -> Italian
  pairs, a 2,000-piece vocabulary; scored by validation token accuracy).
  SGD is `keras.optimizers.SGD(momentum=0.9)`; Adam is Keras' default Adam. The ktlite tasks
  run through a Learner with every default of their folder, batch 32 (fasttext 64).

The WordNet and Debian tasks read `wordnet_lexnames_{train,val}.csv.gz` and
`debian_en_it_{train,val}.csv.gz` from `--data` (default ../shared/data next to the
repository); to rebuild them from a clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
(and ../shared/data/make_debian_pairs.py, see that folder's README). The image tasks read
the Fashion-MNIST IDX files from `--images` (`apt-get install dataset-fashion-mnist`).

Full run (hours on 2 shared CPU cores; the text tasks dominate):
    python benchmarks/lr_finder.py --save lr_suite
Quick look at the small tasks (one fold, a few minutes):
    python benchmarks/lr_finder.py --quick --tasks digits_mlp_adam iris_logistic_adam
Saved runs read again with today's rules and confirming pass (a new or changed rule, or
confirming pass, measured without sweeping again: only rates the run did not train are
trained; each task is rebuilt with the folds it was saved with; give the --seed the runs
were made with):
    python benchmarks/lr_finder.py --rescore lr_suite --save lr_suite_rescored
How much steadier `lr_find(sweeps=3)` is (no fits: five calls of three sweeps per task, each
rule's spread over the calls' first sweeps beside its spread over their averages, the time
of one call of one sweep, made first, beside the mean of the five), and its suggestions
scored on a saved run's folds and grid:
    python benchmarks/lr_finder.py --sweeps-per-find 3 --save lr_steady3
    python benchmarks/lr_finder.py --rescore lr_suite --sweeps-per-find 3 --save lr_suite_3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ktlite.lr import (  # noqa: E402
    DEFAULT_SUGGESTION, LRFindResult, OneCycle, PolicyCallback, find_lr,
)
from ktlite.lr.budget import budget_factor  # noqa: E402
from ktlite.lr.confirm import candidate_lrs, confirm_lr  # noqa: E402

from make_wordnet_lexnames import read_split, split_path  # noqa: E402

GRID = [10.0 ** (-5 + k / 2) for k in range(9)]
RULES = ("consensus", "basin", "descent", "minimum", "valley", "steep")
DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
SWEEPS = 5
IMAGES_DIR = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------- tasks
def _optimizer(name):
    if name == "sgd":
        return keras.optimizers.SGD(1e-2, momentum=0.9)
    return keras.optimizers.Adam(1e-3)


def _dense(n_in, hidden, n_out):
    layers = [keras.Input((n_in,))]
    if hidden:
        layers.append(keras.layers.Dense(hidden, activation="relu"))
    layers.append(keras.layers.Dense(n_out, activation="softmax"))
    return keras.Sequential(layers)


def _cv_folds(x, y, folds, seed):
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    splitter = StratifiedKFold(n_splits=max(2, folds), shuffle=True, random_state=seed)
    for k, (train_idx, val_idx) in enumerate(splitter.split(x, y)):
        if k == folds:
            break
        scaler = StandardScaler().fit(x[train_idx])
        yield (
            scaler.transform(x[train_idx]).astype("float32"), y[train_idx].astype("int32"),
            scaler.transform(x[val_idx]).astype("float32"), y[val_idx].astype("int32"),
        )


def _sklearn(name):
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(return_X_y=True)


def _sklearn_task(data, hidden, optimizer, batch_size):
    def make(args):
        x, y = _sklearn(data)
        n_out = int(y.max()) + 1
        model = f"MLP {x.shape[1]}-{hidden}-{n_out}" if hidden else f"logistic {n_out} classes"
        return {
            "folds": list(_cv_folds(x, y, args.folds, args.seed)),
            "build": lambda: _dense(x.shape[1], hidden, n_out),
            "optimizer": optimizer,
            "batch_size": batch_size,
            "about": f"sklearn {data} ({len(y)} samples, {args.folds}-fold CV), {model}, "
                     f"{optimizer}, batch {batch_size}",
        }
    return make


def task_digits_cnn_adam(args):
    task = _sklearn_task("digits", 64, "adam", 32)(args)
    task["folds"] = [
        (xt.reshape(-1, 8, 8, 1), yt, xv.reshape(-1, 8, 8, 1), yv)
        for xt, yt, xv, yv in task["folds"]
    ]
    task["build"] = lambda: keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    task["about"] = f"sklearn digits as 8x8 images ({args.folds}-fold CV), CNN, adam, batch 32"
    return task


def _wordnet(args, n_train, n_val):
    texts, labels = read_split(split_path(args.data, "train"))
    pick = np.random.default_rng(args.seed).permutation(len(texts))[:n_train]
    val_texts, val_labels = read_split(split_path(args.data, "val"))
    # A random sample: the file is ordered by class (its first 4,000 texts are 8 noun
    # classes of the 45, which runs 7-9 validated on: `--wordnet-val first` rebuilds them).
    if getattr(args, "wordnet_val", "random") == "first":
        held = np.arange(n_val)
    else:
        held = np.random.default_rng(args.seed + 1).permutation(len(val_texts))[:n_val]
    return ([texts[i] for i in pick], [labels[i] for i in pick],
            [val_texts[i] for i in held], [val_labels[i] for i in held])


def task_wordnet_gru(args, n_train=10000, n_val=4000, maxlen=32, vocab=20000):
    texts, labels, val_texts, val_labels = _wordnet(args, n_train, n_val)
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocab, output_sequence_length=maxlen, output_mode="int"
    )
    vectorizer.adapt(tf.constant(texts))
    x = vectorizer(tf.constant(texts)).numpy().astype("int32")
    x_val = vectorizer(tf.constant(val_texts)).numpy().astype("int32")
    y = np.array([index[label] for label in labels], "int32")
    y_val = np.array([index.get(label, 0) for label in val_labels], "int32")
    return {
        "folds": [(x, y, x_val, y_val)],
        "build": lambda: keras.Sequential([
            keras.Input((maxlen,), dtype="int32"),
            keras.layers.Embedding(vocab, 64, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.GRU(32)),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]),
        "optimizer": "adam",
        "batch_size": 64,
        "about": f"WordNet {len(y)} train / {len(y_val)} val texts, bidirectional GRU(32), "
                 "adam, batch 64",
    }


def _learner_task(about, build, metric="val_accuracy", folds=False):
    """A ktlite task through its own loader, model factory and a Learner.

    `build(args, fold)` returns `(trn, val, make_model, batch_size, about_data)` for fold
    `fold` of `args.folds` (a task with `folds=False` has one split, fold 0, and ignores
    it); the model is rebuilt with the same seed for every run, so every run starts from
    the same weights.
    """
    def make(args):
        import ktlite

        built = [build(args, fold) for fold in range(args.folds if folds else 1)]

        def learner(fold):
            trn, val, make_model, batch_size, _ = built[fold]
            keras.utils.set_random_seed(args.seed)  # same initial weights every time
            return ktlite.get_learner(make_model(), train_data=trn, val_data=val,
                                      batch_size=batch_size, verbose=0)

        _, _, _, batch_size, about_data = built[0]
        return {"folds": list(range(len(built))), "learner": learner,
                "batch_size": batch_size, "metric": metric,
                "about": f"{about_data}, {about}, batch {batch_size}"}
    return make


def _wordnet_text(name, n_train, n_val, batch_size):
    def build(args, _fold):
        from ktlite import text

        texts, labels, val_texts, val_labels = _wordnet(args, n_train, n_val)
        trn, val, preproc = text.texts_from_array(
            texts, labels, val_texts, val_labels, verbose=0
        )
        return (trn, val, lambda: text.text_classifier(name, trn, preproc=preproc, verbose=0),
                batch_size, f"WordNet {len(texts)} train / {len(val_texts)} val texts")
    return _learner_task(f"ktlite text_classifier({name!r}) defaults", build)


def _sklearn_table(data, val_share=0.25):
    """FT-Transformer (ktlite.tabular defaults) on a scikit-learn table: one stratified split
    of `val_share` for validation with one fold (--quick), else stratified k-fold CV as the
    scikit-learn tasks (their folds, the same seed)."""
    def build(args, fold):
        from sklearn.model_selection import StratifiedKFold, train_test_split

        from ktlite import tabular

        x, y = _sklearn(data)
        if args.folds == 1:
            x_trn, x_val, y_trn, y_val = train_test_split(
                x, y, test_size=val_share, stratify=y, random_state=args.seed
            )
            about = f"sklearn {data} as a table ({len(y_trn)} train / {len(y_val)} val rows)"
        else:
            splits = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
            trn_idx, val_idx = list(splits.split(x, y))[fold]
            x_trn, x_val, y_trn, y_val = x[trn_idx], x[val_idx], y[trn_idx], y[val_idx]
            about = f"sklearn {data} as a table ({len(y)} rows, {args.folds}-fold CV)"
        trn, val, preproc = tabular.tabular_from_array(x_trn, y_trn, x_val, y_val, verbose=0)
        return (trn, val,
                lambda: tabular.tabular_classifier("ft_transformer", trn, preproc=preproc,
                                                   verbose=0),
                32, about)
    return _learner_task("ktlite tabular_classifier('ft_transformer') defaults", build,
                         folds=True)


def _fashion(name, n_train, n_val):
    """ktlite.vision defaults on a Fashion-MNIST slice; validation images from the end of
    the training file (the test file is left to `vision.py`)."""
    def build(args, _fold):
        from vision import load_split  # benchmarks/vision.py reads the IDX files

        from ktlite import vision

        x, y = load_split(Path(args.images), "train")
        trn, val, preproc = vision.images_from_array(
            x[:n_train], y[:n_train], x[-n_val:], y[-n_val:], verbose=0
        )
        return (trn, val,
                lambda: vision.image_classifier(name, trn, preproc=preproc, verbose=0),
                32, f"Fashion-MNIST {n_train} train / {n_val} held-out training images")
    return _learner_task(f"ktlite image_classifier({name!r}) defaults", build)


def _debian_pairs(n_train, n_val, vocab_size=2000):
    """ktlite.seq2seq defaults (but a vocabulary sized for the slice) on Debian en-it."""
    def build(args, _fold):
        from translation import read_pairs  # benchmarks/translation.py reads the CSVs

        from ktlite import seq2seq

        src, tgt = read_pairs(args.data, "train", n_train)
        src_val, tgt_val = read_pairs(args.data, "val", n_val)
        trn, val, preproc = seq2seq.pairs_from_array(
            src, tgt, src_val, tgt_val, vocab_size=vocab_size, verbose=0
        )
        return (trn, val,
                lambda: seq2seq.translation_model("transformer", trn, preproc=preproc,
                                                  verbose=0),
                32, f"Debian en-it {n_train} train / {n_val} val pairs, vocab {vocab_size}")
    return _learner_task("ktlite translation_model defaults", build,
                         metric="val_token_accuracy")


TASKS = {
    "digits_mlp_adam": ("mlp", _sklearn_task("digits", 64, "adam", 32)),
    "digits_mlp_sgd": ("mlp", _sklearn_task("digits", 64, "sgd", 32)),
    "breast_cancer_mlp_adam": ("mlp", _sklearn_task("breast_cancer", 32, "adam", 16)),
    "wine_mlp_sgd": ("mlp", _sklearn_task("wine", 32, "sgd", 16)),
    "iris_logistic_adam": ("logistic", _sklearn_task("iris", 0, "adam", 16)),
    "breast_cancer_logistic_sgd": ("logistic", _sklearn_task("breast_cancer", 0, "sgd", 16)),
    "wine_logistic_adam": ("logistic", _sklearn_task("wine", 0, "adam", 16)),
    "digits_logistic_sgd": ("logistic", _sklearn_task("digits", 0, "sgd", 32)),
    "digits_cnn_adam": ("cnn", task_digits_cnn_adam),
    "wordnet_gru": ("rnn", task_wordnet_gru),
    "wordnet_fasttext": ("bag", _wordnet_text("fasttext", 12000, 4000, 64)),
    "wordnet_transformer": ("transformer", _wordnet_text("transformer", 20000, 4000, 32)),
    "digits_ft_transformer": ("table", _sklearn_table("digits")),
    "breast_cancer_ft_transformer": ("table", _sklearn_table("breast_cancer")),
    "fashion_cnn": ("cnn", _fashion("cnn", 2000, 1000)),
    "fashion_vit": ("vit", _fashion("vit", 2000, 1000)),
    "fashion_vit_20k": ("vit", _fashion("vit", 20000, 2000)),
    "debian_translation": ("seq2seq", _debian_pairs(2000, 500)),
}
QUICK_TASKS = [name for name, (family, _) in TASKS.items() if family in ("mlp", "logistic", "cnn")]


# --------------------------------------------------------------------------- runners
class ArrayRunner:
    """Finder, confirm and scoring for a task given as arrays and a model builder.

    One model is compiled once and put back to its initial weights and a fresh optimizer
    state before each run, so the traced train step is reused (building and tracing a new
    model per run would cost more than the runs on these small tasks).
    """

    def __init__(self, task, fold, seed):
        self.task, self.seed = task, seed
        self.x, self.y, self.x_val, self.y_val = fold
        self.steps_per_epoch = int(math.ceil(len(self.x) / task["batch_size"]))
        keras.utils.set_random_seed(seed)
        self.model = task["build"]()
        self.model.compile(optimizer=_optimizer(task["optimizer"]),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                           jit_compile=False)
        self.model.optimizer.build(self.model.trainable_variables)
        self.init = [v.numpy().copy() for v in self.model.variables]
        self.init_opt = [v.numpy().copy() for v in self.model.optimizer.variables]

    def _fresh(self):
        for variable, value in zip(self.model.variables, self.init):
            variable.assign(value)
        for variable, value in zip(self.model.optimizer.variables, self.init_opt):
            variable.assign(value)
        return self.model

    def _train_ds(self, order_seed):
        return (tf.data.Dataset.from_tensor_slices((self.x, self.y))
                .shuffle(len(self.x), seed=order_seed).batch(self.task["batch_size"]))

    def sweep(self, order_seed, sweeps=1):
        return find_lr(self._fresh(), self._train_ds(order_seed), verbose=0, sweeps=sweeps)

    def confirm(self, lrs, steps, planned):
        val = tf.data.Dataset.from_tensor_slices((self.x_val, self.y_val)).batch(256)
        return confirm_lr(self._fresh(), self._train_ds(self.seed), lrs, steps=steps,
                          val_dataset=val, planned_steps=planned)

    def score(self, lr, epochs):
        model = self._fresh()
        model.fit(self._train_ds(self.seed), epochs=epochs, verbose=0, shuffle=False,
                  callbacks=[PolicyCallback(OneCycle(lr, self.steps_per_epoch * epochs))])
        _, acc = model.evaluate(self.x_val, self.y_val, batch_size=256, verbose=0)
        return 100.0 * acc


class LearnerRunner:
    """The same through ktlite's Learner (the ktlite task folders' tasks)."""

    def __init__(self, task, fold, seed):
        self.task, self.seed = task, seed
        self.learner = lambda: task["learner"](fold)
        self.steps_per_epoch = self.learner()._train_steps()

    def sweep(self, order_seed, sweeps=1):
        learner = self.learner()
        keras.utils.set_random_seed(order_seed)  # the learner's shuffle follows it
        return learner.lr_find(verbose=0, sweeps=sweeps)

    def confirm(self, lrs, steps, planned):
        learner = self.learner()
        dataset, _ = learner._cached("train", learner.train_data, True)
        val, _ = learner._cached("val", learner.val_data, False)
        return confirm_lr(learner.model, dataset, lrs, steps=steps, val_dataset=val,
                          planned_steps=planned)

    def score(self, lr, epochs):
        history = self.learner().fit_onecycle(lr, epochs, verbose=0)
        return 100.0 * history.history[self.task["metric"]][-1]


def runner_for(task, fold, seed):
    """The task's runner on one fold: through a Learner for the ktlite task folders' tasks."""
    return (LearnerRunner if "learner" in task else ArrayRunner)(task, fold, seed)


def run_fold(task, fold, args):
    runner = runner_for(task, fold, args.seed)
    t0 = time.perf_counter()
    result = runner.sweep(args.seed)
    t_find = time.perf_counter() - t0
    results = [result] + [runner.sweep(args.seed + 1000 + k) for k in range(args.sweeps - 1)]
    sweeps = [r.suggestions for r in results]
    # The raw curves, so a new rule's suggestions and spread can be read off them later
    # (`LRFindResult.from_curve`) without sweeping again.
    curves = [{"lrs": r.lrs, "losses": r.losses} for r in results]
    scores = {}  # (rate key, epochs) -> accuracy; rates shared between rules train once

    def scored(lr, epochs):
        key = (float(f"{lr:.6g}"), epochs)
        if key not in scores:
            scores[key] = runner.score(lr, epochs)
        return scores[key]

    out = {"seed": args.seed, "t_find": t_find, "sweeps": sweeps, "curves": curves,
           "suggestions": result.suggestions, "budgets": {}}
    for epochs in args.budgets:
        planned = epochs * runner.steps_per_epoch
        row = {f"grid {lr:.1e}": scored(lr, epochs) for lr in GRID}
        lrs = {}
        for rule in RULES:
            raw = result.suggestions[rule]
            for name, lr in ((rule, raw), (f"{rule}+b", raw * budget_factor(planned))):
                lrs[name] = lr
                row[name] = scored(lr, epochs) if math.isfinite(lr) else float("nan")
        record = _confirm(runner, result.suggestions, len(result.lrs), planned)
        lrs["confirm"] = record["chosen"]
        row["confirm"] = scored(record["chosen"], epochs)
        out["budgets"][epochs] = {"scores": row, "lrs": lrs, "planned_steps": planned,
                                  "confirm": record}
    return out


def _confirm(runner, suggestions, sweep_steps, planned):
    """The confirming pass as `Learner.lr_find(confirm=True)` runs it, timed."""
    t0 = time.perf_counter()
    scaled = {rule: suggestions[rule] * budget_factor(planned) for rule in RULES}
    record = runner.confirm(candidate_lrs(scaled, scaled[DEFAULT_SUGGESTION]),
                            max(1, sweep_steps // 4), planned)
    record["seconds"] = time.perf_counter() - t0
    return record


def rescore(task, fold, saved, args):
    """Read a saved fold's sweeps with today's rules and confirming pass, without sweeping.

    Every rule's suggestions come from the saved raw curves (`LRFindResult.from_curve`);
    each budget's rates are looked up among the rates the run trained (the grid and every
    rule's) and only a rate not trained before is trained (same data, fold, seed and initial
    weights: the scikit-learn and table tasks repeat their saved scores exactly); the
    confirming pass is rerun. Returns the saved fold with its suggestions, rates, scores and
    confirm records replaced (the finder's time is the saved one).

    With `--sweeps-per-find K` the suggestions come from new finder calls of K sweeps each
    instead (`lr_find(sweeps=K)`, as many calls as the run saved, with its order seeds),
    and the finder's time is the first call's; the fits are looked up and trained as above.
    """
    if "curves" not in saved or saved.get("seed", args.seed) != args.seed:
        raise SystemExit("--rescore needs runs saved with their curves (since run 7) and the "
                         f"same --seed ({args.seed}) as they ran with")
    if saved.get("sweeps_per_find", 1) > 1 and not args.sweeps_per_find:
        raise SystemExit(f"--rescore: these runs' suggestions average {saved['sweeps_per_find']} "
                         "sweeps each, their saved curves are the first sweeps': give "
                         "--sweeps-per-find to sweep again")
    runner = runner_for(task, fold, args.seed)
    if args.sweeps_per_find:
        seeds = [args.seed] + [args.seed + 1000 + k for k in range(len(saved["curves"]) - 1)]
        t0 = time.perf_counter()
        results = [runner.sweep(seeds[0], sweeps=args.sweeps_per_find)]
        saved["t_find"] = time.perf_counter() - t0
        results += [runner.sweep(seed, sweeps=args.sweeps_per_find) for seed in seeds[1:]]
        saved["sweeps_per_find"] = args.sweeps_per_find
        saved["curves"] = [{"lrs": r.lrs, "losses": r.losses} for r in results]
        saved["call_curves"] = [[{"lrs": s.lrs, "losses": s.losses} for s in r.per_sweep]
                                for r in results]
    else:
        results = [LRFindResult.from_curve(c["lrs"], c["losses"]) for c in saved["curves"]]
    saved["sweeps"] = [r.suggestions for r in results]
    saved["suggestions"] = results[0].suggestions
    for epochs, row in saved["budgets"].items():
        trained = {f"{lr:.6g}": row["scores"][name] for name, lr in row["lrs"].items()}
        trained.update({f"{float(name[5:]):.6g}": score for name, score in row["scores"].items()
                        if name.startswith("grid ")})

        def scored(lr):
            key = f"{lr:.6g}"
            if key not in trained:
                trained[key] = runner.score(lr, int(epochs))
            return trained[key]

        for rule in RULES:
            raw = results[0].suggestions[rule]
            for name, lr in ((rule, raw), (f"{rule}+b", raw * budget_factor(row["planned_steps"]))):
                row["lrs"][name] = lr
                row["scores"][name] = scored(lr) if math.isfinite(lr) else float("nan")
        record = _confirm(runner, results[0].suggestions, len(results[0].lrs),
                          row["planned_steps"])
        row["confirm"], row["lrs"]["confirm"] = record, record["chosen"]
        row["scores"]["confirm"] = scored(record["chosen"])
    return saved


def steadiness(task, fold, args):
    """`--sweeps-per-find K`: `args.sweeps` finder calls of K sweeps each (other batch
    orders), and one call of one sweep for its cost; no fits. Returns each call's time,
    combined suggestions and every sweep's curve."""
    runner = runner_for(task, fold, args.seed)
    t0 = time.perf_counter()
    runner.sweep(args.seed + 999)
    out = {"seed": args.seed, "t_one_sweep": time.perf_counter() - t0, "calls": []}
    for k in range(args.sweeps):
        t0 = time.perf_counter()
        result = runner.sweep(args.seed + 1000 * (k + 1), sweeps=args.sweeps_per_find)
        out["calls"].append({
            "seconds": time.perf_counter() - t0, "suggestions": result.suggestions,
            "curves": [{"lrs": r.lrs, "losses": r.losses} for r in result.per_sweep or [result]],
        })
    return out


def _spread(values):
    values = [v for v in values if math.isfinite(v) and v > 0]
    return max(values) / min(values) if values else math.nan


def steadiness_table(results, per_find):
    """Each rule's spread over the calls: their first sweeps alone, and all `per_find`."""
    head = " | ".join(f"{rule}: 1 / {per_find}" for rule in RULES)
    lines = [f"| task | {head} | s per call: 1 / {per_find} sweeps |",
             "| --- | " + " | ".join("---" for _ in RULES) + " | --- |"]
    counts = {rule: [0, 0] for rule in RULES}
    for name, (_, out) in results.items():
        cells = []
        for rule in RULES:
            one = _spread([LRFindResult.from_curve(c["curves"][0]["lrs"],
                                                   c["curves"][0]["losses"]).suggestions[rule]
                           for c in out["calls"]])
            many = _spread([c["suggestions"][rule] for c in out["calls"]])
            counts[rule][0] += one <= 1.5
            counts[rule][1] += many <= 1.5
            cells.append(f"x{one:.2f} / x{many:.2f}")
        seconds = float(np.mean([c["seconds"] for c in out["calls"]]))
        lines.append(f"| {name} ({len(out['calls'])} calls) | " + " | ".join(cells)
                     + f" | {out['t_one_sweep']:.1f} / {seconds:.1f} |")
    lines.append("| within 1.5x | " + " | ".join(
        f"{one} / {many} of {len(results)}" for one, many in counts.values()) + " | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reports
def _candidates():
    return [name for rule in RULES for name in (rule, f"{rule}+b")]


def summarise(results, budgets):
    """Per task-budget pair: mean scores over folds, best grid, and each candidate's gap.

    A budget a task was not run with is left out for that task (runs of different budgets
    combine in one report).
    """
    pairs = {}
    for name, (family, folds) in results.items():
        for epochs in budgets:
            if any(epochs not in f["budgets"] for f in folds):
                continue
            rows = [f["budgets"][epochs]["scores"] for f in folds]
            # A rule newer than a saved run has no score there: nan (`--rescore` adds it).
            keys = {*rows[0], *_candidates()}
            mean = {k: float(np.nanmean([r.get(k, math.nan) for r in rows])) for k in keys}
            grid = {k: v for k, v in mean.items() if k.startswith("grid")}
            best = max(grid, key=grid.get)
            pairs[(name, epochs)] = {
                "family": family, "mean": mean, "best": best, "best_score": grid[best],
                "gaps": {c: grid[best] - mean[c] for c in [*_candidates(), "confirm"]},
                "lrs": {c: [f["budgets"][epochs]["lrs"].get(c, math.nan) for f in folds]
                        for c in [*_candidates(), "confirm"]},
                "confirm_s": float(np.mean([f["budgets"][epochs]["confirm"]["seconds"]
                                            for f in folds])),
                "find_s": float(np.mean([f["t_find"] for f in folds])),
            }
    return pairs


def _fit_rule(pairs, families):
    """The candidate with the fewest pairs > 1 pt off (then smallest mean gap) on `families`."""
    def cost(candidate):
        gaps = [p["gaps"][candidate] for p in pairs.values() if p["family"] in families]
        gaps = [g if math.isfinite(g) else 100.0 for g in gaps]
        return (sum(g > 1.0 for g in gaps), float(np.mean(gaps)) if gaps else 0.0)
    return min(_candidates(), key=cost)


def leave_one_family_out(pairs):
    families = sorted({p["family"] for p in pairs.values()})
    lines = ["| held-out family | rule fitted on the others | its gaps on the held-out pairs |",
             "| --- | --- | --- |"]
    held_gaps = []
    for family in families:
        others = [f for f in families if f != family]
        rule = _fit_rule(pairs, others) if others else DEFAULT_SUGGESTION
        gaps = [(name, epochs, p["gaps"][rule]) for (name, epochs), p in pairs.items()
                if p["family"] == family]
        held_gaps += [g for _, _, g in gaps]
        lines.append(f"| {family} | {rule} | "
                     + ", ".join(f"{n} {e}ep {g:+.2f}" for n, e, g in gaps) + " |")
    within1 = sum(g <= 1.0 for g in held_gaps)
    lines.append(f"\nHeld-out pairs within 1 pt: {within1}/{len(held_gaps)}; within 2 pt: "
                 f"{sum(g <= 2.0 for g in held_gaps)}/{len(held_gaps)}; fitted on all "
                 f"families: {_fit_rule(pairs, families)}")
    return "\n".join(lines)


def every_rule_table(pairs):
    cands = [*_candidates(), "confirm"]
    lines = ["| task | epochs | best grid | " + " | ".join(cands) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in cands) + " |"]
    for (name, epochs), p in pairs.items():
        cells = []
        for c in cands:
            lr = float(np.exp(np.mean(np.log(p["lrs"][c])))) if all(
                v > 0 and math.isfinite(v) for v in p["lrs"][c]) else float("nan")
            cells.append(f"{p['mean'][c]:.1f} ({p['gaps'][c]:+.1f}) @{lr:.1e}")
        lines.append(f"| {name} | {epochs} | {p['best_score']:.1f} @{p['best'][5:]} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def stability_table(results):
    lines = ["| task | " + " | ".join(RULES) + " |", "| --- | " + " | ".join("---" for _ in RULES)
             + " |"]
    for name, (_, folds) in results.items():
        sweeps = folds[0]["sweeps"]
        cells = []
        for rule in RULES:
            values = [s[rule] for s in sweeps if math.isfinite(s.get(rule, math.nan))]
            cells.append(f"x{max(values) / min(values):.2f}" if values else "n/a")
        lines.append(f"| {name} ({len(sweeps)} sweeps) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def confirm_table(pairs):
    lines = ["| task | epochs | finder s | confirm s | cost x | default gap | confirm gap |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (name, epochs), p in pairs.items():
        lines.append(
            f"| {name} | {epochs} | {p['find_s']:.1f} | {p['confirm_s']:.1f} | "
            f"{p['confirm_s'] / p['find_s']:.2f} | {p['gaps'][DEFAULT_SUGGESTION]:+.2f} | "
            f"{p['gaps']['confirm']:+.2f} |"
        )
    return "\n".join(lines)


def _at_least_one(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=None, choices=list(TASKS))
    parser.add_argument("--quick", action="store_true",
                        help="small tasks only (unless --tasks), one fold")
    parser.add_argument("--folds", type=int, default=None, help="CV folds (default 3; quick 1)")
    parser.add_argument("--budgets", type=int, nargs="+", default=None,
                        help="epochs of the short and long fits (default 3 10; with --report "
                             "every budget the saved runs hold)")
    parser.add_argument("--sweeps", type=int, default=SWEEPS,
                        help="finder sweeps per task for the stability figures")
    parser.add_argument("--sweeps-per-find", type=_at_least_one, default=None, metavar="K",
                        help="alone: steadiness only (no fits, fold 0): --sweeps finder calls "
                             "of K sweeps each, every rule's spread over their first sweeps "
                             "beside its spread over all K (lr_find(sweeps=K)); with "
                             "--rescore: suggestions from new calls of K sweeps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DATA_DIR,
                        help="folder of wordnet_lexnames_*.csv.gz and debian_en_it_*.csv.gz")
    parser.add_argument("--images", default=IMAGES_DIR,
                        help="folder of the Fashion-MNIST IDX files (see vision.py)")
    parser.add_argument("--wordnet-val", choices=["random", "first"], default="random",
                        help="the WordNet tasks' 4,000 validation texts: a seeded random "
                             "sample, or the file's first (8 noun classes; runs 3-9)")
    parser.add_argument("--save", default=None, help="folder for the raw results (JSON)")
    parser.add_argument("--report", nargs="+", default=None, metavar="FOLDER",
                        help="only print the tables for the results saved in these folders "
                             "(runs of different tasks combined, e.g. for leave-one-family-out)")
    parser.add_argument("--rescore", default=None, metavar="FOLDER",
                        help="read the sweeps saved in FOLDER with today's rules and "
                             "confirming pass, training only rates not trained before "
                             "(each task with the folds it was saved with), then report")
    args = parser.parse_args()
    if args.report:
        saved = _load(args.report)
        held = sorted({epochs for _, folds in saved.values() for fold in folds
                       for epochs in fold["budgets"]})
        if args.budgets is not None and not set(args.budgets) & set(held):
            raise SystemExit(f"--budgets {args.budgets}: the saved runs hold {held}")
        report(saved, args.budgets or held)
        return
    args.budgets = args.budgets or [3, 10]
    if args.folds is None:
        args.folds = 1 if args.quick else 3
    if args.rescore:
        saved = _load([args.rescore])
        results = {}
        for name, (family, folds) in saved.items():
            if args.tasks is None or name in args.tasks:
                task = TASKS[name][1](argparse.Namespace(**{**vars(args), "folds": len(folds)}))
                results[name] = (family, [rescore(task, fold, done, args)
                                          for fold, done in zip(task["folds"], folds)])
                _save(args.save, name, {"family": family, "about": task["about"],
                                        "folds": results[name][1]})
        report(results, args.budgets)
        return
    tasks = args.tasks or (QUICK_TASKS if args.quick else list(TASKS))
    if args.sweeps_per_find:
        results = {}
        for name in tasks:
            t0 = time.perf_counter()
            family, make = TASKS[name]
            task = make(args)
            results[name] = (family, steadiness(task, task["folds"][0], args))
            print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
            _save(args.save, name, {"family": family, "about": task["about"],
                                    "steadiness": results[name][1]})
        print(steadiness_table(results, args.sweeps_per_find))
        return
    print(f"# LR finder suite: {platform.machine()}, {os.cpu_count()} CPUs, TF "
          f"{tf.__version__}, Keras {keras.__version__}; tasks {tasks}; folds {args.folds}; "
          f"budgets {args.budgets} epochs; {args.sweeps} sweeps.", flush=True)
    start = time.perf_counter()
    results = {}
    for name in tasks:
        t0 = time.perf_counter()
        family, make = TASKS[name]
        task = make(args)
        folds = [run_fold(task, fold, args) for fold in task["folds"]]
        results[name] = (family, folds)
        print(f"  {name} [{family}] {task['about']}: {time.perf_counter() - t0:.0f} s", flush=True)
        _save(args.save, name, {"family": family, "about": task["about"], "folds": folds})
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")
    report(results, args.budgets)


def _save(folder, name, record):
    """Write one task's `record` to `folder/name.json` (nothing when `folder` is None)."""
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.json"), "w") as f:
            json.dump(record, f, default=str)


def _load(folders):
    """Results saved by `--save` runs, keyed by task name.

    A task saved in several folders with other budgets (e.g. a run of 3 epochs and a later
    one of 10) is merged into one entry: each budget keeps the scores and rates of the run
    that made it (a later folder wins a budget both hold); the sweeps of the stability table
    and the finder's time beside the confirming pass are the later folder's. A later run of
    other data or folds (e.g. a 3-fold rerun of a 1-fold task) replaces the earlier one
    whole, and a line says so.
    """
    results, abouts = {}, {}
    for folder in folders:
        for file in sorted(os.listdir(folder)):
            if not file.endswith(".json"):
                continue
            with open(os.path.join(folder, file)) as f:
                data = json.load(f)
            if "steadiness" in data:
                raise SystemExit(f"{folder} holds a --sweeps-per-find run without --rescore "
                                 "(spreads, no fits): rerun it to see its table")
            for fold in data["folds"]:
                fold["budgets"] = {int(k): v for k, v in fold["budgets"].items()}
            name = file[:-5]
            if name in results:
                earlier = results[name][1]
                if len(earlier) != len(data["folds"]) or abouts[name] != data["about"]:
                    print(f"# {name}: {folder} ran other data or folds ({data['about']}); "
                          "its run replaces the earlier folders'")
                else:
                    for old, new in zip(earlier, data["folds"]):
                        new["budgets"] = {**old["budgets"], **new["budgets"]}
            results[name] = (data["family"], data["folds"])
            abouts[name] = data["about"]
    return results


def report(results, budgets):
    """Print every table for `{task: (family, folds)}`."""
    pairs = summarise(results, budgets)
    print("\n## Every rule on every task-budget "
          "pair: val acc % (gap to best grid, pt) @ rate (geometric mean over folds)\n")
    print(every_rule_table(pairs))
    print("\n## Leave-one-family-out choice of the default rule\n")
    print(leave_one_family_out(pairs))
    print("\n## Spread of each rule's suggestion over sweeps with different batch orders "
          "(largest / smallest)\n")
    print(stability_table(results))
    print("\n## Confirming pass: cost beside the finder, gain\n")
    print(confirm_table(pairs))


if __name__ == "__main__":
    main()
