"""Around the fit: validate, top losses, predict, freeze, weight decay, save/load."""

import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import ktlite
from ktlite.data import TaskDataset
from ktlite.learner import Learner, get_learner

N, D = 64, 4


def _x(n=N, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype("float32")


def _model(outputs=3, activation="softmax", loss="sparse_categorical_crossentropy",
           metrics=("accuracy",)):
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(8, activation="relu", name="body"),
         keras.layers.Dense(outputs, activation=activation, name="head")]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=list(metrics))
    return model


def _classifier_learner():
    x = _x()
    y = np.argmax(x[:, :3], axis=1)
    return get_learner(_model(), (x, y), (x[:32], y[:32]), batch_size=16, verbose=0), x, y


# --------------------------------------------------------------------- validate
def test_validate_multiclass_prints_report_and_returns_confusion_matrix(capsys):
    learner, x, y = _classifier_learner()
    cm = learner.validate(class_names=["a", "b", "c"])
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and " b " in out
    assert cm.shape == (3, 3) and cm.sum() == 32
    predicted = np.argmax(learner.predict(x[:32]), axis=1)
    np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(predicted, minlength=3))
    learner.validate(print_report=False)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="class_names"):
        learner.validate(class_names=["a", "b"])
    with pytest.raises(TypeError, match="list of strings. Received: class_names='abc'"):
        learner.validate(class_names="abc")  # would have named the classes 'a', 'b', 'c'


@pytest.mark.parametrize("flag", [0, "no", None])
def test_validate_print_report_of_the_wrong_type_is_a_type_error(flag, capsys):
    learner, _, _ = _classifier_learner()
    with pytest.raises(TypeError, match="`print_report` must be True or False. Received: "
                                        f"print_report={flag!r}"):
        learner.validate(print_report=flag)
    assert capsys.readouterr().out == ""  # refused before predicting or printing
    assert learner.validate(print_report=np.bool_(False)).shape == (3, 3)


@pytest.mark.parametrize("flag", [1, "yes", None])
def test_predicted_labels_from_logits_of_the_wrong_type_is_a_type_error(flag):
    from ktlite.evaluation import predicted_labels

    np.testing.assert_array_equal(predicted_labels("binary", np.array([[-1.0], [0.2]]), True),
                                  [0, 1])
    with pytest.raises(TypeError, match=f"`from_logits` must be True or False. Received: "
                                        f"from_logits={flag!r}"):
        predicted_labels("binary", np.array([[0.2], [0.9]]), flag)


def test_validate_binary_multilabel_and_regression():
    x = _x()
    binary = get_learner(_model(1, "sigmoid", "binary_crossentropy"), (x, (x[:, 0] > 0) * 1),
                         (x, (x[:, 0] > 0) * 1), verbose=0)
    assert binary.validate(print_report=False).shape == (2, 2)

    labels = (x[:, :3] > 0).astype("float32")
    multi = get_learner(_model(3, "sigmoid", "binary_crossentropy"), (x, labels), (x, labels),
                        verbose=0)
    assert multi.validate(print_report=False).shape == (3, 2, 2)

    target = x[:, 0] * 2.0
    reg = get_learner(_model(1, None, "mse", ("mae",)), (x, target), (x, target), verbose=0)
    result = reg.validate(print_report=False)
    pred = reg.predict(x).ravel()
    assert result["mae"] == pytest.approx(np.abs(pred - target).mean(), rel=1e-5)
    assert result["mse"] == pytest.approx(((pred - target) ** 2).mean(), rel=1e-5)
    index, _, true, predicted = reg.top_losses(1)[0]  # one target: two plain numbers
    assert true == pytest.approx(target[index]) and predicted == pytest.approx(pred[index])


def test_validate_and_top_losses_judge_per_position_outputs_token_by_token():
    # A user's sequence model: one score vector per position, label 0 is padding.
    ids = np.random.default_rng(0).integers(1, 6, size=(N, 5))
    ids[:, 3:] = 0
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(6, 8),
                              keras.layers.Dense(6)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    learner = get_learner(model, (ids, ids), (ids, ids), verbose=0)
    pred = np.argmax(learner.predict(ids), axis=-1)
    real = ids != 0
    result = learner.validate(print_report=False)
    assert result["token_accuracy"] == pytest.approx(((pred == ids) & real).sum() / real.sum())
    index, _, true, predicted = learner.top_losses(1)[0]
    assert true == ids[index, :3].tolist() and predicted == pred[index, :3].tolist()


