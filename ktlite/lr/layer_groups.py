"""Discriminative learning rates: one multiplier of the learning rate per layer group.

Why the multiplier is applied to the learning rate and not to the gradient: scaling a
gradient by `m` scales an SGD step by `m`, but Adam-type optimizers divide the first moment
by the root of the second, so their step ignores a constant gradient scale. Instead every
variable's own update is computed by the user's optimizer with `learning_rate * m`, where
`m` is its group's multiplier: `GroupRates` wraps the optimizer's `update_step(gradient,
variable, learning_rate)`, the per-variable update Keras calls for every optimizer, so the
step of a group is exactly that optimizer's step at the group's rate, decoupled weight decay
included (Keras would decay every variable with the base rate; while a `GroupRates` is
installed it decays each variable inside its own update, with the group's rate).

The multipliers live in one `tf.Variable` read inside the traced train step, so the
learning-rate policy of `ktlite.lr.PolicyCallback` (which assigns the base rate per step in
the graph) and the group multipliers combine without a Python round trip per step, and new
multipliers need no retrace.

Example:
    >>> groups = layer_groups(model)                 # embeddings ... head
    >>> with GroupRates(model, groups, group_multipliers(len(groups), 100.0)):
    ...     model.fit(x, y, epochs=1)                 # head at lr, first group at lr / 100
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from ktlite import compat
from ktlite.arguments import check_float, check_positive_float, check_positive_int
from ktlite.lr.preserve import check_compiled

__all__ = ["GroupRates", "group_multipliers", "layer_groups"]

_NORMALIZATION = (
    keras.layers.LayerNormalization,
    keras.layers.BatchNormalization,
    keras.layers.GroupNormalization,
    keras.layers.UnitNormalization,
)


def _tf():
    import tensorflow as tf

    return tf


def _weighted_layers(model: keras.Model) -> list:
    """Layers that own weights a fit can train, in order; nested models are opened.

    Frozen layers count (fine-tuning unfreezes them); a trainable layer whose weights are
    all non-trainable (an input `Normalization`'s statistics) does not.
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_weighted_layers(layer))
        elif layer.weights and (not layer.trainable or layer.trainable_weights):
            found.append(layer)
    return found


