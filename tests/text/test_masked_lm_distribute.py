"""Pretraining and fine-tuning under mixed precision, MirroredStrategy and accumulation.

Two logical CPUs must be configured before TensorFlow starts, so the mirrored run happens
in a fresh subprocess (this file run as a script) that reports JSON.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

TIMEOUT_S = 600  # about a minute of CPU, but the machine may be shared


def _texts(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{i}" for i in rng.integers(0, 40, size=10)) for _ in range(n)]


def test_pretraining_runs_in_mixed_bfloat16():
    from ktlite import text

    learner = text.pretrain(_texts(), vocab_size=100, embed_dim=16, num_heads=2, num_layers=1,
                            batch_size=32, seed=0, verbose=0, mixed_precision="mixed_bfloat16")
    encoder = learner.model.get_layer("encoder")
    assert encoder.get_layer("encoder_0").compute_dtype == "bfloat16"
    losses = learner.fit_onecycle(1e-2, 2, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain_mirrored") / "report.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_pretraining_runs_under_mirrored_with_accumulation(report):
    assert report["strategy"] == "MirroredStrategy x2"
    assert report["iterations"] == 4  # 256 texts / 32 per batch / 2 batches per update
    assert np.all(np.isfinite(report["losses"]))
    # One loss per update, the replicas' sample weights summed (every batch masks tokens).
    assert len(report["step_losses"]) == 4 and np.all(np.array(report["step_losses"]) > 1.0)


def test_fine_tune_with_group_rates_runs_under_mirrored(report):
    assert report["fine_tune_finite"] and report["body_moved"]


def _run(out_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import ktlite
    from ktlite import distribute, text

    report = {}
    learner = text.pretrain(_texts(), vocab_size=100, embed_dim=16, num_heads=2, num_layers=1,
                            batch_size=32, seed=0, verbose=0, strategy="mirrored",
                            gradient_accumulation_steps=2)
    report["strategy"] = distribute.describe(learner.strategy)
    report["losses"] = learner.fit_onecycle(1e-2, 1, verbose=0).history["loss"]
    report["iterations"] = int(learner.model.optimizer.iterations.numpy())
    report["step_losses"] = learner.step_history["losses"]
    labels = [t.split()[0] for t in _texts()]
    trn, val, preproc = text.texts_from_array(_texts(), labels, backbone=learner.backbone,
                                              verbose=0)
    model = text.text_classifier("transformer", trn, preproc=preproc,
                                 backbone=learner.backbone, verbose=0)
    clf = ktlite.get_learner(model, trn, val, batch_size=32, strategy="mirrored", verbose=0)
    before = clf.model.get_layer("encoder_0").get_weights()[0].copy()
    history = clf.fine_tune(1, base_lr=1e-3, freeze_epochs=1, lr_mult=10)
    report["fine_tune_finite"] = bool(np.all(np.isfinite(history.history["loss"])))
    after = clf.model.get_layer("encoder_0").get_weights()[0]
    report["body_moved"] = bool(not np.array_equal(before, after))
    with open(out_path, "w") as fh:
        json.dump({k: (list(map(float, v)) if k.endswith("losses") else v)
                   for k, v in report.items()}, fh)


if __name__ == "__main__":
    _run(sys.argv[1])
