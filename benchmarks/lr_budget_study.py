"""How strongly the default suggestion should follow the fit's length, on saved suite runs.

`ktlite.lr.budget` scales a suggestion for the planned fit by
`(REFERENCE_STEPS / planned_steps) ** BUDGET_EXPONENT` (within `MAX_FACTOR` either way);
`benchmarks/lr_finder.py` trained every pair at `basin` unscaled (exponent 0) and at the
library's exponent (`basin+b`), beside the grid. This script takes the `basin` each fold
trained (read off the first sweep of the run that made that budget's scores), scales it
with other exponents, and scores the rate by interpolating that
fold's measured scores in log-rate (`lr_rule_study.score_at`; the grid and every rate the
run trained), then averages the folds as `lr_finder.py --report` does: **an estimate, not
a fit**. It prints every exponent's gaps and the leave-one-family-out choice (the exponent
with the fewest pairs more than 1 point off on the other families, then the smallest mean
gap). Folders combine as in `lr_finder.py --report` (a later folder wins; a rerun with
other folds replaces a task whole):

    python benchmarks/lr_budget_study.py benchmarks/saved/lr_finder_run7/lrA_c \
        benchmarks/saved/lr_finder_run7/lrB benchmarks/saved/lr_finder_run8/lrC \
        benchmarks/saved/lr_finder_run8/lrD benchmarks/saved/lr_finder_run8/lrE \
        benchmarks/saved/lr_finder_run9/lrF benchmarks/saved/lr_finder_run10/lrW \
        benchmarks/saved/lr_finder_run11/lrX benchmarks/saved/lr_finder_run11/lrY

`--fit E [E ...] --tasks NAME ...` checks the estimate: it trains every fold of each named
task (same data, seed and initial weights as the saved run) at `basin` scaled with each
exponent for every saved budget, and prints the fitted mean beside the estimate (the
scikit-learn and table tasks repeat exactly on a machine; text and image fits move by up
to a point between runs at one rate).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys

import numpy as np

from ktlite.lr.budget import MAX_FACTOR, REFERENCE_STEPS

from lr_finder import DATA_DIR, IMAGES_DIR, TASKS, _load, runner_for, summarise
from lr_rule_study import measured_points, score_at

EXPONENTS = (0.0, 0.125, 0.25, 0.375, 0.5)


def factor(exponent, planned):
    """`ktlite.lr.budget.budget_factor` with another exponent."""
    return min(MAX_FACTOR, max(1.0 / MAX_FACTOR, (REFERENCE_STEPS / planned) ** exponent))


def pairs(results, exponents):
    """`{(task, epochs): {"family", "best", "folds": [(basin, planned, points)], "gaps"}}`
    for every pair `lr_finder.summarise` scores (its best grid rate's mean over folds)."""
    budgets = sorted({e for _, folds in results.values() for f in folds for e in f["budgets"]})
    out = {}
    for (name, epochs), summary in summarise(results, budgets).items():
        rows = [f["budgets"][epochs] for f in results[name][1]]
        best = summary["best_score"]
        per_fold = [(r["lrs"]["basin"], r["planned_steps"], measured_points(r)) for r in rows]
        if all(math.isfinite(basin) for basin, _, _ in per_fold):
            gaps = {e: best - float(np.mean([score_at(points, basin * factor(e, planned))
                                             for basin, planned, points in per_fold]))
                    for e in exponents}
        else:  # no suggestion to scale: a miss, 100 points (as lr_finder's rule choice)
            gaps = dict.fromkeys(exponents, 100.0)
        out[(name, epochs)] = {"family": summary["family"], "best": best,
                               "folds": per_fold, "gaps": gaps}
    return out


def report(by_pair, exponents):
    print("| exponent | within 1 pt | within 2 pt | mean gap | pairs beyond 1 pt |")
    print("| --- | --- | --- | --- | --- |")
    for e in exponents:
        gaps = {key: p["gaps"][e] for key, p in by_pair.items()}
        beyond = ", ".join(f"{n} {ep} {g:+.1f}" for (n, ep), g in gaps.items() if g > 1.0)
        print(f"| {e:g} | {sum(g <= 1 for g in gaps.values())} of {len(gaps)} | "
              f"{sum(g <= 2 for g in gaps.values())} | {np.mean(list(gaps.values())):+.2f} | "
              f"{beyond or '-'} |")
    families = sorted({p["family"] for p in by_pair.values()})
    print("\n| held-out family | exponent chosen on the others | its gaps |")
    print("| --- | --- | --- |")
    held = []
    for family in families:
        def cost(e):
            gaps = [p["gaps"][e] for p in by_pair.values() if p["family"] != family]
            return (sum(g > 1.0 for g in gaps), float(np.mean(gaps)))
        chosen = min(exponents, key=cost)
        gaps = [(n, ep, p["gaps"][chosen]) for (n, ep), p in by_pair.items()
                if p["family"] == family]
        held += [g for _, _, g in gaps]
        print(f"| {family} | {chosen:g} | "
              + ", ".join(f"{n} {ep}ep {g:+.2f}" for n, ep, g in gaps) + " |")
    print(f"\nHeld-out pairs within 1 pt: {sum(g <= 1 for g in held)} of {len(held)}; "
          f"within 2 pt: {sum(g <= 2 for g in held)}")


def fit(by_pair, results, exponents, names, data, images):
    """Train every fold of `names` at each exponent's rate; print fitted vs estimated."""
    print("| task | epochs | exponent | rates | fitted | estimated | best grid | gap fitted |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        folds = results[name][1]
        options = argparse.Namespace(folds=len(folds), seed=folds[0].get("seed", 0),
                                     data=data or DATA_DIR, images=images or IMAGES_DIR)
        task = TASKS[name][1](options)
        runners = [runner_for(task, fold, options.seed) for fold in task["folds"]]
        for (task_name, epochs), pair in by_pair.items():
            if task_name != name:
                continue
            for e in exponents:
                rates = [basin * factor(e, planned) for basin, planned, _ in pair["folds"]]
                fitted = float(np.mean([runner.score(lr, epochs)
                                        for runner, lr in zip(runners, rates)]))
                print(f"| {name} | {epochs} | {e:g} | "
                      + " ".join(f"{lr:.2e}" for lr in rates)
                      + f" | {fitted:.1f} | {pair['best'] - pair['gaps'][e]:.1f} | "
                      f"{pair['best']:.1f} | {pair['best'] - fitted:+.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders saved by lr_finder.py --save")
    parser.add_argument("--fit", type=float, nargs="+", default=None, metavar="E",
                        help="train --tasks at these exponents' rates")
    parser.add_argument("--tasks", nargs="+", default=[], help="tasks for --fit")
    parser.add_argument("--data", default=None, help="as lr_finder.py's --data")
    parser.add_argument("--images", default=None, help="as lr_finder.py's --images")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # _load's notes on replaced runs
        results = _load(args.folders)
    if args.fit:
        unknown = sorted(set(args.tasks) - set(results))
        if not args.tasks or unknown:
            parser.error(f"--fit needs --tasks saved in the folders (not saved: {unknown})")
        fit(pairs(results, args.fit), results, args.fit, args.tasks, args.data, args.images)
        return
    report(pairs(results, EXPONENTS), EXPONENTS)


if __name__ == "__main__":
    main()
