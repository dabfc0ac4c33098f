"""Every private Keras/TensorFlow hook of `ktlite.compat`, run against the installed versions.

Each test drives one hook through `compat.verify`, so a release that drops what the hook
relies on fails here with the hook's name and the versions, not deep inside training.
"""

import ast
import re
import tomllib
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from packaging.requirements import Requirement

from ktlite import compat
from ktlite.layers import TokenAndPositionEmbedding

HOOKS = sorted(set(compat.__all__) - {"TESTED_WITH", "verify"})


def tiny_model(compiled=True):
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = TokenAndPositionEmbedding(20, 6, 8, name="embedding")(ids)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax", name="head")(x))
    if compiled:
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tiny_batch():
    rng = np.random.default_rng(0)
    return rng.integers(1, 20, (4, 6)).astype("int32"), np.array([0, 1, 0, 1])


# ------------------------------------------------------------------ the checker itself
def test_every_hook_has_a_test_here():
    source = Path(__file__).read_text()
    missing = [h for h in HOOKS if not re.search(rf'compat\.verify\(\s*"{h}"', source)]
    assert not missing, f"ktlite.compat hooks without a test in {Path(__file__).name}: {missing}"


def test_verify_names_the_hook_and_the_versions_when_the_private_api_is_gone():
    with pytest.raises(RuntimeError) as info:
        compat.verify("flatten_layers", lambda: compat.flatten_layers(object()))
    message = str(info.value)
    assert message.startswith("ktlite.compat.flatten_layers:")
    assert f"keras {keras.version()}" in message and f"tensorflow {tf.__version__}" in message
    assert compat.TESTED_WITH["keras"] in message
    with pytest.raises(RuntimeError, match=r"ktlite\.compat\.is_default_strategy: .*False"):
        compat.verify("is_default_strategy", lambda: compat.is_default_strategy(object()))


def test_verify_refuses_a_name_that_is_not_a_hook():
    with pytest.raises(ValueError, match="`hook` must name a hook"):
        compat.verify("TESTED_WITH", lambda: True)


def test_setters_refuse_an_attribute_the_installed_version_does_not_have():
    with pytest.raises(RuntimeError, match=r"ktlite\.compat\.set_learning_rate_object: .*"
                                           r"object has no `_learning_rate`"):
        compat.set_learning_rate_object(object(), 1.0)


def test_pyproject_bounds_hold_the_tested_and_installed_versions():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    requirements = {Requirement(r).name: Requirement(r) for r in
                    pyproject["project"]["dependencies"]}
    installed = {"keras": keras.version(), "tensorflow": tf.__version__}
    for package, tested in compat.TESTED_WITH.items():
        specifier = requirements[package].specifier
        upper = [s for s in specifier if s.operator == "<"]
        assert upper, f"pyproject.toml: {package} needs an upper bound (tested: {tested})"
        major, minor = (int(part) for part in tested.split(".")[:2])
        assert upper[0].version == f"{major}.{minor + 1}", (
            f"pyproject.toml: {package}'s upper bound {upper[0]} does not follow "
            f"compat.TESTED_WITH ({tested})"
        )
        assert specifier.contains(tested) and specifier.contains(installed[package])


# ------------------------------------------------------------------ optimizers
def test_learning_rate_object():
    plain = keras.optimizers.Adam(1e-3)
    variable = compat.verify("learning_rate_object", lambda: compat.learning_rate_object(plain))
    assert isinstance(variable, keras.Variable)
    assert float(variable.numpy()) == pytest.approx(1e-3)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    assert compat.learning_rate_object(keras.optimizers.Adam(schedule)) is schedule


def test_set_learning_rate_object():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    optimizer = keras.optimizers.Adam(schedule)
    variable = keras.Variable(0.25, trainable=False)

    def swap():
        compat.set_learning_rate_object(optimizer, variable)
        # The public property reads what the hook wrote.
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.25

    tracked = len(optimizer.variables)
    compat.verify("set_learning_rate_object", swap)
    compat.set_learning_rate_object(optimizer, schedule)
    assert compat.learning_rate_object(optimizer) is schedule
    assert len(optimizer.variables) == tracked  # the swapped-in variable is untracked again


