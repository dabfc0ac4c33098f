"""Tests for ktlite.apps.APIApp in-process (httpx's ASGI transport) with fake predictors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import Any

import httpx
import numpy as np
import pytest

from ktlite.apps import APIApp
from tests.apps.fakes import (
    CLASSES,
    FakePredictor,
    FakeRegressor,
    expected_label,
    expected_proba,
)


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
    sizes = [len(batch) for batch in predictor.batches]
    assert sum(sizes) == 64
    assert len(sizes) <= 4  # 64 single-text requests, not 64 model calls
    assert max(sizes) <= 32


def test_bad_requests_interleaved_with_good_ones_never_disturb_the_good_ones():
    predictor = FakePredictor()
    app = APIApp(predictor, max_batch_size=8, max_wait_ms=20, max_inputs=5, max_body_bytes=4096)
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
        (b'{"texts": ["ok", 3]}', 422, "texts[1]"),
        (b'{"inputs": ["ok", 3]}', 422, "[1]"),
        (b'{"inputs": ["ok"], "texts": ["ok"]}', 422, "exactly one of"),
        (b'{"return_proba": true}', 422, "exactly one of"),
        (b'{"text": "good"}', 422, "exactly one of `inputs` and `texts`"),
        (b'{"inputs": null, "texts": null}', 422, "exactly one of"),
        (b'{"texts": ["ok"], "return_proba": 1}', 422, "return_proba"),
        (b'{"texts": ["ok"], "path": "/etc/passwd"}', 422, "path"),
        # Valid JSON that Python's parser refuses (FastAPI said only "error parsing").
        (b'{"texts": ["ok"], "n": ' + b"1" * 5000 + b"}", 400, "4300 digits"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deep"),
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


def test_a_body_of_many_bad_keys_gets_a_short_answer():
    app = APIApp(FakePredictor())
    body = {"texts": ["ok"], **{f"k{i}": 1 for i in range(500)}}

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json=body)

    answer = run(main()).json()
    assert len(answer["errors"]) == 20 and answer["errors_left_out"] == 480
    assert "and 495 more" in answer["detail"]


def test_more_than_max_inputs_is_refused_with_413():
    app = APIApp(FakePredictor(), max_inputs=3)

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json={"texts": ["a", "b", "c", "d"]})

    response = run(main())
    assert response.status_code == 413
    assert "max_inputs=3" in response.json()["detail"]


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


def test_default_limits_are_1024_inputs_and_one_mebibyte():
    app = APIApp(FakePredictor())
    assert (app.max_inputs, app.max_body_bytes) == (1024, 1024 * 1024)
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
    assert meta["classes"] == CLASSES  # the predictor's metadata, served as is
    assert meta["predictor"] == "tests.FakePredictor"
    assert meta["limits"]["max_batch_size"] == 16
    assert {"ktlite", "fastapi", "python"} <= set(meta["server_versions"])
    paths = schema.json()["paths"]
    assert {"/predict", "/explain", "/health", "/metadata"} <= set(paths)
    request = schema.json()["components"]["schemas"]["PredictRequest"]["properties"]
    # the predictor's item schema (a string) in both fields, and its options
    assert request["inputs"]["anyOf"][0]["items"] == {"type": "string"}
    assert request["texts"]["anyOf"][0]["items"] == {"type": "string"}
    assert request["return_proba"]["type"] == "boolean"


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


class TwoOutputExplainer(FakePredictor):
    """Regression with two outputs: the word count, and 5 when "bird" is in the text."""

    label_mode = "regression"

    def predict(self, texts: list[str]) -> list[list[float]]:
        return [[float(len(t.split())), 5.0 if "bird" in t else 0.0] for t in texts]

    def explain(self, text: str, top_k: int = 10, target: int | None = None) -> Any:
        from ktlite.text.explain import explain

        return explain(self, text, top_k=top_k, target=target)


def test_explain_endpoint_forwards_target_to_choose_the_output():
    app = APIApp(TwoOutputExplainer())

    async def main():
        async with client(app) as c:
            return [
                await c.post("/explain", json=body) for body in (
                    {"text": "a small bird here", "target": 1},
                    {"text": "a small bird here"},
                    {"text": "a small bird here", "target": 2},
                    {"text": "a small bird here", "target": -1},
                    {"text": "a small bird here", "target": True},
                )
            ]

    chosen, missing, too_big, negative, flag = run(main())
    assert chosen.status_code == 200
    body = chosen.json()
    assert body["class_index"] == 1 and body["label"] == 5.0
    assert body["top"][0] == {"word": "bird", "start": 8, "end": 12, "score": 5.0}
    assert missing.status_code == 422 and "2 outputs; pass `target=`" in missing.json()["detail"]
    assert too_big.status_code == 422
    assert "`target` must be an int in [0, 1]. Received: target=2" in too_big.json()["detail"]
    for refused in (negative, flag):
        assert refused.status_code == 422 and "target" in refused.json()["detail"]


def test_explain_endpoint_without_target_calls_explain_without_it():
    calls = []

    class OldExplainer(FakePredictor):
        def explain(self, text, top_k=10):  # an explain that predates `target`
            calls.append((text, top_k))
            return {"label": "animal"}

    app = APIApp(OldExplainer())

    async def main():
        async with client(app) as c:
            return await c.post("/explain", json={"text": "a bird", "top_k": 3})

    assert run(main()).status_code == 200 and calls == [("a bird", 3)]


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
    # slow clients are cut off: headers, idle keep-alive, open connections
    assert seen["http"].header_timeout_s == 10.0
    assert seen["timeout_keep_alive"] == 5 and seen["limit_concurrency"] == 256
    app.run(header_timeout_s=2, limit_concurrency=16)
    assert seen["http"].header_timeout_s == 2.0 and seen["limit_concurrency"] == 16
    with pytest.raises(ValueError, match="header_timeout_s=0"):
        app.run(header_timeout_s=0)


def test_run_refuses_an_address_in_use_unless_uvicorn_binds_a_socket_file(monkeypatch, tmp_path):
    import socket

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"listen on \(Address already in use\). Received: "
                                          rf"host='127.0.0.1', port={port}"):
            APIApp(FakePredictor()).run(port=port)
        assert not seen
        APIApp(FakePredictor()).run(port=port, uds=str(tmp_path / "s.sock"))
    assert seen["uds"] == str(tmp_path / "s.sock")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_batch_size": 0}, "max_batch_size=0"),
        ({"max_inputs": -1}, "max_inputs=-1"),
        ({"max_pending": 10}, "max_pending=10"),
        ({"body_timeout_s": 0}, "body_timeout_s=0"),
        ({"max_wait_ms": -5}, "max_wait_ms=-5"),
    ],
)
def test_invalid_limits_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        APIApp(FakePredictor(), **kwargs)


def test_a_limit_that_is_no_number_is_a_type_error():
    with pytest.raises(TypeError, match="`max_body_bytes` must be a positive int. Received: "
                                        "max_body_bytes='1MB'"):
        APIApp(FakePredictor(), max_body_bytes="1MB")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"max_wait_ms": "5"}, "max_wait_ms"),
        ({"max_wait_ms": True}, "max_wait_ms"),
        ({"body_timeout_s": "10"}, "body_timeout_s"),
        ({"body_timeout_s": True}, "body_timeout_s"),
        ({"max_batch_size": 2.0}, "max_batch_size"),
    ],
)
def test_limits_of_the_wrong_type_are_a_type_error(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}` must be .* Received: {name}="):
        APIApp(FakePredictor(), **kwargs)


def test_a_non_finite_timeout_or_wait_is_refused():
    with pytest.raises(ValueError, match="body_timeout_s=inf"):
        APIApp(FakePredictor(), body_timeout_s=float("inf"))
    with pytest.raises(ValueError, match="max_wait_ms=nan"):
        APIApp(FakePredictor(), max_wait_ms=float("nan"))


def test_object_without_the_predictor_hooks_is_refused():
    with pytest.raises(TypeError, match="predict_outputs, json_response"):
        APIApp(object())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"port": 70000}, ValueError, "`port` must be .* Received: port=70000"),
        ({"port": -1}, ValueError, "`port` must be .* Received: port=-1"),
        ({"port": "8000"}, TypeError, "`port` must be .* Received: port='8000'"),
        ({"port": True}, TypeError, "`port` must be .* Received: port=True"),
        ({"port": 8000.0}, TypeError, "`port` must be .* Received: port=8000.0"),
        ({"host": ""}, ValueError, "`host` must be a non-empty str. Received: host=''"),
        ({"host": 127}, TypeError, "`host` must be of type str. Received: host of type int"),
        ({"header_timeout_s": "10"}, TypeError, "Received: header_timeout_s='10'"),
        ({"header_timeout_s": True}, TypeError, "Received: header_timeout_s=True"),
        ({"header_timeout_s": -1}, ValueError, "Received: header_timeout_s=-1"),
    ],
)
def test_run_rejects_bad_host_port_and_header_timeout(monkeypatch, kwargs, error, match):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("server started"))
    with pytest.raises(error, match=match):
        APIApp(FakePredictor()).run(**kwargs)


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


def test_inputs_field_and_the_texts_alias_give_the_same_answer():
    app = APIApp(FakePredictor())
    texts = ["a bird", "an oak tree"]

    async def main():
        async with client(app) as c:
            return (
                await c.post("/predict", json={"inputs": texts, "return_proba": True}),
                await c.post("/predict", json={"texts": texts, "return_proba": True}),
            )

    by_inputs, by_texts = run(main())
    assert by_inputs.status_code == 200 and by_inputs.json() == by_texts.json()
    assert by_inputs.json()["predictions"] == ["animal", "plant"]
    np.testing.assert_allclose(
        by_inputs.json()["probabilities"], [expected_proba(t) for t in texts], rtol=1e-6
    )


def test_a_body_that_is_not_utf8_gets_400_in_the_apps_own_words():
    predictor = FakePredictor()
    app = APIApp(predictor)

    async def main():
        async with client(app) as c:
            return await asyncio.gather(
                post_raw(c, b'{"texts": ["caf\xe9"]}'),
                post_raw(c, b'{"text": "caf\xe9"}', path="/explain"),
                c.post("/predict", json={"texts": ["caf\u00e9 tree"]}),
            )

    latin1, explain, utf8 = run(main())
    for refused, position in ((latin1, 15), (explain, 13)):
        assert refused.status_code == 400
        assert refused.json()["detail"] == (
            f"Malformed JSON body: it must be UTF-8 text, but byte {position} is not valid "
            "UTF-8 (e.g. Latin-1 text sent as is)."
        )
    assert utf8.status_code == 200 and predictor.batches == [["caf\u00e9 tree"]]


def test_a_lone_surrogate_gets_422_naming_the_item_and_never_reaches_a_batch():
    predictor = FakePredictor()
    app = APIApp(predictor, max_wait_ms=50)
    bad = json.dumps({"inputs": ["a bird", "ok", "\ud800 broken"]}).encode()
    assert b"\\ud800" in bad  # JSON's escape of a lone surrogate

    async def main():
        async with client(app) as c:
            return await asyncio.gather(
                post_raw(c, bad),
                c.post("/predict", json={"inputs": ["a tree"]}),
                post_raw(c, b'{"text": "\\udfff"}', path="/explain"),
                post_raw(c, bad.replace(b'"inputs"', b'"texts"')),
            )

    refused, good, explain, by_texts = run(main())
    assert refused.status_code == 422 and "`inputs[2]`" in refused.json()["detail"]
    assert by_texts.status_code == 422 and "`texts[2]`" in by_texts.json()["detail"]
    assert "surrogate" in refused.json()["detail"]
    assert good.json()["predictions"] == ["plant"]
    assert explain.status_code == 422 and "text" in explain.json()["detail"]
    assert predictor.batches == [["a tree"]]  # one batch, no retry alone


def test_explain_refuses_whitespace_and_texts_over_the_word_limit():
    predictor = FakePredictor()
    app = APIApp(predictor, max_explain_words=5)

    async def main():
        async with client(app) as c:
            return (
                await c.post("/explain", json={"text": " \n\t "}),
                await c.post("/explain", json={"text": "one two three, four five"}),  # 6 words
                await c.post("/explain", json={"text": "a bird, here"}),
            )

    blank, long, short = run(main())
    assert blank.status_code == 422 and "no words" in blank.json()["detail"]
    assert long.status_code == 413 and "max_explain_words=5" in long.json()["detail"]
    assert "6 words" in long.json()["detail"]
    assert short.status_code == 200 and short.json()["label"] == "animal"
    assert app.metadata["limits"]["max_explain_words"] == 5
    assert APIApp(predictor).max_explain_words == 1000


class SlowExplainer(FakePredictor):
    """`explain` holds until `explain_gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.explain_gate = threading.Event()
        self.explaining = threading.Event()

    def explain(self, text, top_k=10):
        self.explaining.set()
        assert self.explain_gate.wait(30)
        return {"label": "animal", "text": text}


def test_predictions_keep_flowing_while_an_explanation_runs_and_explains_are_capped():
    predictor = SlowExplainer()
    app = APIApp(predictor, max_explains=1)

    async def main():
        async with client(app) as c:
            explaining = asyncio.ensure_future(c.post("/explain", json={"text": "a bird"}))
            while not predictor.explaining.is_set():
                await asyncio.sleep(0.01)
            second = await c.post("/explain", json={"text": "another bird"})
            # With one shared model thread this would wait for the explanation forever.
            predicted = await asyncio.wait_for(
                c.post("/predict", json={"inputs": ["a tree"]}), timeout=10
            )
            predictor.explain_gate.set()
            return predicted, second, await explaining

    predicted, second, explained = run(main())
    assert predicted.json()["predictions"] == ["plant"]
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert explained.status_code == 200 and explained.json()["label"] == "animal"


def test_explain_exists_only_where_the_predictor_explains():
    app = APIApp(FakeRegressor())

    async def main():
        async with client(app) as c:
            return (
                await c.post("/explain", json={"text": "a bird"}),
                await c.get("/openapi.json"),
            )

    missing, schema = run(main())
    assert missing.status_code == 404
    assert "/explain" not in schema.json()["paths"] and "/predict" in schema.json()["paths"]


def test_a_full_queue_answers_503_with_retry_after():
    gate = threading.Event()
    predictor = FakePredictor(gate=gate)
    app = APIApp(predictor, max_batch_size=2, max_wait_ms=0, max_inputs=4, max_pending=4)

    async def main():
        async with client(app) as c:
            running = asyncio.ensure_future(c.post("/predict", json={"inputs": ["a", "b"]}))
            while not predictor.entered.is_set():  # the model holds the first batch
                await asyncio.sleep(0.01)
            queued = asyncio.ensure_future(c.post("/predict", json={"inputs": ["c"] * 4}))
            while app.batcher.pending < 4:
                await asyncio.sleep(0.01)
            refused = await c.post("/predict", json={"inputs": ["a bird"]})
            gate.set()
            return refused, await running, await queued

    refused, running, queued = run(main())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "max_pending=4" in refused.json()["detail"]
    assert running.status_code == 200 and queued.status_code == 200
    assert "a bird" not in predictor.texts_seen


def test_work_of_a_disconnected_client_is_dropped():
    gate = threading.Event()
    predictor = FakePredictor(gate=gate)
    app = APIApp(predictor, max_batch_size=4, max_wait_ms=0)
    left = asyncio.Event()
    sent: list[dict] = []

    async def receive():
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"inputs": ["gone"]}', "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def main():
        async with client(app) as c:
            first, gone = await _queued_behind_a_busy_model(c, app, predictor, receive, send)
            left.set()  # the client hangs up while its input waits
            await gone
            gate.set()
            return await first, await c.get("/health")

    first, health = run(main())
    assert first.json()["predictions"] == ["animal"]
    assert predictor.texts_seen == ["a bird"]  # "gone" was never computed
    assert health.json()["dropped_requests"] == 1


def test_a_json_body_is_read_whatever_the_content_type_says():
    app = APIApp(FakePredictor())

    async def main():
        async with client(app) as c:
            form = await c.post(
                "/predict", content=b'{"texts": ["a new bird"]}',
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            bare = await c.post("/predict", content=b'{"inputs": ["a tree"]}')
            return form, bare

    form, bare = run(main())
    assert form.status_code == 200 and form.json() == {"predictions": ["animal"]}
    assert bare.status_code == 200 and bare.json() == {"predictions": ["plant"]}


def test_a_body_not_received_in_time_gets_408():
    predictor = FakePredictor()
    app = APIApp(predictor, body_timeout_s=0.2)
    sent: list[dict] = []

    async def receive():
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"inputs": ', "more_body": True}
        await asyncio.Event().wait()  # the rest never comes

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    run(app(scope, receive, send))
    assert sent[1]["status"] == 408
    assert b"body_timeout_s=0.2" in sent[2]["body"]
    assert predictor.batches == []


def test_a_slow_input_check_does_not_hold_up_other_requests():
    gate = threading.Event()

    class SlowCheck(FakePredictor):
        def inputs_from_json(self, items):
            if items == ["a huge upload"]:
                assert gate.wait(timeout=20)  # decoding, as a large image would
            return super().inputs_from_json(items)

    app = APIApp(SlowCheck())

    async def main():
        async with client(app) as c:
            slow = asyncio.ensure_future(c.post("/predict", json={"inputs": ["a huge upload"]}))
            await asyncio.sleep(0.2)
            # On the event loop, the check above would block this request (and the gate).
            fast = await asyncio.wait_for(c.post("/predict", json={"inputs": ["a tree"]}), 10)
            health = await c.get("/health")
            gate.set()
            return fast, health, await slow

    fast, health, slow = run(main())
    assert fast.json()["predictions"] == ["plant"] and health.status_code == 200
    assert slow.status_code == 200 and slow.json()["predictions"] == ["rock"]


class RowPredictor(FakePredictor):
    """Takes JSON objects, described like a tabular predictor's rows (types as lists)."""

    def json_input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"x": {"type": ["number", "null"]},
                           "city": {"type": ["string", "number", "boolean", "null"]}},
            "required": ["x", "city"],
        }

    def inputs_from_json(self, items: list[Any]) -> list[Any]:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"`inputs[{i}]` must be an object. Received: {item!r}")
        return list(items)

    def predict_outputs(self, rows: list[Any]) -> np.ndarray:
        return super().predict_outputs([json.dumps(row) for row in rows])


def test_a_lone_surrogate_in_an_object_key_gets_422_with_a_short_escaped_path():
    predictor = RowPredictor()
    app = APIApp(predictor, max_wait_ms=50)
    deep = b'{"inputs": [{"x": ' + b"[" * 500 + b'"\\ud800"' + b"]" * 500 + b"}]}"

    async def main():
        async with client(app) as c:
            return await asyncio.gather(
                post_raw(c, b'{"inputs": [{"\\ud800": "\\ud800"}]}'),
                post_raw(c, b'{"inputs": [{"x": 1, "city": "ok", "\\udfff": 1}]}'),
                post_raw(c, b'{"inputs": [{"' + b"k" * 100_000 + b'": "\\ud800"}]}'),
                post_raw(c, deep),
                c.post("/predict", json={"inputs": [{"x": 1, "city": "a tree"}]}),
            )

    both, key, long_key, nested, good = run(main())
    for refused in (both, key, long_key, nested):
        assert refused.status_code == 422, refused.text
        assert "surrogate" in refused.json()["detail"]
        assert len(refused.json()["detail"]) < 400  # the path is capped, not the request
    assert "`inputs[0]['\\ud800']` (an object key)" in both.json()["detail"]
    assert "`inputs[0]['\\udfff']` (an object key)" in key.json()["detail"]
    assert "`inputs[0]['" + "k" * 40 + "'...]`" in long_key.json()["detail"]
    assert nested.json()["detail"].startswith("`inputs[0]['x'][0][0]")
    assert good.status_code == 200 and good.json()["predictions"] == ["plant"]
    assert predictor.texts_seen == [json.dumps({"x": 1, "city": "a tree"})]


