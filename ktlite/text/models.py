"""Text model factories: a Transformer and two fast baselines, compiled for the labels.

`text_classifier` and `text_regression_model` read the label mode and sizes from the
preprocessor and return a compiled `keras.Model` taking int32 token ids `(batch, length)`
of any length up to ``maxlen`` (so batches padded only to their longest text fit):

- `"transformer"`: `ktlite.models.Transformer` (token + position embedding, encoder
  blocks, masked mean pooling, dense head).
- `"fasttext"`: an embedding bag: token embedding, mean over the real (non-padding)
  tokens, dropout, dense head.
- `"nbsvm"` (classification only): Naive-Bayes-weighted bag of words. For every class
  `c` the log-count ratio `r[t, c]` of each token `t` is computed once from the training
  texts (binarized bag of words, one class against the rest, add-one smoothing) and
  stored as a fixed, non-trainable table. A text's score for `c` is
  `sum over its distinct tokens t of w[t, c] * r[t, c] + b[c]`, with `w` and `b`
  learned. `w` starts at 1 and `b` at the log prior odds, so the untrained model is
  the one-vs-rest Naive Bayes classifier and training moves it towards the
  discriminative NBSVM of Wang & Manning (2012).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from ktlite.arguments import check_choice, check_positive_int, check_rate, check_verbose
from ktlite._console import say
from ktlite.classifier import target_scale
from ktlite.layers.masked_pooling import POOLING_MODES
from ktlite.optimizers import default_optimizer

MODEL_NAMES = ("transformer", "fasttext", "nbsvm")
_CLASSIFICATION_MODES = ("multiclass", "multilabel")


@keras.saving.register_keras_serializable(package="ktlite")
class NBSVMScores(keras.layers.Layer):
    """Per-class scores from fixed NB log-count ratios and learned token weights.

    For token ids `(batch, length)` the layer returns `(batch, num_classes)` scores
    `sum_t w[t, c] * r[t, c] + b[c]` over the distinct non-padding tokens `t` of each
    row (a binarized bag of words; id 0 is padding). `r` (`ratios`) is a
    non-trainable `(vocab_size, num_classes)` weight set with `set_ratios`; `w`
    (`kernel`, initialized to 1) and `b` (`bias`, initialized to 0) are trainable.

    Args:
        vocab_size: Number of token ids, including padding id 0.
        num_classes: Number of scores per row.
        **kwargs: Standard `keras.layers.Layer` arguments.

    Raises:
        TypeError: If `vocab_size` or `num_classes` is not an int.
        ValueError: If `vocab_size` or `num_classes` is not positive.

    Example:
        >>> layer = NBSVMScores(vocab_size=100, num_classes=3)
        >>> layer.build((None, 8)); layer.set_ratios(ratios, bias=log_prior_odds)
        >>> layer(token_ids).shape  # (batch, 3)
    """

    def __init__(self, vocab_size: int, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.num_classes = check_positive_int(num_classes, "num_classes")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape = (self.vocab_size, self.num_classes)
        self.ratios = self.add_weight(
            name="ratios", shape=shape, initializer="zeros", trainable=False
        )
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer="zeros")

    def set_ratios(self, ratios: np.ndarray, bias: np.ndarray | None = None) -> None:
        """Sets the fixed log-count ratios (and optionally the bias).

        Args:
            ratios: Array of shape `(vocab_size, num_classes)`.
            bias: Optional array of shape `(num_classes,)`.

        Raises:
            ValueError: If a shape does not match, or the layer is not built.
        """
        if not self.built:
            raise ValueError("Build the layer (call it once) before `set_ratios`.")
        ratios = np.asarray(ratios, dtype="float32")
        if ratios.shape != (self.vocab_size, self.num_classes):
            raise ValueError(
                f"`ratios` must have shape {(self.vocab_size, self.num_classes)}. "
                f"Received: ratios.shape={ratios.shape}"
            )
        self.ratios.assign(ratios)
        if bias is not None:
            bias = np.asarray(bias, dtype="float32")
            if bias.shape != (self.num_classes,):
                raise ValueError(
                    f"`bias` must have shape {(self.num_classes,)}. "
                    f"Received: bias.shape={bias.shape}"
                )
            self.bias.assign(bias)

    def call(self, token_ids: Any) -> Any:
        # Order does not matter in a bag of words: sorting puts repeats side by side,
        # so each distinct token is kept once.
        ids = ops.sort(ops.cast(token_ids, "int32"), axis=-1)
        first = ops.concatenate(
            [ops.ones_like(ids[:, :1], dtype="bool"), ops.not_equal(ids[:, 1:], ids[:, :-1])],
            axis=-1,
        )
        keep = ops.cast(ops.logical_and(first, ops.not_equal(ids, 0)), self.compute_dtype)
        weighted = ops.take(self.ratios, ids, axis=0) * ops.take(self.kernel, ids, axis=0)
        return ops.sum(weighted * keep[..., None], axis=1) + self.bias

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "num_classes": self.num_classes})
        return config


def text_classifier(
    name: str = "transformer",
    train_data: Any = None,
    preproc: Any = None,
    *,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.1,
    pooling: str = "mean",
    learning_rate: float = 1e-3,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    backbone: Any = None,
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles a text classifier for the preprocessor's classes.

    Multiclass labels get a softmax head, sparse categorical cross-entropy and accuracy;
    multilabel labels a sigmoid head, binary cross-entropy and binary accuracy. The mode
    and the number of classes come from `preproc.label_mode` and `preproc.class_names`.

    Args:
        name: `"transformer"` (default), `"fasttext"` or `"nbsvm"` (see the module
            docstring).
        train_data: The training `TaskDataset` from `texts_from_*` or `text_dataset` (or a
            `(texts, encoded labels)` tuple). Checked against `preproc`; `"nbsvm"` computes its
            log-count ratios from it.
        preproc: The `TextPreprocessor` returned with `train_data`.
        embed_dim: Embedding size (`"transformer"`, `"fasttext"`). Defaults to 128.
        num_heads: Attention heads (`"transformer"`). Defaults to 4.
        num_layers: Encoder blocks (`"transformer"`). Defaults to 2.
        ff_dim: Feed-forward width (`"transformer"`); `None` means `4 * embed_dim`.
        dropout: Dropout rate (`"transformer"`, `"fasttext"`). Defaults to 0.1.
        pooling: `"mean"` (default), `"max"` or `"first"` (`"transformer"`).
        learning_rate: Initial learning rate of the default optimizer. Defaults to 1e-3.
        optimizer: An optimizer name or instance. Defaults to `None`: AdamW with weight
            decay 0.01 (biases and normalization excluded) for `"transformer"`, Adam
            for the baselines.
        backbone: A pretrained encoder to start from (`"transformer"` only): a backbone
            folder path (`MaskedLMLearner.save_backbone`), a `Backbone`, or the learner
            from `ktlite.text.pretrain`. Its sizes replace `embed_dim`, `num_heads`,
            `num_layers` and `ff_dim`: a size left at its default, or passed equal to it
            (the two cannot be told apart, so `embed_dim=128` builds the backbone's
            width), takes the backbone's value; one set to a value other than both its
            default and the backbone's is refused. `preproc` must come from the backbone
            (`texts_from_array(..., backbone=path)`). Defaults to `None`.
        verbose: 1 prints a one-line summary, 0 is silent. Defaults to 1.

    Returns:
        A compiled `keras.Model` mapping int32 token ids `(batch, length <= maxlen)` to
        class probabilities `(batch, num_classes)`.

    Raises:
        ValueError: If `name` is unknown, `preproc` is for regression,
            `train_data` does not match `preproc`, a size beside `backbone` differs
            from both its default and the backbone's, a size is not positive, `pooling`
            is unknown, or `dropout` is outside [0, 1). Sizes, `pooling` and `dropout`
            are checked whichever model `name` builds.
        TypeError: If `preproc` or `train_data` is not of the expected kind, `name` or
            `pooling` is not a str, a size is not an int, or `dropout` is not a number.

    Example:
        >>> trn, val, preproc = text.texts_from_array(x_train, y_train)
        >>> model = text.text_classifier("transformer", trn, preproc=preproc)
        >>> learner = ktlite.get_learner(model, train_data=trn, val_data=val)
    """
    _check_preproc(preproc)
    if preproc.label_mode not in _CLASSIFICATION_MODES:
        raise ValueError(
            "`text_classifier` needs class labels but "
            f"preproc.label_mode={preproc.label_mode!r}; use `text_regression_model`."
        )
    return _build(
        name, train_data, preproc, MODEL_NAMES, embed_dim=embed_dim, num_heads=num_heads,
        num_layers=num_layers, ff_dim=ff_dim, dropout=dropout, pooling=pooling,
        learning_rate=learning_rate, optimizer=optimizer, backbone=backbone, verbose=verbose,
    )


