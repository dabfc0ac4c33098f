"""Choosing a `tf.distribute` strategy, and the global/per-replica batch arithmetic.

`get_strategy("auto")` looks at the environment in a fixed order and creates at most one
strategy of each kind per process (TensorFlow allows a multi-worker or TPU strategy to be
set up only once, so a second `"auto"` call returns the first call's object):

1. a TPU, when one resolves from the usual variables (`TPU_NAME`,
   `KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS`, Colab's `COLAB_TPU_ADDR`, or the variables a TPU VM
   sets, such as Kaggle's and Colab's `TPU_ACCELERATOR_TYPE` / `ISTPUVM`);
2. `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than one worker;
3. `MirroredStrategy` when more than one GPU is visible;
4. otherwise TensorFlow's default (single-device) strategy.

Multi-worker training: TensorFlow sets up its collective operations when the
`MultiWorkerMirroredStrategy` is created, and only before the program's first TensorFlow
operation. Call `ktlite.distribute.get_strategy("auto")` at the top of the training script,
before building the model or the data; `get_learner(..., strategy="auto")` then reuses it.
Every worker runs the same script with its own `TF_CONFIG`; `ktlite.distribute.
run_local_workers` does that on one machine.

TPU support is written against TensorFlow's documented TPU set-up sequence, but no TPU was
available while ktlite was developed: TPU selection is unit-tested with the environment and
the connection faked, and TPU training itself has not been run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Callable

import tensorflow as tf

from ktlite import compat
from ktlite._console import say, warn
from ktlite.arguments import check_positive_int, check_verbose

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu")

# Strategies created by `get_strategy`, keyed by kind. TensorFlow configures collective ops
# and TPU systems once per process, so creating a second multi-worker or TPU strategy fails;
# reusing the first one also lets the learner and `prepare_model` agree on one object.
_CACHE: dict[str, tf.distribute.Strategy] = {}

_TPU_VM_VARIABLES = ("TPU_ACCELERATOR_TYPE", "ISTPUVM", "TPU_WORKER_ID")


def get_strategy(
    strategy: str | tf.distribute.Strategy | None = None, verbose: int = 0
) -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` to train under.

    Args:
        strategy: `None` for the strategy currently in scope (TensorFlow's default
            single-device strategy outside any `strategy.scope()`), a
            `tf.distribute.Strategy` instance (returned as is), or a name: `"auto"` (pick
            from the environment, see the module docstring; the strategy already in scope
            wins when there is one), `"default"`, `"mirrored"`
            (all visible GPUs, or all logical CPU devices when there is no GPU),
            `"multi_worker"` (`MultiWorkerMirroredStrategy` from `TF_CONFIG`) or `"tpu"`.
        verbose: 0 (the default) is silent; 1 or 2 (a `Learner`'s levels) print one line
            saying which strategy was chosen and why.

    Returns:
        The strategy. Named strategies are created once per process and reused.

    Raises:
        ValueError: If `strategy` is an unknown name, `verbose` is not 0, 1 or 2, or
            `TF_CONFIG` is not valid JSON or not an object with an object `"cluster"`.
        TypeError: If `strategy` is neither `None`, a string nor a strategy, or `verbose`
            is not an int.
        RuntimeError: If a multi-worker strategy is asked for after TensorFlow has already
            initialised its devices (it must be created at program start), or `"tpu"` was
            asked for and no TPU resolves.

    Example:
        >>> strategy = ktlite.distribute.get_strategy("auto", verbose=1)
        >>> strategy.num_replicas_in_sync
        1
    """
    verbose = check_verbose(verbose, (0, 1, 2))
    if strategy is None:
        return tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(
            "`strategy` must be None, a tf.distribute.Strategy or one of "
            f"{STRATEGY_NAMES}. Received: strategy={strategy!r}"
        )
    name = strategy.lower().replace("-", "_")
    if name not in STRATEGY_NAMES:
        raise ValueError(
            f"`strategy` must be one of {STRATEGY_NAMES} or a tf.distribute.Strategy. "
            f"Received: strategy={strategy!r}"
        )
    if name == "auto" and tf.distribute.has_strategy():
        chosen, reason = tf.distribute.get_strategy(), "the strategy already in scope"
    else:
        if name == "auto":
            kind, reason = _detect(os.environ)
        else:
            kind, reason = name, "asked for by name"
        if kind == "default":
            chosen = tf.distribute.get_strategy()
        else:
            if kind not in _CACHE:
                _CACHE[kind] = _create(kind)
            chosen = _CACHE[kind]
    if verbose:
        say(f"ktlite: training under {describe(chosen)} ({reason}).")
    return chosen


