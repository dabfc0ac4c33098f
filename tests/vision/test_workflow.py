"""The three lines on drawn shapes: load, model, learner, lr_find, fit_onecycle, validate,
predictor, save, load, predict; the CNN separates the shapes and the ViT learns them."""

import keras
import numpy as np
import pytest

import ktlite
from ktlite import vision

SETTINGS = {
    # name: (model arguments, epochs, lowest accepted validation accuracy)
    "cnn": ({}, 6, 0.9),
    "vit": ({"num_layers": 2}, 10, 0.6),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_three_lines_train_validate_save_load_predict(name, shape_arrays, tmp_path):
    x, y, x_test, y_test = shape_arrays
    arguments, epochs, lowest = SETTINGS[name]
    keras.utils.set_random_seed(1)
    trn, val, preproc = vision.images_from_array(x, y, x_test, y_test, verbose=0)
    model = vision.image_classifier(name, trn, preproc=preproc, verbose=0, **arguments)
    learner = ktlite.get_learner(model, train_data=trn, val_data=val, batch_size=32, verbose=0)
    before = [w.copy() for w in learner.model.get_weights()]
    result = learner.lr_find(num_steps=60, verbose=0)
    np.testing.assert_array_equal(learner.model.get_weights()[0], before[0])  # restored
    learner.fit_onecycle(result.suggestion, epochs, verbose=0)
    confusion = learner.validate(print_report=False)
    accuracy = np.trace(confusion) / confusion.sum()
    assert accuracy > lowest, f"{name}: {accuracy:.3f} at lr {result.suggestion:.2e}"
    # Raw uint8 test images are read as the loader read them (scaled, not augmented).
    raw = learner.validate(val_data=(x_test, y_test), print_report=False)
    np.testing.assert_array_equal(raw, confusion)
    np.testing.assert_allclose(learner.predict(x_test), learner.predict(val), atol=1e-6)
    # The training set predicts as its raw images do: its augmentation is for fitting only.
    np.testing.assert_allclose(learner.predict(trn), learner.predict(trn.x), atol=1e-6)

    predictor = ktlite.get_predictor(learner.model, preproc)
    predictor.save(tmp_path / name)
    loaded = ktlite.load_predictor(tmp_path / name)
    predicted = loaded.predict(x_test)
    assert np.mean(np.asarray(predicted) == y_test) == pytest.approx(accuracy, abs=1e-6)
