"""The confirming pass: short runs at candidate rates, the best one picked, nothing changed."""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.lr.budget import budget_factor
from ktlite.lr.confirm import SAME_RATE, candidate_lrs, confirm_lr


def _state(model):
    optimizer = model.optimizer
    return {
        "weights": [v.numpy().copy() for v in model.variables],
        "metrics": [v.numpy().copy() for v in model.metrics_variables],
        "optimizer": [v.numpy().copy() for v in optimizer.variables] if optimizer.built else [],
        "lr": float(optimizer.learning_rate.numpy()),
        "iterations": int(optimizer.iterations.numpy()),
        "built": optimizer.built,
    }


def _assert_same(before, after):
    assert before["iterations"] == after["iterations"]
    assert before["lr"] == after["lr"] and before["built"] == after["built"]
    for key in ("weights", "metrics", "optimizer"):
        assert len(before[key]) == len(after[key])
        for a, b in zip(before[key], after[key]):
            np.testing.assert_array_equal(a, b)


@pytest.fixture
def trained(make_model, dataset):
    model = make_model(keras.optimizers.Adam(1e-3), dropout=0.2, metrics=["accuracy"])
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return model


def test_candidates_are_the_default_and_the_extremes_without_near_duplicates():
    suggestions = {"basin": 1e-3, "valley": 1.1e-3, "minimum": 2e-2, "steep": 4e-4,
                   "descent": math.nan}
    # 4e-4 is 2.5x below the default (a distinct candidate); 1.1e-3 is not.
    assert 1e-3 / 4e-4 >= SAME_RATE > 1.1
    assert candidate_lrs(suggestions, 1e-3) == [4e-4, 1e-3, 2e-2]
    spread = {"a": 1e-4, "b": 1e-3, "c": 1e-2}
    assert candidate_lrs(spread, 1e-3) == [1e-4, 1e-3, 1e-2]
    assert candidate_lrs(spread, 1e-3, max_candidates=2) == [1e-4, 1e-3]
    assert candidate_lrs({"a": 1e-3}, 1.2e-3) == [1.2e-3]
    assert candidate_lrs(spread, 1e-3, max_candidates=np.int64(1)) == [1e-3]
    with pytest.raises(ValueError, match="`max_candidates`.*Received: max_candidates=0"):
        candidate_lrs(spread, 1e-3, max_candidates=0)


@pytest.mark.parametrize("bad", ["3", True, 2.0, None])
def test_max_candidates_of_the_wrong_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="`max_candidates` must be a positive int. Received"):
        candidate_lrs({"a": 1e-3}, 1e-3, max_candidates=bad)


def test_non_finite_suggestions_and_default_are_ignored():
    assert candidate_lrs({"a": math.nan, "b": None, "c": np.float64(1e-2)}, math.inf) == [1e-2]
    assert candidate_lrs({"a": 1e-3}, np.float64(math.nan)) == [1e-3]


@pytest.mark.parametrize(
    "suggestions, default, error, expected",
    [({"a": 1e-3}, 0.0, ValueError, r"`default` must be a positive float. Received: default=0.0"),
     ({"a": 1e-3}, -1.0, ValueError, r"`default` must be a positive float.*default=-1.0"),
     ({"a": -1e-3}, 1e-3, ValueError, r"`suggestions\['a'\]` must be a positive float"),
     ({"a": "x"}, 1e-3, TypeError, r"`suggestions\['a'\]` must be a positive float.*='x'"),
     ({"a": 1e-3}, "1e-3", TypeError, r"`default` must be a positive float.*='1e-3'"),
     ({"a": 1e-3}, None, TypeError, r"`default` must be a positive float.*default=None"),
     ([1e-3, 1e-2], 1e-3, TypeError, r"`suggestions` must be a dict of learning rates by "
                                     r"rule .*Received: suggestions of type list")],
)
def test_bad_suggestions_or_default_are_named(suggestions, default, error, expected):
    # A zero default divided by zero, a negative one came back as a candidate, a list
    # raised an AttributeError.
    with pytest.raises(error, match=expected):
        candidate_lrs(suggestions, default)


