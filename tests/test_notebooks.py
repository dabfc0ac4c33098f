"""The notebooks run top to bottom on a small slice of their data."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
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
