"""Tests for ktlite.models.Transformer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.layers import MaskedGlobalPooling, TokenAndPositionEmbedding, TransformerEncoder
from ktlite.models import DEFAULT_MAXLEN, Transformer


@pytest.fixture
def mixed_bfloat16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


SMALL = {"vocab_size": 20, "embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}


def _padded(ids, length):
    ids = np.asarray(ids, dtype="int32")
    return np.pad(ids, [(0, 0), (0, length - ids.shape[1])])


def test_returns_an_uncompiled_functional_model_with_int32_token_input():
    model = Transformer(maxlen=10, num_outputs=3, **SMALL)
    assert isinstance(model, keras.Model) and model.name == "transformer"
    assert not model.compiled
    # Any length up to maxlen, so per-batch padded ids run as they are.
    assert tuple(model.input.shape) == (None, None) and model.input.dtype == "int32"
    assert tuple(model.output.shape) == (None, 3)
    probs = np.asarray(model(_padded([[3, 4, 5]], 10)))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)


def test_default_sizes_are_documented_values():
    model = Transformer(vocab_size=50, maxlen=8)
    encoders = [layer for layer in model.layers if isinstance(layer, TransformerEncoder)]
    assert len(encoders) == 2
    assert encoders[0].num_heads == 4 and encoders[0].intermediate_dim == 4 * 128
    assert model.get_layer("embedding").embedding_dim == 128
    assert model.get_layer("pooling").mode == "mean"
    assert tuple(model.output.shape) == (None, 2)


@pytest.mark.parametrize("pooling", ["mean", "max", "first"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_output_does_not_change_with_the_amount_of_padding(pooling, norm_first):
    short = Transformer(maxlen=6, pooling=pooling, norm_first=norm_first, **SMALL)
    long = Transformer(maxlen=14, pooling=pooling, norm_first=norm_first, **SMALL)
    # Same weights; the longer model's extra position vectors are random, which is
    # harmless only if padded positions are really ignored.
    weights = short.get_weights()
    positions = short.get_layer("embedding").position_embeddings
    index = next(i for i, w in enumerate(short.weights) if w is positions)
    extra = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    weights[index] = np.concatenate([weights[index], extra])
    long.set_weights(weights)

    sentences = [[3, 4, 5], [7, 1, 2, 9, 9, 4]]
    for sentence in sentences:
        a = short(_padded([sentence], 6), training=False)
        b = long(_padded([sentence], 14), training=False)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max", "first"])
@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_a_text_gives_the_same_output_at_every_bucket_width_in_any_batch(pooling, position):
    model = Transformer(maxlen=64, pooling=pooling, position=position, **SMALL)
    rng = np.random.default_rng(0)
    texts = [list(rng.integers(1, 20, size=n)) for n in (1, 5, 15, 16)]
    alone = [np.asarray(model(_padded([t], 64), training=False))[0] for t in texts]
    for width in (16, 32, 48, 64):  # every width the learner and the predictor use
        for neighbours in ([], [list(rng.integers(1, 20, size=16))] * 3):
            rows = texts + neighbours
            batch = np.zeros((len(rows), width), dtype="int32")
            for i, row in enumerate(rows):
                batch[i, : len(row)] = row
            got = np.asarray(model(batch, training=False))[: len(texts)]
            np.testing.assert_allclose(got, np.stack(alone), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{}, {"norm_first": True, "head_hidden": 8, "pooling": "first"},
               {"position": "sinusoidal", "head_activation": None, "num_outputs": 1}]
)
def test_keras_round_trip_gives_identical_outputs(kwargs, tmp_path):
    model = Transformer(maxlen=8, **{**SMALL, **kwargs})
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    ids = np.array([[3, 4, 5, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]], dtype="int32")
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))
    assert isinstance(loaded.get_layer("embedding"), TokenAndPositionEmbedding)
    assert isinstance(loaded.get_layer("pooling"), MaskedGlobalPooling)


def test_head_activation_none_gives_unbounded_outputs_for_regression():
    model = Transformer(maxlen=8, num_outputs=1, head_activation=None, **SMALL)
    assert model.get_layer("head").activation.__name__ == "linear"


def test_mixed_bfloat16_model_outputs_float32_and_trains(mixed_bfloat16):
    model = Transformer(maxlen=8, **SMALL)
    assert model.get_layer("encoder_0").compute_dtype == "bfloat16"
    ids = np.random.default_rng(0).integers(0, 20, size=(16, 8)).astype("int32")
    out = model(ids)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(ids, np.arange(16) % 2, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def _token_presence_data(n, maxlen, marker, rng):
    """Random token sequences of random length; label 1 iff `marker` occurs."""
    lengths = rng.integers(3, maxlen + 1, size=n)
    ids = np.zeros((n, maxlen), dtype="int32")
    others = [t for t in range(1, SMALL["vocab_size"]) if t != marker]
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.choice(others, size=length)
    labels = (np.arange(n) % 2).astype("int32")
    positives = labels == 1
    ids[positives, rng.integers(0, lengths)[positives]] = marker
    return ids, labels


def test_learns_whether_a_token_is_present():
    rng = np.random.default_rng(0)
    x_train, y_train = _token_presence_data(256, 12, marker=7, rng=rng)
    x_test, y_test = _token_presence_data(128, 12, marker=7, rng=rng)
    model = Transformer(maxlen=12, dropout=0.0, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.9, accuracy


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"embed_dim": 10, "num_heads": 3}, ValueError, "Received: embed_dim=10, num_heads=3"),
        ({"vocab_size": 0}, ValueError, "Received: vocab_size=0"),
        ({"maxlen": 0}, ValueError, "must be a positive int or None. Received: maxlen=0"),
        ({"num_layers": 0}, ValueError, "Received: num_layers=0"),
        ({"ff_dim": -4}, ValueError, "Received: ff_dim=-4"),
        ({"dropout": 1.5}, ValueError, "Received: dropout=1.5"),
        ({"num_outputs": 0}, ValueError, "Received: num_outputs=0"),
        ({"head_activation": "nope"}, ValueError, "Received: head_activation='nope'"),
        ({"head_activation": 2}, TypeError, "Received: head_activation=2"),
        ({"pooling": "cls"}, ValueError, "Received: pooling='cls'"),
        ({"pooling": ["mean"]}, TypeError, r"Received: pooling=\['mean'\]"),
        ({"norm_first": None}, TypeError, "Received: norm_first=None"),
        ({"head_hidden": 0}, ValueError, "Received: head_hidden=0"),
        ({"position": "rope"}, ValueError, "Received: position='rope'"),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    args = {**SMALL, "maxlen": 8, **kwargs}
    with pytest.raises(error, match=message):
        Transformer(**args)


def test_an_all_padding_example_gives_finite_outputs():
    model = Transformer(maxlen=8, **SMALL)
    out = np.asarray(model(np.zeros((2, 8), dtype="int32")))
    assert np.isfinite(out).all()


def test_the_seeds_call_without_maxlen_takes_any_length_up_to_the_default_maximum():
    model = Transformer(vocab_size=1000, embed_dim=128, num_heads=4, num_layers=2)
    assert tuple(model.input.shape) == (None, None)
    assert model.get_layer("embedding").sequence_length == DEFAULT_MAXLEN == 512
    rng = np.random.default_rng(0)
    short, long = rng.integers(1, 1000, (3, 7)), rng.integers(1, 1000, (3, 50))
    assert model.predict(short, verbose=0).shape == (3, 2)
    assert model.predict(long, verbose=0).shape == (3, 2)
    # Padding a row to another length changes nothing: the length really is free.
    np.testing.assert_allclose(
        model.predict(_padded(short, 50), verbose=0), model.predict(short, verbose=0), atol=1e-5
    )
    assert model.predict(np.ones((1, DEFAULT_MAXLEN), "int32"), verbose=0).shape == (1, 2)


def test_without_maxlen_a_longer_input_is_refused_naming_the_maximum():
    model = Transformer(**SMALL)
    too_long = np.ones((2, DEFAULT_MAXLEN + 1), "int32")
    with pytest.raises(ValueError, match=f"length=513, sequence_length={DEFAULT_MAXLEN}"):
        model.predict(too_long, verbose=0)
    # A graph that learns the length only at run time refuses it too.
    serve = tf.function(model, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    assert tuple(serve(tf.ones((2, 9), tf.int32)).shape) == (2, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`sequence_length`=512"):
        serve(tf.constant(too_long))


def test_without_maxlen_trains_on_batches_of_different_lengths_under_xla():
    rng = np.random.default_rng(1)
    rows = [rng.integers(1, 20, n) for n in (3, 5, 9, 12) * 8]
    labels = np.array([int(5 in row) for row in rows])
    data = tf.data.Dataset.from_generator(
        lambda: zip(rows, labels),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)),
    ).padded_batch(8).apply(tf.data.experimental.assert_cardinality(4))
    model = Transformer(**SMALL)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    before = model.get_layer("head").kernel.numpy().copy()
    history = model.fit(data, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(model.get_layer("head").kernel.numpy(), before)


def test_without_maxlen_round_trips_through_a_safe_mode_keras_file(tmp_path):
    model = Transformer(**SMALL)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert tuple(loaded.input.shape) == (None, None)
    for length in (7, 50):
        ids = np.random.default_rng(length).integers(1, 20, (2, length)).astype("int32")
        np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))
