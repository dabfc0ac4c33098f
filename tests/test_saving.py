"""Tests for ktlite.saving: atomic files and folders, crash recovery, locks, safe reads."""

import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from ktlite import saving


def complete(folder):
    try:
        saving.verify_files(folder, saving.read_json(folder / saving.MANIFEST_FILE)["files"],
                            {"data.txt"}, "a test folder")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def write_version(text):
    def write(folder):
        saving.write_text(folder / "data.txt", text)
        saving.write_manifest(folder, {"format": "test"})

    return write


def content(folder):
    return (folder / "data.txt").read_text()


def siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name != f".{folder.name}.lock")


# ---------------------------------------------------------------- single files
def test_write_bytes_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "f.bin"
    saving.write_bytes(target, b"one")
    saving.write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_and_folders_follow_the_process_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        saving.write_text(tmp_path / "a.txt", "x")
        saving.write_folder(tmp_path / "f", write_version("v1"), complete, "thing")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "f" / "data.txt").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "f" / "ktlite.json").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o777 & ~umask


def test_a_config_of_another_task_or_version_is_refused_naming_which():
    saving.check_config_header({"task": "text", "format_version": 1}, "text", 1)
    with pytest.raises(ValueError, match=r"another task, not 'tabular'. Received: task='text'"):
        saving.check_config_header({"task": "text", "format_version": 1}, "tabular", 1)
    with pytest.raises(ValueError, match=r"another format_version; this ktlite reads version 1: "
                                         r".*Received: format_version=7"):
        saving.check_config_header({"task": "text", "format_version": 7}, "text", 1)
    with pytest.raises(ValueError, match="format_version=True"):
        saving.check_config_header({"task": "text", "format_version": True}, "text", 1)
    with pytest.raises(ValueError, match=r"keys 'task' and 'format_version'. Received: list"):
        saving.check_config_header(["text"], "text", 1)
    # The file's error keeps the reason alone too, for callers that name the files.
    error = saving.invalid_file("p.json", "TextPreprocessor", ValueError("bad. Received: x=9"))
    assert isinstance(error, ValueError) and error.reason == "bad" and "9" not in str(error)


def test_read_json_names_the_file_and_quotes_nothing_from_it(tmp_path):
    file = tmp_path / "config.json"
    file.write_text('{"secret": "hunter2", oops}')
    with pytest.raises(ValueError, match=r"config\.json is not valid UTF-8 JSON") as info:
        saving.read_json(file)
    assert "hunter2" not in str(info.value)


def test_read_json_refuses_an_endless_number_naming_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"batch_size": ' + "9" * 5000 + "}")
    with pytest.raises(ValueError, match=r"c\.json holds a number too long to read; refused\.$"):
        saving.read_json(path)


def test_read_json_refuses_deep_nesting_without_a_recursion_error(tmp_path):
    file = tmp_path / "deep.json"
    file.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json nests JSON deeper than 64 levels"):
        saving.read_json(file)
    file.write_text("[" * 70 + "]" * 70)
    with pytest.raises(ValueError, match="deeper than 64"):
        saving.read_json(file)


def test_read_json_refuses_files_over_the_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(saving, "MAX_JSON_BYTES", 100)
    file = tmp_path / "big.json"
    file.write_text(json.dumps(["x" * 200]))
    with pytest.raises(ValueError, match=r"big\.json is larger than the 100 bytes"):
        saving.read_json(file)


def test_read_lines_returns_the_lines_and_refuses_truncated_or_non_utf8_files(tmp_path):
    file = tmp_path / "vocab.txt"
    file.write_bytes("[PAD]\nçà\n\n".encode())
    assert saving.read_lines(file) == ["[PAD]", "çà", ""]
    file.write_bytes(b"[PAD]\nsecret-token")  # cut short: no final newline
    with pytest.raises(ValueError, match=r"vocab\.txt is corrupt: it does not end") as info:
        saving.read_lines(file)
    assert "secret" not in str(info.value)
    file.write_bytes(b"[PAD]\n\xff\n")
    with pytest.raises(ValueError, match=r"vocab\.txt is corrupt \(not valid UTF-8 at byte 6\)"):
        saving.read_lines(file)


