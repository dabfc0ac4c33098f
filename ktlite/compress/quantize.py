"""Weight quantization of a trained Keras model with Keras 3's own `Model.quantize`.

Keras 3 quantizes exactly three layer types (not their subclasses): `Dense`,
`EinsumDense` (the query/key/value/output projections inside `MultiHeadAttention`) and
`Embedding`. Every other layer (layer normalization, pooling, dropout) keeps float weights.
In `"int8"` mode the kernels are stored as int8 with one float scale per output channel
(embeddings: one per row) and the inputs of `Dense`/`EinsumDense` are quantized on the fly
per token, so the matrix products run in int8. `"int4"` packs two weights per byte
(per-channel scales) and dequantizes them before the product.

A mixed-precision model (float32 variables, float16/bfloat16 compute) is quantized as a
float32 copy (same architecture and weights, float32 dtype policies), so the quantized
model computes in float32.

A quantized model is an ordinary Keras model: it saves to and loads from the `.keras`
format with `safe_mode=True` (the quantized dtype policy is part of each layer's config),
exports to a SavedModel, but is meant for inference only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras

from ktlite import compat
from ktlite.arguments import check_choice
from ktlite.compress._precision import float32_copy, low_precision_policies

__all__ = ["QUANTIZATION_MODES", "quantize_model", "quantize_predictor", "quantized_layers"]

QUANTIZATION_MODES: tuple[str, ...] = ("int8", "int4")

# The layer types Keras' `quantize` implements; subclasses refuse it on purpose.
_QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


def _check_mode(mode: Any) -> str:
    return check_choice(mode, "mode", QUANTIZATION_MODES)


def compile_exclude_patterns(
    exclude: str | Sequence[str] | None, matched_against: str = "layer names"
) -> list[re.Pattern]:
    """Compiles the `exclude` regexes shared by quantization and pruning.

    Args:
        exclude: one regex, a list of them, or None.
        matched_against: what the regexes are matched against, for the error message.

    Returns:
        The compiled patterns (empty for None).

    Raises:
        TypeError: if `exclude` is not a string or a list of strings.
        ValueError: if a regex does not compile.
    """
    if exclude is None:
        return []
    patterns = [exclude] if isinstance(exclude, str) else exclude
    if not isinstance(patterns, Sequence) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(
            "`exclude` must be a regex string or a list of regex strings matched against "
            f"{matched_against}. Received: exclude={exclude!r}"
        )
    try:
        return [re.compile(p) for p in patterns]
    except re.error as err:
        raise ValueError(
            f"`exclude` holds an invalid regex ({err}). Received: exclude={exclude!r}"
        ) from None


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [
        layer
        for layer in compat.flatten_layers(model, include_self=False, recursive=True)
        if len(compat.flatten_layers(layer)) == 1
    ]


def _is_quantizable(layer: keras.layers.Layer, patterns: list[re.Pattern]) -> bool:
    return (
        type(layer) in _QUANTIZABLE
        and getattr(layer, "quantization_mode", None) is None
        and not any(p.search(layer.name) for p in patterns)
    )


def quantized_layers(model: keras.Model) -> dict[str, str]:
    """Lists the quantized layers of a model and their quantization mode.

    Args:
        model: any Keras model.

    Returns:
        A dict from layer name to mode (e.g. `{"dense": "int8"}`); empty for a float model.

    Raises:
        TypeError: if `model` is not a `keras.Model`.

    Example:
        >>> small = quantize_model(model, "int8")
        >>> quantized_layers(small)
        {'embedding': 'int8', 'dense': 'int8'}
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    return {
        layer.path: layer.quantization_mode
        for layer in _leaf_layers(model)
        if getattr(layer, "quantization_mode", None) is not None
    }


