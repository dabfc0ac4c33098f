"""Masked-LM pretraining on unlabeled WordNet glosses, then fine-tuning with few or all labels.

Issue 14 targets: pretrain on the 93,822 training texts *without their labels* for at most
30 minutes on 2 cores, then fine-tune with (a) all labels (target >= 0.84 test accuracy) and
(b) 1,000 stratified labels (target >= from-scratch + 10 points and above TF-IDF), each beside
the same Transformer trained from scratch and TF-IDF + LinearSVC on the same labels. Also:
the masked-token accuracy curve, and how (a) and (b) move with the pretraining budget.

For each budget (`--budgets`, plus `--minutes`), a separate one-cycle pretraining run is
planned from the measured step rate to end on time; the masked-token accuracy on 2,000
held-out test texts is printed after every chunk of steps. Every classifier is scored on the
test split; validation data for `fine_tune` / `fit_onecycle` is 10% of the labeled texts.

Data: `wordnet_lexnames_{train,test}.csv.gz` (columns id, label, text), built from WordNet
3.0 by `make_wordnet_lexnames.py` (in ktlite's shared data folder; it reads Debian's
wordnet-base files and splits synsets 80/10/10 by hash; gzip the CSVs it writes).

Usage:
    python benchmarks/pretrain.py --train ../shared/data/wordnet_lexnames_train.csv.gz \\
        --test ../shared/data/wordnet_lexnames_test.csv.gz --minutes 30 --budgets 5,15
    python benchmarks/pretrain.py --train ... --test ... --minutes 30 --budgets "" --settings b
    python benchmarks/pretrain.py --train ... --test ... --quick     # about 5 minutes
    # Pretrain once, then try fine-tuning settings on the saved backbone:
    python benchmarks/pretrain.py --train ... --test ... --budgets "" --settings b \
        --save-backbone /tmp/backbone30
    python benchmarks/pretrain.py --train ... --test ... --backbone /tmp/backbone30 \
        --settings a --epochs-a 5 --no-scratch
    # Other pretraining or classifier settings (run 6's probes):
    python benchmarks/pretrain.py --train ... --test ... --minutes 5 --budgets "" \
        --settings b --no-scratch --pretrain-set mask_rate=0.3 --dropout 0.0
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

from make_wordnet_lexnames import read_split  # noqa: E402


def stratified(labels: list[str], n: int, seed: int) -> np.ndarray:
    """Indices of `n` examples keeping each class's share (at least one per class)."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    classes, counts = np.unique(labels_arr, return_counts=True)
    quota = np.maximum(1, np.round(counts / counts.sum() * n).astype(int))
    picked = [rng.choice(np.flatnonzero(labels_arr == c), size=min(q, cnt), replace=False)
              for c, q, cnt in zip(classes, quota, counts)]
    return np.sort(np.concatenate(picked))


def tfidf(x_train, y_train, x_test, y_test) -> float:
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2 if len(
        x_train) > 5000 else 1)
    classifier = LinearSVC(C=0.5).fit(vectorizer.fit_transform(x_train), y_train)
    return float(np.mean(classifier.predict(vectorizer.transform(x_test)) == np.asarray(y_test)))


