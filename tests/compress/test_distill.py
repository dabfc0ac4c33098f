"""Knowledge distillation: the loss on a hand-computed case, soft targets, the Learner."""

import re

import keras
import numpy as np
import pytest

from ktlite.compress import DistillationAccuracy, DistillationLoss, distill

TEACHER = np.array([[0.7, 0.2, 0.1]], dtype="float32")
STUDENT = np.array([[0.5, 0.3, 0.2]], dtype="float32")


def value(loss, y_true, y_pred):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


def test_loss_matches_hand_computed_case():
    # T = 2 softens by square roots: q_T = sqrt(q) / sum(sqrt(q)), p_T likewise.
    q_t = np.sqrt(TEACHER[0]) / np.sqrt(TEACHER[0]).sum()  # [0.52288, 0.27949, 0.19763]
    p_t = np.sqrt(STUDENT[0]) / np.sqrt(STUDENT[0]).sum()  # [0.41545, 0.32180, 0.26275]
    kl = float(np.sum(q_t * np.log(q_t / p_t)))  # 0.02457
    expected = 0.5 * 4 * kl + 0.5 * -np.log(0.5)  # 0.39571
    assert expected == pytest.approx(0.39571, abs=1e-4)
    packed = np.concatenate([TEACHER, [[0.0]]], axis=1)  # teacher probs, then class id 0
    assert value(DistillationLoss(temperature=2.0, alpha=0.5), packed, STUDENT) == pytest.approx(
        expected, rel=1e-4
    )


def test_alpha_extremes_and_temperature_scaling():
    packed = np.concatenate([TEACHER, [[0.0]]], axis=1)
    assert value(DistillationLoss(alpha=0.0), packed, STUDENT) == pytest.approx(
        -np.log(0.5), rel=1e-5
    )
    kl_t1 = float(np.sum(TEACHER * np.log(TEACHER / STUDENT)))
    assert value(DistillationLoss(temperature=1.0, alpha=1.0), packed, STUDENT) == pytest.approx(
        kl_t1, rel=1e-4
    )
    assert value(
        DistillationLoss(alpha=1.0), np.concatenate([STUDENT, [[1.0]]], axis=1), STUDENT
    ) == pytest.approx(0.0, abs=1e-6)


def test_plain_labels_give_cross_entropy_only():
    loss = DistillationLoss(temperature=3.0, alpha=0.9)
    assert value(loss, np.array([1]), STUDENT) == pytest.approx(-np.log(0.3), rel=1e-5)
    assert value(loss, np.array([[0.0, 0.0, 1.0]]), STUDENT) == pytest.approx(
        -np.log(0.2), rel=1e-5
    )


def test_from_logits_equals_probabilities():
    logits = np.log(STUDENT)
    packed = np.concatenate([TEACHER, [[2.0]]], axis=1)
    assert value(DistillationLoss(from_logits=True), packed, logits) == pytest.approx(
        value(DistillationLoss(), packed, STUDENT), rel=1e-5
    )


def test_loss_and_metric_serialize():
    loss = keras.losses.deserialize(
        keras.losses.serialize(DistillationLoss(temperature=4.0, alpha=0.3))
    )
    assert (loss.temperature, loss.alpha) == (4.0, 0.3)
    metric = DistillationAccuracy()
    metric.update_state(
        np.array([[0.1, 0.8, 0.1, 1.0], [0.9, 0.05, 0.05, 2.0]]),
        np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]),
    )
    assert float(metric.result()) == pytest.approx(0.5)
    assert metric.name == "accuracy"


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"temperature": 0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": float("inf")}, ValueError, "temperature"),
        ({"temperature": "2"}, TypeError, "temperature"),
        ({"alpha": -0.1}, ValueError, "alpha"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"alpha": None}, TypeError, "alpha"),
        ({"alpha": True}, TypeError, "alpha"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": 1e4}, ValueError, "temperature"),  # float32 rounding times T**2
    ],
)
def test_bad_loss_arguments_rejected(kwargs, error, name):
    with pytest.raises(error, match=f"`{name}`"):
        DistillationLoss(**kwargs)


