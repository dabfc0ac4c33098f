"""Dynamic batching: many concurrent small requests, few large model calls.

A web service receives requests one at a time, but a model is far cheaper per input when it
sees many inputs at once. `DynamicBatcher` sits between the two: request handlers ``await
batcher.submit(items)``, a single asyncio task gathers whatever is waiting into one batch
(up to `max_batch_size` inputs, waiting at most `max_wait_ms` after the oldest request
arrived), runs the model once in a worker thread so the event loop stays free, and hands each
caller exactly its own rows of the result. The inputs are opaque to the batcher (texts, rows
of features, JSON objects): it only slices and concatenates the callers' lists.

Fairness: each batch is filled with the requests that have been served least so far (fewest
inputs already taken), then the smallest, then the oldest. A new request has been served nothing, so
it rides in the very next batch even while large requests are queued; large requests advance
one batch-sized slice at a time, interleaved. The queue is capped (`max_pending`): a request
that would exceed it is refused at once with `QueueFullError`.

This module needs only the standard library and numpy (no web framework).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ktlite.arguments import check_float, check_positive_int

logger = logging.getLogger(__name__)

BatchFn = Callable[[list[Any]], Any]


class QueueFullError(RuntimeError):
    """Raised by `DynamicBatcher.submit` when the request would exceed `max_pending` inputs.

    Example:
        >>> batcher = DynamicBatcher(predictor.predict_outputs, max_pending=1024)
        >>> await batcher.submit(items)  # raises QueueFullError past 1,024 waiting inputs
    """


class _Job:
    """One caller's inputs, how far the worker has taken them, and the rows received so far."""

    __slots__ = ("items", "future", "arrival", "taken", "parts", "received")

    def __init__(self, items: list[Any], future: asyncio.Future, arrival: float) -> None:
        self.items = items
        self.future = future
        self.arrival = arrival
        self.taken = 0
        self.parts: list[tuple[int, np.ndarray]] = []
        self.received = 0

    @property
    def remaining(self) -> int:
        return len(self.items) - self.taken


