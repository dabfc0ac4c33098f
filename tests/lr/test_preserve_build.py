"""ensure_built and `preserved`: what a first `fit` would build inside its trace, built before."""

import keras
import numpy as np
import tensorflow as tf

from ktlite.lr import find_lr
from ktlite.lr.confirm import confirm_lr
from ktlite.lr.preserve import ensure_built


def _compiled():
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _dataset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).batch(8)


def _count_traces(model):
    traces = []
    step = model.train_step

    def counted(data):
        traces.append(data)
        return step(data)

    model.train_step = counted
    return traces


def test_a_plain_fit_after_ensure_built_traces_its_step_once():
    model, dataset = _compiled(), _dataset()
    ensure_built(model, dataset)  # builds the never-built model from one batch
    assert model.built
    model.optimizer.build(model.trainable_variables)
    ensure_built(model, dataset)  # the compiled metrics, symbolically
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    traces = _count_traces(model)
    history = model.fit(dataset, epochs=2, verbose=0)
    assert len(traces) == 1 and len(history.history["accuracy"]) == 2


def test_without_ensure_built_keras_traces_the_first_step_twice():
    # The cost ensure_built removes; if a Keras release builds these before tracing, this
    # fails and ensure_built's symbolic build can go.
    model, dataset = _compiled(), _dataset()
    ensure_built(model, dataset)  # optimizer unbuilt: only the model is built
    traces = _count_traces(model)
    model.fit(dataset, epochs=1, verbose=0)
    assert len(traces) == 2


def test_find_lr_with_a_never_built_optimizer_traces_once_and_leaves_it_unbuilt():
    model, dataset = _compiled(), _dataset()
    traces = _count_traces(model)
    find_lr(model, dataset, num_steps=12, verbose=0)
    assert len(traces) == 1  # the sweep's stand-in optimizer is built before its trace
    assert not model.optimizer.built and model.metrics_variables
    assert all(float(v.numpy()) == 0.0 for v in model.metrics_variables)


def test_confirm_lr_with_a_never_built_optimizer_traces_once_for_every_candidate():
    traces = []

    class Counting(keras.Sequential):
        # A train step set on the instance would get a policy driver per run.
        def train_step(self, data):
            traces.append(data)
            return super().train_step(data)

    model, dataset = Counting(_compiled().layers), _dataset()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ensure_built(model, dataset)
    before = [w.copy() for w in model.get_weights()]
    record = confirm_lr(model, dataset, [1e-3, 1e-2, 1e-1], steps=6)
    assert len(traces) == 1  # one stand-in optimizer, built before the trace, for all three
    assert len(set(record["losses"])) == 3
    assert not model.optimizer.built
    for weight, old in zip(model.get_weights(), before):
        np.testing.assert_array_equal(weight, old)
