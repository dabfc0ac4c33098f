"""Dynamic batching: many concurrent small requests, few large model calls.

A web service receives requests one at a time, but a model is far cheaper per text when it
sees many texts at once. `DynamicBatcher` sits between the two: request handlers ``await
batcher.submit(texts)``, a single asyncio task gathers whatever is waiting into one batch
(up to `max_batch_size` texts, waiting at most `max_wait_ms` after the oldest request arrived),
runs the model once in a worker thread so the event loop stays free, and hands each caller
exactly its own rows of the result.

This module needs only the standard library and numpy (no web framework).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BatchFn = Callable[[list[str]], Any]


class _Job:
    """One caller's texts, how far the worker has taken them, and the rows received so far."""

    __slots__ = ("texts", "future", "arrival", "taken", "parts", "received")

    def __init__(self, texts: list[str], future: asyncio.Future, arrival: float) -> None:
        self.texts = texts
        self.future = future
        self.arrival = arrival
        self.taken = 0
        self.parts: list[tuple[int, np.ndarray]] = []
        self.received = 0

    @property
    def remaining(self) -> int:
        return len(self.texts) - self.taken


class DynamicBatcher:
    """Coalesces concurrent prediction requests into bounded model calls.

    One asyncio task per event loop drains a queue of requests. A batch is closed as soon as
    it holds `max_batch_size` texts or `max_wait_ms` milliseconds have passed since the oldest
    waiting request arrived, whichever comes first. While a batch runs in the worker thread,
    new requests queue up and form the next batch, so under load batches fill without waiting.
    A request with more texts than `max_batch_size` is spread over consecutive batches and its
    rows are reassembled in order. If a batch holding several requests fails, each request is
    retried on its own so that one bad request cannot fail its neighbours.

    The batcher starts itself on the first `submit` inside a running event loop; call `aclose`
    on shutdown (the web app does this in its lifespan).

    Args:
        fn: the model call, ``fn(list_of_texts) -> array-like`` with one row per text, e.g.
            ``predictor.predict_proba``. Called from a single worker thread, never
            concurrently with itself.
        max_batch_size: most texts in one model call. Default 32; 1 turns batching off.
        max_wait_ms: longest time, in milliseconds, the oldest waiting request is held back
            to let a batch fill. Default 5.0; 0 runs whatever is waiting at once.
        executor: the thread pool that runs `fn`. Default None: the batcher makes (and
            closes) its own single worker thread. Pass a shared single-thread executor to
            serialise `fn` with other model work (the app does this for explanations).

    Raises:
        TypeError: if `fn` is not callable.
        ValueError: if `max_batch_size` is not a positive int or `max_wait_ms` is negative.

    Example:
        >>> batcher = DynamicBatcher(predictor.predict_proba, max_batch_size=32)
        >>> probs = await batcher.submit(["a text", "another text"])  # inside a coroutine
        >>> probs.shape  # (2, n_classes)
    """

    def __init__(
        self,
        fn: BatchFn,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. Received: fn={fn!r}")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or (
            max_batch_size < 1
        ):
            raise ValueError(
                "`max_batch_size` must be a positive int. "
                f"Received: max_batch_size={max_batch_size!r}"
            )
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or not (
            0 <= max_wait_ms < float("inf")
        ):
            raise ValueError(
                "`max_wait_ms` must be a finite number >= 0. "
                f"Received: max_wait_ms={max_wait_ms!r}"
            )
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_ms = float(max_wait_ms)
        self.num_calls = 0
        self.num_texts = 0
        self._queue: collections.deque[_Job] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = executor
        self._owns_executor = executor is None

    @property
    def pending(self) -> int:
        """Number of texts waiting for a model call."""
        return sum(job.remaining for job in self._queue)

    async def submit(self, texts: Sequence[str]) -> np.ndarray:
        """Queues `texts` for the next batches and waits for their rows.

        Args:
            texts: the caller's texts (at least one).

        Returns:
            A numpy array with one row per text, in the order given.

        Raises:
            ValueError: if `texts` is empty.
            Exception: whatever the model call raised for this request.
        """
        texts = list(texts)
        if not texts:
            raise ValueError(f"`texts` must hold at least one text. Received: texts={texts!r}")
        self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(texts, future, time.perf_counter()))
        self._arrived.set()
        return await future

    async def aclose(self) -> None:
        """Stops the worker task, fails requests still queued, and frees the worker thread."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the batcher was closed"))
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._loop = None
        self._arrived = None

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
        # A caller that gave up (client disconnected, handler cancelled) needs no rows.
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _take_batch(self) -> list[tuple[_Job, int, int]]:
        """Pops up to `max_batch_size` texts off the queue as ``(job, start, stop)`` slices."""
        batch: list[tuple[_Job, int, int]] = []
        room = self.max_batch_size
        while room and self._queue:
            job = self._queue[0]
            if job.future.done():
                self._queue.popleft()
                continue
            take = min(room, job.remaining)
            batch.append((job, job.taken, job.taken + take))
            job.taken += take
            room -= take
            if job.remaining == 0:
                self._queue.popleft()
        return batch

    async def _execute(self, batch: list[tuple[_Job, int, int]]) -> None:
        texts = [text for job, start, stop in batch for text in job.texts[start:stop]]
        try:
            rows = await self._call(texts)
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
            self._deliver(job, start, part)

    async def _call(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._executor, self.fn, texts)
        rows = np.asarray(rows)
        if rows.ndim == 0 or rows.shape[0] != len(texts):
            raise RuntimeError(
                f"The model call returned {rows.shape[0] if rows.ndim else 'a scalar'} rows for "
                f"{len(texts)} texts; `fn` must return one row per text."
            )
        self.num_calls += 1
        self.num_texts += len(texts)
        return rows

    def _deliver(self, job: _Job, start: int, part: np.ndarray) -> None:
        if job.future.done():
            return
        job.parts.append((start, part))
        job.received += len(part)
        if job.received == len(job.texts):
            job.parts.sort(key=lambda item: item[0])
            rows = job.parts[0][1] if len(job.parts) == 1 else np.concatenate(
                [p for _, p in job.parts]
            )
            job.future.set_result(rows)

    def _fail(self, job: _Job, error: BaseException) -> None:
        if not job.future.done():
            job.future.set_exception(error)
        try:
            self._queue.remove(job)  # the rest of a long request would be wasted work
        except ValueError:
            pass
