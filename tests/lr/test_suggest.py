"""Smoothing and suggestion rules on synthetic curves whose answer is known."""

import math

import numpy as np
import pytest

from ktlite.lr.suggest import (
    DEFAULT_SUGGESTION,
    is_flat,
    running_median,
    smooth_losses,
    suggest_all,
    suggest_basin,
    suggest_consensus,
    suggest_descent,
    suggest_minimum,
    suggest_steep,
    suggest_valley,
)


def test_smoothing_is_bias_corrected_ema():
    out = smooth_losses([1.0, 2.0, 4.0], beta=0.98)
    avg1 = 0.02 * 1.0
    avg2 = 0.98 * avg1 + 0.02 * 2.0
    avg3 = 0.98 * avg2 + 0.02 * 4.0
    expected = [avg1 / (1 - 0.98), avg2 / (1 - 0.98**2), avg3 / (1 - 0.98**3)]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_smoothing_a_constant_gives_the_constant():
    np.testing.assert_allclose(smooth_losses([2.5] * 50), 2.5, rtol=1e-12)


def test_smoothing_with_beta_zero_is_identity():
    np.testing.assert_allclose(smooth_losses([3.0, 1.0, 2.0], beta=0.0), [3.0, 1.0, 2.0])


def test_smoothing_propagates_non_finite():
    out = smooth_losses([1.0, float("nan"), 1.0])
    assert out[0] == 1.0 and math.isnan(out[1]) and math.isnan(out[2])


@pytest.mark.parametrize("beta", [1.0, -0.1, float("nan")])
def test_smoothing_rejects_a_beta_out_of_range(beta):
    with pytest.raises(ValueError, match="`beta`.*Received: beta="):
        smooth_losses([1.0], beta=beta)


@pytest.mark.parametrize("beta", ["0.9", True, None])
def test_smoothing_rejects_a_beta_of_the_wrong_type(beta):
    with pytest.raises(TypeError, match="`beta` must be a float in \\[0, 1\\). Received: beta="):
        smooth_losses([1.0], beta=beta)


def _sigmoid_drop(n=121, center=60, width=8.0):
    lrs = np.logspace(-7, 1, n)
    idx = np.arange(n)
    losses = 1.0 + 2.0 / (1.0 + np.exp((idx - center) / width))
    return lrs, losses


def test_steep_finds_the_inflection_of_a_known_drop():
    lrs, losses = _sigmoid_drop(center=60)
    assert suggest_steep(lrs, losses) == lrs[60]


def test_steep_ignores_the_curve_after_its_minimum():
    lrs, losses = _sigmoid_drop(center=50)
    losses = losses.copy()
    losses[100:] = losses[100] + np.linspace(0, 30, 21) ** 2  # violent divergence
    assert suggest_steep(lrs, losses) == lrs[50]


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss():
    lrs = np.logspace(-5, 0, 11)
    losses = np.array([5, 5, 4, 3, 2, 1.5, 1.0, 1.2, 3, 9, 20], dtype=float)
    assert suggest_minimum(lrs, losses) == pytest.approx(lrs[6] / 10)


def test_valley_sits_two_thirds_down_the_longest_descent():
    lrs = np.logspace(-6, 0, 61)
    plateau = np.full(20, 2.0)
    descent = np.linspace(2.0, 0.5, 31)[1:]  # indices 20..49
    tail = np.full(11, 0.7)
    losses = np.r_[plateau, descent, tail]
    # Longest strictly decreasing run: last plateau point (19) to the bottom (49).
    assert suggest_valley(lrs, losses) == lrs[19 + 20]


def test_valley_tolerates_small_bumps_in_the_descent():
    lrs = np.logspace(-6, 0, 61)
    losses = np.r_[np.full(20, 2.0), np.linspace(2.0, 0.5, 31)[1:], np.full(11, 0.7)]
    bumped = losses.copy()
    bumped[30] += 0.2  # one noisy point
    assert suggest_valley(lrs, bumped) == suggest_valley(lrs, losses)


def test_valley_is_below_the_minimum_and_above_the_plateau():
    lrs, losses = _sigmoid_drop(center=60, width=5.0)
    valley = suggest_valley(lrs, losses)
    assert lrs[45] < valley < lrs[int(np.argmin(losses))]


def test_suggestions_stop_at_the_first_non_finite_loss():
    lrs, losses = _sigmoid_drop(center=40)
    losses = losses.copy()
    losses[90:] = np.nan
    clean = suggest_all(lrs[:90], losses[:90], smooth_losses(losses[:90]))
    assert suggest_all(lrs, losses, smooth_losses(losses)) == clean


