"""`APIApp`: any predictor behind an HTTP API (FastAPI, served by uvicorn).

The app knows no task. It talks to the predictor only through its JSON hooks
(`ktlite.predictor.Predictor`): `json_input_schema()` describes one input in the OpenAPI
schema, `inputs_from_json(items)` checks a request's inputs at the edge, `predict_outputs`
runs a batch (one row per input) and `json_response(rows, **options)` builds each answer;
`metadata` is served at ``/metadata`` and ``/explain`` exists only if the predictor has an
``explain`` method and takes strings (its `json_input_schema()` is of type ``"string"``;
image explanations are called from Python). A bare `keras.Model` is served through
`ModelAdapter`.

Concurrent ``/predict`` requests are coalesced by a `DynamicBatcher` in one model thread;
explanations run in their own bounded thread so they never hold predictions back.
"""

import asyncio
import concurrent.futures
import contextlib
import gc
import importlib.metadata
import inspect
import json
import logging
import os
import platform
import re
import socket
import typing
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from ktlite.apps.batcher import DynamicBatcher, QueueFullError
from ktlite.arguments import (
    check_float,
    check_instance,
    check_int,
    check_positive_float,
    check_positive_int,
)
from ktlite.predictor import to_json
from ktlite.text_inputs import is_valid_unicode

try:
    import pydantic
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "ktlite.apps needs FastAPI and uvicorn, which ktlite's core does not install. "
        "Install them with: pip install 'ktlite[serve]'"
    ) from _error

logger = logging.getLogger(__name__)
# uvicorn configures this logger's handlers, so start-up messages reach the console.
_server_log = logging.getLogger("uvicorn.error")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The app's own endpoints read JSON whatever the Content-Type says (curl -d sends form
# encoding); routes a user adds to `app.fastapi` keep theirs.
_JSON_PATHS = frozenset({"/predict", "/explain"})
_RETRY_AFTER_S = 1
_MAX_LISTED_ERRORS = 20  # validation errors listed in one 422 answer
# Quoted from a request in an error: a dict key (a key can be as long as the body), and a
# whole path to a value (JSON nests up to ~1000 deep).
_MAX_KEY_CHARS = 40
_MAX_PATH_CHARS = 200
# Words as the text explainer counts them: each CJK ideograph, each run of other letters or
# digits, each punctuation mark.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