def test_optimizer_variable_key():
    model = tiny_model()
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    keys = [compat.verify("optimizer_variable_key",
                          lambda v=v: compat.optimizer_variable_key(optimizer, v))
            for v in model.trainable_variables]
    assert len(set(keys)) == len(model.trainable_variables)


def test_optimizer_variable_keys():
    model = tiny_model()
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables[1:])
    first, rest = model.trainable_variables[0], model.trainable_variables[1:]

    def covers():
        keys = compat.optimizer_variable_keys(optimizer)
        return keys is not None and all(
            compat.optimizer_variable_key(optimizer, v) in keys for v in rest
        )

    compat.verify("optimizer_variable_keys", covers)
    assert compat.optimizer_variable_key(optimizer, first) not in (
        compat.optimizer_variable_keys(optimizer)
    )


def test_optimizer_variable_keys_map_to_build_positions():
    # ktlite's check that an EMA optimizer was built for the trainable variables in order.
    model = tiny_model()
    optimizer = model.optimizer
    built = list(reversed(model.trainable_variables))
    optimizer.build(built)

    def positions():
        keys = compat.optimizer_variable_keys(optimizer)
        return [keys.get(compat.optimizer_variable_key(optimizer, v)) for v in built]

    assert compat.verify("optimizer_variable_keys", positions) == list(range(len(built)))


def test_weight_decay_exclusions():
    model = tiny_model()
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.1)
    kernel = model.get_layer("head").kernel
    optimizer.exclude_from_weight_decay(var_list=[kernel], var_names=["bias"])

    def exclusions():
        found = compat.weight_decay_exclusions(optimizer)
        return None if None in found else found

    pattern, keys = compat.verify("weight_decay_exclusions", exclusions)
    assert pattern.search("head/bias") and not pattern.search("head/kernel")
    assert compat.optimizer_variable_key(optimizer, kernel) in keys


def test_copy_weight_decay_exclusions():
    model = tiny_model()
    head = model.get_layer("head")
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_list=[head.kernel], var_names=["bias"])
    copy = type(optimizer).from_config(optimizer.get_config())
    copy.build(model.trainable_variables)
    assert copy._use_weight_decay(head.kernel) and copy._use_weight_decay(head.bias)  # lost

    def copied():
        compat.copy_weight_decay_exclusions(optimizer, copy)
        return not (copy._use_weight_decay(head.kernel) or copy._use_weight_decay(head.bias))

    compat.verify("copy_weight_decay_exclusions", copied)
    # For a reloaded copy of the model, a variable excluded by itself goes by its pair.
    other = tiny_model()
    reloaded = type(optimizer).from_config(optimizer.get_config())
    reloaded.build(other.trainable_variables)
    compat.copy_weight_decay_exclusions(optimizer, reloaded, list(zip(model.weights,
                                                                      other.weights)))
    decayed = [reloaded._use_weight_decay(v) for v in other.trainable_variables]
    assert decayed == [not ("bias" in v.path or v is other.get_layer("head").kernel)
                       for v in other.trainable_variables]


def test_step_counter():
    optimizer = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2)
    optimizer.build(tiny_model().trainable_variables)

    def counter():
        compat.step_counter(optimizer).assign(6)
        return int(optimizer.iterations.numpy()) == 3  # 6 steps, accumulated by 2

    compat.verify("step_counter", counter)


def test_saved_optimizer_variables(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "uncompiled.keras")
    assert compat.saved_optimizer_variables(str(tmp_path / "uncompiled.keras")) is None
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    state = compat.verify("saved_optimizer_variables", lambda: compat.saved_optimizer_variables(
        str(tmp_path / "m.keras")))
    assert sorted(state, key=int) == [str(i) for i in range(len(model.optimizer.variables))]
    for index, variable in enumerate(model.optimizer.variables):
        np.testing.assert_array_equal(state[str(index)], variable.numpy())


