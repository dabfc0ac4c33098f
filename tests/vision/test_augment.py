"""Tests for ktlite.vision.Augmentation."""

import numpy as np
import pytest
import tensorflow as tf

from ktlite.vision import Augmentation

RAMP = np.tile(np.arange(8, dtype="float32"), (8, 1))[None, :, :, None]  # x coordinate


def test_without_shift_or_rotation_a_flip_mirrors_left_right_or_keeps_the_image():
    augment = Augmentation(flip="horizontal", translate=0.0, rotate=0.0)
    out = np.asarray(augment(tf.constant(np.repeat(RAMP, 64, axis=0))))
    flipped = np.all(np.isclose(out, RAMP[:, :, ::-1]), axis=(1, 2, 3))
    kept = np.all(np.isclose(out, RAMP), axis=(1, 2, 3))
    assert np.all(flipped | kept)
    assert 10 < flipped.sum() < 54  # each image draws its own flip


def test_shifts_stay_within_the_limit_and_differ_between_images():
    augment = Augmentation(flip=None, translate=0.25, rotate=0.0)
    out = np.asarray(augment(tf.constant(np.repeat(RAMP, 32, axis=0))))
    # On a horizontal ramp a shift moves the middle column's value by the shift.
    shift = out[:, 4, 4, 0] - RAMP[0, 4, 4, 0]
    assert np.abs(shift).max() <= 2.0 + 1e-4
    assert np.unique(np.round(shift, 3)).size > 5


def test_rotation_keeps_the_centre_and_moves_the_corners():
    image = np.zeros((1, 9, 9, 1), "float32")
    image[0, 4, :, 0] = 1.0  # a horizontal bar through the centre
    augment = Augmentation(flip=None, translate=0.0, rotate=45.0)
    out = np.asarray(augment(tf.constant(np.repeat(image, 16, axis=0))))
    np.testing.assert_allclose(out[:, 4, 4, 0], 1.0, atol=1e-5)
    assert np.abs(out - image).max() > 0.5


def test_output_keeps_the_static_shape():
    augment = Augmentation()
    assert augment(tf.zeros((3, 16, 12, 3))).shape == (3, 16, 12, 3)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"flip": "diagonal"}, ValueError, "Received: flip='diagonal'"),
        ({"flip": True}, TypeError,
         r"`flip` must be one of \['horizontal', 'vertical', 'both'\] or None. "
         r"Received: flip=True"),
        ({"flip": 1}, TypeError, "Received: flip=1"),
        ({"flip": ["horizontal"]}, TypeError, r"Received: flip=\['horizontal'\]"),
        ({"translate": 0.7}, ValueError,
         r"`translate` must be a float in \[0, 0.5\]. Received: translate=0.7"),
        ({"translate": float("nan")}, ValueError, "Received: translate=nan"),
        ({"rotate": -5}, ValueError,
         r"`rotate` must be a float in \[0, 180\]. Received: rotate=-5"),
        ({"rotate": True}, TypeError, "Received: rotate=True"),
        ({"translate": "0.1"}, TypeError,
         "`translate` must be a float in .*Received: translate='0.1'"),
        ({"rotate": None}, TypeError, "Received: rotate=None"),
    ],
)
def test_invalid_arguments_raise_with_received_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        Augmentation(**kwargs)
