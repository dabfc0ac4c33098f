"""Magnitude pruning: schedule, masks held after every optimizer step, report, saving."""

import keras
import numpy as np
import pytest

from ktlite.compress import MagnitudePruning, polynomial_sparsity, prunable_weights, prune, sparsity


def compiled(model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class MaskWatcher(keras.callbacks.Callback):
    """Counts weights that are masked but non-zero after each train batch."""

    def __init__(self, pruning):
        super().__init__()
        self.pruning = pruning
        self.violations = 0
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        for (_, weight), mask in zip(self.pruning._weights, self.pruning._masks):
            masked = mask.numpy() == 0
            self.violations += int(np.count_nonzero(weight.numpy()[masked]))


def test_polynomial_schedule_values():
    steps = np.array([0, 25, 50, 100, 150])
    expected = 0.8 + (0.0 - 0.8) * (1 - np.array([0, 0.25, 0.5, 1, 1])) ** 3
    np.testing.assert_allclose(polynomial_sparsity(steps, 0.8, 0, 100), expected)
    assert polynomial_sparsity(0, 0.5, 10, 20, initial_sparsity=0.1) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"step": "3"}, TypeError, r"`step` must be an int or an array of ints. Received: "
                                   r"step='3'"),
        ({"step": 3.0}, TypeError, "`step` must be an int or an array of ints"),
        ({"step": True}, TypeError, "`step` must be an int or an array of ints"),
        ({"step": None}, TypeError, "`step` must be an int or an array of ints"),
        ({"step": np.array([0.5])}, TypeError, "`step` must be an int or an array of ints"),
        ({"step": -1}, ValueError, r"`step` must be >= 0. Received: step=-1"),
        ({"target_sparsity": 1.5}, ValueError, r"`target_sparsity` must be a float in \[0, 1\)"),
        ({"target_sparsity": "0.5"}, TypeError, "`target_sparsity` must be a float"),
        ({"begin_step": -1}, ValueError, "`begin_step` must be an int >= 0"),
        ({"begin_step": 2.0}, TypeError, "`begin_step` must be an int >= 0"),
        ({"end_step": 0}, ValueError, r"`end_step` must be >= `begin_step` \(5\)"),
        ({"end_step": None}, TypeError, "`end_step` must be an int >= 0. Received"),
        ({"initial_sparsity": 0.9}, ValueError, r"`initial_sparsity` must be a float in "
                                                r"\[0, target_sparsity=0.5\]"),
        ({"initial_sparsity": -1.0}, ValueError, "`initial_sparsity` must be a float >= 0"),
        ({"power": -2}, ValueError, "`power` must be a positive float. Received: power=-2"),
        ({"power": 0}, ValueError, "`power` must be a positive float"),
        ({"power": True}, TypeError, "`power` must be a positive float"),
        ({"power": float("inf")}, ValueError, "`power` must be a positive float"),
    ],
)
def test_polynomial_sparsity_checks_its_arguments(kwargs, error, match):
    # Unchecked, power=-2 gave -inf and a target of 1.5 a sparsity past 1.
    arguments = {"step": 7, "target_sparsity": 0.5, "begin_step": 5, "end_step": 10, **kwargs}
    with pytest.raises(error, match=match):
        polynomial_sparsity(**arguments)


def test_polynomial_sparsity_takes_numpy_integers():
    assert polynomial_sparsity(np.int64(10), np.float32(0.5), np.int32(0), np.int64(10),
                               power=np.float64(2.0)) == pytest.approx(0.5)
    np.testing.assert_allclose(polynomial_sparsity([0, 10], 0.5, 0, 10), [0.0, 0.5])


def test_an_empty_ramp_reaches_the_target_at_its_end_step():
    np.testing.assert_allclose(
        polynomial_sparsity(np.array([4, 5, 6]), 0.7, 5, 5, initial_sparsity=0.1), [0.1, 0.7, 0.7]
    )
    assert polynomial_sparsity(0, 0.7, 0, 0) == pytest.approx(0.7)


def test_begin_step_equal_to_end_step_prunes_to_target_at_that_step(transformer, token_data):
    x, y = token_data
    model = compiled(transformer)
    pruning = MagnitudePruning(target_sparsity=0.7, begin_step=5, end_step=5)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[pruning], verbose=0)
    assert pruning.history == [(5, pytest.approx(0.7))]
    assert pruning.sparsity_at(5) == pytest.approx(0.7) and pruning.sparsity_at(4) == 0.0
    assert sparsity(model).overall == pytest.approx(0.7, abs=0.005)