def test_validate_needs_validation_data():
    x = _x()
    learner = get_learner(_model(), (x, np.zeros(N, int)), verbose=0)
    with pytest.raises(ValueError, match="No validation data"):
        learner.validate()
    assert learner.validate((x, np.zeros(N, int)), print_report=False).shape == (3, 3)


def test_validate_on_batched_tf_dataset_matches_arrays():
    learner, x, y = _classifier_learner()
    ds = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(5)
    np.testing.assert_array_equal(learner.validate(ds, print_report=False),
                                  learner.validate(print_report=False))


def test_a_dataset_of_weighted_samples_is_judged_with_its_weights():
    # The weights were dropped: samples of weight 0 counted in the report and led the top
    # losses, though the loss (and `val_loss`) leave them out.
    learner, x, y = _classifier_learner()
    weights = np.where(np.arange(32) < 10, 0.0, 1.0).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x[:32], y[:32], weights)).batch(7)
    matrix = learner.validate(ds, print_report=False)
    np.testing.assert_array_equal(matrix, learner.validate((x[10:32], y[10:32]),
                                                           print_report=False))
    top = learner.top_losses(32, ds)
    assert {i for i, loss, *_ in top if loss > 0} == set(range(10, 32))
    assert [i for i, *_ in top[:5]] == [10 + i for i, *_ in learner.top_losses(
        5, (x[10:32], y[10:32]))]


def test_a_dataset_that_reshuffles_each_pass_is_judged_with_each_label_by_its_output():
    keras.utils.set_random_seed(0)
    learner, x, y = _classifier_learner()
    learner.fit(1e-2, 30)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N).batch(8)
    matrix = learner.validate(ds, print_report=False)
    np.testing.assert_array_equal(matrix, learner.validate((x, y), print_report=False))
    assert np.trace(matrix) / N > 0.8  # labels paired with other rows' outputs: about 1/3
    # Positions follow the shuffled order; each loss is its own sample's.
    np.testing.assert_allclose([r[1] for r in learner.top_losses(5, ds)],
                               [r[1] for r in learner.top_losses(5, (x, y))], rtol=1e-5)


def test_validate_and_top_losses_refuse_a_multi_output_model_naming_its_outputs():
    inputs = keras.Input((D,))
    outputs = {"cls": keras.layers.Dense(3, activation="softmax")(inputs),
               "reg": keras.layers.Dense(1)(inputs)}
    x = _x()
    labels = {"cls": np.zeros(N, int), "reg": np.zeros(N, "float32")}
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy",
                                          "reg": "mse"})
    learner = get_learner(model, (x, labels), (x, labels), verbose=0)
    with pytest.raises(ValueError, match=r"single-output .*Received: outputs \['cls', 'reg'\]"):
        learner.validate()
    # One loss shared by both outputs: the outputs are not read as one array.
    shared = keras.Model(inputs, [outputs["reg"], keras.layers.Dense(1)(inputs)])
    shared.compile(optimizer="adam", loss="mse")
    learner = get_learner(shared, (x, [labels["reg"]] * 2), (x, [labels["reg"]] * 2), verbose=0)
    with pytest.raises(ValueError, match=r"single-output .*Received: outputs 2"):
        learner.top_losses(2)


# --------------------------------------------------------------------- top losses
@pytest.mark.parametrize("loss, activation", [("poisson", "exponential"),
                                              ("hinge", None),
                                              ("binary_crossentropy", "sigmoid"),
                                              ("binary_focal_crossentropy", "sigmoid")])
def test_top_losses_pair_labels_of_one_axis_with_outputs_of_width_one(loss, activation):
    # Labels `(n,)` and outputs `(n, 1)`: each sample's loss is Keras's on that sample alone.
    x = _x()
    y = (x[:, 0] > 0).astype("float32")
    learner = get_learner(_model(1, activation, loss, ()), (x, y), (x, y), verbose=0)
    outputs = learner.predict(x)
    fn = keras.losses.get(loss)
    expected = np.array([float(fn(y[i: i + 1, None], outputs[i: i + 1])[0]) for i in range(N)])
    rows = learner.top_losses(5)
    assert [r[0] for r in rows] == list(np.argsort(-expected, kind="stable")[:5])
    np.testing.assert_allclose([r[1] for r in rows], np.sort(expected)[::-1][:5], rtol=1e-4)


