"""Loading a TFLite export safely: crash recovery, the shared lock and the files' hashes, as
`load_predictor`."""

import json
import re
import subprocess
import sys
import threading

import pytest

from ktlite import saving
from ktlite.compress import export_tflite, load_tflite

TEXTS = ["red item number 3", "blue item number 70", "green item"]

# Exports the predictor saved at argv[1] to argv[2] (the model alone, its tokenizer outside)
# on a file system without an atomic folder swap (as on macOS), killed at argv[3]: just
# before moving the previous export aside, or just after.
_CRASH_SCRIPT = """
import os, sys
import ktlite
from ktlite import saving
from ktlite.compress import export_tflite
predictor = ktlite.load_predictor(sys.argv[1])
where, real_rename = sys.argv[3], os.rename
def rename(a, b):
    if ".old-" in os.fspath(b):
        if where == "after-moving-aside":
            real_rename(a, b)
        os._exit(9)
    return real_rename(a, b)
saving._exchange = lambda a, b: False
saving.os.rename = rename
export_tflite(predictor, sys.argv[2], include_tokenizer=False)
"""


def siblings(folder):
    """What lies beside an export, apart from the lock file savers share."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name != f".{folder.name}.lock")


@pytest.mark.parametrize(
    "where, survivor_has_tokenizer",
    [
        ("before-moving-aside", True),  # the previous export is still in place
        ("after-moving-aside", False),  # only hidden folders left: the new one is complete
    ],
)
def test_load_finishes_an_export_killed_between_the_two_renames(
    text_predictor, tmp_path, where, survivor_has_tokenizer
):
    text_predictor.save(tmp_path / "pred")
    path = tmp_path / "exports" / "lite"  # alone in its folder, for `siblings`
    export_tflite(text_predictor, path)  # the previous export holds the tokenizer
    result = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(tmp_path / "pred"), str(path), where],
        timeout=300,
    )
    assert result.returncode == 9
    runner = load_tflite(path)
    assert runner.tokenizer_inside is survivor_has_tokenizer
    assert runner.predict(TEXTS) == text_predictor.predict(TEXTS)
    assert siblings(path) == ["lite"]


def test_load_waits_for_an_export_holding_the_lock(text_predictor, tmp_path, monkeypatch):
    path = tmp_path / "lite"
    export_tflite(text_predictor, path)
    read = threading.Event()
    real_read_json = saving.read_json

    def read_json(file):
        read.set()
        return real_read_json(file)

    monkeypatch.setattr(saving, "read_json", read_json)
    loaded = []

    def load():
        try:
            loaded.append(load_tflite(path))
        except Exception as err:  # noqa: BLE001 - asserted below, in the test's thread
            loaded.append(err)

    loader = threading.Thread(target=load)
    with saving.folder_lock(path, exclusive=True):  # as an export swapping the folder holds
        loader.start()
        assert not read.wait(2.0), "load_tflite read the export while an exporter held the lock"
    loader.join(timeout=120)
    assert read.is_set() and len(loaded) == 1 and not isinstance(loaded[0], Exception), loaded
    assert loaded[0].predict(TEXTS) == text_predictor.predict(TEXTS)


def test_load_of_a_missing_folder_creates_no_lock_file(tmp_path):
    with pytest.raises(ValueError, match="not a ktlite TFLite export .* Received: path="):
        load_tflite(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


def flip_a_byte(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "name, include_tokenizer", [("model.tflite", None), ("vocab.txt", False)]
)
def test_load_refuses_an_export_whose_file_changed_naming_the_file(
    text_predictor, tmp_path, name, include_tokenizer
):
    export_tflite(text_predictor, tmp_path / "f", include_tokenizer=include_tokenizer)
    flip_a_byte(tmp_path / "f" / name)
    # Safe in this process: the hash is checked before the interpreter (which a damaged
    # flatbuffer can crash) or the vocabulary parser reads a byte.
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'f' / name}': the file does "
                                                   "not match the SHA-256")):
        load_tflite(tmp_path / "f")


def test_an_export_without_hashes_loads_with_a_warning(text_predictor, tmp_path):
    export_tflite(text_predictor, tmp_path / "f")
    meta_file = tmp_path / "f" / "tflite.json"
    meta = json.loads(meta_file.read_text())
    meta.pop("files", None)
    meta_file.write_text(json.dumps({**meta, "format_version": 1}))  # as ktlite wrote before
    with pytest.warns(UserWarning, match="records no SHA-256 of its files"):
        runner = load_tflite(tmp_path / "f")
    assert runner.predict(TEXTS) == text_predictor.predict(TEXTS)
