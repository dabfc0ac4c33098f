"""ktlite.plots: LR-finder and history figures (Agg backend, lazy matplotlib)."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from ktlite.lr import LRFindResult
from ktlite.plots import plot_history, plot_lr_find


def _result(shift=0.0):
    lrs = np.logspace(-7, 1, 80)
    idx = np.arange(80)
    divergence = np.r_[np.zeros(70), np.linspace(0, 9, 10)]
    losses = 1.0 + 2.0 / (1.0 + np.exp((idx - 45 - shift) / 5.0)) + divergence
    return LRFindResult.from_curve(lrs, losses, beta=0.5)


def test_import_does_not_load_matplotlib():
    code = "import ktlite.plots, sys; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_lr_plot_has_log_x_axis_and_marked_suggestions():
    from matplotlib.figure import Figure

    result = _result()
    fig = plot_lr_find(result)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 1 + 6 + 1  # the curve, one marker per suggestion, the chosen rate
    marker_x = sorted(float(line.get_xdata()[0]) for line in lines[1:-1])
    assert marker_x == sorted(result.suggestions.values())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("valley") for label in labels)


def test_lr_plot_without_suggestions_draws_only_the_curve():
    fig = plot_lr_find(_result(), suggest=False)
    assert len(fig.axes[0].get_lines()) == 1


def test_several_results_overlay_with_a_legend():
    fig = plot_lr_find([_result(), _result(10)], labels=["bs 32", "bs 256"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["bs 32", "bs 256"]
    assert len(ax.get_lines()) == 2 * 7  # curve and six markers each, no chosen line


def test_lr_plot_draws_into_a_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    assert plot_lr_find(_result(), ax=ax) is fig
    assert ax.get_lines()


def test_lr_plot_saves_png(tmp_path):
    path = tmp_path / "lr.png"
    plot_lr_find(_result()).savefig(path)
    assert path.stat().st_size > 1000


def test_lr_plot_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        plot_lr_find([])
    with pytest.raises(TypeError, match="LRFindResult"):
        plot_lr_find({"lrs": [1]})
    with pytest.raises(ValueError, match="`labels`"):
        plot_lr_find([_result(), _result()], labels=["only one"])
    # A string was split into letters ("ab" labelled two results 'a' and 'b').
    for labels in ("ab", 5, [1, 2]):
        with pytest.raises(TypeError, match=r"`labels` must be a list of str, one per result. "
                                            r"Received: labels="):
            plot_lr_find([_result(), _result()], labels=labels)
    with pytest.raises(TypeError, match="`ax`"):
        plot_lr_find(_result(), ax="axes")


def test_a_plot_into_an_axes_of_a_subfigure_returns_the_figure():
    from matplotlib.figure import Figure

    from ktlite.plots import show

    fig = Figure()
    ax = fig.subfigures(1, 2)[0].add_subplot()
    assert plot_lr_find(_result(), ax=ax) is fig and plot_history([1.0, 2.0], "loss", ax=ax) is fig
    assert show(fig) is False  # a Figure, which `show` takes


def test_history_plot_uses_log_axis_for_lr_and_skips_none():
    fig = plot_history([1e-3, 1e-2, None, 1e-1], "lr")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert list(ax.get_lines()[0].get_xdata()) == [0, 1, 3]
    fig = plot_history([3.0, 2.0, 1.5], "loss")
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].get_ylabel() == "loss"


def test_history_plot_rejects_bad_input():
    with pytest.raises(ValueError, match="`values`"):
        plot_history([], "loss")
    with pytest.raises(ValueError, match="`values`"):
        plot_history(["a"], "loss")
    with pytest.raises(ValueError, match="`name`"):
        plot_history([1.0], "")
    with pytest.raises(TypeError, match="`name` must be a non-empty str. Received: name=3"):
        plot_history([1.0], 3)


def test_show_is_a_no_op_outside_a_notebook_and_rejects_non_figures():
    from matplotlib.figure import Figure

    from ktlite.plots import show

    assert show(Figure()) is False
    with pytest.raises(TypeError, match="fig"):
        show("not a figure")


def test_lr_plot_shows_the_chosen_rule_and_the_spread_of_the_rules():
    result = _result()
    ax = plot_lr_find(result).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"chosen: basin {result.suggestion:.2e}" in labels
    chosen = [line for line in ax.get_lines() if line.get_label().startswith("chosen")]
    assert float(chosen[0].get_xdata()[0]) == result.suggestion
    values = sorted(result.suggestions.values())
    spread = [label for label in labels if label.startswith("spread of rules")]
    assert spread == [f"spread of rules (x{values[-1] / values[0]:.1f})"]
    left, right = ax.patches[0].get_x(), ax.patches[0].get_x() + ax.patches[0].get_width()
    assert (left, right) == pytest.approx((values[0], values[-1]))


def test_lr_plot_names_the_budget_and_the_confirming_runs():
    result = _result()
    result.config.update(planned_steps=250, budget_factor=2.0)
    result.suggestion = 2.0 * result.suggestions["basin"]
    labels = [t.get_text() for t in plot_lr_find(result).axes[0].get_legend().get_texts()]
    assert f"chosen: basin x2.00 for 250 steps {result.suggestion:.2e}" in labels
    result.config["confirm"] = {"lrs": [1e-4, 1e-3, 1e-2], "losses": [0.9, 0.5, None],
                                "chosen": 1e-3, "steps": 30, "judged_by": "val_loss"}
    result.suggestion = 1e-3
    fig = plot_lr_find(result)
    assert len(fig.axes) == 2  # the twin axis of the short runs
    runs = fig.axes[1].get_lines()[0]
    assert runs.get_label() == "confirm: val_loss after 30 steps"
    assert runs.get_xdata().tolist() == [1e-4, 1e-3] and runs.get_ydata().tolist() == [0.9, 0.5]
    # One legend names both axes' lines (the twin's own legend used to cover the main one's
    # last rows, the chosen rate's among them), and it is drawn above the twin's stars.
    assert fig.axes[1].get_legend() is None
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "chosen by confirm 1.00e-03" in labels
    assert "confirm: val_loss after 30 steps" in labels
    assert fig.axes[0].get_zorder() > fig.axes[1].get_zorder()
    # The layout keeps the twin axis' label inside the saved image.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    label_box = fig.axes[1].yaxis.label.get_window_extent(canvas.get_renderer())
    assert label_box.x1 <= fig.bbox.x1
    # The runs trained at the candidates moved to their length: the label gives the factor.
    result.config["confirm"]["run_lrs"] = [3.2e-4, 3.2e-3, 3.2e-2]
    runs = plot_lr_find(result).axes[1].get_lines()[0]
    assert runs.get_label() == "confirm: val_loss after 30 steps at x3.2"
    assert runs.get_xdata().tolist() == [1e-4, 1e-3]


def _rising_then_falling(shift=0.0):
    # The loss drifts up at tiny rates, falls from about 0.85 to about 0.69 near lr 1, then
    # diverges: its first tenth, near 0.70, is far below its fall. `shift` raises it all.
    lrs = np.logspace(-7, 1, 100)
    x = np.log10(lrs)
    noise = np.random.default_rng(0).normal(0, 0.005, lrs.size)
    losses = (0.70 + 0.30 * np.exp(-((x + 3) ** 2) / 2) - 0.25 / (1 + np.exp(-(x + 2) * 3))
              + np.where(x > 0, 3 * x, 0) + noise + shift)
    return LRFindResult.from_curve(lrs, losses)


def _markers(ax):
    return [line for line in ax.get_lines() if len(line.get_xdata()) == 1]


@pytest.mark.parametrize("make", [_rising_then_falling, _result], ids=["rises-first", "falls"])
def test_lr_plot_y_range_holds_every_marker_and_the_curve_down_to_its_minimum(make):
    result = make()
    ax = plot_lr_find(result).axes[0]
    low, high = ax.get_ylim()
    markers = _markers(ax)
    assert len(markers) == 6
    for marker in markers:
        assert low <= float(marker.get_ydata()[0]) <= high, marker.get_label()
    smoothed = np.asarray(result.smoothed)
    bottom = int(np.argmin(smoothed))
    assert low <= smoothed[: bottom + 1].min() and smoothed[: bottom + 1].max() <= high


def test_lr_plot_y_range_leaves_out_the_diverging_tail():
    result = _result()
    low, high = plot_lr_find(result).axes[0].get_ylim()
    smoothed = np.asarray(result.smoothed)
    assert high < smoothed.max() and high - low < 0.5 * (smoothed.max() - smoothed.min())


def test_several_results_keep_every_marker_in_the_y_range():
    results = [_rising_then_falling(), _rising_then_falling(0.05)]
    ax = plot_lr_find(results, labels=["a", "b"]).axes[0]
    low, high = ax.get_ylim()
    assert len(_markers(ax)) == 12
    assert all(low <= float(m.get_ydata()[0]) <= high for m in _markers(ax))


@pytest.mark.parametrize("lrs, losses", [
    ([50.0, 84.2], [0.7698, 38853.9]),  # lr_find(start_lr=50, ...) diverged at its 2nd step
    ([1e-3], [0.7698]),
    (np.logspace(-5, 0, 20), np.full(20, 0.7698)),
], ids=["diverged-at-step-2", "one-point", "flat"])
def test_a_flat_or_one_or_two_point_curve_gets_a_visible_y_range(lrs, losses):
    ax = plot_lr_find(LRFindResult.from_curve(lrs, losses)).axes[0]
    low, high = ax.get_ylim()
    assert low < 0.7698 < high
    assert high - low > 1e-3 * 0.7698  # was 5e-13: the curve sat on a sub-pixel range
    curve = ax.get_lines()[0]
    if len(lrs) <= 2:  # a line alone draws nothing for one point
        assert curve.get_marker() not in (None, "None", "", " ")


@pytest.mark.parametrize("lrs, losses", [
    ([50.0, 84.2], [0.7698, 38853.9]),
    (np.logspace(-5, 0, 40), np.full(40, np.nan)),
], ids=["diverged-at-step-2", "all-nan"])
def test_lr_plot_with_nothing_to_label_draws_no_legend(lrs, losses):
    result = LRFindResult.from_curve(lrs, losses)
    assert np.isnan(result.suggestion)
    assert plot_lr_find(result).axes[0].get_legend() is None


def test_a_result_of_several_sweeps_draws_each_sweep_and_names_the_others():
    sweeps = [_result(), _result(8), _result(-8)]
    result = dataclasses.replace(sweeps[0], per_sweep=sweeps)
    ax = plot_lr_find(result, suggest=False).axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[2].get_ydata(), sweeps[2].smoothed)
    assert lines[1].get_alpha() < 1 and lines[0].get_alpha() is None
    ax = plot_lr_find(result).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "sweeps 2-3 (averaged with the first)" in labels
    two = dataclasses.replace(sweeps[0], per_sweep=sweeps[:2])
    labels = [t.get_text() for t in plot_lr_find(two).axes[0].get_legend().get_texts()]
    assert "sweep 2 (averaged with the first)" in labels


def test_another_sweep_of_one_or_two_points_is_drawn_as_dots():
    short = LRFindResult.from_curve([1e-7], [2.0])
    result = dataclasses.replace(_result(), per_sweep=[_result(), short])
    lines = plot_lr_find(result, suggest=False).axes[0].get_lines()
    assert len(lines) == 2 and lines[1].get_marker() == "o"
    assert lines[0].get_marker() in ("None", None, "")