def test_reads_refuse_symbolic_links_even_to_valid_files(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text('{"line one of a private file": 1}')
    link = tmp_path / "folder" / "config.json"
    link.parent.mkdir()
    link.symlink_to(outside)
    for read in (saving.read_json, saving.read_bytes, saving.read_lines, saving.sha256_file):
        with pytest.raises(ValueError, match="symbolic link") as info:
            read(link)
        assert "private" not in str(info.value)


# ---------------------------------------------------------------- manifests
def test_a_link_planted_as_the_lock_file_is_not_followed(tmp_path):
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    (tmp_path / ".model.lock").symlink_to(victim)
    with pytest.raises(OSError):
        with saving.folder_lock(tmp_path / "model", exclusive=True):
            pass
    assert not victim.exists()


def test_verify_files_refuses_a_changed_file_naming_it(tmp_path):
    saving.write_folder(tmp_path / "f", write_version("v1"), complete, "thing")
    manifest = saving.read_json(tmp_path / "f" / "ktlite.json")
    (tmp_path / "f" / "data.txt").write_text("v2")
    with pytest.raises(ValueError, match=r"data\.txt does not match the SHA-256"):
        saving.verify_files(tmp_path / "f", manifest["files"], {"data.txt"}, "a test folder")


# ---------------------------------------------------------------- folders
def test_write_folder_replaces_and_cleans_up(tmp_path):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("v1"), complete, "thing")
    saving.write_folder(path, write_version("v2"), complete, "thing")
    assert content(path) == "v2"
    assert siblings(path) == ["f"]


def test_write_folder_cleans_up_when_the_writer_fails(tmp_path):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("v1"), complete, "thing")

    def broken(folder):
        (folder / "data.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        saving.write_folder(path, broken, complete, "thing")
    assert content(path) == "v1" and siblings(path) == ["f"]


@pytest.mark.parametrize("exchange", [True, False])
def test_write_folder_cleans_up_when_the_swap_fails(tmp_path, monkeypatch, exchange):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("v1"), complete, "thing")

    def fail(*args):
        raise OSError("swap failed")

    if exchange:
        monkeypatch.setattr(saving, "_exchange", fail)
    else:
        monkeypatch.setattr(saving, "_exchange", lambda a, b: False)
        real_rename = os.rename
        monkeypatch.setattr(
            saving.os, "rename",
            lambda a, b: fail() if ".tmp-" in os.fspath(a) else real_rename(a, b),
        )
    with pytest.raises(OSError, match="swap failed"):
        saving.write_folder(path, write_version("v2"), complete, "thing")
    assert content(path) == "v1" and siblings(path) == ["f"]


@pytest.mark.parametrize("exchange", [True, False])
def test_a_previous_folder_that_cannot_be_removed_never_comes_back(tmp_path, monkeypatch,
                                                                   exchange):
    # A folder made read-only (as a user may, for a non-root owner) cannot be removed
    # once swapped out: the save succeeds, and the leftover is never restored.
    path = tmp_path / "f"
    saving.write_folder(path, write_version("v1"), complete, "thing")
    real_rmtree = saving.shutil.rmtree

    def refuse(folder, ignore_errors=False):
        if not ignore_errors:
            raise PermissionError(13, "Permission denied", "data.txt")

    monkeypatch.setattr(saving.shutil, "rmtree", refuse)
    if not exchange:
        monkeypatch.setattr(saving, "_exchange", lambda a, b: False)
    saving.write_folder(path, write_version("v2"), complete, "thing")
    assert content(path) == "v2"
    assert [name.split("-")[0] for name in siblings(path)] == [".f.trash", "f"]
    monkeypatch.setattr(saving.shutil, "rmtree", real_rmtree)
    real_rmtree(path)  # the user removes the folder
    saving.finish_interrupted_save(path, complete)  # what a load runs first
    assert not path.exists()
    saving.write_folder(path, write_version("v3"), complete, "thing")  # cleans up
    assert content(path) == "v3" and siblings(path) == ["f"]