def test_too_short_curves_give_nan():
    for fn in (suggest_valley, suggest_steep):
        assert math.isnan(fn([1e-3, 1e-2], [1.0, 0.9]))
    assert math.isnan(suggest_minimum([1e-3], [float("nan")]))


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="equal length"):
        suggest_valley([1e-3, 1e-2], [1.0])


@pytest.mark.parametrize("rule", [suggest_valley, suggest_steep, suggest_minimum,
                                  suggest_basin, suggest_descent, is_flat])
@pytest.mark.parametrize("position, value, received", [
    (0, -1e-3, "lrs\\[0\\]=-0.001"),
    (3, float("nan"), "lrs\\[3\\]=nan"),
    (5, 0.0, "lrs\\[5\\]=0.0"),
])
def test_learning_rates_that_are_not_positive_and_finite_are_refused(rule, position, value,
                                                                     received):
    lrs, losses = _sigmoid_drop(center=40)
    lrs = lrs.copy()
    lrs[position] = value
    with pytest.raises(ValueError, match=f"`lrs` must be positive finite.*Received: {received}"):
        rule(lrs, losses)


@pytest.mark.parametrize("rule", [suggest_valley, suggest_steep, suggest_minimum,
                                  suggest_basin, suggest_descent, is_flat])
def test_learning_rates_out_of_order_are_refused_with_where(rule):
    lrs, losses = _sigmoid_drop(center=40)
    shuffled = lrs[::-1]  # a curve read backwards: its suggestion would mean nothing
    with pytest.raises(ValueError, match="`lrs` must be in increasing order.*Received: lrs\\[0\\]"):
        rule(shuffled, losses)
    held = np.repeat(lrs[::2], 2)[:lrs.size]  # a rate held for two steps is still a sweep
    rule(held, losses)


def test_default_suggestion_is_basin():
    assert DEFAULT_SUGGESTION == "basin"
    lrs, losses = _sigmoid_drop()
    suggestions = suggest_all(lrs, losses, smooth_losses(losses))
    assert set(suggestions) == {"valley", "steep", "minimum", "basin", "descent", "consensus"}
    assert suggestions["descent"] == suggest_descent(lrs, losses)
    assert suggestions["basin"] == suggest_basin(lrs, losses)
    assert suggestions["minimum"] == suggest_minimum(lrs, smooth_losses(losses))
    assert suggestions["consensus"] == suggest_consensus(lrs, losses, smooth_losses(losses))


def _consensus_by_hand(rules):
    # Each rule moved to basin's level by its median ratio on the suite, then the
    # geometric mean of those that could say.
    scale = {"valley": 0.26, "steep": 0.63, "minimum": 0.26, "basin": 1.0, "descent": 2.3}
    levels = [math.log(lr * scale[name]) for name, lr in rules.items() if math.isfinite(lr)]
    return math.exp(sum(levels) / len(levels))


def test_consensus_is_the_geometric_mean_of_the_rules_at_basins_level():
    lrs, losses = _noisy_sweep(0)
    suggestions = suggest_all(lrs, losses, smooth_losses(losses))
    rules = {k: v for k, v in suggestions.items() if k != "consensus"}
    assert suggestions["consensus"] == pytest.approx(_consensus_by_hand(rules), rel=1e-12)
    # It lies between the scaled rules, not at either end.
    assert min(rules["descent"] * 2.3, rules["basin"]) < suggestions["consensus"]
    assert suggestions["consensus"] < max(rules["valley"] * 0.26, rules["steep"] * 0.63)


def test_consensus_moves_less_than_basin_between_noisy_sweeps():
    values = {"basin": [], "consensus": []}
    for seed in range(5):
        lrs, losses = _noisy_sweep(seed)
        suggestions = suggest_all(lrs, losses, smooth_losses(losses))
        for name in values:
            values[name].append(suggestions[name])
    spreads = {name: max(v) / min(v) for name, v in values.items()}
    assert spreads["consensus"] <= 1.3
    assert spreads["consensus"] < spreads["basin"]