@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy"])
def test_top_losses_pair_labels_of_width_one_with_outputs_of_one_axis(loss):
    # Labels `(n, 1)` and outputs `(n,)`: Keras gives the outputs the axis, and so do we.
    x = _x()
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, activation="sigmoid"),
                              keras.layers.Reshape(())])
    model.compile(optimizer="adam", loss=loss)
    learner = get_learner(model, (x, y), (x, y), verbose=0)
    outputs = learner.predict(x)
    assert outputs.shape == (N,)
    fn = keras.losses.get(loss)
    expected = np.array([float(fn(y[i: i + 1], outputs[i: i + 1, None])[0]) for i in range(N)])
    rows = learner.top_losses(N)
    np.testing.assert_allclose(sorted(r[1] for r in rows), np.sort(expected), rtol=1e-4)
    assert np.mean([r[1] for r in rows]) == pytest.approx(
        learner.model.evaluate(x, y, verbose=0), rel=1e-3)


def test_top_losses_refuse_a_loss_function_that_averages_the_batch():
    def batch_mean(y_true, y_pred):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, y_pred))

    x = _x()
    y = (x[:, 0] > 0).astype("int32")
    learner = get_learner(_model(loss=batch_mean), (x, y), (x, y), verbose=0)
    with pytest.raises(ValueError, match=r"one value per example; model.loss \(batch_mean\) "
                                         r"returned shape \(\) for \d+ examples"):
        learner.top_losses(3)


def test_top_losses_are_sorted_per_sample_losses():
    learner, x, y = _classifier_learner()
    rows = learner.top_losses(5)
    probs = learner.predict(x[:32])
    expected = -np.log(probs[np.arange(32), y[:32]])
    assert [r[0] for r in rows] == list(np.argsort(-expected, kind="stable")[:5])
    for index, loss, true, pred in rows:
        assert loss == pytest.approx(expected[index], rel=1e-4)
        assert true == y[index] and pred == int(np.argmax(probs[index]))
    with pytest.raises(ValueError, match="`n`"):
        learner.top_losses(0)


def test_view_top_losses_shows_raw_texts_and_class_names(capsys):
    texts = np.array([f"doc {i} " + " ".join(["w"] * (i % 4)) for i in range(N)], dtype=object)
    y = np.arange(N) % 3

    def featurize(batch):
        words = tf.cast(tf.strings.length(batch), tf.float32)
        return tf.stack([words, words / 2, words / 3, tf.ones_like(words)], axis=1)

    data = TaskDataset(texts, y, transform=featurize, task="text")

    class Preproc:
        class_names = ["neg", "neu", "pos"]

    learner = get_learner(_model(), data, data, verbose=0)
    rows = learner.view_top_losses(2, preproc=Preproc())
    out = capsys.readouterr().out
    first = rows[0][0]
    assert f"id: {first} |" in out and texts[first] in out
    assert any(name in out for name in Preproc.class_names)

    class Other:
        class_names = ["neg", "pos"]

    with pytest.raises(ValueError, match=r"`preproc` names 2 classes but the model has 3 "
                                         r"outputs.*Received: class_names=\['neg', 'pos'\]"):
        learner.view_top_losses(2, preproc=Other())


def test_view_top_losses_undoes_token_ids_with_preproc(capsys):
    ids = np.random.default_rng(0).integers(1, 5, size=(N, D))
    y = np.arange(N) % 3

    class Preproc:
        def undo(self, batch):
            return [" ".join(f"t{i}" for i in row) for row in batch]

    learner = get_learner(_model(), (ids, y), (ids, y), verbose=0)
    index = learner.view_top_losses(1, preproc=Preproc())[0][0]
    assert Preproc().undo(ids[index][None])[0] in capsys.readouterr().out


