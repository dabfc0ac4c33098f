"""Variants of the default LR suggestion, read off saved finder curves: gap and spread.

Issue 16 asks for a suggestion that moves by at most 1.5x over five sweeps and names three
ways to get there: more robust smoothing, a sweep that averages two passes, and reading the
curve's shape rather than one point. `benchmarks/lr_finder.py --save` keeps every sweep's
raw curve and every score it trained, so variants of `basin` can be measured on them without
sweeping or training again:

- `entry`: `basin` itself, generalised: the curve is the raw per-batch loss through a
  centred running median spanning 1/`frac` of the sweep on each side (`basin`: 20); the
  suggestion is the geometric mean of the rates where it first falls within each of
  `levels` (shares of the total drop above the minimum; `basin`: 0.05) of the bottom,
  divided by `backoff` (`basin`: 10**0.5), and held to 10x `descent` as `basin` is.
  A wider median (`frac` 10) is the robust smoothing; several levels average the entry.
- `shape`: the rates where the curve first falls through 40, 45, ..., 90% of its drop are
  regressed (log-rate on the level's logit) and extrapolated to 95%: the entry read off the
  whole descent instead of one crossing, then divided by `backoff`.
- `2 passes`: the variant on the mean of two sweeps' raw losses (each sweep with the next,
  cyclically: a stand-in for a finder that averages two passes of its own, 2x its cost).

Each variant's suggestion from a task's first sweep, scaled for the budget (`+b`, as the
default with `epochs`), is scored by interpolating that task-budget pair's measured scores
(the nine grid rates and every rate the run trained) linearly in log-rate: **an estimate,
not a fit** (a text task's score moves by up to a point at the same rate between runs).
Leave-one-family-out: within each kind, the parameters are chosen on the other families
(fewest pairs > 1 point off, then the smallest mean gap) and scored on the held-out one.

    python benchmarks/lr_rule_study.py benchmarks/saved/lr_finder_run7/lrA_c \
        benchmarks/saved/lr_finder_run7/lrB benchmarks/saved/lr_finder_run8/lrC \
        benchmarks/saved/lr_finder_run8/lrD benchmarks/saved/lr_finder_run8/lrE \
        benchmarks/saved/lr_finder_run9/lrF

`--fit VARIANT --tasks ...` checks the estimate: it trains each named task of
`benchmarks/lr_finder.py` (same data, fold, seed and initial weights as the saved run) at
the variant's budget-scaled rate for every saved budget, and prints the fitted score beside
the interpolated one (the scikit-learn and table tasks repeat exactly on a machine; the
text and image tasks move by up to a point between runs at one rate):

    python benchmarks/lr_rule_study.py FOLDERS... \
        --fit "entry frac 10, level 0.05, backoff 10^0.25" --tasks digits_mlp_adam wine_mlp_sgd
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os

import numpy as np

from ktlite.lr.budget import budget_factor
from ktlite.lr.suggest import _finite, _usable, running_median, suggest_descent

_LEVELS_SHAPE = np.arange(0.40, 0.90 + 1e-9, 0.05)


def load(folders):
    """`{task: {"family", "folds", "about", "seed", "pairs": {epochs: {...}}, "sweeps":
    [curve, ...]}}`: the first fold of each run; a later folder wins a budget both hold,
    its sweeps are the task's, and a later run of other data or folds replaces the earlier
    one whole (as `lr_finder.py --report`)."""
    tasks = {}
    for folder in folders:
        for file in sorted(f for f in os.listdir(folder) if f.endswith(".json")):
            with open(os.path.join(folder, file)) as f:
                data = json.load(f)
            fold = data["folds"][0]
            earlier = tasks.get(file[:-5], {})
            if (earlier.get("folds"), earlier.get("about")) != (len(data["folds"]),
                                                                data["about"]):
                tasks[file[:-5]] = {"family": data["family"], "folds": len(data["folds"]),
                                    "about": data["about"], "seed": fold.get("seed", 0),
                                    "pairs": {}}
            task = tasks[file[:-5]]
            task["sweeps"] = fold["curves"]
            for epochs, row in fold["budgets"].items():
                best = max(v for k, v in row["scores"].items() if k.startswith("grid "))
                task["pairs"][int(epochs)] = {"points": measured_points(row), "best": best,
                                              "planned": row["planned_steps"],
                                              "curves": fold["curves"][:2]}
    return tasks


def measured_points(row):
    """A saved budget row's measured `{rate: score}`: the grid and every rate it trained."""
    points = {float(k[5:]): v for k, v in row["scores"].items() if k.startswith("grid ")}
    for name, lr in row["lrs"].items():
        score = row["scores"][name]
        if lr and math.isfinite(lr) and math.isfinite(score):
            points[float(f"{lr:.6g}")] = score
    return points