def describe(strategy: tf.distribute.Strategy | None = None) -> str:
    """Returns a short human-readable name for a strategy, e.g. `"MirroredStrategy x2"`.

    Args:
        strategy: The strategy; `None` for the one currently in scope.

    Returns:
        The class name and the number of replicas in sync.

    Raises:
        TypeError: If `strategy` is neither `None`, a `tf.distribute.Strategy` nor a str.
        ValueError, RuntimeError: If `strategy` is a name `get_strategy` refuses or cannot
            create a strategy for (see its Raises).

    Example:
        >>> ktlite.distribute.describe(tf.distribute.get_strategy())
        'default strategy x1'
    """
    strategy = get_strategy(strategy)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    elif compat.is_default_strategy(strategy):
        name = "default strategy"
    else:
        name = type(strategy).__name__
    return f"{name} x{strategy.num_replicas_in_sync}"


def num_replicas(strategy: str | tf.distribute.Strategy | None = None) -> int:
    """Returns how many replicas a global batch is split over.

    Args:
        strategy: Anything `get_strategy` accepts.

    Returns:
        `strategy.num_replicas_in_sync` (1 for the default strategy).

    Raises:
        TypeError: If `strategy` is neither `None`, a `tf.distribute.Strategy` nor a str.
        ValueError, RuntimeError: If `strategy` is a name `get_strategy` refuses or cannot
            create a strategy for (see its Raises).

    Example:
        >>> ktlite.distribute.num_replicas(None)
        1
    """
    return int(get_strategy(strategy).num_replicas_in_sync)


def check_batch_size(
    batch_size: int, strategy: str | tf.distribute.Strategy | None = None,
    name: str = "batch_size",
) -> int:
    """Validates a global batch size and returns the per-replica batch size.

    ktlite's `batch_size` is always the global batch: one optimizer step sees
    `batch_size` samples in total, split evenly over the strategy's replicas. A batch that
    does not split evenly is refused rather than rounded, so the effective batch (and
    therefore the learning rate that suits it) is never changed behind the user's back.

    Args:
        batch_size: The global batch size, a positive int.
        strategy: Anything `get_strategy` accepts; `None` means the strategy in scope.
        name: the argument name for messages (`"eval_batch_size"`).

    Returns:
        `batch_size // num_replicas`.

    Raises:
        TypeError: If `batch_size` is not an int.
        ValueError: If `batch_size` is not positive, or not a multiple of the number of
            replicas.

    Example:
        >>> ktlite.distribute.check_batch_size(64, None)
        64
    """
    batch_size = check_positive_int(batch_size, name)
    replicas = num_replicas(strategy)
    if batch_size % replicas:
        lower = max(replicas, batch_size - batch_size % replicas)
        raise ValueError(
            f"`{name}` is the global batch and must be divisible by the number of "
            f"replicas ({replicas}, {describe(get_strategy(strategy))}). "
            f"Received: {name}={batch_size!r}; use {lower} or {lower + replicas}."
        )
    return batch_size // replicas


