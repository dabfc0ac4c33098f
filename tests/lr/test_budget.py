"""Budget-aware suggestions: the same curve gives a higher rate to a shorter planned fit."""

import math

import numpy as np
import pytest

from ktlite.lr import LRFindResult
from ktlite.lr.budget import (
    BUDGET_EXPONENT,
    MAX_FACTOR,
    REFERENCE_STEPS,
    budget_factor,
    for_budget,
)


def _curve():
    lrs = np.logspace(-6, 0, 120)
    idx = np.arange(120)
    losses = 1.0 + 2.0 / (1.0 + np.exp((idx - 60) / 4.0)) + np.r_[np.zeros(100), np.arange(20.0)]
    return LRFindResult.from_curve(lrs, losses)


def test_short_fit_gets_a_higher_rate_than_a_long_one_by_the_documented_factor():
    result = _curve()
    short, long = result.suggest(planned_steps=200), result.suggest(planned_steps=2000)
    assert short > result.suggestion > long
    assert short / long == pytest.approx(10.0 ** BUDGET_EXPONENT, rel=1e-9)
    assert short == pytest.approx(result.suggestion * (REFERENCE_STEPS / 200) ** BUDGET_EXPONENT)


def test_unknown_budget_leaves_the_suggestion_alone():
    result = _curve()
    assert budget_factor(None) == 1.0
    assert result.suggest() == result.suggestion == result.suggestions["basin"]
    assert result.suggest(REFERENCE_STEPS) == pytest.approx(result.suggestion)


def test_factor_is_clipped_to_half_a_decade():
    assert budget_factor(1) == pytest.approx(MAX_FACTOR)
    assert budget_factor(10**9) == pytest.approx(1.0 / MAX_FACTOR)
    assert math.isnan(for_budget(math.nan, 10))


@pytest.mark.parametrize(
    "lr, error, expected",
    [(-1.0, ValueError, r"`lr` must be a positive float. Received: lr=-1.0"),
     (0, ValueError, r"`lr` must be a positive float. Received: lr=0"),
     ("x", TypeError, r"`lr` must be a positive float. Received: lr='x'"),
     (None, TypeError, r"`lr` must be a positive float. Received: lr=None")],
)
def test_a_rate_that_is_not_positive_or_not_a_number_is_named(lr, error, expected):
    # -1.0 came back as -3.16, "x" raised float()'s own error.
    with pytest.raises(error, match=expected):
        for_budget(lr, 10)


def test_for_budget_takes_numpy_rates_and_passes_non_finite_ones_as_nan():
    assert for_budget(np.float32(1e-3), 4000) == pytest.approx(5e-4)
    assert math.isnan(for_budget(math.inf, 10)) and math.isnan(for_budget(np.float32("nan"), 10))


def test_every_rule_can_be_scaled():
    result = _curve()
    for rule, lr in result.suggestions.items():
        assert result.suggest(250, rule=rule) == pytest.approx(lr * budget_factor(250))
    with pytest.raises(ValueError, match="`rule` must be one of .*Received: rule='nope'"):
        result.suggest(rule="nope")


@pytest.mark.parametrize("bad", [0, -5])
def test_planned_steps_out_of_range_are_named(bad):
    with pytest.raises(ValueError, match=f"`planned_steps`.*Received: planned_steps={bad}"):
        budget_factor(bad)


@pytest.mark.parametrize("bad", [2.5, True, "10", [10]])
def test_planned_steps_of_the_wrong_type_are_a_type_error(bad):
    with pytest.raises(TypeError, match="`planned_steps` must be a positive int or None"):
        budget_factor(bad)
    with pytest.raises(TypeError, match="`planned_steps`"):
        for_budget(1e-3, bad)
    with pytest.raises(TypeError, match="`planned_steps`"):
        _curve().suggest(planned_steps=bad)


def test_planned_steps_takes_a_numpy_int():
    assert budget_factor(np.int64(250)) == budget_factor(250)


@pytest.mark.parametrize("rule", [None, 1, ["basin"]])
def test_a_rule_of_the_wrong_type_is_a_type_error(rule):
    with pytest.raises(TypeError, match=r"`rule` must be one of \[.*Received: rule="):
        _curve().suggest(rule=rule)


def test_find_lr_records_the_budget(make_model, dataset):
    import keras

    from ktlite.lr import find_lr

    model = make_model(keras.optimizers.Adam(1e-3))
    result = find_lr(model, dataset, num_steps=30, verbose=0, planned_steps=40)
    assert result.config["planned_steps"] == 40
    assert result.config["budget_factor"] == pytest.approx(budget_factor(40))
    assert result.suggestion == pytest.approx(result.suggestions["basin"] * budget_factor(40))
    assert LRFindResult.from_dict(result.to_dict()) == result