def test_an_unknown_field_with_a_huge_name_gets_a_short_answer():
    app = APIApp(FakePredictor())
    name = "k" * 10_000

    async def main():
        async with client(app) as c:
            return await c.post("/predict", json={"texts": ["ok"], name: 1})

    refused = run(main())
    assert refused.status_code == 422 and "Extra inputs" in refused.json()["detail"]
    assert len(refused.content) < 1000
    assert refused.json()["errors"][0]["loc"] == ["body", "k" * 40 + "..."]


def test_explain_refuses_texts_over_the_character_limit_before_explaining():
    predictor = FakePredictor()
    app = APIApp(predictor, max_explain_chars=50)
    long_words = " ".join(["bird" + "x" * 26] * 2)  # 2 words, 61 characters

    async def main():
        async with client(app) as c:
            return (
                await c.post("/explain", json={"text": long_words}),
                await c.post("/explain", json={"text": "a bird, here"}),
            )

    long, short = run(main())
    assert long.status_code == 413
    assert long.json()["detail"] == (
        "`text` has 61 characters; max_explain_chars=50. Explain a shorter text."
    )
    assert short.status_code == 200 and short.json()["label"] == "animal"
    assert predictor.texts_seen[0] == "a bird, here"  # the long text never reached the model
    assert app.metadata["limits"]["max_explain_chars"] == 50
    assert APIApp(predictor).max_explain_chars == 20_000


