"""The notebooks run top to bottom on a small slice of their data, and the outputs committed
with them were made by the code committed with them."""

import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Each notebook is its own `xdist_group`, so the two workers share them out (setup.cfg).
PARAMS = [pytest.param(p, id=p.name, marks=pytest.mark.xdist_group(p.stem)) for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("path", PARAMS)
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    monkeypatch.setenv("KTLITE_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(path, workdir / path.name)
    notebook = nbformat.read(workdir / path.name, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"
    assert (workdir / "my_predictor" / "ktlite.json").is_file()


def _executor():
    spec = importlib.util.spec_from_file_location("execute", NOTEBOOK_DIR / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_outputs_were_made_by_the_committed_code(path):
    notebook = nbformat.read(path, as_version=4)
    stamp = notebook.metadata.get("ktlite", {}).get("code_sha256")
    assert stamp == _executor().code_sha256(notebook), (
        f"{path.name}: its code changed after its outputs were made; run "
        f"`python notebooks/execute.py notebooks/{path.name}` (add --small if it says so)"
    )
    counts = [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # one run, top to bottom


def test_the_stamp_changes_with_any_code_cell_but_not_with_outputs():
    code_sha256 = _executor().code_sha256
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                               nbformat.v4.new_markdown_cell("text")])
    stamp = code_sha256(notebook)
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", text="1")]
    notebook.cells[1].source = "other text"
    assert code_sha256(notebook) == stamp
    notebook.cells[0].source = "x = 2"
    assert code_sha256(notebook) != stamp


def test_tidy_outputs_keeps_what_a_reader_sees():
    cell = nbformat.v4.new_code_cell("fit()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="Epoch 1/1\n"),
        nbformat.v4.new_output("stream", name="stdout", text="\r1/2 loss: 3.0"),
        nbformat.v4.new_output("stream", name="stdout", text="\r2/2 loss: 2.0\n"),
        nbformat.v4.new_output("stream", name="stderr",
                               text="I0000 00:00:17.9   15305 port.cc:153] oneDNN\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    _executor().tidy_outputs(notebook)
    assert [(o.name, o.text) for o in cell.outputs] == [("stdout", "Epoch 1/1\n2/2 loss: 2.0\n")]