def score_at(points, lr):
    """The pair's score at `lr`, interpolated linearly in log-rate (flat beyond the ends)."""
    rates = sorted(points)
    return float(np.interp(math.log10(lr), np.log10(rates), [points[r] for r in rates]))


def median_curve(curve, frac):
    """The raw losses through a centred running median over 1/`frac` of the sweep on each
    side, cut as the library's rules cut (`ktlite.lr.suggest`: at the first non-finite
    loss, after the first tenth, and at the minimum)."""
    lrs, losses = _finite(curve["lrs"], curve["losses"])
    return _usable(lrs, running_median(losses, max(1, losses.size // frac)))


def first_crossing(lrs, smoothed, share):
    """The rate where the curve first falls `share` of its drop below its highest point."""
    top, bottom = float(np.max(smoothed)), float(smoothed[-1])
    return float(lrs[int(np.nonzero(smoothed <= top - share * (top - bottom))[0][0])])


def entry_rule(levels, frac, backoff):
    def rule(curve):
        lrs, smoothed = median_curve(curve, frac)
        if smoothed.size < 5:
            return math.nan
        rates = [first_crossing(lrs, smoothed, 1.0 - level) for level in levels]
        lr = float(np.exp(np.mean(np.log(rates)))) / backoff
        return min(lr, 10.0 * suggest_descent(curve["lrs"], curve["losses"]))
    return rule


def shape_rule(frac, backoff):
    def rule(curve):
        lrs, smoothed = median_curve(curve, frac)
        if smoothed.size < 5:
            return math.nan
        logits = np.log(_LEVELS_SHAPE / (1.0 - _LEVELS_SHAPE))
        logs = np.log([first_crossing(lrs, smoothed, s) for s in _LEVELS_SHAPE])
        slope, intercept = np.polyfit(logits, logs, 1)
        return math.exp(intercept + slope * math.log(0.95 / 0.05)) / backoff
    return rule


def two_passes(rule):
    def averaged(curves):
        n = min(len(c["losses"]) for c in curves)
        losses = np.mean([np.asarray(c["losses"][:n], float) for c in curves], axis=0)
        return rule({"lrs": curves[0]["lrs"][:n], "losses": losses})
    return averaged


def measure(tasks, rule, passes):
    """Gaps (`{(task, epochs): (family, gap)}`) and spreads (`{task: largest / smallest}`)."""
    def suggest(curves):
        return rule(curves[0]) if passes == 1 else two_passes(rule)(curves)

    gaps = {}
    for name, task in tasks.items():
        for epochs, pair in task["pairs"].items():
            lr = suggest(pair["curves"][:passes]) * budget_factor(pair["planned"])
            gaps[(name, epochs)] = (task["family"], pair["best"] - score_at(pair["points"], lr))
    spreads = {}
    for name, task in tasks.items():
        sweeps = task["sweeps"]
        values = [suggest([sweeps[i], sweeps[(i + 1) % len(sweeps)]][:passes])
                  for i in range(len(sweeps))]
        values = [v for v in values if math.isfinite(v) and v > 0]
        spreads[name] = max(values) / min(values)
    return gaps, spreads


def kinds():
    """`{kind: {variant label: (rule, passes)}}`, `basin` first."""
    backoffs = {"10^0.25": 10 ** 0.25, "10^0.5": 10 ** 0.5, "10^0.75": 10 ** 0.75}
    out = {}
    for passes in (1, 2):
        tail = "" if passes == 1 else ", 2 passes"
        out[f"entry, one level{tail}"] = {
            f"entry frac {f}, level 0.05, backoff {b}{tail}": (entry_rule((0.05,), f, v), passes)
            for f, (b, v) in itertools.product((20, 15, 10), backoffs.items())}
        out[f"entry, levels 0.05-0.2{tail}"] = {
            f"entry frac {f}, levels 0.05-0.2, backoff {b}{tail}":
                (entry_rule((0.05, 0.1, 0.15, 0.2), f, v), passes)
            for f, (b, v) in itertools.product((20, 15, 10), backoffs.items())}
        out[f"shape{tail}"] = {
            f"shape frac {f}, backoff {b}{tail}": (shape_rule(f, v), passes)
            for f, (b, v) in itertools.product((20, 15, 10), backoffs.items())}
    return out


def leave_one_family_out(measured):
    """Held-out gaps when each family's variant is chosen on the other families."""
    families = sorted({fam for gaps, _ in measured.values() for fam, _ in gaps.values()})
    held, chosen = [], {}
    for family in families:
        def cost(label):
            gaps = [g for fam, g in measured[label][0].values() if fam != family]
            return (sum(g > 1.0 for g in gaps), float(np.mean(gaps)))
        label = min(measured, key=cost)
        chosen[family] = label
        held += [g for fam, g in measured[label][0].values() if fam == family]
    return held, chosen


def fit(tasks, label, rule, names, data, images):
    """Train each task at the variant's rate per saved budget; print fitted vs estimated."""
    from lr_finder import DATA_DIR, IMAGES_DIR, TASKS, runner_for

    print(f"| task | epochs | rate | fitted | estimated | best grid | gap fitted |  ({label})")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        options = argparse.Namespace(folds=tasks[name]["folds"], seed=tasks[name]["seed"],
                                     data=data or DATA_DIR, images=images or IMAGES_DIR)
        task = TASKS[name][1](options)
        runner = runner_for(task, task["folds"][0], options.seed)
        for epochs, pair in sorted(tasks[name]["pairs"].items()):
            lr = rule(pair["curves"][0]) * budget_factor(pair["planned"])
            fitted = runner.score(lr, epochs)
            print(f"| {name} | {epochs} | {lr:.2e} | {fitted:.1f} | "
                  f"{score_at(pair['points'], lr):.1f} | {pair['best']:.1f} | "
                  f"{pair['best'] - fitted:+.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders saved by lr_finder.py --save")
    parser.add_argument("--fit", default=None, metavar="VARIANT",
                        help="train --tasks at this variant's rates (a label of the table)")
    parser.add_argument("--tasks", nargs="+", default=[], help="tasks for --fit")
    parser.add_argument("--data", default=None, help="as lr_finder.py's --data")
    parser.add_argument("--images", default=None, help="as lr_finder.py's --images")
    args = parser.parse_args()
    tasks = load(args.folders)
    if args.fit:
        variants = {label: rule for kind in kinds().values()
                    for label, (rule, passes) in kind.items() if passes == 1}
        if args.fit not in variants or not args.tasks:
            parser.error(f"--fit takes one of {sorted(variants)} and needs --tasks")
        fit(tasks, args.fit, variants[args.fit], args.tasks, args.data, args.images)
        return
    n_pairs = sum(len(t["pairs"]) for t in tasks.values())
    print(f"{len(tasks)} tasks, {n_pairs} task-budget pairs\n")
    print("| variant | within 1 pt | within 2 pt | mean gap | spread <= 1.5x | median spread "
          "| largest spread |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    lofo = []
    for kind, variants in kinds().items():
        measured = {label: measure(tasks, rule, passes)
                    for label, (rule, passes) in variants.items()}
        for label, (gaps, spreads) in measured.items():
            g, s = [v for _, v in gaps.values()], list(spreads.values())
            print(f"| {label} | {sum(x <= 1 for x in g)} | {sum(x <= 2 for x in g)} | "
                  f"{np.mean(g):+.2f} | {sum(x <= 1.5 for x in s)} of {len(s)} | "
                  f"{np.median(s):.2f}x | {max(s):.2f}x |")
        held, chosen = leave_one_family_out(measured)
        lofo.append((kind, held, sorted(set(chosen.values()))))
    print("\nLeave-one-family-out within each kind (parameters chosen without the family):\n")
    print("| kind | held-out within 1 pt | within 2 pt | variants chosen |")
    print("| --- | --- | --- | --- |")
    for kind, held, chosen in lofo:
        print(f"| {kind} | {sum(g <= 1 for g in held)} of {len(held)} | "
              f"{sum(g <= 2 for g in held)} | {'; '.join(chosen)} |")


if __name__ == "__main__":
    main()