@pytest.mark.parametrize(
    "value, error", [(0, ValueError), (-1, ValueError), ("20000", TypeError), (1e4, TypeError)]
)
def test_a_bad_max_explain_chars_names_the_argument_and_value(value, error):
    with pytest.raises(error, match=f"`max_explain_chars` must be .* Received: "
                                    f"max_explain_chars={value!r}"):
        APIApp(FakePredictor(), max_explain_chars=value)


def test_serve_passes_max_explain_chars_to_the_app(monkeypatch):
    from ktlite.apps import api

    made = {}

    class Recorder:
        def __init__(self, path, **kwargs):
            made["init"] = kwargs

        def run(self, **kwargs):
            made["run"] = kwargs

    monkeypatch.setattr(api, "APIApp", Recorder)
    api.serve("some_predictor", port=0, max_explain_chars=7, max_explain_words=3)
    assert made["init"]["max_explain_chars"] == 7 and made["init"]["max_explain_words"] == 3
    assert "max_explain_chars" not in made["run"]


def test_serve_refuses_a_misspelt_option_before_the_predictor_loads(monkeypatch):
    from ktlite.apps import api

    monkeypatch.setattr(api, "APIApp", lambda *args, **kwargs: pytest.fail("loaded"))
    with pytest.raises(TypeError, match=r"Unknown server option\(s\) 'max_input': expected "
                                        r"ktlite's .*max_inputs.*log_level"):
        api.serve("some_predictor", port=0, max_input=5)
    with pytest.raises(TypeError, match="'log_levle'"):
        APIApp(FakePredictor()).run(port=0, log_levle="info")


