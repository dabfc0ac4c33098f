"""ktlite.distribute in one process: strategy selection (environment faked), batch checks,
rebuilding a model in scope, and the local multi-worker launcher.

TPUs, GPUs and clusters are never touched here: device listing and strategy factories are
monkeypatched, so these tests say which strategy *would* be created. Real MirroredStrategy
and two-worker runs are in test_distribute_mirrored.py / test_distribute_multi_worker.py.
"""

import json
import re
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktlite import distribute
from ktlite.distribute import local_cluster, trainer_fix
from ktlite.distribute import strategy as sel

TPU_AND_CLUSTER_VARS = (
    "TPU_NAME",
    "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS",
    "COLAB_TPU_ADDR",
    "TPU_ACCELERATOR_TYPE",
    "ISTPUVM",
    "TPU_WORKER_ID",
    "TF_CONFIG",
)


class FakeStrategy(tf.distribute.Strategy):
    """Stands in for a strategy that cannot be created here (TPU, cluster, GPUs)."""

    def __init__(self, kind, replicas=2):
        # Deliberately skips Strategy.__init__: only identity and replica count are used.
        self.kind = kind
        self._replicas = replicas

    @property
    def num_replicas_in_sync(self):
        return self._replicas


@pytest.fixture
def fake_env(monkeypatch):
    """A clean environment with no accelerators, and factories that record what they made."""
    for name in TPU_AND_CLUSTER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sel, "_CACHE", {})
    monkeypatch.setattr(sel, "_list_gpus", lambda: [])
    made = []

    def factory(kind):
        def make(*args):
            made.append((kind, args))
            return FakeStrategy(kind)

        return make

    monkeypatch.setattr(sel, "_connect_tpu", factory("tpu"))
    monkeypatch.setattr(sel, "_make_multi_worker", factory("multi_worker"))
    monkeypatch.setattr(sel, "_make_mirrored", factory("mirrored"))
    return made


def two_worker_config(index=0):
    return json.dumps(
        {
            "cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]},
            "task": {"type": "worker", "index": index},
        }
    )


# ---------------------------------------------------------------- strategy selection
def test_auto_without_accelerators_is_the_default_strategy(fake_env):
    chosen = distribute.get_strategy("auto")
    assert chosen is tf.distribute.get_strategy()
    assert fake_env == []


@pytest.mark.parametrize(
    "name, value, address",
    [
        ("TPU_NAME", "my-tpu", "my-tpu"),
        ("COLAB_TPU_ADDR", "10.0.0.2:8470", "grpc://10.0.0.2:8470"),
        ("TPU_ACCELERATOR_TYPE", "v3-8", "local"),
        ("ISTPUVM", "1", "local"),
    ],
)
def test_auto_picks_tpu_when_tpu_variables_resolve(fake_env, monkeypatch, name, value, address):
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("TF_CONFIG", two_worker_config())
    chosen = distribute.get_strategy("auto")
    assert chosen.kind == "tpu"
    assert fake_env == [("tpu", (address,))]


def test_auto_falls_back_with_a_warning_when_the_tpu_does_not_resolve(fake_env, monkeypatch):
    def unreachable(address):
        raise ValueError("no such TPU")

    monkeypatch.setattr(sel, "_connect_tpu", unreachable)
    monkeypatch.setenv("TPU_NAME", "missing")
    monkeypatch.setenv("TF_CONFIG", two_worker_config())
    with pytest.warns(UserWarning, match="no TPU resolved"):
        chosen = distribute.get_strategy("auto")
    assert chosen.kind == "multi_worker"


