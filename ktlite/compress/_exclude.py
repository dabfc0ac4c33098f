"""The `exclude` layer patterns quantization and pruning share: compiled, matched, checked.

A pattern is searched (`re.search`) in a layer's path (`"encoder_0/ffn_outer"`) and in its
bare name (`"ffn_outer"`), so `"^ffn_outer$"` matches that layer in every encoder block.
Each pattern must match at least one of the layers the operation acts on: a typo or a
path from another model would otherwise exclude nothing and compress every layer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras

__all__ = ["check_patterns_match", "compile_exclude_patterns", "excluded_by"]


def compile_exclude_patterns(exclude: str | Sequence[str] | None) -> list[re.Pattern]:
    """Compiles the `exclude` regexes of `quantize_model` and the pruning functions.

    Args:
        exclude: one regex, a list of them, or None.

    Returns:
        The compiled patterns (empty for None).

    Raises:
        TypeError: if `exclude` is not a string or a list of strings.
        ValueError: if a regex does not compile.

    Example:
        >>> [p.pattern for p in compile_exclude_patterns("^head$")]
        ['^head$']
    """
    if exclude is None:
        return []
    patterns = [exclude] if isinstance(exclude, str) else exclude
    if not isinstance(patterns, Sequence) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(
            "`exclude` must be a regex string or a list of regex strings matched against "
            f"layer paths. Received: exclude={exclude!r}"
        )
    try:
        return [re.compile(p) for p in patterns]
    except re.error as err:
        raise ValueError(
            f"`exclude` holds an invalid regex ({err}). Received: exclude={exclude!r}"
        ) from None


def excluded_by(layer: keras.layers.Layer, pattern: re.Pattern) -> bool:
    """Whether `pattern` is found (`re.search`) in the layer's path or in its bare name.

    Args:
        layer: a layer of the model.
        pattern: one compiled `exclude` pattern.

    Returns:
        True if the pattern matches the path (`"encoder_0/ffn_outer"`) or the name
        (`"ffn_outer"`, which keeps anchored patterns such as `"^ffn_outer$"` excluding
        that layer in every block).

    Example:
        >>> excluded_by(model.get_layer("head"), re.compile("^head$"))
        True
    """
    return bool(pattern.search(layer.path or layer.name) or pattern.search(layer.name))


def check_patterns_match(
    candidates: Sequence[keras.layers.Layer],
    patterns: Sequence[re.Pattern],
    exclude: Any,
    kinds: str,
) -> None:
    """Refuses an `exclude` pattern that matches none of the layers it could exclude.

    Args:
        candidates: the layers the operation acts on when nothing is excluded. With none,
            nothing is checked (the caller says that there is nothing to act on).
        patterns: the compiled `exclude` patterns.
        exclude: `exclude` as the user gave it, quoted in the message.
        kinds: the kinds of layers in `candidates`, for the message (e.g. `"Dense,
            EinsumDense or Embedding layer"`).

    Raises:
        ValueError: naming the first pattern that matches no candidate, with the paths
            it could match.

    Example:
        >>> check_patterns_match(layers, compile_exclude_patterns("hed"), "hed", "Dense layer")
        Traceback (most recent call last):
        ValueError: `exclude` pattern 'hed' matches no Dense layer of `model`; ...
    """
    if not candidates:
        return
    for pattern in patterns:
        if any(excluded_by(layer, pattern) for layer in candidates):
            continue
        paths = [layer.path or layer.name for layer in candidates]
        shown = ", ".join(repr(path) for path in paths[:6])
        more = f", ... ({len(paths)} in all)" if len(paths) > 6 else ""
        raise ValueError(
            f"`exclude` pattern {pattern.pattern!r} matches no {kinds} of `model`; patterns "
            "are searched (`re.search`) in layer paths (and bare layer names), and the paths "
            f"it could match are: {shown}{more}. Received: exclude={exclude!r}"
        )