def test_a_folder_named_by_dot_locks_beside_itself_not_inside(tmp_path, monkeypatch):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("v1"), complete, "thing")
    monkeypatch.chdir(path)  # a user loading the folder they are in: load_predictor(".")
    with saving.folder_lock(".", exclusive=False):
        pass
    saving.write_folder(".", write_version("v2"), complete, "thing")
    assert content(path) == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".f.lock", "f"]
    assert sorted(p.name for p in path.iterdir()) == sorted([saving.MANIFEST_FILE, "data.txt"])


def test_write_folder_refuses_to_replace_what_it_cannot_prove_it_wrote(tmp_path):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("v1"), complete, "thing")
    (path / "data.txt").write_text("edited by the user")
    with pytest.raises(FileExistsError, match="cannot prove it wrote"):
        saving.write_folder(path, write_version("v2"), complete, "thing")
    assert content(path) == "edited by the user"


_CRASH_SCRIPT = """
import os, sys
from pathlib import Path
from ktlite import saving
path, where, text = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def complete(folder):
    try:
        saving.verify_files(folder, saving.read_json(folder / "ktlite.json")["files"],
                            {"data.txt"}, "a test folder")
        return True
    except Exception:
        return False
def write(folder):
    saving.write_text(folder / "data.txt", text)
    if where == "writing":
        os._exit(9)
    saving.write_manifest(folder, {"format": "test"})
real_exchange, real_rename, calls = saving._exchange, os.rename, []
def exchange(a, b):
    if where == "before-exchange":
        os._exit(9)
    done = real_exchange(a, b)
    if where == "after-exchange":
        os._exit(9)
    return done
def rename(a, b):
    calls.append(1)
    if where == f"rename-{len(calls)}":
        os._exit(9)
    return real_rename(a, b)
saving._exchange = exchange if where.endswith("exchange") else (lambda a, b: False)
saving.os.rename = rename
saving.write_folder(path, write, complete, "thing")
"""


@pytest.mark.parametrize(
    "where, survivor",
    [
        ("writing", "old"),
        ("before-exchange", "old"),
        ("after-exchange", "new"),
        ("rename-1", "old"),  # killed before moving the old folder aside
        ("rename-2", "new"),  # killed with the old folder aside and the new one complete
    ],
)
def test_a_save_killed_at_any_point_is_recovered_at_the_next_load(tmp_path, where, survivor):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("old"), complete, "thing")
    result = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(path), where, "new"], timeout=60
    )
    assert result.returncode == 9
    saving.finish_interrupted_save(path, complete)
    assert content(path) == survivor and complete(path)
    assert siblings(path) == ["f"]


def test_a_sibling_another_saver_removes_meanwhile_is_skipped(tmp_path, monkeypatch):
    path = tmp_path / "f"
    saving.write_folder(path, write_version("old"), complete, "thing")
    gone = tmp_path / ".f.tmp-0123456789ab"  # listed, then renamed away by another saver
    real_iterdir = Path.iterdir

    def iterdir(self):
        yield from real_iterdir(self)
        if self == tmp_path:
            yield gone

    monkeypatch.setattr(Path, "iterdir", iterdir)
    saving.finish_interrupted_save(path, complete)
    assert content(path) == "old"


def test_concurrent_savers_take_turns(tmp_path):
    path = tmp_path / "f"
    errors = []

    def saver(k):
        try:
            for i in range(5):
                saving.write_folder(path, write_version(f"{k}-{i}"), complete, "thing")
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert complete(path) and content(path).endswith("-4")
    assert siblings(path) == ["f"]


def test_write_folder_refuses_a_file_or_a_link(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        saving.write_folder(tmp_path / "file", write_version("v"), complete, "thing")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    link = str(tmp_path / "link")
    with pytest.raises(FileExistsError) as caught:
        saving.write_folder(tmp_path / "link", write_version("v"), complete, "thing")
    assert str(caught.value) == (
        f"Cannot save a thing to {link!r}: it is a symbolic link (to "
        f"{str(tmp_path / 'real')!r}), and ktlite does not save through links. Save to the "
        "folder it points to, or remove the link first."
    )
    assert (tmp_path / "link").is_symlink() and not any((tmp_path / "real").iterdir())


# ---------------------------------------------------------------- Keras models
def _model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))


