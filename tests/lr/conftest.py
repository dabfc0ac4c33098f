"""Tiny models and data sets for the learning-rate tests."""

import numpy as np
import pytest


def _make_model(
    optimizer, jit_compile=False, units=8, loss="sparse_categorical_crossentropy", n_out=3,
    dropout=0.0, **compile_kwargs
):
    import keras

    layers = [keras.Input((6,)), keras.layers.Dense(units, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(n_out, activation="softmax" if n_out > 1 else None))
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile, **compile_kwargs)
    return model


def _make_data(n=96, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (np.argmax(x[:, :n_classes], axis=1)).astype("int32")
    return x, y


@pytest.fixture
def data():
    return _make_data()


@pytest.fixture
def dataset(data):
    import tensorflow as tf

    x, y = data
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


@pytest.fixture
def make_model():
    return _make_model


@pytest.fixture
def make_data():
    return _make_data