def test_auto_picks_multi_worker_when_tf_config_names_several_workers(fake_env, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", two_worker_config(1))
    monkeypatch.setattr(sel, "_list_gpus", lambda: ["gpu0", "gpu1"])
    assert distribute.get_strategy("auto").kind == "multi_worker"


def test_auto_counts_the_chief_as_a_worker(fake_env, monkeypatch):
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief"}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.get_strategy("auto").kind == "multi_worker"


def test_auto_ignores_a_single_worker_tf_config(fake_env, monkeypatch):
    config = {"cluster": {"worker": ["127.0.0.1:1111"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.get_strategy("auto") is tf.distribute.get_strategy()


def test_auto_picks_mirrored_when_several_gpus_are_visible(fake_env, monkeypatch):
    monkeypatch.setattr(sel, "_list_gpus", lambda: ["gpu0", "gpu1"])
    assert distribute.get_strategy("auto").kind == "mirrored"


def test_auto_stays_on_the_default_strategy_with_one_gpu(fake_env, monkeypatch):
    monkeypatch.setattr(sel, "_list_gpus", lambda: ["gpu0"])
    assert distribute.get_strategy("auto") is tf.distribute.get_strategy()


def test_auto_returns_the_same_strategy_object_every_time(fake_env, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", two_worker_config())
    first = distribute.get_strategy("auto")
    assert distribute.get_strategy("auto") is first
    assert distribute.get_strategy("multi_worker") is first
    assert len(fake_env) == 1


def test_auto_prefers_the_strategy_already_in_scope(fake_env, monkeypatch):
    monkeypatch.setattr(sel, "_list_gpus", lambda: ["gpu0", "gpu1"])
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    with one_device.scope():
        assert distribute.get_strategy("auto") is one_device
    assert fake_env == []


def test_auto_says_what_it_chose_only_when_verbose(fake_env, monkeypatch, capsys):
    monkeypatch.setattr(sel, "_list_gpus", lambda: ["gpu0", "gpu1"])
    distribute.get_strategy("auto", verbose=0)
    assert capsys.readouterr().out == ""
    distribute.get_strategy("auto", verbose=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert "FakeStrategy x2" in out[0] and "2 GPUs visible" in out[0]


@pytest.mark.parametrize("verbose, error", [("yes", TypeError), (None, TypeError),
                                            (True, TypeError), (-1, ValueError), (3, ValueError)])
def test_get_strategy_and_prepare_model_refuse_a_verbose_that_is_no_level(verbose, error):
    match = "`verbose` must be 0, 1 or 2. Received: verbose="
    with pytest.raises(error, match=match):
        distribute.get_strategy(None, verbose=verbose)
    with pytest.raises(error, match=match):
        distribute.prepare_model(small_model(), verbose=verbose)
    assert distribute.get_strategy(None, verbose=np.int64(2)) is tf.distribute.get_strategy()


def test_get_strategy_passes_strategies_and_none_through():
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert distribute.get_strategy(one_device) is one_device
    assert distribute.get_strategy(None) is tf.distribute.get_strategy()


def test_get_strategy_rejects_unknown_names_and_types():
    with pytest.raises(ValueError, match="strategy='gpus'"):
        distribute.get_strategy("gpus")
    with pytest.raises(TypeError, match="strategy=3"):
        distribute.get_strategy(3)


def test_invalid_tf_config_is_a_clear_error(fake_env, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.get_strategy("auto")


@pytest.mark.parametrize("config", ['{"cluster": null}', '{"cluster": []}', "[1, 2]", "null"])
def test_a_tf_config_that_is_not_an_object_of_jobs_is_a_clear_error(
    fake_env, monkeypatch, config
):
    monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(ValueError, match=re.escape(f"Received: TF_CONFIG={config!r}")):
        distribute.get_strategy("auto")


@pytest.mark.parametrize("config", ["{not json", "[1]", '{"cluster": []}'])
def test_multi_worker_by_name_checks_tf_config_as_auto_does(monkeypatch, config):
    made = []
    monkeypatch.setattr(sel, "_CACHE", {})
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy",
                        lambda: made.append(1) or FakeStrategy("multi_worker", 1))
    monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(ValueError, match=re.escape(f"Received: TF_CONFIG={config!r}")):
        distribute.get_strategy("multi_worker")
    assert made == [] and sel._CACHE == {}


def test_tpu_by_name_without_a_tpu_explains_the_fix(fake_env, monkeypatch):
    def unreachable(address):
        raise ValueError("no TPU here")

    monkeypatch.setattr(sel, "_connect_tpu", unreachable)
    with pytest.raises(RuntimeError, match="no TPU resolved"):
        distribute.get_strategy("tpu")


def test_late_multi_worker_creation_explains_the_fix(monkeypatch):
    class Late:
        def __init__(self):
            raise RuntimeError("Collective ops must be configured at program startup")

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", Late)
    with pytest.raises(RuntimeError, match="top of the training script"):
        sel._make_multi_worker()


# ---------------------------------------------------------------- batch sizes
def test_check_batch_size_returns_the_per_replica_batch():
    assert distribute.check_batch_size(64, None) == 64
    assert distribute.check_batch_size(64, FakeStrategy("x", replicas=4)) == 16


def test_check_batch_size_refuses_a_batch_that_does_not_split_evenly():
    with pytest.raises(ValueError, match=r"batch_size=30.*use 28 or 32"):
        distribute.check_batch_size(30, FakeStrategy("x", replicas=4))


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-8, ValueError), (2.0, TypeError),
                                        ("32", TypeError), (True, TypeError), (None, TypeError)])
def test_check_batch_size_refuses_non_positive_ints(bad, error):
    with pytest.raises(error, match=f"`batch_size` must be a positive int. Received: "
                                    f"batch_size={bad!r}"):
        distribute.check_batch_size(bad, None)


def test_is_multi_worker_is_false_for_single_process_strategies():
    assert not distribute.is_multi_worker(None)
    assert not distribute.is_multi_worker(tf.distribute.OneDeviceStrategy("/cpu:0"))


# ---------------------------------------------------------------- prepare_model
def small_model(metrics=("accuracy",), loss="sparse_categorical_crossentropy", optimizer=None):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate=3e-3, beta_1=0.8),
        loss=loss,
        metrics=list(metrics),
    )
    return model


def toy_data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")


def my_loss(y_true, y_pred):
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred) * 2.0


