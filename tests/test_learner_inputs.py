"""get_learner accepts every supported kind of data and rejects bad input clearly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite.data import TaskDataset
from ktlite.learner import Learner, get_learner

N, D, C = 64, 4, 3


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    return x, rng.integers(0, C, size=n)


def _model(loss="sparse_categorical_crossentropy", outputs=C, activation="softmax", metrics=None):
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(8, activation="relu"),
         keras.layers.Dense(outputs, activation=activation)]
    )
    model.compile(optimizer="adam", loss=loss, metrics=metrics or ["accuracy"])
    return model


def _fits(learner):
    history = learner.fit_onecycle(1e-2, 1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    return history


# --------------------------------------------------------------------- accepted kinds
def test_numpy_tuple_is_accepted_and_length_known():
    x, y = _data()
    learner = get_learner(_model(), (x, y), batch_size=16, verbose=0)
    assert isinstance(learner, Learner) and isinstance(learner.train_data, TaskDataset)
    assert learner._train_steps() == 4
    _fits(learner)


def test_python_lists_are_accepted():
    x, y = _data()
    learner = get_learner(_model(), (x.tolist(), y.tolist()), batch_size=16, verbose=0)
    assert len(learner.train_data) == N


def test_dict_and_list_inputs_for_multi_input_model():
    a_in, b_in = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(C, activation="softmax")(keras.layers.Concatenate()([a_in, b_in]))
    model = keras.Model({"a": a_in, "b": b_in}, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data()
    learner = get_learner(model, ({"a": x[:, :2], "b": x[:, 2:]}, y), batch_size=16, verbose=0)
    _fits(learner)

    model = keras.Model([a_in, b_in], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    learner = get_learner(model, ([x[:, :2], x[:, 2:]], y), batch_size=16, verbose=0)
    _fits(learner)
    assert learner.predict([x[:, :2], x[:, 2:]]).shape == (N, C)


class _TupleBatches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 4

    def __getitem__(self, i):
        part = slice(i * 16, (i + 1) * 16)
        return (self.x[part, :2], self.x[part, 2:]), self.y[part]


@pytest.mark.parametrize("kind", ["tf_data", "pydataset"])
def test_validate_and_top_losses_judge_tuple_inputs_of_a_multi_input_model(kind):
    # validate() and top_losses() handed the model each batch's inputs as a 2-tuple,
    # which Keras read as (x, y): both failed on data that fit accepts.
    a_in, b_in = keras.Input((2,)), keras.Input((2,))
    out = keras.layers.Dense(C, activation="softmax")(keras.layers.Concatenate()([a_in, b_in]))
    model = keras.Model([a_in, b_in], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data()
    data = (tf.data.Dataset.from_tensor_slices(((x[:, :2], x[:, 2:]), y)).batch(16)
            if kind == "tf_data" else _TupleBatches(x, y))
    learner = get_learner(model, data, data, verbose=0)
    probs = model.predict([x[:, :2], x[:, 2:]], verbose=0)
    matrix = learner.validate(print_report=False)
    expected = np.zeros((C, C), int)
    np.add.at(expected, (y, probs.argmax(1)), 1)
    np.testing.assert_array_equal(matrix, expected)
    losses = -np.log(probs[np.arange(N), y])
    top = learner.top_losses(1)
    assert int(top[0][0]) == int(losses.argmax())
    assert float(top[0][1]) == pytest.approx(losses.max(), rel=1e-4)


def test_multi_input_data_is_matched_to_the_inputs_up_front():
    # Keys out of alphabetical order and inputs of different widths: arrays are matched
    # by key, as Keras matches them (it orders `model.inputs` by key).
    b_in, a_in = keras.Input((3,), name="b"), keras.Input((1,), name="a")
    out = keras.layers.Dense(C, activation="softmax")(keras.layers.Concatenate()([b_in, a_in]))
    x, y = _data()
    a, b = x[:, :1], x[:, 1:]
    for structure in ({"b": b_in, "a": a_in}, [b_in, a_in]):
        model = keras.Model(structure, out)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        with pytest.raises(ValueError, match=r"key \['a', 'b'\] to an array; \['b'\] have "
                                             r"none. Received: keys \['a', 'c'\]"):
            get_learner(model, ({"a": a, "c": b}, y))
        with pytest.raises(ValueError, match=r"the model has 2, .*Received: one ndarray"):
            get_learner(model, (x, y))
        # Accepted as Keras accepts them: extra keys, a missing last axis of 1; then a fit.
        _fits(get_learner(model, ({"b": b, "a": a[:, 0], "id": y}, y), batch_size=16,
                          verbose=0))
    # A list goes to a list-built model in its order, never to a dict-built one.
    with pytest.raises(ValueError, match=r"`val_data x\[1\]` samples have shape \(3,\), "
                                         r"but the model expects \(1,\)"):
        get_learner(model, ([b, a], y), ([b, b], y))
    with pytest.raises(ValueError, match=r"one array per model input \(2, in the order "
                                         r"\['b', 'a'\]\). Received: 1 arrays"):
        get_learner(model, ([b], y))
    _fits(get_learner(model, ([b, a], y), batch_size=16, verbose=0))
    dict_built = keras.Model({"b": b_in, "a": a_in}, out)
    dict_built.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"must be a dict keyed \['a', 'b'\]: the model was "
                                         r"built on a dict of inputs. Received: a list of 2"):
        get_learner(dict_built, ([a, b], y))


def test_nested_input_structures_are_left_to_keras():
    a_in, b_in, c_in = (keras.Input((2,), name=n) for n in "abc")
    merged = keras.layers.Concatenate()([a_in, b_in, c_in])
    model = keras.Model([[a_in, b_in], c_in], keras.layers.Dense(C, activation="softmax")(merged))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data()
    nested = tf.data.Dataset.from_tensor_slices((((x[:, :2], x[:, 2:]), x[:, :2]), y)).batch(16)
    _fits(get_learner(model, nested, verbose=0))


def test_unbatched_tf_dataset_is_batched_with_batch_size():
    x, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    learner = get_learner(_model(), ds, val_data=ds, batch_size=16, verbose=0)
    assert learner._train_steps() == 4
    _fits(learner)


def test_batched_tf_dataset_keeps_its_own_batches():
    x, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    learner = get_learner(_model(), ds, batch_size=16, verbose=0)
    assert learner._train_steps() == 8


def _dict_model():
    a_in, b_in = keras.Input((3,), name="a"), keras.Input((1,), name="b")
    out = keras.layers.Dense(C, activation="softmax")(keras.layers.Concatenate()([a_in, b_in]))
    model = keras.Model({"a": a_in, "b": b_in}, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("group", [
    lambda ds: ds.bucket_by_sequence_length(lambda f, label: tf.constant(1), [5], [4, 4]),
    lambda ds: ds.group_by_window(lambda f, label: label, lambda k, w: w.batch(4), 4),
], ids=["bucket_by_sequence_length", "group_by_window"])
def test_a_dataset_batched_by_grouping_keeps_its_own_batches(group):
    x, y = _data()
    samples = tf.data.Dataset.from_tensor_slices(({"a": x[:, :3], "b": x[:, 3:]}, y))
    model = _dict_model()
    learner = get_learner(model, group(samples), batch_size=16, verbose=0)
    steps = learner._train_steps()
    assert steps >= N // 4
    _fits(learner)
    assert int(model.optimizer.iterations.numpy()) == steps


def test_tf_dataset_of_unknown_length_is_counted():
    x, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: b >= 0).batch(16)
    learner = get_learner(_model(), ds, verbose=0)
    assert learner._train_steps() == 4


def test_validation_data_that_repeats_forever_is_refused_before_anything_runs():
    x, y = _data()
    read = []

    def noted(a, b):  # counts the examples the pipeline reads
        return a + tf.py_function(lambda: read.append(1) or 0.0, [], tf.float32), b

    endless = tf.data.Dataset.from_tensor_slices((x, y)).map(noted).batch(16).repeat()
    message = r"`val_data` repeats forever, so validation would never end: .*`\.take\(n\)`"
    with pytest.raises(ValueError, match=message):
        get_learner(_model(), (x, y), endless, verbose=0)
    learner = get_learner(_model(), (x, y), verbose=0)
    with pytest.raises(ValueError, match=message):
        learner.validate(endless)
    with pytest.raises(ValueError, match=message):
        learner.top_losses(3, val_data=endless)
    with pytest.raises(ValueError, match=message):
        learner.view_top_losses(3, val_data=endless)
    assert not read


def test_predict_refuses_a_dataset_that_repeats_forever_before_anything_runs():
    # It ran on forever instead.
    x, y = _data()
    read = []

    def noted(a):  # counts the examples the pipeline reads
        return a + tf.py_function(lambda: read.append(1) or 0.0, [], tf.float32)

    endless = tf.data.Dataset.from_tensor_slices(x).map(noted).batch(16).repeat()
    learner = get_learner(_model(), (x, y), verbose=0)
    with pytest.raises(ValueError, match=r"`data` repeats forever, so prediction would never "
                                         r"end: .*`\.take\(n\)`\)\. Received: an infinite"):
        learner.predict(endless)
    assert not read
    assert learner.predict(endless.take(2)).shape == (32, C)


class _Batches(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.x, self.y = _data()

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.x[i * 16:(i + 1) * 16], self.y[i * 16:(i + 1) * 16]


def test_pydataset_is_accepted():
    learner = get_learner(_model(), _Batches(), val_data=_Batches(), verbose=0)
    assert learner._train_steps() == 4
    _fits(learner)


class _PaddedTokens(keras.utils.PyDataset):
    """Batches of 8 token-id sequences, each padded to its own longest one."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.widths = (17, 19, 18, 12)
        self.x = [rng.integers(1, 50, size=(8, width)).astype("int32") for width in self.widths]
        self.y = [rng.integers(0, 2, size=8) for _ in self.widths]

    def __len__(self):
        return len(self.widths)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_pydataset_padded_per_batch_trains_and_sweeps():
    tokens = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(2)(pooled))
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    learner = get_learner(model, _PaddedTokens(), batch_size=8, verbose=0)
    learner.fit_onecycle(1e-3, 2, verbose=0)
    assert len(learner.step_history["lrs"]) == 8 == int(model.optimizer.iterations.numpy())
    assert len(learner.lr_find(num_steps=6, verbose=0).lrs) == 6


