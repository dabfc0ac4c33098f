"""Reports and top-loss lines of `ktlite.evaluation`, on outputs given directly."""

import keras
import numpy as np
import pytest
from sklearn import metrics

from ktlite.evaluation import report, top_loss_lines, top_losses


def _multilabel_model(labels=3):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(labels, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def test_multilabel_samples_avg_scores_a_right_no_labels_as_1_and_keeps_the_other_rows():
    truth = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0]])
    outputs = np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3], [0.2, 0.1, 0.4], [0.0, 0.3, 0.1]])
    text, matrix = report(_multilabel_model(), truth.astype("float32"), outputs)

    sklearn_text = metrics.classification_report(
        truth, (outputs > 0.5).astype(int), labels=[0, 1, 2], zero_division=0
    )
    old, new = sklearn_text.splitlines(), text.splitlines()
    row = next(i for i, line in enumerate(old) if line.strip().startswith("samples avg"))
    assert old[row].split() == ["samples", "avg", "0.50", "0.38", "0.42", "3"]
    # Samples 3 and 4 (no labels, none predicted) now score 1: means of (1, 1, 1, 1),
    # (1, .5, 1, 1) and (1, 2/3, 1, 1).
    assert new[row].split() == ["samples", "avg", "1.00", "0.88", "0.92", "3"]
    assert len(new[row]) == len(old[row]) and new[row].index("avg") == old[row].index("avg")
    assert new[:row] + new[row + 1:] == old[:row] + old[row + 1:]  # per class, micro, macro...
    assert matrix.shape == (3, 2, 2)


def test_multilabel_samples_avg_keeps_zero_division_0_where_only_one_side_is_empty():
    truth = np.array([[1, 0], [0, 0]])  # missed labels; labels predicted for a bare sample
    outputs = np.array([[0.1, 0.2], [0.9, 0.1]])
    text, _ = report(_multilabel_model(2), truth.astype("float32"), outputs, ["a", "b"])
    row = next(line for line in text.splitlines() if line.strip().startswith("samples avg"))
    assert row.split() == ["samples", "avg", "0.00", "0.00", "0.00", "1"]


class _Undo:
    def undo(self, batch):
        return [" ".join(f"t{i}" for i in row) for row in batch]


@pytest.mark.parametrize("names", [None, ["a", "b"]], ids=["names_none", "too_few_names"])
def test_top_loss_lines_list_multilabel_positions_when_names_do_not_fit(names):
    preproc = _Undo()
    preproc.class_names = names
    lines = top_loss_lines([(0, 1.0, [0, 1, 0, 1], [1, 0, 0, 0]), (1, 0.5, [0, 0, 0, 0],
                                                                   [0, 0, 0, 0])],
                           preproc=preproc, task="multilabel")
    assert lines[1] == "id: 0 | loss: 1.0000 | true: [1, 3] | pred: [0]"
    assert lines[3] == "id: 1 | loss: 0.5000 | true: [] | pred: []"


def test_top_loss_lines_name_multilabel_rows_and_read_other_tasks_lists_as_token_ids():
    preproc = _Undo()
    preproc.class_names = ["a", "b", "c"]
    multilabel = top_loss_lines([(0, 1.0, [1, 0, 1], [0, 0, 0])], preproc=preproc,
                                task="multilabel")
    assert multilabel[1] == "id: 0 | loss: 1.0000 | true: ['a', 'c'] | pred: []"
    # A language model's labels are token ids even when they look like a 0/1 row.
    sequence = top_loss_lines([(0, 1.0, [1, 1, 1], [1, 0, 1])], preproc=preproc,
                              task="multiclass")
    assert sequence[1] == "id: 0 | loss: 1.0000 | true: 't1 t1 t1' | pred: 't1 t0 t1'"


@pytest.mark.parametrize("task, error", [("tags", ValueError), (1, TypeError)])
def test_top_loss_lines_refuse_an_unknown_task(task, error):
    with pytest.raises(error, match=f"`task` must be one of .*Received: task={task!r}"):
        top_loss_lines([], task=task)


def _unknown_loss(y_true, y_pred):  # the user's own loss: its name tells ktlite nothing
    return keras.losses.categorical_crossentropy(y_true, y_pred)


@pytest.mark.parametrize("labels", ["one-hot", "float ids", "id column"])
@pytest.mark.parametrize("loss", [_unknown_loss, "kl_divergence"])
def test_a_classifier_with_a_loss_ktlite_does_not_know_is_reported_by_its_labels(loss, labels):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=loss)
    ids = np.array([0, 1, 2, 2, 1, 0])
    truth = {"one-hot": np.eye(3)[ids], "float ids": ids.astype("float32"),
             "id column": ids.reshape(-1, 1)}[labels]
    outputs = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.05
    text, matrix = report(model, truth, outputs)
    np.testing.assert_array_equal(matrix, metrics.confusion_matrix(ids, [0, 1, 2, 1, 1, 0]))
    assert "precision" in text


def test_multi_hot_labels_with_an_unknown_loss_are_reported_as_multilabel():
    model = _multilabel_model()
    model.compile(optimizer="adam", loss=_unknown_loss)
    truth = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype="float32")
    _, matrix = report(model, truth, truth * 0.8 + 0.1)
    assert matrix.shape == (3, 2, 2)


def _softmax_model(loss="sparse_categorical_crossentropy"):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=loss)
    return model


def test_reports_and_top_losses_weigh_each_sample_as_its_weight_says():
    # The data's weights were dropped: a sample of weight 0 counted in the report and led
    # the top losses.
    truth = np.array([0, 1, 2, 2])
    outputs = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    weights = np.array([0.0, 1.0, 2.0, 1.0])
    model = _softmax_model()
    _, matrix = report(model, truth, outputs, sample_weight=weights)
    np.testing.assert_array_equal(matrix, [[0, 0, 0], [0, 1, 0], [0, 0, 3]])
    assert [i for i, *_ in top_losses(model, truth, outputs, 2)] == [0, 1]
    ranked = top_losses(model, truth, outputs, 4, sample_weight=weights)
    assert ranked[-1][0] == 0 and ranked[-1][1] == 0.0
    assert ranked[0][:2] == (2, pytest.approx(-2 * np.log(0.8)))  # its weight is 2
    regression = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    regression.compile(optimizer="adam", loss="mse")
    _, scores = report(regression, np.array([0.0, 1.0]), np.array([[10.0], [2.0]]),
                       sample_weight=np.array([0.0, 1.0]))
    assert scores == {"mae": 1.0, "mse": 1.0}
    with pytest.raises(ValueError, match=r"one weight per sample \(4\)"):
        report(model, truth, outputs, sample_weight=weights[:3])
    with pytest.raises(ValueError, match=r"some sample a weight above 0.*4 weights of 0"):
        report(model, truth, outputs, sample_weight=np.zeros(4))
