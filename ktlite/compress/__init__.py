"""Smaller and faster models: quantization, TFLite export, pruning and distillation.

- `quantize_model(model, "int8" | "int4")`: Keras 3 weight quantization of a copy.
- `quantize_predictor(predictor, mode)`: the same for a predictor, as a new predictor.
- `export_tflite(model_or_predictor, path, quantize=None | "dynamic" | "float16" | "int8")`
  and `load_tflite(path)`: TensorFlow Lite files, with the tokenizer inside when it converts.
- `MagnitudePruning` (a Keras callback), `prune(learner, target_sparsity, epochs, ...)` and
  `sparsity(model)`: magnitude pruning of Dense, EinsumDense and convolution kernels,
  with masks held inside the train step.
- `distill(teacher, student, train_data, ...)`: a Learner that trains a student on the
  teacher's softened outputs plus the labels (`DistillationLoss`).

Example:
    >>> from ktlite import compress
    >>> small = compress.quantize_model(model, "int8")
    >>> compress.sparsity(model).overall
"""

from __future__ import annotations

from ktlite.compress.distill import DistillationAccuracy, DistillationLoss, distill
from ktlite.compress.pruning import (
    MagnitudePruning,
    SparsityReport,
    polynomial_sparsity,
    prunable_weights,
    prune,
    sparsity,
)
from ktlite.compress.quantize import quantize_model, quantize_predictor, quantized_layers
from ktlite.compress.tflite_export import TFLiteExport, export_tflite
from ktlite.compress.tflite_runtime import TFLitePredictor, load_tflite

__all__ = [
    "DistillationAccuracy",
    "DistillationLoss",
    "MagnitudePruning",
    "SparsityReport",
    "TFLiteExport",
    "TFLitePredictor",
    "distill",
    "export_tflite",
    "load_tflite",
    "polynomial_sparsity",
    "prunable_weights",
    "prune",
    "quantize_model",
    "quantize_predictor",
    "quantized_layers",
    "sparsity",
]
