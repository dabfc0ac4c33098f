"""Helpers shared by the layer tests: a `.keras` round trip and a mixed-precision policy."""

import keras
import pytest


@pytest.fixture
def roundtrip(tmp_path):
    """Saves a model to `.keras` and loads it back with `safe_mode=True`."""

    def _roundtrip(model: keras.Model) -> keras.Model:
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        return keras.saving.load_model(path, safe_mode=True)

    return _roundtrip


@pytest.fixture
def mixed_bfloat16():
    """Runs a test under the global `"mixed_bfloat16"` policy, then restores float32."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
