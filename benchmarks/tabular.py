"""Cross-validated accuracy of ktlite's table models beside scikit-learn baselines.

Data: scikit-learn's bundled data sets (no download): breast_cancer, wine, digits (8x8
pixels as 64 numeric columns) for classification, diabetes for regression. Each is split
into `--folds` stratified (regression: plain) folds with a fixed seed; every model trains
on the other folds and is scored on the held-out one. ktlite tunes nothing on the test
fold: `tabular_from_array` gets the training folds only (its own validation split is not
used for selection), `fit_onecycle` runs a fixed number of epochs, and the test fold is
predicted once at the end.

Baselines: `HistGradientBoostingClassifier` / `Regressor` (defaults) and standardized
`LogisticRegression` / `Ridge`. Target (issue 10): the default table model
(`"ft_transformer"`) within 2 points of gradient boosting's accuracy on every
classification set.

Usage:
    python benchmarks/tabular.py [--folds 5] [--epochs 40] [--lr 1e-3]
        [--models ft_transformer,mlp] [--datasets breast_cancer,wine,digits,diabetes]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error  # noqa: E402
from sklearn.model_selection import KFold, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

LOADERS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "digits": datasets.load_digits,
    "diabetes": datasets.load_diabetes,
}
REGRESSION = {"diabetes"}


def baselines(regression: bool) -> dict[str, object]:
    if regression:
        return {
            "hist_gbm": HistGradientBoostingRegressor(random_state=0),
            "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        }
    return {
        "hist_gbm": HistGradientBoostingClassifier(random_state=0),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
    }


def ktlite_model(name: str, x_train, y_train, x_test, y_test, args) -> np.ndarray:
    import keras

    import ktlite
    from ktlite import tabular

    keras.utils.set_random_seed(args.seed)
    # The test fold is passed as the loader's validation data only so that every training
    # row is used for training; it is never seen before the final prediction.
    trn, _, preproc = tabular.tabular_from_array(
        x_train, y_train, x_test, y_test, verbose=0,
        label_mode="regression" if y_train.dtype.kind == "f" else "multiclass",
    )
    build = tabular.tabular_regressor if preproc.label_mode == "regression" else (
        tabular.tabular_classifier
    )
    model = build(name, trn, preproc=preproc, verbose=0)
    learner = ktlite.get_learner(model, train_data=trn, batch_size=args.batch_size, verbose=0)
    learner.fit_onecycle(args.lr, args.epochs, verbose=0)
    predictor = ktlite.get_predictor(learner.model, preproc, batch_size=256)
    return np.asarray(predictor.predict(x_test))


def score(regression: bool, y_true, y_pred) -> dict[str, float]:
    if regression:
        y_pred = np.asarray(y_pred, dtype=float)
        return {
            "mae": mean_absolute_error(y_true, y_pred),
            "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        }
    return {"accuracy": accuracy_score(y_true, np.asarray(y_pred).astype(y_true.dtype))}


def run(dataset: str, args) -> dict[str, dict[str, list[float]]]:
    x, y = LOADERS[dataset](return_X_y=True)
    regression = dataset in REGRESSION
    if regression:
        y = y.astype(np.float64)
        folds = KFold(args.folds, shuffle=True, random_state=args.seed).split(x)
    else:
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(x, y)
    results: dict[str, dict[str, list[float]]] = {}
    for train_idx, test_idx in folds:
        x_tr, x_te, y_tr, y_te = x[train_idx], x[test_idx], y[train_idx], y[test_idx]
        for name, estimator in baselines(regression).items():
            start = time.perf_counter()
            pred = estimator.fit(x_tr, y_tr).predict(x_te)
            row = results.setdefault(name, {})
            for key, value in {**score(regression, y_te, pred),
                               "seconds": time.perf_counter() - start}.items():
                row.setdefault(key, []).append(value)
        for name in args.models:
            start = time.perf_counter()
            pred = ktlite_model(name, x_tr, y_tr, x_te, y_te, args)
            row = results.setdefault(f"ktlite {name}", {})
            for key, value in {**score(regression, y_te, pred),
                               "seconds": time.perf_counter() - start}.items():
                row.setdefault(key, []).append(value)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="ft_transformer,mlp")
    parser.add_argument("--datasets", default=",".join(LOADERS))
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    print(f"{args.folds}-fold CV, {args.epochs} epochs, lr {args.lr}, batch {args.batch_size}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| data set | model | metric (mean ± std over folds) | s / fold |")
    print("| --- | --- | --- | --- |")
    for dataset in args.datasets.split(","):
        results = run(dataset, args)
        for model, row in results.items():
            metrics = ", ".join(
                f"{key} {np.mean(values):.4f} ± {np.std(values):.4f}"
                for key, values in row.items() if key != "seconds"
            )
            print(f"| {dataset} | {model} | {metrics} | {np.mean(row['seconds']):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
