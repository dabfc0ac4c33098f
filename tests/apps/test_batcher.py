"""Tests for ktlite.apps.batcher.DynamicBatcher (no web stack, no model: a recording fake)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from ktlite.apps.batcher import DynamicBatcher


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
        with pytest.raises(RuntimeError, match="one row per text"):
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
        with pytest.raises(ValueError, match="at least one text"):
            await batcher.submit([])

    run(main())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_batch_size": 0}, "max_batch_size=0"),
        ({"max_batch_size": 2.5}, "max_batch_size=2.5"),
        ({"max_batch_size": True}, "max_batch_size=True"),
        ({"max_wait_ms": -1}, "max_wait_ms=-1"),
        ({"max_wait_ms": float("nan")}, "max_wait_ms=nan"),
    ],
)
def test_invalid_arguments_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DynamicBatcher(RecordingModel(), **kwargs)


def test_non_callable_fn_is_rejected():
    with pytest.raises(TypeError, match="`fn` must be callable"):
        DynamicBatcher("predict")
