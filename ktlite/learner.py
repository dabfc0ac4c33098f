"""The Learner: a compiled Keras model plus its data, with fastai-style training workflows.

`get_learner(model, train_data, val_data)` wraps the user's own compiled model. The
learner never replaces the user's optimizer, loss, metrics or callbacks: every fitting
policy drives the optimizer the model was compiled with, through `ktlite.lr.PolicyCallback`.

Example:
    >>> learner = get_learner(model, (x_train, y_train), (x_val, y_val), batch_size=32)
    >>> learner.lr_find()
    >>> learner.fit_onecycle(learner.lr_result.suggestion, epochs=3)
    >>> learner.validate(class_names=["neg", "pos"])
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ktlite import compat, evaluation, model_tools, saving
from ktlite._console import say, warn
from ktlite.arguments import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_moms,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_verbose,
)
from ktlite.bucketing import padding_invariant
from ktlite.callbacks import BestWeights, NonFiniteGuard, PeakReducer, check_monitor_name
from ktlite.classifier import encoded_class_names
from ktlite.data import TaskDataset, is_batched, make_dataset, to_arrays
from ktlite.labels import check_class_names, preview_values
from ktlite.validation import (
    check_batch,
    check_class_weight,
    check_data,
    check_model,
    output_width,
)

__all__ = ["Learner", "get_learner"]

#: `autofit(epochs=None)` stops at this many epochs if early stopping never triggers.
AUTOFIT_MAX_EPOCHS = 1000
_PLOT_KINDS = {"lr": "lrs", "momentum": "momentums", "loss": "losses"}
# The file `autofit(checkpoint_folder=...)` saves the best model to.
_CHECKPOINT_NAME = "best.keras"
# How many of the data's examples the check that padding cannot change outputs runs on.
_PROBE_EXAMPLES = 8


def _checkpoint_file(folder: Any) -> str:
    """The path of `autofit`'s checkpoint in `folder`, after refusing a folder it could not
    be saved in: checked before training, since saving fails only after the first epoch.
    The folder itself is made later, once every argument has been checked."""
    path = saving.as_path(folder, "checkpoint_folder")
    if os.fspath(folder) == "":
        # `Path("")` is the working directory: `best.keras` would land there unasked.
        raise ValueError(
            "`checkpoint_folder` must name a folder; an empty path would save best.keras "
            "into the working directory (pass '.' to mean that). Received: checkpoint_folder=''"
        )
    file = os.fspath(path / _CHECKPOINT_NAME)
    # A folder that is a file is refused where the folder is made (`saving.make_folder`),
    # as every folder ktlite makes, also before training.
    problem = None if path.is_file() else saving.save_path_problem(file)
    if problem:
        raise ValueError(
            f"`checkpoint_folder` cannot hold the checkpoint {file!r}: {problem}. Received: "
            f"checkpoint_folder={os.fspath(path)!r}"
        )
    return file


def _static_batches(dataset: tf.data.Dataset) -> bool:
    """Whether every tensor of the dataset's batches has a known batch size."""
    specs = tf.nest.flatten(dataset.element_spec)
    return all(spec.shape.rank and spec.shape[0] is not None for spec in specs)


def _no_epochs() -> keras.callbacks.History:
    """The `History` of a fit that ended no epoch."""
    history = keras.callbacks.History()
    history.epoch = []
    return history


def _leading_dims_unknown(spec: Any) -> bool:
    """Whether every tensor of a dataset's items has a first dimension of unknown size,
    the inputs' (the first part of a tuple) at rank 2 or more: one sample of a sequence,
    `(None,)`, is a sequence, not a batch."""
    inputs = tf.nest.flatten(spec[0] if isinstance(spec, tuple) else spec)
    specs = tf.nest.flatten(spec)
    return bool(specs) and all(
        isinstance(leaf, tf.TensorSpec) and leaf.shape.rank and leaf.shape[0] is None
        for leaf in specs
    ) and all(leaf.shape.rank >= 2 for leaf in inputs)


def _check_finite(dataset: tf.data.Dataset, name: str, fix: str) -> None:
    """Refuses a dataset that repeats forever (`.repeat()`): a pass over it never ends;
    `fix` says what to do instead."""
    if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
        raise ValueError(f"`{name}` repeats forever, so {fix}. Received: an infinite dataset")


def _probe_inputs(data: TaskDataset) -> tuple[Any, Any]:
    """Model inputs for a few of `data`'s examples (from the shortest to the longest) cut
    to the shortest one's width, so that nearly all fill it with no padding, and at full
    width (for `ktlite.bucketing.padding_invariant`)."""
    lengths = data.lengths.reshape(len(data), -1)
    order = np.argsort(lengths.max(axis=1), kind="stable")
    few = np.unique(order[np.linspace(0, len(order) - 1, _PROBE_EXAMPLES).astype(int)])
    # At least 2 positions, so that the examples differ beyond their first token.
    widths = np.maximum(lengths[few].min(axis=0), 2)
    x = tf.nest.map_structure(lambda a: tf.convert_to_tensor(a[few]), data.x)
    x = tuple(x) if isinstance(x, list) else x  # as `make_dataset` passes several inputs
    narrow = data.transform(x, tf.constant(widths if data.lengths.ndim == 2 else widths[0],
                                           tf.int32))
    full = data.transform(x)
    # Self-supervised transforms return (inputs, targets, ...).
    return (narrow[0], full[0]) if data.self_supervised else (narrow, full)


def _distribute() -> Any:
    """`ktlite.distribute`, imported when first needed."""
    return importlib.import_module("ktlite.distribute")


def _enabled_accumulation(model: keras.Model) -> int | None:
    """The batches per update of ktlite's accumulation already enabled on `model`, or None
    (also in a build without `ktlite.distribute`, where none can be)."""
    try:
        return _distribute().enabled_accumulation_steps(model)
    except ImportError:
        return None


