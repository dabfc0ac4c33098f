"""Image classification and regression: loaders, the image preprocessor, models, predictor.

Example:
    >>> from ktlite import vision
    >>> trn, val, preproc = vision.images_from_array(x_train, y_train, x_test, y_test)
    >>> model = vision.image_classifier("cnn", trn, preproc=preproc)
"""

from __future__ import annotations

from ktlite._lazy import lazy_attributes
from ktlite.vision.augment import Augmentation
from ktlite.vision.loaders import (
    image_dataset,
    images_from_array,
    images_from_csv,
    images_from_df,
    images_from_folder,
)
from ktlite.vision.preprocessor import ImagePreprocessor

# Model building and prediction import the Keras models and the predictor core: loaded on
# first use, so reading data does not import them (the loaders and `Augmentation` do
# import TensorFlow).
_LAZY = {
    "image_classifier": "ktlite.vision.models",
    "image_regression_model": "ktlite.vision.models",
    "ImagePredictor": "ktlite.vision.predictor",
    "occlusion_map": "ktlite.vision.explain",
    "plot_occlusion": "ktlite.vision.explain",
}

__all__ = [
    "Augmentation",
    "ImagePreprocessor",
    "image_dataset",
    "images_from_array",
    "images_from_csv",
    "images_from_df",
    "images_from_folder",
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