def test_consensus_leaves_out_rules_that_cannot_say_and_stays_in_the_sweep():
    lrs, losses = _noisy_sweep(0)
    smoothed = smooth_losses(losses)
    # Four points: only `minimum` can say, and one rule is no consensus.
    assert math.isfinite(suggest_minimum(lrs[:4], smoothed[:4]))
    assert math.isnan(suggest_consensus(lrs[:4], losses[:4], smoothed[:4]))
    # A short sweep whose smoothed curve has not come down yet: the rules of the smoothed
    # curve cannot say, basin and descent can, and so can the consensus (the two of them).
    # (A 30-step sweep of the tests' small model, find_lr's default range.)
    short = np.array([1.80, 1.38, 1.53, 1.12, 2.21, 1.86, 1.80, 1.38, 1.53, 1.12, 2.21, 1.86,
                      1.80, 1.38, 1.52, 1.12, 2.18, 1.82, 1.72, 1.30, 1.29, 0.88, 1.29, 1.00,
                      1.06, 1.39, 4.06, 3.56, 4.57, 4.90])
    short_lrs = np.logspace(-7, 1, short.size)
    rules = suggest_all(short_lrs, short, smooth_losses(short))
    assert math.isnan(rules["valley"]) and math.isfinite(rules["basin"])
    assert rules["consensus"] == pytest.approx(
        _consensus_by_hand({k: v for k, v in rules.items() if k != "consensus"}), rel=1e-12)
    # A steady fall to the end of the sweep: every rule sits at its top, and descent moved
    # up by 2.3 would leave the sweep; the consensus is held to the last swept rate.
    falling = np.linspace(3.0, 1.0, 50)
    top = np.logspace(-5, -1, 50)
    assert suggest_consensus(top, falling, smooth_losses(falling)) <= top[-1]
    with pytest.raises(ValueError, match="equal length"):
        suggest_consensus(lrs, losses, smoothed[:-1])
    with pytest.raises(ValueError, match="increasing order"):
        suggest_consensus(lrs[::-1], losses, smoothed)
    with pytest.raises(TypeError, match="`losses` must be a sequence of numbers"):
        suggest_consensus(lrs, losses, "1, 2, 3")


def test_noise_at_the_start_of_the_sweep_is_ignored():
    lrs, losses = _sigmoid_drop(center=70, width=6.0)
    noisy = losses.copy()
    noisy[:6] = [3.6, 2.2, 3.5, 2.1, 3.4, 2.0]  # the average has seen few batches here
    assert suggest_steep(lrs, noisy) == suggest_steep(lrs, losses) == lrs[70]
    assert suggest_valley(lrs, noisy) == suggest_valley(lrs, losses)


def test_plateau_noise_does_not_stretch_the_valley_back():
    lrs = np.logspace(-7, 1, 160)
    rng = np.random.default_rng(0)
    plateau = 2.0 + 0.01 * rng.standard_normal(100)  # wiggles: long decreasing subsequences
    losses = np.r_[plateau, np.linspace(2.0, 0.5, 41)[1:], np.linspace(0.5, 3.0, 21)[1:]]
    valley = suggest_valley(lrs, losses)
    assert lrs[120] <= valley <= lrs[130]


def test_running_median_is_centred_and_cut_at_the_ends():
    np.testing.assert_allclose(running_median([1.0, 9.0, 2.0, 3.0], 1), [5.0, 2.0, 3.0, 2.5])
    np.testing.assert_allclose(running_median([4.0, 1.0], 0), [4.0, 1.0])
    np.testing.assert_allclose(running_median([4.0, 1.0], np.int64(0)), [4.0, 1.0])
    with pytest.raises(ValueError, match="`half_width`.*Received: half_width=-1"):
        running_median([1.0], -1)


@pytest.mark.parametrize("bad", [1.5, True, "3", None])
def test_running_median_rejects_a_half_width_of_the_wrong_type(bad):
    with pytest.raises(TypeError, match="`half_width` must be an int >= 0. Received"):
        running_median([1.0], bad)


@pytest.mark.parametrize("losses, received", [
    (None, "losses=None"), (3, "losses=3"), ("abc", "losses='abc'"),
    ([1.0, None, 2.0], "losses holding None of type NoneType"),
    (["a"] * 4, "losses holding 'a' of type str"),
    ([1.0, 2.0, "3"], "losses holding '3' of type str"),
])
def test_losses_that_are_no_sequence_of_numbers_are_type_errors_naming_them(losses, received):
    lrs = np.logspace(-5, 0, 4)
    match = f"`losses` must be a sequence of numbers. Received: {received}"
    for call in (lambda: smooth_losses(losses), lambda: running_median(losses, 2),
                 lambda: suggest_valley(lrs, losses), lambda: suggest_basin(lrs, losses),
                 lambda: suggest_minimum(lrs, losses), lambda: is_flat(lrs, losses)):
        with pytest.raises(TypeError, match=match):
            call()


