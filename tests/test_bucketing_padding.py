"""ktlite.bucketing.padding_invariant: the check that per-batch padding cannot change a
model's outputs, its answer kept per model, and its one warning."""

import warnings

import keras
import numpy as np
import pytest

from ktlite import bucketing
from ktlite.bucketing import padding_invariant

VOCAB, FULL = 20, 48


def _ids():
    """Five examples at 3 positions (all but the first fill them) and padded to FULL."""
    narrow = np.array([[3, 4, 0], [5, 6, 7], [8, 9, 1], [2, 3, 4], [10, 11, 12]], "int32")
    return narrow, np.pad(narrow, [(0, 0), (0, FULL - 3)])


def _model(mask_zero, pooling=keras.layers.GlobalAveragePooling1D, head="glorot_uniform"):
    """Embedding -> `pooling` (None: outputs per position, from a bidirectional LSTM) ->
    Dense."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=mask_zero)(ids)
    lstm = keras.layers.LSTM(4, return_sequences=True)
    x = pooling()(x) if pooling else keras.layers.Bidirectional(lstm)(x)
    return keras.Model(ids, keras.layers.Dense(3, kernel_initializer=head)(x))


class _Recorder(keras.Model):
    """Records the inputs of each call; outputs the sum of each row."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def call(self, inputs):
        self.seen.append(np.asarray(inputs))
        return keras.ops.cast(keras.ops.sum(inputs, axis=1, keepdims=True), "float32")


def _ours(caught):
    return [w for w in caught if "mask_zero=True" in str(w.message)]


@pytest.fixture
def caught():
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield records


def _calls(inputs):
    """`make_inputs` that counts its calls."""
    calls = []
    return calls, lambda: calls.append(1) or inputs


@pytest.mark.parametrize("pooling", [keras.layers.GlobalAveragePooling1D, None])
def test_a_model_that_masks_padding_passes_without_a_warning(pooling, caught):
    assert padding_invariant(_model(True, pooling), "ids", _ids) is True
    assert not _ours(caught)


def test_a_layer_that_drops_the_mask_fails_the_check(caught):
    # Keras' GlobalMaxPooling1D ignores the embedding's mask: the padding's vector counts.
    model = _model(True, keras.layers.GlobalMaxPooling1D)
    assert padding_invariant(model, "ids", _ids) is False
    assert len(_ours(caught)) == 1


@pytest.mark.parametrize("pooling", [keras.layers.GlobalAveragePooling1D,
                                     keras.layers.GlobalMaxPooling1D, None])
def test_a_model_that_does_not_mask_padding_fails_with_one_warning_and_one_check(pooling, caught):
    model = _model(False, pooling)
    calls, make_inputs = _calls(_ids())
    assert padding_invariant(model, "ids", make_inputs) is False
    assert padding_invariant(model, "ids", make_inputs) is False
    assert padding_invariant(model, "other ids", _ids) is False
    assert calls == [1]
    assert len(_ours(caught)) == 1
    assert "bucketing=False" in str(_ours(caught)[0].message)


def test_the_check_runs_again_once_the_weights_have_trained():
    model = _model(True)
    model.compile(optimizer="sgd", loss="mse")
    calls, make_inputs = _calls(_ids())
    padding_invariant(model, "ids", make_inputs)
    padding_invariant(model, "ids", make_inputs)
    model.fit(_ids()[1], np.zeros((5, 3)), epochs=1, verbose=0)
    assert padding_invariant(model, "ids", make_inputs) is True
    assert calls == [1, 1]


def test_examples_that_fill_the_full_width_leave_bucketing_off_without_a_warning(caught):
    full = _ids()[1]
    assert padding_invariant(_model(True), "ids", lambda: (full, full)) is False
    assert not _ours(caught)


def test_outputs_that_ignore_the_inputs_tell_nothing_and_are_checked_again(caught):
    model = _model(False, head="zeros")  # every example gets the same outputs
    calls, make_inputs = _calls(_ids())
    assert padding_invariant(model, "ids", make_inputs) is False
    assert padding_invariant(model, "ids", make_inputs) is False
    assert calls == [1, 1]
    assert not _ours(caught)


def test_the_wide_run_is_the_narrow_inputs_with_zeros_after_them():
    model = _Recorder()
    narrow, full = _ids()
    # Only the full inputs' width counts: a transform may draw other random ids each call.
    assert bucketing._probe(model, narrow, np.ones_like(full)) == "same"
    np.testing.assert_array_equal(model.seen[0], full)
    np.testing.assert_array_equal(model.seen[1], narrow)


def test_an_unhashable_source_is_told_apart_by_its_identity():
    model, source = _model(True), ["a transform that cannot be hashed"]
    calls, make_inputs = _calls(_ids())
    assert padding_invariant(model, source, make_inputs) is True
    assert padding_invariant(model, source, make_inputs) is True
    assert calls == [1]
