"""Tests for ktlite.classifier's target scaling of regression heads."""

import keras
import numpy as np
import pytest

from ktlite.classifier import target_scale


def test_target_scale_puts_each_output_column_on_its_targets_mean_and_spread(tmp_path):
    targets = np.array([[1000.0, 5.0], [1010.0, 5.0], [1020.0, 5.0]])  # column 2 constant
    inputs = keras.Input((2,))
    model = keras.Model(inputs, target_scale(inputs, targets))
    outputs = model(np.array([[0.0, 0.0], [1.0, 2.0]], "float32")).numpy()
    std = targets[:, 0].std()
    np.testing.assert_allclose(outputs, [[1010.0, 5.0], [1010.0 + std, 7.0]], rtol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(np.ones((1, 2), "float32")).numpy(),
                               [[1010.0 + std, 6.0]], rtol=1e-6)


@pytest.mark.parametrize("targets", [[], [1.0, np.nan], [np.inf]])
def test_target_scale_refuses_empty_or_non_finite_targets(targets):
    with pytest.raises(ValueError, match=r"`targets` must be a non-empty array of finite"):
        target_scale(keras.Input((1,)), targets)
