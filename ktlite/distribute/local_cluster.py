"""A multi-worker cluster of local processes on 127.0.0.1, for trying and testing multi-worker.

Real clusters get `TF_CONFIG` from their scheduler. To try the same training script with
several workers on one machine, `run_local_workers` starts one process per worker, each
with its own `TF_CONFIG` naming free loopback ports, waits for all of them within a time
limit, and kills every one of them as soon as one fails (a lone surviving worker would
otherwise wait for its peers forever).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ktlite.arguments import check_bool, check_int, check_positive_float, check_positive_int


@dataclass
class WorkerResult:
    """How one local worker process ended.

    Attributes:
        index: The worker's task index in `TF_CONFIG`.
        returncode: The exit status (negative: killed by that signal).
        output: Everything the worker wrote to stdout and stderr.
        timed_out: True if it was killed because the time limit passed.

    Example:
        >>> results = run_local_workers([sys.executable, "train.py"], num_workers=2)
        >>> [(r.index, r.returncode, r.timed_out) for r in results]
        [(0, 0, False), (1, 0, False)]
    """

    index: int
    returncode: int
    output: str
    timed_out: bool = False


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Returns `count` distinct TCP ports that were free on `host` a moment ago.

    Args:
        count: How many ports.
        host: The interface to probe.

    Returns:
        The port numbers.

    Raises:
        TypeError: If `count` is not an int.
        ValueError: If `count` < 0.

    Example:
        >>> len(free_ports(2))
        2
    """
    count = check_int(count, "count", 0)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_tf_config(ports: Sequence[int], index: int, host: str = "127.0.0.1") -> str:
    """Returns the `TF_CONFIG` JSON for worker `index` of a cluster on `host`.

    Args:
        ports: One port per worker, each an int in [1, 65535], no two alike.
        index: This worker's index, in `range(len(ports))`.
        host: The address every worker listens on (a non-empty str).

    Returns:
        A JSON string for the `TF_CONFIG` environment variable.

    Raises:
        TypeError: If `ports` is not a sequence of ports, a port or `index` is not an int,
            or `host` is not a str.
        ValueError: If `ports` is empty, a port is outside [1, 65535] or appears twice,
            `index` is not in `range(len(ports))`, or `host` is empty.

    Example:
        >>> json.loads(local_tf_config([2222, 2223], 1))["task"]
        {'type': 'worker', 'index': 1}
    """
    if isinstance(ports, (str, bytes)) or not hasattr(ports, "__len__"):
        raise TypeError(
            f"`ports` must be a list of ports, one per worker. Received: ports={ports!r:.80}"
        )
    if len(ports) == 0:
        raise ValueError(
            "`ports` must hold at least one port (one per worker). Received: ports=[]"
        )
    ports = [check_int(port, f"ports[{i}]", 1, 65535) for i, port in enumerate(ports)]
    repeated = sorted({port for port in ports if ports.count(port) > 1})
    if repeated:
        raise ValueError(
            "`ports` must hold one port per worker, no two alike. "
            f"Received: ports={ports!r:.80} (repeating {repeated})"
        )
    index = check_int(index, "index", 0, len(ports) - 1)
    if not isinstance(host, str):
        raise TypeError(
            f"`host` must be a host name or address (a str). Received: host={host!r:.80}"
        )
    if not host:
        raise ValueError("`host` must be a host name or address. Received: host=''")
    return json.dumps(
        {
            "cluster": {"worker": [f"{host}:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def run_local_workers(
    command: Sequence[str],
    num_workers: int = 2,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    check: bool = True,
) -> list[WorkerResult]:
    """Runs `command` once per worker, as a multi-worker cluster on 127.0.0.1.

    Each process gets the parent's environment, `env` on top, and its own `TF_CONFIG`.
    The call returns when every worker has exited; if one fails, or `timeout` seconds
    pass, the remaining workers are killed.

    Args:
        command: The program and its arguments, e.g. `[sys.executable, "train.py"]`.
        num_workers: How many worker processes, >= 1.
        timeout: Seconds for the whole cluster, a finite number > 0.
        env: Extra environment variables for every worker.
        cwd: Working directory of the workers.
        check: Raise `RuntimeError` (with the end of each worker's output) unless every
            worker exited with status 0.

    Returns:
        One `WorkerResult` per worker, in index order.

    Raises:
        TypeError: If `command` is a string (`"python train.py"`) or not a sequence,
            `num_workers` is not an int, `timeout` not a number (`"2"`, `True`) or `check`
            not a bool.
        ValueError: If `num_workers` < 1, `timeout` is not a finite number > 0, or
            `command` is empty.
        RuntimeError: If `check` and a worker failed or the time limit passed.

    Example:
        >>> results = run_local_workers([sys.executable, "train.py"], num_workers=2)
        >>> [r.returncode for r in results]
        [0, 0]
    """
    num_workers = check_positive_int(num_workers, "num_workers")
    timeout = check_positive_float(timeout, "timeout")
    check = check_bool(check, "check")
    if isinstance(command, (str, bytes)) or not isinstance(command, Sequence):
        # A string is a sequence too, and would run as one program per character.
        raise TypeError(
            "`command` must be a list of the program and its arguments, e.g. "
            f"[sys.executable, 'train.py']. Received: command={command!r}"
        )
    if not command:
        raise ValueError(f"`command` must name a program. Received: command={command!r}")
    ports = free_ports(num_workers)
    with contextlib.ExitStack() as stack:  # the logs are closed however the run ends
        logs = [
            stack.enter_context(tempfile.TemporaryFile(mode="w+", encoding="utf-8"))
            for _ in ports
        ]
        procs, timed_out = _run(command, ports, logs, timeout, env, cwd)
        results = []
        for index, (proc, log) in enumerate(zip(procs, logs)):
            log.seek(0)
            results.append(
                WorkerResult(
                    index=index,
                    returncode=proc.returncode,
                    output=log.read(),
                    timed_out=timed_out and proc.returncode != 0,
                )
            )
    if check and any(result.returncode != 0 for result in results):
        details = "\n".join(
            f"--- worker {r.index}: status {r.returncode}"
            f"{' (timed out)' if r.timed_out else ''} ---\n{r.output[-3000:]}"
            for r in results
        )
        raise RuntimeError(
            f"Local multi-worker run of {list(command)!r} failed"
            f"{f' after the {timeout} s limit' if timed_out else ''}:\n{details}"
        )
    return results


def _run(
    command: Sequence[str],
    ports: list[int],
    logs: list,
    timeout: float,
    env: Mapping[str, str] | None,
    cwd: str | None,
) -> tuple[list[subprocess.Popen], bool]:
    """Starts one worker per port, waits for them, and kills any still running.

    Returns:
        The workers (all exited) and whether the time limit passed.
    """
    procs: list[subprocess.Popen] = []
    timed_out = False
    try:
        for index, log in enumerate(logs):
            worker_env = {**os.environ, **(env or {})}
            worker_env["TF_CONFIG"] = local_tf_config(ports, index)
            procs.append(
                subprocess.Popen(
                    list(command),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=worker_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        while True:
            states = [proc.poll() for proc in procs]  # poll every worker, no short-circuit
            if all(state is not None for state in states):
                break
            if any(state not in (None, 0) for state in states):
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.1)
    finally:
        for proc in procs:
            _kill(proc)
    return procs, timed_out


def _kill(proc: subprocess.Popen) -> None:
    """Kills a worker we started (its own process group) and reaps it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
