"""Tests for ktlite.apps.batcher.DynamicBatcher (no web stack, no model: a recording fake)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from ktlite.apps.batcher import DynamicBatcher, QueueFullError


class RecordingModel:
    """Returns, for each text, a row derived from the text; records every call's batch."""

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s
        self.fail_on = fail_on

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"cannot handle {self.fail_on!r}")
        return np.array([[float(len(t)), float(sum(map(ord, t)))] for t in texts])


def expected_rows(texts: list[str]) -> np.ndarray:
    return np.array([[float(len(t)), float(sum(map(ord, t)))] for t in texts])


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))


def test_concurrent_requests_are_coalesced_and_each_gets_its_own_rows():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=50)
    requests = [[f"text number {i}" + "x" * (i % 7)] for i in range(64)]

    async def main():
        results = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
        await batcher.aclose()
        return results

    results = run(main())
    assert len(model.batches) == 2
    assert [len(b) for b in model.batches] == [32, 32]
    for texts, rows in zip(requests, results):
        np.testing.assert_array_equal(rows, expected_rows(texts))


def test_batches_never_exceed_max_batch_size_and_multi_text_requests_stay_in_order():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=8, max_wait_ms=20)
    requests = [[f"r{i}-t{j}" for j in range(1 + (i * 5) % 13)] for i in range(20)]

    async def main():
        results = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
        await batcher.aclose()
        return results

    results = run(main())
    assert max(len(b) for b in model.batches) <= 8
    assert sum(len(b) for b in model.batches) == sum(len(r) for r in requests)
    assert len(model.batches) == -(-sum(len(r) for r in requests) // 8)
    for texts, rows in zip(requests, results):
        np.testing.assert_array_equal(rows, expected_rows(texts))


def test_request_larger_than_max_batch_size_spans_batches():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=0)
    texts = [f"t{i}" for i in range(70)]

    async def main():
        rows = await batcher.submit(texts)
        await batcher.aclose()
        return rows

    np.testing.assert_array_equal(run(main()), expected_rows(texts))
    assert [len(b) for b in model.batches] == [32, 32, 6]


def test_max_batch_size_one_calls_the_model_once_per_text():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=1, max_wait_ms=50)

    async def main():
        start = time.perf_counter()
        await asyncio.gather(*(batcher.submit([f"t{i}"]) for i in range(10)))
        elapsed = time.perf_counter() - start
        await batcher.aclose()
        return elapsed

    elapsed = run(main())
    assert [len(b) for b in model.batches] == [1] * 10
    assert elapsed < 0.4  # a full batch of 1 never waits for max_wait_ms


def test_lone_request_waits_about_max_wait_ms_then_runs():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=60)

    async def main():
        start = time.perf_counter()
        await batcher.submit(["alone"])
        elapsed = time.perf_counter() - start
        await batcher.aclose()
        return elapsed

    elapsed = run(main())
    assert 0.055 <= elapsed < 2.0
    assert model.batches == [["alone"]]


def test_requests_arriving_while_the_model_runs_form_the_next_batch():
    model = RecordingModel(delay_s=0.15)
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=0)

    async def main():
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.03)  # the model is now busy with "first"
        later = [asyncio.ensure_future(batcher.submit([f"later {i}"])) for i in range(10)]
        await asyncio.gather(first, *later)
        await batcher.aclose()

    run(main())
    assert [len(b) for b in model.batches] == [1, 10]


def test_model_runs_off_the_event_loop_which_stays_responsive():
    model = RecordingModel(delay_s=0.3)
    batcher = DynamicBatcher(model, max_batch_size=4, max_wait_ms=0)
    ticks = []

    async def ticker():
        for _ in range(10):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.02)

    async def main():
        await asyncio.gather(batcher.submit(["slow"]), ticker())
        await batcher.aclose()

    run(main())
    assert len(ticks) == 10
    assert max(np.diff(ticks)) < 0.2  # never blocked for the model's 0.3 s
    assert all(name.startswith("ktlite-batcher") for name in model.threads)


def test_a_failing_request_does_not_fail_the_others_in_its_batch():
    model = RecordingModel(fail_on="boom")
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=30)
    good = [[f"good {i}"] for i in range(6)]

    async def main():
        tasks = [batcher.submit(t) for t in good[:3]] + [batcher.submit(["boom"])]
        tasks += [batcher.submit(t) for t in good[3:]]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        after = await batcher.submit(["after"])
        await batcher.aclose()
        return results, after

    results, after = run(main())
    assert isinstance(results[3], RuntimeError) and "boom" in str(results[3])
    for texts, rows in zip(good, results[:3] + results[4:]):
        np.testing.assert_array_equal(rows, expected_rows(texts))
    np.testing.assert_array_equal(after, expected_rows(["after"]))


