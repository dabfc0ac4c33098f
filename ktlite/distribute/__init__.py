"""Training under `tf.distribute`: choosing a strategy and preparing a model for it.

The learner calls these; users normally only pass `strategy=`, `mixed_precision=`,
`jit_compile=` and `gradient_accumulation_steps=` to `ktlite.get_learner`.

- `get_strategy("auto")` picks TPU / multi-worker / multi-GPU / default from the
  environment (`ktlite/distribute/strategy.py`).
- `prepare_model(model, strategy=...)` rebuilds a model built outside the strategy's scope
  inside it, with the same weights, optimizer config, loss and metrics
  (`ktlite/distribute/prepare.py`).
- `check_batch_size(batch_size, strategy)` validates a global batch and returns the
  per-replica batch; `needs_static_shapes(strategy)` says whether every training batch must
  have the full batch size (TPUs; the learner then batches with `drop_remainder`).
- `ktlite/distribute/accumulation.py`: gradient accumulation that, unlike the Keras
  optimizers' own, also works under tf.distribute strategies.
- `ktlite/distribute/trainer_fix.py` is the single place where ktlite corrects Keras'
  TensorFlow trainer for training over several replicas, and says why.
- `run_local_workers` starts a multi-worker cluster of processes on 127.0.0.1, for trying
  multi-worker training (and testing it) on one machine.

Example:
    >>> strategy = ktlite.distribute.get_strategy("auto", verbose=1)
    >>> model = ktlite.distribute.prepare_model(model, strategy=strategy)
    >>> ktlite.distribute.check_batch_size(64, strategy)
    64
"""

from ktlite.distribute.accumulation import enabled_steps as enabled_accumulation_steps
from ktlite.distribute.accumulation import paused as paused_accumulation
from ktlite.distribute.accumulation import reset as reset_accumulation
from ktlite.distribute.accumulation import steps as accumulation_steps
from ktlite.distribute.local_cluster import WorkerResult, local_tf_config, run_local_workers
from ktlite.distribute.prepare import current_precision, prepare_model
from ktlite.distribute.strategy import (
    check_batch_size,
    describe,
    get_strategy,
    is_multi_worker,
    needs_static_shapes,
    num_replicas,
)

__all__ = [
    "WorkerResult",
    "accumulation_steps",
    "check_batch_size",
    "current_precision",
    "describe",
    "enabled_accumulation_steps",
    "get_strategy",
    "is_multi_worker",
    "local_tf_config",
    "needs_static_shapes",
    "num_replicas",
    "paused_accumulation",
    "prepare_model",
    "reset_accumulation",
    "run_local_workers",
]