def test_warm_up_runs_the_model_on_a_row_whose_columns_take_several_types():
    import gc

    predictor = RowPredictor()
    app = APIApp(predictor)
    try:
        run(app.warm_up())
    finally:
        gc.unfreeze()
    assert predictor.texts_seen == [json.dumps({"x": 0, "city": "warm-up"})]


def test_a_cancelled_predict_handler_takes_its_queued_inputs_with_it():
    gate = threading.Event()
    predictor = FakePredictor(gate=gate)
    app = APIApp(predictor, max_batch_size=4, max_wait_ms=0)
    sent: list[dict] = []

    async def receive():
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"inputs": ["cancelled"]}',
                    "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    async def main():
        async with client(app) as c:
            first, handler = await _queued_behind_a_busy_model(c, app, predictor, receive, send)
            handler.cancel()  # e.g. server shutdown, or a timeout around the app
            with pytest.raises(asyncio.CancelledError):
                await handler
            gate.set()
            after = await c.post("/predict", json={"inputs": ["a tree"]})
            return await first, after

    first, after = run(main())
    assert first.json()["predictions"] == ["animal"]
    assert after.json()["predictions"] == ["plant"]
    assert predictor.texts_seen == ["a bird", "a tree"]  # "cancelled" was never computed


async def _queued_behind_a_busy_model(c, app, predictor, receive, send):
    """Posts "a bird" through the client and, once the model is busy with it, a request
    driven by hand (`receive`, `send`) that waits in the queue; returns both tasks."""
    first = asyncio.ensure_future(c.post("/predict", json={"inputs": ["a bird"]}))
    while not predictor.entered.is_set():
        await asyncio.sleep(0.01)
    handler = asyncio.ensure_future(app(_predict_scope(), receive, send))
    while app.batcher.pending < 1:
        await asyncio.sleep(0.01)
    return first, handler


def _predict_scope():
    """The ASGI scope of a JSON POST to /predict, for a request driven by hand."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
