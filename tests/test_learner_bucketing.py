"""The learner's length bucketing: per-batch widths, bounded tracing, order kept, switch off,
and fixed padding for a model whose outputs change with padding."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite import bucketing
from ktlite.bucketing import round_width
from ktlite.data import TaskDataset
from ktlite.learner import get_learner
from ktlite.models import Transformer

MAXLEN, VOCAB, N = 64, 50, 96


class _TraceRecorder(keras.layers.Layer):
    """Identity layer that records the input width each time the training step is traced."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widths = []

    def call(self, inputs, training=None):
        if training:
            self.widths.append(inputs.shape[1])
        return inputs


def _ids_task(n=N, seed=0):
    """Token ids already padded to MAXLEN; the transform cuts them to the batch width."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, MAXLEN + 1, size=n)
    ids = np.zeros((n, MAXLEN), dtype="int32")
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1, VOCAB, size=length)
    y = (ids[:, 1] % 2).astype("int32")

    def transform(x, width=None):
        return x if width is None else x[:, :width]

    return TaskDataset(ids, y, transform=transform, task="ids", lengths=lengths), ids


def _model(fixed_length=False):
    inner = Transformer(VOCAB, MAXLEN, embed_dim=16, num_heads=2, num_layers=1, dropout=0.0)
    ids = keras.Input(shape=(MAXLEN if fixed_length else None,), dtype="int32")
    recorder = _TraceRecorder()
    model = keras.Model(ids, inner(recorder(ids)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, recorder


def test_an_epoch_of_mixed_lengths_traces_the_train_step_at_most_once_per_width():
    data, _ = _ids_task()
    model, recorder = _model()
    learner = get_learner(model, data, data, batch_size=8, seed=0, verbose=0)
    learner.fit_onecycle(1e-3, 2, verbose=0)
    widths = set(round_width(data.lengths).tolist())
    assert 1 <= len(recorder.widths) <= len(widths)
    # Batches reach the step with a free width, not padded to MAXLEN.
    assert set(recorder.widths) == {None}


def test_bucketing_off_trains_on_batches_padded_to_the_full_width():
    data, _ = _ids_task()
    model, recorder = _model()
    learner = get_learner(model, data, batch_size=8, verbose=0, bucketing=False)
    learner.fit_onecycle(1e-3, 1, verbose=0)
    assert set(recorder.widths) == {MAXLEN}


def test_a_model_built_for_one_length_gets_full_width_batches_even_with_bucketing():
    data, _ = _ids_task()
    model, recorder = _model(fixed_length=True)
    learner = get_learner(model, data, data, batch_size=8, verbose=0)
    learner.fit_onecycle(1e-3, 1, verbose=0)
    assert set(recorder.widths) == {MAXLEN}
    assert learner.predict(data).shape == (N, 2)


def test_predict_and_validate_keep_the_data_order_and_match_full_padding():
    data, ids = _ids_task()
    model, _ = _model()
    learner = get_learner(model, data, data, batch_size=8, eval_batch_size=8, verbose=0)
    learner.fit_onecycle(1e-3, 1, verbose=0)
    expected = model.predict(ids, verbose=0)
    np.testing.assert_allclose(learner.predict(data), expected, atol=1e-5)
    np.testing.assert_allclose(learner.predict(data, batch_size=5), expected, atol=1e-5)
    off = get_learner(model, data, data, batch_size=8, verbose=0, bucketing=False)
    np.testing.assert_array_equal(
        learner.validate(print_report=False), off.validate(print_report=False)
    )
    assert [row[0] for row in learner.top_losses(5)] == [row[0] for row in off.top_losses(5)]


def test_bucketing_must_be_a_bool():
    data, _ = _ids_task()
    model, _ = _model()
    with pytest.raises(TypeError, match="bucketing"):
        get_learner(model, data, bucketing="yes")


def test_data_without_lengths_is_unaffected():
    data, ids = _ids_task()
    plain = TaskDataset(ids, data.y, transform=lambda x: x)
    model, recorder = _model()
    get_learner(model, plain, batch_size=8, verbose=0).fit_onecycle(1e-3, 1, verbose=0)
    assert set(recorder.widths) == {MAXLEN}
    np.testing.assert_allclose(
        get_learner(model, plain, verbose=0).predict(plain), model.predict(ids, verbose=0),
        atol=1e-6,
    )
    assert tf.executing_eagerly()


class _WidthRecorder(keras.layers.Layer):
    """Identity layer that records the width of every training batch (the model runs eagerly)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widths = []

    def call(self, inputs, training=None):
        if training:
            self.widths.append(int(inputs.shape[1]))
        return inputs