def test_uses_weight_decay():
    model = tiny_model()
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.build(model.trainable_variables)
    head = model.get_layer("head")
    decayed = compat.verify(
        "uses_weight_decay", lambda: compat.uses_weight_decay(optimizer, head.kernel)
    )
    assert decayed is True and compat.uses_weight_decay(optimizer, head.bias) is False


def test_decays_as_adamw():
    model = tiny_model()
    optimizer = keras.optimizers.Muon(1e-3)
    optimizer.build(model.trainable_variables)
    head = model.get_layer("head")
    vector = compat.verify("decays_as_adamw", lambda: compat.decays_as_adamw(optimizer, head.bias))
    assert vector is True and compat.decays_as_adamw(optimizer, head.kernel) is False


# ------------------------------------------------------------------ models and layers
def test_flatten_layers():
    model = tiny_model(compiled=False)
    layers = compat.verify("flatten_layers", lambda: compat.flatten_layers(model))
    names = [layer.name for layer in layers]
    assert layers[0] is model
    # The embedding's own sublayer, which `model.layers` does not list.
    assert "token_embedding" in names and names.index("embedding") < names.index(
        "token_embedding"
    )
    top = [layer.name for layer in compat.flatten_layers(model, False, recursive=False)]
    assert top == [layer.name for layer in model.layers]


def test_compile_arguments():
    model = tiny_model(compiled=False)
    assert compat.compile_arguments(model) is None
    loss = keras.losses.SparseCategoricalCrossentropy()
    metric = keras.metrics.SparseCategoricalAccuracy()
    model.compile(optimizer="adam", loss=loss, metrics=[metric], loss_weights=[0.5])
    config = compat.verify("compile_arguments", lambda: compat.compile_arguments(model))
    # The very objects passed, not serialized copies.
    assert config["loss"] is loss and config["metrics"][0] is metric
    assert config["loss_weights"] == [0.5]


def test_loss_tracker():
    model = tiny_model()
    x, y = tiny_batch()
    model.train_on_batch(x, y)
    tracker = compat.verify("loss_tracker", lambda: compat.loss_tracker(model))
    total, count = (float(v.numpy()) for v in tracker.variables)
    assert count > 0 and total / count == pytest.approx(float(tracker.result()), rel=1e-6)


def test_metric_direction():
    up = compat.verify("metric_direction",
                       lambda: compat.metric_direction(keras.metrics.CosineSimilarity()))
    assert up == "up"
    assert compat.metric_direction(keras.metrics.MeanSquaredError()) == "down"
    assert compat.metric_direction(keras.metrics.Mean()) is None


def test_creation_strategy():
    outside = tiny_model(compiled=False)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        inside = tiny_model(compiled=False)
    compat.verify("creation_strategy", lambda: compat.creation_strategy(inside) is strategy)
    assert compat.creation_strategy(outside) is None


def test_producing_operation():
    model = tiny_model(compiled=False)
    layer = compat.verify("producing_operation",
                          lambda: compat.producing_operation(model.outputs[0]))
    assert layer is model.get_layer("head")
    assert compat.producing_operation(np.zeros(2)) is None


def test_is_functional():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    compat.verify("is_functional", lambda: compat.is_functional(tiny_model(compiled=False)))
    assert not compat.is_functional(keras.Sequential([keras.layers.Dense(1)]))
    assert not compat.is_functional(Subclassed())


# ------------------------------------------------------------------ Keras' TF trainer
def test_tf_trainer_sources():
    build, reduce = compat.verify("tf_trainer_sources", compat.tf_trainer_sources)
    assert "def _maybe_symbolic_build" in build
    assert "def reduce_per_replica" in reduce


def test_symbolic_build():
    model = tiny_model()
    assert not model.optimizer.built

    def build():
        compat.symbolic_build(model, tiny_batch())
        return model.optimizer.built

    compat.verify("symbolic_build", build)
    assert len(model.optimizer.variables) > 1  # iterations, then one slot per weight


def test_symbolic_build_from_a_datasets_element_spec():
    model = tiny_model()
    with pytest.raises(ValueError):
        model.get_metrics_result()  # compiled metrics not built yet
    specs = tf.data.Dataset.from_tensor_slices(tiny_batch()).batch(2).element_spec
    compat.symbolic_build(model, specs)
    assert set(model.get_metrics_result()) == {"loss", "accuracy"}


