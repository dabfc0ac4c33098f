"""APIApp under a real uvicorn server on a free loopback port, started and stopped in-test."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
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
        assert predictor.calls == 1  # the start-up warm-up, before any request

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


def train_tiny_predictor(folder: str) -> list[str]:
    """Saves a tiny real text predictor ("zorp" in the text -> "yes"); returns test texts."""
    import keras

    import ktlite
    from ktlite import text
    from ktlite.data import make_dataset

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    filler = "the a of and to in is it that was for on are with as his they be at".split()

    def sample(n: int) -> tuple[list[str], list[str]]:
        texts, labels = [], []
        for i in range(n):
            words = [str(w) for w in rng.choice(filler, size=int(rng.integers(4, 9)))]
            if i % 2:
                words.insert(int(rng.integers(0, len(words) + 1)), "zorp")
            texts.append(" ".join(words))
            labels.append("yes" if i % 2 else "no")
        return texts, labels

    x, y = sample(200)
    trn, _, preproc = text.texts_from_array(x, y, maxlen=16, vocab_size=200, verbose=0)
    model = text.text_classifier(
        "transformer", trn, preproc=preproc, embed_dim=16, num_heads=2, num_layers=1,
        learning_rate=3e-3, verbose=0,
    )
    dataset = make_dataset(trn, batch_size=32, shuffle=True, seed=0)[0]
    model.fit(dataset, epochs=6, shuffle=False, verbose=0)  # the dataset shuffles itself
    ktlite.get_predictor(model, preproc).save(folder)
    return sample(40)[0]


def test_ktlite_serve_command_serves_a_saved_predictor(tmp_path):
    import ktlite

    folder = str(tmp_path / "predictor")
    texts = train_tiny_predictor(folder)
    expected = ktlite.load_predictor(folder).predict(texts)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "ktlite.cli", "serve", folder, "--port", str(port),
        "--max-batch-size", "8", "--max-wait-ms", "5",
    ]
    log = tmp_path / "server.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "ktlite serve did not start in 120 s"
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)

            def ask(i: int) -> httpx.Response:
                if i % 4 == 3:
                    return client.post("/predict", json={"texts": texts[i], "return_proba": 1})
                return client.post("/predict", json={"texts": [texts[i]]})

            with ThreadPoolExecutor(8) as pool:
                responses = list(pool.map(ask, range(len(texts))))
            metadata = client.get("/metadata").json()
            explanation = client.post("/explain", json={"text": "the zorp of a", "top_k": 2})
            stats = client.get("/health").json()
    finally:
        process.terminate()
        process.wait(timeout=30)

    for i, response in enumerate(responses):
        if i % 4 == 3:
            assert response.status_code == 422
        else:
            assert response.json()["predictions"] == [expected[i]]
    assert metadata["task"] == "text" and metadata["maxlen"] == 16
    assert sorted(metadata["classes"]) == ["no", "yes"]
    assert metadata["limits"]["max_batch_size"] == 8
    assert explanation.json()["label"] == "yes"
    assert explanation.json()["top"][0]["word"] == "zorp"
    assert stats["texts_predicted"] == 30 and stats["model_calls"] <= 30