def pretrain(texts, val_texts, minutes, batch_size, seed, peak_lr, settings):
    """One complete one-cycle pretraining run planned to last `minutes`; returns learner, curve.

    `settings` go to `text.pretrain` (model sizes, `mask_rate`, `dropout`, `whole_word`)."""
    import keras

    from ktlite import text

    keras.utils.set_random_seed(seed)
    learner = text.pretrain(texts, val_texts=val_texts, batch_size=batch_size, seed=seed,
                            verbose=0, **settings)
    start = time.perf_counter()
    # Plan from what the run itself does: one fit call of many chunks, each chunk a number
    # of steps and a validation. Warm-up fits at a low rate, of three short epochs each (10
    # and 60 steps), give the seconds per step and per validation, each timed on its own
    # in the steady epochs (the second and third), and the fit call's own cost from the
    # rest. Run 2 planned from the whole time of two one-epoch fits and overran 30 minutes
    # by 60%; runs 3-4 took a step's cost from the difference of whole 10- and 40-step
    # epochs, which a validation's noise swamps: from 105 to 270 ms a step on one machine.
    train_s, val_s, fits_s = [], [], []

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.t1 = time.perf_counter()
            train_s[-1].append(self.t1 - self.t0)

        def on_test_end(self, logs=None):
            val_s[-1].append(time.perf_counter() - self.t1)

    learner.fit(1e-4, 1, steps_per_epoch=10, verbose=0)  # traces the step
    for steps in (10, 60):
        train_s.append([])
        val_s.append([])
        t0 = time.perf_counter()
        learner.fit(1e-4, 3, steps_per_epoch=steps, callbacks=[EpochTimes()], verbose=0)
        fits_s.append(time.perf_counter() - t0)
    step_s = max(1e-4, float(np.mean(train_s[1][1:])) / 60)
    validation_s = float(np.mean(val_s[0][1:] + val_s[1][1:]))
    call_s = max(0.0, fits_s[1] - sum(train_s[1]) - 3 * validation_s)
    # A curve point a minute (a chunk of 60 s of steps); short budgets get about 4 in all.
    chunk = max(20, int(min(60, minutes * 15) / step_s))
    left = minutes * 60 - (time.perf_counter() - start) - call_s
    chunks = max(1, int(left / (chunk * step_s + validation_s)))
    print(f"  planner: {step_s * 1e3:.0f} ms a step, {validation_s:.1f} s a validation, "
          f"{call_s:.1f} s a fit call; {chunks} chunks of {chunk} steps planned in the "
          f"{left / 60:.1f} minutes left", flush=True)
    curve = []

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append((time.perf_counter() - start, logs["val_masked_accuracy"]))
            print(f"  pretrain {curve[-1][0] / 60:5.1f} min  masked-token accuracy "
                  f"{curve[-1][1]:.3f}", flush=True)

    learner.fit_onecycle(peak_lr, chunks, steps_per_epoch=chunk, callbacks=[Curve()], verbose=0)
    return learner, curve