class ExplainRequest(pydantic.BaseModel):
    """Body of ``POST /explain``."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    text: str = pydantic.Field(min_length=1, description="The text to explain.")
    top_k: int = pydantic.Field(default=10, ge=1, le=1000, description="Words to rank.")
    target: int | None = pydantic.Field(
        default=None,
        ge=0,
        description="Output column to explain: a class index (default: the predicted class) "
        "or, for a regression model with several outputs (where it is required), the output.",
    )


class PredictResponse(pydantic.BaseModel):
    """Answer of ``POST /predict``: one prediction per input, in order, plus what the
    predictor's options add (classifiers: ``probabilities`` and ``classes``)."""

    model_config = pydantic.ConfigDict(extra="allow")

    predictions: list[Any] = pydantic.Field(description="One result per input, in order.")


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _summarise_validation(errors: Sequence[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(item) for item in error.get("loc", ()) if item != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts)


def _key_step(key: str) -> str:
    """A dict key as a path step: quoted by `repr`, which escapes a lone surrogate (so the
    answer can be encoded), and cut to `_MAX_KEY_CHARS` characters (a key can be as long as
    the body)."""
    if len(key) > _MAX_KEY_CHARS:
        return f"[{key[:_MAX_KEY_CHARS]!r}...]"
    return f"[{key!r}]"


def _loc_part(part: Any) -> Any:
    """A step of a validation error's ``loc`` fit to quote: a str cut to `_MAX_KEY_CHARS`
    characters, with anything UTF-8 cannot encode escaped."""
    if not isinstance(part, str):
        return part
    if len(part) > _MAX_KEY_CHARS:
        part = part[:_MAX_KEY_CHARS] + "..."
    return part if is_valid_unicode(part) else part.encode("utf-8", "backslashreplace").decode()


def _render_path(node: tuple[Any, Any]) -> str:
    """The path of a `_bad_string` node, cut to `_MAX_PATH_CHARS` characters."""
    steps = []
    while node[0] is not None:
        node, step = node
        steps.append(f"[{step}]" if isinstance(step, int) else _key_step(step))
    path = node[1] + "".join(reversed(steps))
    if len(path) > _MAX_PATH_CHARS:  # nested ~1000 deep: keep both ends, the bad end last
        half = _MAX_PATH_CHARS // 2
        path = f"{path[:half]}...{path[-half:]}"
    return path


def _bad_string(value: Any, where: str) -> str | None:
    """Names the first string in a JSON value, key or value, that is not valid Unicode text
    (a lone surrogate such as ``"\\ud800"``, which JSON escapes allow but UTF-8 cannot
    encode), as a path from `where` fit to quote (escaped, capped); None if there is none.

    Iterative, with each path kept as a (parent, step) pair and rendered only for the string
    it names, so a body nested as deep as the JSON parser allows, or holding 500,000 items,
    costs no recursion and no string per item.
    """
    stack: list[tuple[Any, tuple[Any, Any]]] = [(value, (None, where))]
    while stack:
        item, node = stack.pop()
        if isinstance(item, str):
            if not is_valid_unicode(item):
                return f"`{_render_path(node)}`"
        elif isinstance(item, dict):
            for key in item:
                if not is_valid_unicode(key):
                    return f"`{_render_path((node, key))}` (an object key)"
            stack.extend((child, (node, key)) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((item[i], (node, i)) for i in range(len(item) - 1, -1, -1))
    return None


def _refuse_bad_strings(value: Any, where: str) -> None:
    found = _bad_string(value, where)
    if found:
        raise HTTPException(
            status_code=422,
            detail=f"{found} is not valid Unicode text (it holds a lone surrogate such as "
            "\\ud800, which has no UTF-8 encoding).",
        )


def _example(schema: dict[str, Any]) -> Any:
    """A small input that fits a JSON schema, for the start-up warm-up; None if unknown."""
    if schema.get("examples"):
        return schema["examples"][0]
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. a tabular column: ["number", "null"]
        for one in kind:
            example = None if one == "null" else _example({**schema, "type": one})
            if example is not None:
                return example
        return None
    if kind == "string":
        return "warm-up"
    if kind in ("number", "integer"):
        return 0
    if kind == "boolean":
        return False
    if kind == "array" and isinstance(schema.get("items"), dict):
        item = _example(schema["items"])
        return None if item is None else [item] * max(1, schema.get("minItems", 1))
    if kind == "object" and isinstance(schema.get("properties"), dict):
        values = {key: _example(sub) for key, sub in schema["properties"].items()}
        return None if any(v is None for v in values.values()) else values
    return None


def _response_options(predictor: Any) -> dict[str, tuple[Any, Any]]:
    """The keyword options of `predictor.json_response` as pydantic fields (type, default)."""
    method = predictor.json_response
    hints = typing.get_type_hints(method)
    options = {}
    for name, parameter in list(inspect.signature(method).parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        options[name] = (hints.get(name, Any), default)
    return options


class _PredictBody(pydantic.BaseModel):
    """Base of the ``POST /predict`` body models `_request_model` builds per predictor."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    text_alias: typing.ClassVar[bool] = False
    option_names: typing.ClassVar[tuple[str, ...]] = ()

    @pydantic.model_validator(mode="before")
    @classmethod
    def _one_list(cls, data: Any) -> Any:
        # Before the fields: a body such as {"text": ...} is told what it lacks, not only
        # that "text" is an unknown field.
        if cls.text_alias and isinstance(data, dict) and sum(
            data.get(key) is not None for key in ("inputs", "texts")
        ) != 1:
            raise ValueError("send exactly one of `inputs` and `texts`")
        return data

    def input_field(self) -> str:
        """The field that carried the request's inputs: `inputs`, or `texts`."""
        return "inputs" if self.inputs is not None else "texts"

    def input_list(self) -> list[Any]:
        """The request's inputs, whichever field carried them."""
        return getattr(self, self.input_field())

    def options(self) -> dict[str, Any]:
        """The request's options for `json_response`."""
        return {name: getattr(self, name) for name in self.option_names}


def _request_model(predictor: Any, max_inputs: int) -> type[_PredictBody]:
    """The body model of ``POST /predict`` for this predictor.

    ``inputs`` holds items of `json_input_schema()`; a predictor whose input is a string also
    accepts them under ``texts`` (ktlite 0.1's field). The options are `json_response`'s
    keyword arguments.
    """
    schema = predictor.json_input_schema() or {}
    item = Annotated[Any, pydantic.WithJsonSchema(schema)]
    description = f"The inputs to predict (1 to {max_inputs})."
    text_alias = schema.get("type") == "string"
    fields: dict[str, Any] = {}
    if text_alias:
        fields["inputs"] = (
            list[item] | None, pydantic.Field(None, min_length=1, description=description)
        )
        fields["texts"] = (
            list[item] | None,
            pydantic.Field(None, min_length=1, description="Same as `inputs` (ktlite 0.1's)."),
        )
    else:
        fields["inputs"] = (list[item], pydantic.Field(min_length=1, description=description))
    options = _response_options(predictor)
    model = pydantic.create_model(
        "PredictRequest", __base__=_PredictBody, __doc__="Body of ``POST /predict``.",
        **fields, **options,
    )
    model.text_alias = text_alias
    model.option_names = tuple(options)
    return model


class APIApp:
    """Serves any predictor over HTTP, with dynamic batching and bounded resources.

    The object is a standard ASGI application: run it with `run` (uvicorn), with the
    ``ktlite serve`` command, or under any ASGI server. The underlying FastAPI app is
    ``app.fastapi`` if you want to add routes or middleware.

    Endpoints:
        - ``POST /predict`` ``{"inputs": [...], ...options}`` -> the predictor's
          ``json_response``: ``{"predictions": [...]}`` (classifiers: the option
          ``return_proba`` adds ``probabilities`` and ``classes``). Predictors whose input is
          a string also take ``{"texts": [...]}``.
        - ``POST /explain`` ``{"text": "...", "top_k": 10, "target": null}`` -> the
          predictor's ``explain(text, top_k=...)`` as JSON (``target=...`` added when the
          body sets it: a class index, or the output of a multi-output regression model);
          only if the predictor has ``explain`` and takes strings (image occlusion maps are
          called from Python).
        - ``GET /health`` -> ``{"status": "ok"}`` plus counters (``pending_inputs``,
          ``model_calls``, ``inputs_predicted``, ``dropped_requests``).
        - ``GET /metadata`` -> the predictor's ``metadata``, the limits and versions.
        - ``GET /openapi.json`` (schema, with the predictor's input schema) and ``GET /docs``.

    Bad input gets a 4xx answer with a ``detail`` message and never affects other requests;
    it is checked at the edge, before batching: malformed JSON or a body that is not UTF-8
    -> 400; wrong types, unknown fields, an input the predictor refuses (``inputs_from_json``),
    a string (value or object key) that is not valid Unicode, an explanation text without
    words -> 422; more than `max_inputs` inputs, a body over `max_body_bytes` or an
    explanation over `max_explain_chars` characters or `max_explain_words` words -> 413; a
    body not received within `body_timeout_s` -> 408. The body is read as JSON whatever its
    Content-Type. Overload: when `max_pending` inputs already wait, or `max_explains`
    explanations run or wait, the answer is 503 with ``Retry-After: 1``. Each batch serves
    the requests served least so far first, so a small request is not held behind large
    ones; a request whose client disconnects is dropped from the queue. No endpoint reads a
    file path from a request.

    Args:
        predictor_or_path: a predictor (a `ktlite.predictor.Predictor` or an object with
            the same hooks: ``predict_outputs``, ``json_response``, ``json_input_schema``,
            ``inputs_from_json``, ``metadata``), the folder of a saved predictor (loaded with
            `ktlite.load_predictor`), or a bare `keras.Model` with `input_shape`.
        input_shape: for a bare `keras.Model` only: the shape of one input without the batch
            dimension; each input is then a JSON nested list of that shape (see
            `ktlite.apps.model_adapter.ModelAdapter`).
        max_batch_size: most inputs per model call. Default 32; 1 turns batching off.
        max_wait_ms: longest time the oldest waiting request is held back to fill a batch, in
            milliseconds. Default 5.
        max_inputs: most inputs in one ``/predict`` request. Default 1024.
        max_body_bytes: largest request body accepted, in bytes. Default 1 MiB (1,048,576).
        max_pending: most inputs waiting for the model at once. Default 8192.
        max_explain_words: most words in an ``/explain`` text (counted like the text
            explainer: runs of letters or digits, punctuation marks, CJK ideographs). Default
            1000.
        max_explain_chars: most characters in an ``/explain`` text. Default 20,000. The
            explainer makes a copy of the text for each word it scores, so a text of long
            words costs memory and time by its characters, not only its words.
        max_explains: most explanations running or waiting at once. Default 2.
        body_timeout_s: longest time to receive a request body, in seconds. Default 10.

    Raises:
        ValueError: if a limit is not positive (`max_wait_ms` negative) or not finite,
            `max_pending < max_inputs`, or `input_shape` is given without a `keras.Model`
            (or is missing for one).
        TypeError: if `predictor_or_path` is neither a path, a `keras.Model` nor an object
            with the predictor hooks, a count limit is not an int, or `max_wait_ms` /
            `body_timeout_s` is not a number (`"5"`, `True`).
        FileNotFoundError: if `predictor_or_path` is a path with no saved predictor.

    Example:
        >>> from ktlite.apps import APIApp
        >>> app = APIApp("my_predictor", max_batch_size=32, max_wait_ms=5)
        >>> app.run(host="127.0.0.1", port=8000)  # POST /predict {"inputs": ["a text"]}
        >>> APIApp(keras_model, input_shape=(16,)).run()  # POST {"inputs": [[1, 5, ...]]}
    """

    def __init__(
        self,
        predictor_or_path: Any,
        input_shape: Any = None,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_inputs: int = 1024,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_pending: int = 8192,
        max_explain_words: int = 1000,
        max_explain_chars: int = 20_000,
        max_explains: int = 2,
        body_timeout_s: float = 10.0,
    ) -> None:
        self.max_batch_size = check_positive_int(max_batch_size, "max_batch_size")
        self.max_inputs = check_positive_int(max_inputs, "max_inputs")
        self.max_body_bytes = check_positive_int(max_body_bytes, "max_body_bytes")
        self.max_pending = check_positive_int(max_pending, "max_pending")
        self.max_explain_words = check_positive_int(max_explain_words, "max_explain_words")
        self.max_explain_chars = check_positive_int(max_explain_chars, "max_explain_chars")
        self.max_explains = check_positive_int(max_explains, "max_explains")
        self.body_timeout_s = check_positive_float(body_timeout_s, "body_timeout_s")
        self.max_wait_ms = check_float(max_wait_ms, "max_wait_ms", low=0.0)
        if self.max_pending < self.max_inputs:
            raise ValueError(
                "`max_pending` must be at least `max_inputs` (else a full request never fits). "
                f"Received: max_pending={max_pending!r}, max_inputs={max_inputs!r}"
            )
        self.predictor = _as_predictor(predictor_or_path, input_shape)
        # One thread runs the batches, so `predict_outputs` is never entered concurrently;
        # explanations have their own thread so they never hold predictions back.
        self._model_thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ktlite-model"
        )
        self._explain_thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ktlite-explain"
        )
        self._explains = 0  # running or waiting, checked and changed on the event loop only
        self.batcher = DynamicBatcher(
            self._predict_rows,
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            executor=self._model_thread,
            max_pending=self.max_pending,
        )
        self.metadata = self._build_metadata()
        self.fastapi = self._build_fastapi()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """ASGI entry point: reads the body within the limits, then hands over to FastAPI."""
        if scope["type"] == "http" and scope.get("method") in _BODY_METHODS:
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
            if scope.get("path") in _JSON_PATHS:
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as error:  # FastAPI would say only "error parsing"
                    await _send_json(send, 400, {
                        "detail": "Malformed JSON body: it must be UTF-8 text, but byte "
                        f"{error.start} is not valid UTF-8 (e.g. Latin-1 text sent as is)."
                    })
                    return
                problem = _json_problem(body)
                if problem:  # FastAPI would say only "There was an error parsing the body"
                    await _send_json(send, 400, {"detail": f"Malformed JSON body: {problem}."})
                    return
                headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.fastapi(scope, receive, send)

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        header_timeout_s: float = 10.0,
        **uvicorn_kwargs: Any,
    ) -> None:
        """Serves the app with uvicorn until interrupted (Ctrl+C).

        Slow clients are cut off: a connection that has not sent a request's complete
        headers within `header_timeout_s` is closed, an idle keep-alive connection after
        ``timeout_keep_alive`` (default 5 s), and past ``limit_concurrency`` (default 256)
        open connections or requests uvicorn answers 503. Bodies are bounded by the app's
        `body_timeout_s`.

        Args:
            host: interface to bind. Default ``"127.0.0.1"`` (this machine only); pass
                ``"0.0.0.0"`` to accept connections from other machines.
            port: TCP port. Default 8000.
            header_timeout_s: longest time to receive a request's headers. Default 10 s.
            **uvicorn_kwargs: passed to ``uvicorn.run`` (e.g. ``log_level="warning"``,
                ``limit_concurrency=512``).

        Raises:
            ImportError: if uvicorn is not installed.
            TypeError: if `host` is not a str, `port` not an int or `header_timeout_s` not
                a number (`"8000"`, `True`), or an option is not one of ``uvicorn.run``'s.
            ValueError: if `port` is not in 0..65535, `host` is empty or
                `header_timeout_s` is not a positive finite number.
            OSError: if nothing can listen on `host`:`port` (an unknown host, a port in
                use), with the address named.

        Example:
            >>> APIApp("my_predictor").run(port=8080)
        """
        port = _check_address(host, port)
        header_timeout_s = check_positive_float(header_timeout_s, "header_timeout_s")
        uvicorn = import_uvicorn()
        _check_uvicorn_options(uvicorn_kwargs, own={"header_timeout_s"})
        _check_can_listen(host, port, uvicorn_kwargs)
        from ktlite.apps.server import header_timeout_protocol

        settings = {"timeout_keep_alive": 5, "limit_concurrency": 256, **uvicorn_kwargs}
        settings.setdefault("http", header_timeout_protocol(header_timeout_s))
        uvicorn.run(self, host=host, port=port, **settings)

    async def warm_up(self) -> None:
        """Prepares the process for serving; called on server start-up (ASGI lifespan).

        Runs the model once on an input built from the predictor's `json_input_schema` (if
        the schema allows one), so the first request does not pay for tracing and a model
        that cannot predict fails the start-up instead of every request. Then moves every
        object alive at that point (the model, TensorFlow, the web stack) out of the cyclic
        garbage collector's reach with `gc.freeze`: otherwise each full collection walks
        those ~400,000 objects while holding the GIL, stalling every in-flight request for
        0.3-1 s on 2 cores (measured: p99 latency 1.1 s without, 0.29 s with, under load).

        Raises:
            Exception: whatever the predictor raised on the warm-up input, failing start-up.

        Example:
            >>> app = APIApp("my_predictor")
            >>> await app.warm_up()  # inside a coroutine; `run()` does it on start-up
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        example = _example(self.predictor.json_input_schema() or {})
        if example is not None:
            await loop.run_in_executor(self._model_thread, self._predict_rows, [example])
        gc.collect()
        gc.freeze()
        _server_log.info(
            "ktlite: %s ready in %.1f s (max_batch_size=%d, max_wait_ms=%g)",
            self.metadata.get("predictor"), loop.time() - start, self.max_batch_size,
            self.max_wait_ms,
        )

    def _predict_rows(self, items: list[Any]) -> Any:
        """The batched model call (model thread): JSON inputs -> one row per input."""
        return self.predictor.predict_outputs(self.predictor.inputs_from_json(items))

    async def _read_body(self, scope: dict, receive: Any, send: Any) -> bytes | None:
        """Reads the whole body within `max_body_bytes` and `body_timeout_s`; else answers
        413 / 408 and returns None (None too if the client went away)."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "Invalid Content-Length header."})
                    return None
                if declared > self.max_body_bytes:
                    await self._send_too_large(send, declared)
                    return None
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except asyncio.TimeoutError:
                detail = f"Request body not received within body_timeout_s={self.body_timeout_s:g}."
                await _send_json(send, 408, {"detail": detail})
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._send_too_large(send, size)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _send_too_large(self, send: Any, size: int) -> None:
        await _send_json(
            send,
            413,
            {
                "detail": f"Request body too large: {size} bytes (or more) received, "
                f"max_body_bytes={self.max_body_bytes}."
            },
        )

    def _build_metadata(self) -> dict[str, Any]:
        import ktlite

        return to_json({
            **self.predictor.metadata,
            "limits": {
                "max_batch_size": self.max_batch_size,
                "max_wait_ms": self.max_wait_ms,
                "max_inputs": self.max_inputs,
                "max_body_bytes": self.max_body_bytes,
                "max_pending": self.max_pending,
                "max_explain_words": self.max_explain_words,
                "max_explain_chars": self.max_explain_chars,
                "max_explains": self.max_explains,
                "body_timeout_s": self.body_timeout_s,
            },
            "server_versions": {
                "ktlite": ktlite.__version__,
                "fastapi": _dist_version("fastapi"),
                "uvicorn": _dist_version("uvicorn"),
                "python": platform.python_version(),
            },
        })

    def _build_fastapi(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.warm_up()
            yield
            await self.batcher.aclose()
            gc.unfreeze()  # hand the objects back to the collector (tests, notebooks)

        api = FastAPI(
            title="ktlite predictor",
            description=f"Predictions from {self.metadata.get('predictor')}, dynamically "
            "batched.",
            version=self.metadata["server_versions"]["ktlite"],
            lifespan=lifespan,
        )

        @api.exception_handler(RequestValidationError)
        async def on_invalid(_, error: RequestValidationError) -> JSONResponse:
            # The offending input is not echoed back: it can be up to max_body_bytes long.
            errors = [
                {key: value for key, value in item.items() if key in ("type", "loc", "msg")}
                for item in jsonable_encoder(error.errors())
            ]
            # Nor is an unknown field's name in full: `loc` holds it, and it can be as long as
            # the body.
            for item in errors:
                item["loc"] = [_loc_part(part) for part in item.get("loc", ())]
            status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
            prefix = "Malformed JSON body" if status == 400 else "Invalid request"
            content = {"detail": f"{prefix}: {_summarise_validation(errors)}",
                       "errors": errors[:_MAX_LISTED_ERRORS]}
            if len(errors) > _MAX_LISTED_ERRORS:  # a body can hold 100,000 bad keys
                content["errors_left_out"] = len(errors) - _MAX_LISTED_ERRORS
            return JSONResponse(status_code=status, content=content)

        @api.get("/health", summary="Liveness check and batching counters")
        async def health() -> dict[str, Any]:
            return {
                "status": "ok",
                "pending_inputs": self.batcher.pending,
                "model_calls": self.batcher.num_calls,
                "inputs_predicted": self.batcher.num_items,
                "dropped_requests": self.batcher.num_dropped,
            }

        @api.get("/metadata", summary="The predictor's task facts, the limits and versions")
        async def metadata() -> dict[str, Any]:
            return self.metadata

        request_model = _request_model(self.predictor, self.max_inputs)

        @api.post(
            "/predict",
            response_model=PredictResponse,
            summary="Predict for a list of inputs",
            responses={
                413: {"description": "Too many inputs or body too large"},
                503: {"description": "Queue full; retry after the Retry-After header"},
            },
        )
        async def predict(body: request_model, request: Request) -> dict[str, Any]:
            items = body.input_list()
            if len(items) > self.max_inputs:
                raise HTTPException(
                    status_code=413,
                    detail=f"Too many inputs: received {len(items)}, max_inputs="
                    f"{self.max_inputs}. Split the request.",
                )
            _refuse_bad_strings(items, body.input_field())
            try:
                # Off the event loop: decoding uploads (base64 images) takes a while, and
                # other requests must go on meanwhile.
                await asyncio.to_thread(self.predictor.inputs_from_json, items)
            except (TypeError, ValueError) as error:
                raise HTTPException(status_code=422, detail=f"Invalid inputs: {error}") from None
            rows = await self._submit(items, request)
            try:
                return self.predictor.json_response(rows, **body.options())
            except (TypeError, ValueError) as error:
                raise HTTPException(status_code=422, detail=str(error)) from None

        # The /explain body is a text and the explainer counts its words, so it is served for
        # predictors that take strings; other explanations (e.g. image occlusion maps) are
        # called from Python.
        takes_text = (self.predictor.json_input_schema() or {}).get("type") == "string"
        if takes_text and callable(getattr(self.predictor, "explain", None)):
            self._add_explain(api)
        return api

    async def _submit(self, items: list[Any], request: Request) -> Any:
        """Queues `items`; drops them if the client disconnects before they are run."""
        job = asyncio.ensure_future(self.batcher.submit(items))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            # Here, not after: a handler cancelled while it waits (server shutdown, a
            # timeout around the app) must take its queued inputs with it.
            abandoned = not job.done()
            if abandoned:
                job.cancel()
        if abandoned:
            raise HTTPException(status_code=499, detail="The client closed the request.")
        try:
            return job.result()
        except QueueFullError as error:
            raise HTTPException(
                status_code=503, detail=f"{error} Retry later.",
                headers={"Retry-After": str(_RETRY_AFTER_S)},
            ) from None
        except Exception:  # noqa: BLE001 - logged here, the client gets a clean 500
            logger.exception("Prediction failed for a request of %d inputs.", len(items))
            raise HTTPException(
                status_code=500, detail="The model failed on this request; see the server log."
            ) from None

    def _add_explain(self, api: FastAPI) -> None:
        @api.post(
            "/explain",
            summary="Why the predictor predicts what it does for one text",
            responses={
                413: {"description": "Text over max_explain_chars characters or "
                      "max_explain_words words"},
                503: {"description": "Too many explanations at once; retry later"},
            },
        )
        async def explain(request: ExplainRequest) -> dict[str, Any]:
            # Before the words are counted: counting scans the whole text.
            if len(request.text) > self.max_explain_chars:
                raise HTTPException(
                    status_code=413,
                    detail=f"`text` has {len(request.text)} characters; max_explain_chars="
                    f"{self.max_explain_chars}. Explain a shorter text.",
                )
            _refuse_bad_strings(request.text, "text")
            words = len(_WORD.findall(request.text))
            if words == 0:
                raise HTTPException(
                    status_code=422, detail="`text` has no words to explain (only whitespace)."
                )
            if words > self.max_explain_words:
                raise HTTPException(
                    status_code=413,
                    detail=f"`text` has {words} words; max_explain_words="
                    f"{self.max_explain_words}. Explain a shorter text.",
                )
            if self._explains >= self.max_explains:
                raise HTTPException(
                    status_code=503,
                    detail=f"{self._explains} explanations are running or waiting "
                    f"(max_explains={self.max_explains}). Retry later.",
                    headers={"Retry-After": str(_RETRY_AFTER_S)},
                )
            self._explains += 1
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    self._explain_thread, self._explain, request.text, request.top_k,
                    request.target,
                )
            except (TypeError, ValueError) as error:
                raise HTTPException(status_code=422, detail=str(error)) from None
            except Exception:  # noqa: BLE001 - logged here, the client gets a clean 500
                logger.exception("Explanation failed.")
                raise HTTPException(
                    status_code=500, detail="The explanation failed; see the server log."
                ) from None
            finally:
                self._explains -= 1
            return result

    def _explain(self, text: str, top_k: int, target: int | None) -> dict[str, Any]:
        # Passed only when set, so predictors whose `explain` has no `target` still serve.
        options = {} if target is None else {"target": target}
        result = self.predictor.explain(text, top_k=top_k, **options)
        return to_json(result.to_dict() if hasattr(result, "to_dict") else result)