def test_learning_rates_that_are_no_sequence_of_numbers_are_type_errors_naming_them():
    with pytest.raises(TypeError, match="`lrs` must be a sequence of numbers. Received: lrs=3"):
        suggest_steep(3, [1.0, 2.0])
    with pytest.raises(TypeError, match="`lrs` must be .* Received: lrs holding '1e-3' of type"):
        suggest_descent(["1e-3", "1e-2"], [1.0, 2.0])


def test_a_curve_that_is_not_one_dimensional_is_a_value_error():
    with pytest.raises(ValueError, match=r"`losses` must be 1-D \(one value per step\). "
                                         r"Received: losses of shape \(2, 2\)"):
        running_median([[1.0, 2.0], [3.0, 4.0]], 1)
    with pytest.raises(ValueError, match="`losses` must be 1-D"):
        smooth_losses(np.ones((3, 1)))
    np.testing.assert_allclose(smooth_losses(np.float32([1.0, 2.0])), smooth_losses([1, 2]))
    np.testing.assert_allclose(running_median(np.array([4.0, 1.0], dtype=object), 0), [4, 1])


def _drop_then_rise(rise, n=200, drop_at=100):
    """Plateau at 2, a drop to 1 centred on `drop_at`, then a rise of the given steepness."""
    lrs = np.logspace(-7, 1, n)
    idx = np.arange(n, dtype=float)
    losses = 1.0 + 1.0 / (1.0 + np.exp((idx - drop_at) / 3.0))
    after = idx > drop_at + 40
    losses[after] += rise * (idx[after] - drop_at - 40) ** 2
    return lrs, losses


def test_basin_is_half_a_decade_below_where_the_drop_ends():
    lrs, losses = _drop_then_rise(rise=0.05)
    # The drop (a sigmoid of width 3 steps) is within 5% of its depth 9 steps after its
    # centre (1 / (1 + e**3) = 0.047; 8 steps after: 0.065).
    expected = lrs[100 + 9] / 10 ** 0.5
    assert suggest_basin(lrs, losses) == pytest.approx(expected, rel=1e-9)


def test_basin_does_not_depend_on_how_fast_the_loss_diverges():
    # What made `minimum` too high for a Transformer: after the same descent the loss rose
    # slowly, and the lagging moving average kept falling for decades of learning rate.
    lrs, sharp = _drop_then_rise(rise=0.05)
    _, slow = _drop_then_rise(rise=0.0005)
    assert suggest_basin(lrs, sharp) == suggest_basin(lrs, slow)
    assert suggest_minimum(lrs, smooth_losses(slow)) > 3 * suggest_minimum(
        lrs, smooth_losses(sharp)
    )


def test_basin_is_not_moved_by_wild_batches_or_a_noisy_flat_bottom():
    lrs, losses = _drop_then_rise(rise=0.05)
    rng = np.random.default_rng(0)
    noisy = losses.copy()
    noisy[115:140] = 1.0 + 0.02 * rng.standard_normal(25)  # long flat bottom, noise
    noisy[[60, 105, 130]] = [0.1, 6.0, 0.2]  # single wild batches
    step = 10 ** (8 / 199)  # one step of the sweep
    ratio = suggest_basin(lrs, noisy) / suggest_basin(lrs, losses)
    assert step**-2 <= ratio <= step**2


def test_basin_is_held_near_the_drop_when_the_sweep_trains_the_model_on():
    # A sweep of several epochs over a small set: the loss drops at lr 1e-2 and, after
    # many more updates, sinks again at the end of the sweep (the shape CI met with the
    # image CNN, where `basin` alone suggested 3.16). Only the first drop is the rate's.
    lrs = np.logspace(-6, 1, 100)
    losses = np.where(lrs < 1e-2, 1.0, 0.2)
    losses[lrs > 3.0] = 0.01
    descent = suggest_descent(lrs, losses)
    assert suggest_basin(lrs, losses) == pytest.approx(10 * descent, rel=1e-9)
    assert suggest_basin(lrs, losses) < 0.3  # the late bottom's entry / sqrt(10) is ~1
    # ...and a curve with one drop is left alone.
    single = np.where(lrs < 1e-2, 1.0, 0.2)
    assert suggest_basin(lrs, single) == pytest.approx(lrs[lrs >= 1e-2][0] / 10**0.5)