def text_regression_model(
    name: str = "transformer",
    train_data: Any = None,
    preproc: Any = None,
    *,
    embed_dim: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    ff_dim: int | None = None,
    dropout: float = 0.1,
    pooling: str = "mean",
    learning_rate: float = 1e-3,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    backbone: Any = None,
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles a text regression model (linear head, MSE loss, MAE metric).

    Args:
        name: `"transformer"` (default) or `"fasttext"`. (`"nbsvm"` needs classes.)
        train_data: The training `TaskDataset` from `texts_from_*` (or a `(texts,
            targets)` tuple), checked against `preproc`.
        preproc: The `TextPreprocessor` returned with `train_data`; its `label_mode`
            must be `"regression"`.
        embed_dim: Embedding size. Defaults to 128.
        num_heads: Attention heads (`"transformer"`). Defaults to 4.
        num_layers: Encoder blocks (`"transformer"`). Defaults to 2.
        ff_dim: Feed-forward width (`"transformer"`); `None` means `4 * embed_dim`.
        dropout: Dropout rate. Defaults to 0.1.
        pooling: `"mean"` (default), `"max"` or `"first"` (`"transformer"`).
        learning_rate: Initial learning rate of the default optimizer. Defaults to 1e-3.
        optimizer: An optimizer name or instance. Defaults to `None` (as in
            `text_classifier`).
        backbone: A pretrained encoder to start from, as in `text_classifier`.
        verbose: 1 prints a one-line summary, 0 is silent. Defaults to 1.

    Returns:
        A compiled `keras.Model` mapping int32 token ids `(batch, length <= maxlen)` to
        `(batch, preproc.num_outputs)` floats (one per regression target, usually 1).

    Raises:
        ValueError: If `name` is unknown or `"nbsvm"`, `preproc` is not for regression,
            `train_data` does not match `preproc`, a size beside `backbone` differs
            from both its default and the backbone's, a size is not positive, `pooling`
            is unknown, or `dropout` is outside [0, 1). Sizes, `pooling` and `dropout`
            are checked whichever model `name` builds.
        TypeError: If `preproc` or `train_data` is not of the expected kind, `name` or
            `pooling` is not a str, a size is not an int, or `dropout` is not a number.

    Example:
        >>> trn, val, preproc = text.texts_from_array(x_train, ratings)
        >>> model = text.text_regression_model("transformer", trn, preproc=preproc)
        >>> ktlite.get_learner(model, train_data=trn, val_data=val).fit_onecycle(1e-3, 2)
    """
    _check_preproc(preproc)
    if preproc.label_mode != "regression":
        raise ValueError(
            "`text_regression_model` needs numeric targets but "
            f"preproc.label_mode={preproc.label_mode!r}; use `text_classifier`."
        )
    return _build(
        name, train_data, preproc, ("transformer", "fasttext"), embed_dim=embed_dim,
        num_heads=num_heads, num_layers=num_layers, ff_dim=ff_dim, dropout=dropout,
        pooling=pooling, learning_rate=learning_rate, optimizer=optimizer, backbone=backbone,
        verbose=verbose,
    )


# ---------------------------------------------------------------------- building
# The size arguments' defaults of `text_classifier` and `text_regression_model`. Beside a
# backbone, a size equal to its default takes the backbone's value (passed or not: the two
# cannot be told apart); `backbone_sizes` refuses one that differs from both.
SIZE_DEFAULTS = {"embed_dim": 128, "num_heads": 4, "num_layers": 2, "ff_dim": None}


def _build(
    name: Any, train_data: Any, preproc: Any, allowed: tuple[str, ...], *, embed_dim: int,
    num_heads: int, num_layers: int, ff_dim: int | None, dropout: float, pooling: str,
    learning_rate: float, optimizer: Any, backbone: Any, verbose: int,
) -> keras.Model:
    check_choice(name, "name", allowed)
    check_verbose(verbose, (0, 1, 2))
    # Checked whichever model uses them, so a mistake shows before a switch of `name`.
    embed_dim, num_heads, num_layers = (
        check_positive_int(value, arg) for arg, value in
        (("embed_dim", embed_dim), ("num_heads", num_heads), ("num_layers", num_layers))
    )
    ff_dim = check_positive_int(ff_dim, "ff_dim", allow_none=True)
    dropout = check_rate(dropout, "dropout")
    pooling = check_choice(pooling, "pooling", POOLING_MODES)
    x, y = _unpack(train_data, preproc)
    mode = preproc.label_mode
    if mode == "regression":
        num_outputs = int(getattr(preproc, "num_outputs", None) or 1)
    else:
        num_outputs = len(preproc.class_names)
    activation = {"multiclass": "softmax", "multilabel": "sigmoid", "regression": None}[mode]
    if backbone is not None and name != "transformer":
        raise ValueError(
            f"`backbone` needs name='transformer'. Received: name={name!r}, a backbone"
        )
    if name == "transformer":
        from ktlite.models import Transformer

        if backbone is None:
            sizes = {"vocab_size": preproc.vocab_size, "maxlen": preproc.maxlen,
                     "embed_dim": embed_dim, "num_heads": num_heads,
                     "num_layers": num_layers, "ff_dim": ff_dim}
        else:
            from ktlite.text.backbone import (
                backbone_sizes,
                check_backbone_preproc,
                resolve_backbone,
            )

            backbone = resolve_backbone(backbone)
            check_backbone_preproc(backbone, preproc)
            sizes = backbone_sizes(
                backbone, SIZE_DEFAULTS, embed_dim=embed_dim, num_heads=num_heads,
                num_layers=num_layers, ff_dim=ff_dim,
            )
        model = Transformer(
            **sizes, dropout=dropout, num_outputs=num_outputs, head_activation=activation,
            pooling=pooling, name="text_transformer",
        )
        if backbone is not None:
            for layer in backbone.weight_layers():
                model.get_layer(layer.name).set_weights(layer.get_weights())
    elif name == "fasttext":
        model = _fasttext(preproc, num_outputs, activation, embed_dim, dropout)
    else:
        model = _nbsvm(preproc, x, y, activation)
    if mode == "regression":
        model = keras.Model(model.input, target_scale(model.output, y), name=model.name)
    opt = default_optimizer(optimizer, learning_rate, 0.01 if name == "transformer" else 0)
    if mode == "multiclass":
        loss, metrics = keras.losses.SparseCategoricalCrossentropy(), ["accuracy"]
    elif mode == "multilabel":
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    else:
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.MeanAbsoluteError(name="mae")]
    model.compile(optimizer=opt, loss=loss, metrics=metrics)
    if verbose:
        say(
            f"{name} text model: {mode}, {num_outputs} output(s), maxlen {preproc.maxlen}, "
            f"vocabulary {preproc.vocab_size}, {model.count_params():,} parameters"
        )
    return model


def _fasttext(
    preproc: Any, num_outputs: int, activation: str | None, embed_dim: int, dropout: float
) -> keras.Model:
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        preproc.vocab_size, embed_dim, mask_zero=True, name="token_embedding"
    )(token_ids)
    # The mask from the embedding makes this a mean over real tokens only.
    x = keras.layers.GlobalAveragePooling1D(name="mean_pooling")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_outputs, activation=activation, dtype="float32", name="head"
    )(x)
    return keras.Model(token_ids, outputs, name="text_fasttext")


def _nbsvm(preproc: Any, x: Any, y: np.ndarray, activation: str | None) -> keras.Model:
    num_classes = len(preproc.class_names)
    ids = _token_ids(x, preproc)
    targets = np.eye(num_classes, dtype="float32")[y] if y.ndim == 1 else y.astype("float32")
    ratios, prior = nb_log_count_ratios(ids, targets, preproc.vocab_size)
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    scorer = NBSVMScores(preproc.vocab_size, num_classes, name="nbsvm_scores")
    scores = scorer(token_ids)
    scorer.set_ratios(ratios, bias=prior)
    outputs = keras.layers.Activation(activation, dtype="float32", name="head")(scores)
    return keras.Model(token_ids, outputs, name="text_nbsvm")


def nb_log_count_ratios(
    token_ids: np.ndarray, targets: np.ndarray, vocab_size: int, alpha: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Computes one-vs-rest Naive Bayes log-count ratios from a binarized bag of words.

    For class `c`, with `p` the add-`alpha` counts of texts of class `c` containing each
    token and `q` the same for the other texts, `r[:, c] = log(p / |p|_1) - log(q / |q|_1)`.
    Padding (id 0) gets ratio 0.

    Args:
        token_ids: int array `(n, maxlen)`, 0 = padding.
        targets: 0/1 float array `(n, num_classes)` (one-hot or multilabel).
        vocab_size: Number of token ids.
        alpha: Additive smoothing. Defaults to 1.0.

    Returns:
        `(ratios, prior_log_odds)`: float32 arrays `(vocab_size, num_classes)` and
        `(num_classes,)`, the latter `log(n_c / n_rest)` (smoothed).

    Raises:
        ValueError: If a token id is outside `[0, vocab_size)` or shapes disagree.

    Example:
        >>> r, b = nb_log_count_ratios(ids, np.eye(2)[y], vocab_size=preproc.vocab_size)
        >>> r.shape
        (8000, 2)
    """
    from scipy import sparse

    token_ids = np.asarray(token_ids)
    n, length = token_ids.shape
    if targets.shape[0] != n:
        raise ValueError(
            f"`targets` must have one row per text. Received: {targets.shape[0]} rows "
            f"for {n} texts."
        )
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= vocab_size):
        raise ValueError(
            f"Token ids must lie in [0, {vocab_size}). Received ids from {token_ids.min()} "
            f"to {token_ids.max()}."
        )
    rows = np.repeat(np.arange(n), length)
    cols = token_ids.ravel()
    real = cols != 0
    bag = sparse.csr_matrix(
        (np.ones(int(real.sum()), dtype="float64"), (rows[real], cols[real])),
        shape=(n, vocab_size),
    )
    bag.data[:] = 1.0  # repeated tokens were summed; a binarized bag counts them once
    with_class = np.asarray(bag.T @ targets.astype("float64"))
    without_class = np.asarray(bag.sum(axis=0)).reshape(-1, 1) - with_class
    p = with_class + alpha
    q = without_class + alpha
    ratios = np.log(p / p.sum(axis=0)) - np.log(q / q.sum(axis=0))
    ratios[0] = 0.0
    n_class = targets.sum(axis=0)
    prior = np.log((n_class + alpha) / (n - n_class + alpha))
    return ratios.astype("float32"), prior.astype("float32")


