"""Load test of ``ktlite serve``: dynamic batching on vs off, same model, same run.

Trains the default text model (``text.text_classifier("transformer", ...)`` with its
defaults) briefly on a WordNet lexnames subset read from `--data` (or reuses a saved
predictor given with ``--predictor``), starts ``ktlite serve`` twice in separate processes on
free loopback ports, ``--max-batch-size 32`` (batching on) and ``--max-batch-size 1`` (off),
checks the served labels against ``predictor.predict``, then sends each server 2,000
single-text ``POST /predict`` requests from 32 concurrent keep-alive connections (this
process), in alternating blocks (on, off, off, on, ...) so that load from other processes on a
shared machine falls on both alike. Reports requests/s, p50/p99 latency, errors, the mean
model batch and the server's CPU time per request (all threads; far less disturbed by
neighbours than the wall clock). Loopback only; bounded in request count and time.

Run from the repository root:
    .venv/bin/python benchmarks/serve.py                       # train, then measure
    .venv/bin/python benchmarks/serve.py --predictor /tmp/p    # reuse (or create) /tmp/p

Data: WordNet lexnames (`wordnet_lexnames_{train,val,test}.csv.gz`) read from the folder
`--data` (default ../shared/data, beside the repository): the test texts it sends, and the
training texts when it trains its model. To rebuild it from a
clone of ktlite:
    sudo apt-get install wordnet-base
    python benchmarks/make_wordnet_lexnames.py --out ../shared/data
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from make_wordnet_lexnames import read_split, split_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# ../shared/data beside the repository; `--data` names another folder.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_wordnet(
    split: str, limit: int | None = None, seed: int = 0, data: str | Path = DATA
) -> tuple[list[str], list[str]]:
    """Reads (texts, labels) of one WordNet lexnames split from the folder `data`.

    The files are sorted by synset, so `limit` takes a seeded random subset (all classes),
    not the first rows.
    """
    texts, labels = read_split(split_path(data, split))
    if limit is not None and limit < len(texts):
        keep = np.random.default_rng(seed).permutation(len(texts))[:limit]
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    return texts, labels


def default_predictor(folder: str | None, n_train: int = 8000, epochs: int = 1,
                      data: str | Path = DATA) -> str:
    """Returns the folder of a saved default text model, training one if needed."""
    if folder and (Path(folder) / "ktlite.json").is_file():
        return folder
    import ktlite
    from ktlite import text
    from ktlite.data import make_dataset

    start = time.perf_counter()
    x, y = read_wordnet("train", n_train, data=data)
    trn, val, preproc = text.texts_from_array(x, y, verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc, verbose=0)
    dataset, _ = make_dataset(trn, batch_size=64, shuffle=True, seed=0)
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)  # the dataset shuffles itself
    predictor = ktlite.get_predictor(model, preproc)
    probs = predictor.predict_proba([str(t) for t in val.x])
    accuracy = float(np.mean(np.argmax(probs, axis=1) == np.asarray(val.y)))
    folder = folder or tempfile.mkdtemp(prefix="ktlite_bench_predictor_")
    predictor.save(folder)
    sys.stderr.write(
        f"trained the default transformer on {len(x)} WordNet texts for {epochs} epoch(s) "
        f"in {time.perf_counter() - start:.0f} s (validation accuracy {accuracy:.3f}); "
        f"saved to {folder}\n"
    )
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(folder: str, max_batch_size: int, max_wait_ms: float, log_path: Path):
    """Runs ``ktlite serve`` in a subprocess; yields its port once /health answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "ktlite.cli", "serve", folder, "--host", "127.0.0.1",
        "--port", str(port), "--max-batch-size", str(max_batch_size),
        "--max-wait-ms", str(max_wait_ms),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited early; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start in 180 s; see {log_path}")
                try:
                    status, _ = asyncio.run(one_request(port, "GET", "/health"))
                    if status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            yield port, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


