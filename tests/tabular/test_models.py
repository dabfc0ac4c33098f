"""Tests for ktlite.tabular.models: the FT-Transformer and the MLP, classifier and regressor."""

import keras
import numpy as np
import pytest

from ktlite.tabular import (
    tabular_classifier,
    tabular_from_array,
    tabular_from_df,
    tabular_regressor,
)


@pytest.fixture(scope="module")
def data(table):
    return tabular_from_df(table(100), "label", verbose=0)


@pytest.mark.parametrize("name", ["ft_transformer", "mlp"])
def test_classifier_outputs_class_probabilities(data, name):
    trn, _, preproc = data
    model = tabular_classifier(name, trn, preproc=preproc, verbose=0)
    inputs = {k: v.numpy() for k, v in preproc.transform(trn.x).items()}
    probs = keras.ops.convert_to_numpy(model(inputs))
    assert probs.shape == (len(trn), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.loss.name == "sparse_categorical_crossentropy"


def test_regressor_starts_at_the_scale_of_the_targets():
    x = np.random.default_rng(0).normal(size=(80, 3))
    y = 1000.0 + 50.0 * x[:, 0]
    trn, _, preproc = tabular_from_array(x, y, verbose=0)
    model = tabular_regressor("mlp", trn, preproc=preproc, verbose=0)
    inputs = {k: v.numpy() for k, v in preproc.transform(trn.x).items()}
    pred = keras.ops.convert_to_numpy(model(inputs))[:, 0]
    assert abs(pred.mean() - 1000.0) < 100.0


def test_wrong_pairings_and_names_are_refused(data, table):
    trn, _, preproc = data
    with pytest.raises(ValueError, match="tabular_classifier"):
        tabular_regressor("mlp", trn, preproc=preproc, verbose=0)
    with pytest.raises(ValueError, match="name"):
        tabular_classifier("xgboost", trn, preproc=preproc, verbose=0)
    with pytest.raises(TypeError, match="preproc"):
        tabular_classifier("mlp", trn, preproc=None, verbose=0)
    other = tabular_from_df(table(50, seed=1), "label", verbose=0)[2]
    with pytest.raises(ValueError, match="another preprocessor"):
        tabular_classifier("mlp", trn, preproc=other, verbose=0)
    with pytest.raises(ValueError, match="multiple of `num_heads`"):
        tabular_classifier("ft_transformer", trn, preproc=preproc, embed_dim=30, verbose=0)


@pytest.mark.parametrize("name, kwargs, error, message", [
    ("mlp", {"num_heads": 0}, ValueError, "Received: num_heads=0"),
    ("mlp", {"num_heads": "4"}, TypeError, "Received: num_heads='4'"),
    ("ft_transformer", {"hidden_units": -1}, ValueError, "Received: hidden_units=-1"),
    ("ft_transformer", {"hidden_units": 1.5}, TypeError, "Received: hidden_units=1.5"),
])
def test_arguments_the_chosen_model_does_not_use_are_checked_too(
    data, name, kwargs, error, message
):
    trn, _, preproc = data
    with pytest.raises(error, match=message):
        tabular_classifier(name, trn, preproc=preproc, verbose=0, **kwargs)


@pytest.mark.parametrize("name", [None, 1, ["mlp"]])
def test_a_name_of_the_wrong_type_is_a_type_error(data, name):
    trn, _, preproc = data
    with pytest.raises(TypeError, match=r"`name` must be one of \['ft_transformer', 'mlp'\]. "
                                        "Received: name="):
        tabular_classifier(name, trn, preproc=preproc, verbose=0)
