"""Shared test set-up: quiet TensorFlow, a non-interactive plot backend, fixed seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(1234)
    yield


# The files with the longest tests or module fixtures (about a minute each on 2 cores). They
# are scheduled first so that the other worker is not left idle while one of them finishes.
LONGEST_FIRST = (
    "tests/test_notebooks.py",
    "tests/test_cli.py",
    "tests/text/test_pretrain_distribute.py",
    "tests/test_distribute_mirrored.py",
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
    workers. The files in `LONGEST_FIRST` run first, each still in one piece."""
    shared = {}
    for item in items:
        for name in SHARED_TRAINED:
            if name in item.fixturenames:
                shared[item.nodeid.split("::")[0]] = name
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            path = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(shared.get(path, path)))
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST_FIRST)