def _pooling_model(mask_zero):
    """Embedding -> mean over positions: padding counts in the mean unless it is masked."""
    ids = keras.Input(shape=(None,), dtype="int32")
    recorder = _WidthRecorder()
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=mask_zero)(recorder(ids))
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    return model, recorder


def _padding_warnings(caught):
    return [str(w.message) for w in caught if "mask_zero=True" in str(w.message)]


def test_a_model_that_does_not_mask_padding_gets_full_width_batches_and_one_warning():
    data, ids = _ids_task()
    model, recorder = _pooling_model(mask_zero=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner = get_learner(model, data, data, batch_size=8, verbose=0, bucketing=True)
        learner.fit_onecycle(1e-2, 1, verbose=0)
        predictions = learner.predict(data)
        report = learner.validate(print_report=False)
    assert set(recorder.widths) == {MAXLEN}
    # The outputs of fixed padding, which do not depend on the other examples of a batch.
    np.testing.assert_allclose(predictions, model.predict(ids, verbose=0), atol=1e-6)
    fixed = get_learner(model, data, data, batch_size=8, verbose=0, bucketing=False)
    np.testing.assert_array_equal(report, fixed.validate(print_report=False))
    messages = _padding_warnings(caught)
    assert len(messages) == 1
    assert "pads every batch to the full width" in messages[0]


def test_a_model_that_masks_padding_trains_on_narrower_batches_without_a_warning():
    data, ids = _ids_task()
    model, recorder = _pooling_model(mask_zero=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner = get_learner(model, data, data, batch_size=8, verbose=0)
        learner.fit_onecycle(1e-2, 1, verbose=0)
        predictions = learner.predict(data)
    assert min(recorder.widths) < MAXLEN
    assert set(recorder.widths) <= set(range(16, MAXLEN + 1, 16))
    np.testing.assert_allclose(predictions, model.predict(ids, verbose=0), atol=1e-6)
    assert not _padding_warnings(caught)


def test_the_padding_check_runs_once_per_training_step(monkeypatch):
    calls = []
    probe = bucketing._probe
    monkeypatch.setattr(bucketing, "_probe", lambda *args: calls.append(1) or probe(*args))
    data, _ = _ids_task()
    model, _ = _pooling_model(mask_zero=True)
    learner = get_learner(model, data, data, batch_size=8, verbose=0)
    learner.predict(data)
    learner.predict(data)
    learner.validate(print_report=False)
    assert len(calls) == 1
    learner.fit_onecycle(1e-3, 1, verbose=0)  # checked before it starts: the same weights
    assert len(calls) == 1
    learner.predict(data)  # the weights have trained since
    learner.predict(data)
    assert len(calls) == 2


def test_a_mixed_float16_model_reloaded_from_a_file_keeps_bucketing(tmp_path):
    # The reloaded model calls itself float32 while its layers compute in float16: the
    # padding check must allow float16's rounding, as before the save.
    data, _ = _ids_task()
    ids = keras.Input(shape=(None,), dtype="int32")
    model = keras.Model(ids, Transformer(VOCAB, MAXLEN, embed_dim=16, num_heads=2,
                                         num_layers=1, dropout=0.0)(ids))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    learner = get_learner(model, data, data, batch_size=8, verbose=0,
                          mixed_precision="mixed_float16")
    learner.fit_onecycle(1e-3, 1, verbose=0)
    learner.save_model(tmp_path / "model.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner.load_model(tmp_path / "model.keras")
        learner.predict(data)
    assert not _padding_warnings(caught)
