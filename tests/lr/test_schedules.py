"""Exact shapes of the learning-rate / momentum policies."""

import math
import re

import numpy as np
import pytest

from ktlite.lr.schedules import SGDR, Constant, ExponentialSweep, OneCycle, Triangular


def _cos(a, b, frac):
    return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2


def test_onecycle_matches_piecewise_cosine_formula():
    lr, total, pct, div, div_final = 1e-2, 41, 0.25, 25.0, 1e4
    policy = OneCycle(lr, total, pct_start=pct, div=div, div_final=div_final)
    n_up = round(pct * (total - 1))
    assert n_up == 10
    expected = [
        _cos(lr / div, lr, s / n_up) if s <= n_up else _cos(lr, lr / div_final, (s - n_up) / 30)
        for s in range(total)
    ]
    np.testing.assert_allclose(policy.lr_at(np.arange(total)), expected, rtol=1e-12)


def test_onecycle_key_points_are_exact():
    policy = OneCycle(1e-3, 101, pct_start=0.3, div=10, div_final=100)
    assert policy.lr_at(0) == pytest.approx(1e-4, rel=1e-12)
    assert policy.lr_at(30) == pytest.approx(1e-3, rel=1e-12)
    assert policy.lr_at(100) == pytest.approx(1e-5, rel=1e-12)
    assert policy.lr_at(15) == pytest.approx((1e-4 + 1e-3) / 2, rel=1e-12)


def test_onecycle_rises_then_falls_monotonically():
    lrs = OneCycle(1.0, 200).lr_at(np.arange(200))
    peak = int(np.argmax(lrs))
    assert peak == round(0.25 * 199)
    assert np.all(np.diff(lrs[: peak + 1]) > 0)
    assert np.all(np.diff(lrs[peak:]) < 0)


def test_onecycle_momentum_moves_inversely():
    policy = OneCycle(1.0, 101, moms=(0.95, 0.85))
    steps = np.arange(101)
    moms = policy.momentum_at(steps)
    lrs = policy.lr_at(steps)
    assert moms[0] == pytest.approx(0.95) and moms[-1] == pytest.approx(0.95)
    assert moms[25] == pytest.approx(0.85)
    # Same cosine fraction: momentum is an affine, decreasing function of lr in each phase.
    frac_lr_up = (lrs[:26] - lrs[0]) / (lrs[25] - lrs[0])
    frac_mom_up = (moms[:26] - 0.95) / (0.85 - 0.95)
    np.testing.assert_allclose(frac_lr_up, frac_mom_up, atol=1e-12)


def test_onecycle_without_moms_leaves_momentum_alone():
    assert OneCycle(1e-3, 10, moms=None).momentum_at(np.arange(10)) is None


def test_onecycle_edge_pct_start_values():
    only_down = OneCycle(1.0, 11, pct_start=0.0, div_final=10)
    assert only_down.lr_at(0) == pytest.approx(1.0)
    assert only_down.lr_at(10) == pytest.approx(0.1)
    only_up = OneCycle(1.0, 11, pct_start=1.0, div=10)
    assert only_up.lr_at(0) == pytest.approx(0.1)
    assert only_up.lr_at(10) == pytest.approx(1.0)
    single = OneCycle(1.0, 1)
    assert single.lr_at(0) == pytest.approx(1.0)


def test_steps_past_the_end_keep_the_last_value():
    policy = OneCycle(1e-3, 50)
    assert policy.lr_at(49) == policy.lr_at(500)
    assert policy.momentum_at(49) == policy.momentum_at(500)


def test_triangular_is_linear_up_and_down_each_cycle():
    policy = Triangular(1.0, steps_per_cycle=10, n_cycles=2, div=10)
    lrs = policy.lr_at(np.arange(20))
    rise = [0.1 + 0.9 * p / 5 for p in range(6)]
    fall = [0.1 + 0.9 * (9 - p) / 4 for p in range(6, 10)]
    expected_cycle = rise + fall
    np.testing.assert_allclose(lrs, expected_cycle * 2, rtol=1e-12)
    assert policy.total_steps == 20
    moms = policy.momentum_at(np.arange(10))
    assert moms[0] == pytest.approx(0.95) and moms[5] == pytest.approx(0.85)
    assert moms[9] == pytest.approx(0.95)


def test_a_two_step_triangle_rises_to_its_peak_without_dividing_by_zero():
    with np.errstate(divide="raise", invalid="raise"):
        np.testing.assert_allclose(Triangular(1.0, 2, n_cycles=2, div=4).lr_at(np.arange(4)),
                                   [0.25, 1.0, 0.25, 1.0])


def test_triangular_without_n_cycles_repeats_forever():
    policy = Triangular(1e-3, steps_per_cycle=7)
    assert policy.total_steps is None and policy.cycle_steps == 7
    np.testing.assert_array_equal(policy.lr_at(np.arange(7)), policy.lr_at(np.arange(700, 707)))


def test_sgdr_restarts_with_growing_cycles():
    policy = SGDR(1.0, steps_per_cycle=11, n_cycles=3, cycle_mult=2, div_final=100)
    assert policy.cycle_lengths == [11, 22, 44]
    assert policy.total_steps == 77
    lrs = policy.lr_at(np.arange(77))
    for start, length in ((0, 11), (11, 22), (33, 44)):
        assert lrs[start] == pytest.approx(1.0)
        assert lrs[start + length - 1] == pytest.approx(0.01)
        assert np.all(np.diff(lrs[start:start + length]) < 0)
    assert lrs[5] == pytest.approx((1.0 + 0.01) / 2)
    moms = policy.momentum_at(np.arange(77))
    assert moms[0] == pytest.approx(0.85) and moms[10] == pytest.approx(0.95)
    assert moms[11] == pytest.approx(0.85)