def test_save_keras_model_is_atomic_and_cleans_up(tmp_path, monkeypatch):
    model = _model()
    path = saving.save_keras_model(model, tmp_path / "m.keras")
    assert os.listdir(tmp_path) == ["m.keras"]
    before = (tmp_path / "m.keras").read_bytes()

    def broken(model, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(keras.saving, "save_model", broken)
    with pytest.raises(OSError, match="disk full"):
        saving.save_keras_model(model, path)
    assert os.listdir(tmp_path) == ["m.keras"]
    assert (tmp_path / "m.keras").read_bytes() == before
    with pytest.raises(ValueError, match="'.keras'"):
        saving.save_keras_model(model, tmp_path / "m.h5")


def test_load_keras_model_refuses_non_finite_weights_naming_the_weight(tmp_path):
    model = _model()
    kernel = model.get_layer("head").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    saving.save_keras_model(model, tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"m\.keras: the weight 'head/kernel' holds NaN"):
        saving.load_keras_model(tmp_path / "m.keras")


def test_load_keras_model_tells_a_config_keras_refuses_from_a_broken_archive(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.AdamW(weight_decay=0.1), loss="mse")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(parts["config.json"])
    config["compile_config"]["optimizer"]["config"]["weight_decay"] = None  # AdamW refuses
    parts["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "refused.keras", "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"refused\.keras: its archive reads, but Keras could "
                                         r"not rebuild the model from its config"):
        saving.load_keras_model(tmp_path / "refused.keras", compile=True)
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"broken\.keras: it is not a valid \.keras archive"):
        saving.load_keras_model(tmp_path / "broken.keras")


def test_load_keras_model_refuses_a_link(tmp_path):
    saving.save_keras_model(_model(), tmp_path / "real.keras")
    (tmp_path / "link.keras").symlink_to(tmp_path / "real.keras")
    with pytest.raises(ValueError, match="symbolic link"):
        saving.load_keras_model(tmp_path / "link.keras")


def test_saves_reach_the_disk_files_before_the_swap_and_folders_after(tmp_path, monkeypatch):
    """A rename survives a power loss only once its folder is flushed; so do the files."""
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", os.fspath(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)

    def write(folder):
        (folder / "weights.bin").write_bytes(b"1234")  # written as a library would
        saving.write_manifest(folder, {"format": "test"})

    saving.write_folder(tmp_path / "f", write, complete, "thing")
    swap = events.index(("rename", str(tmp_path / "f")))
    synced_before = {os.path.basename(path) for kind, path in events[:swap] if kind == "fsync"}
    assert {"weights.bin", saving.MANIFEST_FILE} <= synced_before
    assert any(name.startswith(".f.tmp-") for name in synced_before)  # its entries
    assert ("fsync", str(tmp_path)) in events[swap:]  # the rename itself

    events.clear()
    saving.write_bytes(tmp_path / "a.bin", b"x")
    assert events[-1] == ("fsync", str(tmp_path))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    events.clear()
    saving.save_keras_model(model, tmp_path / "m.keras")
    assert events[-1] == ("fsync", str(tmp_path))
    assert any(kind == "fsync" and path.endswith(".keras") for kind, path in events[:-1])


def test_a_path_argument_that_is_no_path_is_a_type_error_naming_it():
    import ktlite
    from ktlite.seq2seq import PairPreprocessor
    from ktlite.tabular import TabularPreprocessor
    from ktlite.text import TextPreprocessor

    with pytest.raises(TypeError, match=r"`path` must be a path \(str or os.PathLike\). "
                                        "Received: path of type NoneType"):
        ktlite.load_predictor(None)
    for preprocessor in (TextPreprocessor, PairPreprocessor, TabularPreprocessor):
        with pytest.raises(TypeError, match="`folder` must be a path .* of type int"):
            preprocessor.load(5)


