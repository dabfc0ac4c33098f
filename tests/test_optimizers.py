"""ktlite.optimizers: the LR scaling rules and the AdamW/LAMB helper."""

import math

import keras
import numpy as np
import pytest

from ktlite.optimizers import NO_DECAY_NAMES, get_optimizer, scale_lr


def test_linear_rule_scales_with_the_batch():
    assert scale_lr(1e-3, base_batch=32, batch=256) == pytest.approx(8e-3)
    assert scale_lr(1e-3, base_batch=256, batch=32) == pytest.approx(1.25e-4)


def test_sqrt_rule_scales_with_the_square_root_of_the_batch():
    assert scale_lr(1e-3, 32, 512, rule="sqrt") == pytest.approx(4e-3)
    assert scale_lr(2e-4, 100, 100, rule="sqrt") == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((0.0, 32, 64), ValueError, "base_lr=0.0"),
        ((-1e-3, 32, 64), ValueError, "base_lr=-0.001"),
        ((1e-3, 0, 64), ValueError, "base_batch=0"),
        ((1e-3, 32, 64.0), TypeError, "batch=64.0"),
        ((1e-3, 32, True), TypeError, "batch=True"),
        ((float("inf"), 32, 64), ValueError, "base_lr=inf"),
        (("1e-3", 32, 64), TypeError, "base_lr='1e-3'"),
    ],
)
def test_scale_lr_names_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        scale_lr(*args)


def test_scale_lr_takes_numpy_scalars():
    assert scale_lr(np.float64(1e-3), np.int64(32), np.int32(64)) == pytest.approx(2e-3)


def test_scale_lr_refuses_unknown_rules():
    with pytest.raises(ValueError, match="rule='log'"):
        scale_lr(1e-3, 32, 64, rule="log")


@pytest.mark.parametrize("rule", [None, 2, ["sqrt"]])
def test_scale_lr_refuses_a_rule_of_the_wrong_type(rule):
    with pytest.raises(TypeError, match=r"`rule` must be one of \['linear', 'sqrt'\]. Received"):
        scale_lr(1e-3, 32, 64, rule=rule)


@pytest.mark.parametrize("name, cls", [("adamw", keras.optimizers.AdamW),
                                       ("LAMB", keras.optimizers.Lamb)])
def test_get_optimizer_builds_the_named_optimizer(name, cls):
    optimizer = get_optimizer(name, learning_rate=2e-3, weight_decay=0.05, beta_2=0.98)
    assert type(optimizer) is cls
    config = optimizer.get_config()
    assert config["weight_decay"] == 0.05
    assert config["beta_2"] == 0.98
    assert math.isclose(config["learning_rate"], 2e-3, rel_tol=1e-6)


def test_get_optimizer_excludes_biases_and_norm_parameters_from_weight_decay():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), keras.layers.LayerNormalization()]
    )
    optimizer = get_optimizer("adamw")
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {model.layers[0].kernel.path}
    assert set(NO_DECAY_NAMES) == {"bias", "gamma", "beta"}


def test_get_optimizer_can_decay_everything():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    optimizer = get_optimizer("adamw", exclude_from_weight_decay=None)
    assert all(optimizer._use_weight_decay(v) for v in model.trainable_variables)


def test_get_optimizer_passes_gradient_accumulation_to_keras():
    assert get_optimizer("lamb", gradient_accumulation_steps=4).gradient_accumulation_steps == 4
    assert get_optimizer("lamb", gradient_accumulation_steps=1).gradient_accumulation_steps is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "adam"}, "name='adam'"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0"),
        ({"weight_decay": float("nan")}, "weight_decay=nan"),
        ({"learning_rate": -1.0}, "learning_rate=-1.0"),
    ],
)
def test_get_optimizer_names_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_optimizer(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    ({"name": None}, "name"),
    ({"name": 1}, "name"),
    ({"name": ["adamw"]}, "name"),
    ({"weight_decay": "0.01"}, "weight_decay"),
    ({"weight_decay": True}, "weight_decay"),
    ({"weight_decay": None}, "weight_decay"),
    ({"learning_rate": "1e-3"}, "learning_rate"),
])
def test_get_optimizer_refuses_arguments_of_the_wrong_type(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        get_optimizer(**kwargs)


def test_get_optimizer_takes_a_numpy_weight_decay():
    assert get_optimizer(weight_decay=np.float32(0.5)).weight_decay == 0.5


def test_one_string_of_exclusions_is_refused_rather_than_split_into_letters():
    with pytest.raises(TypeError, match=r"pass \['bias'\]"):
        get_optimizer(exclude_from_weight_decay="bias")


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_optimizers_from_get_optimizer_train(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=get_optimizer(name, learning_rate=5e-2), loss="mse")
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]


def test_default_optimizer_keeps_the_users_and_builds_adamw_or_adam():
    import keras

    from ktlite.optimizers import default_optimizer

    mine = keras.optimizers.SGD(0.1)
    assert default_optimizer(mine, 1e-3) is mine
    opt = default_optimizer(None, 2e-3, 1e-4, ("bias",))
    assert isinstance(opt, keras.optimizers.AdamW) and opt.weight_decay == 1e-4
    assert type(default_optimizer(None, 1e-3, 0)) is keras.optimizers.Adam
    with pytest.raises(TypeError, match="`optimizer`"):
        default_optimizer(3, 1e-3)
    assert default_optimizer("rmsprop", 1e-3) == "rmsprop"
    with pytest.raises(ValueError, match=r"`optimizer` must name a Keras optimizer .*"
                                         r"Received: optimizer='foo'"):
        default_optimizer("foo", 1e-3)
    with pytest.raises(ValueError, match="`learning_rate`"):
        default_optimizer(None, 0)
    with pytest.raises(ValueError, match="`weight_decay`"):
        default_optimizer(None, 1e-3, -1)
    with pytest.raises(ValueError, match="`learning_rate` must be a positive float"):
        default_optimizer(None, math.inf)


@pytest.mark.parametrize("learning_rate, weight_decay, name", [
    ("1e-3", 0.01, "learning_rate"),
    (True, 0.01, "learning_rate"),
    (None, 0.01, "learning_rate"),
    (1e-3, "0.01", "weight_decay"),
    (1e-3, False, "weight_decay"),
])
def test_default_optimizer_refuses_settings_of_the_wrong_type(learning_rate, weight_decay, name):
    from ktlite.optimizers import default_optimizer

    with pytest.raises(TypeError, match=f"`{name}` must be .*Received: {name}="):
        default_optimizer(None, learning_rate, weight_decay)