def test_view_top_losses_names_an_image_by_its_shape_not_its_pixels(capsys):
    images = np.random.default_rng(0).integers(0, 255, size=(N, 4, 4, 1)).astype("uint8")
    y = np.arange(N) % 3
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = TaskDataset(images, y, transform=lambda x: keras.ops.cast(x, "float32") / 255)
    get_learner(model, data, data, verbose=0).view_top_losses(2)
    out = capsys.readouterr().out
    assert out.count("<image 4x4x1 uint8>") == 2 and "[[" not in out


def test_top_loss_lines_name_multilabel_rows_and_undo_label_sequences():
    from ktlite.evaluation import top_loss_lines

    class Preproc:
        class_names = ["a", "b", "c"]

        def undo(self, batch):
            return [" ".join(f"t{i}" for i in row) for row in batch]

    lines = top_loss_lines([(0, 1.0, [1, 0, 1], [0, 0, 1]), (1, 0.5, [5, 6, 2, 2], [5, 7])],
                           preproc=Preproc())
    assert "true: ['a', 'c'] | pred: ['c']" in lines[1]
    assert "true: 't5 t6 t2 t2' | pred: 't5 t7'" in lines[3]


@pytest.mark.parametrize("preproc", ["x", 3, ["neg", "pos"]])
def test_view_top_losses_refuses_a_preproc_it_cannot_use(preproc, capsys):
    learner, _, _ = _classifier_learner()
    with pytest.raises(TypeError, match=r"`preproc` must be a preprocessor with `class_names`, "
                                        r"`undo\(ids\)` or `example_text\(example\)`.* or None\. "
                                        f"Received: preproc of type {type(preproc).__name__}$"):
        learner.view_top_losses(2, preproc=preproc)
    assert capsys.readouterr().out == ""  # not printed as if no preproc was given


class _SavedNames:
    """A loader's preprocessor, as a `TaskDataset` keeps it: class names and `save`."""

    def __init__(self, class_names):
        self.class_names = class_names

    def save(self, folder):
        with open(os.path.join(folder, "names.txt"), "w") as f:
            f.write(" ".join(self.class_names))


def test_view_top_losses_names_classes_with_the_datasets_own_preproc(capsys):
    x = _x()
    y = np.argmax(x[:, :3], axis=1)
    data = TaskDataset(x, y, preproc=_SavedNames(["neg", "neu", "pos"]))
    learner = get_learner(_model(), data, data, batch_size=16, verbose=0)
    rows = learner.view_top_losses(3)
    out = capsys.readouterr().out
    names = data.preproc.class_names
    for index, _, true, pred in rows:
        assert f"id: {index} | " in out and f"| true: {names[true]} | pred: {names[pred]}" in out

    other = _SavedNames(["a", "b", "c"])  # one passed in wins over the data's
    rows = learner.view_top_losses(2, preproc=other)
    out = capsys.readouterr().out
    assert f"| true: {other.class_names[rows[0][2]]} | pred: " in out and "neu" not in out

    wrong = TaskDataset(x, y, preproc=_SavedNames(["neg", "pos"]))
    learner = get_learner(_model(), wrong, wrong, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"The data's preprocessor \(`val_data.preproc`\) names 2 "
                                         r"classes but the model has 3 outputs"):
        learner.view_top_losses(2)


def _multilabel_learner():
    ids = np.random.default_rng(0).integers(1, 5, size=(N, D))
    labels = (ids[:, :3] > 2).astype("float32")
    labels[::4] = 0  # some rows have no labels at all
    model = _model(3, "sigmoid", "binary_crossentropy")
    return get_learner(model, (ids, labels), (ids, labels), verbose=0)


@pytest.mark.parametrize("with_names_none", [False, True])
def test_view_top_losses_lists_multilabel_positions_without_class_names_never_undone(
        with_names_none, capsys):
    class Preproc:
        def undo(self, batch):
            return [" ".join(f"t{i}" for i in row) for row in batch]

    if with_names_none:  # a regression-style preprocessor: the attribute is there, None
        Preproc.class_names = None
    rows = _multilabel_learner().view_top_losses(N, preproc=Preproc())
    out = capsys.readouterr().out

    def on(row):
        return [i for i, v in enumerate(row) if v]

    for index, loss, true, pred in rows:
        assert f"id: {index} | loss: {loss:.4f} | true: {on(true)} | pred: {on(pred)}\n" in out
    assert any(not on(true) for _, _, true, _ in rows)  # an empty row reads as []