@pytest.mark.parametrize("flag", [1, "yes", None])
def test_a_report_flag_of_the_wrong_type_is_a_type_error(transformer, flag):
    for list_them in (prunable_weights, sparsity):
        with pytest.raises(TypeError, match="`include_embeddings` must be True or False. "
                                            f"Received: include_embeddings={flag!r}"):
            list_them(transformer, include_embeddings=flag)
    assert prunable_weights(transformer, np.bool_(True)) == prunable_weights(transformer, True)


def test_prunable_weights_cover_dense_and_attention_but_not_embeddings(transformer):
    paths = [path for path, _ in prunable_weights(transformer)]
    assert "head" in paths and "encoder_0/self_attention/query" in paths
    assert not any("embedding" in path for path in paths)
    with_embeddings = [path for path, _ in prunable_weights(transformer, include_embeddings=True)]
    assert any("embedding" in path for path in with_embeddings)
    assert "head" not in [path for path, _ in prunable_weights(transformer, exclude="^head$")]


def small_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return compiled(keras.Model(inputs, keras.layers.Dense(2, activation="softmax",
                                                           name="head")(x)))


def test_prune_zeroes_convolution_kernels_not_only_the_dense_head():
    # A CNN's head is a sliver of its weights: pruning it alone reported 0.5 "overall".
    import ktlite

    model = small_cnn()
    assert [path for path, _ in prunable_weights(model)] == ["conv", "depthwise", "head"]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 3)).astype("float32"), rng.integers(0, 2, 64)
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    ktlite.compress.prune(learner, target_sparsity=0.5, epochs=1, lr=1e-3, verbose=0)
    report = sparsity(model)
    kernels = [w for w in model.weights if len(w.shape) > 1]
    assert report.total == sum(int(np.prod(w.shape)) for w in kernels)
    for path in ("conv", "depthwise", "head"):
        assert report.layers[path] == pytest.approx(0.5, abs=0.03), path
    assert np.mean(model.get_layer("conv").kernel.numpy() == 0) == pytest.approx(0.5, abs=0.01)


def test_an_exclude_pattern_matching_no_prunable_layer_is_refused_before_training(
        transformer, token_data):
    import ktlite

    x, y = token_data
    learner = ktlite.get_learner(compiled(transformer), (x, y), batch_size=64, verbose=0)
    before = [w.numpy() for w in learner.model.weights]
    match = r"`exclude` pattern 'hed' matches no Dense, EinsumDense or convolution layer.*query"
    with pytest.raises(ValueError, match=match + r".*Received: exclude='hed'"):
        ktlite.compress.prune(learner, target_sparsity=0.5, epochs=1, exclude="hed", verbose=0)
    with pytest.raises(ValueError, match=match):
        learner.model.fit(x, y, batch_size=64, epochs=1, verbose=0,
                          callbacks=[MagnitudePruning(exclude=["^head$", "hed"])])
    for old, weight in zip(before, learner.model.weights):
        np.testing.assert_array_equal(weight.numpy(), old)
    for report in (prunable_weights, sparsity):
        with pytest.raises(ValueError, match=match):
            report(transformer, exclude="hed")
    # An embedding pattern matches a prunable layer only when embeddings are pruned.
    with pytest.raises(ValueError, match="matches no Dense, EinsumDense or convolution layer"):
        prunable_weights(transformer, exclude="embedding")
    assert prunable_weights(transformer, include_embeddings=True, exclude="embedding")


def test_exclude_matches_bare_layer_names_as_quantize_model_does(transformer):
    paths = [path for path, _ in prunable_weights(transformer, exclude="^query$")]
    assert "encoder_0/self_attention/key" in paths
    assert not any(path.endswith("/query") for path in paths)


def test_sparsity_reached_and_held_after_every_step(transformer, token_data, tmp_path):
    x, y = token_data
    model = compiled(transformer)
    pruning = MagnitudePruning(target_sparsity=0.6, frequency=2)
    watcher = MaskWatcher(pruning)
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[pruning, watcher], verbose=0)
    assert watcher.batches == 16 and watcher.violations == 0
    steps = [step for step, _ in pruning.history]
    assert steps[0] == 0 and steps[-1] == 10  # end_step = 2/3 of 16 steps
    fractions = [value for _, value in pruning.history]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.6)
    report = sparsity(model)
    for path, value in report.layers.items():
        assert value == pytest.approx(0.6, abs=0.01), path
    assert pruning.below_target == {}
    assert report.overall == pytest.approx(0.6, abs=0.005)
    assert "overall" in str(report) and report.to_dict()["total"] == report.total
    # The pruned model is an ordinary .keras model.
    model.save(tmp_path / "pruned.keras")
    loaded = keras.saving.load_model(tmp_path / "pruned.keras", safe_mode=True)
    assert sparsity(loaded).layers == report.layers
    # Constraints are removed after training: the variables carry no mask any more.
    assert all(weight.constraint is None for _, weight in prunable_weights(model))


