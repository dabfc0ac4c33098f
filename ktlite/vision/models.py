"""Image model factories: a Vision Transformer and a small CNN, compiled for the labels.

Both take float32 images `(batch, height, width, channels)` in `[0, 1]`, as
`ImagePreprocessor` produces them:

- `"vit"`: a hybrid Vision Transformer. A convolutional stem (three 3x3 convolutions of
  stride 2 with batch normalization and ReLU, 32, 64 and 64 filters: 28x28 -> 4x4) turns
  the image into a small feature map, as in the ViT paper's hybrid models (feature maps as
  the patch source) and "Early convolutions help transformers see better" (Xiao et al.,
  2021); `PatchEmbedding` cuts that map into patches of `patch_size` (a class token,
  learned positions), then pre-norm `TransformerEncoder` blocks, a final layer
  normalization, the class token's vector, dense head. Sized for small images: 64-dim
  tokens, 4 blocks of 4 heads, a 128-wide feed-forward, no dropout, at most 64 patches
  (28x28 -> 16 tokens). `stem=()` gives the plain ViT that cuts the image itself.
- `"cnn"`: three stages of two 3x3 convolutions (He initialization) with batch
  normalization and ReLU
  (16, 32, 64 filters), 2x2 max pooling between stages, global average pooling, dropout,
  dense head: the strong simple baseline.

Why the stem: on 2 CPU cores (Keras 3.15, TensorFlow 2.21, XLA) a batch-32 training step of
the plain ViT with 4x4 patches (49 tokens) took 115 ms, and 20 minutes of it reached 0.845
test accuracy on Fashion-MNIST; with the stem (16 tokens) a step takes 44 ms, about the
default CNN's, and 20 minutes reached 0.912-0.920 in three runs (benchmarks/RESULTS.md,
issue 15). XLA (on by default for training sets of 20,000 images or more, `jit_compile`)
saves 15-25% of a step.
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite.arguments import check_choice, check_positive_int, check_rate, check_verbose
from ktlite._console import say
from ktlite.classifier import target_scale
from ktlite.layers import MaskedGlobalPooling, PatchEmbedding, TransformerEncoder
from ktlite.optimizers import default_optimizer

MODEL_NAMES = ("vit", "cnn")
MAX_PATCHES = 64
# Fewer patches than this leave the encoder nearly nothing to attend over.
MIN_PATCHES = 4
VIT_STEM = (32, 64, 64)
# `dropout=None`: for the ViT, 0.1 gained 0.1-0.7 points in 25-epoch fits but cost 24% more
# time a step (benchmarks/RESULTS.md, Images run 8); the CNN fits its training set without it.
DEFAULT_DROPOUT = {"vit": 0.0, "cnn": 0.1}
XLA_MIN_IMAGES = 20_000  # `jit_compile="auto"`: the compile time is repaid within an epoch
_ACTIVATIONS = {"multiclass": "softmax", "multilabel": "sigmoid", "regression": None}


def image_classifier(
    name: str = "vit",
    train_data: Any = None,
    preproc: Any = None,
    *,
    patch_size: int | None = None,
    stem: tuple[int, ...] = VIT_STEM,
    embed_dim: int = 64,
    num_heads: int = 4,
    num_layers: int = 4,
    ff_dim: int | None = None,
    dropout: float | None = None,
    filters: tuple[int, ...] = (16, 32, 64),
    learning_rate: float = 1e-3,
    weight_decay: float = 0.05,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    jit_compile: bool | str = "auto",
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles an image classifier for the preprocessor's classes.

    Multiclass labels get a softmax head, sparse categorical cross-entropy and accuracy;
    multilabel labels a sigmoid head, binary cross-entropy and binary accuracy.

    Args:
        name: `"vit"` (default) or `"cnn"` (see the module docstring).
        train_data: the training `TaskDataset` from `images_from_*`, checked against
            `preproc`.
        preproc: the `ImagePreprocessor` returned with `train_data`.
        patch_size: ViT patch side, on the stem's output; `None` (default) picks the
            smallest side dividing its height and width that gives at most 64 patches,
            and refuses sizes where that leaves fewer than 4 (e.g. a 100x100 image, whose
            stem output is 13x13: pass `image_size=96` to the loader).
        stem: ViT stem, the filters of each stride-2 3x3 convolution before the patches.
            Defaults to (32, 64, 64); `()` cuts the patches from the image itself.
        embed_dim: ViT token size. Defaults to 64.
        num_heads: ViT attention heads. Defaults to 4.
        num_layers: ViT encoder blocks. Defaults to 4.
        ff_dim: ViT feed-forward width; `None` means `2 * embed_dim`.
        dropout: dropout in the ViT blocks and before the head of both models. `None`
            (default) means 0 for the ViT (0.1 gained under a point in long fits for 24%
            more time a step) and 0.1 for the CNN.
        filters: CNN filters per stage (two convolutions each). Defaults to (16, 32, 64).
        learning_rate: initial learning rate of the default optimizer. Defaults to 1e-3.
        weight_decay: decoupled weight decay of the default AdamW (biases, normalization
            and embeddings excluded). Defaults to 0.05.
        optimizer: an optimizer name or instance; `None` (default) is AdamW.
        jit_compile: `"auto"` (default) XLA-compiles the train, test and predict steps
            when `train_data` holds at least 20,000 images and no `tf.distribute` strategy
            is in scope (compiling takes 10-25 s, repaid within an epoch of that size; on
            2 CPU cores it took a batch-32 step of the default CNN from 58 to 44 ms and of
            the earlier plain ViT, 4x4 patches, from 147 to 124 ms); `True` or `False` decides.
        verbose: 1 prints a one-line summary, 0 is silent.

    Returns:
        A compiled `keras.Model` from `(batch, *preproc.image_size, preproc.channels)`
        float32 images to class probabilities `(batch, num_classes)`.

    Raises:
        TypeError: if `preproc` or `train_data` is not from `images_from_*`, `name` is not
            a str, a size or rate is not a number, `stem` or `filters` is not a tuple of ints, or
            `jit_compile` is neither a bool nor a str.
        ValueError: for an unknown `name`, regression labels, data that does not match
            `preproc`, a bad size, a `patch_size` that does not divide the stem's output, or
            a `jit_compile` string other than `"auto"`. Every size, `stem` and `filters`
            are checked whichever model `name` builds.

    Example:
        >>> trn, val, preproc = vision.images_from_array(x_train, y_train)
        >>> model = vision.image_classifier("cnn", trn, preproc=preproc)
        >>> learner = ktlite.get_learner(model, train_data=trn, val_data=val)
    """
    _check_inputs(train_data, preproc)
    if preproc.label_mode not in ("multiclass", "multilabel"):
        raise ValueError(
            "`image_classifier` needs class labels but "
            f"preproc.label_mode={preproc.label_mode!r}; use `image_regression_model`."
        )
    return _build(**locals())