def test_every_preprocessor_saves_into_a_new_folder_and_refuses_a_file(tmp_path):
    from ktlite.seq2seq import PairPreprocessor
    from ktlite.tabular import TabularPreprocessor
    from ktlite.text import TextPreprocessor
    from ktlite.vision import ImagePreprocessor

    texts, labels = [f"word{i} other{i}" for i in range(20)], ["a", "b"] * 10
    fitted = {
        "text": TextPreprocessor(maxlen=8, vocab_size=60).fit(texts, labels),
        "pairs": PairPreprocessor(vocab_size=60).fit(texts, texts),
        "table": TabularPreprocessor().fit({"x": list(range(20))}, labels),
        "image": ImagePreprocessor(image_size=(4, 4), channels=1),
    }
    fitted["image"].labels.fit(labels)
    (tmp_path / "a_file").write_text("x")
    for kind, preproc in fitted.items():
        preproc.save(tmp_path / "new" / kind)  # parents made as needed
        assert type(preproc).load(tmp_path / "new" / kind).get_config() == preproc.get_config()
        with pytest.raises(FileExistsError, match="`folder` must be a folder, not a file"):
            preproc.save(tmp_path / "a_file")


def test_save_path_problem_names_a_folder_in_the_way_and_a_file_above(tmp_path):
    (tmp_path / "best.keras").mkdir()
    (tmp_path / "file").write_text("x")
    assert saving.save_path_problem(tmp_path / "new" / "best.keras") is None
    assert "is a folder, not a file" in saving.save_path_problem(tmp_path / "best.keras")
    assert "is a file, not a folder" in saving.save_path_problem(tmp_path / "file" / "b.keras")


def test_save_path_problem_reports_a_path_it_cannot_look_up(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")  # a loop: looking below it fails
    problem = saving.save_path_problem(tmp_path / "a" / "best.keras")
    assert "cannot be looked up" in problem and "best.keras" in problem


_KILLED_KERAS_SAVE = """
import os, sys
import keras
from ktlite import saving
os.replace = lambda src, dst: os._exit(9)  # killed once written, before the move
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
saving.save_keras_model(model, sys.argv[1])
"""


def test_a_killed_keras_save_leaves_nothing_behind_and_a_running_one_keeps_its_file(
        tmp_path, monkeypatch):
    # Each save killed with kill -9 left its hidden `.m.tmp-*.keras` (115 MB after 4 kills).
    path = tmp_path / "m.keras"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_KERAS_SAVE, str(path)], timeout=300, capture_output=True
    )
    assert killed.returncode == 9, killed.stderr[-2000:]
    [leftover] = os.listdir(tmp_path)
    assert leftover.startswith(".m.tmp-") and leftover.endswith(".keras")

    # A save still writing in another thread keeps its file through other saves and loads.
    real_save, writing, finish = keras.saving.save_model, threading.Event(), threading.Event()

    def slow_save(model, filepath, *args, **kwargs):
        if threading.current_thread().name == "running-save":
            Path(filepath).write_bytes(b"partial")
            writing.set()
            finish.wait(60)
        real_save(model, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "save_model", slow_save)
    running = threading.Thread(
        target=saving.save_keras_model, args=(_model(), path), name="running-save"
    )
    running.start()
    try:
        assert writing.wait(60)
        [live] = [name for name in os.listdir(tmp_path) if name != leftover]
        saving.save_keras_model(_model(), path)
        assert sorted(os.listdir(tmp_path)) == sorted([live, "m.keras"])
        saving.load_keras_model(path)
        assert (tmp_path / live).read_bytes() == b"partial"
    finally:
        finish.set()
        running.join(60)
    assert os.listdir(tmp_path) == ["m.keras"]
    saving.load_keras_model(path)


def test_a_killed_keras_save_is_cleaned_up_by_the_next_load(tmp_path):
    path = tmp_path / "m.keras"
    saving.save_keras_model(_model(), path)
    leftover = tmp_path / ".m.tmp-0123456789ab.keras"  # as a killed save leaves it: unlocked
    leftover.write_bytes(b"partial")
    other = tmp_path / ".n.tmp-0123456789ab.keras"  # another file's save
    other.write_bytes(b"partial")
    saving.load_keras_model(path)
    assert sorted(os.listdir(tmp_path)) == [".n.tmp-0123456789ab.keras", "m.keras"]