def test_sgdr_matches_cosine_formula():
    policy = SGDR(2.0, steps_per_cycle=5, n_cycles=2, cycle_mult=1, div_final=4)
    expected = [_cos(2.0, 0.5, p / 4) for p in range(5)] * 2
    np.testing.assert_allclose(policy.lr_at(np.arange(10)), expected, rtol=1e-12)


def test_constant_policy():
    policy = Constant(3e-4, 5)
    np.testing.assert_array_equal(policy.lr_at(np.arange(5)), [3e-4] * 5)
    assert policy.momentum_at(np.arange(5)) is None
    np.testing.assert_array_equal(Constant(1.0, 3, momentum=0.5).momentum_at([0, 2]), [0.5, 0.5])


def test_exponential_sweep_is_geometric():
    policy = ExponentialSweep(1e-6, 1.0, 61)
    lrs = policy.lr_at(np.arange(61))
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** 0.1, rtol=1e-12)
    assert policy.momentum_at(0) is None


@pytest.mark.parametrize(
    "factory, error, name",
    [
        (lambda: OneCycle(-1.0, 10), ValueError, "lr"),
        (lambda: OneCycle(1e-3, 0), ValueError, "total_steps"),
        (lambda: OneCycle(1e-3, 10.5), TypeError, "total_steps"),
        (lambda: OneCycle(1e-3, 10, pct_start=1.5), ValueError, "pct_start"),
        (lambda: OneCycle(1e-3, 10, div=0), ValueError, "div"),
        (lambda: OneCycle(1e-3, 10, div=0.5), ValueError, "div"),  # would start above `lr`
        (lambda: OneCycle(1e-3, 10, div_final=0.1), ValueError, "div_final"),
        (lambda: Triangular(1e-3, 10, div=0.5), ValueError, "div"),
        (lambda: SGDR(1e-3, 10, 2, div_final=0.5), ValueError, "div_final"),
        (lambda: OneCycle(1e-3, 10, div_final=float("nan")), ValueError, "div_final"),
        (lambda: OneCycle(1e-3, 10, moms=(0.95,)), ValueError, "moms"),
        (lambda: OneCycle(1e-3, 10, moms=(1.5, 0.5)), ValueError, "moms[0]"),
        (lambda: Triangular(1e-3, 1), ValueError, "steps_per_cycle"),
        (lambda: Triangular(1e-3, 10, n_cycles=0), ValueError, "n_cycles"),
        (lambda: SGDR(1e-3, 10, 2, cycle_mult=0), ValueError, "cycle_mult"),
        (lambda: SGDR(1e-3, 10, 2, cycle_mult=1.5), TypeError, "cycle_mult"),
        (lambda: Constant("1e-3", 10), TypeError, "lr"),
        (lambda: Constant(1e-3, 10, momentum=1.0), ValueError, "momentum"),
        (lambda: ExponentialSweep(1.0, 0.1, 10), ValueError, "end_lr"),
        (lambda: ExponentialSweep(1e-3, 1.0, 1), ValueError, "total_steps"),
        (lambda: OneCycle(True, 10), TypeError, "lr"),
        (lambda: OneCycle(1e-3, 10, pct_start="0.3"), TypeError, "pct_start"),
        (lambda: OneCycle(1e-3, 10, pct_start=True), TypeError, "pct_start"),
        (lambda: OneCycle(1e-3, 10, moms="ab"), TypeError, "moms"),
        (lambda: OneCycle(1e-3, 10, moms=(0.95, "0.85")), TypeError, "moms[1]"),
        (lambda: OneCycle(1e-3, 10, moms=(True, 0.85)), TypeError, "moms[0]"),
        (lambda: Triangular(1e-3, 10, moms=(0.95, -0.1)), ValueError, "moms[1]"),
        (lambda: Constant(1e-3, 10, momentum="0.9"), TypeError, "momentum"),
        (lambda: Constant(1e-3, 10, momentum=True), TypeError, "momentum"),
        (lambda: Constant(1e-3, 10, momentum=-0.5), ValueError, "momentum"),
    ],
)
def test_bad_arguments_name_the_argument(factory, error, name):
    with pytest.raises(error, match=f"`{re.escape(name)}`.*Received"):
        factory()


def test_numpy_settings_are_taken_as_plain_floats():
    policy = OneCycle(1e-3, 10, pct_start=np.float32(0.5), moms=(np.float64(0.9), 0.8))
    assert type(policy.pct_start) is float and policy.moms == (0.9, 0.8)
    assert Constant(1e-3, 10, momentum=np.float32(0.5)).get_config()["momentum"] == 0.5


@pytest.mark.parametrize("steps", [["1"], [True], np.array([None])])
def test_steps_of_the_wrong_type_are_a_type_error(steps):
    with pytest.raises(TypeError, match="`steps` must hold integer step indices"):
        OneCycle(1e-3, 10).lr_at(steps)


def test_negative_or_fractional_steps_are_rejected():
    policy = OneCycle(1e-3, 10)
    with pytest.raises(ValueError, match="steps"):
        policy.lr_at(-1)
    with pytest.raises(ValueError, match="steps"):
        policy.lr_at(np.array([0.5]))