def test_with_steps_per_execution_the_schedule_counts_batches(transformer, token_data):
    import warnings

    class EpochSparsity(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            self.values.append(sparsity(self.model).overall)

    x, y = token_data
    model = transformer
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  steps_per_execution=4)
    pruning = MagnitudePruning(target_sparsity=0.5)
    watcher, epochs = MaskWatcher(pruning), EpochSparsity()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=32, epochs=3, callbacks=[pruning, watcher, epochs], verbose=0)
    assert not [w for w in caught if "pruning schedule" in str(w.message)]
    # 8 batches per epoch, called back every 4: the ramp ends at 2/3 of 24 batches, at the
    # start of the last epoch, which fine-tunes with the masks fixed.
    assert [step for step, _ in pruning.history] == [0, 4, 8, 12, 16]
    assert pruning.history[-1][1] == pytest.approx(0.5) and pruning._step == 24
    assert epochs.values[1] < 0.5 and epochs.values[2] == pytest.approx(0.5, abs=0.005)
    assert watcher.batches == 6 and watcher.violations == 0
    assert sparsity(model).overall == pytest.approx(0.5, abs=0.005)


def test_an_ema_optimizer_is_refused_before_anything_trains(transformer, token_data):
    import ktlite

    x, y = token_data
    transformer.compile(optimizer=keras.optimizers.Adam(1e-3, use_ema=True),
                        loss="sparse_categorical_crossentropy")
    learner = ktlite.get_learner(transformer, (x, y), batch_size=64, verbose=0)
    before = [w.numpy() for w in learner.model.weights]
    match = r"`use_ema=True`.*averages the pruned zeros away.*without `use_ema`"
    with pytest.raises(ValueError, match=match):
        ktlite.compress.prune(learner, target_sparsity=0.5, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=match):
        learner.model.fit(x, y, batch_size=64, epochs=1, verbose=0,
                          callbacks=[MagnitudePruning(target_sparsity=0.5)])
    for old, weight in zip(before, learner.model.weights):
        np.testing.assert_array_equal(weight.numpy(), old)
    assert all(weight.constraint is None for _, weight in prunable_weights(learner.model))


def test_constant_schedule_prunes_once_at_begin_step(transformer, token_data):
    x, y = token_data
    model = compiled(transformer)
    pruning = MagnitudePruning(target_sparsity=0.5, schedule="constant", begin_step=3)
    model.fit(x, y, batch_size=64, epochs=1, callbacks=[pruning], verbose=0)
    assert pruning.history == [(3, 0.5)]
    assert sparsity(model).overall == pytest.approx(0.5, abs=0.005)


def test_stopping_before_the_schedule_ends_warns_and_prunes_to_target(transformer, token_data):
    x, y = token_data
    model = compiled(transformer)
    pruning = MagnitudePruning(target_sparsity=0.7, end_step=100)
    with pytest.warns(UserWarning, match="before the pruning schedule reached"):
        model.fit(x, y, batch_size=64, epochs=1, callbacks=[pruning], verbose=0)
    assert sparsity(model).overall == pytest.approx(0.7, abs=0.005)


def test_prune_reaches_target_in_every_layer_of_the_learners_model(transformer, token_data):
    import ktlite

    x, y = token_data
    learner = ktlite.get_learner(compiled(transformer), (x, y), batch_size=64, verbose=0)
    history = ktlite.compress.prune(learner, target_sparsity=0.5, epochs=1, lr=1e-3, verbose=0)
    assert "loss" in history.history
    assert min(sparsity(learner.model).layers.values()) >= 0.49
    with pytest.raises(ValueError, match="`target_sparsity`"):
        ktlite.compress.prune(learner, target_sparsity=1.0)
    with pytest.raises(ValueError, match="`schedule`"):
        ktlite.compress.prune(learner, schedule="linear")


def test_a_later_onecycle_fit_is_free_to_regrow_pruned_weights(transformer, token_data):
    import ktlite

    x, y = token_data
    learner = ktlite.get_learner(compiled(transformer), (x, y), batch_size=32, verbose=0)
    ktlite.compress.prune(learner, target_sparsity=0.9, epochs=1, lr=1e-3, verbose=0)
    head = learner.model.get_layer("head").kernel
    pruned = head.numpy() == 0
    assert pruned.mean() == pytest.approx(0.9, abs=0.02)
    # The policy's traced step must not outlive the masks (it was traced with them).
    learner.fit_onecycle(1e-1, 2, verbose=0)
    assert np.count_nonzero(head.numpy()[pruned]) > 0
    assert all(weight.constraint is None for _, weight in prunable_weights(learner.model))
    assert "train_step" not in learner.model.__dict__


