"""Table model factories: an FT-Transformer and an MLP baseline, compiled for the labels.

Both take the inputs `TabularPreprocessor.transform` makes (``{"numeric", "missing",
"categorical"}``, the keys the table has) and start with a
`ktlite.tabular.layers.FeatureTokenizer`:

- `"ft_transformer"` (Gorishniy et al., 2021): one token per column plus a class token,
  pre-norm `ktlite.layers.TransformerEncoder` blocks, and a head (layer norm, ReLU,
  dense) on the class token.
- `"mlp"`: the column tokens flattened into a stack of ReLU dense layers with dropout.

A regression model ends in a `Rescaling` by the training targets' standard deviation and
mean, so its dense head learns standardized targets whatever their scale.
"""

from __future__ import annotations

from typing import Any

import keras

from ktlite.arguments import check_choice, check_positive_int, check_rate, check_verbose
from ktlite._console import say
from ktlite.classifier import target_scale
from ktlite.layers import MaskedGlobalPooling, TransformerEncoder
from ktlite.optimizers import default_optimizer
from ktlite.tabular.layers import FeatureTokenizer

MODEL_NAMES = ("ft_transformer", "mlp")
_DEFAULTS = {
    "ft_transformer": {"embed_dim": 32, "num_layers": 2},
    "mlp": {"embed_dim": 8, "num_layers": 2},
}