@pytest.mark.parametrize("reduction, error", [(["x"], TypeError), (1, TypeError),
                                              ("bogus", ValueError), ("", ValueError)])
def test_a_reduction_of_the_wrong_type_is_a_type_error_and_an_unknown_one_a_value_error(
    reduction, error
):
    with pytest.raises(error, match=r"`reduction` must be one of \['sum_over_batch_size', "
                                    r"'sum', 'mean', 'mean_with_sample_weight', 'none'\] or "
                                    rf"None. Received: reduction={re.escape(repr(reduction))}"):
        DistillationLoss(reduction=reduction)
    for accepted in ("sum", None):
        assert DistillationLoss(reduction=accepted).reduction == accepted


@pytest.mark.parametrize("from_logits", [1, 0, "yes", None])
def test_a_from_logits_of_the_wrong_type_is_a_type_error(from_logits):
    with pytest.raises(TypeError, match="`from_logits` must be True or False. Received: "
                                        f"from_logits={from_logits!r}"):
        DistillationLoss(from_logits=from_logits)
    assert DistillationLoss(from_logits=np.bool_(True)).get_config()["from_logits"] is True


def dense_classifier():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"batch_size": "32"}, TypeError, "batch_size"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"batch_size": 8.0}, TypeError, "batch_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"seed": "0"}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"temperature": True}, TypeError, "temperature"),
        ({"alpha": "0.5"}, TypeError, "alpha"),
        ({"alpha": float("nan")}, ValueError, "alpha"),
        ({"soft_targets": 1}, TypeError, "soft_targets"),
        ({"soft_targets": True}, TypeError, "soft_targets"),
        ({"soft_targets": ["precompute"]}, TypeError, "soft_targets"),
        ({"soft_targets": "cached"}, ValueError, "soft_targets"),
        ({"temperature": 1e6}, ValueError, "temperature"),  # float32 rounding times T**2
        ({"optimizer": 5}, ValueError, "optimizer"),
    ],
)
def test_distill_rejects_wrong_types_and_out_of_range_values(kwargs, error, name):
    x = np.zeros((8, 4), dtype="float32")
    y = np.zeros((8,), dtype="int64")
    with pytest.raises(error, match=f"`{name}` must be .* Received: {name}="):
        distill(dense_classifier(), dense_classifier(), (x, y), **kwargs)


def test_distill_refuses_an_option_get_learner_does_not_take_before_touching_the_student():
    # `epochs=3` used to fail in `get_learner` after the student had been recompiled with
    # the distillation loss and the teacher had run over the data.
    x = np.zeros((8, 4), dtype="float32")
    y = np.zeros((8,), dtype="int64")
    student = dense_classifier()
    student.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=2)
    loss = student.loss
    with pytest.raises(TypeError, match=r"does not take \['epochs', 'lr'\]\. Accepted: .*"
                       r"'eval_batch_size'"):
        distill(dense_classifier(), student, (x, y), epochs=3, lr=1e-3)
    assert student.loss == loss == "sparse_categorical_crossentropy"
    # A value get_learner refuses leaves the student compiled as the user left it too.
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        distill(dense_classifier(), student, (x, y), gradient_accumulation_steps=0)
    assert student.loss == "sparse_categorical_crossentropy"
    learner = distill(dense_classifier(), student, (x, y), eval_batch_size=4, verbose=0)
    assert learner.eval_batch_size == 4 and student.steps_per_execution == 2  # kept


def teacher_and_student(token_data, tiny_transformer):
    x, y = token_data
    teacher = tiny_transformer(embed_dim=32)
    teacher.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=1, batch_size=64, verbose=0)
    return teacher, tiny_transformer(embed_dim=8)