class Learner:
    """Trains a compiled Keras model on given data with LR finding and cyclical policies.

    Build one with `get_learner`, which documents every argument. The fitting methods
    drive the user's own optimizer with a policy and then give it back its learning rate
    and momentum, whether the fit ends, fails or is interrupted.

    Attributes:
        model: the user's compiled `keras.Model` (the same object, unless a distribution
            setting required `ktlite.distribute.prepare_model` to rebuild it).
        train_data, val_data: the data as given (in-memory data converted to a
            `TaskDataset`); assigning new data checks it as `get_learner` does, and the
            next fit or validation uses it.
        batch_size, eval_batch_size: global batch sizes for training and evaluation.
        drop_remainder: whether training batches all have the full `batch_size` (static
            shapes; on by default under `TPUStrategy`).
        bucketing: whether sequence batches are length-bucketed and padded per batch
            (see `get_learner`).
        strategy: the `tf.distribute.Strategy` the model trains under.
        history: the Keras `History` of the last fit (of an interrupted one, its epochs
            that ended).
        step_history: per-step `"lrs"`, `"momentums"` and `"losses"` of the last fit.
        lr_result: the `LRFindResult` of the last `lr_find()`.

    Example:
        >>> learner = ktlite.get_learner(model, train_data=(x, y), val_data=(xv, yv))
        >>> learner.fit_onecycle(learner.lr_find().suggestion, 3)
    """

    # Where a user gives validation data when the learner is made (for messages).
    _val_source = "`val_data` to get_learner"

    def __init__(
        self,
        model: keras.Model,
        train_data: Any,
        val_data: Any = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        strategy: Any = None,
        mixed_precision: str | None = None,
        jit_compile: bool | None = None,
        gradient_accumulation_steps: int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int = 1,
        drop_remainder: bool | None = None,
        bucketing: bool = True,
    ) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.eval_batch_size = (
            check_positive_int(eval_batch_size, "eval_batch_size", allow_none=True)
            or self.batch_size
        )
        self.verbose = check_verbose(verbose, (0, 1, 2))
        self.shuffle = check_bool(shuffle, "shuffle")
        self.seed = check_seed(seed)
        self.bucketing = check_bool(bucketing, "bucketing")
        if drop_remainder is not None:
            drop_remainder = check_bool(drop_remainder, "drop_remainder")
        model = check_model(model)
        self.model, self.strategy = self._prepare_distribution(
            model, strategy, mixed_precision, jit_compile, gradient_accumulation_steps
        )
        if self.seed is None and _distribute().is_multi_worker(self.strategy):
            # Every worker must shuffle the same way, or their shards overlap.
            self.seed = 0
        if drop_remainder is None:
            drop_remainder = _distribute().needs_static_shapes(self.strategy)
        self.drop_remainder = drop_remainder
        self._train_data: Any = None
        self.train_data = train_data
        self.val_data = val_data
        self.history: keras.callbacks.History | None = None
        self.step_history: dict[str, list] = {"lrs": [], "momentums": [], "losses": []}
        self.lr_result: Any = None
        # key -> (the data, the settings, (dataset, samples)): see `_cached`.
        self._cache: dict[str, tuple[Any, tuple, tuple[tf.data.Dataset, int | None]]] = {}
        self._steps_cache: int | None = None
        # Variables the user froze one by one (LoRA's base kernels): `freeze`/`unfreeze`
        # keep them frozen even after their layer was frozen and unfrozen.
        self._frozen_variables = model_tools.frozen_variables(self.model)
        model_tools.build_optimizer(self.model, self.strategy)

    @property
    def train_data(self) -> Any:
        """The training data (see the class docstring)."""
        return self._train_data

    @train_data.setter
    def train_data(self, data: Any) -> None:
        checked = self._check_data(data, "train_data")
        previous, self._train_data = self._train_data, checked
        if getattr(self, "_val_data", None) is not None:
            try:  # the validation data must still be encoded as the training data
                self._check_encoding(self._val_data, "val_data")
            except ValueError:
                self._train_data = previous
                raise

    @property
    def val_data(self) -> Any:
        """The validation data, or `None` (see the class docstring)."""
        return self._val_data

    @val_data.setter
    def val_data(self, data: Any) -> None:
        self._val_data = None if data is None else self._check_data(data, "val_data")

    # ------------------------------------------------------------------ set-up
    def _prepare_distribution(
        self,
        model: keras.Model,
        strategy: Any,
        mixed_precision: str | None,
        jit_compile: bool | None,
        gradient_accumulation_steps: int | None,
    ) -> tuple[keras.Model, tf.distribute.Strategy]:
        optimizer = model_tools.inner_optimizer(getattr(model, "optimizer", None))
        native = getattr(optimizer, "gradient_accumulation_steps", None) or 1
        one_batch_per_call = getattr(model, "steps_per_execution", 1) == 1
        if gradient_accumulation_steps is None and native > 1 and one_batch_per_call:
            # Keras's own accumulation cannot be paused for the LR finder's sweep, and its
            # epochs need not end on an update, which one-cycle schedules count on.
            warn(
                f"The optimizer's own `gradient_accumulation_steps={native}` runs as ktlite's "
                "gradient accumulation (the same averaging, which the LR finder can pause "
                "and whose epochs end on an update): `learner.model.optimizer` is a copy "
                f"of yours. Pass `get_learner(..., gradient_accumulation_steps={native})` "
                "with an optimizer that does not accumulate to skip the copy.",
            )
            gradient_accumulation_steps = native
        if strategy is None:
            # A model created in a strategy's scope has its variables there: it trains
            # under that strategy (shared shuffle seed, batch checks), not the one in scope.
            created_under = compat.creation_strategy(model)
            if created_under is not None and not compat.is_default_strategy(created_under):
                strategy = created_under
        settings = {
            "strategy": strategy,
            "mixed_precision": mixed_precision,
            "jit_compile": jit_compile,
            "gradient_accumulation_steps": gradient_accumulation_steps,
        }
        # A model loaded later (`load_model`) is prepared alike; a checkpoint does not keep
        # ktlite's accumulation, also not one the model came with (from `prepare_model`).
        self._settings = {
            **settings,
            "gradient_accumulation_steps": (
                gradient_accumulation_steps or _enabled_accumulation(model)),
        }
        if all(value is None for value in settings.values()):
            return model, tf.distribute.get_strategy()
        try:
            distribute = importlib.import_module("ktlite.distribute")
        except ImportError:
            given = ", ".join(f"{k}={v!r}" for k, v in settings.items() if v is not None)
            raise NotImplementedError(
                "Distribution settings need ktlite.distribute, which is not available in "
                f"this build. Received: {given}"
            ) from None
        distribute.check_batch_size(self.batch_size, strategy)
        # Every validation batch but the last then splits evenly over the replicas.
        distribute.check_batch_size(self.eval_batch_size, strategy, "eval_batch_size")
        model = distribute.prepare_model(model, **settings, verbose=self.verbose)
        return model, distribute.get_strategy(strategy)

    def _check_data(self, data: Any, name: str) -> Any:
        """Validates user data once; in-memory data becomes a `TaskDataset`.

        An `(x, y)` tuple of raw examples is read by the task that the loader read the
        training (or validation) examples with (the data's `reader`); so are examples alone
        where the task makes the labels from them (language models). A tuple of strings is
        examples, never `(x, y)`: no task reads one string as its examples. Validation data
        that repeats forever is refused before anything runs: a pass over it never ends.
        """
        if isinstance(data, tf.data.Dataset) and name != "train_data":
            _check_finite(
                data, name, "validation would never end: pass a dataset that ends (without "
                "`.repeat()`, or a part of it, `.take(n)`)",
            )
        if isinstance(data, tuple) and data and all(isinstance(item, str) for item in data):
            data = list(data)
        read = None
        if isinstance(data, tuple) and len(data) == 2:
            read = self._read_raw(data[0], data[1], name)
        elif not isinstance(data, (tuple, TaskDataset, tf.data.Dataset, keras.utils.PyDataset)):
            read = self._read_raw(data, None, name)
            if read is not None and read.y is None and not read.self_supervised:
                raise ValueError(
                    f"`{name}` needs labels to be judged: pass `(examples, labels)`. "
                    f"Received: {len(read)} examples without labels"
                )
        checked = check_data(
            self.model, data if read is None else read, name,
            lambda d: self._dataset(d, training=False)[0],
        )
        self._check_encoding(checked, name)
        return checked

    def _check_encoding(self, data: Any, name: str) -> None:
        """Refuses data encoded by another preprocessor than the training data's.

        Two loader calls each fit their own classes, vocabulary, categories or scaling, so
        the class id 0 or the category id 3 of a separately loaded validation set may stand
        for something else than in the training data: judged together, a right model would
        score as wrong.
        """
        trained = getattr(self, "train_data", None)
        if name == "train_data" or not isinstance(trained, TaskDataset):
            return
        classes, given = encoded_class_names(trained), encoded_class_names(data)
        if classes is not None and given is not None and given != classes:
            what = (f"other classes than the training data ({preview_values(given, 8)} "
                    f"against {preview_values(classes, 8)}): its label ids would be read as "
                    "the training data's classes")
        elif isinstance(data, TaskDataset) and not trained.encoded_like(data):
            what = ("another preprocessor than the training data's, fitted on its own "
                    "examples (its own vocabulary, categories or scaling): the model would "
                    "read its inputs as the training data's")
        else:
            return
        raise ValueError(
            f"`{name}` was encoded with {what}. Build it with the training data's "
            "preprocessor (the loader's validation arguments, e.g. `x_test`, or the task's "
            "`*_dataset(x, y, preproc)`), or pass the raw examples `(x, y)`, which the "
            "learner reads with the training data's preprocessor."
        )

    def _read_raw(self, x: Any, y: Any, name: str) -> TaskDataset | None:
        """`x` (and labels `y`) read by the training (else validation) data's `reader`.

        None when neither has one (the data are taken as preprocessed inputs).
        """
        source = next(
            (data for data in (getattr(self, "train_data", None), getattr(self, "val_data", None))
             if getattr(data, "reader", None) is not None),
            None,
        )
        if source is None:
            return None
        try:
            return source.reader(x, y)
        except (TypeError, ValueError) as err:
            kind = TypeError if isinstance(err, TypeError) else ValueError
            raise kind(
                f"`{name}` is read as raw {source.task or 'task'} examples, as its "
                f"loader read the learner's data: {err} (Inputs already preprocessed "
                "go in a TaskDataset or a tf.data.Dataset.)"
            ) from err

    def _dataset(
        self, data: Any, training: bool, repeat: bool = False
    ) -> tuple[tf.data.Dataset, int | None]:
        """The one place where ktlite turns data into the dataset the model sees.

        Batches with the global `batch_size` (training) or `eval_batch_size`, shuffles only
        for training. With `drop_remainder` every training batch has the full batch size, so
        its shape is static (TPUs compile for fixed shapes). Under a multi-replica strategy,
        Keras splits each global batch over the replicas when it distributes this dataset,
        and weighs each replica's mean loss alike: the examples of a last, smaller batch
        that does not split evenly weigh unevenly in its step (ktlite's token losses, summed
        over the replicas, do not; `drop_remainder=True` leaves such batches out).
        """
        batch_size = self.batch_size if training else self.eval_batch_size
        static = training and self.drop_remainder
        dataset, n = make_dataset(
            data,
            batch_size,
            shuffle=training and self.shuffle,
            seed=self.seed,
            drop_remainder=static,
            repeat=repeat,
            batched=self._batched_hint(data),
            bucketing=self._bucketing(data),
            augment=training,
        )
        if static and not _static_batches(dataset):
            warn(
                "`drop_remainder` is on (the strategy compiles for fixed shapes) but the "
                "training dataset brings its own batches, whose size is not static. Batch it "
                "with `.batch(batch_size, drop_remainder=True)`.",
            )
        return dataset, n

    def _bucketing(self, data: Any) -> bool:
        """Whether `data`'s batches may be padded per batch: asked for, shapes need not be
        static, the model takes any length, and padding cannot change its outputs.

        A model built for one fixed sequence length (e.g. `keras.Input(shape=(128,))`)
        gets fixed-width batches whatever `bucketing` says, and so does training that
        compiles for fixed shapes (`drop_remainder`, e.g. under `TPUStrategy`), and a model
        whose outputs change with the padding after an example (one that does not mask it):
        `ktlite.bucketing.padding_invariant` checks that on a few of the data's examples,
        once per model, transform and training step, and warns once.
        """
        inputs = getattr(self.model, "inputs", None) or []
        if not self.bucketing or self.drop_remainder or not all(
            len(spec.shape) < 2 or spec.shape[1] is None for spec in inputs
        ):
            return False
        if not isinstance(data, TaskDataset) or data.lengths is None:
            return True  # nothing to pad per batch: the check would have nothing to run on
        return padding_invariant(self.model, data.transform, lambda: _probe_inputs(data))

    def _length_sorted(self, data: Any) -> tuple[Any, np.ndarray | None]:
        """`data` shortest first (so evaluation batches are bucketed too) and the order used.

        Returns `(data, None)` when nothing is reordered: data without lengths, or
        bucketing off. `outputs[order] = predictions` puts predictions back in place.
        """
        if not (isinstance(data, TaskDataset) and data.lengths is not None
                and self._bucketing(data)):
            return data, None
        lengths = data.lengths.reshape(len(data), -1).max(axis=1)
        order = np.argsort(lengths, kind="stable")
        return data.subset(order), order

    def _predict_in_order(self, data: TaskDataset, verbose: int = 0) -> Any:
        """`model.predict` over a `TaskDataset` (labels ignored), in the data's own order.

        Outputs per position (`sequence_labels`) keep the fixed width, so that batches
        of different widths still stack into one array.
        """
        lengths = data.lengths if self._bucketing(data) and not data.sequence_labels else None
        unlabelled = TaskDataset(data.x, None, data.transform, data.task, lengths=lengths)
        ordered, order = self._length_sorted(unlabelled)
        dataset, _ = self._dataset(ordered, training=False)
        outputs = self.model.predict(dataset, verbose=verbose)
        if order is None:
            return outputs

        def restore(sorted_outputs: np.ndarray) -> np.ndarray:
            restored = np.empty_like(sorted_outputs)
            restored[order] = sorted_outputs
            return restored

        return tf.nest.map_structure(restore, outputs)

    def _batched_hint(self, data: Any) -> bool | None:
        """For a dataset with no batching step, whether its items are batches.

        With symbolic model inputs: whether the item's inputs have their ranks (a dict or
        tuple of them for several, matched as the model's inputs are structured). With none
        to compare with (a subclassed model, a `Sequential` without `Input`): when every
        tensor of an item has an unknown leading dimension (as batches from `from_generator`
        do), they are taken as batches, as Keras takes any dataset. `None`: left to
        `is_batched`.
        """
        if not isinstance(data, tf.data.Dataset) or is_batched(data):
            return None
        inputs = getattr(self.model, "inputs", None) or []
        spec = data.element_spec
        if not inputs:
            return _leading_dims_unknown(spec) or None
        x_specs = tf.nest.flatten(spec[0] if isinstance(spec, tuple) else spec)
        if len(x_specs) != len(inputs) or not all(
                isinstance(s, tf.TensorSpec) and s.shape.rank is not None for s in x_specs):
            return None
        # `inputs` is flat, a dict's in key order, as `tf.nest.flatten` orders it.
        return [s.shape.rank for s in x_specs] == [len(t.shape) for t in inputs]

    def _cached(
        self, key: str, data: Any, training: bool, repeat: bool = False
    ) -> tuple[tf.data.Dataset, int | None]:
        # What the dataset is built from: assigning any of these (`learner.batch_size = 64`,
        # `learner.train_data = ...`) rebuilds it. Kept, a dataset shuffled from the seed
        # draws another order on each pass (each fit's), and the same ones from the start.
        settings = ((self.batch_size, self.shuffle, self.seed, self.drop_remainder)
                    if training else (self.eval_batch_size,)) + (self._bucketing(data),)
        source, built_with, _ = self._cache.get(key, (None, None, None))
        if source is not data or built_with != settings:
            if key == "train":
                self._steps_cache = None
            # Metrics do not depend on the order, so validation runs shortest first.
            ordered = data if training else self._length_sorted(data)[0]
            self._cache[key] = (data, settings,
                                self._dataset(ordered, training=training, repeat=repeat))
        return self._cache[key][2]

    def _train_steps(self) -> int:
        """Batches in one pass over the training data (counted once if unknown).

        A dataset of unknown length is counted over one pass, and each epoch then trains
        that many batches: the fit is planned on them (the schedule, ktlite's gradient
        accumulation groups, the progress bar). A dataset whose length varies from pass to
        pass (a random `filter`, `rejection_resample`) is repeated and cut to that length,
        as `lr_find` cuts its sweep, so an epoch may end within a pass or go on into the
        next one, where a fixed length would fail mid-fit.
        """
        dataset, _ = self._cached("train", self.train_data, True)  # may reset the count
        if self._steps_cache is None:
            _check_finite(
                dataset, "train_data", "an epoch has no end: pass `steps_per_epoch` to the fit "
                "method (`lr_find(epochs=...)`, which plans the fit by epochs, cannot take such "
                "data: leave `epochs` out)",
            )
            steps = int(dataset.cardinality())
            if steps < 0:
                steps = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
                # Telling Keras the length avoids its "ran out of data" warning each fit.
                # `repeat()` ends at a pass that yields nothing, so a one-shot generator
                # still fails the assertion rather than looping.
                counted = dataset.repeat().take(steps).apply(
                    tf.data.experimental.assert_cardinality(steps)
                )
                source, settings, (_, n) = self._cache["train"]
                self._cache["train"] = (source, settings, (counted, n))
            if steps == 0:
                raise ValueError(
                    "`train_data` holds fewer samples than one batch, and `drop_remainder` "
                    "drops the incomplete batch, so an epoch would train nothing: lower "
                    f"`batch_size`. Received: batch_size={self.batch_size}"
                )
            self._steps_cache = steps
        return self._steps_cache

    # ------------------------------------------------------------------ LR finder
    def lr_find(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_steps: int | None = None,
        stop_factor: float = 4.0,
        show_plot: bool = False,
        verbose: int | None = None,
        epochs: int | None = None,
        confirm: bool = False,
        confirm_steps: int | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        sweeps: int = 1,
    ) -> Any:
        """Sweeps the learning rate exponentially per batch to find a good one.

        Delegates to `ktlite.lr.find_lr`: the weights, metrics, optimizer variables and
        learning rate are exactly the same afterwards. In-memory training data is shuffled
        for the sweep without touching the order the next fit draws; a `tf.data` pipeline or
        `PyDataset` of your own is read as a fit reads it, so a pipeline that reshuffles
        from a seed (or a `PyDataset`'s `on_epoch_end`) moves on, and the next fit draws
        another order than it would have without the sweep. With ktlite's gradient
        accumulation the sweep runs with accumulation paused (one update per batch), so its
        suggestions are for the per-step `batch_size`; see `ktlite.optimizers.scale_lr` for
        the effective batch.

        Args:
            start_lr: first learning rate of the sweep. Default 1e-7.
            end_lr: last learning rate. Default 10.
            num_steps: number of batches; `None` means `find_lr`'s default, 200 (the
                data is cycled through if it holds fewer).
            stop_factor: stop when the smoothed loss exceeds this times its minimum.
            show_plot: also draw the curve (`lr_plot()`) and display it in a notebook.
            verbose: progress output; defaults to the learner's `verbose`.
            epochs: epochs of the fit you plan (one pass over `train_data` each). Scales
                `result.suggestion` for that many optimizer updates (`ktlite.lr.budget`):
                higher for short fits, lower for long ones. Default `None`: the suggestion
                as read off the curve, calibrated for fits of about a thousand updates.
            confirm: after the sweep, train briefly from the same weights at the two or
                three rates the rules disagree on, each moved to the short run's length by
                the budget rule (`ktlite.lr.confirm`), judge them by validation loss
                (training loss without `val_data`), restore everything,
                and make the best one `result.suggestion`; the runs are recorded in
                `result.config["confirm"]`. Default False.
            confirm_steps: batches per confirming run (with `confirm=True` only); default a
                quarter of the sweep.
            callbacks: extra Keras callbacks to run during the sweep (e.g. a timer); they
                see the sweep's batches, not the confirming runs'. None may set the
                learning rate (the sweep sets it at every step).
            sweeps: sweeps to run from the same weights, each over other batches (1 to
                100); every suggestion is the geometric mean of the readings that are not
                nan (`ktlite.lr.find_lr`), steadier for `sweeps` times the sweep's steps.
                `callbacks` see each sweep as a fit of its own. Default 1.

        Returns:
            The `LRFindResult` (also kept as `learner.lr_result`).

        Raises:
            TypeError: for a `confirm` or `show_plot` that is not a bool, a count
                (`num_steps`, `epochs`, `confirm_steps`, `sweeps`, `verbose`) that is not
                an int, a sweep setting (`start_lr`, `end_lr`, `stop_factor`) that is not
                a number, or `callbacks` that is not a list of Keras callbacks.
            ValueError: for a count below 1 or a sweep setting out of range (`start_lr`,
                `end_lr`, `num_steps`, `stop_factor`, `verbose`, `sweeps` above 100),
                `confirm_steps` without `confirm=True`, or an optimizer whose own
                `gradient_accumulation_steps` Keras runs (`steps_per_execution` > 1), which
                the sweep cannot pause.

        Example:
            >>> result = learner.lr_find()
            >>> result.suggestion
        """
        from ktlite.lr import PolicyCallback, find_lr

        check_bool(confirm, "confirm")
        check_bool(show_plot, "show_plot")
        confirm_steps = check_positive_int(confirm_steps, "confirm_steps", allow_none=True)
        if confirm_steps is not None and not confirm:
            raise ValueError(
                "`confirm_steps` sets the length of the confirming runs, which only "
                "`confirm=True` makes: pass both, or neither. "
                f"Received: confirm_steps={confirm_steps}, confirm={confirm}"
            )
        epochs = check_positive_int(epochs, "epochs", allow_none=True)
        PolicyCallback.check_callbacks(callbacks)
        self._check_no_keras_accumulation()
        planned_steps = None
        if epochs is not None:
            updates = -(-self._train_steps() // _distribute().accumulation_steps(self.model))
            planned_steps = epochs * updates
        # The sweep sets one learning rate per batch, so it runs without accumulation.
        with _distribute().paused_accumulation(self.model), self._kept_draws():
            # A dataset of its own: a pass over the cached one would move its shuffling on,
            # and a seeded fit after `lr_find` would see other batches than one without it.
            dataset, _ = self._dataset(self.train_data, training=True)
            self.lr_result = find_lr(
                self.model,
                dataset,
                start_lr=start_lr,
                end_lr=end_lr,
                num_steps=num_steps,
                stop_factor=stop_factor,
                verbose=self.verbose if verbose is None else verbose,
                planned_steps=planned_steps,
                callbacks=callbacks,
                sweeps=sweeps,
            )
            if confirm:
                self._confirm_lr(self.lr_result, dataset, planned_steps, confirm_steps)
        if show_plot:
            from ktlite.plots import show

            show(self.lr_plot())
        return self.lr_result

    def _kept_draws(self) -> contextlib.AbstractContextManager:
        """Where `lr_find` builds its data and sweeps (nothing here): a learner whose
        training transform draws at random overrides it, so the next fit draws as it would
        have without the sweep."""
        return contextlib.nullcontext()

    def _confirm_lr(
        self, result: Any, dataset: tf.data.Dataset, planned_steps: int | None, steps: int | None
    ) -> None:
        """Settles `result.suggestion` with short runs at the rates the rules disagree on."""
        import time

        from ktlite.lr.confirm import candidate_lrs, confirm_lr

        scaled = {rule: result.suggest(planned_steps, rule) for rule in result.suggestions}
        lrs = candidate_lrs(scaled, result.suggestion)
        if not lrs:
            first = (result.per_sweep or [result])[0]  # the curve `lr_plot` draws
            if not first.config.get("stopped_early"):
                why = "the loss never fell"
            elif not math.isfinite(first.smoothed[-1]):
                why = (f"it stopped after {len(first.lrs)} of {first.config['num_steps']} "
                       "steps, its loss no longer finite")
            else:
                why = (f"it stopped after {len(first.lrs)} of {first.config['num_steps']} "
                       "steps, its loss past `stop_factor` times its lowest (the sweep's "
                       "warning says why)")
            where = (f"in any of its {len(result.per_sweep)} sweeps (the first: {why}"
                     if result.per_sweep else f"in this sweep ({why}")
            raise ValueError(
                f"`confirm=True` has no rates to try: no rule found a rate {where}"
                ", see `learner.lr_plot()`). Sweep other rates (`start_lr`, `end_lr`), or more "
                "steps (`num_steps`). Received: suggestions "
                f"{ {rule: float(lr) for rule, lr in result.suggestions.items()} }"
            )
        val = None if self.val_data is None else self._cached("val", self.val_data, False)[0]
        start = time.perf_counter()
        record = confirm_lr(
            self.model, dataset, lrs, steps=steps or max(1, len(result.lrs) // 4),
            val_dataset=val, planned_steps=planned_steps,
        )
        record["seconds"] = time.perf_counter() - start
        result.config["confirm"] = record
        result.suggestion = record["chosen"]

    def _require_lr_result(self) -> Any:
        if self.lr_result is None:
            raise ValueError("No LR sweep yet: call `learner.lr_find()` first.")
        return self.lr_result

    def lr_plot(self, suggest: bool = True) -> Any:
        """Plots the last `lr_find()` loss against learning rate (log axis).

        Args:
            suggest: mark the suggested learning rates.

        Returns:
            The matplotlib `Figure`.

        Raises:
            ValueError: if `lr_find()` has not been run.

        Example:
            >>> fig = learner.lr_plot()
        """
        from ktlite.plots import plot_lr_find

        return plot_lr_find(self._require_lr_result(), suggest=suggest)

    def lr_estimate(self) -> dict[str, float]:
        """Returns the suggestions of the last `lr_find()` (one per rule of `ktlite.lr.suggest`).

        Returns:
            A dict of each rule's name to its suggested rate (`nan` where the rule could not
            read the curve), e.g. `{"valley": ..., "consensus": ..., ...}`.

        Raises:
            ValueError: if `lr_find()` has not been run.

        Example:
            >>> learner.lr_estimate()["basin"]
        """
        return dict(self._require_lr_result().suggestions)

    # ------------------------------------------------------------------ fitting
    def _fit(
        self,
        make_policy: Callable[[int], Any],
        epochs: int,
        callbacks: Sequence[keras.callbacks.Callback] | None,
        class_weight: Mapping[int, float] | None,
        steps_per_epoch: int | None,
        verbose: int | None,
        extra: Callable[[Any], list] = lambda policy_callback: [],
    ) -> keras.callbacks.History:
        from ktlite.lr import PolicyCallback

        steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
        if verbose is not None:
            verbose = check_verbose(verbose, (0, 1, 2))
        PolicyCallback.check_callbacks(callbacks)
        class_weight = check_class_weight(class_weight, self.model)
        PolicyCallback.check_optimizer(self.model.optimizer)  # before any callback starts
        if model_tools.uses_ema(self.model.optimizer):
            # Refuses `trainable` flags the user changed since: the averages would be
            # written into other variables at the end of the fit.
            model_tools.build_optimizer(self.model, self.strategy)
        steps = steps_per_epoch or self._train_steps()
        if steps_per_epoch is not None:
            # Keras runs whole compiled calls of `steps_per_execution` batches within an
            # epoch of given length (a finite pass ends where its data ends).
            per_call = int(getattr(self.model, "steps_per_execution", 1) or 1)
            steps = -(-steps // per_call) * per_call
        # Policies count optimizer updates. With ktlite's gradient accumulation an update
        # takes several batches and every epoch ends on one (its last group may be shorter),
        # so an epoch makes ceil(steps / accumulation) updates.
        accumulation = _distribute().accumulation_steps(self.model)
        self._check_keras_accumulation(steps, accumulation)
        updates = -(-steps // accumulation)
        policy_callback = PolicyCallback(make_policy(updates))
        guard = NonFiniteGuard()
        own = [policy_callback, guard, *extra(policy_callback)]
        # ktlite's first: an epoch is judged (best weights kept) and recorded (Keras uses the
        # `History` it is given instead of adding its own, last) before the user's own
        # callbacks run, so an interrupt in one of them (or Ctrl-C while a slow one plots)
        # loses neither the epoch that just ended nor its line in `learner.history`. The
        # rate is set inside the compiled step, so the user's callbacks read a step's rate
        # from its `on_train_batch_end` on (the previous step's in `on_train_batch_begin`);
        # a `ModelCheckpoint` saves the optimizer's own rate (not the schedule's).
        all_callbacks = [*own, keras.callbacks.History(),
                         *policy_callback.saving_at_configured_rate(list(callbacks or []))]
        if steps_per_epoch is None:
            train, _ = self._cached("train", self.train_data, True)
        else:
            train, _ = self._cached("repeated train", self.train_data, True, repeat=True)
        val = None
        if self.val_data is not None:
            val, _ = self._cached("val", self.val_data, False)
        self._ensure_built(train)
        optimizer = model_tools.inner_optimizer(self.model.optimizer)
        lr_before = keras.ops.convert_to_numpy(optimizer.learning_rate).copy()
        earlier = getattr(self.model, "history", None)
        try:
            self.history = self.model.fit(
                train,
                validation_data=val,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                class_weight=class_weight,
                callbacks=all_callbacks,
                shuffle=False,  # the training dataset reshuffles itself each epoch
                verbose=self.verbose if verbose is None else verbose,
            )
        except BaseException:
            self._after_interrupt(policy_callback, guard, own)
            # Keras' `History` of this fit is on the model once an epoch has ended.
            running = getattr(self.model, "history", None)
            self.history = running if running is not earlier else _no_epochs()
            raise
        finally:
            # The user's optimizer keeps its own rate: a later plain `model.fit` would
            # otherwise train at the policy's last, tiny one.
            with contextlib.suppress(Exception):
                optimizer.learning_rate = lr_before
            self.step_history = {k: list(v) for k, v in policy_callback.history.items()}
        return self.history

    def _keras_accumulation(self) -> int:
        """Batches per update of the optimizer's own accumulation, which Keras runs when it
        is kept (`steps_per_execution` > 1; ktlite converts it otherwise); 1 without one."""
        inner = model_tools.inner_optimizer(self.model.optimizer)
        return int(getattr(inner, "gradient_accumulation_steps", None) or 1)

    def _check_keras_accumulation(self, steps: int, accumulation: int) -> None:
        """Refuses an epoch that Keras' own optimizer accumulation would not split into
        whole updates: its groups run on across epochs, so the policy, planned on
        ceil(steps / accumulation) updates an epoch, would never reach its end."""
        if self._keras_accumulation() == 1 or steps % accumulation == 0:
            return
        per_call = getattr(self.model, "steps_per_execution", 1)
        raise ValueError(
            f"The optimizer's own `gradient_accumulation_steps={accumulation}` (kept because "
            f"the model compiles with steps_per_execution={per_call!r}) updates every "
            f"{accumulation} batches across epochs, so an epoch of {steps} batches is not a "
            "whole number of updates and the learning-rate schedule would stop short of its "
            "end. Compile the model with steps_per_execution=1 (ktlite then accumulates and "
            f"ends every epoch on an update), or make an epoch a multiple of {accumulation} "
            "batches (`batch_size`, `steps_per_epoch`). Received: "
            f"{steps} batches per epoch, gradient_accumulation_steps={accumulation}"
        )

    def _check_no_keras_accumulation(self) -> None:
        """Refuses a sweep under Keras' own optimizer accumulation: it cannot be paused, so
        each of the sweep's rates would update once in several batches and the sweep would
        end short of `end_lr`, its few points read as too few."""
        own = self._keras_accumulation()
        if own == 1:
            return
        per_call = getattr(self.model, "steps_per_execution", 1)
        raise ValueError(
            f"The optimizer's own `gradient_accumulation_steps={own}` (kept because the model "
            f"compiles with steps_per_execution={per_call!r}) cannot be paused for the LR "
            "finder, whose sweep sets one rate per update and counts on one update per "
            "batch. Compile the model with steps_per_execution=1 (ktlite then accumulates "
            "and pauses it for the sweep), or sweep with an optimizer that does not "
            f"accumulate. Received: gradient_accumulation_steps={own}"
        )

    def _ensure_built(self, train: tf.data.Dataset) -> None:
        """`lr.preserve.ensure_built` for the fits' training dataset `train`.

        A model never built reads its shapes from a batch of a dataset of its own, as
        `lr_find` does: a pass over `train` would draw its first shuffled order, and the
        fit would start on another one than after `lr_find` (which builds the model).
        """
        from ktlite.lr.preserve import ensure_built

        if not self.model.built:
            ensure_built(self.model, self._dataset(self.train_data, training=True)[0])
        ensure_built(self.model, train)

    def _check_monitor(self, monitor: str) -> None:
        """Refuses a `monitor` no epoch will log: early stopping would never act on it."""
        if monitor in ("loss", "val_loss"):
            return
        if type(self.model).train_step is not keras.Model.train_step:
            return  # a custom train step may log anything
        # Compiled metrics get their names when built (symbolically, from the batches' spec).
        self._ensure_built(self._cached("train", self.train_data, True)[0])
        names = list(self.model.get_metrics_result())
        if self.val_data is not None:
            names += [f"val_{name}" for name in names]
        if monitor not in names:
            raise ValueError(
                f"`monitor` must be a value the fit logs: one of {sorted(names)}. "
                f"Received: monitor={monitor!r}"
            )

    def _after_interrupt(self, policy_callback: Any, guard: NonFiniteGuard, own: list) -> None:
        """Keras skips `on_train_end` when fit raises: finish the callbacks' clean-up here.

        Each step is independent and may not mask the exception being raised.
        """
        steps = [policy_callback.flush, policy_callback.restore, guard.rollback,
                 lambda: _distribute().reset_accumulation(self.model)]
        steps += [cb.restore_best for cb in own if isinstance(cb, BestWeights) and cb.restore]
        for step in steps:
            with contextlib.suppress(Exception):
                step()

    def fit_onecycle(
        self,
        lr: float,
        epochs: int,
        pct_start: float = 0.25,
        div: float = 25.0,
        div_final: float = 1e4,
        moms: tuple[float, float] | None = (0.95, 0.85),
        class_weight: Mapping[int, float] | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        steps_per_epoch: int | None = None,
        verbose: int | None = None,
    ) -> keras.callbacks.History:
        """Trains with the one-cycle policy: cosine warm-up to `lr`, cosine anneal.

        The learning rate rises from `lr / div` to `lr` over the first `pct_start` of all
        steps and falls to `lr / div_final`; momentum (`beta_1` or SGD momentum) moves
        inversely between `moms[0]` and `moms[1]`. The schedule owns the optimizer's
        learning rate for the whole fit (see `callbacks`), and gives it back its own rate
        afterwards. A NaN/inf loss stops training and restores the last good weights. On
        `KeyboardInterrupt` (or any error) the weights stay as they are, the optimizer's
        learning rate and momentum are put back to their values before the fit, and the
        interrupt propagates.

        Args:
            lr: peak learning rate.
            epochs: number of epochs.
            pct_start: fraction of the steps spent warming up. Default 0.25.
            div: the first learning rate is `lr / div` (>= 1). Default 25.
            div_final: the last learning rate is `lr / div_final` (>= 1). Default 1e4.
            moms: `(high, low)` momentum, or `None` to leave momentum alone.
            class_weight: class id -> weight, checked and passed to `model.fit` (a class
                left out weighs 1).
            callbacks: extra Keras callbacks (the list is not modified). The schedule owns
                the learning rate: each compiled train step sets it before it updates the
                weights, so `LearningRateScheduler` and `ReduceLROnPlateau` are refused (as
                is `BackupAndRestore`, which rewinds the step count under it), and a
                callback that assigns `optimizer.learning_rate` itself has no effect (the
                next step overrides it, unnoticed). Reading `optimizer.learning_rate`, a
                callback sees the rate of the step just run in `on_train_batch_end` and
                `on_epoch_end`, but the previous step's in `on_train_batch_begin`. A
                `ModelCheckpoint` saves the optimizer's own rate, so a plain `fit` of its
                file does not train at the schedule's last one.
            steps_per_epoch: batches per epoch; the training data is repeated as needed,
                and data the learner shuffles is drawn in a new order by each fit (a
                seeded learner's fits draw the same orders from its start). Default: one
                pass over the data. A model compiled with
                `steps_per_execution=k` runs whole calls of k batches, so an epoch then
                holds the next multiple of k (the schedule follows).
            verbose: Keras progress mode; defaults to the learner's `verbose`.

        Returns:
            The Keras `History`; per-step values are in `learner.step_history`.

        Raises:
            ValueError / TypeError: for invalid arguments.

        Example:
            >>> learner.fit_onecycle(1e-3, epochs=3)
        """
        from ktlite.lr import OneCycle

        epochs = check_positive_int(epochs, "epochs")
        return self._fit(
            lambda steps: OneCycle(lr, steps * epochs, pct_start, div, div_final, moms),
            epochs, callbacks, class_weight, steps_per_epoch, verbose,
        )

    def autofit(
        self,
        lr: float,
        epochs: int | None = None,
        early_stopping: int | None = None,
        reduce_on_plateau: int | None = None,
        reduce_factor: float = 0.5,
        monitor: str = "val_loss",
        checkpoint_folder: str | os.PathLike | None = None,
        moms: tuple[float, float] | None = (0.95, 0.85),
        class_weight: Mapping[int, float] | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        steps_per_epoch: int | None = None,
        verbose: int | None = None,
    ) -> keras.callbacks.History:
        """Trains with triangular cycles (one per epoch), keeping the best weights.

        With `epochs=None` training runs until `monitor` stops improving for
        `early_stopping` epochs (default 5; at most `AUTOFIT_MAX_EPOCHS`), and the peak
        learning rate is multiplied by `reduce_factor` after `reduce_on_plateau` epochs
        without improvement (default 2). With a number of epochs both are off unless given.
        The weights of the best epoch by `monitor` are restored at the end, also on
        `KeyboardInterrupt` (which then propagates, with the optimizer's learning rate and
        momentum put back) and after a NaN/inf loss. The schedule owns the optimizer's
        learning rate for the whole fit: a callback that sets it has no effect (see
        `fit_onecycle`'s `callbacks`).

        Args:
            lr: peak learning rate of each cycle.
            epochs: number of epochs, or `None` to train until early stopping.
            early_stopping: patience in epochs, or `None` (see above); 0 turns it off.
            reduce_on_plateau: patience before lowering the peak, or `None`; 0 turns it off.
            reduce_factor: multiplier for the peak on a plateau. Default 0.5.
            monitor: the log value that decides "best". Default `"val_loss"` (needs
                `val_data`); accuracy-like names are maximised. It must be one of the values
                the fit logs: `"loss"`, the compiled metrics' names, and the same with
                `"val_"` before them when there is validation data.
            checkpoint_folder: when set, the best model is saved atomically to
                `checkpoint_folder/best.keras` each time it improves (made if missing).
                With an optimizer that has `use_ema=True`, the weights kept and saved for
                an epoch are its moving averages, as a fit ending there would leave them.
            moms: `(high, low)` momentum, or `None`.
            class_weight, callbacks, steps_per_epoch, verbose: as in `fit_onecycle`.

        Returns:
            The Keras `History`.

        Raises:
            TypeError: if `monitor` is not a string, `reduce_factor` is not a number,
                `epochs`, `early_stopping` or `reduce_on_plateau` is not an int, or
                `checkpoint_folder` is not a path.
            ValueError: if `monitor` needs validation data that is missing or is not a value
                the fit logs, `reduce_factor` is not in (0, 1), `epochs` is below 1,
                `early_stopping` or `reduce_on_plateau` is negative, training could never
                stop (`epochs=None` with `early_stopping=0`), an epoch makes fewer than
                2 updates (one rate cycle takes an epoch), or `checkpoint_folder` is empty
                (`""`), lies below a file, or holds a `best.keras` that is not a file.
                All before any training.
            FileExistsError: if `checkpoint_folder` is a file.

        Example:
            >>> learner.autofit(1e-3)  # until val_loss stops improving
        """
        from ktlite.lr import Triangular

        epochs = check_positive_int(epochs, "epochs", allow_none=True)
        check_monitor_name(monitor)
        reduce_factor = check_float(reduce_factor, "reduce_factor", 0.0, 1.0,
                                    include_low=False, include_high=False)
        early_stopping = check_int(early_stopping, "early_stopping", 0, allow_none=True)
        reduce_on_plateau = check_int(reduce_on_plateau, "reduce_on_plateau", 0, allow_none=True)
        if monitor.startswith("val_") and self.val_data is None:
            raise ValueError(
                f"`monitor={monitor!r}` needs validation data: pass {self._val_source} "
                "or monitor a training value such as monitor='loss'."
            )
        self._check_monitor(monitor)
        if early_stopping is None and epochs is None:
            early_stopping = 5
        if reduce_on_plateau is None and epochs is None:
            reduce_on_plateau = 2
        if epochs is None and early_stopping == 0:
            raise ValueError(
                "`autofit(epochs=None)` trains until early stopping, so `early_stopping` must "
                f"be a positive patience. Received: early_stopping={early_stopping!r}"
            )
        early_stopping = early_stopping or None
        reduce_on_plateau = reduce_on_plateau or None
        checkpoint_file = (None if checkpoint_folder is None
                           else _checkpoint_file(checkpoint_folder))
        verbose_ = self.verbose if verbose is None else check_verbose(verbose, (0, 1, 2))

        def extra(policy_callback):
            # Made once every argument has been checked: a refused call leaves no folder.
            if checkpoint_file is not None:
                saving.make_folder(checkpoint_folder, "checkpoint_folder")
            made = [BestWeights(monitor, early_stopping, True, checkpoint_file, verbose=verbose_,
                                saving_context=policy_callback.configured_rate)]
            if reduce_on_plateau:
                made.append(PeakReducer(policy_callback, monitor, reduce_on_plateau,
                                        reduce_factor, verbose=verbose_))
            return made

        def triangle(updates: int) -> Triangular:
            if updates < 2:
                raise ValueError(
                    "`autofit` cycles the rate once an epoch, which takes at least 2 updates "
                    f"an epoch. Received: {updates} (from `steps_per_epoch`, or the training "
                    f"data at batch_size={self.batch_size}): pass a smaller `batch_size` or "
                    "more data, or use `fit_onecycle`."
                )
            return Triangular(lr, updates, n_cycles=epochs, moms=moms)

        return self._fit(
            triangle, epochs or AUTOFIT_MAX_EPOCHS, callbacks, class_weight, steps_per_epoch,
            verbose, extra,
        )

    def fit(
        self,
        lr: float,
        n_cycles: int,
        cycle_len: int | None = None,
        cycle_mult: int = 1,
        class_weight: Mapping[int, float] | None = None,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        steps_per_epoch: int | None = None,
        verbose: int | None = None,
        moms: tuple[float, float] | None = (0.95, 0.85),
    ) -> keras.callbacks.History:
        """Trains at a constant learning rate, or with SGDR when `cycle_len` is given.

        Without `cycle_len`, trains `n_cycles` epochs at `lr` (momentum untouched). With
        `cycle_len`, runs `n_cycles` cosine-annealing cycles with warm restarts, the first
        `cycle_len` epochs long and each next one `cycle_mult` times longer, so training
        lasts `cycle_len * (1 + cycle_mult + ... + cycle_mult**(n_cycles-1))` epochs;
        momentum mirrors the rate within each cycle (see `moms`). Either way the schedule
        owns the optimizer's learning rate for the whole fit: a callback that sets it has
        no effect (see `fit_onecycle`'s `callbacks`).

        Args:
            lr: the (peak) learning rate.
            n_cycles: number of epochs (constant) or of cycles (SGDR).
            cycle_len: epochs in the first SGDR cycle, or `None` for a constant rate.
            cycle_mult: growth factor of the cycle length. Default 1.
            class_weight, callbacks, steps_per_epoch, verbose: as in `fit_onecycle`.
            moms: with `cycle_len`, the `(high, low)` momentum: low while the rate is high,
                rising to high as it anneals; `None` leaves momentum alone. Without
                `cycle_len` momentum is never touched. Default `(0.95, 0.85)`.

        Returns:
            The Keras `History`.

        Raises:
            TypeError: if `lr` is not a number, `n_cycles`, `cycle_len`, `cycle_mult` or
                `steps_per_epoch` is not an int, `moms` is not a pair of numbers,
                `callbacks` is not a list of Keras callbacks, `class_weight` is not a
                mapping of class ids to numbers, or `verbose` is not an int.
            ValueError: if `lr` is not positive and finite, a count is below 1, `moms` is
                outside [0, 1), `class_weight` has a negative weight or a class the model
                does not have (or the model is not a single-label classifier), or
                `verbose` is not 0, 1 or 2.

        Example:
            >>> learner.fit(1e-3, n_cycles=3, cycle_len=1, cycle_mult=2)  # 7 epochs
        """
        from ktlite.lr import SGDR, Constant

        n_cycles = check_positive_int(n_cycles, "n_cycles")
        cycle_mult = check_positive_int(cycle_mult, "cycle_mult")
        cycle_len = check_positive_int(cycle_len, "cycle_len", allow_none=True)
        moms = check_moms(moms)  # also where no cycle uses it: a bad pair is a mistake
        if cycle_len is None:
            return self._fit(
                lambda steps: Constant(lr, steps * n_cycles),
                n_cycles, callbacks, class_weight, steps_per_epoch, verbose,
            )
        epochs = cycle_len * sum(cycle_mult**i for i in range(n_cycles))
        return self._fit(
            lambda steps: SGDR(lr, steps * cycle_len, n_cycles, cycle_mult=cycle_mult,
                               moms=moms),
            epochs, callbacks, class_weight, steps_per_epoch, verbose,
        )

    def fine_tune(
        self,
        epochs: int,
        base_lr: float | None = None,
        freeze_epochs: int = 1,
        lr_mult: float | Sequence[float] = 10.0,
        layer_groups: Sequence[Any] | None = None,
        pct_start: float = 0.3,
        div: float = 5.0,
        moms: tuple[float, float] | None = (0.95, 0.85),
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        steps_per_epoch: int | None = None,
        verbose: int | None = None,
        class_weight: Mapping[int, float] | None = None,
    ) -> keras.callbacks.History:
        """Fine-tunes a pretrained model the fastai way: head first, then every layer.

        1. Every layer group but the last (the head) is frozen and the head trains for
           `freeze_epochs` one-cycle epochs at `base_lr` (warm-up over 99% of the steps).
        2. The groups are unfrozen and train for `epochs` one-cycle epochs (`pct_start`,
           `div`) with **discriminative learning rates**: the head at `base_lr / 2`, earlier
           groups lower, down to `base_lr / 2 / lr_mult` for the first (see
           `ktlite.lr.group_multipliers`). Each group's rate is the one-cycle rate times its
           multiplier, applied inside the train step by `ktlite.lr.GroupRates` with the
           user's own optimizer; the optimizer is plain again afterwards.

        Layer groups come from the task of `train_data` where it knows the model (a
        translation model's: the pretrained encoder's groups, then its whole new decoder as
        the head), else from the model (`ktlite.lr.layer_groups`): every layer with
        weights starts a group, normalization layers join the one before, and the last group
        is the head (the last layer with weights, with any normalization after it); pass
        `layer_groups` to choose them (a nested model stands for its layers). A single
        group trains every layer in both phases. Layers the user froze
        before the call stay frozen in both phases, and so do variables frozen one by one
        (Keras' LoRA freezes a kernel so); afterwards, and after an error or an interrupt in
        either phase, every layer's and variable's `trainable` flag is as it was on entry.
        An optimizer with `use_ema=True` cannot follow the frozen phase (see `freeze`): the
        call is refused unless the earlier groups are frozen already or there is no frozen
        phase (`freeze_epochs=0` with `base_lr` given). An optimizer `fit_onecycle` refuses
        (a learning-rate schedule) is refused before anything runs.

        Args:
            epochs: epochs with every layer trainable (>= 1).
            base_lr: the head's rate in the frozen phase; `None` runs `lr_find()` on the
                frozen model and takes its suggestion (reported unless `verbose` is 0).
            freeze_epochs: head-only epochs first (0 skips them). Default 1.
            lr_mult: ratio of the head's rate to the first group's, or one multiplier
                per group. Default 10 (fastai's is 100): from a 30-minute ktlite backbone
                on WordNet, 10 scored 0.828 with every label where 100 scored 0.774, and
                0.578 vs 0.573 with 1,002 labels. Lower layers trained slowly only pay
                off when the backbone has learned something: from a backbone pretrained
                26 minutes (masked-token accuracy 31%), 1,002 labels, `lr_mult=10` scored 8
                points above `lr_mult=1`; from one pretrained a few minutes (4%) it scored
                9 points below (benchmarks/RESULTS.md).
            layer_groups: groups from input to head (see `ktlite.lr.layer_groups`).
            pct_start, div: one-cycle settings of the unfrozen phase (defaults 0.3, 5).
            moms: `(high, low)` momentum, or `None`.
            callbacks, steps_per_epoch, verbose, class_weight: as in `fit_onecycle`
                (both phases).

        Returns:
            The Keras `History` of the unfrozen phase.

        Raises:
            TypeError: for a count (`epochs`, `freeze_epochs`) that is not an int, a rate
                (`base_lr`, `lr_mult`, `pct_start`, `div`, `moms`) that is not a number,
                `callbacks` that is not a list of Keras callbacks, `layer_groups` that is
                not a sequence of groups of layers or layer names, or a `verbose` that is
                not an int.
            ValueError: for a count or rate out of range, a `verbose` other than None, 0, 1
                or 2, invalid layer groups, a `class_weight` or an optimizer
                `fit_onecycle` refuses, an optimizer with `use_ema=True` when a group
                would be frozen (nothing is changed), a head with no trainable weights
                for the frozen phase, or `base_lr=None` where `lr_find` suggests no rate
                (the flags are restored).

        Example:
            >>> learner.fine_tune(3, base_lr=1e-3, freeze_epochs=1, lr_mult=10)
        """
        from ktlite.lr import GroupRates, OneCycle, PolicyCallback, group_multipliers
        from ktlite.lr import layer_groups as find_groups

        epochs = check_positive_int(epochs, "epochs")
        freeze_epochs = check_int(freeze_epochs, "freeze_epochs", 0)
        base_lr = check_positive_float(base_lr, "base_lr", allow_none=True)
        if verbose is not None:
            verbose = check_verbose(verbose, (0, 1, 2))
        OneCycle(1.0, 2, pct_start, div, moms=moms)  # the unfrozen phase's settings, checked now
        PolicyCallback.check_callbacks(callbacks)
        check_class_weight(class_weight, self.model)  # before the LR finder or a frozen phase
        PolicyCallback.check_optimizer(self.model.optimizer)
        task_groups = getattr(self.train_data, "layer_groups", None)
        if layer_groups is None and task_groups is not None:
            layer_groups = task_groups(self.model)  # None: a model the task does not know
        groups = find_groups(self.model, layer_groups, name="layer_groups")
        multipliers = group_multipliers(len(groups), lr_mult)

        def freeze_groups() -> None:
            for group in groups[:-1]:
                for layer in group:
                    model_tools.set_trainable(layer, False)

        frozen_phase = bool(freeze_epochs) or base_lr is None  # the finder reads the frozen model
        if frozen_phase:
            model_tools.check_trainable_kept(self.model, freeze_groups, "fine_tune()")
        # Layers parents first (a child's own flag wins), then variables: a variable frozen
        # one by one (LoRA) would otherwise come back on with its layer.
        flags = model_tools.trainable_flags(self.model)

        def restore_flags() -> None:
            model_tools.restore_trainable_flags(flags)

        try:
            if frozen_phase:
                freeze_groups()
                if not self.model.trainable_weights:
                    raise ValueError(
                        "fine_tune's frozen phase trains the head, the last group of "
                        f"`layer_groups` ({[layer.name for layer in groups[-1]]}), but it has "
                        "no trainable weights: it is frozen (`trainable=False`). Unfreeze it, "
                        "pass `layer_groups` whose last group can train, or skip the phase "
                        "with `freeze_epochs=0` and a `base_lr`."
                    )
                model_tools.recompile(self.model, self.strategy)
            if base_lr is None:
                base_lr = float(self.lr_find(verbose=verbose).suggestion)
                if not math.isfinite(base_lr):
                    raise ValueError(
                        "fine_tune could not take `base_lr` from lr_find, which suggested no "
                        "rate (nan: see its warning). Pass `base_lr`. Received: base_lr=None"
                    )
                if self.verbose if verbose is None else verbose:
                    say(f"fine_tune: base_lr={base_lr:.3g} from lr_find")
            if freeze_epochs:
                self.fit_onecycle(base_lr, freeze_epochs, pct_start=0.99, moms=moms,
                                  callbacks=callbacks, class_weight=class_weight,
                                  steps_per_epoch=steps_per_epoch, verbose=verbose)
            if frozen_phase:
                restore_flags()
                model_tools.recompile(self.model, self.strategy)
            with GroupRates(self.model, groups, multipliers):
                return self.fit_onecycle(base_lr / 2, epochs, pct_start=pct_start, div=div,
                                         moms=moms, callbacks=callbacks,
                                         class_weight=class_weight,
                                         steps_per_epoch=steps_per_epoch, verbose=verbose)
        finally:
            if model_tools.restore_trainable_flags(flags):
                model_tools.recompile(self.model, self.strategy)

    def plot(self, kind: str = "loss") -> Any:
        """Plots a per-step value of the last fit.

        Args:
            kind: `"loss"` (true per-batch loss), `"lr"` or `"momentum"`.

        Returns:
            The matplotlib `Figure`.

        Raises:
            TypeError: if `kind` is not a str.
            ValueError: for an unknown `kind`, or before any fit.

        Example:
            >>> learner.plot("lr")
        """
        from ktlite.plots import plot_history

        check_choice(kind, "kind", sorted(_PLOT_KINDS))
        values = self.step_history.get(_PLOT_KINDS[kind]) or []
        if not values:
            raise ValueError("Nothing to plot yet: train first (e.g. `learner.fit_onecycle`).")
        if kind == "momentum" and all(v is None for v in values):
            raise ValueError("The last fit did not cycle momentum, so there is nothing to plot.")
        return plot_history(values, kind)

    # ------------------------------------------------------------------ evaluation
    def _eval_data(self, val_data: Any) -> Any:
        if val_data is not None:
            return self._check_data(val_data, "val_data")
        if self.val_data is None:
            raise ValueError(f"No validation data: pass `val_data` here or {self._val_source}.")
        return self.val_data

    def _outputs_and_labels(self, data: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        """Predictions, labels and sample weights (None without) in the same order.

        A dataset is cached on its first pass (the labels'), and the predictions replay
        that pass, so one that reshuffles on every pass still pairs each output with its
        own label (`model.predict` splits the batches over a strategy's replicas).
        """
        if isinstance(data, TaskDataset):
            return self._predict_in_order(data), np.asarray(data.y), None
        dataset, _ = self._dataset(data, training=False)
        frozen = dataset.cache()
        batches = [tf.nest.map_structure(np.asarray, batch[1:]) for batch in frozen]
        parts = tf.nest.map_structure(lambda *pieces: np.concatenate(pieces), *batches)
        weights = parts[1] if len(parts) > 1 else None
        # Inputs as `(x,)`: Keras reads a 2-tuple of inputs as (x, y).
        inputs = frozen.map(lambda *b: (b[0],))
        return self.model.predict(inputs, verbose=0), parts[0], weights

    def validate(
        self,
        val_data: Any = None,
        class_names: Sequence[str] | None = None,
        print_report: bool = True,
    ) -> Any:
        """Reports how well the model does on validation data, the way its task judges it.

        Data from a task's loaders (a `TaskDataset` with a `reporter`) gets the task's own
        report: for classification the per-class precision, recall and F1 named with the
        task's classes, MAE/MSE for regression (and e.g. BLEU for translation). Other data
        gets the report read from the model's loss: sparse/categorical cross-entropy is
        multiclass, binary cross-entropy is binary (one output) or multilabel (several),
        regression losses give MAE and MSE. A dataset of `(x, y, sample_weight)` items is
        judged with those weights, as its loss is (weighted supports and matrices).

        Args:
            val_data: data to judge on (same kinds as `train_data`, and `(x, y)` of raw
                examples and labels when the training data came from a task's loader);
                default the learner's.
            class_names: names of the classes in id order; given, they replace the task's
                report with the loss-based one using these names.
            print_report: print the report.

        Returns:
            What the report returns: for classification the confusion matrix
            (`(n_labels, 2, 2)` for multilabel), for regression `{"mae": ..., "mse": ...}`.

        Raises:
            TypeError: if `class_names` is not a list of strings or `print_report` is not a
                bool.
            ValueError: without validation data, with a `val_data` dataset that repeats
                forever (checked before anything runs), or with a wrong number of
                `class_names`.

        Example:
            >>> cm = learner.validate(class_names=["neg", "pos"])
        """
        class_names = check_class_names(class_names)  # before predicting
        print_report = check_bool(print_report, "print_report")
        data = self._eval_data(val_data)
        reporter = getattr(data, "reporter", None)
        if reporter is not None and class_names is None:
            text, result = reporter(self.model, data, self._predict_in_order)
        else:
            outputs, labels, weights = self._outputs_and_labels(data)
            text, result = evaluation.report(self.model, labels, outputs, class_names, weights)
        if print_report:
            say(text)
        return result

    def top_losses(self, n: int = 10, val_data: Any = None) -> list[tuple]:
        """Returns the `n` validation samples with the highest loss.

        Args:
            n: how many samples.
            val_data: data to look at; default the learner's validation data.

        Returns:
            `(index, loss, true, pred)` tuples, highest loss first: `index` is the position in
            the data, `true` / `pred` are class ids (multiclass, binary), 0/1 lists
            (multilabel) or values (regression). A dataset of `(x, y, sample_weight)`
            items weighs each loss (a sample of weight 0 loses nothing).

        Raises:
            ValueError: without validation data, or with a `val_data` dataset that repeats
                forever (checked before anything runs).

        Example:
            >>> idx, loss, true, pred = learner.top_losses(5)[0]
        """
        n = check_positive_int(n, "n")
        outputs, labels, weights = self._outputs_and_labels(self._eval_data(val_data))
        return evaluation.top_losses(self.model, labels, outputs, n, weights)

    def view_top_losses(self, n: int = 5, preproc: Any = None, val_data: Any = None) -> list[tuple]:
        """Prints the top losses with the raw examples when the data holds them.

        Raw examples come from a `TaskDataset`'s (or tuple's) `x`; if they are token ids and
        `preproc` has `undo(ids)`, they are turned back into text (so are label sequences,
        e.g. a language model's), and a table preprocessor shows rows as `column=value`.
        Class ids are named with `preproc.class_names` when available. A multilabel row
        (the model's loss is binary cross-entropy over several outputs) shows the names of
        the labels that are on, or without class names their positions (`[1, 3]`); it is
        never read as token ids.

        Args:
            n: how many samples.
            preproc: optional preprocessor with `class_names`, `undo(ids)` and/or
                `example_text(example)`. `None` (default): the preprocessor of the data
                looked at when it is a `TaskDataset` that has one (as the task loaders'
                datasets do), so classes are named without passing it; else none.
            val_data: data to look at; default the learner's validation data.

        Returns:
            The same tuples as `top_losses(n)`.

        Raises:
            TypeError: if `preproc` is not None and has none of `class_names`, `undo` and
                `example_text` (it would be silently ignored).
            ValueError: if `preproc` (given or the data's) names another number of classes
                than the model has outputs (its names would be the wrong ones).

        Example:
            >>> learner.view_top_losses(3)  # classes named by the loader's preprocessor
        """
        attributes = ("class_names", "undo", "example_text")
        if preproc is not None and not any(hasattr(preproc, a) for a in attributes):
            raise TypeError(
                "`preproc` must be a preprocessor with `class_names`, `undo(ids)` or "
                "`example_text(example)` (e.g. the one a task loader returned), or None. "
                f"Received: preproc of type {type(preproc).__name__}"
            )
        data = self._eval_data(val_data)
        given = preproc is not None
        if not given and isinstance(data, TaskDataset):
            preproc = data.preproc
        names = getattr(preproc, "class_names", None)
        width = output_width(self.model)
        if names and width is not None and width != len(names) and (width, len(names)) != (1, 2):
            source = "`preproc`" if given else "The data's preprocessor (`val_data.preproc`)"
            raise ValueError(
                f"{source} names {len(names)} classes but the model has {width} outputs: pass "
                "the preprocessor made with the model's training data. Received: "
                f"class_names={names[:10]!r}"
            )
        rows = self.top_losses(n, val_data=data)
        raw = data.x if isinstance(data, TaskDataset) else None
        task = evaluation.infer_task(self.model)  # multilabel is told by the loss alone
        for line in evaluation.top_loss_lines(rows, raw, preproc, task):
            say(line)
        return rows

    def predict(self, data: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Returns the model's outputs for `data`.

        Args:
            data: inputs (an array, list or dict of arrays: a tuple is read as several
                inputs, like Keras), a `TaskDataset` (labels ignored), a `tf.data.Dataset`
                or a `PyDataset` (labels ignored). When the training data came from a
                task's loader, inputs that are not a dataset are raw examples of that task
                (texts, images, table rows, ...), read as the loader read its own; wrap
                inputs already preprocessed (e.g. token ids) in a `TaskDataset`.
            batch_size: defaults to `eval_batch_size`.
            verbose: Keras progress mode: 0, 1 or 2. Default 0.

        Returns:
            The predictions as a numpy array (or a list / dict for multi-output models).

        Raises:
            TypeError: if `data` is not array-like (`None`, a lone string) or raw examples
                of the wrong type for the task, or `batch_size` or `verbose` is not an int.
            ValueError: if `batch_size` < 1, `verbose` is not 0, 1 or 2, the inputs do
                not fit the model, or `data` is a dataset that repeats forever (checked
                before anything runs).

        Example:
            >>> probs = learner.predict(x_test)
        """
        verbose = check_verbose(verbose, (0, 1, 2))
        if isinstance(data, tf.data.Dataset):
            _check_finite(
                data, "data", "prediction would never end: pass a dataset that ends (without "
                "`.repeat()`, or a part of it, `.take(n)`)",
            )
        if not isinstance(data, (TaskDataset, tf.data.Dataset, keras.utils.PyDataset)):
            read = self._read_raw(data, None, "data")
            data = read if read is not None else TaskDataset(
                to_arrays(list(data) if isinstance(data, tuple) else data)
            )
        previous = self.eval_batch_size
        self.eval_batch_size = check_positive_int(batch_size, "batch_size", True) or previous
        try:
            if isinstance(data, TaskDataset):
                return self._predict_in_order(data, verbose=verbose)
            dataset, _ = self._dataset(data, training=False)
        finally:
            self.eval_batch_size = previous
        return self.model.predict(dataset, verbose=verbose)

    # ------------------------------------------------------------------ model tools
    def freeze(self, n: int | None = None) -> None:
        """Freezes the first `n` layers (default: all but the last layer with weights).

        Later layers are unfrozen, but not variables the user froze one by one in a
        trainable layer (Keras' LoRA freezes a kernel so): those stay frozen. The model is
        recompiled with the same optimizer object, loss and metrics so the change takes
        effect; the optimizer keeps its state (its slots cover every layer, see
        `get_learner`).

        An optimizer with `use_ema=True` cannot follow a change of the trainable variables:
        at the end of every fit Keras writes its moving averages into the trainable
        variables by position, so each would land in another variable. With one, a call
        that would change them is refused; freeze before compiling instead.

        Args:
            n: number of leading layers (`model.layers`) to freeze, or `None`.

        Returns:
            None: the learner's model is changed in place and recompiled.

        Raises:
            TypeError: if `n` is not an int.
            ValueError: if `n` is out of range, or the optimizer has `use_ema=True` and
                the call would change which variables train (nothing is changed).

        Example:
            >>> learner.freeze()       # train only the head
            >>> learner.unfreeze()
        """
        keep = model_tools.frozen_variables(self.model, self._frozen_variables)
        action = "freeze()" if n is None else f"freeze({n!r})"
        model_tools.check_trainable_kept(
            self.model, lambda: model_tools.freeze_layers(self.model, n, keep), action
        )
        model_tools.freeze_layers(self.model, n, keep)
        self._frozen_variables = keep
        model_tools.recompile(self.model, self.strategy)

    def unfreeze(self) -> None:
        """Makes every layer trainable and recompiles (optimizer state kept).

        Variables the user froze one by one in a trainable layer (Keras' LoRA freezes a
        kernel so) stay frozen, also after `freeze()` froze their layer.

        Returns:
            None: the learner's model is changed in place and recompiled.

        Raises:
            ValueError: if the optimizer has `use_ema=True` and a layer is frozen (see
                `freeze`; nothing is changed).

        Example:
            >>> learner.unfreeze()
        """
        keep = model_tools.frozen_variables(self.model, self._frozen_variables)
        model_tools.check_trainable_kept(
            self.model, lambda: model_tools.unfreeze_layers(self.model, keep), "unfreeze()"
        )
        self._frozen_variables = model_tools.unfreeze_layers(self.model, keep)
        model_tools.recompile(self.model, self.strategy)

    def set_weight_decay(self, wd: float | None = 0.01) -> None:
        """Sets decoupled weight decay on the user's optimizer, keeping its other settings.

        Keras reads `weight_decay` when it traces the train step, so the step is retraced
        on the next fit (no recompile, no new optimizer).

        Args:
            wd: decay per step (multiplied by the learning rate), or `None` to turn it off.

        Returns:
            None: the optimizer is changed in place.

        Raises:
            TypeError: if `wd` is neither `None` nor a number.
            ValueError: if `wd` is negative or not finite.

        Example:
            >>> learner.set_weight_decay(0.01)
        """
        model_tools.set_weight_decay(self.model, wd)

    def get_weight_decay(self) -> float | None:
        """Returns the optimizer's weight decay (`None` when off).

        Returns:
            The decay per step (multiplied by the learning rate), or `None` when off.

        Example:
            >>> learner.get_weight_decay()
        """
        return model_tools.inner_optimizer(self.model.optimizer).weight_decay

    def save_model(self, path: str | os.PathLike) -> str:
        """Saves the model (with optimizer state) to a `.keras` file, atomically.

        The optimizer state covers frozen layers too (ktlite builds the optimizer for every
        layer that could be unfrozen): `load_model` restores it whole, while
        `keras.saving.load_model` builds the optimizer for the trainable layers only and
        skips the state of a model saved with frozen layers (with a warning).

        Args:
            path: destination ending in `.keras`.

        Returns:
            The path written.

        Raises:
            TypeError: if `path` is not a str or `os.PathLike` (bytes, None).
            ValueError: if `path` does not end in `.keras`.

        Example:
            >>> learner.save_model("model.keras")
        """
        return saving.save_keras_model(self.model, path)

    def load_model(
        self, path: str | os.PathLike, custom_objects: Mapping[str, Any] | None = None
    ) -> keras.Model:
        """Loads a `.keras` file (safe mode) and makes it the learner's model.

        The model is prepared as the learner's first one was (its strategy, precision,
        `jit_compile`, gradient accumulation and the variables its optimizer leaves out of
        weight decay), which a `.keras` file does not keep whole, and its optimizer gets
        the saved state of frozen layers too (see `save_model`). Custom layers, losses and
        metrics must be registered (`keras.saving.register_keras_serializable`, as
        ktlite's are once `ktlite.layers`, `ktlite.tabular.layers` for the FT-Transformer's
        and, for a task's own loss, its module are imported: `ktlite.seq2seq.losses`,
        `ktlite.text.masked_lm`) or given in `custom_objects`.

        Args:
            path: a `.keras` file written by `save_model`.
            custom_objects: extra classes needed to rebuild the model.

        Returns:
            The loaded, compiled model (now `learner.model`).

        Raises:
            TypeError: if `path` is not a path (a str or `os.PathLike`), or
                `custom_objects` is not None or a dict of names to classes or functions.
            ValueError: if `path` does not end in `.keras`, is a link, cannot be loaded
                safely (nothing of the file is quoted), holds no compiled model or a weight
                with NaN or infinity, or its model has another number of outputs than the
                learner's (the learner's data and reports would not fit it) or cannot read
                the learner's training or validation data (the inputs it takes, their
                shapes, the labels its loss takes: the message says what does not fit). The
                learner keeps its model.
            FileNotFoundError: if there is no file at `path`.

        Example:
            >>> model = learner.load_model("model.keras")
        """
        path = os.fspath(saving.as_path(path, "path"))
        if not path.endswith(".keras"):
            raise ValueError(f"`path` must end with '.keras'. Received: path={path!r}")
        if not os.path.lexists(path):
            raise FileNotFoundError(f"No model file at `path`. Received: path={path!r}")
        with self.strategy.scope(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = saving.load_keras_model(path, compile=True, custom_objects=custom_objects)
        width, own = output_width(model), output_width(self.model)
        if width != own:
            raise ValueError(
                f"The model in {path!r} has {width} outputs but the learner's has {own}: "
                "load a model trained for this learner's data. The learner's model is kept."
            )
        self._check_reads_data(model, path)
        # Under the learner's own settings, as its first model: a checkpoint does not keep
        # ktlite's gradient accumulation, the learner's `jit_compile` or the optimizer's
        # weight-decay exclusions (ktlite's AdamW leaves biases and norms undecayed). The
        # strategy is the one already resolved (a name would resolve to a new one).
        pairs = list(zip(self.model.weights, model.weights))  # the same model's, in order
        if len(self.model.weights) != len(model.weights) or any(
                tuple(old.shape) != tuple(new.shape) for old, new in pairs):
            pairs = []  # another model: its names only
        compat.copy_weight_decay_exclusions(model_tools.inner_optimizer(self.model.optimizer),
                                            model_tools.inner_optimizer(model.optimizer), pairs)
        settings = dict(self._settings)
        if settings["strategy"] is not None:
            settings["strategy"] = self.strategy
        self.model, _ = self._prepare_distribution(check_model(model), **settings)
        self._frozen_variables = model_tools.frozen_variables(self.model)
        # Keras builds the loaded optimizer for the trainable variables only and skips the
        # state ktlite saved for frozen layers too: `build_optimizer` loads it instead.
        restored = model_tools.build_optimizer(self.model, self.strategy, saved_from=path)
        for caught_warning in caught:
            if not (restored and str(caught_warning.message).startswith(
                    "Skipping variable loading for optimizer")):
                warnings.warn_explicit(caught_warning.message, caught_warning.category,
                                       caught_warning.filename, caught_warning.lineno)
        return self.model

    def _check_reads_data(self, model: keras.Model, path: str) -> None:
        """Refuses a loaded `model` that cannot read the learner's data, before it replaces
        the learner's: the checks `get_learner` runs on the data (`_check_data`), and the
        first batch of data whose inputs a task's transform makes (those checks see only
        its raw examples there)."""
        # The learner's pipeline (batching, bucketing) as it would feed `model`.
        kept, self.model = self.model, model
        try:
            for name, data in (("train_data", self._train_data), ("val_data", self._val_data)):
                if data is None:
                    continue
                self._check_data(data, name)
                if (isinstance(data, TaskDataset) and data.transform is not None
                        and not data.self_supervised):  # `_check_data` checked its batch
                    first = next(iter(self._dataset(data, training=False)[0].take(1)))
                    check_batch(model, first, name)
        except (TypeError, ValueError) as err:
            raise type(err)(
                f"The model in {path!r} cannot read the learner's data: load a model trained "
                f"for this learner's data. The learner's model is kept. {err}"
            ) from None
        finally:
            self.model = kept

    def print_layers(self) -> None:
        """Prints each layer's index, name, class, trainable flag and parameter count.

        Example:
            >>> learner.print_layers()
        """
        model_tools.print_layers(self.model)


def get_learner(
    model: keras.Model,
    train_data: Any,
    val_data: Any = None,
    batch_size: int = 32,
    eval_batch_size: int | None = None,
    strategy: Any = None,
    mixed_precision: str | None = None,
    jit_compile: bool | None = None,
    gradient_accumulation_steps: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    verbose: int = 1,
    drop_remainder: bool | None = None,
    bucketing: bool = True,
) -> Learner:
    """Wraps a compiled Keras model and its data in a `Learner`.

    Data may be an `(x, y)` tuple of numpy arrays or lists (`x` a dict or list of arrays
    for a multi-input model), a `ktlite.data.TaskDataset`, a `tf.data.Dataset` or a
    `keras.utils.PyDataset`. A `tf.data.Dataset` whose pipeline contains a batching step
    (`.batch()`, `.padded_batch()`...; see `ktlite.data.is_batched`), or whose items have
    the rank of the model's input (batch axis included, e.g. from `from_generator`; for a
    multi-input model, every input's, as a dict or tuple like the model's inputs), is used
    as is with its own batches; so is one whose items' tensors all have an unknown first
    dimension (`tf.TensorSpec((None, ...))`, the inputs' at rank 2 or more) for a model
    with no symbolic input to compare ranks with (a subclassed model, a `Sequential`
    without `keras.Input`), as Keras would take it; otherwise it is batched with
    `batch_size` (end a pipeline of samples in `.batch()` to make it unambiguous). A
    `PyDataset`'s items are batches. A training dataset of unknown length is counted once,
    and every epoch trains that many batches: where its length varies from pass to pass (a
    random `filter`), an epoch may end within a pass or go on into the next. In-memory
    data is checked up front (lengths, NaN/inf, labels against the model's output and loss);
    datasets are checked on their first batch.

    The model keeps its optimizer, loss and metrics. Its optimizer is built for all layers
    that could be unfrozen, so `freeze()`/`unfreeze()` never need a new optimizer; one with
    `use_ema=True` only for the trainable variables, as Keras builds it, which must then
    stay as they are (see `Learner.freeze`). Two
    cases get a copy of the optimizer, its state carried over: a distribution setting
    that rebuilds the model, and (with a warning) an optimizer with Keras's own
    `gradient_accumulation_steps`, which runs as ktlite's accumulation (the LR finder can
    pause it, and every epoch ends on an update). When nothing needs a rebuild (the default
    strategy, the model's own precision), `jit_compile` and `gradient_accumulation_steps`
    are set on your model object itself, which is `learner.model`: its own `fit` keeps them
    afterwards, as does a later learner given it with those left at None
    (`ktlite.distribute.prepare_model(model, gradient_accumulation_steps=1,
    jit_compile=False)` turns them off).

    Args:
        model: a compiled `keras.Model` (compile with keywords:
            `model.compile(optimizer="adam", loss=..., metrics=[...])`).
        train_data: training data (labelled).
        val_data: validation data (labelled), or `None`. With training data from a task's
            loader, an `(x, y)` tuple of raw examples and labels is read by that task. A
            `tf.data.Dataset` must end (not `.repeat()` forever): validation passes over
            it whole.
        batch_size: global training batch size. Default 32.
        eval_batch_size: batch size for validation and prediction; default `batch_size`.
        strategy: a `tf.distribute.Strategy` or name for `ktlite.distribute.get_strategy`.
            `None` (default): the strategy whose scope the model was created in (its
            variables live there), else the one in scope. XLA where one process drives
            several devices, and `steps_per_execution` > 1 with several replicas (not on
            TPUs), which Keras cannot train, are turned off with a warning (see
            `ktlite.distribute.prepare_model`).
        mixed_precision: e.g. `"mixed_float16"` / `"mixed_bfloat16"`. Under
            `"mixed_float16"` the loss scale skips an update whose gradients overflow (most
            skips come in the first steps, while the scale settles); ktlite's schedules
            and the LR finder count a skipped update as a step taken, so a one-cycle fit
            still ends at its last rate and a sweep at `end_lr`. `"mixed_bfloat16"` needs
            no loss scale.
        jit_compile: XLA-compile the train step. XLA draws other dropout masks than
            the graph without it for the same seed, so runs with and without it agree in
            their statistics, not bit for bit (without dropout, step for step).
        gradient_accumulation_steps: accumulate gradients over this many batches (the
            optimizer's own setting when `None`; see above). Each batch of a group weighs
            the same, also under a loss averaged over tokens (see
            `ktlite/distribute/accumulation.py`). A model compiled with
            `steps_per_execution` > 1 keeps an optimizer's own accumulation as Keras runs
            it, across epochs, so its fits need epochs of a whole number of updates (a
            `ValueError` says so before training).
        shuffle: reshuffle in-memory training data every epoch. Default `True`.
        seed: shuffle seed. Default `None`.
        verbose: 0 silent, 1 progress bars, 2 one line per epoch. Default 1.
        drop_remainder: drop the last, incomplete training batch of each epoch, so that every
            batch has a static shape. `None` (default): only under a strategy that compiles
            for fixed shapes (`TPUStrategy`, see `ktlite.distribute.needs_static_shapes`).
        bucketing: for sequence data that knows its lengths (the `TaskDataset`s of the text,
            seq2seq and generation loaders and of `ktlite.text.pretrain`): pad each batch
            only to the longest example it holds, rounded up to a multiple of 16, instead
            of to `maxlen`, and train on batches of similar-length examples (shuffled within
            a length group each epoch, batch order shuffled too). Validation, `validate`
            and `predict` run shortest first and return results in the data's order. Much
            faster when texts vary in length. Only where it cannot change results: a model
            must mask padding (ktlite's models do; `keras.layers.Embedding(mask_zero=True)`
            and layers that keep the mask), which is checked on a few of the data's
            examples padded both ways, once per model and training step (see
            `ktlite.bucketing.padding_invariant`). A model whose outputs change with the
            padding gets batches padded to `maxlen` and one warning saying how to make it
            mask padding: `True` asks for bucketing where it is safe, it never makes an
            example's result depend on its batch. `False` pads every batch to `maxlen`
            and shuffles freely, without the check. Models built for one fixed length
            always get fixed-width batches. Default `True`.

    Returns:
        A `Learner`.

    Raises:
        TypeError: for a non-Keras model, data of an unsupported type, a `batch_size`,
            `seed` or `verbose` that is not an int, a `shuffle` or `bucketing` that is not a
            bool, a `drop_remainder` that is not None or a bool, or a `mixed_precision`
            that is neither None nor a str.
        ValueError: for an uncompiled model, empty data, x/y length mismatch, a batch size
            below 1, a negative seed, an unknown `mixed_precision`, NaN/inf values or labels
            that do not fit the model, a `val_data` dataset that repeats forever, or an
            optimizer with `use_ema=True` already built for other variables than the
            model's trainable ones.
        NotImplementedError: for distribution settings when `ktlite.distribute` is missing.

    Example:
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=["accuracy"])
        >>> learner = get_learner(model, (x_train, y_train), (x_val, y_val))
    """
    return Learner(
        model,
        train_data,
        val_data,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        strategy=strategy,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        gradient_accumulation_steps=gradient_accumulation_steps,
        shuffle=shuffle,
        seed=seed,
        verbose=verbose,
        drop_remainder=drop_remainder,
        bucketing=bucketing,
    )