def test_basin_ignores_everything_from_the_first_non_finite_loss():
    lrs, losses = _drop_then_rise(rise=0.05)
    cut = losses.copy()
    cut[150:] = np.nan
    assert suggest_basin(lrs, cut) == suggest_basin(lrs[:150], losses[:150])
    assert math.isnan(suggest_basin(lrs[:4], losses[:4]))
    with pytest.raises(ValueError, match="equal length"):
        suggest_basin(lrs, losses[:-1])


def _noisy_sweep(seed, noise=0.08, n=200):
    """A slowly flattening drop (a real curve's shape) with batch noise: loss 2 -> 1."""
    lrs, losses = _drop_then_rise(rise=0.002, n=n)
    idx = np.arange(n, dtype=float)
    losses = 1.0 + 1.0 / (1.0 + np.exp((idx - 100) / 10.0)) + (losses - 1.0 - 1.0 / (
        1.0 + np.exp((idx - 100) / 3.0)))
    return lrs, losses + noise * np.random.default_rng(seed).standard_normal(n)


def test_descent_sits_a_quarter_decade_below_the_middle_of_the_drop():
    lrs, losses = _drop_then_rise(rise=0.05)
    # A sigmoid of width 3 steps crosses 50 ... 90% of its drop 0, 1.2, 2.5, 4.2, 6.6 steps
    # after its centre: their mean is 2.9 steps of the sweep.
    got = suggest_descent(lrs, losses)
    step = 10 ** (8 / 199)
    expected = lrs[100] * step ** np.mean([0, 2, 3, 5, 7]) / 10 ** 0.25
    assert got == pytest.approx(expected, rel=1e-9)
    assert got < suggest_basin(lrs, losses) * 10 ** 0.5


def test_descent_does_not_depend_on_how_fast_the_loss_diverges():
    lrs, sharp = _drop_then_rise(rise=0.05)
    _, slow = _drop_then_rise(rise=0.0005)
    assert suggest_descent(lrs, sharp) == suggest_descent(lrs, slow)


def test_descent_ignores_wild_batches_and_the_first_non_finite_loss():
    lrs, losses = _drop_then_rise(rise=0.05)
    wild = losses.copy()
    wild[[60, 105, 130]] = [0.1, 6.0, 0.2]
    step = 10 ** (8 / 199)  # one step of the sweep (basin is allowed two)
    ratio = suggest_descent(lrs, wild) / suggest_descent(lrs, losses)
    assert step**-1 <= ratio <= step
    cut = losses.copy()
    cut[150:] = np.nan
    assert suggest_descent(lrs, cut) == suggest_descent(lrs[:150], losses[:150])
    assert math.isnan(suggest_descent(lrs[:4], losses[:4]))


def test_descent_moves_less_than_basin_between_noisy_sweeps():
    # Five sweeps of the same curve with different batch noise: the entry into a flat
    # bottom (basin) wanders further than the middle of the drop (descent).
    spreads = {}
    for name, rule in (("basin", suggest_basin), ("descent", suggest_descent)):
        values = [rule(*_noisy_sweep(seed)) for seed in range(5)]
        spreads[name] = max(values) / min(values)
    assert spreads["descent"] <= 1.5
    assert spreads["descent"] < spreads["basin"]


def _synthetic_curve(n, seed, center=-3.0, noise=0.05, tail=2.0, nan_from=None):
    """A positive sweep: plateau, drop around lr 10**center, divergence, batch noise."""
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-7, 1, n)
    x = np.log10(lrs)
    losses = np.abs(0.4 + 1.8 / (1.0 + np.exp((x - center) * 3.0))
                    + tail * np.maximum(0.0, x - center - 1.5) ** 2
                    + noise * rng.normal(size=n))
    if nan_from is not None:
        losses[nan_from:] = np.nan
    return lrs, losses


_CURVES = {
    "default": dict(n=200, seed=0),
    "short": dict(n=60, seed=1, center=-4.0, noise=0.1),
    "noisy": dict(n=120, seed=2, center=-2.0, noise=0.3, tail=0.5),
    "nan_tail": dict(n=200, seed=3, center=-3.5, nan_from=170),
    "late": dict(n=200, seed=4, center=-0.5, noise=0.02, tail=8.0),
}

