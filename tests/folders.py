"""Helpers for tests that tamper with saved folders."""

import json

from ktlite import saving


def rehash(folder):
    """Records the current SHA-256 of every listed file in `ktlite.json`, as an attacker who
    also edits the manifest would, so a test reaches the checks behind the hash check."""
    manifest = json.loads((folder / "ktlite.json").read_text())
    manifest["files"] = {name: saving.sha256_file(folder / name) for name in manifest["files"]}
    (folder / "ktlite.json").write_text(json.dumps(manifest))


CRAFTED = "\x1b[2Jcrafted"


def _edits(config):
    """Copies of `config` with one value (top level, in a nested object, or in the first
    object of a list) or one new key replaced by `CRAFTED`, each named."""
    for key, value in config.items():
        yield key, {**config, key: CRAFTED}
        if isinstance(value, dict):
            for inner in value:
                yield f"{key}.{inner}", {**config, key: {**value, inner: CRAFTED}}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for inner in value[0]:
                first = {**value[0], inner: CRAFTED}
                yield f"{key}[0].{inner}", {**config, key: [first, *value[1:]]}
    yield "a new key", {**config, CRAFTED: 1}


def assert_quotes_nothing_crafted(load, path):
    """Edits the JSON file at `path` value by value; `load()` must refuse each edit that it
    does not accept with a ValueError naming the folder and quoting none of the file."""
    original = path.read_text(encoding="utf-8")
    refused = 0
    try:
        for name, config in _edits(json.loads(original)):
            path.write_text(json.dumps(config), encoding="utf-8")
            try:
                load()
            except ValueError as err:
                refused += 1
                assert str(path.parent) in str(err), (name, str(err))
                assert "crafted" not in str(err), (name, str(err))
    finally:
        path.write_text(original, encoding="utf-8")
    assert refused >= 3