def _nested_models(model: keras.Model) -> list:
    """The models inside `model`, at any depth, outer ones first."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend([layer, *_nested_models(layer)])
    return found


def _opened(members: Sequence[Any], nested: list, by_name: dict[str, list]) -> list:
    """`members` with each nested model (or its name, unless a layer with weights has
    it) replaced by its layers with weights."""
    opened = []
    for item in members:
        model = None
        if isinstance(item, keras.Model) and any(item is m for m in nested):
            model = item
        elif isinstance(item, str) and item not in by_name:
            model = next((m for m in nested if m.name == item), None)
        opened.extend(_weighted_layers(model) if model is not None else [item])
    return opened


def layer_groups(
    model: keras.Model, groups: Sequence[Any] | None = None, name: str = "groups"
) -> list[list[keras.layers.Layer]]:
    """Splits a model's layers into groups, from the input side to the head.

    Automatic groups (`groups=None`): every layer that owns trainable weights (or is
    frozen) starts a group, in `model.layers` order (layers of a nested model count one
    by one), except normalization layers, which join the group before them (an embedding
    and its normalization are one group). The last group is the head: the last layer
    with weights that is not a normalization layer, with those after it (where a model
    ends with a normalization layer, as ktlite's causal LM does, this is more than
    `Learner.freeze()` leaves trainable: the last layer with weights alone).

    Args:
        model: a built `keras.Model`.
        groups: `None`, or a sequence of groups from input to head, each a layer, a layer
            name, a nested model (standing for its layers with weights) or its name, or a
            list of those. Every layer with weights must be in exactly one group. A name
            must be unique among the layers with weights, nested ones included.
        name: the argument name for error messages (`fine_tune` passes `"layer_groups"`).

    Returns:
        A list of lists of layers.

    Raises:
        TypeError: if `model` is not a `keras.Model`, `groups` is not a sequence of groups,
            or a group member is neither a layer nor a str.
        ValueError: if `model` has fewer than one layer with weights, a name is unknown
            or names two layers (a nested model may reuse a name: pass layer objects
            then), a layer is not one of the model's layers with weights, a layer is in
            two groups, or a layer with weights is in none.

    Example:
        >>> [[layer.name for layer in g] for g in layer_groups(model)]
        [['embedding', 'embedding_norm'], ['encoder_0'], ['encoder_1'], ['head']]
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model of type {type(model).__name__}"
        )
    weighted = _weighted_layers(model)
    if not weighted:
        raise ValueError(
            f"`model` must have layers with weights to group. Received: model {model.name!r}"
        )
    if groups is None:
        found: list[list] = []
        for layer in weighted:
            if found and isinstance(layer, _NORMALIZATION):
                found[-1].append(layer)
            else:
                found.append([layer])
        return found
    if isinstance(groups, (str, keras.layers.Layer)) or not isinstance(groups, Sequence):
        raise TypeError(
            f"`{name}` must be a list of groups (each a layer, a layer name or a list of "
            f"them). Received: {name}={groups!r:.80}"
        )
    by_name: dict[str, list] = {}
    for layer in weighted:
        by_name.setdefault(layer.name, []).append(layer)
    nested = _nested_models(model)
    result, seen = [], set()
    for group in groups:
        members = group if isinstance(group, (list, tuple)) else [group]
        resolved = []
        for item in _opened(members, nested, by_name):
            if not isinstance(item, (str, keras.layers.Layer)):
                raise TypeError(
                    f"Each member of a group in `{name}` must be a layer with weights of the "
                    f"model (or its name). Received: {item!r:.80} of type {type(item).__name__}"
                )
            if isinstance(item, str) and len(by_name.get(item, ())) > 1:
                raise ValueError(
                    f"`{name}`: the name {item!r} is ambiguous: {len(by_name[item])} layers "
                    f"with weights are named {item!r} (a nested model may reuse a name). "
                    "Pass layer objects instead of names: `model.get_layer(name)` for the "
                    "outer one, `model.get_layer(nested_model_name).get_layer(name)` for "
                    f"a nested one. Received: {item!r}"
                )
            layer = by_name.get(item, [None])[0] if isinstance(item, str) else item
            if layer is None or not any(layer is w for w in weighted):
                raise ValueError(
                    f"Each member of a group in `{name}` must be a layer with weights of the "
                    f"model or a nested model (or its name). Received: {item!r:.80}; layers "
                    f"with weights: {sorted(by_name)}; nested models: "
                    f"{sorted(m.name for m in nested)}"
                )
            if id(layer) in seen:
                raise ValueError(f"`{name}`: layer {layer.name!r} is in two groups.")
            seen.add(id(layer))
            resolved.append(layer)
        if not resolved:
            raise ValueError(f"`{name}` must not hold an empty group. Received: {name}="
                             f"{groups!r:.80}")
        result.append(resolved)
    missing = [layer.name for layer in weighted if id(layer) not in seen]
    if missing:
        raise ValueError(
            f"`{name}` must put every layer with weights in a group; these are in none: "
            f"{missing}"
        )
    return result


