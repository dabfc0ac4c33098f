"""The one place where ktlite corrects Keras' TensorFlow trainer for training over replicas.

Why this exists
---------------
With TensorFlow 2.21 and Keras 3.15, `model.fit` and `model.evaluate` under a strategy of
several replicas fail in two reductions of `keras/src/backend/tensorflow/trainer.py`
(keras-team/keras#20585, tensorflow/tensorflow#72388):

1. `TensorFlowTrainer._maybe_symbolic_build` takes the first distributed batch and calls
   `strategy.reduce("MEAN", batch, axis=None)` on it, eagerly and in cross-replica context,
   only to learn the input shapes. Under a multi-worker strategy this raises
   "Attempt to convert a value (PerReplica ...) to a Tensor"; under `MirroredStrategy` it
   raises TensorFlow's bare "Inputs to operation AddN ... must have the same size and
   shape" whenever that first batch does not split evenly over the replicas (a validation
   set of 15 examples on 2 replicas: parts of 8 and 7).
2. `reduce_per_replica(..., reduction="auto")`, used on the outputs of every train and test
   step, takes the multi-worker branch `strategy.reduce("MEAN", value, axis=0)`. The step
   outputs are scalar metric results, and reducing a scalar over axis 0 raises
   "Invalid reduction dimension 0 for input with 0 dimensions".

What ktlite does
----------------
`apply(model, strategy)` patches *that model instance only*, and only when the strategy
really has several replicas and the installed Keras still has the faulty code:

1. `model._maybe_symbolic_build` is replaced by a version that builds from the first
   replica's local slice of the first batch. The batch is only used for its shapes, so no
   reduction is needed at all. Several workers, or several devices of one process (not
   TPUs, whose batches all have the full size).
2. Several workers only: `model.train_step` and `model.test_step` are wrapped so that every
   output gains a leading axis of length 1. Keras' own `MEAN over axis 0` across replicas
   then averages the replicas' values and returns exactly the shape the step produced, for
   scalars and for vector-valued metrics alike. Gradients, the loss and the optimizer are
   untouched.

Neither Keras nor TensorFlow is modified globally, other models and other strategies are
unaffected, and nothing changes for a single replica. The guard reads the installed Keras
trainer's source for each of the two faulty calls, so each half of the correction switches
itself off once Keras fixes that call; when the source cannot be read it falls back to the
Keras versions verified here (3.x up to 3.15).

With both corrections, every worker reports identical losses and ends with identical
weights; `tests/test_distribute_multi_worker.py` checks this with two real worker processes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import keras
import tensorflow as tf
from keras import tree

from ktlite import compat
from ktlite.distribute.strategy import is_multi_worker, needs_static_shapes

# Newest Keras release on which the faulty reductions were reproduced and this correction
# verified. Only consulted when the trainer's source code cannot be inspected.
_VERIFIED_UP_TO = (3, 15)

_MARK = "_ktlite_trainer_fix"


def needs_fix() -> bool:
    """Returns True if the installed Keras has a reduction over replicas ktlite corrects.

    Returns:
        True when the TensorFlow trainer still reduces the first distributed batch in
        `_maybe_symbolic_build`, or still reduces multi-worker step outputs over axis 0.

    Example:
        >>> from ktlite.distribute import trainer_fix
        >>> trainer_fix.needs_fix()
        True
    """
    return any(_faults())


def _faults() -> tuple[bool, bool]:
    """(batch reduced in the symbolic build, step outputs reduced over axis 0)."""
    if keras.backend.backend() != "tensorflow":
        return False, False
    try:
        build_src, reduce_src = compat.tf_trainer_sources()
    except (ImportError, AttributeError, OSError, TypeError):
        major, minor = (int(part) for part in keras.version().split(".")[:2])
        verified = major == 3 and (major, minor) <= _VERIFIED_UP_TO
        return verified, verified
    reduces_batch = "distribute_strategy.reduce(" in build_src
    reduces_axis0 = 'reduce("MEAN", v, axis=0)' in reduce_src.replace("'", '"')
    return reduces_batch, reduces_axis0


def apply(model: keras.Model, strategy: tf.distribute.Strategy) -> bool:
    """Applies the correction to one model, when its strategy has several replicas and
    the installed Keras needs it.

    Idempotent: applying it twice to the same model changes nothing more.

    Args:
        model: A Keras model built under `strategy`.
        strategy: The strategy the model trains under.

    Returns:
        True if the model is (now) corrected, False if no correction was needed.

    Example:
        >>> trainer_fix.apply(model, strategy)
        False
    """
    if getattr(model, _MARK, False):
        return True
    reduces_batch, reduces_axis0 = _faults()
    workers = is_multi_worker(strategy)
    reduces_axis0 = reduces_axis0 and workers
    devices = strategy.num_replicas_in_sync > 1 and not needs_static_shapes(strategy)
    if not (workers or devices) or not (reduces_batch or reduces_axis0):
        return False
    if reduces_batch:
        compat.replace_symbolic_build(model, _build_from_local_batch)
    if reduces_axis0:
        model.train_step = _with_replica_axis(model.train_step)
        model.test_step = _with_replica_axis(model.test_step)
    # Functions traced before the correction would keep the faulty reductions.
    model.train_function = None
    model.test_function = None
    setattr(model, _MARK, True)
    return True


def is_applied(model: keras.Model) -> bool:
    """Returns True if `apply` corrected this model.

    Args:
        model: A Keras model.

    Returns:
        Whether the model carries ktlite's correction.

    Example:
        >>> trainer_fix.is_applied(model)
        False
    """
    return bool(getattr(model, _MARK, False))


def _first_local_value(value: Any) -> Any:
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def _build_from_local_batch(self: keras.Model, iterator: Any = None, data_batch: Any = None):
    """Stands in for `TensorFlowTrainer._maybe_symbolic_build` on a corrected model."""
    if iterator is not None:
        for _, _, batches in iterator:
            data_batch = tree.map_structure(_first_local_value, next(batches))
            break
    with self.distribute_strategy.scope():
        compat.symbolic_build(self, data_batch)


def _with_replica_axis(step: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wraps a train/test step so each output has a leading length-1 replica axis."""

    @functools.wraps(step)
    def step_with_replica_axis(data):
        outputs = step(data)
        return tree.map_structure(
            lambda value: value if value is None else tf.expand_dims(value, 0), outputs
        )

    return step_with_replica_axis
