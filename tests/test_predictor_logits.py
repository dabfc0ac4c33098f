"""Every task's predictor gives probabilities from a model that outputs logits, and from one
sigmoid output over two classes: in `predict_proba`, after save / load, and in the export.

The core behaviour is tested on the toy task in `tests/test_predictor.py`; here the user's
own small models go through the text, table and image predictors (untrained: the tests
check the arithmetic, not what a model learned).
"""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import ktlite
from corpora import planted_corpus
from ktlite.tabular import tabular_from_df
from ktlite.text import TextPreprocessor
from ktlite.vision import images_from_array
from ktlite.vision.predictor import PIXELS_SIGNATURE


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def exported(predictor, path, signature="serving_default", **inputs):
    predictor.export(path)
    served = tf.saved_model.load(str(path)).signatures[signature](**inputs)
    return served["probabilities"].numpy(), served["labels"].numpy().astype(str)


# ---------------------------------------------------------------- text
def test_a_text_model_on_logits_gives_softmax_everywhere(tmp_path):
    texts, _ = planted_corpus(60, 0, filler_words=4)
    labels = [["neg", "mid", "pos"][i % 3] for i in range(len(texts))]
    preproc = TextPreprocessor(maxlen=10, vocab_size=80).fit(texts, labels)
    inputs = keras.Input((10,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(80, 8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    predictor = ktlite.get_predictor(model, preproc)
    expected = softmax(model(preproc.preprocess(texts[:5])).numpy())

    np.testing.assert_allclose(predictor.predict_proba(texts[:5]), expected, atol=1e-6)
    assert predictor.predict(texts[:5]) == [preproc.class_names[i] for i in expected.argmax(1)]
    predictor.save(tmp_path / "saved")
    loaded = ktlite.load_predictor(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_proba(texts[:5]), expected, atol=1e-6)
    probabilities, names = exported(loaded, tmp_path / "sm", texts=tf.constant(texts[:5]))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert names.tolist() == predictor.predict(texts[:5])


# ---------------------------------------------------------------- tables
@pytest.fixture(scope="module")
def two_class_table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=120), "city": rng.choice(["x", "y", "z"], 120)})
    df["y"] = np.where(df["a"] > 0, "hi", "lo")
    return tabular_from_df(df, label_columns="y", verbose=0)[2], df.drop(columns="y").iloc[:6]


def _table_model(preproc, activation):
    numeric = keras.Input((len(preproc.numeric_columns),), name="numeric")
    missing = keras.Input((len(preproc.numeric_columns),), name="missing")
    categorical = keras.Input((len(preproc.categorical_columns),), name="categorical",
                              dtype="int32")
    embedded = keras.layers.Flatten()(
        keras.layers.Embedding(max(preproc.category_sizes) + 1, 4)(categorical))
    hidden = keras.layers.Concatenate()([numeric, missing, embedded])
    return keras.Model({"numeric": numeric, "missing": missing, "categorical": categorical},
                       keras.layers.Dense(1, activation=activation)(hidden))


@pytest.mark.parametrize("activation, loss, to_probability", [
    ("sigmoid", "binary_crossentropy", lambda out: out),
    (None, keras.losses.BinaryCrossentropy(from_logits=True), sigmoid),
])
def test_a_table_model_with_one_output_over_two_classes_gives_both_probabilities(
    two_class_table, tmp_path, activation, loss, to_probability
):
    preproc, rows = two_class_table
    model = _table_model(preproc, activation)
    model.compile("adam", loss)
    predictor = ktlite.get_predictor(model, preproc)
    raw = preproc.raw_batch(preproc.to_columns(rows))
    positive = to_probability(model(preproc.transform(
        {key: tf.constant(value) for key, value in raw.items()})).numpy())
    expected = np.concatenate([1 - positive, positive], axis=1)
    names = [preproc.class_names[int(p > 0.5)] for p in positive[:, 0]]

    assert len(set(names)) == 2  # both classes among the rows, so the names are checked
    np.testing.assert_allclose(predictor.predict_proba(rows), expected, atol=1e-6)
    assert predictor.predict(rows) == names
    answer = predictor.json_response(predictor.predict_outputs(rows), return_proba=True)
    assert answer["predictions"] == names
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-6)
    predictor.save(tmp_path / "saved")
    loaded = ktlite.load_predictor(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict_proba(rows), expected, atol=1e-6)
    probabilities, labels = exported(loaded, tmp_path / "sm", **{
        key: tf.constant(value) for key, value in raw.items()})
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert labels.tolist() == names


def test_outputs_that_are_no_probabilities_are_refused_not_answered(two_class_table):
    # A regressor (one linear output) paired with a two-class preprocessor answered
    # "probabilities" such as [-6.19, 7.19], in `predict_proba`, the app and the labels.
    preproc, rows = two_class_table
    model = _table_model(preproc, None)
    model.layers[-1].bias.assign([5.0])  # outputs near 5: no probability of anything
    model.compile("adam", "mse")
    predictor = ktlite.get_predictor(model, preproc)
    for predict in (predictor.predict_proba, predictor.predict, predictor.predict_outputs):
        with pytest.raises(RuntimeError, match=r"The model's outputs are not probabilities: "
                                               r"they range from -?[\d.]+ to [\d.]+, outside "
                                               r"\[0, 1\].*model_outputs = 'logits'.*2 classes"):
            predict(rows)
    predictor.model_outputs = "logits"  # if they were logits, the sigmoid makes them so
    assert predictor.predict_proba(rows).min() >= 0.0


# ---------------------------------------------------------------- images
def test_an_image_model_on_logits_gives_softmax_in_both_signatures(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8)).astype("uint8")
    y = np.where(x.mean(axis=(1, 2)) > 127, "bright", "dark")
    _, _, preproc = images_from_array(x, y, val_pct=0.25, verbose=0)
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    predictor = ktlite.get_predictor(model, preproc)
    images = x[:5]
    expected = softmax(model(preproc.from_pixels(images[..., None])).numpy())

    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-6)
    encoded = tf.constant([tf.io.encode_png(image[..., None]).numpy() for image in images])
    probabilities, labels = exported(predictor, tmp_path / "sm", images=encoded)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert labels.tolist() == predictor.predict(images)
    pixels = tf.constant(images[..., None].astype("float32") / 255)
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures[PIXELS_SIGNATURE](
        pixels=pixels)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
