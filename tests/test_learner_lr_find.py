"""Learner.lr_find / lr_plot / lr_estimate delegate to ktlite.lr and leave the model alone."""

import keras
import matplotlib.figure
import numpy as np
import pytest

from ktlite.learner import get_learner
from ktlite.lr import LRFindResult
from ktlite.lr.budget import budget_factor

N, D, BS = 128, 4, 16


def _learner():
    keras.utils.set_random_seed(0)  # every learner starts from the same weights
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype("float32")
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return get_learner(model, (x, y), batch_size=BS, verbose=0)


def test_lr_find_sweeps_cycles_data_and_restores_the_model():
    learner = _learner()
    model = learner.model
    before = [w.copy() for w in model.get_weights()]
    optimizer_before = [v.numpy().copy() for v in model.optimizer.variables]
    result = learner.lr_find(start_lr=1e-5, end_lr=1.0, num_steps=3 * N // BS)
    assert isinstance(result, LRFindResult) and learner.lr_result is result
    assert len(result.lrs) == len(result.losses) > N // BS  # more steps than one epoch
    assert result.lrs[0] == pytest.approx(1e-5, rel=1e-5)
    assert np.all(np.diff(result.lrs) > 0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(model.optimizer.variables, optimizer_before):
        np.testing.assert_array_equal(got.numpy(), want)


def test_a_result_shows_in_one_line_and_passed_as_a_rate_points_to_its_suggestion():
    learner = _learner()
    result = learner.lr_find(num_steps=40)
    shown = repr(result)
    assert len(shown) < 300 and "\n" not in shown
    assert f"suggestion={result.suggestion:.3g}" in shown and "40 steps" in shown
    with pytest.raises(TypeError, match=r"positive float \(the finder's rate is its "
                                        r"`.suggestion`\). Received: lr of type LRFindResult"):
        learner.fit_onecycle(result, 1)


def test_lr_estimate_and_plot_after_sweep():
    learner = _learner()
    with pytest.raises(ValueError, match="lr_find"):
        learner.lr_estimate()
    with pytest.raises(ValueError, match="lr_find"):
        learner.lr_plot()
    result = learner.lr_find(num_steps=40, show_plot=True)
    suggestions = learner.lr_estimate()
    assert {"valley", "steep", "minimum", "basin"} <= set(suggestions)
    assert suggestions == result.suggestions and result.suggestion in suggestions.values()
    assert isinstance(learner.lr_plot(), matplotlib.figure.Figure)
    assert isinstance(learner.lr_plot(suggest=False), matplotlib.figure.Figure)


def test_a_sweep_without_a_suggestion_says_why():
    learner = _learner()
    with pytest.warns(RuntimeWarning, match=r"nan\): 5 steps are too few to read the curve: "
                                            r"raise `num_steps`"):
        assert np.isnan(learner.lr_find(num_steps=5, verbose=0).suggestion)
    # It diverges from the first update on: within a decade of `start_lr`, where noise rises
    # alike, the warning names both causes.
    with pytest.warns(RuntimeWarning, match=r"The LR sweep stopped after \d+ of 50 steps, "
                                            r"within a decade of `start_lr` \(1000\).*Either "
                                            r"`start_lr` is already too high \(lower it\), or "
                                            r"the loss is at noise level"):
        learner.lr_find(start_lr=1e3, end_lr=1e6, num_steps=50, verbose=0)


def test_suggested_lr_trains_better_than_rates_a_hundred_times_off():
    learner = _learner()
    suggestion = learner.lr_find(num_steps=60).suggestion
    results = {}
    for factor in (0.01, 1.0, 100.0):
        trained = _learner()
        trained.fit_onecycle(suggestion * factor, 4)
        x, y = trained.train_data.x, trained.train_data.y
        results[factor] = trained.model.evaluate(x, y, verbose=0, return_dict=True)
    assert results[1.0]["loss"] < results[0.01]["loss"]
    assert results[1.0]["loss"] < results[100.0]["loss"]
    assert results[1.0]["accuracy"] >= 0.9


def test_lr_find_leaves_metrics_it_built_empty():
    learner = _learner()  # never trained: its compiled metrics are built by the sweep
    learner.lr_find(num_steps=20)
    assert learner.model.metrics_variables
    for variable in learner.model.metrics_variables:
        assert float(variable.numpy()) == 0.0, variable.path


def test_lr_find_epochs_scales_the_suggestion_for_the_planned_fit():
    from ktlite.lr.budget import budget_factor

    learner = _learner()
    short = learner.lr_find(num_steps=40, epochs=2)
    assert short.config["planned_steps"] == 2 * (N // BS)
    assert short.suggestion == pytest.approx(
        short.suggestions["basin"] * budget_factor(2 * (N // BS))
    )
    with pytest.raises(TypeError, match="`epochs`"):
        learner.lr_find(num_steps=40, epochs=1.5)


def test_lr_find_confirm_restores_bit_for_bit_and_records_the_runs():
    learner = _learner()
    learner.fit_onecycle(1e-3, 1)  # optimizer state worth keeping
    model = learner.model
    before = [v.numpy().copy() for v in model.variables]
    optimizer_before = [v.numpy().copy() for v in model.optimizer.variables]
    lr_before = float(model.optimizer.learning_rate.numpy())
    result = learner.lr_find(num_steps=40, epochs=1000, confirm=True, confirm_steps=6)
    for got, want in zip(model.variables, before):
        np.testing.assert_array_equal(got.numpy(), want)
    for got, want in zip(model.optimizer.variables, optimizer_before):
        np.testing.assert_array_equal(got.numpy(), want)
    assert float(model.optimizer.learning_rate.numpy()) == lr_before
    record = result.config["confirm"]
    assert result.suggestion == record["chosen"] and record["chosen"] in record["lrs"]
    assert record["judged_by"] == "loss" and record["seconds"] >= 0
    # The short runs were told the planned fit: its rates moved to 6 steps from 1000 epochs.
    horizon = budget_factor(6) / budget_factor(1000 * learner._train_steps())
    assert len(record["lrs"]) > 1 and horizon != 1.0
    assert record["run_lrs"] == pytest.approx([lr * horizon for lr in record["lrs"]])
    assert LRFindResult.from_dict(result.to_dict()).config["confirm"]["lrs"] == record["lrs"]
    with pytest.raises(TypeError, match="`confirm`"):
        learner.lr_find(num_steps=40, confirm=1)


@pytest.mark.parametrize("flag", [1, "yes", None])
def test_lr_find_show_plot_of_the_wrong_type_is_a_type_error(flag):
    learner = _learner()
    with pytest.raises(TypeError, match=f"`show_plot` must be True or False. Received: "
                                        f"show_plot={flag!r}"):
        learner.lr_find(num_steps=5, show_plot=flag)
    assert learner.lr_result is None  # refused before sweeping


def test_lr_find_runs_the_callbacks_it_is_given_on_the_sweep_batches():
    class _Counter(keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            _Counter.batches += 1

    learner = _learner()
    result = learner.lr_find(num_steps=20, callbacks=[_Counter()])
    assert _Counter.batches == len(result.lrs) > 0
    with pytest.raises(TypeError, match="callbacks"):
        learner.lr_find(num_steps=20, callbacks=[object()])


def test_lr_find_then_fit_onecycle_trace_the_train_step_once():
    # Without a strategy, Keras creates the compiled metrics' variables inside the first
    # trace of the train step and TensorFlow then traces the whole step again; the learner
    # builds them beforehand (ktlite.lr.preserve.ensure_built).
    traces = []

    class Counting(keras.Sequential):
        # A train step set on the instance would get a policy driver of its own.
        def train_step(self, data):
            traces.append(data)
            return super().train_step(data)

    learner = _learner()
    model = Counting([keras.Input((D,)), *learner.model.layers], name="counting")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    learner = get_learner(model, learner.train_data, batch_size=BS, verbose=0)
    learner.lr_find(num_steps=12)
    learner.fit_onecycle(1e-2, 1)
    assert len(traces) == 1
    assert "accuracy" in learner.history.history


def test_lr_find_sweeps_averages_several_sweeps_and_restores_the_model():
    learner = _learner()
    before = [w.copy() for w in learner.model.get_weights()]
    result = learner.lr_find(num_steps=40, sweeps=3, epochs=2)
    assert len(result.per_sweep) == 3 and learner.lr_result is result
    assert len({tuple(sweep.losses) for sweep in result.per_sweep}) == 3
    basins = [sweep.suggestions["basin"] for sweep in result.per_sweep]
    assert result.suggestion == pytest.approx(
        float(np.exp(np.mean(np.log(basins)))) * budget_factor(2 * (N // BS)))
    assert all(sweep.suggestion == sweep.suggestions["basin"] for sweep in result.per_sweep)
    for got, want in zip(learner.model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="`sweeps` must be .*Received: sweeps="):
        learner.lr_find(num_steps=40, sweeps="3")


def _seeded_fit(sweeps):
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    learner = get_learner(model, (x, y), batch_size=32, seed=0, verbose=0)
    if sweeps:
        learner.lr_find(num_steps=20, verbose=0, sweeps=sweeps)
    learner.fit_onecycle(1e-2, 1, verbose=0)
    return model.get_weights()


def test_lr_find_leaves_a_seeded_fit_as_it_would_be_without_it():
    # The sweep used to take a pass of the fit's own cached dataset, moving its shuffling on:
    # the fit after it saw other batches than the same fit alone.
    alone = _seeded_fit(0)
    for sweeps in (1, 2):
        for a, b in zip(alone, _seeded_fit(sweeps)):
            np.testing.assert_array_equal(a, b)


def test_confirm_with_no_rate_from_any_rule_says_so_not_an_internal_argument():
    learner = _learner()
    with pytest.warns(RuntimeWarning), pytest.raises(
            ValueError, match=r"`confirm=True` has no rates to try: no rule found a rate.*"
                              r"`start_lr`, `end_lr`.*'basin': nan") as caught:
        learner.lr_find(start_lr=100.0, end_lr=1e6, num_steps=20, confirm=True, verbose=0)
    assert learner.lr_result is not None  # the sweep is kept, to plot
    # The sweep stopped as its loss rose: "the loss never fell" sent users after the curve.
    steps = len(learner.lr_result.lrs)
    assert (f"(it stopped after {steps} of 20 steps, its loss past `stop_factor` times its "
            "lowest (the sweep's warning says why), see `learner.lr_plot()`)") in str(
        caught.value)
    assert "never fell" not in str(caught.value)


def test_confirm_with_no_rate_from_any_of_several_sweeps_names_them_and_the_first():
    learner = _learner()
    with pytest.warns(RuntimeWarning, match=r"Sweep 1 of 2 of the LR finder could not "
                                            r"read.* Likewise sweep 2 of 2"), \
            pytest.raises(ValueError, match=r"no rule found a rate in any of its 2 sweeps "
                                            r"\(the first: it stopped after \d+ of 20 steps"):
        learner.lr_find(start_lr=100.0, end_lr=1e6, num_steps=20, confirm=True, verbose=0,
                        sweeps=2)


def test_confirm_steps_without_confirm_is_refused_not_ignored():
    learner = _learner()
    with pytest.raises(ValueError, match=r"`confirm_steps` sets the length of the confirming "
                                         r"runs, which only `confirm=True` makes.*Received: "
                                         r"confirm_steps=5, confirm=False"):
        learner.lr_find(num_steps=20, confirm_steps=5, verbose=0)
    assert learner.lr_result is None  # refused before the sweep
    with pytest.raises(TypeError, match="`confirm_steps` must be a positive int"):
        learner.lr_find(num_steps=20, confirm_steps="5", verbose=0)