def test_distill_precomputes_soft_targets_and_trains_student(token_data, make_transformer):
    x, y = token_data
    teacher, student = teacher_and_student(token_data, make_transformer)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    learner = distill(
        teacher, student, (x, y), val_data=(x[:64], y[:64]), temperature=2.0, alpha=0.7, verbose=0
    )
    assert learner.model is student
    packed = learner.train_data.y
    assert packed.shape == (256, 4)
    np.testing.assert_allclose(packed[:, :3], teacher.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(packed[:, 3], y)
    history = learner.fit_onecycle(1e-3, 1, verbose=0)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    assert isinstance(student.loss, DistillationLoss) and student.loss.alpha == 0.7
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_distill_on_the_fly_with_text_task_dataset(text_setup):
    import ktlite
    from ktlite import text

    trn, val, preproc, teacher = text_setup
    student = text.text_classifier(
        "transformer", trn, preproc=preproc, embed_dim=8, num_heads=1, num_layers=1, verbose=0
    )
    learner = distill(
        ktlite.get_predictor(teacher, preproc),
        student,
        trn,
        val,
        alpha=1.0,  # soft targets only: the student can only learn from the teacher
        soft_targets="on_the_fly",
        verbose=0,
    )
    ((inputs, targets),) = learner.train_data.take(1)
    assert targets.shape[-1] == len(preproc.class_names) + 1
    teacher_probs = np.clip(ktlite.get_learner(teacher, trn, verbose=0).predict(val), 1e-7, 1.0)

    def divergence_from_teacher():  # mean KL(teacher || student) on the validation texts
        student_probs = np.clip(learner.predict(val), 1e-7, 1.0)
        return float(np.mean(np.sum(teacher_probs * np.log(teacher_probs / student_probs), -1)))

    before = divergence_from_teacher()
    learner.fit_onecycle(5e-3, 2, verbose=0)
    assert divergence_from_teacher() < 0.5 * before


def test_distill_rejects_mismatched_models_and_bad_arguments(token_data, make_transformer):
    tiny_transformer = make_transformer
    x, y = token_data
    teacher = tiny_transformer()
    with pytest.raises(ValueError, match="same output shape"):
        distill(teacher, tiny_transformer(num_outputs=4), (x, y))
    with pytest.raises(ValueError, match="`temperature`"):
        distill(teacher, tiny_transformer(), (x, y), temperature=0.0)
    with pytest.raises(ValueError, match="`alpha`"):
        distill(teacher, tiny_transformer(), (x, y), alpha=2.0)
    with pytest.raises(ValueError, match="`soft_targets`"):
        distill(teacher, tiny_transformer(), (x, y), soft_targets="cached")
    with pytest.raises(TypeError, match="`student`"):
        distill(teacher, "student", (x, y))
    with pytest.raises(TypeError, match="`teacher`"):
        distill(object(), tiny_transformer(), (x, y))
    with pytest.raises(ValueError, match="different models"):
        distill(teacher, teacher, (x, y))


def _logits_model():
    inputs = keras.Input((12,), dtype="int32")
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Embedding(200, 4)(inputs)))
    return keras.Model(inputs, logits)


def test_a_distilled_learner_reads_raw_examples_as_the_task_does(text_setup):
    # The precomputed soft targets dropped the task's reader, lengths and preprocessor:
    # `predict(["a text"])` reached Keras as raw strings, batches were never bucketed.
    import ktlite
    from ktlite import text

    trn, val, preproc, teacher = text_setup
    student = text.text_classifier(
        "transformer", trn, preproc=preproc, embed_dim=8, num_heads=1, num_layers=1, verbose=0
    )
    learner = distill(teacher, student, trn, val, verbose=0)
    assert learner.train_data.lengths is not None and learner.train_data.preproc is preproc
    texts = list(val.x[:3])
    np.testing.assert_allclose(learner.predict(texts),
                               ktlite.get_predictor(student, preproc).predict_proba(texts),
                               atol=1e-5)
    assert learner.validate(val_data=(texts, val.y[:3]), print_report=False).sum() == 3