def group_multipliers(n_groups: int, lr_mult: float | Sequence[float]) -> np.ndarray:
    """Learning-rate multipliers per group: the head gets 1, the first group `1 / lr_mult`.

    A number spreads the groups geometrically between `1 / lr_mult` and 1 (fastai's
    `slice(lr / lr_mult, lr)`); a sequence gives every group's multiplier itself.

    Args:
        n_groups: the number of groups, >= 1.
        lr_mult: a number >= 1 (a 0-d NumPy array counts as one), or one positive
            multiplier per group (a list, tuple or 1-D array).

    Returns:
        A float32 array of `n_groups` multipliers.

    Raises:
        TypeError: if `n_groups` is not an int, or `lr_mult` (or one of its multipliers)
            is not a number.
        ValueError: for `n_groups` below 1, an `lr_mult` below 1, a multiplier that is not
            positive and finite, a sequence of the wrong length, or an array of more than
            one dimension.

    Example:
        >>> group_multipliers(3, 100.0)
        array([0.01, 0.1 , 1.  ], dtype=float32)
    """
    n_groups = check_positive_int(n_groups, "n_groups")
    expected = (f"a float >= 1, or a 1-D sequence of {n_groups} positive floats (one "
                "multiplier per group)")
    if isinstance(lr_mult, np.ndarray):
        if lr_mult.ndim > 1:
            raise ValueError(f"`lr_mult` must be {expected}. Received: lr_mult of shape "
                             f"{lr_mult.shape}")
        lr_mult = lr_mult.tolist()  # 0-d: the number itself
    if isinstance(lr_mult, Sequence) and not isinstance(lr_mult, str):
        if len(lr_mult) != n_groups:
            raise ValueError(
                f"`lr_mult` as a sequence must hold {n_groups} positive numbers (one per "
                f"group). Received: lr_mult={lr_mult!r}"
            )
        return _positive_floats(lr_mult, "lr_mult")
    try:
        lr_mult = check_float(lr_mult, "lr_mult", low=1.0)
    except (TypeError, ValueError) as err:
        raise type(err)(f"`lr_mult` must be {expected}. Received: lr_mult={lr_mult!r:.80}"
                        ) from None
    if n_groups == 1:
        return np.ones(1, dtype=np.float32)
    exponents = np.arange(n_groups - 1, -1, -1) / (n_groups - 1)
    return (lr_mult ** -exponents).astype(np.float32)


def _positive_floats(values: Sequence[Any], name: str) -> np.ndarray:
    """`values` as float32 once each is a positive finite number (named `name[i]`)."""
    return np.asarray(
        [check_positive_float(v, f"{name}[{i}]") for i, v in enumerate(values)],
        dtype=np.float32,
    )


# The optimizer attributes holding a weight decay that Keras applies at the base rate.
_DECAYS = ("weight_decay", "adam_weight_decay")


