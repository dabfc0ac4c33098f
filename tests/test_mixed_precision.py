"""Mixed precision and XLA through ktlite.distribute.prepare_model (single device).

The models train in bfloat16 or float16 with float32 variables and float32 outputs, and
survive a save/load round trip in the `.keras` format.
"""

import keras
import numpy as np
import pytest

from ktlite import distribute
from ktlite.models import Transformer

VOCAB, MAXLEN = 50, 12


def token_data(n=96):
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, size=(n, MAXLEN)).astype("int32")
    x[:, 8:] = 0  # padding
    y = (x[:, 0] > VOCAB // 2).astype("int32")
    return x, y


def tiny_transformer():
    model = Transformer(VOCAB, MAXLEN, embed_dim=16, num_heads=2, num_layers=1, dropout=0.0)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@pytest.mark.parametrize("precision, policy", [("bfloat16", "mixed_bfloat16"),
                                               ("float16", "mixed_float16")])
def test_mixed_precision_model_trains_and_saves(tmp_path, precision, policy):
    x, y = token_data()
    model = tiny_transformer()
    prepared = distribute.prepare_model(model, mixed_precision=precision)
    assert distribute.current_precision(prepared) == policy
    assert prepared.outputs[0].dtype == "float32"
    assert all(w.dtype == "float32" for w in prepared.weights)
    scaled = isinstance(prepared.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "float16")
    for a, b in zip(model.get_weights(), prepared.get_weights()):
        np.testing.assert_array_equal(a, b)

    losses = prepared.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    predictions = prepared.predict(x[:8], verbose=0)
    assert predictions.dtype == np.float32

    path = tmp_path / f"{precision}.keras"
    prepared.save(path)
    loaded = keras.models.load_model(path)
    assert distribute.current_precision(loaded) == policy
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), predictions, rtol=1e-5)


def test_bfloat16_with_xla_trains():
    x, y = token_data(64)
    model = distribute.prepare_model(tiny_transformer(), mixed_precision="bfloat16",
                                     jit_compile=True)
    assert model.jit_compile is True
    losses = model.fit(x, y, batch_size=32, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(losses).all()


def test_float16_keeps_an_existing_loss_scale_optimizer_config():
    model = tiny_transformer()
    fp16 = distribute.prepare_model(model, mixed_precision="float16")
    back = distribute.prepare_model(fp16, mixed_precision="float32")
    assert distribute.current_precision(back) == "float32"
    assert type(back.optimizer) is keras.optimizers.Adam
    assert back.optimizer.get_config() == model.optimizer.get_config()


def test_asking_for_the_current_precision_changes_nothing():
    model = distribute.prepare_model(tiny_transformer(), mixed_precision="bfloat16")
    assert distribute.prepare_model(model, mixed_precision="bfloat16") is model


def test_plain_sequential_model_keeps_its_output_layer_in_float32():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    mixed = distribute.prepare_model(model, mixed_precision="bfloat16")
    assert mixed.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert mixed.layers[-1].dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is untouched


def test_the_layer_with_weights_behind_a_weightless_output_layer_stays_float32():
    # A regression head scaled back to the targets' units: the head ran in bfloat16, so
    # predictions came in steps of 1/128 of their size (468 values for 2,000 rows).
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    head = keras.layers.Dense(1, name="head")(hidden)
    model = keras.Model(inputs, keras.layers.Rescaling(5000.0, name="target_scale")(head))
    model.compile(optimizer="adam", loss="mse")
    mixed = distribute.prepare_model(model, mixed_precision="bfloat16")
    policies = {layer.name: layer.dtype_policy.name for layer in mixed.layers[1:]}
    assert policies == {"hidden": "mixed_bfloat16", "head": "float32", "target_scale": "float32"}
    x = np.random.default_rng(0).normal(size=(2000, 4)).astype("float32")
    assert len(np.unique(mixed.predict(x, verbose=0))) > 1990


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_learner_fit_onecycle_in_mixed_precision_then_save_and_load(tmp_path, precision):
    from ktlite import get_learner

    x, y = token_data(64)
    learner = get_learner(tiny_transformer(), (x, y), batch_size=32, verbose=0,
                          mixed_precision=precision)
    history = learner.fit_onecycle(3e-3, epochs=2)
    assert np.isfinite(history.history["loss"]).all()
    assert len(learner.step_history["lrs"]) == 4
    path = learner.save_model(tmp_path / "model.keras")
    predictions = learner.predict(x[:4])
    learner.load_model(path)
    np.testing.assert_allclose(learner.predict(x[:4]), predictions, rtol=1e-5)


def test_loss_scaling_turned_off_by_the_user_stays_off_through_fine_tune():
    # Keras does not record compile(auto_scale_loss=False): a recompile must not wrap.
    import ktlite

    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(2),
                                  keras.layers.Activation("softmax", dtype="float32")])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    optimizer = keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  auto_scale_loss=False)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    learner = ktlite.get_learner(model, (x, y), batch_size=16, verbose=0)
    learner.fine_tune(1, base_lr=1e-3, freeze_epochs=1, verbose=0)
    assert model.optimizer is optimizer
