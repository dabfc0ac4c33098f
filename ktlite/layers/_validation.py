"""Argument checks shared by the ktlite layers.

Each check returns the value in a plain Python type, so that a layer's `get_config()`
stays JSON-serializable even when a caller passes NumPy scalars.
"""

from __future__ import annotations

from typing import Any


def activation(name: str, value: Any):
    """Resolves an activation name, config or callable, raising an error naming `name`:
    `ValueError` for a name or config Keras does not know, `TypeError` for anything else."""
    import keras

    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as err:
        error = ValueError if isinstance(value, (str, dict)) else TypeError
        raise error(
            f"`{name}` must be a Keras activation name or a callable. "
            f"Received: {name}={value!r:.80}"
        ) from err


def initializer(name: str, value: Any):
    """Resolves an initializer name, config or object, raising an error naming `name`:
    `ValueError` for a name or config Keras does not know, `TypeError` for anything else."""
    import keras

    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError) as err:
        error = ValueError if isinstance(value, (str, dict)) else TypeError
        raise error(
            f"`{name}` must be a Keras initializer: a name such as 'glorot_uniform', a "
            f"config dict or an initializer object. Received: {name}={value!r:.80}"
        ) from err


def copy_initializer(initializer: Any, copy: int = 0):
    """Returns a fresh copy of a Keras initializer, an integer seed moved by `copy`.

    Each sublayer gets its own copy: a seeded initializer object shared between
    sublayers would give all of them the same starting weights. Copies that keep one
    integer seed repeat too (Keras draws from the seed alone, so a class token's values
    were the first position embedding's): a layer numbers the copies it makes of one
    initializer, and copy `k` of an initializer seeded with `s` is seeded with `s + k`, so
    a seeded layer stays reproducible.
    """
    import keras

    config = keras.initializers.serialize(initializer)
    seed = config.get("config", {}).get("seed")
    if copy and isinstance(seed, int):
        config = {**config, "config": {**config["config"], "seed": seed + copy}}
    return keras.initializers.get(config)


def hidden_dim(name: str, shape: Any) -> int:
    """Checks a `(batch, length, hidden_dim)` shape and returns `hidden_dim`."""
    if shape is None or len(shape) != 3 or shape[-1] is None:
        received = None if shape is None else tuple(shape)
        raise ValueError(
            "Expected a sequence of shape (batch, length, hidden_dim) with a known "
            f"hidden_dim. Received: {name}={received}"
        )
    return int(shape[-1])


def head_size(hidden: int, num_heads: int) -> int:
    """Returns the per-head size, or raises if `num_heads` does not divide `hidden`."""
    if hidden % num_heads:
        raise ValueError(
            "The hidden size must be divisible by `num_heads`. "
            f"Received: num_heads={num_heads}, hidden_dim={hidden}"
        )
    return hidden // num_heads
