"""APIApp under a real uvicorn server on a free loopback port, started and stopped in-test."""

from __future__ import annotations

import contextlib
import json
import random
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from ktlite.apps import APIApp
from ktlite.apps.server import header_timeout_protocol
from tests.apps.fakes import FakePredictor

README = Path(__file__).resolve().parents[2] / "README.md"


class KeywordPredictor(FakePredictor):
    """Counts model calls, each costing 10 ms so that requests pile up."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def predict_outputs(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        time.sleep(0.01)
        return super().predict_outputs(texts)


@contextlib.contextmanager
def running(app: APIApp, timeout_s: float = 20.0, **config) -> Iterator[str]:
    """Serves `app` on 127.0.0.1 at a free port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, **config)
    )
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
        "animal" if "bird" in t else "rock" for t in texts
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


def test_a_connection_that_never_finishes_its_headers_is_closed():
    app = APIApp(KeywordPredictor())
    with running(app, http=header_timeout_protocol(0.5)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # never ends
            assert slow.recv(1024) == b""  # closed by the server, before recv's 10 s
        with httpx.Client(base_url=url, timeout=10) as client:  # others still served
            assert client.post("/predict", json={"inputs": ["a bird"]}).status_code == 200


def test_a_request_whose_client_hangs_up_is_dropped_by_the_real_server():
    predictor = FakePredictor()
    app = APIApp(predictor, max_batch_size=4, max_wait_ms=0)
    with running(app) as url, ThreadPoolExecutor(1) as pool:
        predictor.batches.clear()  # the start-up warm-up
        predictor.entered.clear()
        predictor.gate = gate = threading.Event()
        first = pool.submit(httpx.post, f"{url}/predict", json={"inputs": ["a bird"]}, timeout=30)
        assert predictor.entered.wait(10)  # the model now holds "a bird"
        port = int(url.rsplit(":", 1)[1])
        body = b'{"inputs": ["gone"]}'
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            deadline = time.monotonic() + 10
            while app.batcher.pending < 1:
                assert time.monotonic() < deadline, "the request never reached the queue"
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while app.batcher.pending:  # the hang-up cancels the queued job
            assert time.monotonic() < deadline, "the queued job of a gone client stayed"
            time.sleep(0.01)
        gate.set()
        assert first.result().json()["predictions"] == ["animal"]
    assert predictor.texts_seen == ["a bird"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`ktlite serve` of a tiny trained text predictor, in a subprocess on a free port."""
    import ktlite

    folder = str(tmp_path_factory.mktemp("serve") / "predictor")
    texts = train_tiny_predictor(folder)
    predictor = ktlite.load_predictor(folder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "ktlite.cli", "serve", folder, "--port", str(port),
        "--max-batch-size", "8", "--max-wait-ms", "5",
    ]
    log = Path(folder).parent / "server.log"
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
        yield {"url": url, "port": port, "texts": texts, "predictor": predictor,
               "pid": process.pid}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ktlite_serve_command_serves_a_saved_predictor(served):
    texts, expected = served["texts"], served["predictor"].predict(served["texts"])
    with httpx.Client(base_url=served["url"], timeout=10) as client:
        before = client.get("/health").json()

        def ask(i: int) -> httpx.Response:
            if i % 4 == 3:
                return client.post("/predict", json={"texts": texts[i], "return_proba": 1})
            return client.post("/predict", json={"texts": [texts[i]]})

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(ask, range(len(texts))))
        metadata = client.get("/metadata").json()
        explanation = client.post("/explain", json={"text": "the zorp of a", "top_k": 2})
        stats = client.get("/health").json()

    for i, response in enumerate(responses):
        if i % 4 == 3:
            assert response.status_code == 422
        else:
            assert response.json()["predictions"] == [expected[i]]
    assert metadata["predictor"] == "ktlite.text.predictor.TextPredictor"
    assert metadata["maxlen"] == 16 and sorted(metadata["classes"]) == ["no", "yes"]
    assert metadata["limits"]["max_batch_size"] == 8
    assert explanation.json()["label"] == "yes"
    assert explanation.json()["top"][0]["word"] == "zorp"
    assert stats["inputs_predicted"] - before["inputs_predicted"] == 30
    assert stats["model_calls"] - before["model_calls"] <= 30


def test_the_readme_curl_command_works_as_written(served):
    (line,) = [
        line for line in README.read_text().splitlines() if "curl" in line and "/predict" in line
    ]
    command = line.split("$", 1)[1].strip().replace("localhost:8000", f"localhost:{served['port']}")
    assert command.startswith("curl -s localhost:") and " -d '" in command  # form encoding
    completed = subprocess.run(
        shlex.split(command), capture_output=True, text=True, timeout=30, check=True
    )
    answer = json.loads(completed.stdout)
    assert answer == {"predictions": served["predictor"].predict(["a new text"])}


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


BAD_BODIES = [
    b'{"inputs": ["ok", "\\ud800"]}',
    b'{"inputs": []}',
    b'{"inputs": [1, 2]}',
    b"{oops",
    b'{"inputs": ["a"], "return_proba": "yes"}',
    b'{"texts": ["a"], "inputs": ["b"]}',
]


def test_soak_64_clients_mixing_good_and_bad_requests(served):
    texts = served["texts"]
    predictor = served["predictor"]
    labels = predictor.predict(texts)
    probabilities = predictor.predict_proba(texts)
    duration_s = 15.0
    rss_before = _rss_kib(served["pid"])
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    stop = time.monotonic() + duration_s
    counts = {"good": 0, "bad": 0}
    lock = threading.Lock()

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=served["url"], timeout=30, limits=limits) as client:
            while time.monotonic() < stop:
                if rng.random() < 0.3:
                    body = rng.choice(BAD_BODIES)
                    response = client.post("/predict", content=body)
                    assert response.status_code in (400, 422), (body, response.text)
                    kind = "bad"
                else:
                    picked = rng.sample(range(len(texts)), rng.randint(1, 4))
                    response = client.post(
                        "/predict",
                        json={"inputs": [texts[i] for i in picked], "return_proba": True},
                    )
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["predictions"] == [labels[i] for i in picked]
                    np.testing.assert_allclose(
                        body["probabilities"], probabilities[picked], atol=1e-4
                    )
                    kind = "good"
                with lock:
                    counts[kind] += 1

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(client_loop, range(64)))
    rss_after = _rss_kib(served["pid"])
    print(
        f"soak: {counts['good']} good and {counts['bad']} bad requests from 64 clients in "
        f"{duration_s:.0f} s; server RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB "
        f"({(rss_after - rss_before) / 1024:+.1f} MiB)"
    )
    assert counts["good"] > 64 and counts["bad"] > 0
    assert rss_after - rss_before < 512 * 1024  # a leak per request would show far beyond


@pytest.mark.parametrize(
    "value, error",
    [("10", TypeError), (True, TypeError), (None, TypeError), (0, ValueError),
     (-1.0, ValueError), (float("inf"), ValueError)],
)
def test_header_timeout_protocol_rejects_wrong_types_and_out_of_range_values(value, error):
    with pytest.raises(error, match=f"`header_timeout_s` must be .* "
                                    f"Received: header_timeout_s={value!r}"):
        header_timeout_protocol(value)


def test_header_timeout_protocol_takes_an_int_as_seconds():
    assert header_timeout_protocol(2).header_timeout_s == 2.0
