"""ktlite's console output: warnings name the line of the user's code that called ktlite."""

import inspect
import warnings

import keras
import numpy as np

from ktlite.callbacks import BestWeights
from ktlite.labels import infer_label_mode
from ktlite.learner import get_learner


class _PoisonKernel(keras.callbacks.Callback):
    """Writes NaN into the output kernel as the second batch begins."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1:
            kernel = self.model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_a_warning_from_a_direct_call_names_the_callers_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        infer_label_mode(list(range(100, 300)))  # integers read as classes: a warning
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


def test_a_warning_raised_inside_keras_fit_loop_names_the_users_fit_call():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    learner = get_learner(model, (x, (x[:, 0] > 0).astype(int)), batch_size=16, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        learner.fit(1e-3, 1, callbacks=[_PoisonKernel()])  # NaN loss: training stops
    stopped = [w for w in caught if "loss became NaN" in str(w.message)]
    assert [(w.filename, w.lineno) for w in stopped] == [(__file__, line)]


def test_a_ktlite_callback_in_a_plain_keras_fit_names_the_users_fit_call():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        model.fit(x, x[:, 0], epochs=1, verbose=0, callbacks=[BestWeights("val_auc")])
    missing = [w for w in caught if "not in the training logs" in str(w.message)]
    assert [(w.filename, w.lineno) for w in missing] == [(__file__, line)]