def test_replace_symbolic_build():
    model = tiny_model()
    compat.symbolic_build(model, tiny_batch())
    calls = []

    def build(self, iterator=None, data_batch=None):
        calls.append(self)

    compat.replace_symbolic_build(model, build)
    model.fit(*tiny_batch(), epochs=1, verbose=0)
    compat.verify("replace_symbolic_build", lambda: calls == [model])
    with pytest.raises(RuntimeError, match="replace_symbolic_build"):
        compat.replace_symbolic_build(object(), build)


def test_make_step_function():
    model = tiny_model()
    x, y = tiny_batch()
    compat.symbolic_build(model, (x, y))
    before = model.get_layer("head").kernel.numpy().copy()
    step = compat.verify("make_step_function",
                         lambda: compat.make_step_function(model, model.train_step))
    step(iter(tf.data.Dataset.from_tensors((x, y))))
    assert int(model.optimizer.iterations.numpy()) == 1
    assert not np.allclose(model.get_layer("head").kernel.numpy(), before)


# ------------------------------------------------------------------ TensorFlow
def test_is_trackable():
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(["a"], [1], tf.string, tf.int64), default_value=0
    )
    compat.verify("is_trackable", lambda: compat.is_trackable(table))
    assert not compat.is_trackable(object())


class _Scaler:
    def __init__(self, k):
        self.k = float(k)

    def scale(self, x):
        return x * self.k


class _QuietScaler(_Scaler):
    # Its own code object: TensorFlow warns at most twice per code object, so the check
    # must not share `_Scaler.scale` with the plain `tf.function` run that warns.
    def scale(self, x):
        return x * self.k


def _retracing_warnings(scaler_class, make_function):
    """TensorFlow's retracing warnings while seven objects each build and call a function."""
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf.get_logger().addHandler(handler)
    try:
        for k in range(7):
            assert make_function(scaler_class(k).scale)(tf.constant([1.0])).numpy()[0] == k
    finally:
        tf.get_logger().removeHandler(handler)
    return [r for r in records if "retracing" in r.getMessage()]


def test_per_instance_function_silences_the_warning_a_plain_tf_function_gives():
    signature = [tf.TensorSpec([None], tf.float32)]
    # The warning it exists to silence: seven objects' bound methods share one code object.
    assert _retracing_warnings(_Scaler, lambda fn: tf.function(fn, input_signature=signature))
    compat.verify("per_instance_function", lambda: not _retracing_warnings(
        _QuietScaler, lambda fn: compat.per_instance_function(fn, signature)))


def test_set_tflite_custom_op_registerers():
    converter = tf.lite.TFLiteConverter.from_keras_model(tiny_model(compiled=False))

    def register():
        compat.set_tflite_custom_op_registerers(converter, ("AddRegisterer",))
        return converter.target_spec._experimental_custom_op_registerers == ["AddRegisterer"]

    compat.verify("set_tflite_custom_op_registerers", register)


def test_is_default_strategy():
    compat.verify("is_default_strategy",
                  lambda: compat.is_default_strategy(tf.distribute.get_strategy()))
    assert not compat.is_default_strategy(tf.distribute.OneDeviceStrategy("/cpu:0"))


# ------------------------------------------------------------------ tf.data pipelines
def test_dataset_input():
    source = tf.data.Dataset.range(10)
    batched = source.map(lambda v: v * 2).batch(4)
    mapped = compat.verify("dataset_input", lambda: compat.dataset_input(batched))
    assert int(mapped.cardinality()) == 10
    assert compat.dataset_input(source) is None


def test_dataset_parents():
    a, b = tf.data.Dataset.range(3), tf.data.Dataset.range(5).batch(2)
    parents = compat.verify("dataset_parents",
                            lambda: compat.dataset_parents(tf.data.Dataset.zip((a, b))) or None)
    assert sorted(int(p.cardinality()) for p in parents) == [3, 3]
    assert compat.dataset_parents(a) == []