_HOOKS = ("predict_outputs", "json_response", "json_input_schema", "inputs_from_json")


def _as_predictor(predictor_or_path: Any, input_shape: Any) -> Any:
    """A path -> the loaded predictor; a keras.Model -> a ModelAdapter; a predictor as is."""
    import keras

    if isinstance(predictor_or_path, keras.Model):
        if input_shape is None:
            raise ValueError(
                "`input_shape` is needed to serve a bare keras.Model (the shape of one input, "
                "without the batch dimension, e.g. input_shape=(16,)). Received: input_shape=None"
            )
        from ktlite.apps.model_adapter import ModelAdapter

        return ModelAdapter(predictor_or_path, input_shape)
    if input_shape is not None:
        raise ValueError(
            "`input_shape` applies to a bare keras.Model only; a predictor knows its inputs. "
            f"Received: input_shape={input_shape!r}"
        )
    if isinstance(predictor_or_path, (str, os.PathLike)):
        from ktlite.predictor import load_predictor

        return load_predictor(predictor_or_path)
    missing = [name for name in _HOOKS if not callable(getattr(predictor_or_path, name, None))]
    if missing or not isinstance(getattr(predictor_or_path, "metadata", None), dict):
        raise TypeError(
            "`predictor_or_path` must be a ktlite predictor (with "
            f"{', '.join(_HOOKS)} and metadata), a keras.Model with `input_shape`, or the path "
            f"of a saved predictor. Received: predictor_or_path={predictor_or_path!r}"
        )
    return predictor_or_path


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the ASGI ``http.disconnect`` message)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that yields `body` once, then defers to the real one."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Any, status: int, content: dict[str, Any]) -> None:
    response = JSONResponse(status_code=status, content=content)
    await send(
        {"type": "http.response.start", "status": status, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


def import_uvicorn() -> Any:
    """Imports uvicorn, or raises an ImportError that says how to install it."""
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError(
            "Serving needs uvicorn, which ktlite's core does not install. "
            "Install it with: pip install 'ktlite[serve]'"
        ) from error
    return uvicorn


def _check_address(host: Any, port: Any) -> int:
    """Checks `host` (a non-empty str) and `port` (0..65535); returns the port."""
    check_instance(host, str, "host")
    if not host:
        raise ValueError(f"`host` must be a non-empty str. Received: host={host!r}")
    return check_int(port, "port", 0, 65535)


def _json_problem(body: bytes) -> str | None:
    """Why valid-looking JSON cannot be read, for what FastAPI answers without a reason (its
    parser's limits); `None` for a body that parses or whose syntax is wrong (FastAPI names
    the position of a syntax error itself).

    Example:
        >>> _json_problem(b"[" * 100000 + b"]" * 100000)
        "nested too deep (Python's recursion limit)"
    """
    try:
        json.loads(body)
    except json.JSONDecodeError:
        return None
    except RecursionError:
        return "nested too deep (Python's recursion limit)"
    except ValueError as error:  # an integer of over 4,300 digits
        return str(error).partition(";")[0]
    return None


def _check_uvicorn_options(options: dict[str, Any], own: set[str]) -> None:
    """Refuses options that ``uvicorn.run`` does not take (a misspelt limit), naming them.

    Args:
        options: the options left for ``uvicorn.run``.
        own: ktlite's own option names, listed in the error beside uvicorn's.

    Raises:
        TypeError: naming the unknown options and the known ones.

    Example:
        >>> _check_uvicorn_options({"log_level": "info"}, own={"header_timeout_s"})
    """
    parameters = inspect.signature(import_uvicorn().run).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # a `run` that takes any option (a wrapper): nothing to check against
    known = set(parameters) - {"app", "host", "port"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"Unknown server option(s) {', '.join(map(repr, unknown))}: expected ktlite's "
            f"{', '.join(sorted(own))} or an option of uvicorn.run "
            f"({', '.join(sorted(known))})."
        )


def _check_can_listen(host: str, port: int, uvicorn_kwargs: dict[str, Any]) -> None:
    """Binds `host`:`port` once and lets it go, so that an address the server could not
    listen on fails here, named, and not in uvicorn's log after the predictor loaded.

    Args:
        host: the interface, a name or an address.
        port: the TCP port (0: any free one).
        uvicorn_kwargs: the `uvicorn.run` options; with `uds=` or `fd=` uvicorn binds no
            host and port, and nothing is checked.

    Raises:
        OSError: naming the address, for a host that does not resolve or a port in use.

    Example:
        >>> _check_can_listen("127.0.0.1", 8000, {})
    """
    if {"uds", "fd"} & set(uvicorn_kwargs):
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: a port whose last connections are closing is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        raise OSError(f"`host` and `port` must be an address this machine can listen on "
                      f"({reason}). Received: host={host!r}, port={port}") from None


def serve(
    path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    **kwargs: Any,
) -> None:
    """Loads a saved predictor and serves it over HTTP until interrupted.

    This is what ``ktlite serve PREDICTOR_DIR`` runs. The server closes connections whose
    request headers take over 10 s (``header_timeout_s``) or bodies over 10 s
    (``body_timeout_s``), idle keep-alive connections after 5 s (``timeout_keep_alive``),
    and answers 503 past 256 open connections (``limit_concurrency``).

    Args:
        path: folder of a predictor saved with ``predictor.save(path)``.
        host: interface to bind. Default ``"127.0.0.1"`` (this machine only).
        port: TCP port. Default 8000.
        max_batch_size: most inputs per model call. Default 32; 1 turns batching off.
        max_wait_ms: longest wait to fill a batch, in milliseconds. Default 5.
        **kwargs: `APIApp` limits (``max_inputs``, ``max_body_bytes``, ``max_pending``,
            ``max_explain_words``, ``max_explain_chars``, ``max_explains``,
            ``body_timeout_s``), `APIApp.run`'s ``header_timeout_s`` and ``uvicorn.run``
            options (e.g. ``log_level``, ``limit_concurrency``, ``timeout_keep_alive``).

    Returns:
        None, once the server has stopped (Ctrl+C, or a signal that stops uvicorn).

    Raises:
        ImportError: if FastAPI or uvicorn is not installed.
        FileNotFoundError: if `path` holds no saved predictor.
        TypeError: if a limit, `host` or `port` has the wrong type (`port="8000"`), or an
            option is none of the above (checked before the predictor loads).
        ValueError: if a limit, `host` or `port` is out of range.
        OSError: if nothing can listen on `host`:`port` (an unknown host, a port in use),
            checked before the predictor loads.

    Example:
        >>> from ktlite.apps import serve
        >>> serve("my_predictor", port=8000)  # then: curl localhost:8000/health
    """
    app_keys = {
        "max_inputs", "max_body_bytes", "max_pending", "max_explain_words", "max_explain_chars",
        "max_explains", "body_timeout_s",
    }
    app_kwargs = {key: kwargs.pop(key) for key in app_keys & set(kwargs)}
    # Before the predictor loads: the address, and the names of the other options.
    _check_uvicorn_options(kwargs, own=app_keys | {"header_timeout_s"})
    _check_can_listen(host, _check_address(host, port), kwargs)
    app = APIApp(path, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, **app_kwargs)
    app.run(host=host, port=port, **kwargs)
