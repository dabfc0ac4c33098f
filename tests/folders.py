"""Helpers for tests that tamper with saved folders."""

import json

from ktlite import saving


def rehash(folder):
    """Records the current SHA-256 of every listed file in `ktlite.json`, as an attacker who
    also edits the manifest would, so a test reaches the checks behind the hash check."""
    manifest = json.loads((folder / "ktlite.json").read_text())
    manifest["files"] = {name: saving.sha256_file(folder / name) for name in manifest["files"]}
    (folder / "ktlite.json").write_text(json.dumps(manifest))