@pytest.mark.parametrize("lrs", [None, 1e-3, "1e-3"])
def test_lrs_that_are_not_a_list_of_rates_are_a_type_error(trained, dataset, lrs):
    with pytest.raises(TypeError, match=r"`lrs` must be a list of candidate learning rates "
                                        r".*one rate as \[rate\]\)\. Received: lrs="):
        confirm_lr(trained, dataset, lrs)


def test_confirm_picks_the_rate_with_the_lowest_short_run_loss_and_restores(trained, dataset):
    val = dataset.take(2)
    before = _state(trained)
    trained.history = "kept"
    record = confirm_lr(trained, dataset, [1e-6, 3e-2, 1e3], steps=12, val_dataset=val)
    _assert_same(before, _state(trained))
    assert trained.history == "kept"
    assert record["judged_by"] == "val_loss" and record["steps"] == 12
    # A rate that barely moves the weights, a good one, and one that blows up.
    assert record["chosen"] == 3e-2
    finite = [loss for loss in record["losses"] if loss is not None]
    assert record["losses"][1] == min(finite)
    assert record["losses"][2] is None or record["losses"][2] > record["losses"][1]
    # The recorded loss is the one a plain run at that rate reaches on the same batches.
    again = confirm_lr(trained, dataset, [3e-2, 1e-6], steps=12, val_dataset=val)
    assert again["losses"][0] == pytest.approx(record["losses"][1], rel=1e-5)


def test_short_runs_train_at_the_candidates_moved_to_their_length(trained, dataset):
    # Rates for a fit of 10,000 updates, tried in runs of 12: ten times higher there.
    record = confirm_lr(trained, dataset, [1e-3, 3e-2], steps=12, planned_steps=10_000)
    horizon = budget_factor(12) / budget_factor(10_000)
    assert horizon == pytest.approx(10.0)
    assert record["run_lrs"] == pytest.approx([1e-2, 3e-1])
    # Not told the fit's length: the budget rule's reference length.
    record = confirm_lr(trained, dataset, [1e-3, 3e-2], steps=12)
    assert record["run_lrs"] == pytest.approx([1e-3 * budget_factor(12), 3e-2 * budget_factor(12)])
    with pytest.raises(ValueError, match="`planned_steps`"):
        confirm_lr(trained, dataset, [1e-3, 3e-2], steps=12, planned_steps=0)


def test_a_long_planned_fit_turns_the_choice_to_the_lower_rate(make_model, dataset):
    keras.utils.set_random_seed(0)
    model = make_model(keras.optimizers.SGD(momentum=0.9))
    val = dataset.take(2)
    # Judged as rates for runs as short as the confirming ones, the higher rate wins...
    short = confirm_lr(model, dataset, [1e-2, 3e-1], steps=12, planned_steps=12,
                       val_dataset=val)
    assert short["run_lrs"] == [1e-2, 3e-1] and short["chosen"] == 3e-1
    # ...but moved to 12 steps from a fit of 10,000 it runs at 3.0 and blows up.
    long = confirm_lr(model, dataset, [1e-2, 3e-1], steps=12, planned_steps=10_000,
                      val_dataset=val)
    assert long["run_lrs"] == pytest.approx([1e-1, 3.0]) and long["chosen"] == 1e-2


def test_confirm_without_validation_data_judges_by_training_loss(trained, dataset):
    record = confirm_lr(trained, dataset, [1e-6, 3e-2], steps=8)
    assert record["judged_by"] == "loss" and record["chosen"] == 3e-2


def test_an_optimizer_without_momentum_confirms_without_a_momentum_warning(make_model, dataset):
    import warnings

    model = make_model(keras.optimizers.SGD(1e-2))  # plain SGD: no momentum to cycle
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = confirm_lr(model, dataset, [1e-4, 3e-2], steps=8)
    assert record["chosen"] in (1e-4, 3e-2)


