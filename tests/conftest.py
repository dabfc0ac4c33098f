"""Shared test set-up: quiet TensorFlow, a non-interactive plot backend, fixed seeds, the
order the xdist groups are handed out in, and a garbage collector that skips what imports
made."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(1234)
    yield


# The longest `xdist_group`s (from about 120 s down to 30 s of one core each, measured
# 2026-12-02 in a full run), slowest first. setup.cfg turns off xdist's own order (largest
# number of tests first, which left a notebook for the end while the other worker idled);
# the remaining groups follow in file order, so the two workers end close together.
LONGEST_FIRST = (
    "text_setup",
    "translator",
    "tests/text/test_masked_lm_distribute.py",
    "02_translation",
    "01_text_classification",
    "tests/test_distribute_mirrored.py",
    "tests/test_mixed_precision.py",
    "tests/test_cli.py",
    "tests/test_models.py",
    "tests/vision/test_workflow.py",
    "tests/apps/test_server.py",
    "03_images",
    "tests/text/test_masked_lm.py",
    "tests/generation/test_generation.py",
    "tests/tabular/test_predictor.py",
    "tests/vision/test_models.py",
    "tests/text/test_predictor.py",
    "tests/test_learner_bucketing.py",
)


# Session fixtures that train a model for several files: every file using one of them runs
# in the fixture's group, so one worker trains it once.
SHARED_TRAINED = ("translator", "text_setup")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under `-n 2 --dist loadgroup` (setup.cfg), a test without an `xdist_group` mark runs in
    its file's group: one worker takes the whole file, so a module fixture that trains a
    model is built once. A file using a fixture of `SHARED_TRAINED` joins that fixture's
    group instead; explicit marks spread one file's slow tests (the notebooks) over both
    workers. The groups in `LONGEST_FIRST` are handed out first, in that order."""
    shared = {}
    for item in items:
        for name in SHARED_TRAINED:
            if name in item.fixturenames:
                shared[item.nodeid.split("::")[0]] = name
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            path = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(shared.get(path, path)))
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))


def _group(item) -> str:
    return item.get_closest_marker("xdist_group").args[0]


def pytest_collection_finish(session):
    """Everything imported so far (TensorFlow, Keras, ktlite, the test modules) lives until
    the process ends: moved out of the garbage collector's sight, each full collection (Keras
    forces one per quantized layer) scans only what the tests create."""
    gc.collect()
    gc.freeze()
