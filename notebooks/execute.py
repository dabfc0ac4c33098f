"""Runs a notebook top to bottom and writes it back with its outputs, stamped.

    python notebooks/execute.py notebooks/02_translation.ipynb           # full data
    python notebooks/execute.py notebooks/03_images.ipynb --small        # KTLITE_NOTEBOOK_SMALL=1

The notebook runs in a scratch folder (what it saves stays out of the repository). Its
metadata gets `ktlite.code_sha256`, a hash of its code cells, which
`tests/test_notebooks.py` compares with the committed code: a cell edited, added or
removed after the outputs were made fails the suite until the notebook is run again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

# What a carriage return on the same line hides: everything before it.
_OVERWRITTEN = re.compile(r"[^\n]*\r(?!\n)")
# "I0000 00:00:1796592266.940714   15305 port.cc:153] ...", absl's line before its set-up,
# and the second line of the CPU-features one.
_RUNTIME_LOG = re.compile(
    r"[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]|WARNING: All log messages before absl"
    r"|To enable the following instructions: .* rebuild TensorFlow"
)


def code_sha256(notebook: dict) -> str:
    """The SHA-256 of a notebook's code cells, in order (outputs and markdown left out).

    Args:
        notebook: the notebook as `nbformat` (or `json`) reads it.

    Returns:
        The hex digest.
    """
    cells = [
        cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ]
    return hashlib.sha256(json.dumps(cells).encode("utf-8")).hexdigest()


def tidy_outputs(notebook: dict) -> None:
    """Stores each cell's text output as a reader sees it.

    The kernel sends a progress bar as one message per update, each starting with a
    carriage return; a notebook shows only the last state of each line. Consecutive
    messages of one stream are joined and every line keeps what follows its last carriage
    return. TensorFlow's C++ runtime lines (CPU features, no CUDA driver) go: they
    describe the machine, not the notebook, and are written before TensorFlow reads
    `TF_CPP_MIN_LOG_LEVEL`, so they cannot be turned off.

    Args:
        notebook: the notebook as `nbformat` reads it; changed in place.
    """
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        kept: list = []
        for output in cell["outputs"]:
            if output["output_type"] != "stream":
                kept.append(output)
            elif (kept and kept[-1]["output_type"] == "stream"
                  and kept[-1]["name"] == output["name"]):
                kept[-1]["text"] += output["text"]
            else:
                kept.append(output)
        for output in kept:
            if output["output_type"] == "stream":
                text = _OVERWRITTEN.sub("", output["text"])
                lines = text.splitlines(keepends=True)
                output["text"] = "".join(line for line in lines if not _RUNTIME_LOG.match(line))
        cell["outputs"] = [o for o in kept if o["output_type"] != "stream" or o["text"].strip()]


def execute(path: Path, small: bool, timeout: int) -> None:
    """Executes the notebook at `path` in a scratch folder and writes it back, stamped."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    if small:
        os.environ["KTLITE_NOTEBOOK_SMALL"] = "1"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    with tempfile.TemporaryDirectory() as scratch:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": scratch}})
        client.execute()
    tidy_outputs(notebook)
    notebook.metadata["ktlite"] = {"code_sha256": code_sha256(notebook), "small": small}
    nbformat.write(notebook, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--small", action="store_true", help="set KTLITE_NOTEBOOK_SMALL=1")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds a cell may run")
    args = parser.parse_args()
    execute(args.notebook, args.small, args.timeout)


if __name__ == "__main__":
    main()
