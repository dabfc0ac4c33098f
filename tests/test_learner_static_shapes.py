"""Static batch shapes for strategies that compile for fixed shapes (TPUs), tested on CPU."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite import distribute
from ktlite.learner import get_learner

N, D, BS = 100, 4, 16  # 6 full batches and a remainder of 4


def _data(n=N):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, D)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def test_drop_remainder_trains_on_static_batches_under_xla():
    learner = get_learner(_model(), _data(), batch_size=BS, jit_compile=True,
                          drop_remainder=True, verbose=0)
    assert learner.drop_remainder and learner.model.jit_compile
    train, _ = learner._dataset(learner.train_data, training=True)
    for spec in tf.nest.flatten(train.element_spec):
        assert spec.shape[0] == BS
    before = learner.model.get_weights()
    learner.fit_onecycle(1e-2, 2)
    assert len(learner.step_history["lrs"]) == 2 * (N // BS)  # the remainder is dropped
    assert all(not np.allclose(a, b) for a, b in zip(before, learner.model.get_weights()))


def test_drop_remainder_follows_the_strategy_by_default(monkeypatch):
    assert not get_learner(_model(), _data(), batch_size=BS, verbose=0).drop_remainder
    monkeypatch.setattr(distribute, "needs_static_shapes", lambda strategy: True)
    assert get_learner(_model(), _data(), batch_size=BS, verbose=0).drop_remainder


def test_a_tpu_strategy_needs_static_shapes():
    class TPUStrategyV2(tf.distribute.OneDeviceStrategy):  # the name is what is checked
        pass

    assert distribute.needs_static_shapes(TPUStrategyV2("/cpu:0"))
    assert not distribute.needs_static_shapes(tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_static_batches_are_refused_or_flagged_when_impossible():
    x, y = _data()
    learner = get_learner(_model(), (x[:10], y[:10]), batch_size=BS, drop_remainder=True,
                          verbose=0)
    with pytest.raises(ValueError, match="fewer samples than one batch.*batch_size=16"):
        learner.fit_onecycle(1e-2, 1)
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(BS)
    with pytest.warns(UserWarning, match="drop_remainder=True"):
        get_learner(_model(), batched, drop_remainder=True, verbose=0).fit_onecycle(1e-2, 1)
    with pytest.raises(TypeError, match="`drop_remainder` must be True or False.*'yes'"):
        get_learner(_model(), (x, y), drop_remainder="yes")
    # Checked before the model is prepared (a mixed-precision policy is global state).
    with pytest.raises(TypeError, match="drop_remainder=1"):
        get_learner(_model(), (x, y), drop_remainder=1, mixed_precision="mixed_float16")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert get_learner(_model(), (x, y), drop_remainder=np.bool_(True)).drop_remainder is True