def test_wrong_number_of_rows_is_reported_to_the_caller():
    batcher = DynamicBatcher(lambda texts: np.zeros((len(texts) + 1, 2)), max_wait_ms=0)

    async def main():
        with pytest.raises(RuntimeError, match="one row per input"):
            await batcher.submit(["a", "b"])
        await batcher.aclose()

    run(main())


def test_cancelled_caller_is_skipped_and_others_still_answered():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=50)

    async def main():
        gone = asyncio.ensure_future(batcher.submit(["gone"]))
        kept = asyncio.ensure_future(batcher.submit(["kept"]))
        await asyncio.sleep(0)
        gone.cancel()
        rows = await kept
        await batcher.aclose()
        return rows

    np.testing.assert_array_equal(run(main()), expected_rows(["kept"]))
    assert model.batches == [["kept"]]


def test_aclose_fails_waiting_requests_and_the_batcher_restarts_on_next_submit():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch_size=32, max_wait_ms=10_000)

    async def first_loop():
        waiting = asyncio.ensure_future(batcher.submit(["never"]))
        await asyncio.sleep(0.01)
        await batcher.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await waiting

    async def second_loop():
        batcher.max_wait_ms = 0.0
        rows = await batcher.submit(["again"])
        await batcher.aclose()
        return rows

    run(first_loop())
    np.testing.assert_array_equal(run(second_loop()), expected_rows(["again"]))


def test_submit_rejects_an_empty_list():
    batcher = DynamicBatcher(RecordingModel())

    async def main():
        with pytest.raises(ValueError, match="at least one input"):
            await batcher.submit([])

    run(main())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_batch_size": 0}, "max_batch_size=0"),
        ({"max_wait_ms": -1}, "max_wait_ms=-1"),
        ({"max_wait_ms": float("nan")}, "max_wait_ms=nan"),
        ({"max_wait_ms": float("inf")}, "max_wait_ms=inf"),
        ({"max_pending": 0}, "max_pending=0"),
    ],
)
def test_out_of_range_arguments_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DynamicBatcher(RecordingModel(), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_batch_size": 2.5}, "`max_batch_size` must be .* Received: max_batch_size=2.5"),
        ({"max_batch_size": True}, "`max_batch_size` must be .* Received: max_batch_size=True"),
        ({"max_batch_size": "32"}, "`max_batch_size` must be .* Received: max_batch_size='32'"),
        ({"max_wait_ms": "5"}, "`max_wait_ms` must be .* Received: max_wait_ms='5'"),
        ({"max_wait_ms": True}, "`max_wait_ms` must be .* Received: max_wait_ms=True"),
        ({"max_pending": "3"}, "`max_pending` must be .* Received: max_pending='3'"),
        ({"max_pending": False}, "`max_pending` must be .* Received: max_pending=False"),
    ],
)
def test_arguments_of_the_wrong_type_are_a_type_error(kwargs, match):
    with pytest.raises(TypeError, match=match):
        DynamicBatcher(RecordingModel(), **kwargs)


def test_non_callable_fn_is_rejected():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        DynamicBatcher("predict")