def test_view_top_losses_names_multilabel_rows_with_class_names(capsys):
    class Preproc:
        class_names = ["a", "b", "c"]

        def undo(self, batch):
            return [" ".join(f"t{i}" for i in row) for row in batch]

    rows = _multilabel_learner().view_top_losses(4, preproc=Preproc())
    out = capsys.readouterr().out
    for _, _, true, pred in rows:
        named = ([n for n, v in zip("abc", true) if v], [n for n, v in zip("abc", pred) if v])
        assert f"| true: {named[0]} | pred: {named[1]}\n" in out


# --------------------------------------------------------------------- predict
def test_predict_accepts_arrays_task_datasets_and_tf_datasets():
    learner, x, y = _classifier_learner()
    expected = learner.model.predict(x, verbose=0)
    np.testing.assert_allclose(learner.predict(x), expected, rtol=1e-5)
    np.testing.assert_allclose(learner.predict(TaskDataset(x, y)), expected, rtol=1e-5)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    np.testing.assert_allclose(learner.predict(ds), expected, rtol=1e-5)
    assert learner.predict(x, batch_size=5).shape == (N, 3)


# --------------------------------------------------------------------- freeze
def test_freeze_trains_only_the_head_with_the_same_optimizer():
    learner, x, y = _classifier_learner()
    optimizer = learner.model.optimizer
    body = learner.model.get_layer("body").kernel.numpy().copy()
    head = learner.model.get_layer("head").kernel.numpy().copy()
    learner.freeze()
    assert [layer.trainable for layer in learner.model.layers] == [False, True]
    learner.fit_onecycle(1e-2, 1)
    np.testing.assert_array_equal(learner.model.get_layer("body").kernel.numpy(), body)
    assert not np.array_equal(learner.model.get_layer("head").kernel.numpy(), head)
    learner.unfreeze()
    assert all(layer.trainable for layer in learner.model.layers)
    learner.fit_onecycle(1e-2, 1)
    assert not np.array_equal(learner.model.get_layer("body").kernel.numpy(), body)
    assert learner.model.optimizer is optimizer
    learner.freeze(0)
    assert all(layer.trainable for layer in learner.model.layers)
    with pytest.raises(ValueError, match="`n` must be an int in \\[0, 2\\]. Received: n=5"):
        learner.freeze(5)
    with pytest.raises(ValueError, match="Received: n=-1"):
        learner.freeze(-1)
    learner.freeze(np.int64(1))
    assert [layer.trainable for layer in learner.model.layers] == [False, True]


@pytest.mark.parametrize("n", ["1", True, 1.0])
def test_freeze_with_an_n_of_the_wrong_type_is_a_type_error(n):
    learner, _, _ = _classifier_learner()
    with pytest.raises(TypeError, match="`n` must be an int in \\[0, 2\\]. Received: n="):
        learner.freeze(n)


def test_model_frozen_by_the_user_can_be_unfrozen_later():
    x = _x()
    model = _model()
    model.get_layer("body").trainable = False
    model.compile(optimizer=model.optimizer, loss=model.loss)
    learner = get_learner(model, (x, np.zeros(N, int)), batch_size=16, verbose=0)
    body = model.get_layer("body").kernel.numpy().copy()
    learner.fit_onecycle(1e-2, 1)
    np.testing.assert_array_equal(model.get_layer("body").kernel.numpy(), body)
    learner.unfreeze()
    learner.fit_onecycle(1e-2, 1)
    assert not np.array_equal(model.get_layer("body").kernel.numpy(), body)