def tabular_classifier(
    name: str = "ft_transformer",
    train_data: Any = None,
    preproc: Any = None,
    *,
    embed_dim: int | None = None,
    num_heads: int = 4,
    num_layers: int | None = None,
    hidden_units: int = 128,
    dropout: float = 0.1,
    learning_rate: float = 1e-3,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles a classifier for a table's classes.

    Multiclass labels get a softmax head, sparse categorical cross-entropy and accuracy;
    multilabel labels a sigmoid head, binary cross-entropy and binary accuracy.

    Args:
        name: `"ft_transformer"` (default) or `"mlp"` (see the module docstring).
        train_data: the training `TaskDataset` from `tabular_from_*`.
        preproc: the `TabularPreprocessor` returned with it.
        embed_dim: token size; None means 32 (`"ft_transformer"`) or 8 (`"mlp"`).
        num_heads: attention heads (`"ft_transformer"`). Defaults to 4.
        num_layers: encoder blocks or hidden dense layers; None means 2.
        hidden_units: width of the hidden dense layers (`"mlp"`). Defaults to 128.
        dropout: dropout rate. Defaults to 0.1.
        learning_rate: learning rate of the default optimizer. Defaults to 1e-3.
        optimizer: an optimizer name or instance; None means AdamW (weight decay 1e-4;
            biases, normalization and embeddings excluded).
        verbose: 1 prints a one-line summary, 0 is silent.

    Returns:
        A compiled `keras.Model` from the transform's inputs to class probabilities
        `(batch, num_classes)`.

    Raises:
        TypeError: if `preproc` or `train_data` is not from `tabular_from_*`, `name` is
            not a str, or a size or `dropout` is not a number.
        ValueError: for an unknown `name`, a regression `preproc`, or invalid sizes
            (each size and `dropout` is checked whichever model `name` builds).

    Example:
        >>> trn, val, preproc = tabular.tabular_from_df(df, label_columns="income")
        >>> model = tabular.tabular_classifier("ft_transformer", trn, preproc=preproc)
        >>> ktlite.get_learner(model, train_data=trn, val_data=val).fit_onecycle(1e-3, 10)
    """
    _check(train_data, preproc)
    if preproc.label_mode == "regression":
        raise ValueError(
            "`tabular_classifier` needs class labels but preproc.label_mode='regression'; "
            "use `tabular_regressor`."
        )
    return _build(
        name, train_data, preproc, embed_dim=embed_dim, num_heads=num_heads,
        num_layers=num_layers, hidden_units=hidden_units, dropout=dropout,
        learning_rate=learning_rate, optimizer=optimizer, verbose=verbose,
    )


def tabular_regressor(
    name: str = "ft_transformer",
    train_data: Any = None,
    preproc: Any = None,
    *,
    embed_dim: int | None = None,
    num_heads: int = 4,
    num_layers: int | None = None,
    hidden_units: int = 128,
    dropout: float = 0.1,
    learning_rate: float = 1e-3,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    verbose: int = 1,
) -> keras.Model:
    """Builds and compiles a regression model for a table (MSE loss, MAE metric).

    Args:
        name: `"ft_transformer"` (default) or `"mlp"`.
        train_data: the training `TaskDataset` from `tabular_from_*`; its targets' mean
            and standard deviation scale the output.
        preproc: the `TabularPreprocessor` returned with it (`label_mode="regression"`).
        embed_dim: as in `tabular_classifier`.
        num_heads: as in `tabular_classifier`.
        num_layers: as in `tabular_classifier`.
        hidden_units: as in `tabular_classifier`.
        dropout: as in `tabular_classifier`.
        learning_rate: as in `tabular_classifier`.
        optimizer: as in `tabular_classifier`.
        verbose: as in `tabular_classifier`.

    Returns:
        A compiled `keras.Model` from the transform's inputs to `(batch, num_outputs)`
        floats.

    Raises:
        TypeError: if `preproc` or `train_data` is not from `tabular_from_*`, `name` is
            not a str, or a size or `dropout` is not a number.
        ValueError: for an unknown `name`, a classification `preproc`, or invalid sizes
            (each size and `dropout` is checked whichever model `name` builds).

    Example:
        >>> trn, val, preproc = tabular.tabular_from_array(x, prices)
        >>> model = tabular.tabular_regressor("mlp", trn, preproc=preproc)
    """
    _check(train_data, preproc)
    if preproc.label_mode != "regression":
        raise ValueError(
            "`tabular_regressor` needs numeric targets but "
            f"preproc.label_mode={preproc.label_mode!r}; use `tabular_classifier`, or load "
            "the data with label_mode='regression' when the labels are numbers to predict."
        )
    return _build(
        name, train_data, preproc, embed_dim=embed_dim, num_heads=num_heads,
        num_layers=num_layers, hidden_units=hidden_units, dropout=dropout,
        learning_rate=learning_rate, optimizer=optimizer, verbose=verbose,
    )


def _check(train_data: Any, preproc: Any) -> None:
    if getattr(preproc, "task", None) != "tabular":
        raise TypeError(
            "`preproc` must be the TabularPreprocessor from `tabular_from_*`. "
            f"Received: preproc={preproc!r}"
        )
    if getattr(train_data, "task", None) != "tabular" or train_data.y is None:
        raise TypeError(
            "`train_data` must be the labelled training TaskDataset from `tabular_from_*`. "
            f"Received: train_data={train_data!r}"
        )
    if getattr(train_data.transform, "__self__", preproc) is not preproc:
        raise ValueError(
            "`train_data` was made by another preprocessor than `preproc`; pass the "
            "preprocessor returned together with it."
        )


def _inputs(preproc: Any) -> dict[str, keras.KerasTensor]:
    inputs = {}
    if preproc.numeric:
        n = len(preproc.numeric)
        inputs["numeric"] = keras.Input((n,), dtype="float32", name="numeric")
        inputs["missing"] = keras.Input((n,), dtype="float32", name="missing")
    if preproc.categorical:
        inputs["categorical"] = keras.Input(
            (len(preproc.categorical),), dtype="int32", name="categorical"
        )
    return inputs


def _build(
    name: Any, train_data: Any, preproc: Any, *, embed_dim: Any, num_heads: Any,
    num_layers: Any, hidden_units: Any, dropout: Any, learning_rate: Any, optimizer: Any,
    verbose: Any,
) -> keras.Model:
    check_choice(name, "name", MODEL_NAMES)
    check_verbose(verbose)
    dropout = check_rate(dropout, "dropout")
    defaults = _DEFAULTS[name]
    embed_dim = check_positive_int(
        defaults["embed_dim"] if embed_dim is None else embed_dim, "embed_dim"
    )
    num_layers = check_positive_int(
        defaults["num_layers"] if num_layers is None else num_layers, "num_layers"
    )
    # Checked whichever model uses them, so a mistake shows before a switch of `name`.
    num_heads = check_positive_int(num_heads, "num_heads")
    hidden_units = check_positive_int(hidden_units, "hidden_units")
    mode = preproc.label_mode
    outputs_n = preproc.num_outputs
    inputs = _inputs(preproc)
    tokenizer = FeatureTokenizer(
        len(preproc.numeric), preproc.category_sizes, embed_dim,
        class_token=name == "ft_transformer", name="feature_tokenizer",
    )
    x = tokenizer(inputs)
    if name == "ft_transformer":
        if embed_dim % num_heads:
            raise ValueError(
                f"`embed_dim` must be a multiple of `num_heads`. Received: embed_dim={embed_dim}, "
                f"num_heads={num_heads}"
            )
        for i in range(num_layers):
            x = TransformerEncoder(
                num_heads, 2 * embed_dim, dropout=float(dropout), norm_first=True,
                name=f"encoder_{i}",
            )(x)
        x = MaskedGlobalPooling("first", name="class_token")(x)
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="head_norm")(x)
        x = keras.layers.Activation("relu", name="head_relu")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
        for i in range(num_layers):
            x = keras.layers.Dense(hidden_units, activation="relu", name=f"dense_{i}")(x)
            x = keras.layers.Dropout(float(dropout), name=f"dropout_{i}")(x)
    activation = {"multiclass": "softmax", "multilabel": "sigmoid", "regression": None}[mode]
    outputs = keras.layers.Dense(outputs_n, activation=activation, dtype="float32", name="head")(x)
    if mode == "regression":
        outputs = target_scale(outputs, train_data.y)
    model = keras.Model(inputs, outputs, name=f"tabular_{name}")
    if mode == "multiclass":
        loss, metrics = keras.losses.SparseCategoricalCrossentropy(), ["accuracy"]
    elif mode == "multilabel":
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    else:
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.MeanAbsoluteError(name="mae")]
    model.compile(optimizer=default_optimizer(
        optimizer, learning_rate, 1e-4,
        ("bias", "gamma", "beta", "embedding", "numeric_kernel"),
    ), loss=loss, metrics=metrics)
    if verbose:
        say(
            f"{name} table model: {mode}, {outputs_n} output(s), {len(preproc.numeric)} numeric "
            f"and {len(preproc.categorical)} categorical columns, "
            f"{model.count_params():,} parameters"
        )
    return model
