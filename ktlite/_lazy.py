"""Package attributes imported on first use (PEP 562).

A task package lists the names whose modules pull in Keras models or TensorFlow graphs and
lets `lazy_attributes` make its module-level `__getattr__` and `__dir__`, so
`from ktlite import text` stays cheap until a model is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, namespace: dict[str, Any], table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's `__getattr__` and `__dir__` for names imported on first use.

    Args:
        package: The package's `__name__` (for the `AttributeError` message).
        namespace: The package's `globals()`; a loaded name is stored there, so the module
            is imported once, and its `__all__` is listed by `__dir__`.
        table: Name -> module that defines it.

    Returns:
        `(__getattr__, __dir__)`, to assign at the package's module level.

    Example:
        >>> __getattr__, __dir__ = lazy_attributes(
        ...     __name__, globals(), {"TextPredictor": "ktlite.text.predictor"})
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
