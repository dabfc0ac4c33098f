"""The saved-folder format: atomic writes, manifests with hashes, and safe reads.

Every ktlite save goes through this module: predictor folders, SavedModel and TFLite
exports, `.keras` checkpoints, and the vocabulary and JSON files inside them.

Guarantees:

- **Atomic**: a folder is written under a hidden sibling name and swapped into place (with
  Linux' `renameat2(RENAME_EXCHANGE)` where the file system has it, else two renames); a
  crash at any point leaves the old or the new folder, and the next save or load under the
  same path finishes or rolls back the interrupted swap. A file is written beside its target
  and moved over it with `os.replace`; a `.keras` save killed before the move leaves its
  hidden file, which the next save or load of that path removes (a running save holds a lock
  on its own, which is never removed). Files and folders are flushed to the disk (`fsync`)
  before and after each rename, so the swap also survives a power loss.
- **Locked**: savers of one path take an exclusive `flock` on a hidden `.NAME.lock` sibling
  (loaders a shared one, when they may create it), so concurrent saves serialise.
- **Only ktlite's own files are replaced**: an existing folder is replaced only when the
  caller's `replaceable` check proves ktlite wrote all of it.
- **Permissions follow the process umask** for every file and folder.
- **Verified reads**: the manifest (`ktlite.json`) records a SHA-256 of every other file,
  checked before any of them is parsed; symbolic links and non-regular files are refused;
  JSON is capped in size and depth; errors name the file and never quote its content.

Example:
    >>> never = lambda folder: False  # replace no non-empty folder already at "out"
    >>> write_folder("out", lambda tmp: write_text(tmp / "a.txt", "hi"), never, "folder")
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Not POSIX: no advisory locks (saves stay atomic but unserialised)
    fcntl = None

MANIFEST_FILE = "ktlite.json"
MAX_JSON_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64
_HASH_CHUNK = 1024 * 1024
# Hidden siblings of a saved folder: `tmp` a save being written (or written, if the swap
# was cut short), `old` the previous folder during a plain-rename swap, `trash` the previous
# folder once the new one is in place, never restored (a removal the file system refused
# would otherwise bring it back at a later load).
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old|trash)-[0-9a-f]{12}$")
# The hidden file a `.keras` save is written to beside `STEM.keras`.
_KERAS_TMP = re.compile(r"^\.(?P<stem>.+)\.tmp-[0-9a-f]{12}\.keras$")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


# ---------------------------------------------------------------------- single files
def _fsync_path(path: str | os.PathLike) -> None:
    """Flushes a file, or a folder's entries (its renames), to the disk.

    A rename is atomic against crashes of the process at once, but only reaches the disk
    (surviving a power loss) when its folder is flushed too. Where a file system cannot
    flush a folder, nothing more can be done and the error is ignored.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically, with permissions from the process umask.

    Args:
        path: the file to write; its folder must exist.
        data: the content.

    Raises:
        TypeError: if `data` is not bytes.

    Example:
        >>> write_bytes("model.tflite", content)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"`data` must be bytes. Received: data of type {type(data).__name__}")
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    # 0o666 & ~umask, like any file a program creates (mkstemp would force 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_path(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 text to `path` atomically (see `write_bytes`).

    Args:
        path: the file to write.
        text: the content.

    Raises:
        TypeError: if `text` is not a str.

    Example:
        >>> write_text("vocab.txt", "\\n".join(vocab) + "\\n")
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str. Received: text of type {type(text).__name__}")
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Writes `value` as indented JSON (no NaN) to `path` atomically.

    Args:
        path: the file to write.
        value: a JSON-serializable value.

    Raises:
        ValueError: if `value` holds NaN or infinity.

    Example:
        >>> write_json("preprocessor.json", preproc.get_config())
    """
    write_text(path, json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def as_path(path: Any, name: str) -> Path:
    """A user's file or folder argument as a `Path`, refusing what is not a path.

    Args:
        path: what the user passed.
        name: the argument name for the error message.

    Returns:
        `Path(path)`.

    Raises:
        TypeError: if `path` is not a `str` or `os.PathLike` (None, bytes, a number).

    Example:
        >>> as_path("my_predictor", "path")
        PosixPath('my_predictor')
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike). Received: {name} of type "
            f"{type(path).__name__}"
        )
    return Path(path)