# ---------------------------------------------------------------------- checks
def _check_preproc(preproc: Any) -> None:
    if preproc is None:
        raise TypeError("`preproc` is required: pass the preprocessor from `texts_from_*`.")
    if getattr(preproc, "task", None) != "text":
        raise TypeError(
            "`preproc` must be a ktlite text preprocessor (task 'text'). "
            f"Received: preproc={preproc!r}"
        )


def _unpack(train_data: Any, preproc: Any) -> tuple[Any, np.ndarray]:
    """Returns `(x, y)` of the training data after checking it against `preproc`."""
    if train_data is None:
        raise TypeError(
            "`train_data` is required: pass the training TaskDataset from `texts_from_*`."
        )
    if isinstance(train_data, tuple) and len(train_data) == 2:
        x, y = train_data
    elif hasattr(train_data, "x") and hasattr(train_data, "y"):
        task = getattr(train_data, "task", None)
        if task not in (None, "text"):
            raise ValueError(
                f"`train_data` holds {task!r} data, not text. Received: train_data={train_data!r}"
            )
        owner = getattr(getattr(train_data, "transform", None), "__self__", None)
        if owner is not None and owner is not preproc and getattr(owner, "task", None) == "text":
            raise ValueError(
                "`train_data` was tokenized by a different preprocessor than `preproc`; "
                "pass the preprocessor returned together with `train_data`."
            )
        x, y = train_data.x, train_data.y
    else:
        raise TypeError(
            "`train_data` must be a TaskDataset from `texts_from_*` or an (x, y) tuple. "
            f"Received: train_data of type {type(train_data).__name__}"
        )
    if y is None:
        raise ValueError("`train_data` has no labels (y is None); a model needs them.")
    y = np.asarray(y)
    if len(y) != len(x):
        raise ValueError(
            f"`train_data` has {len(x)} texts but {len(y)} labels."
        )
    return x, _check_labels(y, preproc)