def quantize_model(
    model: keras.Model,
    mode: str = "int8",
    exclude: str | Sequence[str] | None = None,
) -> keras.Model:
    """Returns a weight-quantized copy of a trained model; the original is left untouched.

    The copy is rebuilt from the model's config (so custom layers must be registered Keras
    serializables, as all of `ktlite.layers` are; `Lambda` layers are refused by Keras'
    safe deserialization), gets the original's weights, and is quantized in place by
    Keras' `Model.quantize`. Only `Dense`, `EinsumDense` and `Embedding` layers are
    quantized (see the module notes). The copy is not compiled, so it saves without
    optimizer state (quantized kernels are not trainable).

    A mixed-precision model (`get_learner(..., mixed_precision="mixed_float16")` or
    `"mixed_bfloat16"`: float32 variables, float16/bfloat16 compute) is rebuilt with float32
    dtype policies before it is quantized, so the quantized copy computes in float32 and
    predicts like the mixed model up to its float16/bfloat16 rounding (Keras refuses int8
    with a float16 compute dtype).

    Args:
        model: a built Keras model with float32 weights (float32 or mixed precision).
        mode: `"int8"` (default; about 4x smaller kernels, int8 matrix products) or
            `"int4"` (about 8x smaller kernels, dequantized before the product).
        exclude: a regex, or list of regexes, matched (with `re.search`) against layer
            names; matching layers stay float. Default `None` quantizes every eligible
            layer. E.g. `exclude="^output$"` keeps a small classifier head exact.

    Returns:
        A new, uncompiled `keras.Model` with the same inputs and outputs.

    Raises:
        TypeError: if `model` is not a `keras.Model`, `mode` is not a str, or `exclude` is
            not a string/list.
        ValueError: if `mode` is unknown, the model is not built, already quantized, or
            has no layer that can be quantized, or it is a mixed-precision model that
            cannot be rebuilt in float32 from its config (e.g. a subclassed model without
            `get_config`; the message says how to build the float32 model yourself).

    Example:
        >>> small = ktlite.compress.quantize_model(model, mode="int8")
        >>> small.save("model_int8.keras")
        >>> keras.saving.load_model("model_int8.keras", safe_mode=True)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    mode = _check_mode(mode)
    patterns = compile_exclude_patterns(exclude)
    if not model.built:
        raise ValueError(
            "`model` must be built (called on data, or created with keras.Input) before it "
            f"can be quantized. Received: an unbuilt model {model.name!r}"
        )
    already = quantized_layers(model)
    if already:
        raise ValueError(
            "`model` is already quantized; quantize the float model instead. Received: "
            f"quantized layers {already}"
        )
    if low_precision_policies(model):
        # Keras refuses int8 with a float16 compute dtype, and a bfloat16 one would round
        # the dequantized products; the float32 copy computes like a float32 model.
        clone = float32_copy(model, "quantizes")
    else:
        # Rebuilt from its config without the compile config: `clone_model` would compile
        # the copy and save the optimizer's float moments next to the int8 kernels.
        config = keras.saving.serialize_keras_object(model)
        config.pop("compile_config", None)
        clone = keras.saving.deserialize_keras_object(config)
        clone.set_weights(model.get_weights())
    targets = [layer for layer in _leaf_layers(clone) if _is_quantizable(layer, patterns)]
    if not targets:
        raise ValueError(
            "`model` has no Dense, EinsumDense or Embedding layer left to quantize "
            f"(exclude={exclude!r}). Received: model {model.name!r}"
        )
    chosen = {id(layer) for layer in targets}
    clone.quantize(mode, filters=lambda layer: id(layer) in chosen)
    _record_nested_policies(clone)
    return clone


def _record_nested_policies(model: keras.Model) -> None:
    """Makes quantized sublayers of composite layers survive a `.keras` round trip.

    A top-level quantized `Dense` saves its int8 dtype policy in its own config, but a
    `Dense` created inside a composite layer (an encoder block) is rebuilt by that layer
    with the layer's own policy. Giving the composite layer a `DTypePolicyMap` keyed by
    sublayer path puts the quantized policies into its config; on loading, each sublayer
    that receives the parent's policy (all of `ktlite.layers` and Keras'
    `MultiHeadAttention` pass it down) looks its own path up and is rebuilt quantized.
    """
    for layer in model.layers:
        if len(compat.flatten_layers(layer)) == 1:
            continue
        policies = {
            sub.path: sub.dtype_policy
            for sub in compat.flatten_layers(layer, include_self=False, recursive=True)
            if getattr(sub, "quantization_mode", None) is not None
        }
        if policies:
            layer.dtype_policy = keras.dtype_policies.DTypePolicyMap(
                default_policy=layer.dtype_policy, policy_map=policies
            )


def quantize_predictor(
    predictor: Any, mode: str = "int8", exclude: str | Sequence[str] | None = None
) -> Any:
    """Returns a new predictor whose model is a quantized copy of `predictor.model`.

    The new predictor shares the preprocessor and batch size, and saves, loads
    (`ktlite.load_predictor`) and exports like any other; the original is unchanged. A
    mixed-precision model is quantized as a float32 copy (see `quantize_model`).

    Args:
        predictor: a ktlite predictor (anything with `.model`, `.preproc`, `.batch_size`).
        mode: `"int8"` (default) or `"int4"`; see `quantize_model`.
        exclude: regex(es) of layer names to keep in float; see `quantize_model`.

    Returns:
        A predictor of the same kind (built with `ktlite.get_predictor`).

    Raises:
        TypeError: if `predictor` has no Keras `model` and `preproc`, or `mode` is not a
            str.
        ValueError: for an unknown `mode` (see `quantize_model`).

    Example:
        >>> small = quantize_predictor(predictor, "int8")
        >>> small.save("predictor_int8")
    """
    model = getattr(predictor, "model", None)
    if not isinstance(model, keras.Model) or not hasattr(predictor, "preproc"):
        raise TypeError(
            "`predictor` must be a ktlite predictor with a keras `model` and a `preproc`. "
            f"Received: predictor={predictor!r}"
        )
    mode = _check_mode(mode)
    return _with_model(predictor, quantize_model(model, mode=mode, exclude=exclude))


def _with_model(predictor: Any, model: keras.Model) -> Any:
    """A predictor of the same class, preprocessor, batch size and settings around `model`."""
    settings = predictor._settings() if hasattr(predictor, "_settings") else {}
    return type(predictor)(model, predictor.preproc,
                           batch_size=getattr(predictor, "batch_size", 32), **settings)