class GatedModel(RecordingModel):
    """Holds each call until the test lets one through (`release`)."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed = threading.Semaphore(0)
        self.started = threading.Semaphore(0)

    def __call__(self, texts):
        self.started.release()
        assert self.allowed.acquire(timeout=30), "the test never released the model"
        return super().__call__(texts)


async def wait_started(model: GatedModel) -> None:
    while not model.started.acquire(blocking=False):
        await asyncio.sleep(0.005)


def test_a_small_request_rides_the_next_batch_while_large_ones_are_queued():
    model = GatedModel()
    batcher = DynamicBatcher(model, max_batch_size=4, max_wait_ms=0)
    big_a = [f"a{i}" for i in range(16)]
    big_b = [f"b{i}" for i in range(16)]

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit(big_a))]
        await wait_started(model)  # a0..a3 are in the model
        tasks.append(asyncio.ensure_future(batcher.submit(big_b)))
        tasks.append(asyncio.ensure_future(batcher.submit(["small"])))
        await asyncio.sleep(0.01)
        for _ in range(9):  # 33 inputs in batches of 4
            model.allowed.release()
        results = await asyncio.gather(*tasks)
        await batcher.aclose()
        return results

    rows_a, rows_b, rows_small = run(main())
    # the one-text request joins the batch right after the one that was running, beside
    # the least-served large request; the two large ones then alternate
    assert model.batches[0] == big_a[:4]
    assert model.batches[1] == ["small", "b0", "b1", "b2"]
    assert model.batches[2] == ["b3", "b4", "b5", "b6"]  # b: 3 taken, a: 4
    assert model.batches[3] == ["a4", "a5", "a6", "a7"]  # a: 4 taken, b: 7
    assert len(model.batches) == 9
    np.testing.assert_array_equal(rows_a, expected_rows(big_a))
    np.testing.assert_array_equal(rows_b, expected_rows(big_b))
    np.testing.assert_array_equal(rows_small, expected_rows(["small"]))


def test_a_full_queue_refuses_at_once_and_counts_only_waiting_inputs():
    model = GatedModel()
    batcher = DynamicBatcher(model, max_batch_size=2, max_wait_ms=0, max_pending=3)

    async def main():
        running = asyncio.ensure_future(batcher.submit(["r1", "r2"]))
        await wait_started(model)  # taken out of the queue: no longer pending
        waiting = asyncio.ensure_future(batcher.submit(["w1", "w2", "w3"]))
        await asyncio.sleep(0.01)
        assert batcher.pending == 3
        with pytest.raises(QueueFullError, match="max_pending=3"):
            await batcher.submit(["refused"])
        for _ in range(3):
            model.allowed.release()
        await asyncio.gather(running, waiting)
        await batcher.aclose()

    run(main())
    assert "refused" not in [t for batch in model.batches for t in batch]


def test_a_cancelled_large_request_stops_after_the_slice_in_progress():
    model = GatedModel()
    batcher = DynamicBatcher(model, max_batch_size=2, max_wait_ms=0)

    async def main():
        large = asyncio.ensure_future(batcher.submit([f"t{i}" for i in range(10)]))
        await wait_started(model)
        large.cancel()  # e.g. its client disconnected
        other = asyncio.ensure_future(batcher.submit(["other"]))
        model.allowed.release()
        model.allowed.release()
        rows = await other
        await batcher.aclose()
        return rows

    np.testing.assert_array_equal(run(main()), expected_rows(["other"]))
    assert model.batches == [["t0", "t1"], ["other"]]
    assert batcher.num_dropped == 1


def test_rows_that_cannot_be_joined_fail_only_their_request_and_the_worker_lives_on():
    widths = iter([2, 3, 3, 3])  # the first call's rows are narrower than the others'

    def model(texts):
        return np.zeros((len(texts), next(widths)))

    batcher = DynamicBatcher(model, max_batch_size=2, max_wait_ms=50)

    async def main():
        # Batches: [a0, a1] (width 2), [b0, b1], then [a2, b2]: a's rows cannot be joined,
        # b's can, and b is delivered after a in that last batch.
        first = [batcher.submit(["a0", "a1", "a2"]), batcher.submit(["b0", "b1", "b2"])]
        results = await asyncio.wait_for(asyncio.gather(*first, return_exceptions=True), 5)
        after = await asyncio.wait_for(batcher.submit(["after"]), 5)
        await batcher.aclose()
        return results, after

    (a, b), after = run(main())
    assert isinstance(a, RuntimeError) and "cannot be joined" in str(a)
    assert "`fn` must return rows of one shape" in str(a)
    assert b.shape == (3, 3) and after.shape == (1, 3)


def test_a_submit_while_aclose_runs_is_refused_and_starts_no_stray_worker():
    import gc

    model = RecordingModel()
    batcher = DynamicBatcher(model, max_wait_ms=0)

    async def main():
        loop_errors = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        await batcher.submit(["first"])
        closing = asyncio.ensure_future(batcher.aclose())
        await asyncio.sleep(0)  # aclose has stopped the worker and waits for it to end
        with pytest.raises(RuntimeError, match=r"closing \(`aclose` is running\)"):
            await batcher.submit(["during"])
        await closing
        rows = await batcher.submit(["after"])  # a submit after aclose starts it again
        await batcher.aclose()
        gc.collect()  # a stray worker that failed would report it here
        await asyncio.sleep(0)
        return rows, loop_errors

    rows, loop_errors = run(main())
    np.testing.assert_array_equal(rows, expected_rows(["after"]))
    assert loop_errors == []
    assert model.batches == [["first"], ["after"]]
