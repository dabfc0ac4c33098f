"""Tests for ktlite.text.models: text_classifier, text_regression_model, NBSVM pieces."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from corpora import POS, planted_corpus, task_dataset

from ktlite.data import TaskDataset
from ktlite.text import TextPreprocessor, text_classifier, text_regression_model
from ktlite.text.models import NBSVMScores, nb_log_count_ratios

SMALL = dict(embed_dim=16, num_heads=2, num_layers=1, verbose=0)


def corpus(n=160, seed=0):
    return planted_corpus(n, seed, filler_words=5)


@pytest.fixture(scope="module")
def binary():
    texts, labels = corpus()
    preproc = TextPreprocessor(maxlen=12, vocab_size=100).fit(texts, labels)
    return task_dataset(texts, labels, preproc), preproc


@pytest.fixture(scope="module")
def multilabel():
    texts, _ = corpus(seed=1)
    y = [[w for w in ("good", "film") if w in t.split()] or ["none"] for t in texts]
    preproc = TextPreprocessor(maxlen=12, vocab_size=100, label_mode="multilabel").fit(texts, y)
    return task_dataset(texts, y, preproc), preproc


@pytest.fixture(scope="module")
def regression():
    texts, _ = corpus(seed=2)
    y = [float(sum(w in POS for w in t.split())) for t in texts]
    preproc = TextPreprocessor(maxlen=12, vocab_size=100, label_mode="regression").fit(texts, y)
    return task_dataset(texts, y, preproc), preproc


# ---------------------------------------------------------------- shapes and compile
@pytest.mark.parametrize("name", ["transformer", "fasttext", "nbsvm"])
def test_multiclass_model_is_compiled_with_softmax_and_sparse_ce(binary, name):
    trn, preproc = binary
    model = text_classifier(name, trn, preproc=preproc, **SMALL)
    assert model.input_shape == (None, None)  # any length up to maxlen
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    ids = preproc.preprocess(list(trn.x[:5]))
    probs = model(ids).numpy()
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_compile_config()["metrics"] == ["accuracy"]


@pytest.mark.parametrize("name", ["transformer", "fasttext", "nbsvm"])
def test_multilabel_model_uses_sigmoid_and_binary_ce(multilabel, name):
    trn, preproc = multilabel
    model = text_classifier(name, trn, preproc=preproc, **SMALL)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    probs = model(preproc.preprocess(list(trn.x[:6]))).numpy()
    assert probs.shape == (6, len(preproc.class_names))
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent sigmoids
    assert ((probs > 0) & (probs < 1)).all()
    assert model.get_compile_config()["metrics"][0]["class_name"] == "BinaryAccuracy"


@pytest.mark.parametrize("name", ["transformer", "fasttext"])
def test_regression_model_is_linear_with_mse_and_mae(regression, name):
    trn, preproc = regression
    model = text_regression_model(name, trn, preproc=preproc, **SMALL)
    assert isinstance(model.loss, keras.losses.MeanSquaredError)
    ids = preproc.preprocess(list(trn.x[:8]))
    outputs = model(ids).numpy()
    assert outputs.shape == (8, 1)
    assert model.get_layer("head").activation is keras.activations.linear
    assert model.get_compile_config()["metrics"][0]["config"]["name"] == "mae"


def test_regression_targets_far_from_zero_start_at_their_scale_and_train():
    # Targets near 1,000: the head's outputs are put on their scale (`target_scale`), so
    # a short fit beats predicting the mean (without it: a mean error of hundreds).
    texts, _ = corpus(n=240, seed=4)
    y = [1000.0 + 10.0 * sum(w in POS for w in t.split()) for t in texts]
    preproc = TextPreprocessor(maxlen=12, vocab_size=100, label_mode="regression").fit(texts, y)
    trn = task_dataset(texts, y, preproc)
    keras.utils.set_random_seed(0)
    model = text_regression_model("fasttext", trn, preproc=preproc, embed_dim=16,
                                  learning_rate=0.02, verbose=0)
    ids = preproc.preprocess(texts)
    assert abs(float(model(ids).numpy().mean()) - np.mean(y)) < 10.0
    model.fit(ids, trn.y, epochs=15, batch_size=16, verbose=0)
    error = np.abs(model(ids).numpy()[:, 0] - trn.y).mean()
    assert error < 0.3 * np.abs(trn.y - trn.y.mean()).mean()


def test_default_optimizers(binary):
    trn, preproc = binary
    assert isinstance(text_classifier("transformer", trn, preproc, **SMALL).optimizer,
                      keras.optimizers.AdamW)
    fasttext = text_classifier("fasttext", trn, preproc, **SMALL)
    assert type(fasttext.optimizer) is keras.optimizers.Adam
    sgd = keras.optimizers.SGD(0.1)
    assert text_classifier("fasttext", trn, preproc, optimizer=sgd, **SMALL).optimizer is sgd


def test_verbose_prints_a_summary(binary, capsys):
    trn, preproc = binary
    text_classifier("fasttext", trn, preproc, embed_dim=8, verbose=1)
    assert "fasttext text model: multiclass, 2 output(s)" in capsys.readouterr().out


# ---------------------------------------------------------------- errors
def test_unknown_name_is_refused(binary):
    trn, preproc = binary
    with pytest.raises(ValueError, match=r"`name` must be one of .*Received: name='bert'"):
        text_classifier("bert", trn, preproc=preproc)


@pytest.mark.parametrize("name", [None, 1, ["transformer"]])
def test_a_name_of_the_wrong_type_is_a_type_error(binary, regression, name):
    message = r"`name` must be one of \['transformer', .*\]. Received: name="
    with pytest.raises(TypeError, match=message):
        text_classifier(name, binary[0], preproc=binary[1])
    with pytest.raises(TypeError, match=message):
        text_regression_model(name, regression[0], preproc=regression[1])


def test_nbsvm_is_refused_for_regression(regression):
    trn, preproc = regression
    with pytest.raises(ValueError, match="name='nbsvm'"):
        text_regression_model("nbsvm", trn, preproc=preproc)


def test_label_mode_must_fit_the_factory(binary, regression):
    with pytest.raises(ValueError, match="use `text_regression_model`"):
        text_classifier("fasttext", regression[0], preproc=regression[1])
    with pytest.raises(ValueError, match="use `text_classifier`"):
        text_regression_model("fasttext", binary[0], preproc=binary[1])


def test_missing_preproc_or_train_data_is_refused(binary):
    trn, preproc = binary
    with pytest.raises(TypeError, match="`preproc` is required"):
        text_classifier("fasttext", trn)
    with pytest.raises(TypeError, match="`train_data` is required"):
        text_classifier("fasttext", None, preproc=preproc)
    with pytest.raises(TypeError, match="`preproc` must be a ktlite text preprocessor"):
        text_classifier("fasttext", trn, preproc="preproc")
    with pytest.raises(TypeError, match="`train_data` must be a TaskDataset"):
        text_classifier("fasttext", [1, 2, 3], preproc=preproc)


def test_train_data_from_another_preprocessor_is_refused(binary, multilabel):
    with pytest.raises(ValueError, match="tokenized by a different preprocessor"):
        text_classifier("fasttext", multilabel[0], preproc=binary[1])


def test_labels_that_do_not_match_preproc_are_refused(binary):
    trn, preproc = binary
    texts = list(trn.x)
    with pytest.raises(ValueError, match="class ids range from 0 to 4 but preproc has 2"):
        text_classifier("fasttext", (texts, np.arange(len(texts)) % 5), preproc=preproc)
    with pytest.raises(ValueError, match=r"expected 1-D integer class ids, got shape \(160, 2\)"):
        text_classifier("fasttext", (texts, np.eye(2)[trn.y]), preproc=preproc)
    with pytest.raises(ValueError, match="has no labels"):
        text_classifier("fasttext", TaskDataset(trn.x, None, task="text"), preproc=preproc)


def test_invalid_hyperparameters_are_refused(binary):
    trn, preproc = binary
    with pytest.raises(ValueError, match="embed_dim=0"):
        text_classifier("fasttext", trn, preproc=preproc, embed_dim=0)
    with pytest.raises(ValueError, match="dropout=1.5"):
        text_classifier("fasttext", trn, preproc=preproc, dropout=1.5)
    with pytest.raises(ValueError, match="divisible"):
        text_classifier("transformer", trn, preproc=preproc, embed_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="learning_rate=-1"):
        text_classifier("fasttext", trn, preproc=preproc, learning_rate=-1)


@pytest.mark.parametrize("name, kwargs, error, message", [
    ("fasttext", {"num_heads": 0}, ValueError, "Received: num_heads=0"),
    ("fasttext", {"num_layers": -5}, ValueError, "Received: num_layers=-5"),
    ("fasttext", {"ff_dim": "64"}, TypeError, "Received: ff_dim='64'"),
    ("fasttext", {"pooling": "bogus"}, ValueError, "Received: pooling='bogus'"),
    ("fasttext", {"pooling": None}, TypeError, "Received: pooling=None"),
    ("nbsvm", {"embed_dim": 0}, ValueError, "Received: embed_dim=0"),
    ("nbsvm", {"dropout": "0.1"}, TypeError, "Received: dropout='0.1'"),
])
def test_arguments_the_chosen_model_does_not_use_are_checked_too(
    binary, name, kwargs, error, message
):
    trn, preproc = binary
    with pytest.raises(error, match=message):
        text_classifier(name, trn, preproc=preproc, verbose=0, **kwargs)


@pytest.mark.parametrize(
    "dropout, error",
    [("0.1", TypeError), (True, TypeError), (None, TypeError), (1.0, ValueError),
     (-0.1, ValueError)],
)
def test_fasttext_dropout_of_a_wrong_type_is_a_type_error(binary, dropout, error):
    trn, preproc = binary
    with pytest.raises(error, match=r"`dropout` must be a float in \[0, 1\). "
                                    f"Received: dropout={dropout!r}"):
        text_classifier("fasttext", trn, preproc=preproc, dropout=dropout, **SMALL)
    model = text_classifier("fasttext", trn, preproc=preproc, dropout=np.float32(0.25), **SMALL)
    assert model.get_layer("dropout").rate == 0.25


# ---------------------------------------------------------------- behaviour
def test_fasttext_averages_only_real_tokens(binary):
    trn, preproc = binary
    model = text_classifier("fasttext", trn, preproc=preproc, **SMALL)
    ids = np.zeros((1, preproc.maxlen), dtype="int32")
    ids[0, :3] = [2, 7, 9]
    table = model.get_layer("token_embedding").embeddings.numpy()
    head = model.get_layer("head")
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    logits = table[[2, 7, 9]].mean(axis=0) @ kernel + bias
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(model(ids).numpy()[0], expected, atol=1e-5)


def test_nb_log_count_ratios_match_a_hand_computed_case():
    # Token 1 in both class-0 texts, token 2 in the class-1 text (twice: counted once).
    ids = np.array([[1, 3, 0], [1, 0, 0], [2, 2, 3]])
    targets = np.array([[1, 0], [1, 0], [0, 1]], dtype="float32")
    ratios, prior = nb_log_count_ratios(ids, targets, vocab_size=4, alpha=1.0)
    # Class 0: p = counts in class-0 texts + 1 over tokens 0..3 = [1, 3, 1, 2] (pad kept
    # at alpha); q = counts in the others + 1 = [1, 1, 2, 2].
    p, q = np.array([1, 3, 1, 2.0]), np.array([1, 1, 2, 2.0])
    expected0 = np.log(p / p.sum()) - np.log(q / q.sum())
    np.testing.assert_allclose(ratios[1:, 0], expected0[1:], rtol=1e-6)
    assert ratios[0].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(prior, np.log([3 / 2, 2 / 3]), rtol=1e-6)


def test_nbsvm_scores_count_each_distinct_token_once_and_skip_padding():
    layer = NBSVMScores(vocab_size=5, num_classes=2)
    layer.build((None, 6))
    ratios = np.arange(10, dtype="float32").reshape(5, 2)
    layer.set_ratios(ratios, bias=np.array([0.5, -0.5]))
    out = layer(np.array([[3, 1, 3, 3, 0, 0]])).numpy()
    np.testing.assert_allclose(out[0], ratios[1] + ratios[3] + [0.5, -0.5])
    with pytest.raises(ValueError, match=r"ratios` must have shape \(5, 2\)"):
        layer.set_ratios(np.zeros((4, 2)))


def test_untrained_nbsvm_is_the_naive_bayes_classifier(binary):
    trn, preproc = binary
    model = text_classifier("nbsvm", trn, preproc=preproc, verbose=0)
    texts, labels = corpus(n=40, seed=7)  # unseen texts, same planted words
    pred = model(preproc.preprocess(texts)).numpy().argmax(axis=1)
    assert (np.array(preproc.class_names)[pred] == np.array(labels)).mean() == 1.0
    assert not model.get_layer("nbsvm_scores").ratios.trainable


@pytest.mark.parametrize("name", ["fasttext", "nbsvm"])
def test_baselines_round_trip_through_keras_safe_mode(binary, name, tmp_path):
    trn, preproc = binary
    model = text_classifier(name, trn, preproc=preproc, **SMALL)
    ids = preproc.preprocess(list(trn.x[:4]))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), atol=1e-6)


def test_fasttext_learns_the_planted_word(binary):
    trn, preproc = binary
    model = text_classifier("fasttext", trn, preproc=preproc, embed_dim=16, learning_rate=0.02,
                            verbose=0)
    ids = preproc.preprocess(list(trn.x))
    model.fit(ids, trn.y, epochs=15, batch_size=32, verbose=0)
    texts, labels = corpus(n=40, seed=9)
    pred = model(preproc.preprocess(texts)).numpy().argmax(axis=1)
    assert (np.array(preproc.class_names)[pred] == np.array(labels)).mean() >= 0.9


@pytest.mark.parametrize("name", ["transformer", "fasttext", "nbsvm"])
def test_a_text_gives_the_same_output_at_every_width_the_batches_use(name):
    texts, labels = corpus()
    texts = texts + [" ".join([texts[0]] * 6)]  # one text long enough for width 48
    labels = labels + [labels[0]]
    preproc = TextPreprocessor(maxlen=48, vocab_size=100).fit(texts, labels)
    model = text_classifier(name, task_dataset(texts, labels, preproc), preproc=preproc,
                            **SMALL)
    probe = tf.constant(texts[:6] + texts[-1:])
    full = np.asarray(model(preproc.tokenize(probe), training=False))
    lengths = preproc.sequence_lengths(texts[:6])
    for width in (16, 32, 48):
        short = np.asarray(model(preproc.tokenize(probe[:6], width=width), training=False))
        assert preproc.tokenize(probe[:6], width=width).shape[1] == width > lengths.max()
        np.testing.assert_allclose(short, full[:6], atol=1e-5)
    longest = preproc.tokenize(probe, width="longest")
    assert longest.shape[1] == 48
    np.testing.assert_allclose(np.asarray(model(longest, training=False)), full, atol=1e-5)


class _StubBackbone:
    """What `backbone_sizes` reads of a backbone: its architecture."""

    def architecture(self):
        return {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 64}


@pytest.mark.parametrize("asked", [
    {},
    {"embed_dim": 128, "num_layers": 2},  # the defaults, passed explicitly
    {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 64},  # the backbone's own
    {"ff_dim": None},
])
def test_backbone_sizes_replace_defaults_passed_or_not(asked):
    from ktlite.text.backbone import backbone_sizes
    from ktlite.text.models import SIZE_DEFAULTS

    given = {**SIZE_DEFAULTS, **asked}
    assert backbone_sizes(_StubBackbone(), SIZE_DEFAULTS, **given) == (
        _StubBackbone().architecture())


@pytest.mark.parametrize("asked, named", [
    ({"embed_dim": 64}, "embed_dim=64"),
    ({"num_layers": 3, "ff_dim": 256}, "num_layers=3, ff_dim=256"),
])
def test_backbone_sizes_refuse_a_size_other_than_default_and_backbone(asked, named):
    from ktlite.text.backbone import backbone_sizes
    from ktlite.text.models import SIZE_DEFAULTS

    with pytest.raises(ValueError, match=f"The backbone's sizes replace .*Received: {named}$"):
        backbone_sizes(_StubBackbone(), SIZE_DEFAULTS, **{**SIZE_DEFAULTS, **asked})
