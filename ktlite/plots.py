"""Figures a person judges by eye: LR-finder curves and per-step training history.

matplotlib is imported inside the functions so `import ktlite` stays light; the figures are
built with the object API and never call `plt.show()`, so they work with the Agg backend.
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np

from ktlite.arguments import check_bool

__all__ = ["plot_lr_find", "plot_history", "show"]

_MARKERS = {"valley": "o", "steep": "^", "minimum": "s", "basin": "D", "descent": "v",
            "consensus": "P"}


def _new_axes(ax: Any):
    if ax is not None:
        if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
            raise TypeError(f"`ax` must be a matplotlib Axes or None. Received: ax={ax!r:.80}")
        # The Figure itself, also for an Axes in a SubFigure (whose `.figure` is its root).
        return ax.figure.figure, ax
    from matplotlib.figure import Figure

    # A tight layout keeps every axis label inside the saved image (a twin axis' too).
    fig = Figure(figsize=(6.4, 4.2), layout="tight")
    return fig, fig.add_subplot(1, 1, 1)


def _lr_curve(result: Any) -> tuple[np.ndarray, np.ndarray, dict]:
    lrs = np.asarray(getattr(result, "lrs"), dtype=np.float64)
    smoothed = np.asarray(getattr(result, "smoothed"), dtype=np.float64)
    keep = np.isfinite(lrs) & np.isfinite(smoothed) & (lrs > 0)
    return lrs[keep], smoothed[keep], dict(getattr(result, "suggestions", {}) or {})


def _dots(smoothed: np.ndarray, size: int) -> dict:
    """Markers for a curve of one or two points (a sweep that diverged at once), where a
    line draws nothing or a bare edge; none for a longer curve."""
    return {"marker": "o", "markersize": size} if smoothed.size <= 2 else {}


def _finite_values(values: Any) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v)) and v > 0]


def _chosen_label(result: Any, suggestions: dict) -> str:
    """How `result.suggestion` was chosen: by a confirming pass, a rule, and/or the budget."""
    from ktlite.lr.suggest import DEFAULT_SUGGESTION

    config = dict(getattr(result, "config", {}) or {})
    lr = float(getattr(result, "suggestion", math.nan))
    if "confirm" in config:
        return f"chosen by confirm {lr:.2e}"
    factor = float(config.get("budget_factor", 1.0))
    # The default rule first: another rule may suggest the same rate.
    for name in sorted(suggestions, key=lambda rule: rule != DEFAULT_SUGGESTION):
        value = suggestions[name]
        if value is not None and math.isclose(float(value) * factor, lr, rel_tol=1e-9):
            budget = f" x{factor:.2f} for {config['planned_steps']} steps" if factor != 1 else ""
            return f"chosen: {name}{budget} {lr:.2e}"
    return f"chosen {lr:.2e}"


def _mark_choice(ax: Any, result: Any, suggestions: dict, color: str) -> Any:
    """The chosen rate, the spread of the rules, and a confirming pass's short-run losses
    (on a twin y axis, which is returned; None without them)."""
    spread = _finite_values(suggestions.values())
    if len(spread) > 1:
        low, high = min(spread), max(spread)
        ax.axvspan(low, high, color=color, alpha=0.12,
                   label=f"spread of rules (x{high / low:.1f})")
    lr = getattr(result, "suggestion", None)
    if lr is not None and math.isfinite(float(lr)):
        ax.axvline(float(lr), color=color, linestyle="--", linewidth=1.2,
                   label=_chosen_label(result, suggestions))
    record = (getattr(result, "config", {}) or {}).get("confirm")
    if not record or not record.get("steps"):
        return None
    runs = [(float(lr), float(loss)) for lr, loss in zip(record["lrs"], record["losses"])
            if loss is not None]
    if not runs:
        return None
    # Each run trained at its candidate moved to the run's length (`ktlite.lr.confirm`); the
    # stars stand at the candidates, and the label gives the factor.
    run_lrs = record.get("run_lrs")  # absent from records saved before the move
    moved = f" at x{float(run_lrs[0]) / float(record['lrs'][0]):.2g}" if run_lrs else ""
    twin = ax.twinx()
    twin.plot([r[0] for r in runs], [r[1] for r in runs], linestyle=":", marker="*",
              markersize=11, color="black",
              label=f"confirm: {record.get('judged_by', 'loss')} after {record['steps']} steps"
                    f"{moved}")
    twin.set_ylabel(f"short-run {record.get('judged_by', 'loss')}")
    return twin


def _top_of_interest(smoothed: np.ndarray) -> float:
    """The highest loss of the curve's region of interest: its first tenth, or all of it up
    to its minimum when that is longer.

    Not the first tenth alone: that assumes the curve starts at its highest, and a loss that
    rises at tiny rates before it falls would have its whole fall, and every suggestion,
    above the plot. What follows the minimum stays out, so a diverging tail does not squash
    the rest.
    """
    end = max(1, smoothed.size // 10, int(np.argmin(smoothed)) + 1)
    return float(smoothed[:end].max())


def _padded(low: float, high: float) -> tuple[float, float]:
    """Y limits around [low, high], with more room above (where the legend usually goes)."""
    # A flat curve, or one of one or two points, spans (almost) nothing: a pad in the values'
    # own scale (1% of their magnitude; 1 for zeros) shows it, where a fixed tiny pad gives a
    # range finer than the float resolution near the loss.
    span = max(high - low, 0.01 * max(abs(low), abs(high))) or 1.0
    pad = 0.1 * span
    return low - pad, high + 4 * pad


def _legend(ax: Any, twin: Any) -> None:
    """One legend for the axes and its twin, if any artist has a label."""
    handles, names = ax.get_legend_handles_labels()
    if twin is not None:
        # One legend for both axes (two would cover each other), drawn above the twin's
        # stars: the main axes goes on top, with a see-through background.
        more_handles, more_names = twin.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
    # Without a suggestion, a chosen rate or a label (a sweep too short to read, or all
    # nan) a legend would be an empty box.
    if handles:
        ax.legend(handles, names, loc="best", fontsize="small")


def plot_lr_find(
    result_or_results: Any,
    labels: Sequence[str] | None = None,
    suggest: bool = True,
    ax: Any = None,
):
    """Plot smoothed loss against learning rate (log axis) for one or several sweeps.

    The y axis spans each curve up to its minimum (at least its first tenth) and every
    suggestion marker; a diverging tail after the minimum runs off the top rather than
    squashing the rest.

    Args:
        result_or_results: An `ktlite.lr.LRFindResult` or a list of them to overlay (e.g. the
            same model at two batch sizes). A result of several sweeps
            (`lr_find(sweeps=k)`) draws its first sweep and, fainter, the others.
        labels: One legend label per result. Default: no legend for one result,
            `"run 0"`, `"run 1"`, ... for several.
        suggest: Mark each result's suggestions (`valley`, `steep`, `minimum`, `basin`,
            `descent`, `consensus`). For one result also shade the spread of the
            suggestions, draw the chosen rate (`result.suggestion`, labelled with its rule,
            budget factor or confirming pass) as a dashed line, and, after
            `lr_find(confirm=True)`, the short runs' losses on a second y axis. Default
            True.
        ax: A matplotlib Axes to draw into; default a new Figure.

    Returns:
        The matplotlib `Figure`.

    Raises:
        TypeError: If a result is not an LR-finder result, `labels` is not a list of str,
            `suggest` is not a bool, or `ax` is not a matplotlib Axes.
        ValueError: If there are no results, or `labels` does not hold one per result.

    Example:
        >>> fig = plot_lr_find([result_bs32, result_bs256], labels=["bs 32", "bs 256"])
        >>> fig.savefig("lr_find.png")
    """
    results = (
        list(result_or_results)
        if isinstance(result_or_results, (list, tuple))
        else [result_or_results]
    )
    if not results:
        raise ValueError("`result_or_results` must hold at least one result. Received: []")
    for r in results:
        if not (hasattr(r, "lrs") and hasattr(r, "smoothed")):
            raise TypeError(
                "`result_or_results` must be LRFindResult objects. "
                f"Received: {type(r).__name__}"
            )
    if labels is not None:
        if not isinstance(labels, (list, tuple)) or not all(
                isinstance(label, str) for label in labels):
            raise TypeError("`labels` must be a list of str, one per result. "
                            f"Received: labels={labels!r:.80}")
        labels = list(labels)
        if len(labels) != len(results):
            raise ValueError(
                f"`labels` must have one entry per result ({len(results)}). "
                f"Received: labels={labels!r}"
            )
    elif len(results) > 1:
        labels = [f"run {i}" for i in range(len(results))]
    check_bool(suggest, "suggest")
    fig, ax = _new_axes(ax)
    twin = None
    lows, highs = [], []
    for i, result in enumerate(results):
        lrs, smoothed, suggestions = _lr_curve(result)
        label = labels[i] if labels else None
        (line,) = ax.plot(lrs, smoothed, label=label, **_dots(smoothed, 4))
        if smoothed.size:
            lows.append(smoothed.min())
            highs.append(_top_of_interest(smoothed))
        for k, other in enumerate(getattr(result, "per_sweep", [])[1:]):
            other_lrs, other_smoothed, _ = _lr_curve(other)
            others = ("sweep 2" if len(result.per_sweep) == 2
                      else f"sweeps 2-{len(result.per_sweep)}")
            ax.plot(other_lrs, other_smoothed, color=line.get_color(), alpha=0.35,
                    linewidth=1, **_dots(other_smoothed, 3),
                    label=(f"{others} (averaged with the first)"
                           if k == 0 and len(results) == 1 else None))
            if other_smoothed.size:
                lows.append(other_smoothed.min())
                highs.append(_top_of_interest(other_smoothed))
        if suggest and lrs.size:
            for name, lr in suggestions.items():
                if lr is None or not math.isfinite(lr):
                    continue
                y = float(np.interp(np.log(lr), np.log(lrs), smoothed))
                lows.append(y)
                highs.append(y)
                ax.plot(
                    [lr], [y], linestyle="none", marker=_MARKERS.get(name, "x"),
                    color=line.get_color(), markersize=7,
                    label=f"{name} {lr:.2e}" if len(results) == 1 else None,
                )
            if len(results) == 1:
                twin = _mark_choice(ax, result, suggestions, line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("smoothed loss")
    if lows:
        ax.set_ylim(*_padded(min(lows), max(highs)))
    if labels or (suggest and len(results) == 1):
        _legend(ax, twin)
    if suggest and len(results) > 1:
        ax.set_title(
            "markers: D basin (default), P consensus, v descent, o valley, ^ steep, "
            "s minimum",
            fontsize="small",
        )
    return fig


def plot_history(values: Sequence[float], name: str, ax: Any = None):
    """Plot one per-step training quantity (e.g. `"lr"`, `"momentum"` or `"loss"`).

    Args:
        values: One value per training step; `None`/non-finite values are skipped.
        name: What the values are; used as the y label and title. `"lr"` uses a log axis.
        ax: A matplotlib Axes to draw into; default a new Figure.

    Returns:
        The matplotlib `Figure`.

    Raises:
        TypeError: If `name` is not a str or `ax` is not a matplotlib Axes.
        ValueError: If `values` is empty or not numbers, or `name` is empty.

    Example:
        >>> fig = plot_history(policy_callback.history["lrs"], "lr")
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a non-empty str. Received: name={name!r:.80}")
    if not name:
        raise ValueError("`name` must be a non-empty str. Received: name=''")
    try:
        data = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`values` must be a sequence of numbers. Received: {values!r}") from None
    if data.size == 0:
        raise ValueError("`values` must not be empty. Received: []")
    fig, ax = _new_axes(ax)
    steps = np.arange(data.size)
    keep = np.isfinite(data)
    ax.plot(steps[keep], data[keep])
    if name.lower() in ("lr", "lrs", "learning_rate") and np.all(data[keep] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.set_title(name)
    return fig


def show(fig: Any) -> bool:
    """Displays a figure in the running notebook (IPython); elsewhere does nothing.

    ktlite's figures are not managed by pyplot, so a notebook shows them only when they are
    the value of a cell; `show` displays one from inside a function, as
    `learner.lr_find(show_plot=True)` does. In a script, save the returned figure instead
    (`fig.savefig("lr.png")`).

    Args:
        fig: a matplotlib `Figure`.

    Returns:
        True if the figure was sent to a notebook, False otherwise.

    Raises:
        TypeError: if `fig` is not a matplotlib Figure.

    Example:
        >>> show(plot_lr_find(result))
    """
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"`fig` must be a matplotlib Figure. Received: fig={fig!r}")
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return False
    if get_ipython() is None:
        return False
    # PNG bytes display the same under every matplotlib backend, inline or not.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    display(Image(data=buffer.getvalue(), format="png"))
    return True