def test_freeze_and_unfreeze_keep_a_lora_base_kernel_frozen():
    x, y = _x(), np.zeros(N, int)
    model = _model()
    model.get_layer("body").enable_lora(2)  # freezes the body's kernel on its own
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    kernel = next(w for w in model.get_layer("body").weights if w.name == "kernel")
    base = kernel.numpy().copy()
    trainable = [v.path for v in model.trainable_variables]
    learner = get_learner(model, (x, y), batch_size=16, verbose=0)
    learner.freeze()  # the LoRA layer too
    assert [v.path for v in model.trainable_variables] == [
        v.path for v in model.get_layer("head").weights
    ]
    learner.unfreeze()
    assert not kernel.trainable and [v.path for v in model.trainable_variables] == trainable
    learner.freeze(0)
    assert [v.path for v in model.trainable_variables] == trainable
    learner.fit_onecycle(1e-2, 1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    np.testing.assert_array_equal(kernel.numpy(), base)


def test_a_rebuilt_optimizer_keeps_its_decay_exclusions_and_step_count():
    # Built for the head only (body frozen), so get_learner gives a fresh copy that can
    # also train the body, with exclude_from_weight_decay. (Keras's own accumulation is
    # run as ktlite's: test_distribute_accumulation.py.)
    from ktlite import compat

    x, y = _x(), np.zeros(N, int)
    model = _model()
    model.get_layer("body").trainable = False
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with pytest.warns(RuntimeWarning, match="fresh optimizer"):
        get_learner(model, (x, y), batch_size=16, verbose=0)
    copy = model.optimizer
    assert copy is not optimizer and int(compat.step_counter(copy).numpy()) == 4
    assert not copy._use_weight_decay(model.get_layer("head").bias)
    assert copy._use_weight_decay(model.get_layer("head").kernel)


# --------------------------------------------------------------------- weight decay
def test_set_weight_decay_takes_effect_and_keeps_other_settings():
    # Zero inputs give the kernels zero gradients: only weight decay can move them.
    x = np.zeros((N, D), "float32")
    model = _model()
    optimizer = model.optimizer
    learner = get_learner(model, (x, np.zeros(N, int)), batch_size=16, verbose=0)
    assert learner.get_weight_decay() is None
    kernel = model.get_layer("body").kernel.numpy().copy()
    learner.fit(1e-2, 1)
    np.testing.assert_array_equal(model.get_layer("body").kernel.numpy(), kernel)
    learner.set_weight_decay(0.5)
    assert learner.get_weight_decay() == 0.5
    learner.fit(1e-2, 1)
    shrink = model.get_layer("body").kernel.numpy() / kernel
    np.testing.assert_allclose(shrink, (1 - 0.5 * 1e-2) ** 4, rtol=1e-4)
    assert model.optimizer is optimizer and optimizer.beta_1 == 0.9 and optimizer.beta_2 == 0.999
    learner.set_weight_decay(None)
    assert learner.get_weight_decay() is None


@pytest.mark.parametrize("wd", [-0.1, float("nan"), float("inf")])
def test_set_weight_decay_rejects_values_out_of_range(wd):
    learner, _, _ = _classifier_learner()
    with pytest.raises(ValueError, match="`wd` must be a float >= 0 or None. Received: wd="):
        learner.set_weight_decay(wd)


@pytest.mark.parametrize("wd", ["0.1", True, [0.1]])
def test_set_weight_decay_rejects_values_of_the_wrong_type(wd):
    learner, _, _ = _classifier_learner()
    with pytest.raises(TypeError, match="`wd` must be a float >= 0 or None. Received: wd="):
        learner.set_weight_decay(wd)


# --------------------------------------------------------------------- save / load
def test_save_and_load_model_round_trip(tmp_path):
    learner, x, _ = _classifier_learner()
    learner.fit_onecycle(1e-2, 1)
    before = learner.predict(x)
    iterations = int(learner.model.optimizer.iterations.numpy())
    path = tmp_path / "model.keras"
    assert learner.save_model(path) == str(path)
    assert os.listdir(tmp_path) == ["model.keras"]
    learner.model.set_weights([w * 0 for w in learner.model.get_weights()])
    loaded = learner.load_model(path)
    assert learner.model is loaded
    np.testing.assert_allclose(learner.predict(x), before, rtol=1e-6)
    assert int(loaded.optimizer.iterations.numpy()) == iterations
    learner.fit_onecycle(1e-2, 1)
    with pytest.raises(ValueError, match=".keras"):
        learner.save_model(tmp_path / "model.h5")
    with pytest.raises(ValueError, match=r"`path` must end with '.keras'"):
        learner.load_model(tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match=r"No model file at `path`.*missing\.keras"):
        learner.load_model(tmp_path / "missing.keras")
    # A model of another width is refused and the learner keeps its own.
    other = get_learner(_model(outputs=2), (x, np.zeros(N, int)), verbose=0)
    other.save_model(tmp_path / "two.keras")
    with pytest.raises(ValueError, match=r"two\.keras' has 2 outputs but the learner's has 3"):
        learner.load_model(tmp_path / "two.keras")
    assert learner.model is loaded
    # As every ktlite load: no link followed, no NaN weights, nothing of a file quoted.
    os.symlink(path, tmp_path / "link.keras")
    with pytest.raises(ValueError, match="link.keras is a symbolic link"):
        learner.load_model(tmp_path / "link.keras")
    other.model.set_weights([np.full_like(w, np.nan) for w in other.model.get_weights()])
    other.save_model(tmp_path / "nan.keras")
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        learner.load_model(tmp_path / "nan.keras")
    with pytest.raises(TypeError, match=r"`path` must be a path \(str or os.PathLike\). "
                                        r"Received: path of type bytes"):
        learner.save_model(b"model.keras")
    for objects in ([1], "x"):  # refused as such, not blamed on the file
        with pytest.raises(TypeError, match=r"`custom_objects` must be None or a dict"):
            learner.load_model(path, custom_objects=objects)
    assert learner.model is loaded
    for verbose in ("yes", None, -1):
        with pytest.raises((TypeError, ValueError), match=r"`verbose` must be 0, 1 or 2"):
            learner.predict(x, verbose=verbose)


@pytest.mark.parametrize("scaled", [False, True])
def test_a_model_with_frozen_layers_reloads_with_its_optimizer_state(tmp_path, scaled):
    # ktlite builds the optimizer for frozen layers too; Keras builds a loaded model's for
    # the trainable ones only and skipped the saved state: the moments and the step count
    # came back at zero, under a warning that layers had been unfrozen.
    x = _x()
    model = _model()
    if scaled:
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()),
                      loss="sparse_categorical_crossentropy")
    learner = get_learner(model, (x, np.argmax(x[:, :3], axis=1)), batch_size=16, verbose=0)
    learner.freeze()
    learner.fit_onecycle(1e-2, 1)
    saved = [v.numpy() for v in learner.model.optimizer.variables]
    steps = int(learner.model.optimizer.iterations.numpy())
    assert steps > 0
    learner.save_model(tmp_path / "m.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = learner.load_model(tmp_path / "m.keras")
    assert not [str(w.message) for w in caught if "optimizer" in str(w.message)]
    state = [v.numpy() for v in loaded.optimizer.variables]
    assert len(state) == len(saved)
    for index, value in enumerate(saved):
        np.testing.assert_array_equal(state[index], value, err_msg=str(index))
    assert sum(np.abs(value).sum() > 0 for value in state) > 3  # moments kept
    assert int(loaded.optimizer.iterations.numpy()) == steps
    assert not loaded.get_layer("body").trainable
    learner.unfreeze()
    optimizer = loaded.optimizer
    learner.fit_onecycle(1e-2, 1)  # every layer trains, on the same optimizer
    assert loaded.optimizer is optimizer and int(optimizer.iterations.numpy()) > steps


def test_print_layers_lists_every_layer(capsys):
    learner, _, _ = _classifier_learner()
    learner.freeze()
    learner.print_layers()
    out = capsys.readouterr().out.splitlines()
    assert "trainable" in out[0] and len(out) == 3
    assert "body" in out[1] and "False" in out[1] and "40" in out[1]
    assert "head" in out[2] and "True" in out[2]


def test_freeze_and_load_model_keep_the_learners_xla_and_accumulation(tmp_path):
    # A recompile took the model's compile-time `jit_compile` back; `load_model` dropped
    # ktlite's gradient accumulation (4x the updates a schedule planned) and XLA.
    from ktlite import distribute

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    learner = get_learner(model, (x, y), batch_size=16, jit_compile=True,
                          gradient_accumulation_steps=2, verbose=0)
    learner.freeze()
    learner.unfreeze()
    assert learner.model.jit_compile is True
    learner.save_model(tmp_path / "m.keras")
    learner.load_model(tmp_path / "m.keras")
    assert learner.model.jit_compile is True
    assert distribute.accumulation_steps(learner.model) == 2
    before = int(learner.model.optimizer.iterations.numpy())
    learner.fit_onecycle(1e-2, 1, verbose=0)
    assert int(learner.model.optimizer.iterations.numpy()) - before == 2  # 4 batches / 2


def test_load_model_keeps_the_optimizers_weight_decay_exclusions(tmp_path):
    # A `.keras` file keeps no exclusions: every bias and norm was decayed after a reload
    # (ktlite's default AdamW excludes them), so a resumed fit trained another model.
    from ktlite import compat

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="body"),
                              keras.layers.LayerNormalization(name="norm"),
                              keras.layers.Dense(2, activation="softmax", name="head")])
    optimizer = keras.optimizers.AdamW(1e-2, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[model.get_layer("head").kernel],
                                        var_names=["bias", "gamma", "beta"])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    learner = get_learner(model, (x, y), batch_size=16, verbose=0)

    def decayed(model):
        return sorted("/".join(v.path.split("/")[-2:]) for v in model.trainable_variables
                      if compat.uses_weight_decay(model.optimizer, v))  # layer/variable

    learner.fit_onecycle(1e-2, 1)
    assert decayed(learner.model) == ["body/kernel"]
    learner.save_model(tmp_path / "m.keras")
    learner.load_model(tmp_path / "m.keras")
    assert decayed(learner.model) == ["body/kernel"]