class Connection:
    """A minimal HTTP/1.1 keep-alive client, so the load generator costs little CPU."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def one_request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    connection = Connection(port)
    try:
        return await connection.request(method, path, body)
    finally:
        connection.close()


async def load(port: int, texts: list[str], n_requests: int, concurrency: int, limit_s: float,
               offset: int = 0):
    """Sends `n_requests` one-text requests (texts from `offset` on) over `concurrency`
    keep-alive connections; returns (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors: list[str] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        connection = Connection(port)
        try:
            while next_index < n_requests:
                index, next_index = next_index, next_index + 1
                body = json.dumps({"texts": [texts[(offset + index) % len(texts)]]}).encode()
                start = time.perf_counter()
                try:
                    status, payload = await connection.request("POST", "/predict", body)
                    answer = json.loads(payload)
                    if status != 200 or len(answer.get("predictions", ())) != 1:
                        errors.append(f"{status}: {payload[:200]!r}")
                except (OSError, ValueError, asyncio.IncompleteReadError) as error:
                    errors.append(repr(error))
                    connection.close()
                    connection = Connection(port)
                latencies.append(time.perf_counter() - start)
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), limit_s)
    elapsed = time.perf_counter() - start
    return elapsed, np.array(latencies), errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(folder: str, settings: dict[str, int], texts: list[str],
            args: argparse.Namespace, log_dir: Path) -> dict[str, dict]:
    """Serves `folder` once per setting (name -> max_batch_size), all servers up together,
    and sends them the same requests in alternating blocks (ABBA order), so that load from
    other processes on a shared machine falls on every setting alike."""
    names = list(settings)
    totals = {
        name: {"latencies": [], "errors": [], "seconds": 0.0, "cpu": 0.0, "calls": 0, "texts": 0}
        for name in names
    }
    block = args.requests // args.blocks
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                server(folder, size, args.max_wait_ms, log_dir / f"server_{name}.log")
            )
            for name, size in settings.items()
        }
        check_answers(folder, texts, servers[names[0]][0])
        for port, _ in servers.values():  # warm-up, not counted
            asyncio.run(load(port, texts, 4 * args.concurrency, args.concurrency, args.limit_s))
        for b in range(args.blocks):
            for name in names if b % 2 == 0 else names[::-1]:
                port, pid = servers[name]
                before = json.loads(asyncio.run(one_request(port, "GET", "/health"))[1])
                cpu_before = cpu_seconds(pid)
                elapsed, latencies, errors = asyncio.run(
                    load(port, texts, block, args.concurrency, args.limit_s, offset=b * block)
                )
                total = totals[name]
                total["cpu"] += cpu_seconds(pid) - cpu_before
                after = json.loads(asyncio.run(one_request(port, "GET", "/health"))[1])
                total["calls"] += after["model_calls"] - before["model_calls"]
                total["texts"] += after["inputs_predicted"] - before["inputs_predicted"]
                total["seconds"] += elapsed
                total["latencies"].extend(latencies)
                total["errors"].extend(errors)
    results = {}
    for name, total in totals.items():
        latencies = np.array(total["latencies"])
        results[name] = {
            "batching": name,
            "max_batch_size": settings[name],
            "requests": len(latencies),
            "errors": len(total["errors"]),
            "first_errors": total["errors"][:3],
            "seconds": total["seconds"],
            "requests_per_s": len(latencies) / total["seconds"],
            "p50_ms": float(np.percentile(latencies, 50) * 1000),
            "p99_ms": float(np.percentile(latencies, 99) * 1000),
            "mean_batch": total["texts"] / max(total["calls"], 1),
            "server_cpu_ms_per_request": total["cpu"] * 1000 / max(len(latencies), 1),
        }
    return results


def check_answers(folder: str, texts: list[str], port: int) -> None:
    """The served labels equal the predictor's own, for 64 texts in one request."""
    import ktlite

    expected = ktlite.load_predictor(folder).predict(texts[:64])
    body = json.dumps({"texts": texts[:64]}).encode()
    status, payload = asyncio.run(one_request(port, "POST", "/predict", body))
    if status != 200 or json.loads(payload)["predictions"] != list(expected):
        raise SystemExit(f"served predictions differ from predictor.predict: {payload[:300]!r}")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--predictor", default=None, help="saved predictor folder (reused or created)"
    )
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--data", default=DATA,
                        help="folder of wordnet_lexnames_*.csv.gz (default ../shared/data)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--limit-s", type=float, default=300.0, help="bound on one load run")
    parser.add_argument(
        "--blocks", type=int, default=4, help="blocks per setting, alternated ABBA"
    )
    args = parser.parse_args()

    folder = default_predictor(args.predictor, n_train=args.n_train, data=args.data)
    texts, _ = read_wordnet("test", 2000, data=args.data)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ktlite_bench_logs_") as logs:
        by_name = measure(folder, {"on": 32, "off": 1}, texts, args, Path(logs))
    results = list(by_name.values())
    for result in results:
        print(json.dumps(result), flush=True)
    print(
        f"\n{args.requests} requests of one WordNet text each, concurrency {args.concurrency}, "
        f"in {args.blocks} alternating blocks per setting, loopback, `ktlite serve` in "
        f"separate processes; {machine()}\n"
        "| batching | max_batch_size | requests/s | p50 ms | p99 ms | mean batch "
        "| server CPU ms/request | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for r in results:
        print(
            f"| {r['batching']} | {r['max_batch_size']} | {r['requests_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_batch']:.1f} "
            f"| {r['server_cpu_ms_per_request']:.2f} | {r['errors']} |"
        )
    on, off = by_name["on"], by_name["off"]
    print(
        f"\nspeedup on/off: {on['requests_per_s'] / off['requests_per_s']:.2f}x requests/s, "
        f"{off['server_cpu_ms_per_request'] / on['server_cpu_ms_per_request']:.2f}x server "
        f"CPU per request (target >= 3x); p99 on: {on['p99_ms']:.0f} ms (target < 250 ms); "
        f"errors: {on['errors'] + off['errors']} (target 0); 1-min load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