def test_a_model_or_predictor_instead_of_a_learner_is_a_type_error(transformer):
    import ktlite

    model = compiled(transformer)

    class Predictor:  # like ktlite's: a `.model`, no `fit_onecycle`
        def __init__(self, model):
            self.model = model

    for wrong in (model, Predictor(model), None):
        with pytest.raises(TypeError, match=r"`learner` must be .*ktlite\.get_learner\(model, "
                                            r"train_data\)"):
            ktlite.compress.prune(wrong, target_sparsity=0.5, epochs=1)


def test_an_interrupted_prune_takes_its_masks_off(transformer, token_data):
    import ktlite

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    x, y = token_data
    learner = ktlite.get_learner(compiled(transformer), (x, y), batch_size=32, verbose=0)
    constraints = [w.constraint for _, w in prunable_weights(learner.model)]
    with pytest.raises(KeyboardInterrupt):
        ktlite.compress.prune(learner, target_sparsity=0.5, epochs=2, lr=1e-3, verbose=0,
                              callbacks=[Interrupt()])
    assert [w.constraint for _, w in prunable_weights(learner.model)] == constraints


def test_pruning_is_not_a_learner_method():
    import ktlite

    assert not hasattr(ktlite.Learner, "prune")


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_target_sparsity_out_of_range_rejected(value):
    with pytest.raises(ValueError, match="`target_sparsity`"):
        MagnitudePruning(target_sparsity=value)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"target_sparsity": "half"}, TypeError, "target_sparsity"),
        ({"schedule": "cubic"}, ValueError, "schedule"),
        ({"schedule": None}, TypeError, "schedule"),
        ({"schedule": 3}, TypeError, "schedule"),
        ({"begin_step": -1}, ValueError, "begin_step"),
        ({"begin_step": 10, "end_step": 5}, ValueError, "end_step"),
        ({"frequency": 0}, ValueError, "frequency"),
        ({"initial_sparsity": 0.9}, ValueError, "initial_sparsity"),
        ({"power": 0}, ValueError, "power"),
        ({"exclude": 5}, TypeError, "exclude"),
        ({"target_sparsity": True}, TypeError, "target_sparsity"),
        ({"begin_step": "3"}, TypeError, "begin_step"),
        ({"begin_step": True}, TypeError, "begin_step"),
        ({"end_step": 10.0}, TypeError, "end_step"),
        ({"end_step": -1}, ValueError, "end_step"),
        ({"frequency": "4"}, TypeError, "frequency"),
        ({"initial_sparsity": "0"}, TypeError, "initial_sparsity"),
        ({"initial_sparsity": -0.1}, ValueError, "initial_sparsity"),
        ({"power": True}, TypeError, "power"),
        ({"power": "3"}, TypeError, "power"),
        ({"power": float("nan")}, ValueError, "power"),
        ({"include_embeddings": 1}, TypeError, "include_embeddings"),
        ({"verbose": "1"}, TypeError, "verbose"),
        ({"verbose": 2}, ValueError, "verbose"),
    ],
)
def test_bad_callback_arguments_rejected(kwargs, error, name):
    with pytest.raises(error, match=f"`{name}`"):
        MagnitudePruning(**kwargs)


def test_prune_rejects_bad_arguments_before_training():
    with pytest.raises(ValueError, match="`target_sparsity`"):
        prune(object(), target_sparsity=1.0)
    with pytest.raises(ValueError, match="`schedule`"):
        prune(object(), schedule="exponential")
    with pytest.raises(ValueError, match="`epochs`"):
        prune(object(), epochs=0)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"epochs": "2"}, TypeError, "epochs"),
        ({"epochs": True}, TypeError, "epochs"),
        ({"epochs": 2.0}, TypeError, "epochs"),
        ({"epochs": -1}, ValueError, "epochs"),
        ({"target_sparsity": "0.5"}, TypeError, "target_sparsity"),
        ({"target_sparsity": -0.5}, ValueError, "target_sparsity"),
        ({"frequency": "4"}, TypeError, "frequency"),
        ({"include_embeddings": "yes"}, TypeError, "include_embeddings"),
        ({"schedule": None}, TypeError, "schedule"),
        ({"schedule": ["constant"]}, TypeError, "schedule"),
        ({"schedule": "linear"}, ValueError, "schedule"),
    ],
)
def test_prune_rejects_wrong_types_and_out_of_range_values(kwargs, error, name):
    with pytest.raises(error, match=f"`{name}` must be .* Received: {name}="):
        prune(object(), **kwargs)
