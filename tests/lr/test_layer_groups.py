"""Per-group learning rates: grouping, multipliers, and exact per-group optimizer updates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.lr import GroupRates, group_multipliers, layer_groups


def _branches(optimizer):
    """Two independent Dense branches from the input, summed: each kernel's gradient is
    the batch mean of x whatever the other weights are."""
    inputs = keras.Input((3,))
    a = keras.layers.Dense(1, name="a")(inputs)
    b = keras.layers.Dense(1, name="b")(inputs)
    out = keras.layers.Add(name="sum")([a, b])
    model = keras.Model(inputs, out)
    model.compile(optimizer=optimizer, loss=lambda y, p: tf.reduce_mean(p))
    model.build((None, 3))
    return model


def test_automatic_groups_put_a_normalization_with_the_layer_before():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="d0")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(4, name="d1")(x)
    out = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, out)
    names = [[layer.name for layer in g] for g in layer_groups(model)]
    assert names == [["d0", "norm"], ["d1"], ["head"]]


def test_an_input_normalization_whose_weights_never_train_is_no_group():
    inputs = keras.Input((4,))
    standardize = keras.layers.Normalization(name="standardize")
    standardize.adapt(np.arange(40, dtype="float32").reshape(10, 4))
    x = keras.layers.Dense(4, name="body")(standardize(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    assert [[layer.name for layer in g] for g in layer_groups(model)] == [["body"], ["head"]]
    frozen = model.get_layer("body")
    frozen.trainable = False  # a frozen layer still counts: fine-tuning may unfreeze it
    assert [[layer.name for layer in g] for g in layer_groups(model)] == [["body"], ["head"]]


def test_explicit_groups_must_cover_every_layer_with_weights():
    model = _branches("sgd")
    assert [[x.name for x in g] for g in layer_groups(model, [["a"], "b"])] == [["a"], ["b"]]
    with pytest.raises(ValueError, match=r"in none: \['b'\]"):
        layer_groups(model, [["a"]])
    with pytest.raises(ValueError, match="`groups`: layer 'a' is in two groups"):
        layer_groups(model, ["a", ["a", "b"]])
    with pytest.raises(ValueError, match="nope"):
        layer_groups(model, ["a", "nope"])
    other = keras.layers.Dense(1, name="other")
    other.build((None, 3))
    with pytest.raises(ValueError, match="Received: <Dense name=other"):
        layer_groups(model, ["a", ["b", other]])


def test_a_name_two_nested_layers_share_is_ambiguous_and_layer_objects_are_not():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")],
                             name="body")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(inner(inputs)))
    with pytest.raises(ValueError, match="the name 'head' is ambiguous: 2 layers .*Pass "
                                         "layer objects instead of names"):
        layer_groups(model, [["head"], ["head"]])
    nested, outer = inner.get_layer("head"), model.get_layer("head")
    groups = layer_groups(model, [nested, outer])
    assert len(groups) == 2 and groups[0][0] is nested and groups[1][0] is outer


def test_a_nested_model_stands_for_its_layers_by_name_or_object():
    # Keras' transfer-learning shape, Model(i, head(base(i))): `base` was refused as "not
    # a layer with weights of the model".
    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="b1"),
                             keras.layers.Dense(4, name="b2")], name="base")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(base(inputs)))
    for given in (base, "base"):
        groups = layer_groups(model, [[given], ["out"]])
        assert [[layer.name for layer in g] for g in groups] == [["b1", "b2"], ["out"]]
    with pytest.raises(ValueError, match=r"nested models: \['base'\]"):
        layer_groups(model, [["bass"], ["out"]])
    with pytest.raises(ValueError, match="layer 'b1' is in two groups"):
        layer_groups(model, [["base"], ["b1", "out"]])


@pytest.mark.parametrize("model, groups, match", [
    ("model", None, "`model` must be a keras.Model. Received: model of type str"),
    (None, None, "`model` must be a keras.Model. Received: model of type NoneType"),
    ("branches", "a", "`groups` must be a list of groups"),
    ("branches", 3, "`groups` must be a list of groups"),
    ("branches", ["a", 3], "Each member of a group in `groups` must be a layer .*Received: 3 "
     "of type int"),
    ("branches", [["a"], [None]], "Received: None of type NoneType"),
])
def test_a_model_or_groups_of_the_wrong_type_are_a_type_error(model, groups, match):
    model = _branches("sgd") if model == "branches" else model
    with pytest.raises(TypeError, match=match):
        layer_groups(model, groups)


@pytest.mark.parametrize("model", ["model", None, keras.layers.Dense(1)])
def test_group_rates_on_something_other_than_a_model_is_a_type_error(model):
    with pytest.raises(TypeError, match="`model` must be a compiled keras.Model. Received: model "
                                        "of type"):
        GroupRates(model, [], [])


def test_group_rates_on_an_uncompiled_model_is_a_value_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not compiled.*before `GroupRates`"):
        GroupRates(model, [model.layers], [1.0])


def test_multipliers_spread_geometrically_to_the_head():
    np.testing.assert_allclose(group_multipliers(3, 100.0), [0.01, 0.1, 1.0], rtol=1e-6)
    # One multiplier per group, as a list or a NumPy array.
    np.testing.assert_allclose(group_multipliers(2, np.array([0.5, 1.0])), [0.5, 1.0])
    np.testing.assert_allclose(group_multipliers(2, [0.5, 2.0]), [0.5, 2.0])
    np.testing.assert_allclose(group_multipliers(np.int64(2), np.float32(4.0)), [0.25, 1.0])
    with pytest.raises(ValueError, match="`lr_mult` must be a float >= 1, or .*Received: "
                                         "lr_mult=0.5"):
        group_multipliers(3, 0.5)
    with pytest.raises(ValueError, match="lr_mult"):
        group_multipliers(3, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"`lr_mult\[1\]`.*Received: lr_mult\[1\]=0.0"):
        group_multipliers(2, [1.0, 0.0])
    with pytest.raises(ValueError, match="`n_groups`.*Received: n_groups=0"):
        group_multipliers(0, 10.0)


def test_a_zero_d_array_is_a_number_and_a_2d_array_is_refused_naming_both_forms():
    np.testing.assert_allclose(group_multipliers(3, np.array(100.0)), [0.01, 0.1, 1.0],
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"a float >= 1, or a 1-D sequence of 2 positive "
                                         r"floats \(one multiplier per group\)\. Received: "
                                         r"lr_mult of shape \(2, 1\)"):
        group_multipliers(2, np.ones((2, 1)))


@pytest.mark.parametrize("n_groups, lr_mult, name", [
    (3, "10", "lr_mult"),
    (3, True, "lr_mult"),
    (3, None, "lr_mult"),
    (2, [1.0, "2"], r"lr_mult\[1\]"),
    ("3", 10.0, "n_groups"),
    (True, 10.0, "n_groups"),
])
def test_multipliers_of_the_wrong_type_are_a_type_error(n_groups, lr_mult, name):
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received"):
        group_multipliers(n_groups, lr_mult)


@pytest.mark.parametrize("make", [
    lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
    lambda lr: keras.optimizers.Adam(learning_rate=lr),
    lambda lr: keras.optimizers.AdamW(learning_rate=lr, weight_decay=0.1),
    lambda lr: keras.optimizers.Lion(learning_rate=lr, weight_decay=0.05),
], ids=["sgd_momentum", "adam", "adamw", "lion"])
def test_each_group_steps_exactly_as_its_optimizer_at_lr_times_multiplier(make):
    lr, mults = 0.01, [0.1, 3.0]
    grads = [np.array([[0.3, -1.0], [2.0, 0.1], [-0.5, 0.7]], "float32"), np.ones(2, "float32")]
    optimizer = make(lr)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    inputs = keras.Input((3,))
    outs = [keras.layers.Dense(2, name=f"g{i}")(inputs) for i in range(2)]
    model = keras.Model(inputs, keras.layers.Add()(outs))
    model.compile(optimizer=optimizer, loss="mse")
    g0, g1 = model.get_layer("g0"), model.get_layer("g1")
    for layer in (g0, g1):
        layer.kernel.assign(np.full((3, 2), 0.5, "float32"))
        layer.bias.assign(np.full((2,), 0.2, "float32"))
    variables = [g0.kernel, g0.bias, g1.kernel, g1.bias]
    optimizer.build(variables)
    rates = GroupRates(model, [[g0], [g1]], mults)
    step = tf.function(lambda: optimizer.apply(grads + grads, variables))
    with rates:
        for _ in range(2):  # two steps: the optimizers' states must evolve alike too
            step()
    for layer, mult in ((g0, mults[0]), (g1, mults[1])):
        reference = make(lr * mult)
        reference.exclude_from_weight_decay(var_names=["bias"])
        ref_vars = [keras.Variable(np.full((3, 2), 0.5, "float32"), name="kernel"),
                    keras.Variable(np.full((2,), 0.2, "float32"), name="bias")]
        reference.build(ref_vars)
        for _ in range(2):
            reference.apply(grads, ref_vars)
        moved = np.abs(layer.kernel.numpy() - 0.5).max()
        assert moved > 1e-4
        np.testing.assert_allclose(layer.kernel.numpy(), ref_vars[0].numpy(), rtol=1e-5,
                                   atol=1e-7)
        np.testing.assert_allclose(layer.bias.numpy(), ref_vars[1].numpy(), rtol=1e-5,
                                   atol=1e-7)
    assert not rates.installed and "update_step" not in optimizer.__dict__


def test_multipliers_set_while_installed_apply_at_the_next_step_without_a_retrace():
    lr, grads = 0.1, [np.ones((3, 2), "float32"), np.ones(2, "float32")]
    inputs = keras.Input((3,))
    outs = [keras.layers.Dense(2, name=f"g{i}")(inputs) for i in range(2)]
    model = keras.Model(inputs, keras.layers.Add()(outs))
    optimizer = keras.optimizers.SGD(learning_rate=lr)
    model.compile(optimizer=optimizer, loss="mse")
    g0, g1 = model.get_layer("g0"), model.get_layer("g1")
    variables = [g0.kernel, g0.bias, g1.kernel, g1.bias]
    optimizer.build(variables)
    step = tf.function(lambda: optimizer.apply(grads + grads, variables))
    with GroupRates(model, [[g0], [g1]], [0.1, 3.0]) as rates:
        step()
        before = [g0.kernel.numpy().copy(), g1.kernel.numpy().copy()]
        rates.set_multipliers([2.0, 0.5])
        step()
        with pytest.raises(ValueError, match="2 positive numbers"):
            rates.set_multipliers([1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match=r"`multipliers\[1\]`.*Received"):
            rates.set_multipliers([1.0, 0.0])
        with pytest.raises(TypeError, match=r"`multipliers\[0\]` must be a positive float"):
            rates.set_multipliers(["1.0", 2.0])
        with pytest.raises(TypeError, match=r"`multipliers\[1\]` must be a positive float"):
            rates.set_multipliers([1.0, True])
    # Plain SGD with a gradient of 1: each step moves a kernel by lr * multiplier.
    np.testing.assert_allclose(before[0] - g0.kernel.numpy(), lr * 2.0, rtol=1e-5)
    np.testing.assert_allclose(before[1] - g1.kernel.numpy(), lr * 0.5, rtol=1e-5)
    assert step.experimental_get_tracing_count() == 1


def test_rates_follow_the_one_cycle_schedule_per_group():
    import ktlite

    model = _branches(keras.optimizers.SGD(learning_rate=0.1))
    a, b = model.get_layer("a"), model.get_layer("b")
    start_a, start_b = a.kernel.numpy().copy(), b.kernel.numpy().copy()
    x = np.ones((32, 3), "float32")
    learner = ktlite.get_learner(model, (x, np.zeros((32, 1), "float32")), batch_size=8,
                                 verbose=0)
    with GroupRates(model, [[a], [b]], [0.25, 1.0]):
        learner.fit_onecycle(0.1, 2, moms=None)
    lrs = np.asarray(learner.step_history["lrs"])
    assert len(lrs) == 8 and lrs.max() > 5 * lrs.min()  # a real schedule
    # dL/dkernel = mean(x) / 1 = 1 for every kernel entry, every step.
    np.testing.assert_allclose(start_a - a.kernel.numpy(), 0.25 * lrs.sum(), rtol=1e-4)
    np.testing.assert_allclose(start_b - b.kernel.numpy(), lrs.sum(), rtol=1e-4)


def test_muon_keeps_its_own_step_both_decays_included_under_multipliers_of_one():
    # Muon decays vectors (its AdamW path) with `adam_weight_decay`, even with
    # `weight_decay` hidden: the biases were decayed twice (2e-6 off after 4 steps).
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")

    def trained(multipliers):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(5, name="d1")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
        model.compile(keras.optimizers.Muon(0.01, weight_decay=0.05, adam_weight_decay=0.05),
                      "mse")
        if multipliers is None:
            model.fit(x, y, batch_size=8, verbose=0, shuffle=False)
        else:
            with GroupRates(model, layer_groups(model), multipliers):
                model.fit(x, y, batch_size=8, verbose=0, shuffle=False)
        return {v.path: v.numpy() for v in model.weights}

    plain, grouped = trained(None), trained([1.0, 1.0])
    for path, value in plain.items():
        np.testing.assert_allclose(grouped[path], value, rtol=0, atol=1e-7, err_msg=path)
    slowed = trained([0.5, 1.0])  # the first group's step (and decay) at half the rate
    assert np.abs(slowed["d1/bias"] - plain["d1/bias"]).max() > 1e-4
    np.testing.assert_allclose(slowed["out/kernel"], plain["out/kernel"], atol=1e-3)


def test_lr_find_leaves_group_rates_and_training_exactly_as_before():
    import ktlite

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")

    def make():
        inputs = keras.Input((3,))
        h = keras.layers.Dense(8, activation="tanh", name="body")(inputs)
        out = keras.layers.Dense(1, name="head")(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return model

    twins = [make(), make()]
    twins[1].set_weights(twins[0].get_weights())
    learners, rates = [], []
    for model in twins:
        learner = ktlite.get_learner(model, (x, y), batch_size=16, shuffle=False, verbose=0)
        rates.append(GroupRates(model, layer_groups(model), [0.1, 1.0]).install())
        learners.append(learner)
    learners[0].lr_find(num_steps=20, verbose=0)
    assert rates[0].installed
    np.testing.assert_array_equal(rates[0].multipliers.numpy(), np.float32([0.1, 1.0]))
    for learner in learners:
        learner.fit_onecycle(1e-2, 1)
    for w0, w1 in zip(twins[0].get_weights(), twins[1].get_weights()):
        np.testing.assert_array_equal(w0, w1)
    for r in rates:
        r.uninstall()