def test_confirm_leaves_an_unbuilt_optimizer_unbuilt(make_model, dataset):
    model = make_model(keras.optimizers.Adam(1e-3))
    model.build((None, 6))
    before = _state(model)
    confirm_lr(model, dataset, [1e-4, 1e-2], steps=4)
    _assert_same(before, _state(model))


def _unbuilt_model():
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def test_confirm_on_a_never_built_model_leaves_its_first_weights(dataset):
    keras.utils.set_random_seed(3)
    fresh = _unbuilt_model()
    fresh.build((None, 6))
    keras.utils.set_random_seed(3)
    model = _unbuilt_model()
    assert not model.built
    confirm_lr(model, dataset, [1e-4, 1e-2], steps=4)
    assert model.built and len(model.weights) == len(fresh.weights)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)  # built, then every run put back


def test_a_single_candidate_is_not_trained(trained, dataset):
    before = _state(trained)
    record = confirm_lr(trained, dataset, [1e-3], steps=5)
    assert record == {"lrs": [1e-3], "run_lrs": [], "losses": [None], "chosen": 1e-3,
                      "steps": 0, "judged_by": "loss"}
    _assert_same(before, _state(trained))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"lrs": []}, "lrs"), ({"lrs": [1e-3, -1.0]}, "lrs[1]"), ({"lrs": [math.inf]}, "lrs[0]"),
     ({"steps": 0}, "steps"), ({"planned_steps": 0}, "planned_steps")],
)
def test_bad_arguments_are_named(trained, dataset, kwargs, name):
    args = {"lrs": [1e-3, 1e-2], **kwargs}
    with pytest.raises(ValueError, match=re.escape(f"`{name}`")):
        confirm_lr(trained, dataset, **args)


@pytest.mark.parametrize(
    "args, name",
    [(("a model", "dataset", None), "model"), ((None, "dataset", None), "model"),
     (("trained", "arrays", None), "dataset"), (("trained", None, None), "dataset"),
     (("trained", "dataset", [1, 2]), "val_dataset"),
     (("trained", "dataset", "arrays"), "val_dataset")],
)
def test_a_model_or_dataset_of_the_wrong_type_is_a_type_error(
    trained, data, dataset, args, name
):
    given = {"trained": trained, "dataset": dataset, "arrays": data}
    model, train, val = (given.get(a, a) if isinstance(a, str) else a for a in args)
    with pytest.raises(TypeError, match=re.escape(f"`{name}` must be a ") + ".*Received: "):
        confirm_lr(model, train, [1e-3, 1e-2], val_dataset=val)


def test_an_uncompiled_model_is_a_value_error(dataset):
    uncompiled = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not compiled"):
        confirm_lr(uncompiled, dataset, [1e-3, 1e-2])


@pytest.mark.parametrize(
    "kwargs, name",
    [({"steps": "3"}, "steps"), ({"steps": True}, "steps"), ({"steps": 2.0}, "steps"),
     ({"lrs": ["1e-3", 1e-2]}, "lrs[0]"), ({"lrs": [1e-3, True]}, "lrs[1]"),
     ({"planned_steps": "10"}, "planned_steps"), ({"planned_steps": 1.0}, "planned_steps")],
)
def test_arguments_of_the_wrong_type_are_type_errors(trained, dataset, kwargs, name):
    args = {"lrs": [1e-3, 1e-2], **kwargs}
    with pytest.raises(TypeError, match=re.escape(f"`{name}` must be a positive ") + ".*Received"):
        confirm_lr(trained, dataset, **args)


def test_every_run_diverging_is_an_error(trained, dataset):
    x = tf.data.Dataset.from_tensor_slices(
        (np.full((32, 6), 1e30, "float32"), np.zeros(32, "int32"))
    ).batch(16)
    with pytest.raises(ValueError, match="diverged"):
        confirm_lr(trained, x, [1e-3, 1e-1], steps=2)
