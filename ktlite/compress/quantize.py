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
format with `safe_mode=True` (the quantized dtype policy is part of each layer's config,
at any depth of nesting), exports to a SavedModel, but is meant for inference only.
`quantize_model` checks that: it rebuilds the quantized model from its config in memory
and refuses a model whose quantized layers would come back as float ones (a subclassed
model that creates its layers without passing its dtype policy down).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras

from ktlite import compat
from ktlite.arguments import check_choice
from ktlite.compress._exclude import (
    check_patterns_match,
    compile_exclude_patterns,
    excluded_by,
)
from ktlite.compress._precision import brief_error, float32_copy, low_precision_policies

__all__ = ["QUANTIZATION_MODES", "quantize_model", "quantize_predictor", "quantized_layers"]

QUANTIZATION_MODES: tuple[str, ...] = ("int8", "int4")

# The layer types Keras' `quantize` implements; subclasses refuse it on purpose.
_QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


def _check_mode(mode: Any) -> str:
    return check_choice(mode, "mode", QUANTIZATION_MODES)


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
        and not any(excluded_by(layer, p) for p in patterns)
    )


def quantized_layers(model: keras.Model) -> dict[str, str]:
    """Lists the quantized layers of a model and their quantization mode.

    Args:
        model: any Keras model.

    Returns:
        A dict from layer path (e.g. `"encoder_0/ffn_outer"`, the name alone for a layer of
        the model itself) to mode (e.g. `{"dense": "int8"}`); empty for a float model.

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
    optimizer state (quantized kernels are not trainable). Before it is returned, the copy
    is rebuilt once more from its config, in memory, to check that `keras.saving.load_model`
    gives back every quantized layer (nested models and composite layers included); this
    costs one more construction of the quantized model, no file and no prediction.

    A mixed-precision model (`get_learner(..., mixed_precision="mixed_float16")` or
    `"mixed_bfloat16"`: float32 variables, float16/bfloat16 compute) is rebuilt with float32
    dtype policies before it is quantized, so the quantized copy computes in float32 and
    predicts like the mixed model up to its float16/bfloat16 rounding (Keras refuses int8
    with a float16 compute dtype).

    Args:
        model: a built Keras model with float32 weights (float32 or mixed precision).
        mode: `"int8"` (default; about 4x smaller kernels, int8 matrix products) or
            `"int4"` (about 8x smaller kernels, dequantized before the product).
        exclude: a regex, or list of regexes, searched (with `re.search`) in layer paths,
            the keys of `quantized_layers` and what `prune`'s `exclude` matches (e.g.
            `"encoder_0/ffn_outer"`); a pattern also matches a layer whose bare name it is
            found in (`"^ffn_outer$"` matches that layer in every encoder block). Matching
            layers stay float. Default `None` quantizes every eligible layer. E.g.
            `exclude="^head$"` keeps a small classifier head exact, `exclude="^encoder_0/"`
            the whole first encoder block. Each pattern must match at least one Dense,
            EinsumDense or Embedding layer.

    Returns:
        A new, uncompiled `keras.Model` with the same inputs and outputs.

    Raises:
        TypeError: if `model` is not a `keras.Model`, `mode` is not a str, or `exclude` is
            not a string/list.
        ValueError: if `mode` is unknown, the model is not built, already quantized, or
            has no layer that can be quantized; if an `exclude` pattern matches none of its
            quantizable layers (the message lists their paths); if it cannot be rebuilt
            from its config (in float32 for a mixed-precision model), e.g. a subclassed
            model without `get_config` or not registered, or a `Lambda` layer; or if the
            quantized copy would not load back from a `.keras` file (a subclassed model or
            layer that does not pass its dtype policy to the Dense/EinsumDense/Embedding
            layers it creates). The message says what to do.

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
        clone = _float_copy(model)
    leaves = _leaf_layers(clone)
    check_patterns_match([layer for layer in leaves if _is_quantizable(layer, [])], patterns,
                         exclude, "Dense, EinsumDense or Embedding layer")
    targets = [layer for layer in leaves if _is_quantizable(layer, patterns)]
    if not targets:
        raise ValueError(
            "`model` has no Dense, EinsumDense or Embedding layer left to quantize "
            f"(exclude={exclude!r}). Received: model {model.name!r}"
        )
    chosen = {id(layer) for layer in targets}
    clone.quantize(mode, filters=lambda layer: id(layer) in chosen)
    _record_nested_policies(clone)
    _check_reloads(clone)
    return clone


_REBUILD_FIX = (
    "Build it as a functional model (from `keras.Input`s and layer calls), or give the "
    "class a `get_config` returning its constructor arguments, register it with "
    "`keras.saving.register_keras_serializable`, and create its Dense, EinsumDense and "
    "Embedding layers with `dtype=self.dtype_policy` and a fixed `name`."
)
_GRAPH_FIX = (
    "Make every custom layer a registered Keras serializable with a `get_config` "
    "(`keras.saving.register_keras_serializable`), and replace `Lambda` layers, which safe "
    "deserialization refuses, with such a layer."
)


def _float_copy(model: keras.Model) -> keras.Model:
    """A copy of a float32 model rebuilt from its config, holding its weights.

    Rebuilt from the config without the compile config: `clone_model` would compile the
    copy and save the optimizer's float moments next to the int8 kernels.
    """
    graph = compat.is_functional(model) or isinstance(model, keras.Sequential)
    fix = _GRAPH_FIX if graph else _REBUILD_FIX

    def refuse(reason: str) -> ValueError:
        return ValueError(
            "ktlite quantizes a copy of `model` rebuilt from its config (a quantized model "
            f"must load back from a .keras file), but {reason}. {fix} Received: model "
            f"{model.name!r} of type {type(model).__name__}"
        )

    try:
        config = keras.saving.serialize_keras_object(model)
    except NotImplementedError as err:
        raise refuse(f"the model has no config to rebuild it from ({brief_error(err)})") from err
    try:
        clone = keras.saving.deserialize_keras_object(_without_compile_configs(config))
    except Exception as err:  # deserialization raises many error types
        raise refuse(
            f"rebuilding it from its config failed ({type(err).__name__}: {brief_error(err)})"
        ) from err
    shapes = [tuple(w.shape) for w in model.weights]
    rebuilt = [tuple(w.shape) for w in getattr(clone, "weights", [])]
    if rebuilt != shapes:
        raise refuse(f"the copy rebuilt from its config has {len(rebuilt)} weights that do "
                     f"not match the model's {len(shapes)}")
    clone.set_weights(model.get_weights())
    return clone


def _without_compile_configs(config: Any) -> Any:
    """`config` without the compile config of the model or of any sub-model inside it.

    A compiled sub-model (a trained backbone wrapped in a new model) keeps its compile
    config in its layer config; rebuilt from it, the copy's sub-model would be compiled and
    save its optimizer's float moments next to the int8 kernels.
    """
    if isinstance(config, dict):
        return {key: _without_compile_configs(value) for key, value in config.items()
                if not (key == "compile_config" and "class_name" in config)}
    if isinstance(config, list):
        return [_without_compile_configs(value) for value in config]
    return config


def _record_nested_policies(model: keras.Model) -> None:
    """Makes quantized sublayers of composite layers survive a `.keras` round trip.

    A quantized `Dense` of a functional or `Sequential` model (at any depth of nesting)
    saves its int8 dtype policy in its own config, but a `Dense` created inside a composite
    layer (an encoder block, `MultiHeadAttention`, a subclassed model) is rebuilt by that
    layer with the layer's own policy. Giving every such composite a `DTypePolicyMap` keyed
    by sublayer path puts the quantized policies into its config, whichever config ends
    up saved; on loading, each sublayer that receives its parent's policy (all of
    `ktlite.layers` and Keras' `MultiHeadAttention` pass it down) looks its own path up
    and is rebuilt quantized. Functional and `Sequential` models rebuild each layer from
    its own config, so they need no map.
    """
    for layer in compat.flatten_layers(model, include_self=True, recursive=True):
        if compat.is_functional(layer) or isinstance(layer, keras.Sequential):
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


def _signature(model: keras.Model) -> list[tuple[Any, ...]]:
    """What a `.keras` file's weights must match: each leaf layer's quantization mode and
    the shapes and dtypes of its variables, in order."""
    return [
        (
            getattr(layer, "quantization_mode", None),
            tuple((tuple(v.shape), keras.backend.standardize_dtype(v.dtype))
                  for v in layer.weights),
        )
        for layer in _leaf_layers(model)
    ]


def _check_reloads(model: keras.Model) -> None:
    """Refuses a quantized model that `keras.saving.load_model` would not load back.

    Loading rebuilds the model from its config and then reads the weights into it, which
    fails when a quantized layer comes back as a float one (a subclassed model that creates
    its `Dense` layers itself, without passing its dtype policy down). The same rebuild,
    in memory and without the weights, shows it: no file is written, nothing is predicted,
    and the cost is one more construction of the (quantized, so small) model.
    """

    def refuse(reason: str) -> ValueError:
        return ValueError(
            f"The quantized copy of `model` would not load back from a .keras file: {reason}. "
            "Keras rebuilds a quantized layer from the dtype policy in its config, which a "
            "subclassed model or layer does not pass to the layers it creates. Create its "
            "Dense, EinsumDense and Embedding layers with `dtype=self.dtype_policy` and a "
            "fixed `name` (the policy is looked up by layer path), or build it as a "
            "functional model (from `keras.Input`s and layer calls). Received: model "
            f"{model.name!r} of type {type(model).__name__}"
        )

    config = keras.saving.serialize_keras_object(model)
    try:
        rebuilt = keras.saving.deserialize_keras_object(config)
    except Exception as err:  # deserialization raises many error types
        raise refuse(
            f"rebuilding it from its config failed ({type(err).__name__}: {brief_error(err)})"
        ) from err
    expected, got = _signature(model), _signature(rebuilt)
    if got == expected:
        return
    leaves = _leaf_layers(model)
    if len(got) != len(expected):
        raise refuse(f"rebuilt from its config it has {len(got)} layers instead of "
                     f"{len(expected)}")
    lost = [leaf.path for leaf, want, have in zip(leaves, expected, got) if want != have]
    raise refuse(
        f"rebuilt from its config, {len(lost)} of its layers come back without their "
        f"quantized weights ({', '.join(repr(p) for p in lost[:3])}"
        f"{' ...' if len(lost) > 3 else ''})"
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
        exclude: regex(es) searched in layer paths (or bare names) of layers to keep in
            float; see `quantize_model`.

    Returns:
        A predictor of the same kind (built with `ktlite.get_predictor`).

    Raises:
        TypeError: if `predictor` has no Keras `model` and `preproc`, or `mode` is not a
            str.
        ValueError: for an unknown `mode`, an `exclude` pattern that matches no
            quantizable layer, or a model `quantize_model` refuses (one whose quantized copy
            would not load back, ...; see `quantize_model`).

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
    made = type(predictor)(model, predictor.preproc,
                           batch_size=getattr(predictor, "batch_size", 32), **settings)
    # The copy is not compiled, so it cannot say what its outputs are: it takes the facts a
    # saved folder would record (a classifier's `model_outputs`: logits or probabilities).
    if hasattr(predictor, "_manifest_fields"):
        made._restore(predictor._manifest_fields())
    return made