class GroupRates:
    """Applies a learning-rate multiplier per layer group to a compiled model's optimizer.

    Installed (`install()`, or as a context manager), the optimizer computes the update of
    each variable of group `i` with `learning_rate * multipliers[i]`; the learning-rate
    variable itself, the optimizer's state and config are untouched, and `uninstall()`
    puts back exactly the optimizer methods that were there. Multipliers can be changed
    while installed (`set_multipliers`) without retracing.

    Every Keras optimizer whose `update_step` uses the learning rate it is given (all the
    built-in ones) gets exactly its own update at the group's rate, its weight decay
    included (each variable decayed at its group's rate; Muon's `adam_weight_decay` on its
    AdamW path); `LossScaleOptimizer` and Keras' or
    ktlite's gradient accumulation pass through unchanged.

    Args:
        model: a compiled, built model (under its strategy).
        groups: groups of layers, as returned by `layer_groups`.
        multipliers: one positive multiplier per group (see `group_multipliers`).

    Raises:
        TypeError: if `model` is not a `keras.Model` or a multiplier is not a number.
        ValueError: if the model is not compiled, `multipliers` does not fit `groups`, or a
            multiplier is not positive and finite.

    Example:
        >>> rates = GroupRates(model, layer_groups(model), [0.1, 0.3, 1.0])
        >>> with rates:
        ...     model.fit(x, y)
    """

    def __init__(self, model: keras.Model, groups: Sequence[Sequence[Any]],
                 multipliers: Sequence[float]) -> None:
        check_compiled(model, "GroupRates")
        optimizer = model.optimizer
        self.model = model
        self.groups = [list(g) for g in groups]
        self.optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        values = self._check(multipliers)
        tf = _tf()
        strategy = model.distribute_strategy
        with strategy.scope():
            self.multipliers = tf.Variable(
                values, trainable=False, dtype=tf.float32,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                name="ktlite_group_lr_multipliers",
            )
        # update_step receives the tf.Variable (or its per-device copy), not the Keras one:
        # its id -> (its group, the Keras variable).
        self._owner: dict[int, tuple[int, Any]] = {}
        for index, group in enumerate(self.groups):
            for layer in group:
                for weight in layer.weights:
                    value = getattr(weight, "value", weight)
                    for part in strategy.experimental_local_results(value):
                        self._owner[id(part)] = (index, weight)
        self._saved: dict[str, Any] | None = None
        self._decays: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._applying = 0  # replicas inside `apply` (one thread each under a strategy)

    def _check(self, multipliers: Sequence[float]) -> np.ndarray:
        values = np.asarray(multipliers, dtype=object).ravel()
        if len(values) != len(self.groups):
            raise ValueError(
                f"`multipliers` must hold {len(self.groups)} positive numbers (one per "
                f"group). Received: multipliers={multipliers!r}"
            )
        return _positive_floats(values, "multipliers")

    @property
    def installed(self) -> bool:
        """Whether the optimizer currently applies the multipliers."""
        return self._saved is not None

    def set_multipliers(self, multipliers: Sequence[float]) -> None:
        """Replaces the multipliers (takes effect at the next step; no retrace).

        Args:
            multipliers: one positive number per group.

        Raises:
            TypeError: if a multiplier is not a number.
            ValueError: for a number of multipliers other than the number of groups, or one
                that is not positive and finite.

        Example:
            >>> rates.set_multipliers([0.5, 1.0])
        """
        self.multipliers.assign(self._check(multipliers))

    def install(self) -> GroupRates:
        """Makes the optimizer apply the multipliers from the next traced step on.

        Returns:
            `self`.

        Example:
            >>> rates.install()
        """
        if self.installed:
            return self
        optimizer = self.optimizer
        self._saved = {name: optimizer.__dict__.get(name) for name in ("update_step", "apply")}
        original_update = optimizer.update_step
        original_apply = optimizer.apply

        def update_step(gradient, variable, learning_rate):
            index, weight = self._owner.get(id(variable), (None, variable))
            if index is None:
                lr = learning_rate
            else:
                lr = learning_rate * self.multipliers[index]
            decay = self._decays.get("weight_decay")
            if "adam_weight_decay" in self._decays and compat.decays_as_adamw(optimizer,
                                                                              weight):
                decay = self._decays["adam_weight_decay"]  # Muon's AdamW path
            if decay is not None and compat.uses_weight_decay(optimizer, variable):
                rate = _tf().cast(lr, variable.dtype) * _tf().cast(decay, variable.dtype)
                variable.assign_sub(variable * rate)
            return original_update(gradient, variable, lr)

        def apply(grads, trainable_variables=None):
            # Keras decays all variables with the base rate before the updates; hide the
            # decay from it for this call and decay each variable in its own update instead
            # (Muon's `adam_weight_decay` too: its decay ignores a None `weight_decay`).
            # Under a MirroredStrategy every replica's thread calls this at once: the first
            # in reads the decays, the last out puts them back (a later thread read None
            # as the optimizer's own decay and left it there, and updates ran without).
            with self._lock:
                if not self._applying:
                    self._decays = {name: getattr(optimizer, name) for name in _DECAYS
                                    if hasattr(optimizer, name)}
                    for name in self._decays:
                        setattr(optimizer, name, None)
                self._applying += 1
            try:
                return original_apply(grads, trainable_variables)
            finally:
                with self._lock:
                    self._applying -= 1
                    if not self._applying:
                        for name, value in self._decays.items():
                            setattr(optimizer, name, value)
                        self._decays = {}

        object.__setattr__(optimizer, "update_step", update_step)
        object.__setattr__(optimizer, "apply", apply)
        self.model.train_function = None
        return self

    def uninstall(self) -> None:
        """Puts the optimizer's own methods back (the next step is retraced).

        Example:
            >>> rates.uninstall()
        """
        if not self.installed:
            return
        for name, value in self._saved.items():
            if value is None:
                self.optimizer.__dict__.pop(name, None)
            else:
                object.__setattr__(self.optimizer, name, value)
        self._saved = None
        self.model.train_function = None

    def __enter__(self) -> GroupRates:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()