@pytest.mark.parametrize("transformed", [False, True])
def test_load_model_refuses_a_model_that_cannot_read_the_data_and_keeps_its_own(
        tmp_path, transformed):
    # A CNN checkpoint loaded into a tabular learner was taken (same number of outputs
    # checked only): `learner.model` became it and the next fit found no data for its input.
    x = _x()
    y = np.argmax(x[:, :3], axis=1)
    data = TaskDataset(x, y, transform=lambda batch: batch * 2.0) if transformed else (x, y)
    learner = get_learner(_model(), data, batch_size=16, verbose=0)
    kept = learner.model
    images = keras.Input((8, 8, 1), name="images")
    cnn = keras.Model(images, keras.layers.Dense(3, activation="softmax")(
        keras.layers.Flatten()(images)))
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cnn.optimizer.build(cnn.trainable_variables)
    path = tmp_path / "cnn.keras"
    cnn.save(path)
    with pytest.raises(ValueError) as caught:
        learner.load_model(path)
    message = str(caught.value)
    assert message.startswith(
        f"The model in {str(path)!r} cannot read the learner's data: load a model trained for "
        "this learner's data. The learner's model is kept. `train_data"
    )
    assert "samples have shape (4,), but the model expects (8, 8, 1)" in message
    assert learner.model is kept
    learner.fit_onecycle(1e-3, 1)