def test_distill_rejects_a_teacher_without_softmax(token_data, make_transformer):
    x, y = token_data
    for soft_targets in ("precompute", "on_the_fly"):
        with pytest.raises(ValueError, match="`teacher` must output class probabilities"):
            distill(_logits_model(), make_transformer(), (x, y), soft_targets=soft_targets)


def test_distill_rejects_a_student_that_outputs_logits(token_data, make_transformer):
    # Its loss reads outputs as probabilities: a logits student trained to chance (0.33).
    x, y = token_data
    teacher = make_transformer()

    def never(*args, **kwargs):
        raise AssertionError("the teacher ran over the data before the student was checked")

    teacher.predict = never
    for soft_targets in ("precompute", "on_the_fly"):
        with pytest.raises(ValueError, match=r"`student` must output class probabilities.*"
                           r"multiclass classifiers only .*Softmax\(\)\]\)`. Received: "
                           r"student outputs"):
            distill(teacher, _logits_model(), (x, y), soft_targets=soft_targets)


@pytest.mark.parametrize("bad", [-1, 3, 1.5])
def test_distill_refuses_labels_outside_the_teachers_classes(token_data, make_transformer, bad):
    x, y = token_data
    y = y.astype("float32")
    y[5] = bad
    teacher = make_transformer()
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\).*index 5"):
        distill(teacher, make_transformer(), (x, y))
    # Labels that are not numbers: refused by `get_learner`'s own check, as it refuses them.
    with pytest.raises(TypeError, match=r"`train_data y` must hold numbers.*Received: .*dtype"):
        distill(teacher, make_transformer(), (x, y.astype(str)))


def _never(*args, **kwargs):
    raise AssertionError("the teacher ran before the data was checked")


def test_raw_texts_for_a_model_taking_token_ids_are_refused_as_get_learner_refuses_them(
        token_data, make_transformer):
    # They reached the teacher and failed inside TensorFlow: "Cast string to int32 is not
    # supported".
    _, y = token_data
    texts = [f"text number {i}" for i in range(len(y))]
    teacher, student = make_transformer(), make_transformer(embed_dim=8)
    teacher.predict = _never
    student.compile("sgd", "sparse_categorical_crossentropy")
    for soft_targets in ("precompute", "on_the_fly"):
        with pytest.raises(ValueError, match=r"`train_data x` holds raw text, but the model "
                                             r"takes int32 inputs"):
            distill(teacher, student, (texts, y), soft_targets=soft_targets)
        assert student.loss == "sparse_categorical_crossentropy"


def test_val_data_is_checked_before_the_teacher_runs_over_the_training_set(
        token_data, make_transformer):
    # `val_data="oops"` was refused by `get_learner` only after the teacher's whole pass.
    x, y = token_data
    teacher, student = make_transformer(), make_transformer(embed_dim=8)
    teacher.predict = _never
    student.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match=r"`val_data` must be an \(x, y\) tuple.*Received: "
                                        r"val_data of type str"):
        distill(teacher, student, (x, y), val_data="oops")
    assert student.loss == "sparse_categorical_crossentropy"


def test_raw_validation_examples_are_read_like_the_training_data_on_the_fly(text_setup):
    # On the fly, the learner got only the teacher's pipeline, which cannot read raw texts.
    from ktlite import text

    trn, val, preproc, teacher = text_setup
    student = text.text_classifier("fasttext", trn, preproc=preproc, embed_dim=8, verbose=0)
    raw = (list(val.x[:8]), [preproc.class_names[i] for i in val.y[:8]])
    learner = distill(teacher, student, trn, raw, soft_targets="on_the_fly", verbose=0)
    np.testing.assert_array_equal(learner.val_data.y, val.y[:8])


def test_distill_on_the_fly_stops_at_a_label_outside_the_classes(token_data, make_transformer):
    import tensorflow as tf

    x, y = token_data
    y = y.copy()
    y[100] = -1  # a later batch: it would train silently as "no class" without the check
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    learner = distill(make_transformer(), make_transformer(), dataset, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"class ids in \[0, 3\)"):
        learner.fit(1e-3, 1, verbose=0)
