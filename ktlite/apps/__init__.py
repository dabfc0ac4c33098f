"""Predictors in apps: an HTTP service with dynamic batching, for any task.

Needs the ``serve`` extra (``pip install 'ktlite[serve]'``: FastAPI and uvicorn). Nothing here
is imported by ``import ktlite``; the web stack is loaded on first use of `APIApp` or `serve`,
with a clear ImportError if it is missing. `DynamicBatcher` needs only the standard library
and numpy; `ModelAdapter` serves a bare `keras.Model` on arrays.

Example:
    >>> from ktlite.apps import APIApp
    >>> app = APIApp("my_predictor")          # a standard ASGI app
    >>> app.run(host="127.0.0.1", port=8000)  # or: ktlite serve my_predictor
"""

from __future__ import annotations

from ktlite._lazy import lazy_attributes

_LAZY = {
    "APIApp": "ktlite.apps.api",
    "serve": "ktlite.apps.api",
    "DynamicBatcher": "ktlite.apps.batcher",
    "QueueFullError": "ktlite.apps.batcher",
    "ModelAdapter": "ktlite.apps.model_adapter",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