def test_task_dataset_with_transform_is_accepted():
    x, y = _data()
    raw = np.array([" ".join(map(str, row)) for row in x], dtype=object)

    def to_floats(texts):
        parts = tf.strings.split(texts).to_tensor(default_value="0", shape=[None, D])
        return tf.strings.to_number(parts)

    data = TaskDataset(raw, y, transform=to_floats, task="demo")
    learner = get_learner(_model(), data, val_data=data, batch_size=16, verbose=0)
    _fits(learner)
    np.testing.assert_allclose(learner.predict(data), learner.predict(x), rtol=1e-5, atol=1e-6)


def test_one_hot_binary_and_regression_labels_accepted():
    x, y = _data()
    get_learner(_model("categorical_crossentropy"), (x, np.eye(C)[y]), verbose=0)
    get_learner(_model("binary_crossentropy", 1, "sigmoid"), (x, y % 2), verbose=0)
    get_learner(_model("mse", 1, None, ["mae"]), (x, x[:, 0]), verbose=0)
    get_learner(_model(keras.losses.SparseCategoricalCrossentropy()), (x, y), verbose=0)


# --------------------------------------------------------------------- rejected input
def test_non_model_is_a_type_error():
    with pytest.raises(TypeError, match="`model` must be a keras.Model.*str"):
        get_learner("model", _data())