def needs_static_shapes(strategy: tf.distribute.Strategy | None) -> bool:
    """Returns True if `strategy` compiles every step for fixed tensor shapes (a TPU).

    Under such a strategy training batches must all have the full batch size (datasets
    batched with `drop_remainder=True`); `get_learner` batches that way by itself.

    Args:
        strategy: A strategy, or `None` for the one in scope.

    Returns:
        True for a `TPUStrategy` (any version).

    Raises:
        TypeError: If `strategy` is neither `None`, a `tf.distribute.Strategy` nor a str.
        ValueError, RuntimeError: If `strategy` is a name `get_strategy` refuses or cannot
            create a strategy for (see its Raises).

    Example:
        >>> ktlite.distribute.needs_static_shapes(None)
        False
    """
    strategy = get_strategy(strategy)
    return any(cls.__name__.startswith("TPUStrategy") for cls in type(strategy).__mro__)


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Returns True if `strategy` synchronises replicas across several processes.

    Args:
        strategy: A strategy, or `None` for the one in scope.

    Returns:
        True for a `MultiWorkerMirroredStrategy` whose cluster has more than one task.

    Raises:
        TypeError: If `strategy` is neither `None`, a `tf.distribute.Strategy` nor a str.
        ValueError, RuntimeError: If `strategy` is a name `get_strategy` refuses or cannot
            create a strategy for (see its Raises).

    Example:
        >>> ktlite.distribute.is_multi_worker(None)
        False
    """
    strategy = get_strategy(strategy)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    if resolver is None:
        return False
    spec = resolver.cluster_spec().as_dict()
    return sum(_task_count(spec.get(job)) for job in ("chief", "worker")) > 1


def _detect(environ: Mapping[str, str]) -> tuple[str, str]:
    """Decides which kind of strategy `"auto"` means here; returns (kind, reason)."""
    tpu = _tpu_address(environ)
    if tpu is not None:
        try:
            if "tpu" not in _CACHE:
                _CACHE["tpu"] = _connect_tpu(tpu)
            return "tpu", f"a TPU resolved from {tpu!r}"
        except Exception as error:  # noqa: BLE001 - any failure means "no usable TPU".
            warn(
                f"TPU variables are set but no TPU resolved ({type(error).__name__}: "
                f"{error}); falling back to the next strategy. Unset the TPU variables to "
                "silence this, or fix the TPU address.",
            )
    workers = _tf_config_workers(environ)
    if workers > 1:
        return "multi_worker", f"TF_CONFIG names {workers} workers"
    gpus = len(_list_gpus())
    if gpus > 1:
        return "mirrored", f"{gpus} GPUs visible"
    return "default", f"{gpus} GPU visible" if gpus == 1 else "no GPU or TPU found"


def _tpu_address(environ: Mapping[str, str]) -> str | None:
    """The `tpu=` argument for TPUClusterResolver implied by the environment, or None."""
    if environ.get("TPU_NAME"):
        return environ["TPU_NAME"]
    if environ.get("KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        return environ["KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"]
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if any(environ.get(name) for name in _TPU_VM_VARIABLES):
        return "local"
    return None


def _tf_config_workers(environ: Mapping[str, str]) -> int:
    """How many chief + worker tasks `TF_CONFIG` declares (0 when unset)."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"The TF_CONFIG environment variable is not valid JSON ({error}). "
            f"Received: TF_CONFIG={raw!r}"
        ) from None
    cluster = config.get("cluster", {}) if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        # TensorFlow's own resolver would fail later on it, with an AttributeError.
        raise ValueError(
            "The TF_CONFIG environment variable must be a JSON object whose \"cluster\" is "
            'an object of jobs, e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}. Received: TF_CONFIG={raw!r}'
        )
    return sum(_task_count(cluster.get(job)) for job in ("chief", "worker"))


def _task_count(tasks: Any) -> int:
    if isinstance(tasks, dict):
        return len(tasks)
    if isinstance(tasks, (list, tuple)):
        return len(tasks)
    return 0


def _list_gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def _create(kind: str) -> tf.distribute.Strategy:
    factories: dict[str, Callable[[], tf.distribute.Strategy]] = {
        "mirrored": _make_mirrored,
        "multi_worker": _make_multi_worker,
        "tpu": _make_tpu,
    }
    return factories[kind]()


def _make_mirrored() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus if gpus else tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _make_multi_worker() -> tf.distribute.Strategy:
    # The TF_CONFIG check "auto" makes: TensorFlow's resolver takes a TF_CONFIG such as
    # `[1]` for no cluster at all, and would train in a single process.
    _tf_config_workers(os.environ)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        raise RuntimeError(
            "MultiWorkerMirroredStrategy must be created before TensorFlow runs its first "
            "operation (building a model or a dataset counts). Call "
            "`ktlite.distribute.get_strategy('auto')` at the very top of the training "
            "script, before creating the model; ktlite reuses that strategy afterwards. "
            f"TensorFlow said: {error}"
        ) from error


def _make_tpu() -> tf.distribute.Strategy:
    address = _tpu_address(os.environ)
    try:
        return _connect_tpu(address if address is not None else "")
    except Exception as error:  # noqa: BLE001 - re-raised with the fix in the message.
        raise RuntimeError(
            "`strategy='tpu'` was asked for but no TPU resolved "
            f"(address {address!r}; {type(error).__name__}: {error}). Set TPU_NAME, or "
            "use strategy='auto' to fall back to the available devices."
        ) from error


def _connect_tpu(address: str) -> tf.distribute.Strategy:
    """Connects to a TPU and returns a TPUStrategy. Never run here: no TPU was available."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    if address != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
