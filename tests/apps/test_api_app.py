"""Tests for ktlite.apps.APIApp in-process (httpx's ASGI transport) with a fake predictor."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest

from ktlite.apps import APIApp

CLASSES = ["animal", "plant", "rock"]


class FakePredictor:
    """Duck-typed predictor: the class is decided by a keyword; counts model calls."""

    label_mode = "multiclass"

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def get_classes(self) -> list[str]:
        return list(CLASSES)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.batches.append(len(texts))
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError("model exploded")
        return np.stack([expected_proba(t) for t in texts]).astype(np.float32)


class FakeRegressor:
    label_mode = "regression"

    def get_classes(self) -> list[str]:
        return []

    def predict_proba(self, texts):
        raise ValueError("regression has no probabilities")

    def predict(self, texts):
        return [float(len(t)) for t in texts]


def expected_proba(text: str) -> np.ndarray:
    index = 0 if "bird" in text else 1 if "tree" in text else 2
    row = np.full(3, 0.1)
    row[index] = 0.8
    return row


def expected_label(text: str) -> str:
    return CLASSES[int(np.argmax(expected_proba(text)))]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))


def client(app: APIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def post_raw(c: httpx.AsyncClient, body: bytes, path: str = "/predict") -> httpx.Response:
    return await c.post(path, content=body, headers={"content-type": "application/json"})


def test_predict_returns_one_label_per_text_in_order():
    app = APIApp(FakePredictor())
    texts = ["a small bird", "granite", "an oak tree", "bird again"]

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json={"texts": texts})

    response = run(main())
    assert response.status_code == 200
    assert response.json() == {"predictions": [expected_label(t) for t in texts]}


def test_predict_with_return_proba_adds_probabilities_and_classes():
    app = APIApp(FakePredictor())

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json={"texts": ["a tree"], "return_proba": True})

    body = run(main()).json()
    assert body["predictions"] == ["plant"]
    assert body["classes"] == CLASSES
    np.testing.assert_allclose(body["probabilities"], [expected_proba("a tree")], rtol=1e-6)


def test_concurrent_requests_are_coalesced_and_routed_to_their_callers():
    predictor = FakePredictor()
    app = APIApp(predictor, max_batch_size=32, max_wait_ms=50)
    texts = [f"{['bird', 'tree', 'stone'][i % 3]} number {i}" for i in range(64)]

    async def main():
        async with client(app) as c:
            return await asyncio.gather(*(c.post("/predict", json={"texts": [t]}) for t in texts))

    responses = run(main())
    assert [r.json()["predictions"] for r in responses] == [[expected_label(t)] for t in texts]
    assert sum(predictor.batches) == 64
    assert len(predictor.batches) <= 4  # 64 single-text requests, not 64 model calls
    assert max(predictor.batches) <= 32


def test_bad_requests_interleaved_with_good_ones_never_disturb_the_good_ones():
    predictor = FakePredictor()
    app = APIApp(predictor, max_batch_size=8, max_wait_ms=20, max_texts=5, max_body_bytes=4096)
    bad_bodies = [
        b"{not json",
        b'{"texts": "a bird"}',
        b'{"texts": []}',
        b'{"texts": [1, 2]}',
        b'{"texts": [null]}',
        b'{"texts": ["a"], "return_proba": "yes"}',
        b'{"text": ["a bird"]}',
        b"[1, 2, 3]",
        b'"just a string"',
        b"",
        b'{"texts": ["a", "b", "c", "d", "e", "f"]}',
        b'{"texts": ["' + b"x" * 5000 + b'"]}',
        b"\xff\xfe\x00garbage",
    ]

    async def main():
        async with client(app) as c:
            calls, good = [], []
            for i in range(60):
                if i % 3 == 0:
                    calls.append(post_raw(c, bad_bodies[(i // 3) % len(bad_bodies)]))
                else:
                    texts = [f"{['bird', 'tree', 'rock'][i % 3]} {i}", f"tree {i}"]
                    good.append((len(calls), texts))
                    calls.append(c.post("/predict", json={"texts": texts}))
            responses = await asyncio.gather(*calls)
            health = await c.get("/health")
            return responses, good, health

    responses, good, health = run(main())
    good_indices = {index for index, _ in good}
    for index, texts in good:
        assert responses[index].status_code == 200
        assert responses[index].json()["predictions"] == [expected_label(t) for t in texts]
    for index, response in enumerate(responses):
        if index not in good_indices:
            assert response.status_code in (400, 413, 422), response.text
            assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert health.status_code == 200 and health.json()["status"] == "ok"


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"{not json", 400, "Malformed JSON"),
        (b'{"texts": "one string"}', 422, "texts"),
        (b'{"texts": []}', 422, "at least 1"),
        (b'{"texts": ["ok", 3]}', 422, "texts.1"),
        (b'{"texts": ["ok"], "return_proba": 1}', 422, "return_proba"),
        (b'{"texts": ["ok"], "path": "/etc/passwd"}', 422, "path"),
    ],
)
def test_invalid_bodies_get_4xx_with_a_message(body, status, fragment):
    app = APIApp(FakePredictor())

    async def main():
        async with client(app) as c:
            return await post_raw(c, body)

    response = run(main())
    assert response.status_code == status
    assert fragment in response.json()["detail"]


def test_more_than_max_texts_is_refused_with_413():
    app = APIApp(FakePredictor(), max_texts=3)

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json={"texts": ["a", "b", "c", "d"]})

    response = run(main())
    assert response.status_code == 413
    assert "max_texts=3" in response.json()["detail"]


def test_body_over_the_limit_is_refused_with_413_declared_or_streamed():
    predictor = FakePredictor()
    app = APIApp(predictor, max_body_bytes=1000)
    big = b'{"texts": ["' + b"a" * 2000 + b'"]}'

    async def chunks():
        for start in range(0, len(big), 100):
            yield big[start: start + 100]

    async def main():
        async with client(app) as c:
            declared = await post_raw(c, big)
            streamed = await c.post(
                "/predict", content=chunks(), headers={"content-type": "application/json"}
            )
            return declared, streamed

    declared, streamed = run(main())
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "max_body_bytes=1000" in response.json()["detail"]
    assert predictor.batches == []


def test_default_limits_are_1024_texts_and_one_mebibyte():
    app = APIApp(FakePredictor())
    assert (app.max_texts, app.max_body_bytes) == (1024, 1024 * 1024)
    assert (app.max_batch_size, app.max_wait_ms) == (32, 5.0)


def test_model_failure_gives_500_and_the_service_keeps_answering():
    app = APIApp(FakePredictor(fail_on="explode"), max_wait_ms=20)

    async def main():
        async with client(app) as c:
            return await asyncio.gather(
                c.post("/predict", json={"texts": ["explode now"]}),
                c.post("/predict", json={"texts": ["a bird"]}),
                c.post("/predict", json={"texts": ["a tree"]}),
            )

    failed, bird, tree = run(main())
    assert failed.status_code == 500 and "server log" in failed.json()["detail"]
    assert bird.json()["predictions"] == ["animal"]
    assert tree.json()["predictions"] == ["plant"]


def test_health_metadata_and_openapi_schema():
    app = APIApp(FakePredictor(), max_batch_size=16)

    async def main():
        async with client(app) as c:
            return await c.get("/health"), await c.get("/metadata"), await c.get("/openapi.json")

    health, metadata, schema = run(main())
    assert health.json()["status"] == "ok"
    meta = metadata.json()
    assert meta["classes"] == CLASSES
    assert meta["label_mode"] == "multiclass"
    assert meta["limits"]["max_batch_size"] == 16
    assert {"ktlite", "keras", "tensorflow", "python"} <= set(meta["versions"])
    paths = schema.json()["paths"]
    assert {"/predict", "/explain", "/health", "/metadata"} <= set(paths)
    assert "PredictRequest" in schema.json()["components"]["schemas"]


def test_explain_endpoint_returns_word_scores_for_the_predicted_class():
    app = APIApp(FakePredictor())

    async def main():
        async with client(app) as c:
            good = await c.post("/explain", json={"text": "a small bird here", "top_k": 2})
            bad = await c.post("/explain", json={"text": "x", "top_k": 0})
            return good, bad

    good, bad = run(main())
    assert good.status_code == 200
    body = good.json()
    assert body["label"] == "animal"
    assert body["top"][0]["word"] == "bird"
    assert len(body["top"]) == 2
    assert bad.status_code == 422 and "top_k" in bad.json()["detail"]


def test_regression_predictor_returns_numbers_and_refuses_return_proba():
    app = APIApp(FakeRegressor())

    async def main():
        async with client(app) as c:
            values = await c.post("/predict", json={"texts": ["abc", "abcdef"]})
            proba = await c.post("/predict", json={"texts": ["abc"], "return_proba": True})
            return values, proba

    values, proba = run(main())
    assert values.json()["predictions"] == [3.0, 6.0]
    assert proba.status_code == 422 and "regression" in proba.json()["detail"]


def test_run_binds_loopback_by_default(monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    app = APIApp(FakePredictor())
    app.run()
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8000 and seen["app"] is app


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_batch_size": 0}, "max_batch_size=0"),
        ({"max_texts": -1}, "max_texts=-1"),
        ({"max_body_bytes": "1MB"}, "max_body_bytes='1MB'"),
        ({"max_wait_ms": -5}, "max_wait_ms=-5"),
    ],
)
def test_invalid_limits_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        APIApp(FakePredictor(), **kwargs)


def test_object_without_predict_proba_is_refused():
    with pytest.raises(TypeError, match="predict_proba"):
        APIApp(object())


def test_run_rejects_a_bad_port():
    with pytest.raises(ValueError, match="port=70000"):
        APIApp(FakePredictor()).run(port=70000)


def test_missing_fastapi_gives_an_install_hint_and_core_does_not_import_it():
    code = (
        "import sys\n"
        "import ktlite, ktlite.apps, ktlite.apps.batcher\n"
        "assert 'fastapi' not in sys.modules, 'core imported fastapi'\n"
        "sys.modules['fastapi'] = None\n"
        "try:\n"
        "    from ktlite.apps import APIApp\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'ktlite[serve]'" in out.stdout


class FakeMultilabel(FakePredictor):
    label_mode = "multilabel"


def test_multilabel_predictor_returns_label_probability_pairs():
    app = APIApp(FakeMultilabel())

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json={"texts": ["a bird"]})

    (pairs,) = run(main()).json()["predictions"]
    assert [name for name, _ in pairs] == CLASSES
    np.testing.assert_allclose([p for _, p in pairs], expected_proba("a bird"), rtol=1e-6)