def test_uncompiled_model_error_shows_keyword_compile():
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(C)])
    with pytest.raises(ValueError, match=r'model.compile\(optimizer="adam", loss='):
        get_learner(model, _data())


def test_positional_compile_trap_is_explained():
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(C, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    with pytest.raises(ValueError, match="positional.*loss_weights"):
        get_learner(model, _data())


@pytest.mark.parametrize(
    "batch_size, error",
    [(0, ValueError), (-1, ValueError), (True, TypeError), (8.0, TypeError), ("32", TypeError)],
)
def test_batch_size_must_be_positive_int(batch_size, error):
    with pytest.raises(error, match=f"batch_size={batch_size!r}"):
        get_learner(_model(), _data(), batch_size=batch_size)


def test_eval_batch_size_and_verbose_are_checked():
    with pytest.raises(ValueError, match="eval_batch_size=0"):
        get_learner(_model(), _data(), eval_batch_size=0)
    with pytest.raises(TypeError, match="verbose"):
        get_learner(_model(), _data(), verbose="loud")


def test_empty_data_is_rejected():
    x, y = _data()
    with pytest.raises(ValueError, match="train_data.*at least one sample"):
        get_learner(_model(), (x[:0], y[:0]))
    with pytest.raises(ValueError, match="val_data.*at least one sample"):
        get_learner(_model(), (x, y), tf.data.Dataset.from_tensor_slices((x, y)).take(0))


def test_x_y_length_mismatch_is_rejected():
    x, y = _data()
    with pytest.raises(ValueError, match="64 samples in x and 63 in y"):
        get_learner(_model(), (x, y[:-1]))
    with pytest.raises(ValueError, match="same number of samples"):
        get_learner(_model(), ({"a": x, "b": x[:3]}, y))


def test_class_id_beyond_outputs_is_rejected():
    x, y = _data()
    y[5] = C
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\].*3 outputs"):
        get_learner(_model(), (x, y))
    with pytest.raises(ValueError, match="integer class ids"):
        get_learner(_model(), (x, y * 0.5))