_LOAD_WITH_IMPORTS = """
import importlib
import sys
import keras
for module in sys.argv[2:]:
    importlib.import_module(module)
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
print(type(model.loss).__name__, [type(layer).__name__ for layer in model.layers])
"""


def test_a_saved_ft_transformer_reloads_compiled_with_the_imports_load_model_lists(tmp_path):
    # `FeatureTokenizer` is registered in `ktlite.tabular.layers`, which the list lacked.
    import pandas as pd

    from ktlite import tabular

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "city": rng.choice(["a", "b"], 40)})
    df["label"] = np.where(df["x"] > 0, "yes", "no")
    trn, _, preproc = tabular.tabular_from_df(df, label_columns="label", val_pct=0.25,
                                              verbose=0)
    model = tabular.tabular_classifier("ft_transformer", trn, preproc=preproc, embed_dim=8,
                                       num_layers=1, verbose=0)
    get_learner(model, trn, batch_size=16, verbose=0).save_model(tmp_path / "ft.keras")
    imports = re.findall(r"`(ktlite(?:\.\w+)+)`", Learner.load_model.__doc__)
    assert "ktlite.layers" in imports
    # A fresh process that finds the ktlite under test, and nothing else of the tests.
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(ktlite.__file__))}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITH_IMPORTS, str(tmp_path / "ft.keras"), *imports],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FeatureTokenizer" in result.stdout.strip().splitlines()[-1]