def _check_labels(y: np.ndarray, preproc: Any) -> np.ndarray:
    mode = preproc.label_mode
    mismatch = ("`train_data` labels do not match `preproc` (label_mode={!r}): {}. Raw labels "
                "are read by `text_dataset(texts, labels, preproc)`")
    if mode == "regression":
        targets = int(getattr(preproc, "num_outputs", None) or 1)
        got = 1 if y.ndim == 1 else (y.shape[1] if y.ndim == 2 else -1)
        if got != targets or not np.issubdtype(y.dtype, np.number):
            raise ValueError(mismatch.format(
                mode, f"expected {targets} number(s) per text, got labels of shape {y.shape} "
                      f"and dtype {y.dtype}"))
        return y
    num_classes = len(preproc.class_names)
    if mode == "multiclass":
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(mismatch.format(mode, f"expected 1-D integer class ids, got shape "
                                                   f"{y.shape} of dtype {y.dtype}"))
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(mismatch.format(
                mode, f"class ids range from {y.min()} to {y.max()} but preproc has "
                      f"{num_classes} classes"))
        return y
    if y.ndim != 2 or y.shape[1] != num_classes:
        raise ValueError(mismatch.format(
            mode, f"expected a (n, {num_classes}) 0/1 matrix, got shape {y.shape}"))
    if not np.isin(y, (0, 1)).all():
        raise ValueError(mismatch.format(mode, "the label matrix holds values other than 0/1"))
    return y


def _token_ids(x: Any, preproc: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
        if x.shape[1] != preproc.maxlen:
            raise ValueError(
                f"Token ids in `train_data` have length {x.shape[1]} but "
                f"preproc.maxlen={preproc.maxlen}."
            )
        return x
    return np.asarray(preproc.preprocess([str(t) for t in x.ravel()]))