def test_one_hot_width_mismatch_is_rejected():
    x, y = _data()
    with pytest.raises(ValueError, match="one-hot with 3 columns"):
        get_learner(_model("categorical_crossentropy"), (x, np.eye(C + 1)[y]))


def test_one_hot_labels_for_a_sparse_loss_are_rejected():
    x, y = _data()
    message = r"one class id per sample for loss 'sparse_categorical_crossentropy'.*\(64, 3\)"
    with pytest.raises(ValueError, match=message):
        get_learner(_model(), (x, np.eye(C)[y]))
    with pytest.raises(ValueError, match=message):
        get_learner(_model(), tf.data.Dataset.from_tensor_slices((x, np.eye(C)[y])).batch(64))
    get_learner(_model(), (x, y[:, None]), verbose=0)  # a column of ids is fine


def test_binary_labels_out_of_range_and_regression_width_are_rejected():
    x, y = _data()
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        get_learner(_model("binary_crossentropy", 1, "sigmoid"), (x, y))
    with pytest.raises(ValueError, match="2 column"):
        get_learner(_model("mse", 1, None, ["mae"]), (x, x[:, :2]))


def test_string_labels_are_a_type_error():
    x, _ = _data()
    with pytest.raises(TypeError, match="encode the labels"):
        get_learner(_model(), (x, np.array(["a"] * N)))


def test_nan_and_inf_are_rejected():
    x, y = _data()
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="train_data x.*NaN.*sample 7"):
        get_learner(_model(), (bad, y))
    target = x[:, 0].copy()
    target[3] = np.inf
    with pytest.raises(ValueError, match="val_data y.*sample 3"):
        get_learner(_model("mse", 1, None, ["mae"]), (x, x[:, 0]), (x, target))
    ds = tf.data.Dataset.from_tensor_slices((bad, y)).batch(16)
    with pytest.raises(ValueError, match="first batch"):
        get_learner(_model(), ds)


def test_input_shape_mismatch_is_rejected():
    x, y = _data()
    with pytest.raises(ValueError, match=r"samples have shape \(5,\)"):
        get_learner(_model(), (np.zeros((N, 5), "float32"), y))


@pytest.mark.parametrize("data", ["text", 3, [1, 2, 3], np.zeros((3, D))])
def test_unsupported_train_data_is_a_type_error(data):
    with pytest.raises(TypeError, match="`train_data` must be"):
        get_learner(_model(), data)


def test_an_x_y_weights_tuple_is_refused_saying_where_weights_go():
    x, y = _data()
    with pytest.raises(TypeError, match=r"Received: a tuple of 3 items \(sample weights go in "
                                        r"a tf.data.Dataset"):
        get_learner(_model(), (x, y, np.ones(len(y))))