def make_folder(folder: Any, name: str = "folder") -> Path:
    """Creates a folder that files are saved into (and its parents).

    Args:
        folder: the folder, a str or `os.PathLike`; it may exist already.
        name: the argument name for messages (`"checkpoint_folder"`).

    Returns:
        `folder` as a `Path`.

    Raises:
        TypeError: if `folder` is not a str or `os.PathLike`.
        FileExistsError: if `folder` is a file.

    Example:
        >>> make_folder("my_preprocessor") / "preprocessor.json"
        PosixPath('my_preprocessor/preprocessor.json')
    """
    path = as_path(folder, name)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"`{name}` must be a folder, not a file: {os.fspath(path)!r} "
                              "is a file.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_regular_file(path: str | os.PathLike) -> Path:
    """Refuses anything at `path` but a regular file (symbolic links included).

    Args:
        path: the file to check.

    Returns:
        `path` as a `Path`.

    Raises:
        FileNotFoundError: if nothing is there.
        ValueError: if it is a symbolic link or not a regular file.

    Example:
        >>> check_regular_file(folder / "vocab.txt")
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist.") from None
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(
            f"{path} is a symbolic link; saved folders must hold their own files, so links "
            "are never followed."
        )
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file.")
    return path


def saved_files(folder: str | os.PathLike, names: tuple[str, ...], kind: str) -> list[Path]:
    """The paths of the files a saved object is made of, after checking each is there.

    Args:
        folder: the folder the object was saved to.
        names: the file names it holds.
        kind: what was saved, for the messages (e.g. ``"TextPreprocessor"``).

    Returns:
        `folder / name` for each name, in order.

    Raises:
        FileNotFoundError: if `folder` is not a folder or one of the files is missing
            (named, with the folder).

    Example:
        >>> config_path, vocab_path = saved_files(folder, ("config.json", "vocab.txt"), "X")
    """
    folder = as_path(folder, "folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"No saved {kind} folder at {str(folder)!r}.")
    paths = [folder / name for name in names]
    for path in paths:
        if not os.path.lexists(path):
            raise FileNotFoundError(
                f"{path.name} is missing from {str(folder)!r}; it is not a saved {kind}."
            )
    return paths


def read_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """Reads a regular file (never through a symbolic link), optionally capped in size.

    Args:
        path: the file.
        max_bytes: refuse larger files. Defaults to None (no cap).

    Returns:
        The file's bytes.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it is a link, not a regular file, or larger than `max_bytes`.

    Example:
        >>> data = read_bytes(folder / "model.tflite")
    """
    path = check_regular_file(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags), "rb") as handle:
        if max_bytes is None:
            return handle.read()
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than the {max_bytes:,} bytes allowed.")
    return data


def _json_depth(value: Any) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            depth = max(depth, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return depth


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file capped at `MAX_JSON_BYTES` bytes and `MAX_JSON_DEPTH` levels.

    Args:
        path: the file.

    Returns:
        The parsed value.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it is a link, too large, too deeply nested or not valid UTF-8 JSON;
            the message names the file and quotes none of it.

    Example:
        >>> config = read_json(folder / "preprocessor.json")
    """
    data = read_bytes(path, MAX_JSON_BYTES)
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(
            f"{path} nests JSON deeper than {MAX_JSON_DEPTH} levels; refused."
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        position = f" (byte {err.start})" if isinstance(err, UnicodeDecodeError) else (
            f" (line {err.lineno}, column {err.colno}: {err.msg})"
        )
        raise ValueError(f"{path} is not valid UTF-8 JSON{position}.") from None
    except ValueError:  # Python's own limit on an integer's digits (4,300)
        raise ValueError(f"{path} holds a number too long to read; refused.") from None
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{path} nests JSON deeper than {MAX_JSON_DEPTH} levels; refused.")
    return value


def read_lines(path: str | os.PathLike) -> list[str]:
    """Reads a UTF-8 file of newline-terminated lines (a vocabulary), never through a link.

    Args:
        path: the file.

    Returns:
        Its lines, without their newlines.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it is a link or not a regular file, not valid UTF-8, or its last line
            has no newline (a truncated write); the message names the file and quotes none
            of it.

    Example:
        >>> vocab = read_lines(folder / "vocab.txt")
    """
    try:
        content = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is corrupt (not valid UTF-8 at byte {err.start}).") from None
    if not content.endswith("\n"):
        raise ValueError(f"{path} is corrupt: it does not end with a newline.")
    return content[:-1].split("\n")


class InvalidFileError(ValueError):
    """A saved file failed validation; the message names the file and quotes none of it.

    Made by `invalid_file`; a `ValueError`, so callers catch it as one. `reason` is what
    is wrong without the file's name, for a caller that names the files itself.

    Args:
        message: the whole message.
        reason: what is wrong, without the file's name or any of its content.

    Example:
        >>> invalid_file("p.json", "TextPreprocessor", ValueError("bad. Received: 1")).reason
        'bad'
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def invalid_file(path: str | os.PathLike, kind: str, err: Exception) -> InvalidFileError:
    """The error for a saved file whose content failed validation, quoting none of it.

    Validation messages name the key and what was expected, then end with ``Received:``
    and the offending value (see the style guide); for a file that part is dropped, so a
    crafted file cannot put its text (terminal escapes, megabytes of it) into the error.

    Args:
        path: the file (or folder) that failed.
        kind: what it should hold, e.g. ``"TextPreprocessor"``.
        err: the validation error.

    Returns:
        An `InvalidFileError` (a `ValueError`) naming the file, the kind and what is wrong,
        for the caller to raise.

    Example:
        >>> raise invalid_file(path, "TextPreprocessor", err) from None
    """
    reason = str(err).split("Received:")[0].strip().rstrip(".:;,") or type(err).__name__
    return InvalidFileError(f"Cannot load the {kind} in {os.fspath(path)!r}: {reason}.", reason)


def check_config_header(config: dict[str, Any], task: str, version: int) -> None:
    """Refuses a saved preprocessor config of another task or format version.

    The reason comes before ``Received:``, so `invalid_file` keeps it and drops the values.

    Args:
        config: the loaded config, a dict that has the keys `task` and `format_version`.
        task: the task this preprocessor saves (e.g. ``"text"``).
        version: the format version this ktlite reads.

    Raises:
        ValueError: if `config` is not a dict with both keys, or naming which of the two
            is wrong (a boolean version included).

    Example:
        >>> check_config_header(config, "tabular", FORMAT_VERSION)
    """
    if not isinstance(config, dict) or not {"task", "format_version"} <= set(config):
        raise ValueError(
            "`config` must be a dict with the keys 'task' and 'format_version'. Received: "
            f"{sorted(config) if isinstance(config, dict) else type(config).__name__}"
        )
    if config["task"] != task:
        raise ValueError(
            f"The config is for another task, not {task!r}. Received: task={config['task']!r}"
        )
    given = config["format_version"]
    if isinstance(given, bool) or given != version:  # JSON true is not version 1
        raise ValueError(
            f"The config has another format_version; this ktlite reads version {version}: "
            "upgrade ktlite or save the preprocessor again. Received: "
            f"format_version={config['format_version']!r}"
        )


def sha256_file(path: str | os.PathLike) -> str:
    """Returns the hex SHA-256 of a regular file (links refused).

    Args:
        path: the file.

    Returns:
        64 hex digits.

    Raises:
        ValueError: if `path` is a link or not a regular file.

    Example:
        >>> sha256_file(folder / "model.keras")[:8]
    """
    path = check_regular_file(path)
    digest = hashlib.sha256()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags), "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------- Keras models
def save_keras_model(model: Any, path: str | os.PathLike, include_optimizer: bool = True) -> str:
    """Saves a model in the `.keras` format atomically (beside `path`, then moved over it).

    Args:
        model: the `keras.Model`.
        path: destination ending in `.keras`.
        include_optimizer: keep the optimizer's state (checkpoints) or leave it out
            (predictors, which load with `compile=False`). The model's own optimizer object
            is detached only while writing and put back, unchanged.

    Returns:
        The path written, as a string.

    Raises:
        TypeError: if `path` is not a str or `os.PathLike` (bytes, None).
        ValueError: if `path` does not end in `.keras`.

    Example:
        >>> save_keras_model(model, "best.keras")
        'best.keras'
    """
    import keras

    path = os.fspath(as_path(path, "path"))
    if not path.endswith(".keras"):
        raise ValueError(f"`path` must end with '.keras'. Received: path={path!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_keras_files(target)
    tmp, fd = _locked_keras_file(target)
    optimizer = getattr(model, "optimizer", None)
    detach = optimizer is not None and not include_optimizer
    try:
        if detach:
            model.optimizer = None
        # Keras writes into the file it is given (`open(path, "wb")`, the locked one) with
        # the umask already; only the rename must be atomic.
        keras.saving.save_model(model, str(tmp))
        _fsync_path(tmp)
        os.replace(tmp, target)
        _fsync_path(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    finally:
        if fd is not None:
            os.close(fd)  # after the move: the lock guards the file until it is the target
        if detach:
            model.optimizer = optimizer
    return path


# A killed `.keras` save leaves its hidden file, which must go, while a running save's must
# stay. Folders tell the two apart by a `flock` (their savers hold `.NAME.lock`); a file is
# locked itself instead, which puts no lock file beside every checkpoint (nor into a
# predictor's folder, whose manifest lists every file). The kernel drops a `flock` when its
# saver dies, however it dies (kill -9 too); each `open` locks on its own, so threads of one
# process exclude each other too (not on NFS, where Linux lends `flock` the per-process
# POSIX locks: there two threads of one process must not save one path at once); and unlike
# a process id (reused, and meaningless on another machine sharing the folder) a lock never
# makes a running save look dead.
def _locked_keras_file(target: Path) -> tuple[Path, int | None]:
    """Creates the hidden file a `.keras` save of `target` is written to, locked (`flock`)
    until the returned descriptor is closed (not locked, and no descriptor kept, where
    there is no `flock`)."""
    while True:
        tmp = target.with_name(f".{target.stem}.tmp-{uuid.uuid4().hex[:12]}.keras")
        # 0o666 & ~umask, as Keras would create it.
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        if fcntl is None:
            # Windows cannot rename a file that is open, and nothing would read the lock.
            os.close(fd)
            return tmp, None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no `flock` here: no other saver can take it for a leftover either
            return tmp, fd
        # Until it is locked, the file looks like a killed save's: another saver that
        # locked it first removed it. Then start over with another one.
        if os.fstat(fd).st_nlink:
            return tmp, fd
        os.close(fd)


def _remove_dead_keras_files(target: Path) -> None:
    """Removes the hidden files that killed `.keras` saves of `target` left behind: those
    no running save holds locked (see `_locked_keras_file`). A file the lock cannot tell
    about (no `flock` on this file system) or that cannot be removed is left."""
    if fcntl is None:
        return
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        match = _KERAS_TMP.match(name)
        if not match or match["stem"] != target.stem:
            continue
        entry = target.parent / name
        try:
            if not stat.S_ISREG(os.lstat(entry).st_mode):
                continue
            fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:  # gone meanwhile (moved into place, or removed by another saver)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Removed while locked: a saver that created it and waits for the lock sees it
            # gone once it gets the lock, and starts over with another file.
            os.unlink(entry)
        except OSError:  # a running save's, or not removable
            pass
        finally:
            os.close(fd)


def save_path_problem(path: str | os.PathLike) -> str | None:
    """Says what on disk would stop `save_keras_model` from saving to `path`, if anything.

    The file is written beside `path` and moved over it, its folders made first: a folder
    at `path` itself, or a file where one of its folders should be, fails only then (for
    a checkpoint, after an epoch of training). Checking first lets a caller refuse at once.
    What the names on disk are is checked (and whether they can be looked up), not write
    permissions: a folder ktlite may not write to still fails at the save.

    Args:
        path: where the file would be saved.

    Returns:
        A phrase naming the offending path (`"'runs' is a file, not a folder"`), or
        `None` when nothing stands in the way.

    Example:
        >>> save_path_problem("runs/best.keras") is None  # nothing there yet
        True
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a file above it is found below
        mode = None
    except OSError as error:  # a folder above it that cannot be searched, a link loop
        return f"{os.fspath(path)!r} cannot be looked up ({error.strerror})"
    if mode is not None:
        if stat.S_ISDIR(mode):
            return f"{os.fspath(path)!r} is a folder, not a file"
        # A link is replaced by the file (the move does not follow it), like a file is.
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return f"{os.fspath(path)!r} is not a regular file"
        return None
    for folder in path.parents:
        if os.path.lexists(folder):
            if not folder.is_dir():
                what = "a file, not a folder" if folder.is_file() else "not a folder"
                return f"{os.fspath(folder)!r} is {what}"
            return None
    return None


def _load_failure(error: Exception, path: Path) -> str:
    """Why Keras could not load the model at `path`, in ktlite's own words: Keras' messages
    quote the file (names, configs), and nothing from a file that failed is repeated."""
    message = str(error)
    if "safe_mode" in message and "Lambda" in message:
        return ("it holds a `Lambda` layer with Python code, and the deserialization of a "
                "`Lambda` is refused in safe mode (a risk of arbitrary code execution); load "
                "it with keras.saving.load_model(..., safe_mode=False) only if you trust it.")
    if "safe_mode" in message:
        return ("it holds code that safe mode refuses (a risk of arbitrary code execution); "
                "load it with safe_mode=False only if you trust it.")
    if re.search(r"could not (locate|find)|unknown (layer|object|class)|not registered",
                 message, re.IGNORECASE):
        return ("it names a layer, class or function this process does not know: import "
                "and register custom classes (keras.saving.register_keras_serializable) "
                "before loading, or the file was edited.")
    if _readable_archive(path):
        return ("its archive reads, but Keras could not rebuild the model from its config: "
                "a setting this Keras refuses (saved by another Keras version, or a value "
                f"its class does not take), or the file was edited ({type(error).__name__}).")
    return f"it is not a valid .keras archive, or it was edited ({type(error).__name__})."


def _readable_archive(path: Path) -> bool:
    """Whether `path` is a zip archive holding a `config.json` that parses as JSON."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return True


def load_keras_model(
    path: str | os.PathLike, compile: bool = False, custom_objects: Any = None
) -> Any:
    """Loads a `.keras` file with `safe_mode=True` and refuses non-finite weights.

    Args:
        path: the `.keras` file (a regular file, not a link).
        compile: whether the model comes back compiled as it was saved. Default False.
        custom_objects: classes that rebuild it beside the registered ones, or `None`.

    Returns:
        The `keras.Model`, compiled only if `compile`.

    Raises:
        TypeError: if `custom_objects` is not None or a mapping of names to classes or
            functions (Keras' failure would read as the file's).
        ValueError: if the file is a link, cannot be loaded safely (Keras' reason, with
            nothing quoted from the file), holds something other than a model, or a weight
            holds NaN or infinity (the weight's path is named).

    Example:
        >>> model = load_keras_model(folder / "model.keras")
    """
    import keras
    import numpy as np

    if custom_objects is not None and not (isinstance(custom_objects, Mapping) and all(
            isinstance(name, str) for name in custom_objects)):
        raise TypeError(
            "`custom_objects` must be None or a dict of names to classes or functions. "
            f"Received: custom_objects={custom_objects!r:.80}"
        )
    path = check_regular_file(path)
    _remove_dead_keras_files(path)
    try:
        model = keras.saving.load_model(str(path), custom_objects=custom_objects,
                                        compile=compile, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged or unsafe archive.
        raise ValueError(
            f"Could not load the Keras model {path}: {_load_failure(err, path)}"
        ) from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"{path} does not hold a keras.Model. Received: {type(model).__name__}")
    for weight in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
            raise ValueError(
                f"{path}: the weight {weight.path!r} holds NaN or infinite values; the model "
                "would predict garbage. Retrain or restore a good checkpoint."
            )
    return model


# ---------------------------------------------------------------------- manifests
def write_manifest(folder: Path, fields: dict[str, Any]) -> None:
    """Writes `ktlite.json` into `folder` with a SHA-256 of every other file in it.

    Call it last: a folder without a manifest is never taken for a saved folder.

    Args:
        folder: the folder being written.
        fields: the manifest's other fields (format, version, class, ...).

    Raises:
        ValueError: if `folder` holds links, sub-folders or a `files` field is given.

    Example:
        >>> write_manifest(tmp, {"format": "ktlite-predictor", "format_version": 2})
    """
    if "files" in fields:
        raise ValueError("`fields` must not hold 'files'; the manifest computes it.")
    files = {}
    for entry in sorted(folder.iterdir()):
        if entry.name == MANIFEST_FILE:
            continue
        files[entry.name] = sha256_file(entry)
    write_json(folder / MANIFEST_FILE, {**fields, "files": files})


def verify_files(folder: Path, files: Any, expected: Collection[str], holder: str) -> None:
    """Checks that a manifest lists exactly `expected`, each a regular file with its SHA-256.

    The names are compared first, so every name an error quotes is one ktlite wrote, never
    text from a manifest that failed validation.

    Args:
        folder: the saved folder.
        files: the manifest's `files` mapping (name -> hex SHA-256).
        expected: the names a folder of its kind holds.
        holder: that kind, for the message (e.g. `"a backbone"`).

    Raises:
        FileNotFoundError: if a listed file is missing.
        ValueError: if `files` is malformed or lists other names than `expected`, or a file
            is a link or has another hash.

    Example:
        >>> verify_files(folder, manifest["files"], {"model.keras", "vocab.txt"}, "a backbone")
    """
    manifest = folder / MANIFEST_FILE
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{manifest}: `files` must map file names to SHA-256 digests.")
    if set(files) != set(expected):
        raise ValueError(f"{manifest} lists other files than {holder} holds: "
                         f"{sorted(expected)}.")
    for name, digest in files.items():
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ValueError(f"{manifest}: the SHA-256 listed for {name!r} is malformed.")
        file = folder / name
        if not os.path.lexists(file):
            raise FileNotFoundError(f"The saved folder {folder} is missing {name!r}.")
        if sha256_file(file) != digest:
            raise ValueError(
                f"{file} does not match the SHA-256 recorded in {manifest}: the file was "
                "changed or replaced after saving. Save the folder again."
            )


# ---------------------------------------------------------------------- folders
@contextlib.contextmanager
def folder_lock(path: str | os.PathLike, exclusive: bool) -> Iterator[bool]:
    """Holds an `flock` on the hidden `.NAME.lock` sibling of `path` while in the block.

    Savers lock exclusively, loaders shared. A loader that may not create the lock file (a
    read-only deployment) proceeds without it.

    Args:
        path: the saved folder (it need not exist).
        exclusive: an exclusive (saving) or shared (loading) lock.

    Yields:
        Whether the lock is held.

    Example:
        >>> with folder_lock("my_predictor", exclusive=True):
        ...     ...
    """
    if fcntl is None:
        yield False
        return
    path = _folder_path(path)
    lock_file = path.parent / f".{path.name}.lock"
    try:
        # A link planted in the lock's place is not followed (it would create its target).
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError:
        if exclusive:
            raise
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield True
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _folder_path(path: str | os.PathLike) -> Path:
    """A saved folder's path made absolute, "." and ".." resolved (links are not): its
    lock and hidden siblings sit beside it under its own name (`Path(".").name` is "")."""
    return Path(os.path.abspath(os.fspath(path)))


def _siblings(path: Path) -> list[tuple[str, Path]]:
    if not path.parent.is_dir():
        return []
    found = []
    for entry in path.parent.iterdir():
        match = _SIBLING.match(entry.name)
        if match and match["name"] == path.name:
            try:  # another process may rename or remove it meanwhile: then it is gone
                found.append((entry.lstat().st_mtime, match["kind"], entry))
            except FileNotFoundError:
                continue
    found.sort(key=lambda item: item[0], reverse=True)
    return [(kind, entry) for _, kind, entry in found]


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def recover_folder(path: str | os.PathLike, complete: Callable[[Path], bool]) -> None:
    """Finishes or rolls back a swap that a crashed save left half done.

    Call it holding the exclusive `folder_lock`. If `path` is missing, the newest hidden
    sibling that `complete` accepts (a fully written new folder, else the old one) is moved
    back to `path`; then every leftover hidden sibling of `path` is removed.

    Args:
        path: the saved folder.
        complete: tells whether a folder is a fully written one of its kind.

    Example:
        >>> recover_folder("my_predictor", is_predictor_folder)
    """
    path = _folder_path(path)
    siblings = _siblings(path)
    if not os.path.lexists(path):  # a `trash` sibling is never restored
        ordered = [e for k, e in siblings if k == "tmp"] + [e for k, e in siblings if k == "old"]
        for entry in ordered:
            if entry.is_dir() and complete(entry):
                os.rename(entry, path)
                break
    for _, entry in _siblings(path):
        _remove(entry)


def finish_interrupted_save(path: str | os.PathLike, complete: Callable[[Path], bool]) -> None:
    """Runs `recover_folder` if a crashed save left hidden siblings of `path` behind.

    Loaders call it first. It takes the exclusive lock; where the lock file cannot be
    created (a read-only deployment) it leaves things as they are.

    Args:
        path: the saved folder.
        complete: tells whether a folder is a fully written one of its kind.

    Example:
        >>> finish_interrupted_save("my_predictor", is_predictor_folder)
    """
    path = _folder_path(path)
    if all(kind == "trash" for kind, _ in _siblings(path)):
        return  # nothing to finish; the next save removes what is left
    try:
        with folder_lock(path, exclusive=True):
            recover_folder(path, complete)
    except OSError:
        return


def write_folder(
    path: str | os.PathLike,
    write: Callable[[Path], None],
    replaceable: Callable[[Path], bool],
    what: str,
) -> None:
    """Writes a folder atomically: `write(tmp)` fills a hidden sibling that replaces `path`.

    Args:
        path: the folder to create or replace.
        write: fills the (empty) folder it is given.
        replaceable: whether an existing non-empty folder at `path` is one ktlite wrote and
            may replace; also used to recognise a complete folder when recovering.
        what: what is saved, for messages (e.g. "predictor").

    Raises:
        FileExistsError: if `path` is a file, a symbolic link (even to a folder: the
            message says so), or a non-empty folder that `replaceable` refuses.

    Example:
        >>> write_folder("my_predictor", write, is_predictor_folder, "predictor")
    """
    path = _folder_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path, exclusive=True):
        recover_folder(path, replaceable)
        if os.path.lexists(path):
            if path.is_symlink():
                # The save swaps a new folder in at `path`: through a link it would replace
                # the link, not fill its target, so links are refused (loads read through).
                raise FileExistsError(
                    f"Cannot save a {what} to {str(path)!r}: it is a symbolic link (to "
                    f"{os.readlink(path)!r}), and ktlite does not save through links. Save to "
                    "the folder it points to, or remove the link first."
                )
            if not path.is_dir():
                raise FileExistsError(
                    f"Cannot save a {what} to {str(path)!r}: it is not a folder."
                )
            if any(path.iterdir()) and not replaceable(path):
                raise FileExistsError(
                    f"Cannot save a {what} to {str(path)!r}: the folder is not empty and ktlite "
                    f"cannot prove it wrote all of it (a ktlite {what} with only its own, "
                    "unchanged files). Choose a new or empty folder, or remove it first."
                )
        token = uuid.uuid4().hex[:12]
        tmp = path.parent / f".{path.name}.tmp-{token}"
        os.mkdir(tmp, 0o777)
        try:
            write(tmp)
            # Whatever wrote them (Keras, TensorFlow), the files reach the disk before
            # the folder is swapped in.
            for folder, _, files in os.walk(tmp, topdown=False):
                for name in files:
                    _fsync_path(os.path.join(folder, name))
                _fsync_path(folder)
            trash = path.parent / f".{path.name}.trash-{token}"
            if not os.path.lexists(path):
                os.rename(tmp, path)
            elif _exchange(tmp, path):
                os.rename(tmp, trash)  # now holds the previous folder
            else:
                old = path.parent / f".{path.name}.old-{token}"
                os.rename(path, old)
                try:
                    os.rename(tmp, path)
                except BaseException:
                    os.rename(old, path)
                    raise
                os.rename(old, trash)
            # The save is done: a previous folder the file system will not let go (files
            # made read-only) stays as `trash`, not an error.
            _remove(trash)
            _fsync_path(path.parent)
        finally:
            if os.path.lexists(tmp):
                _remove(tmp)


__all__ = [
    "MANIFEST_FILE",
    "InvalidFileError",
    "check_config_header",
    "check_regular_file",
    "finish_interrupted_save",
    "folder_lock",
    "invalid_file",
    "load_keras_model",
    "read_bytes",
    "read_json",
    "recover_folder",
    "save_keras_model",
    "save_path_problem",
    "sha256_file",
    "verify_files",
    "write_bytes",
    "write_folder",
    "write_json",
    "write_manifest",
    "write_text",
]
