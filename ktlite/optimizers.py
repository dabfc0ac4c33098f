"""Optimizers for large-batch training, and the learning-rate scaling rules that go with them.

When to use which:

- **AdamW** (decoupled weight decay, Loshchilov & Hutter 2019) is the default for
  Transformers: fine-tuning and training at batch sizes up to a few thousand samples.
- **LAMB** (You et al. 2019) rescales each layer's Adam update by the ratio of the weight
  norm to the update norm (the "trust ratio"), which keeps very large batches (about 4k to
  64k samples, e.g. BERT pre-training) stable where Adam/AdamW diverge or need a much
  longer warm-up. At ordinary batch sizes it brings nothing over AdamW.

Scaling the learning rate when the batch grows:

- The **linear rule** (Goyal et al. 2017): multiply the learning rate by `batch /
  base_batch`. It was established for SGD with momentum and holds up to batches of about
  8k, provided the learning rate is *warmed up* from a small value over the first few epochs
  (the paper used 5): a large learning rate at the start, when the weights change fastest,
  is what breaks large-batch training.
- The **square-root rule** (`rule="sqrt"`): multiply by `sqrt(batch / base_batch)`. It
  suits adaptive optimizers (Adam, AdamW, LAMB) better, whose steps are already normalised
  per parameter; the LAMB paper scales this way.

With ktlite the warm-up is built in: `fit_onecycle` warms up over its first `pct_start`
fraction of steps (0.25 by default) and `autofit`'s triangular cycles warm up every epoch.
When the scaling factor is large (8x or more), give the warm-up at least a few epochs' worth
of steps (raise `pct_start`), and check the scaled value with `learner.lr_find()` at the new
batch size: the finder's suggestion is measured, the scaling rule is only a starting point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras

from ktlite.arguments import (
    check_choice,
    check_float,
    check_positive_float,
    check_positive_int,
)

OPTIMIZER_NAMES = ("adamw", "lamb")

# Bias and normalisation parameters are conventionally excluded from weight decay
# (as in BERT): decaying them only limits the model's ability to shift and scale.
NO_DECAY_NAMES = ("bias", "gamma", "beta")


def scale_lr(base_lr: float, base_batch: int, batch: int, rule: str = "linear") -> float:
    """Scales a learning rate found at one batch size to another batch size.

    Args:
        base_lr: The learning rate that works at `base_batch` (e.g. from `lr_find`), > 0.
        base_batch: The batch size `base_lr` was found at, a positive int.
        batch: The new global batch size (times `gradient_accumulation_steps` when
            accumulating), a positive int.
        rule: `"linear"` (SGD, Goyal et al. 2017) or `"sqrt"` (Adam-family optimizers
            and LAMB). Always pair a scaled-up rate with a warm-up; see the module
            docstring.

    Returns:
        The scaled learning rate.

    Raises:
        TypeError: If `base_lr` is not a number, a batch size not an int, or `rule` not a
            str.
        ValueError: If an argument is not positive, or `rule` is unknown.

    Example:
        >>> scale_lr(1e-3, base_batch=32, batch=256)
        0.008
        >>> round(scale_lr(1e-3, 32, 512, rule="sqrt"), 6)
        0.004
    """
    check_positive_float(base_lr, "base_lr")
    base_batch = check_positive_int(base_batch, "base_batch")
    batch = check_positive_int(batch, "batch")
    rule = check_choice(rule, "rule", ("linear", "sqrt"))
    factor = batch / base_batch if rule == "linear" else math.sqrt(batch / base_batch)
    return float(base_lr) * factor


def get_optimizer(
    name: str = "adamw",
    learning_rate: float = 1e-3,
    weight_decay: float = 0.01,
    exclude_from_weight_decay: Sequence[str] | None = NO_DECAY_NAMES,
    gradient_accumulation_steps: int | None = None,
    **kwargs,
) -> keras.optimizers.Optimizer:
    """Returns a Keras AdamW or LAMB optimizer set up the usual way for Transformers.

    Args:
        name: `"adamw"` (default; batch sizes up to a few thousand) or `"lamb"` (very
            large batches). See the module docstring.
        learning_rate: The (peak) learning rate. ktlite's fitting policies drive it per
            batch, so this is mostly the value `lr_find` and `model.fit` start from.
        weight_decay: Decoupled weight decay, >= 0 (default 0.01).
        exclude_from_weight_decay: Substrings of variable names that get no weight decay;
            default `("bias", "gamma", "beta")`: biases and LayerNorm/BatchNorm scales and
            offsets. `None` or `()` decays everything.
        gradient_accumulation_steps: Average gradients over this many batches before
            each update (`None` or 1: update every batch), by Keras's own mechanism; a
            `Learner` runs it as ktlite's (see `get_learner(gradient_accumulation_steps=)`),
            which its LR finder can pause and whose epochs end on an update.
        **kwargs: Passed on to the Keras optimizer (`beta_1`, `beta_2`, `epsilon`,
            `global_clipnorm`, ...).

    Returns:
        A `keras.optimizers.AdamW` or `keras.optimizers.Lamb`, not yet built.

    Raises:
        ValueError: If `name` is unknown, `learning_rate` is not a positive finite number,
            `weight_decay` is negative or not finite, or `gradient_accumulation_steps` is
            below 1.
        TypeError: If `name` is not a str, `exclude_from_weight_decay` is a single string
            (pass a list), `learning_rate` is neither a number nor a schedule,
            `weight_decay` is not a number, or `gradient_accumulation_steps` is not an int.

    Example:
        >>> opt = get_optimizer("lamb", learning_rate=scale_lr(1e-3, 256, 8192, "sqrt"))
        >>> model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    """
    expected = f"`name` must be one of {list(OPTIMIZER_NAMES)} (any case)."
    if not isinstance(name, str):
        raise TypeError(f"{expected} Received: name={name!r:.80}")
    key = name.lower()
    if key not in OPTIMIZER_NAMES:
        raise ValueError(f"{expected} Received: name={name!r}")
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_positive_float(learning_rate, "learning_rate")
    weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
    if isinstance(exclude_from_weight_decay, str):
        raise TypeError(
            "`exclude_from_weight_decay` must be a list of name substrings, not one string "
            f"(it would exclude every letter). Received: {exclude_from_weight_decay!r}; pass "
            f"[{exclude_from_weight_decay!r}]"
        )
    gradient_accumulation_steps = check_positive_int(
        gradient_accumulation_steps, "gradient_accumulation_steps", allow_none=True
    )
    accumulation = gradient_accumulation_steps if (gradient_accumulation_steps or 1) > 1 else None
    cls = keras.optimizers.AdamW if key == "adamw" else keras.optimizers.Lamb
    optimizer = cls(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        gradient_accumulation_steps=accumulation,
        **kwargs,
    )
    if exclude_from_weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(exclude_from_weight_decay))
    return optimizer


def default_optimizer(
    optimizer: Any,
    learning_rate: Any,
    weight_decay: Any = 0.01,
    no_decay: Sequence[str] = NO_DECAY_NAMES,
) -> Any:
    """The optimizer a task's model builder compiles with: the user's, or a fresh default.

    Args:
        optimizer: an optimizer name or instance, used as given, or `None` for the default.
        learning_rate: learning rate of the default, a positive float.
        weight_decay: decoupled weight decay of the default AdamW; `0` gives plain Adam.
            Defaults to 0.01.
        no_decay: variable-name fragments kept out of weight decay (biases, normalization
            scales and offsets by default).

    Returns:
        `optimizer` itself, or a new `AdamW` (`Adam` without decay).

    Raises:
        TypeError: if `optimizer` is neither `None`, a name nor an optimizer, or (without
            an `optimizer`) `learning_rate` or `weight_decay` is not a number.
        ValueError: if `learning_rate` is not positive and finite, `weight_decay` is
            negative or not finite, or `optimizer` names no Keras optimizer.

    Example:
        >>> default_optimizer(None, 1e-3, weight_decay=1e-4)
        <keras...AdamW ...>
    """
    if optimizer is not None:
        if not isinstance(optimizer, (str, keras.optimizers.Optimizer)):
            raise TypeError(
                "`optimizer` must be a name, a keras.optimizers.Optimizer or None. "
                f"Received: optimizer={optimizer!r}"
            )
        if isinstance(optimizer, str):
            try:
                keras.optimizers.get(optimizer)
            except ValueError:
                raise ValueError(
                    "`optimizer` must name a Keras optimizer (e.g. 'adam', 'adamw', 'sgd', "
                    f"'rmsprop'). Received: optimizer={optimizer!r}"
                ) from None
        return optimizer
    learning_rate = check_positive_float(learning_rate, "learning_rate")
    weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
    if weight_decay == 0:
        return keras.optimizers.Adam(learning_rate=learning_rate)
    return get_optimizer("adamw", learning_rate, weight_decay, no_decay)