def test_unlabelled_data_is_rejected():
    x, _ = _data()
    with pytest.raises(ValueError, match="labelled"):
        get_learner(_model(), tf.data.Dataset.from_tensor_slices(x).batch(8))
    with pytest.raises(ValueError, match="labelled"):
        get_learner(_model(), TaskDataset(x))


def test_distribution_settings_need_the_distribute_module(monkeypatch):
    import sys

    import ktlite

    monkeypatch.setitem(sys.modules, "ktlite.distribute", None)
    monkeypatch.delattr(ktlite, "distribute", raising=False)
    with pytest.raises(NotImplementedError, match="jit_compile=True"):
        get_learner(_model(), _data(), jit_compile=True)


# --------------------------------------------------------------------- user objects untouched
def test_user_lists_and_optimizer_are_not_replaced_or_mutated():
    x, y = _data()
    metrics = ["accuracy"]
    model = _model(metrics=metrics)
    optimizer = model.optimizer
    callbacks = [keras.callbacks.History()]
    learner = get_learner(model, (x, y), (x, y), batch_size=16, verbose=0)
    learner.fit_onecycle(1e-2, 1, callbacks=callbacks)
    learner.autofit(1e-2, 1, callbacks=callbacks)
    assert metrics == ["accuracy"] and len(callbacks) == 1
    assert learner.model is model and model.optimizer is optimizer
    assert "val_accuracy" in learner.history.history
    assert isinstance(optimizer.beta_1, float) and optimizer.beta_1 == 0.9


def test_generator_of_batches_is_recognised_by_rank():
    x, y = _data()

    def batches():
        for i in range(0, N, 16):
            yield x[i:i + 16], y[i:i + 16]

    ds = tf.data.Dataset.from_generator(
        batches,
        output_signature=(tf.TensorSpec((None, D), tf.float32), tf.TensorSpec((None,), tf.int64)),
    )
    learner = get_learner(_model(), ds, batch_size=5, verbose=0)
    assert learner._train_steps() == 4
    _fits(learner)


@pytest.mark.parametrize("structure", ["dict", "tuple"])
def test_generator_of_batches_for_a_multi_input_model_is_recognised_by_rank(structure):
    # Only a single input's rank was compared: a multi-input model's batches of unknown
    # size were batched again, and the fit failed on inputs of rank 3.
    a_in, b_in = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(C, activation="softmax")(keras.layers.Concatenate()([a_in, b_in]))
    as_dict = structure == "dict"
    model = keras.Model({"a": a_in, "b": b_in} if as_dict else [a_in, b_in], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data()

    def batches():
        for i in range(0, N, 16):
            a, b = x[i:i + 16, :2], x[i:i + 16, 2:]
            yield ({"a": a, "b": b} if as_dict else (a, b)), y[i:i + 16]

    spec = tf.TensorSpec((None, 2), tf.float32)
    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        {"a": spec, "b": spec} if as_dict else (spec, spec), tf.TensorSpec((None,), tf.int64)))
    learner = get_learner(model, ds, batch_size=5, verbose=0)
    assert learner._train_steps() == 4
    _fits(learner)
    assert len(learner.step_history["lrs"]) == 4


class TwoLayerNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.head = keras.layers.Dense(C, activation="softmax")

    def call(self, x):
        return self.head(self.hidden(x))


def _generated(x, y=None, size=16):
    """A `from_generator` dataset yielding batches of `size`, batch dimension unknown."""
    x_spec = tf.TensorSpec((None, D), tf.float32)
    if y is None:
        return tf.data.Dataset.from_generator(
            lambda: (x[i:i + size] for i in range(0, len(x), size)), output_signature=x_spec)
    return tf.data.Dataset.from_generator(
        lambda: ((x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)),
        output_signature=(x_spec, tf.TensorSpec((None,), tf.int64)),
    )


@pytest.mark.parametrize("make_model", [
    TwoLayerNet,
    lambda: keras.Sequential([keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(C, activation="softmax")]),
], ids=["subclassed", "sequential_without_input"])
def test_generator_of_batches_for_a_model_without_inputs_keeps_its_batches(make_model):
    x, y = _data()
    model = make_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    learner = get_learner(model, _generated(x, y), batch_size=5, verbose=0)
    learner.fit_onecycle(1e-2, 2, verbose=0)
    assert len(learner.step_history["lrs"]) == 8 == int(model.optimizer.iterations.numpy())
    assert learner.predict(_generated(x)).shape == (N, C)