# What the rules suggested on these curves before the range clamp and `is_flat` (a run of
# the module at commit 6c09a98): benchmarks/RESULTS.md scores these rules, so ordinary
# curves must keep their suggestions, to within the last bits that numpy's reductions
# round differently on other CPUs (AVX2 and AVX-512 machines differ in the 16th digit).
_SUGGESTED_BEFORE = {
    "default": {"valley": 0.015343684089300131, "steep": 0.003827494478516315,
                "minimum": 0.011758495540521581, "basin": 0.002538181141826046,
                "descent": 0.0010263761049109222},
    "short": {"valley": 0.0015973122800602556, "steep": 0.00017957144943716409,
              "minimum": 0.0014208308325339208, "basin": 0.0001979749169679639,
              "descent": 0.00010098044684284654},
    "noisy": {"valley": 0.4523370744772096, "steep": 0.05179474679231213,
              "minimum": 0.6285203269240097, "basin": 0.04146169559796815,
              "descent": 0.013432327144429546},
    "nan_tail": {"valley": 0.004198707084443914, "steep": 0.001516716888470924,
                 "minimum": 0.0035297073027306504, "basin": 0.0010058021573680416,
                 "descent": 0.00035728524014272476},
    "late": {"valley": 2.0729217795953696, "steep": 1.4314589375234785, "minimum": 1.0,
             "basin": 0.865338307114046, "descent": 0.36990521340689975},
}


@pytest.mark.parametrize("name", sorted(_CURVES))
def test_ordinary_curves_keep_their_suggestions(name):
    lrs, losses = _synthetic_curve(**_CURVES[name])
    suggested = suggest_all(lrs, losses, smooth_losses(losses))
    consensus = suggested.pop("consensus")
    assert suggested == pytest.approx(_SUGGESTED_BEFORE[name], rel=1e-12, abs=0)
    assert consensus == pytest.approx(
        min(_consensus_by_hand(_SUGGESTED_BEFORE[name]), float(lrs[-1])), rel=1e-12)
    assert not is_flat(lrs, losses)


@pytest.mark.parametrize("name", sorted(_CURVES))
@pytest.mark.parametrize("shift", [-1.0, -5.0, -100.0, 3.0])
def test_a_shifted_curve_gets_the_same_suggestions(name, shift):
    # A loss below zero (cosine similarity) is read like the same loss moved above it.
    lrs, losses = _synthetic_curve(**_CURVES[name])
    shifted = losses + shift
    assert (suggest_all(lrs, shifted, smooth_losses(shifted))
            == suggest_all(lrs, losses, smooth_losses(losses)))
    assert not is_flat(lrs, shifted)


def test_no_suggestion_lies_below_the_swept_range():
    # The loss drops in the first points of the sweep: a tenth of the minimum's rate, or
    # half a decade below the basin's entry, would be rates the sweep never tried.
    lrs = np.logspace(-9, -7, 100)
    index = np.arange(100)
    losses = 1.0 + np.exp(-index / 6.0) + 0.02 * np.maximum(0, index - 20)
    suggestions = suggest_all(lrs, losses, smooth_losses(losses))
    for rule, lr in suggestions.items():
        assert lrs[0] <= lr <= lrs[-1], rule
    assert suggestions["minimum"] == suggestions["basin"] == lrs[0]


@pytest.mark.parametrize("n", [50, 100, 400])
@pytest.mark.parametrize("seed", range(3))
def test_is_flat_tells_batch_noise_from_a_drop(n, seed):
    # A sweep over a small data set: each batch's own loss, cycled, plus noise.
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-9, -7, n)
    noise = 0.1 * np.tile(rng.normal(size=6), n)[:n] + 0.03 * rng.normal(size=n)
    assert is_flat(lrs, 1.0 + noise)
    assert is_flat(lrs, -3.0 + 5.0 * noise)  # shifted and scaled
    assert is_flat(lrs, 1.0 + noise + np.linspace(0.0, 2.0, n))  # rises from the start
    drop = 2.0 / (1.0 + np.exp(np.arange(n) - n / 2.0))
    assert not is_flat(lrs, 1.0 + noise + drop)


def test_is_flat_needs_enough_points_and_a_drop():
    lrs = np.logspace(-9, -7, 49)
    assert not is_flat(lrs, np.ones(49))  # too few points to tell the noise
    assert is_flat(np.logspace(-9, -7, 50), np.ones(50))  # no drop at all
    lrs, losses = _sigmoid_drop()
    assert not is_flat(lrs, losses)  # a noiseless drop
    with pytest.raises(ValueError, match="equal length"):
        is_flat(lrs, losses[:-1])