def accuracy(x, y, x_test, y_test, backbone, epochs, freeze_epochs, seed, lr, dropout,
             holdout, lr_mult=None):
    """Test accuracy of the Transformer fine-tuned from `backbone` with `lr_mult` or, when
    `lr_mult` is None, trained from scratch on the backbone's vocabulary as many epochs; and
    the rate it trained at (`lr`, else `lr_find`'s suggestion).

    `holdout` is the share of `x` kept for validation; at 0 the model trains on all of `x`
    (as TF-IDF does) and fits without validation data."""
    pretrained = lr_mult is not None
    import keras

    import ktlite
    from ktlite import text

    keras.utils.set_random_seed(seed)
    trn, val, preproc = text.texts_from_array(x, y, backbone=backbone, val_pct=holdout,
                                              verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0,
                                 dropout=dropout, backbone=backbone if pretrained else None)
    learner = ktlite.get_learner(model, trn, val, batch_size=32, verbose=0)
    if pretrained:
        learner.fine_tune(epochs, base_lr=lr, freeze_epochs=freeze_epochs, lr_mult=lr_mult,
                          verbose=0)
        rate = lr if lr is not None else learner.lr_result.suggestion
    else:
        rate = lr if lr is not None else learner.lr_find(verbose=0).suggestion
        learner.fit_onecycle(rate, epochs + freeze_epochs, verbose=0)
    predictor = ktlite.get_predictor(learner.model, preproc)
    predicted = np.asarray(predictor.predict(list(x_test)))
    return float(np.mean(predicted == np.asarray(y_test))), float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=Path("../shared/data/"
                                                           "wordnet_lexnames_train.csv.gz"))
    parser.add_argument("--test", type=Path, default=Path("../shared/data/"
                                                          "wordnet_lexnames_test.csv.gz"))
    parser.add_argument("--minutes", type=float, default=30.0, help="main pretraining budget")
    parser.add_argument("--budgets", default="5,15", help="smaller budgets, comma-separated")
    parser.add_argument("--few", type=int, default=1000, help="labels for setting (b)")
    parser.add_argument("--settings", default="a,b",
                        help="which fine-tuning settings to run: a (all labels), b (--few "
                        "labels) or both (default a,b; (a) costs about an hour on 2 cores)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr-mult", default="10",
                        help="fine_tune's lr_mult (each >= 1), comma-separated to compare "
                        "several (probe 2: 1 beat 10 from a 4%% backbone; run 3: 10 beat 1 "
                        "from a 31%% one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3,
                        help="peak rate of the one-cycle pretraining (default 1e-3)")
    parser.add_argument("--pretrain-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of text.pretrain, repeatable: embed_dim, num_heads, "
                        "num_layers, ff_dim (int), dropout, mask_rate (float), whole_word "
                        "(0 or 1)")
    parser.add_argument("--lr", type=float, default=None,
                        help="classifier rate; default: lr_find's suggestion")
    parser.add_argument("--dropout", type=float, default=0.1,
                        help="the classifiers' dropout (text_classifier's default 0.1)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="share of the labeled texts kept for validation while fitting "
                        "(default 0.1, runs 1-7); 0 trains on every label, as TF-IDF does")
    parser.add_argument("--epochs-a", type=int, default=3,
                        help="fine_tune epochs after the frozen one in setting (a); from "
                        "scratch trains one more")
    parser.add_argument("--save-backbone", type=Path, default=None,
                        help="save the backbone of the largest budget in this folder")
    parser.add_argument("--backbone", type=Path, default=None,
                        help="fine-tune this saved backbone instead of pretraining "
                        "(--minutes and --budgets are then unused)")
    parser.add_argument("--no-scratch", action="store_true",
                        help="skip the from-scratch models (half of setting (a)'s time)")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 texts, a 30-second budget (the planner's warm-up alone "
                        "takes longer), one epoch: proves it runs")
    args = parser.parse_args()

    x_train, y_train = read_split(args.train)
    x_test, y_test = read_split(args.test)
    budgets = sorted({float(b) for b in args.budgets.split(",") if b} | {args.minutes})
    settings = {s.strip() for s in args.settings.split(",")}
    if not settings or not settings <= {"a", "b"}:
        parser.error(f"--settings must name a, b or both. Received: {args.settings!r}")
    try:
        mults = [float(m) for m in args.lr_mult.split(",") if m]
    except ValueError:
        mults = []
    if not mults or not all(np.isfinite(m) and m >= 1 for m in mults):
        parser.error("--lr-mult must name one or more rate ratios >= 1, comma-separated. "
                     f"Received: {args.lr_mult!r}")
    if not (np.isfinite(args.pretrain_lr) and args.pretrain_lr > 0):
        parser.error(f"--pretrain-lr must be a rate > 0. Received: {args.pretrain_lr}")
    kinds = {"embed_dim": int, "num_heads": int, "num_layers": int, "ff_dim": int,
             "dropout": float, "mask_rate": float, "whole_word": lambda v: bool(int(v))}
    pretrain_settings = {}
    for item in args.pretrain_set:
        key, _, value = item.partition("=")
        try:
            pretrain_settings[key] = kinds[key](value)
        except (KeyError, ValueError):
            parser.error(f"--pretrain-set takes KEY=VALUE with KEY one of {sorted(kinds)} "
                         f"and a number. Received: {item!r}")
    if not 0 <= args.holdout < 1:
        parser.error(f"--holdout must be in [0, 1). Received: {args.holdout}")
    if args.epochs_a < 1:
        parser.error(f"--epochs-a must be >= 1. Received: {args.epochs_a}")
    all_epochs, few_epochs = (args.epochs_a, 8)
    if args.quick:
        keep = stratified(y_train, 2000, args.seed)
        x_train, y_train = [x_train[i] for i in keep], [y_train[i] for i in keep]
        # The test file is ordered by part of speech: sample it, never take its head.
        pick = np.random.default_rng(args.seed).choice(len(x_test), min(500, len(x_test)),
                                                       replace=False)
        x_test, y_test = [x_test[i] for i in pick], [y_test[i] for i in pick]
        budgets, all_epochs, few_epochs = [0.5], 1, 1
        args.few, args.lr = min(args.few, 300), args.lr or 2e-3
    rng = np.random.default_rng(args.seed)
    val_texts = [x_test[i] for i in rng.choice(len(x_test), min(2000, len(x_test)), False)]
    if args.quick:
        val_texts = val_texts[:200]
    few = stratified(y_train, args.few, args.seed)
    x_few, y_few = [x_train[i] for i in few], [y_train[i] for i in few]
    print(f"{len(x_train):,} unlabeled training texts, {len(x_test):,} test texts, "
          f"{len(x_few)} labels in setting (b)")
    baselines = {"all": tfidf(x_train, y_train, x_test, y_test),
                 "few": tfidf(x_few, y_few, x_test, y_test)}
    labeled = {"a": ("all labels", x_train, y_train, all_epochs, 1, baselines["all"]),
               "b": (f"{len(x_few)} labels", x_few, y_few, few_epochs, 2, baselines["few"])}
    # From scratch is the same at every budget (the backbone only lends its vocabulary,
    # learned from the same texts each time): trained once per setting.
    scratch = {}
    rows = []

    def backbones():
        """(budget, masked-token accuracy, backbone) for each budget, or the saved one."""
        if args.backbone:
            from ktlite import text

            print(f"fine-tuning the backbone saved in {args.backbone}")
            yield 0.0, float("nan"), text.load_backbone(args.backbone)
            return
        for minutes in budgets:
            print(f"pretraining for {minutes:g} minutes")
            learner, curve = pretrain(x_train, val_texts, minutes, args.batch_size, args.seed,
                                      args.pretrain_lr, pretrain_settings)
            if args.save_backbone and minutes == max(budgets):
                learner.save_backbone(args.save_backbone)
            yield minutes, curve[-1][1] if curve else float("nan"), learner.backbone

    for minutes, masked, backbone in backbones():
        for key in [k for k in ("b", "a") if k in settings]:  # (b) first: minutes, not an hour
            name, x, y, epochs, freeze_epochs, tfidf_score = labeled[key]
            run = (x, y, x_test, y_test, backbone, epochs, freeze_epochs, args.seed,
                   args.lr, args.dropout, args.holdout)
            if key not in scratch:
                scratch[key] = float("nan") if args.no_scratch else accuracy(*run)[0]
            for mult in mults:
                score, rate = accuracy(*run, lr_mult=mult)
                rows.append((minutes, masked, key, mult, score, scratch[key], tfidf_score))
                print(f"  ({key}) {name}, lr_mult {mult:g}: pretrained {score:.3f} (rate "
                      f"{rate:.3g})  scratch {scratch[key]:.3f}  TF-IDF {tfidf_score:.3f}",
                      flush=True)
    print("\nbudget  masked-acc  setting  lr_mult  pretrained  scratch  TF-IDF")
    for minutes, acc, key, mult, score, scratch_score, tfidf_score in rows:
        print(f"{minutes:5g}m  {acc:10.3f}  {key:>7}  {mult:7g}  {score:10.3f}  "
              f"{scratch_score:7.3f}  {tfidf_score:6.3f}")


if __name__ == "__main__":
    main()