def test_samples_of_known_shape_for_a_model_without_inputs_are_batched():
    x, y = _data()
    model = TwoLayerNet()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    samples = tf.data.Dataset.from_generator(
        lambda: zip(x, y),
        output_signature=(tf.TensorSpec((D,), tf.float32), tf.TensorSpec((), tf.int64)),
    )
    learner = get_learner(model, samples, batch_size=16, verbose=0)
    assert learner._train_steps() == 4


def test_sequence_samples_of_unknown_length_for_a_model_without_inputs_are_batched():
    # One tagged sentence per item, `(None,)` tokens and tags: a sequence, not a batch.
    rng = np.random.default_rng(0)
    sentences = [rng.integers(1, 20, 6).astype("int32") for _ in range(32)]
    samples = tf.data.Dataset.from_generator(
        lambda: ((s, s % C) for s in sentences),
        output_signature=(tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32)),
    )
    model = keras.Sequential([keras.layers.Embedding(20, 4), keras.layers.Dense(C)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    learner = get_learner(model, samples, batch_size=8, verbose=0)
    assert learner._train_steps() == 4


# --------------------------------------------------------------------- raw examples
def _task_data(x, y):
    """Raw examples in [0, 100] that the 'task' scales by 1/100; its reader reads new ones."""
    def reader(raw, labels):
        raw = np.asarray(raw, dtype="float32")
        if raw.ndim != 2:
            raise ValueError(f"`x` must be 2-D. Received: shape {raw.shape}")
        return TaskDataset(raw, labels, transform=lambda b: b / 100.0, task="toy", reader=reader)

    return reader(x, y)


def test_raw_examples_are_read_by_the_training_datas_reader():
    x, y = _data()
    raw = x * 100.0
    learner = get_learner(_model(), _task_data(raw, y), verbose=0)
    expected = learner.model.predict(x, verbose=0)
    np.testing.assert_allclose(learner.predict(raw), expected, rtol=1e-5, atol=1e-6)
    # raw / 100 is x up to float32 rounding, so the losses match to rounding, not bits.
    losses = learner.top_losses(3, val_data=(raw, y))
    direct = learner.top_losses(3, val_data=TaskDataset(x, y))
    assert [(i, t, p) for i, _, t, p in losses] == [(i, t, p) for i, _, t, p in direct]
    np.testing.assert_allclose([row[1] for row in losses], [row[1] for row in direct],
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"`data` is read as raw toy examples.*`x` must be 2-D"):
        learner.predict(raw[0])
    # Training data without a reader (a tf.data pipeline): the validation data's reads.
    piped = get_learner(learner.model, tf.data.Dataset.from_tensor_slices((x, y)),
                        val_data=_task_data(raw, y), verbose=0)
    np.testing.assert_allclose(piped.predict(raw), expected, rtol=1e-5, atol=1e-6)
    # Without a reader, arrays reach the model as they are.
    plain = get_learner(_model(), (x, y), verbose=0)
    assert plain.train_data.reader is None
    np.testing.assert_allclose(plain.predict(x), plain.model.predict(x, verbose=0), rtol=1e-5)


# --------------------------------------------------------------------- classes of the labels
def _encoded(x, names):
    """A classifying task's data: labels encoded by classes fitted on `names` alone."""
    from ktlite.classifier import classification_reporter
    from ktlite.labels import LabelEncoder

    labels = LabelEncoder().fit(names)
    return TaskDataset(x, labels.encode(names), reporter=classification_reporter(labels))


def test_validation_data_encoded_with_other_classes_is_refused():
    x, y = _data()
    train_names = np.array(["a", "b", "c"])[y]
    val_names = np.array(["b", "c", "d"])[y]  # fitted alone: id 0 is "b" here, "a" there
    trn = _encoded(x, train_names)
    with pytest.raises(ValueError, match=r"`val_data` was encoded with other classes than the "
                       r"training data \(\['b', 'c', 'd'\] against \['a', 'b', 'c'\]\)"):
        get_learner(_model(), trn, _encoded(x, val_names), verbose=0)
    learner = get_learner(_model(), trn, _encoded(x, train_names), verbose=0)
    with pytest.raises(ValueError, match="`val_data` was encoded with other classes"):
        learner.validate(val_data=_encoded(x, val_names), print_report=False)
    with pytest.raises(ValueError, match=r"\(\['a', 'b'\] against"):  # fitted on fewer classes
        learner.top_losses(3, val_data=_encoded(x[y < 2], train_names[y < 2]))
    # Raw examples, or data that does not say, are taken.
    learner.validate(val_data=(x, y), print_report=False)
    # Training data assigned later must still fit the validation data; refused, it is kept.
    with pytest.raises(ValueError, match="`val_data` was encoded with other classes"):
        learner.train_data = _encoded(x, val_names)
    assert learner.train_data is trn
    with pytest.raises(ValueError, match="`val_data` was encoded with other classes"):
        learner.val_data = _encoded(x, val_names)


# --------------------------------------------------------------------- the preprocessor's state
class _Scaler:
    """A toy preprocessor: its state is one scale, saved as a file."""

    def __init__(self, scale):
        self.scale = scale
        self.saves = 0

    def save(self, folder):
        self.saves += 1
        with open(f"{folder}/scale.json", "w") as handle:
            handle.write(str(self.scale))

    def data(self, x, y):
        return TaskDataset(x, y, transform=lambda batch: batch * self.scale, preproc=self)


def test_validation_data_encoded_by_another_preprocessor_state_is_refused():
    # Two loader calls each fit their own state (e.g. a table's categories and scaling): a
    # second call's data scored 0.00 on a model that scores 1.00 on the same rows.
    x, y = _data()
    mine = _Scaler(2.0)
    trn = mine.data(x, y)
    message = (r"`val_data` was encoded with another preprocessor than the training data's, "
               r"fitted on its own examples.*`\*_dataset\(x, y, preproc\)`")
    with pytest.raises(ValueError, match=message):
        get_learner(_model(), trn, _Scaler(3.0).data(x, y), verbose=0)
    mine.saves = 0
    learner = get_learner(_model(), trn, mine.data(x, y), verbose=0)
    assert mine.saves == 0  # the same object: nothing to compare
    with pytest.raises(ValueError, match=message):
        learner.validate(val_data=_Scaler(0.5).data(x, y), print_report=False)
    # A copy that saves the same state (e.g. reloaded from disk) encodes alike.
    learner.validate(val_data=_Scaler(2.0).data(x, y), print_report=False)
    assert trn.subset([0, 1]).preproc is mine
    assert trn.encoded_like(TaskDataset(x, y)) and not trn.encoded_like(_Scaler(1.0).data(x, y))
    with pytest.raises(TypeError, match="`preproc` must be a preprocessor with a `save"):
        TaskDataset(x, y, preproc=object())


def test_raw_text_for_a_model_of_ids_is_refused_up_front_in_every_form():
    x, y = _data()
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              keras.layers.Embedding(20, 4), keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(C, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    texts = [f"text {i}" for i in range(N)]
    message = r"`{}` holds raw text, but the model takes int32 inputs .*text.text_dataset"
    for data in ((texts, y), (np.array(texts), y)):
        with pytest.raises(ValueError, match=message.format("train_data x")):
            get_learner(model, data)
    ids = (np.arange(N * 3).reshape(N, 3) % 20, y)
    learner = get_learner(model, ids, ids)
    with pytest.raises(ValueError, match=message.format(r"val_data \(first batch\) x")):
        learner.val_data = tf.data.Dataset.from_tensor_slices((texts, y)).batch(8)
    with pytest.raises(ValueError, match=message.format("train_data x")):
        learner.train_data = (texts, y)  # assigned data is checked as get_learner checks it
    assert learner.train_data.x is ids[0] and learner.val_data.x is ids[0]  # kept
    # A model that takes strings itself is given them.
    keep = keras.Sequential([keras.Input((1,), dtype="string"),
                             keras.layers.StringLookup(vocabulary=texts[:5],
                                                       output_mode="multi_hot"),
                             keras.layers.Dense(C)])
    keep.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    assert len(get_learner(keep, (np.array(texts), y)).train_data) == N