def image_regression_model(
    name: str = "vit",
    train_data: Any = None,
    preproc: Any = None,
    *,
    patch_size: int | None = None,
    stem: tuple[int, ...] = VIT_STEM,
    embed_dim: int = 64,
    num_heads: int = 4,
    num_layers: int = 4,
    ff_dim: int | None = None,
    dropout: float | None = None,
    filters: tuple[int, ...] = (16, 32, 64),
    learning_rate: float = 1e-3,
    weight_decay: float = 0.05,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    jit_compile: bool | str = "auto",
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles an image regression model (linear head, MSE loss, MAE metric).

    Args:
        name: `"vit"` (default) or `"cnn"`.
        train_data: the training `TaskDataset` from `images_from_*`.
        preproc: its `ImagePreprocessor`; `preproc.label_mode` must be `"regression"`.
        patch_size: as in `image_classifier`.
        stem: as in `image_classifier`.
        embed_dim: as in `image_classifier`.
        num_heads: as in `image_classifier`.
        num_layers: as in `image_classifier`.
        ff_dim: as in `image_classifier`.
        dropout: as in `image_classifier`.
        filters: as in `image_classifier`.
        learning_rate: as in `image_classifier`.
        weight_decay: as in `image_classifier`.
        optimizer: as in `image_classifier`.
        jit_compile: as in `image_classifier`.
        verbose: as in `image_classifier`.

    Returns:
        A compiled `keras.Model` from images to `(batch, num_outputs)` floats.

    Raises:
        TypeError: as in `image_classifier`.
        ValueError: as in `image_classifier`, or class labels.

    Example:
        >>> trn, val, preproc = vision.images_from_array(x, ages, label_mode="regression")
        >>> model = vision.image_regression_model("cnn", trn, preproc=preproc)
    """
    _check_inputs(train_data, preproc)
    if preproc.label_mode != "regression":
        raise ValueError(
            "`image_regression_model` needs numeric targets but "
            f"preproc.label_mode={preproc.label_mode!r}; use `image_classifier`."
        )
    return _build(**locals())


# ---------------------------------------------------------------------- building
def _build(
    name: Any, train_data: Any, preproc: Any, patch_size: Any, stem: Any, embed_dim: Any,
    num_heads: Any, num_layers: Any, ff_dim: Any, dropout: Any, filters: Any,
    learning_rate: Any, weight_decay: Any, optimizer: Any, jit_compile: Any, verbose: Any,
) -> keras.Model:
    check_choice(name, "name", MODEL_NAMES)
    check_verbose(verbose)
    dropout = DEFAULT_DROPOUT[name] if dropout is None else check_rate(dropout, "dropout")
    jit = _jit(jit_compile, len(train_data))
    # Every size is checked whichever model is chosen, so a mistake shows before a switch.
    stem = _filters("stem", stem, allow_empty=True)
    filters = _filters("filters", filters)
    patch_size = check_positive_int(patch_size, "patch_size", allow_none=True)
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    num_heads = check_positive_int(num_heads, "num_heads")
    num_layers = check_positive_int(num_layers, "num_layers")
    ff_dim = check_positive_int(ff_dim, "ff_dim", allow_none=True)
    mode = preproc.label_mode
    outputs = preproc.num_outputs
    images = keras.Input(shape=preproc.input_shape, name="images")
    if name == "vit":
        x = images
        for i, width in enumerate(stem):
            x = _conv_block(x, width, 2, f"stem_{i}")
        patch = _patch_size(patch_size, tuple(x.shape[1:3]))
        ff = 2 * embed_dim if ff_dim is None else ff_dim
        x = PatchEmbedding(patch, embed_dim, name="patch_embedding")(x)
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
        for i in range(num_layers):
            x = TransformerEncoder(
                num_heads=num_heads, intermediate_dim=ff,
                dropout=dropout, norm_first=True, name=f"encoder_{i}",
            )(x)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
        x = MaskedGlobalPooling("first", name="class_token")(x)
        detail = f"stem {stem}, {patch}x{patch} patches, {num_layers} blocks of {embed_dim}"
    else:
        x = _cnn_body(images, filters)
        detail = f"filters {filters}"
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    probs = keras.layers.Dense(
        outputs, activation=_ACTIVATIONS[mode], dtype="float32", name="head"
    )(x)
    if mode == "regression":
        probs = target_scale(probs, train_data.y)
    model = keras.Model(images, probs, name=f"image_{name}")
    model.compile(
        optimizer=default_optimizer(
            optimizer, learning_rate, weight_decay,
            ("bias", "gamma", "beta", "class_embedding", "position_embeddings"),
        ), jit_compile=jit, **_loss_and_metrics(mode)
    )
    if verbose:
        say(
            f"{name} image model: {mode}, {outputs} output(s), input {preproc.input_shape}, "
            f"{detail}, {model.count_params():,} parameters" + (", XLA" if jit else "")
        )
    return model


def _cnn_body(images: Any, filters: tuple[int, ...]) -> Any:
    x = images
    for stage, width in enumerate(filters):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{stage}")(x)
        for j in range(2):
            x = _conv_block(x, width, 1, f"{stage}_{j}")
    return keras.layers.GlobalAveragePooling2D(name="mean_pooling")(x)


def _conv_block(x: Any, width: int, strides: int, suffix: str) -> Any:
    """3x3 convolution (no bias), batch normalization, ReLU; layers named `*_{suffix}`."""
    # He initialization keeps each convolution's output variance closer to the batch
    # norm's starting moving variance (1), so the inference statistics are usable after a
    # few dozen steps (with Glorot, a 1-epoch fit on 1,000 images predicted one class at
    # inference).
    x = keras.layers.Conv2D(
        width, 3, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"conv_{suffix}",
    )(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_{suffix}")(x)
    return keras.layers.Activation("relu", name=f"relu_{suffix}")(x)


def _filters(name: str, value: Any, allow_empty: bool = False) -> tuple[int, ...]:
    """Checks a tuple of positive filter counts (empty only when `allow_empty`)."""
    kind = "a tuple" if allow_empty else "a non-empty tuple"
    expected = f"`{name}` must be {kind} of positive ints."
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        raise TypeError(f"{expected} Received: {name}={value!r:.80}")
    if not (value or allow_empty) or any(v < 1 for v in value):
        raise ValueError(f"{expected} Received: {name}={value!r}")
    return tuple(int(v) for v in value)


def _jit(jit_compile: Any, num_images: int) -> bool:
    expected = "`jit_compile` must be 'auto', True or False."
    if isinstance(jit_compile, (bool, np.bool_)):
        return bool(jit_compile)
    if not isinstance(jit_compile, str):
        raise TypeError(f"{expected} Received: jit_compile={jit_compile!r:.80}")
    if jit_compile != "auto":
        raise ValueError(f"{expected} Received: jit_compile={jit_compile!r}")
    return num_images >= XLA_MIN_IMAGES and not tf.distribute.has_strategy()


def _patch_size(patch_size: int | None, map_size: tuple[int, int]) -> int:
    """The patch side (checked `patch_size`, or None to pick) for a feature map (the stem's
    output, or the image without a stem)."""
    height, width = map_size
    if patch_size is None:
        for side in range(1, min(height, width) + 1):
            patches = (height // side) * (width // side)
            if height % side == 0 and width % side == 0 and patches <= MAX_PATCHES:
                if patches >= MIN_PATCHES:
                    return side
                break
        raise ValueError(
            f"No square patch divides the stem's output size {map_size} into "
            f"{MIN_PATCHES} to {MAX_PATCHES} patches; pass `patch_size`, another `stem`, or "
            "an `image_size` with small factors (e.g. 32, 64, 96 or 128) to the loader."
        )
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"`patch_size` must divide the height and width {map_size} of the stem's output "
            f"(the image itself with `stem=()`). Received: patch_size={patch_size!r}"
        )
    return patch_size


def _loss_and_metrics(mode: str) -> dict[str, Any]:
    if mode == "multiclass":
        return {"loss": keras.losses.SparseCategoricalCrossentropy(), "metrics": ["accuracy"]}
    if mode == "multilabel":
        return {
            "loss": keras.losses.BinaryCrossentropy(),
            "metrics": [keras.metrics.BinaryAccuracy(name="binary_accuracy")],
        }
    return {
        "loss": keras.losses.MeanSquaredError(),
        "metrics": [keras.metrics.MeanAbsoluteError(name="mae")],
    }


# ---------------------------------------------------------------------- checks
def _check_inputs(train_data: Any, preproc: Any) -> None:
    if getattr(preproc, "task", None) != "vision" or not hasattr(preproc, "labels"):
        raise TypeError(
            "`preproc` must be the ImagePreprocessor from `images_from_*`. "
            f"Received: preproc={preproc!r}"
        )
    if not preproc.labels.is_fitted:
        raise ValueError("`preproc` has no fitted labels; use the one from `images_from_*`.")
    if getattr(train_data, "task", None) != "vision" or getattr(train_data, "y", None) is None:
        raise TypeError(
            "`train_data` must be the labelled training TaskDataset from `images_from_*`. "
            f"Received: train_data={train_data!r}"
        )
    owner = getattr(train_data.transform, "preproc", None)
    if owner is not None and owner is not preproc:
        raise ValueError(
            "`train_data` was built with a different preprocessor than `preproc`; pass the "
            "preprocessor returned together with `train_data`."
        )
    y = np.asarray(train_data.y)
    if preproc.label_mode == "multiclass" and (
        y.ndim != 1 or y.min() < 0 or y.max() >= preproc.num_outputs
    ):
        raise ValueError(
            f"`train_data` labels do not match `preproc`: expected class ids below "
            f"{preproc.num_outputs}, got shape {y.shape} from {y.min()} to {y.max()}."
        )
