"""APIApp under a real uvicorn server on a free loopback port, started and stopped in-test."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import uvicorn

from ktlite.apps import APIApp


class KeywordPredictor:
    label_mode = "multiclass"

    def __init__(self) -> None:
        self.calls = 0

    def get_classes(self) -> list[str]:
        return ["animal", "plant"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        time.sleep(0.01)  # a model call that costs something, so requests pile up
        return np.array([[0.9, 0.1] if "bird" in t else [0.2, 0.8] for t in texts])


@contextlib.contextmanager
def running(app: APIApp, timeout_s: float = 20.0) -> Iterator[str]:
    """Serves `app` on 127.0.0.1 at a free port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
        assert not thread.is_alive(), "server did not stop"


def test_server_answers_concurrent_clients_and_batches_them():
    predictor = KeywordPredictor()
    app = APIApp(predictor, max_batch_size=32, max_wait_ms=10)
    texts = [f"{'bird' if i % 2 else 'fern'} {i}" for i in range(48)]

    with running(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json()["status"] == "ok"

        def ask(text: str) -> httpx.Response:
            return client.post("/predict", json={"texts": [text]})

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(ask, texts))
        bad = client.post(
            "/predict", content=b"{oops", headers={"content-type": "application/json"}
        )
        docs = client.get("/openapi.json")

    assert [r.json()["predictions"][0] for r in responses] == [
        "animal" if "bird" in t else "plant" for t in texts
    ]
    assert predictor.calls < len(texts)
    assert bad.status_code == 400
    assert docs.status_code == 200 and "/predict" in docs.json()["paths"]