def test_prepare_model_keeps_the_same_object_when_nothing_changes():
    model = small_model()
    assert distribute.prepare_model(model) is model
    assert distribute.prepare_model(model, strategy="default") is model


def test_prepare_model_rebuilds_outside_scope_models_with_weights_optimizer_loss_and_metrics():
    model = small_model(metrics=("accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2)),
                        loss=my_loss)
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    new = distribute.prepare_model(model, strategy=one_device)
    assert new is not model
    assert new.distribute_strategy is one_device
    for a, b in zip(model.get_weights(), new.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert type(new.optimizer) is type(model.optimizer)
    assert new.optimizer is not model.optimizer
    assert new.optimizer.get_config() == model.optimizer.get_config()
    assert new.loss is my_loss
    x, y = toy_data()
    logs = new.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert {"loss", "accuracy", "sparse_top_k_categorical_accuracy"} <= set(logs)


def test_prepare_model_carries_optimizer_state_over_when_rebuilding():
    model = small_model()
    x, y = toy_data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    new = distribute.prepare_model(model, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert int(new.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 4
    for a, b in zip(model.optimizer.variables, new.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


def test_prepare_model_keeps_weight_decay_exclusions():
    optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    model = small_model(optimizer=optimizer)
    new = distribute.prepare_model(model, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    bias = next(v for v in new.trainable_variables if "bias" in v.name)
    kernel = next(v for v in new.trainable_variables if "kernel" in v.name)
    assert not new.optimizer._use_weight_decay(bias)
    assert new.optimizer._use_weight_decay(kernel)


def test_prepare_model_rebuilds_a_subclassed_model_with_a_config():
    @keras.saving.register_keras_serializable(package="ktlite_tests")
    class TwoLayer(keras.Model):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.out = keras.layers.Dense(2, activation="softmax")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    model = TwoLayer(units=5)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = toy_data(16)
    model.fit(x, np.minimum(y, 1), epochs=1, verbose=0)
    new = distribute.prepare_model(model, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    np.testing.assert_allclose(new.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_prepare_model_explains_subclassed_models_without_config():
    class NoConfig(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

        def get_config(self):
            raise NotImplementedError

    model = NoConfig()
    model.compile(optimizer="sgd", loss="mse")
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(TypeError, match=r"strategy.scope\(\)"):
        distribute.prepare_model(model, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_prepare_model_requires_a_compiled_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compile"):
        distribute.prepare_model(model)
    with pytest.raises(TypeError, match="keras.Model"):
        distribute.prepare_model("model")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mixed_precision": "fp8"}, "mixed_precision='fp8'"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0"),
    ],
)
def test_prepare_model_names_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distribute.prepare_model(small_model(), **kwargs)


@pytest.mark.parametrize("precision", [16, True, ["bfloat16"]])
def test_prepare_model_refuses_a_mixed_precision_of_the_wrong_type(precision):
    with pytest.raises(TypeError, match=f"`mixed_precision` must be one of .* or None. Received: "
                                        f"mixed_precision={re.escape(repr(precision))}"):
        distribute.prepare_model(small_model(), mixed_precision=precision)


def test_prepare_model_calls_an_option_of_the_wrong_type_a_type_error():
    with pytest.raises(TypeError, match="`jit_compile` must be True or False. Received: "
                                        "jit_compile='yes'"):
        distribute.prepare_model(small_model(), jit_compile="yes")
    with pytest.raises(TypeError, match="must be a positive int or None. Received: "
                                        "gradient_accumulation_steps=2.5"):
        distribute.prepare_model(small_model(), gradient_accumulation_steps=2.5)


def test_prepare_model_sets_jit_compile_without_rebuilding():
    model = small_model()
    prepared = distribute.prepare_model(model, jit_compile=True)
    assert prepared is model and model.jit_compile is True
    model.train_function = lambda iterator: None  # stands in for a traced step
    assert distribute.prepare_model(model, jit_compile=False).jit_compile is False
    assert model.train_function is None  # retraced without XLA on the next fit


def test_prepare_model_says_what_it_did_when_verbose(capsys):
    distribute.prepare_model(small_model(), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
                             verbose=1)
    out = capsys.readouterr().out
    assert "rebuilt under OneDeviceStrategy x1" in out


# ---------------------------------------------------------------- the trainer correction
def test_the_installed_keras_still_needs_the_trainer_correction():
    # When this fails, Keras fixed the reductions: the correction switches itself off,
    # and trainer_fix.py's docstring should say from which version.
    assert trainer_fix.needs_fix()


def test_the_trainer_correction_leaves_single_replica_models_alone():
    model = small_model()
    assert not trainer_fix.apply(model, tf.distribute.get_strategy())
    assert not trainer_fix.is_applied(model)
    assert "train_step" not in model.__dict__


@pytest.mark.parametrize("static_shapes", [False, True])
def test_several_devices_of_one_process_get_the_build_correction_alone(monkeypatch,
                                                                       static_shapes):
    # Mirrored GPUs: Keras' first-batch build fails on a batch that splits unevenly; TPUs
    # (static shapes, every batch full) are left as Keras made them.
    monkeypatch.setattr(trainer_fix, "is_multi_worker", lambda strategy: False)
    monkeypatch.setattr(trainer_fix, "needs_static_shapes", lambda strategy: static_shapes)
    devices = types.SimpleNamespace(num_replicas_in_sync=2)
    model = small_model()
    assert trainer_fix.apply(model, devices) is not static_shapes
    assert ("_maybe_symbolic_build" in model.__dict__) is not static_shapes
    assert "train_step" not in model.__dict__


def test_the_correction_gives_step_outputs_a_replica_axis(monkeypatch):
    monkeypatch.setattr(trainer_fix, "is_multi_worker", lambda strategy: True)
    model = small_model()
    assert trainer_fix.apply(model, tf.distribute.get_strategy())
    assert trainer_fix.is_applied(model)
    assert trainer_fix.apply(model, tf.distribute.get_strategy())  # idempotent
    x, y = toy_data(8)
    outputs = model.train_step((tf.constant(x), tf.constant(y)))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"loss": (1,), "accuracy": (1,)}


def test_the_correction_switches_itself_off_once_keras_is_fixed(monkeypatch):
    monkeypatch.setattr(trainer_fix, "is_multi_worker", lambda strategy: True)
    monkeypatch.setattr(trainer_fix, "_faults", lambda: (False, False))
    model = small_model()
    assert not trainer_fix.apply(model, tf.distribute.get_strategy())
    assert "train_step" not in model.__dict__


# ---------------------------------------------------------------- local cluster launcher
def test_local_tf_config_names_every_worker_and_this_task():
    config = json.loads(distribute.local_tf_config([2000, 2001, 2002], 2))
    assert config["cluster"]["worker"] == ["127.0.0.1:2000", "127.0.0.1:2001", "127.0.0.1:2002"]
    assert config["task"] == {"type": "worker", "index": 2}
    with pytest.raises(ValueError, match="index=3"):
        distribute.local_tf_config([2000, 2001], 3)


@pytest.mark.parametrize("ports", [[], ()])
def test_local_tf_config_refuses_an_empty_cluster_first(ports):
    with pytest.raises(ValueError, match=r"`ports` must hold at least one port .*Received: "
                                         r"ports=\[\]"):
        distribute.local_tf_config(ports, 0)


@pytest.mark.parametrize("ports", [2000, "2000", None])
def test_local_tf_config_refuses_ports_of_the_wrong_type(ports):
    with pytest.raises(TypeError, match="`ports` must be a list of ports"):
        distribute.local_tf_config(ports, 0)


@pytest.mark.parametrize("ports, error, match", [
    ([70000, 2001], ValueError, r"`ports\[0\]` must be an int in \[1, 65535\]. "
                                r"Received: ports\[0\]=70000"),
    ([2000, 0], ValueError, r"`ports\[1\]` must be an int in \[1, 65535\]"),
    ([2000, -1], ValueError, r"`ports\[1\]` must be an int in \[1, 65535\]"),
    ([2000, "2001"], TypeError, r"`ports\[1\]` must be an int in \[1, 65535\]. "
                                r"Received: ports\[1\]='2001'"),
    ([2000.0, 2001], TypeError, r"`ports\[0\]` must be an int"),
    ([2000, 2001, 2000], ValueError, r"`ports` must hold one port per worker, no two alike. "
                                     r"Received: ports=\[2000, 2001, 2000\] \(repeating "
                                     r"\[2000\]\)"),
])
def test_local_tf_config_refuses_ports_out_of_range_of_the_wrong_type_or_repeated(
    ports, error, match
):
    with pytest.raises(error, match=match):
        distribute.local_tf_config(ports, 0)
    assert json.loads(distribute.local_tf_config(np.array([2000, 2001]), 1))["cluster"][
        "worker"] == ["127.0.0.1:2000", "127.0.0.1:2001"]


@pytest.mark.parametrize("host, error", [(None, TypeError), (1, TypeError),
                                         (["127.0.0.1"], TypeError), ("", ValueError)])
def test_local_tf_config_refuses_a_host_that_is_no_name(host, error):
    with pytest.raises(error, match="`host` must be a host name or address"):
        distribute.local_tf_config([2000, 2001], 0, host=host)


def test_free_ports_are_distinct():
    ports = local_cluster.free_ports(3)
    assert len(set(ports)) == 3


@pytest.mark.parametrize("index, error", [("1", TypeError), (True, TypeError), (1.0, TypeError),
                                          (-1, ValueError), (2, ValueError)])
def test_local_tf_config_rejects_wrong_types_and_out_of_range_index(index, error):
    with pytest.raises(error, match=f"`index` must be .* Received: index={index!r}"):
        distribute.local_tf_config([2000, 2001], index)


@pytest.mark.parametrize("count, error", [("2", TypeError), (True, TypeError), (-1, ValueError)])
def test_free_ports_rejects_wrong_types_and_negative_counts(count, error):
    with pytest.raises(error, match=f"`count` must be .* Received: count={count!r}"):
        local_cluster.free_ports(count)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"num_workers": "2"}, TypeError, "num_workers"),
        ({"num_workers": True}, TypeError, "num_workers"),
        ({"num_workers": 2.0}, TypeError, "num_workers"),
        ({"num_workers": 0}, ValueError, "num_workers"),
        ({"timeout": "30"}, TypeError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"check": 1}, TypeError, "check"),
        ({"check": "yes"}, TypeError, "check"),
        ({"check": None}, TypeError, "check"),
    ],
)
def test_run_local_workers_rejects_wrong_types_and_out_of_range_values(kwargs, error, name):
    # Refused before any worker starts.
    with pytest.raises(error, match=f"`{name}` must be .* Received: {name}="):
        distribute.run_local_workers([sys.executable, "-c", "pass"], **kwargs)


def test_run_local_workers_gives_each_worker_its_tf_config():
    code = "import json, os; print(json.loads(os.environ['TF_CONFIG'])['task']['index'])"
    results = distribute.run_local_workers([sys.executable, "-c", code], num_workers=2,
                                           timeout=30)
    assert [r.output.strip() for r in results] == ["0", "1"]
    assert [r.returncode for r in results] == [0, 0]


def test_run_local_workers_kills_the_others_when_one_fails():
    code = (
        "import json, os, sys, time\n"
        "if json.loads(os.environ['TF_CONFIG'])['task']['index'] == 1: sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(RuntimeError, match="worker 1: status 3"):
        distribute.run_local_workers([sys.executable, "-c", code], num_workers=2, timeout=30)
    results = distribute.run_local_workers([sys.executable, "-c", code], num_workers=2,
                                           timeout=30, check=False)
    assert results[1].returncode == 3
    assert results[0].returncode < 0  # killed, long before its 60 s sleep


def test_run_local_workers_kills_everything_at_the_time_limit():
    code = "import time; time.sleep(60)"
    results = distribute.run_local_workers([sys.executable, "-c", code], num_workers=2,
                                           timeout=1, check=False)
    assert all(r.timed_out and r.returncode < 0 for r in results)


@pytest.mark.parametrize("command", ["python train.py", b"python", 3])
def test_run_local_workers_refuses_a_command_that_is_not_a_list(command):
    with pytest.raises(TypeError, match=re.escape(f"Received: command={command!r}")):
        distribute.run_local_workers(command)


def test_run_local_workers_closes_its_logs_when_a_worker_cannot_start(monkeypatch, tmp_path):
    opened = []

    def temporary_file(*args, **kwargs):
        opened.append(open(tmp_path / f"log{len(opened)}", "w+", encoding="utf-8"))
        return opened[-1]

    monkeypatch.setattr(local_cluster.tempfile, "TemporaryFile", temporary_file)
    with pytest.raises(FileNotFoundError):
        distribute.run_local_workers([str(tmp_path / "no-such-program")], timeout=5)
    assert len(opened) == 2 and all(log.closed for log in opened)
