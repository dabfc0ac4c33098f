"""Float32 copies of mixed-precision models, for quantization and TFLite conversion.

A model trained with `get_learner(..., mixed_precision="mixed_float16")` (or
`"mixed_bfloat16"`) keeps float32 variables but computes in float16/bfloat16. Neither
Keras' int8 quantization (it refuses a float16 compute dtype) nor the TFLite converter
(its builtins have no float16/bfloat16 `AddV2`, `Erfc`, ...) takes such a graph, so the
compression tools work on a copy rebuilt from the model's config with every float16/bfloat16
dtype policy replaced by `"float32"`, holding the same (already float32) weights. The
user's model is not touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras

from ktlite import compat

__all__ = ["brief_error", "float32_copy", "low_precision_policies"]

_LOW_PRECISION = frozenset({"float16", "bfloat16"})
_LOW_POLICY_NAMES = frozenset({"mixed_float16", "mixed_bfloat16", "float16", "bfloat16"})
# The serialized classes of a plain float dtype policy (`FloatDTypePolicy` is the name older
# Keras 3 releases save).
_POLICY_CLASSES = frozenset({"DTypePolicy", "FloatDTypePolicy"})


def _computes_low(policy: Any) -> bool:
    return getattr(policy, "compute_dtype", None) in _LOW_PRECISION


def low_precision_policies(model: keras.Model) -> list[str]:
    """Names the dtype policies of `model` and its sublayers that compute in float16/bfloat16.

    Args:
        model: a Keras model.

    Returns:
        The sorted policy names, e.g. `["mixed_float16"]`; empty for a float32 model.

    Example:
        >>> low_precision_policies(learner.model)
        ['mixed_bfloat16']
    """
    return sorted({
        layer.dtype_policy.name
        for layer in compat.flatten_layers(model, include_self=True, recursive=True)
        if _computes_low(getattr(layer, "dtype_policy", None))
    })


def _to_float32(config: Any) -> Any:
    """`config` with every serialized float16/bfloat16 dtype policy replaced by float32.

    Only policies are rewritten: integer and string dtypes (`Input(dtype="int32")`, lookup
    layers) do not compute in float16/bfloat16, and stay as they are.
    """
    if isinstance(config, dict):
        inner = config.get("config")
        if (
            config.get("class_name") in _POLICY_CLASSES
            and isinstance(inner, dict)
            and inner.get("name") in _LOW_POLICY_NAMES
        ):
            return {**config, "class_name": "DTypePolicy", "config": {**inner, "name": "float32"}}
        return {key: _named_float32(key, value) for key, value in config.items()}
    if isinstance(config, list):
        return [_to_float32(value) for value in config]
    return config


def _named_float32(key: str, value: Any) -> Any:
    # A policy may also be saved by its name alone (`"dtype": "mixed_float16"`).
    if key == "dtype" and isinstance(value, str) and value in _LOW_POLICY_NAMES:
        return "float32"
    return _to_float32(value)


_BUILD_IT_YOURSELF = (
    "Build the same model in float32 (e.g. after `keras.config.set_dtype_policy('float32')`), "
    "copy the trained weights into it with `float_model.set_weights(model.get_weights())`, "
    "and pass that model."
)


def brief_error(err: Exception) -> str:
    """The sentences of a Keras serialization error that say what is wrong, on one line.

    Keras' serialization errors span many lines and end in a code example; this keeps the
    text before it, cut to 300 characters.

    Args:
        err: the exception.

    Returns:
        One line of at most 300 characters.

    Example:
        >>> brief_error(ValueError("Bad layer.\\nExample: ..."))
        'Bad layer.'
    """
    text = " ".join(str(err).split()).split(" Example:")[0]
    return text if len(text) <= 300 else text[:297] + "..."


@contextlib.contextmanager
def _float32_default() -> Iterator[None]:
    """Makes float32 the default policy, for sublayers that a layer creates without a dtype
    (they would otherwise pick up a mixed global policy the user has set)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_copy(model: keras.Model, action: str) -> keras.Model:
    """Rebuilds a mixed-precision model with float32 dtype policies and copies its weights.

    The copy is made from the model's config (without its compile config, so it is not
    compiled), with every float16/bfloat16 policy replaced by `"float32"`, under a float32
    default policy; it gets the model's weights (float32 variables already, so nothing is
    rounded). `model` itself is left as it is.

    Args:
        model: a built Keras model with float16/bfloat16 compute dtypes (see
            `low_precision_policies`).
        action: what ktlite does with the copy, for the error message (e.g.
            `"quantizes"`).

    Returns:
        A new, uncompiled float32 `keras.Model` with `model`'s architecture and weights.

    Raises:
        ValueError: if the model cannot be rebuilt from its config (e.g. a subclassed model
            without `get_config`, or a `Lambda` layer, which safe deserialization refuses),
            the copy still computes in float16/bfloat16 somewhere, its weights do not
            match the model's, or the model is already quantized.

    Example:
        >>> copy = float32_copy(learner.model, "quantizes")
        >>> low_precision_policies(copy)
        []
    """
    policies = low_precision_policies(model)

    def refuse(reason: str, fix: str = _BUILD_IT_YOURSELF) -> ValueError:
        return ValueError(
            f"`model` computes in float16/bfloat16 (dtype policy {', '.join(policies)}), so "
            f"ktlite {action} a float32 copy of it, but {reason}. {fix} Received: model "
            f"{model.name!r} of type {type(model).__name__}"
        )

    quantized = sorted({
        layer.quantization_mode
        for layer in compat.flatten_layers(model, include_self=False, recursive=True)
        if getattr(layer, "quantization_mode", None) is not None
    })
    if quantized:
        # The quantized policies keep their source precision inside them, and the kernels
        # are no longer float32 weights that a float32 layer could take.
        raise refuse(
            f"its layers are already quantized ({', '.join(quantized)})",
            "Quantize the unquantized model with ktlite.compress.quantize_model, which "
            "quantizes a float32 copy, and pass that.",
        )
    try:
        config = keras.saving.serialize_keras_object(model)
    except NotImplementedError as err:
        raise refuse(f"the model has no config to rebuild it from ({brief_error(err)})") from err
    if isinstance(config, dict):
        config.pop("compile_config", None)
    try:
        with _float32_default():
            copy = keras.saving.deserialize_keras_object(_to_float32(config))
    except Exception as err:  # deserialization raises many error types
        reason = f"{type(err).__name__}: {brief_error(err)}"
        raise refuse(f"rebuilding it from its config failed ({reason})") from err
    left = low_precision_policies(copy)
    if left:
        raise refuse(f"the rebuilt copy still computes in {', '.join(left)} (a layer sets "
                     "its own dtype)")
    shapes = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in copy.weights] != shapes:
        raise refuse(f"the rebuilt copy has {len(copy.weights)} weights that do not match "
                     f"the model's {len(shapes)}")
    copy.set_weights(model.get_weights())
    return copy