def test_dataset_batch_size():
    batched = tf.data.Dataset.range(10).batch(4)
    size = compat.verify("dataset_batch_size", lambda: compat.dataset_batch_size(batched))
    assert int(tf.get_static_value(size)) == 4
    assert compat.dataset_batch_size(tf.data.Dataset.range(3)) is None


def test_dataset_drop_remainder():
    dropping = tf.data.Dataset.range(10).batch(4, drop_remainder=True)
    compat.verify("dataset_drop_remainder",
                  lambda: bool(tf.get_static_value(compat.dataset_drop_remainder(dropping))))
    keeping = tf.data.Dataset.range(10).batch(4)
    assert not bool(tf.get_static_value(compat.dataset_drop_remainder(keeping)))


def test_is_unbatch_step():
    batched = tf.data.Dataset.range(10).batch(4)
    compat.verify("is_unbatch_step", lambda: compat.is_unbatch_step(batched.unbatch()))
    assert not compat.is_unbatch_step(batched)


@pytest.mark.parametrize("make", [
    lambda d: d.batch(4),
    lambda d: d.padded_batch(4),
    lambda d: d.map(lambda v: tf.fill([v % 3 + 1], v)).ragged_batch(4),
], ids=["batch", "padded_batch", "ragged_batch"])
def test_is_batch_step(make):
    dataset = make(tf.data.Dataset.range(10))
    compat.verify("is_batch_step", lambda: compat.is_batch_step(dataset))
    assert not compat.is_batch_step(tf.data.Dataset.range(10).map(lambda v: v + 1))


def test_dataset_function_steps():
    samples = tf.data.Dataset.range(10)
    grouped = samples.group_by_window(lambda v: v % 2, lambda k, w: w.batch(4), window_size=4)
    steps = compat.verify("dataset_function_steps",
                          lambda: compat.dataset_function_steps(grouped) or None)
    assert steps == ["BatchDatasetV2", "Placeholder"]
    bucketed = samples.bucket_by_sequence_length(lambda v: tf.constant(1), [5], [4, 4])
    assert compat.dataset_function_steps(bucketed)[0] == "PaddedBatchDatasetV2"
    sliced = samples.batch(4).flat_map(tf.data.Dataset.from_tensor_slices)
    assert compat.dataset_function_steps(sliced) == ["TensorSliceDataset"]
    assert compat.dataset_function_steps(samples.map(lambda v: v + 1)) == []
    assert compat.dataset_function_steps(samples.batch(4)) == []


def test_no_module_outside_compat_reaches_private_keras_or_tf_api():
    root = Path(__file__).parents[1] / "ktlite"
    pattern = re.compile(r"keras\.src|tf\.__internal__|tensorflow\.python")
    offenders = [
        f"{path.relative_to(root.parent)}:{number}"
        for path in sorted(root.rglob("*.py")) if path.name != "compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, f"private Keras/TF API outside ktlite/compat.py: {offenders}"


def _ktlite_names(trees) -> set:
    """Every name ktlite itself defines: functions, classes, variables, `self.` attributes."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[-1])
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def _private_names_used(tree):
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call) and getattr(node.func, "id", None) in
            ("getattr", "hasattr", "setattr", "delattr") and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if name and name.startswith("_") and not name.startswith("__"):
            yield node.lineno, name


def test_no_module_outside_compat_uses_an_underscored_name_ktlite_does_not_define():
    # A heuristic: an underscored attribute that no ktlite code defines belongs to Keras or
    # TensorFlow (names ktlite also uses for its own attributes cannot be told apart).
    root = Path(__file__).parents[1] / "ktlite"
    paths = sorted(root.rglob("*.py"))
    trees = {path: ast.parse(path.read_text()) for path in paths}
    own = _ktlite_names(trees.values()) | {path.stem for path in paths}
    offenders = [
        f"{path.relative_to(root.parent)}:{line}: {name}"
        for path, tree in trees.items() if path.name != "compat.py"
        for line, name in _private_names_used(tree) if name not in own
    ]
    assert not offenders, f"private Keras/TF attributes outside ktlite/compat.py: {offenders}"