class DynamicBatcher:
    """Coalesces concurrent prediction requests into bounded, fairly shared model calls.

    One asyncio task per event loop drains a queue of requests. A batch is closed as soon as
    the queue holds `max_batch_size` inputs or `max_wait_ms` milliseconds have passed since
    the oldest waiting request arrived, whichever comes first. While a batch runs in the
    worker thread, new requests queue up and form the next batch, so under load batches fill
    without waiting. Each batch takes first from the requests served least so far (then the
    smallest), so a small
    request never waits behind the rest of a large one; a request with more inputs than
    `max_batch_size` is spread over several batches and its rows are reassembled in order. If
    a batch holding several requests fails, each request is retried on its own so that one
    bad request cannot fail its neighbours. A caller that stops waiting (its task cancelled,
    e.g. because its client disconnected) is dropped: none of its remaining inputs are run.

    The batcher starts itself on the first `submit` inside a running event loop; call `aclose`
    on shutdown (the web app does this in its lifespan).

    Args:
        fn: the model call, ``fn(list_of_inputs) -> array-like`` with one row per input,
            e.g. ``predictor.predict_outputs``. Called from a single worker thread, never
            concurrently with itself.
        max_batch_size: most inputs in one model call. Default 32; 1 turns batching off.
        max_wait_ms: longest time, in milliseconds, the oldest waiting request is held back
            to let a batch fill. Default 5.0; 0 runs whatever is waiting at once.
        executor: the thread pool that runs `fn`. Default None: the batcher makes (and
            closes) its own single worker thread.
        max_pending: most inputs waiting at once (not yet taken into a batch). A `submit`
            that would exceed it raises `QueueFullError` at once. Default None: no cap.

    Raises:
        TypeError: if `fn` is not callable, `max_batch_size` or `max_pending` is not an
            int, or `max_wait_ms` is not a number (`"5"`, `True`).
        ValueError: if `max_batch_size` or `max_pending` is below 1, or `max_wait_ms` is
            negative or not finite.

    Example:
        >>> batcher = DynamicBatcher(predictor.predict_outputs, max_batch_size=32)
        >>> rows = await batcher.submit(["a text", "another text"])  # inside a coroutine
        >>> rows.shape  # (2, n_outputs)
    """

    def __init__(
        self,
        fn: BatchFn,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        executor: concurrent.futures.Executor | None = None,
        max_pending: int | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. Received: fn={fn!r}")
        self.fn = fn
        self.max_batch_size = check_positive_int(max_batch_size, "max_batch_size")
        self.max_wait_ms = check_float(max_wait_ms, "max_wait_ms", low=0.0)
        self.max_pending = check_positive_int(max_pending, "max_pending", allow_none=True)
        self.num_calls = 0
        self.num_items = 0
        self.num_dropped = 0
        self._queue: list[_Job] = []  # in arrival order
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = executor
        self._owns_executor = executor is None
        self._closing = False

    @property
    def pending(self) -> int:
        """Number of inputs waiting for a model call."""
        return sum(job.remaining for job in self._queue if not job.future.done())

    async def submit(self, items: Sequence[Any]) -> np.ndarray:
        """Queues `items` for the next batches and waits for their rows.

        Args:
            items: the caller's inputs (at least one), as `fn` takes them.

        Returns:
            A numpy array with one row per input, in the order given.

        Raises:
            ValueError: if `items` is empty.
            QueueFullError: if the queue cannot take `items` now (retry later).
            RuntimeError: if `aclose` is running (a `submit` after it returns starts the
                batcher again), or "the batcher was closed" if it closes while `items` wait.
            Exception: whatever the model call raised for this request.

        Example:
            >>> rows = await batcher.submit(["a text", "another text"])  # inside a coroutine
            >>> rows.shape  # (2, n_outputs)
        """
        items = list(items)
        if not items:
            raise ValueError(f"`items` must hold at least one input. Received: items={items!r}")
        if self._closing:
            # A worker started now would outlive `aclose`, which is tearing down the event,
            # queue and thread it runs on.
            raise RuntimeError(
                "The batcher is closing (`aclose` is running); submit after it returns to "
                "start the batcher again."
            )
        if self.max_pending is not None and self.pending + len(items) > self.max_pending:
            raise QueueFullError(
                f"The queue is full: {self.pending} inputs are waiting and this request adds "
                f"{len(items)} (max_pending={self.max_pending})."
            )
        self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(items, future, time.perf_counter()))
        self._arrived.set()
        return await future

    async def aclose(self) -> None:
        """Stops the worker task, fails requests still queued, and frees the worker thread.

        Requests still waiting get a `RuntimeError` ("the batcher was closed"); a `submit`
        made while this runs raises a `RuntimeError` at once. A thread pool passed as
        `executor` is left open; the batcher's own thread is shut down. A `submit` after this
        returns starts the batcher again.

        Example:
            >>> await batcher.aclose()  # inside a coroutine, e.g. on server shutdown
        """
        self._closing = True
        try:
            await self._stop_worker()
        finally:
            self._closing = False
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the batcher was closed"))
        self._queue.clear()
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._loop = None
        self._arrived = None

    async def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        if self._loop is not None and self._loop is not loop:
            # Bound to an earlier event loop (e.g. the app was served twice without a clean
            # shutdown): that loop's task and futures can no longer run, so start afresh.
            self._queue.clear()
        self._loop = loop
        self._arrived = asyncio.Event()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="ktlite-batcher"
            )
        self._worker = loop.create_task(self._run(), name="ktlite-dynamic-batcher")

    async def _run(self) -> None:
        while True:
            await self._wait_for_batch()
            batch = self._take_batch()
            if batch:
                await self._execute(batch)

    async def _wait_for_batch(self) -> None:
        """Returns once the queue holds a full batch or its oldest request waited long enough."""
        while True:
            self._drop_abandoned()
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if self.pending >= self.max_batch_size:
                return
            deadline = self._queue[0].arrival + self.max_wait_ms / 1000.0
            timeout = deadline - time.perf_counter()
            if timeout <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except asyncio.TimeoutError:
                return

    def _drop_abandoned(self) -> None:
        """Forgets requests whose caller gave up (client gone, handler cancelled)."""
        kept = [job for job in self._queue if not job.future.done()]
        self.num_dropped += len(self._queue) - len(kept)
        self._queue = kept

    def _take_batch(self) -> list[tuple[_Job, int, int]]:
        """Takes up to `max_batch_size` inputs as ``(job, start, stop)`` slices: requests
        served least first, then the smallest, then the oldest."""
        self._drop_abandoned()
        batch: list[tuple[_Job, int, int]] = []
        room = self.max_batch_size
        for job in sorted(self._queue, key=lambda j: (j.taken, j.remaining)):  # stable
            if not room:
                break
            take = min(room, job.remaining)
            batch.append((job, job.taken, job.taken + take))
            job.taken += take
            room -= take
        self._queue = [job for job in self._queue if job.remaining]
        return batch

    async def _execute(self, batch: list[tuple[_Job, int, int]]) -> None:
        items = [item for job, start, stop in batch for item in job.items[start:stop]]
        try:
            rows = await self._call(items)
        except asyncio.CancelledError:
            for job, _, _ in batch:
                self._fail(job, RuntimeError("the batcher was closed"))
            raise
        except Exception as error:  # noqa: BLE001 - routed to the callers, never lost
            jobs = list(dict.fromkeys(job for job, _, _ in batch))
            if len(jobs) == 1:
                self._fail(jobs[0], error)
                return
            logger.warning(
                "A batch of %d requests failed (%s: %s); retrying each request alone.",
                len(jobs), type(error).__name__, error,
            )
            for job, start, stop in batch:
                await self._execute([(job, start, stop)])
            return
        offset = 0
        for job, start, stop in batch:
            part = rows[offset: offset + stop - start]
            offset += stop - start
            try:
                self._deliver(job, start, part)
            except Exception as error:  # noqa: BLE001 - one caller's failure, not the worker's
                self._fail(job, error)

    async def _call(self, items: list[Any]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._executor, self.fn, items)
        rows = np.asarray(rows)
        if rows.ndim == 0 or rows.shape[0] != len(items):
            raise RuntimeError(
                f"The model call returned {rows.shape[0] if rows.ndim else 'a scalar'} rows for "
                f"{len(items)} inputs; `fn` must return one row per input."
            )
        self.num_calls += 1
        self.num_items += len(items)
        return rows

    def _deliver(self, job: _Job, start: int, part: np.ndarray) -> None:
        if job.future.done():
            return
        job.parts.append((start, part))
        job.received += len(part)
        if job.received == len(job.items):
            job.parts.sort(key=lambda item: item[0])
            parts = [p for _, p in job.parts]
            try:
                rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
            except ValueError as error:
                raise RuntimeError(
                    f"The rows of the {len(parts)} model calls that ran this request's inputs "
                    f"cannot be joined ({error}); `fn` must return rows of one shape whatever "
                    "the batch."
                ) from error
            job.future.set_result(rows)

    def _fail(self, job: _Job, error: BaseException) -> None:
        if not job.future.done():
            job.future.set_exception(error)
        if job in self._queue:
            self._queue.remove(job)  # the rest of a long request would be wasted work
