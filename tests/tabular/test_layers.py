"""Tests for ktlite.tabular.layers.FeatureTokenizer."""

import keras
import numpy as np
import pytest

from ktlite.tabular.layers import FeatureTokenizer


def inputs(x, missing, ids):
    return {"numeric": np.array(x, "float32"), "missing": np.array(missing, "float32"),
            "categorical": np.array(ids, "int32")}


def test_tokens_per_column_plus_class_token():
    layer = FeatureTokenizer(2, [3, 4], embed_dim=8, class_token=True)
    out = layer(inputs([[0.5, 1.0]], [[0, 0]], [[1, 3]]))
    assert tuple(out.shape) == (1, 5, 8)


def test_unknown_category_is_the_column_bias_only():
    layer = FeatureTokenizer(0, [3], embed_dim=4)
    out = keras.ops.convert_to_numpy(layer({"categorical": np.array([[0], [2]], "int32")}))
    bias = keras.ops.convert_to_numpy(layer.category_bias)
    np.testing.assert_allclose(out[0, 0], bias[0])
    assert not np.allclose(out[1, 0], bias[0])


def test_a_missing_value_starts_as_the_mean_and_its_flag_can_learn():
    layer = FeatureTokenizer(1, [], embed_dim=4)
    out = keras.ops.convert_to_numpy(layer(inputs([[0.0], [0.0]], [[0], [1]], [[], []])))
    np.testing.assert_allclose(out[0], out[1])
    layer.missing_embedding.assign(np.ones((1, 4), "float32"))
    out = keras.ops.convert_to_numpy(layer(inputs([[0.0], [0.0]], [[0], [1]], [[], []])))
    np.testing.assert_allclose(out[1] - out[0], np.ones((1, 4)))


def test_config_round_trip_and_checks():
    layer = FeatureTokenizer(2, [3], embed_dim=8, class_token=True, name="tok")
    clone = FeatureTokenizer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="at least one"):
        FeatureTokenizer(0, [], embed_dim=4)
    with pytest.raises(ValueError, match="embed_dim"):
        FeatureTokenizer(1, [], embed_dim=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_numeric": "2"}, TypeError, "`num_numeric` must be an int >= 0. Received: "
                                          "num_numeric='2'"),
        ({"num_numeric": True}, TypeError, "Received: num_numeric=True"),
        ({"num_numeric": -1}, ValueError, "Received: num_numeric=-1"),
        ({"embed_dim": 8.0}, TypeError, "`embed_dim` must be a positive int. Received: "
                                        "embed_dim=8.0"),
        ({"embed_dim": 0}, ValueError, "Received: embed_dim=0"),
        ({"category_sizes": 3}, TypeError, "`category_sizes` must be a list of ints"),
        ({"category_sizes": [3, "4"]}, TypeError,
         r"`category_sizes\[1\]` must be a positive int. Received: category_sizes\[1\]='4'"),
        ({"category_sizes": [3, 0]}, ValueError, r"Received: category_sizes\[1\]=0"),
    ],
)
def test_wrong_types_are_type_errors_and_out_of_range_values_value_errors(kwargs, error, match):
    arguments = {"num_numeric": 1, "category_sizes": [3], "embed_dim": 4, **kwargs}
    with pytest.raises(error, match=match):
        FeatureTokenizer(**arguments)
    layer = FeatureTokenizer(np.int64(1), [np.int32(3)], embed_dim=np.int64(4))
    assert layer.get_config()["embed_dim"] == 4 and type(layer.category_sizes[0]) is int
