"""The task-transfer notebook executes headless on synthetic task-transfer records."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO
from transfer_fixtures import EXPERIMENT, write_synthetic

NOTEBOOK = REPO / "notebooks" / "task_transfer.ipynb"


@pytest.mark.slow
def test_notebook_runs_on_task_transfer_records(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_synthetic(results)
    monkeypatch.setenv("CHILDTUNING_EXPERIMENT", EXPERIMENT)
    monkeypatch.setenv("CHILDTUNING_RESULTS", str(results))
    # the kernel starts in notebooks/: make it import this checkout's childtuning
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()   # raises on a cell error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/plain", ""))
                   for o in outputs)
    assert "task transfer by linear probes" in text and "pretrained" in text and "child_tuning_d" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5            # two per-target plots, head seeds, source vs transfer, curves
    assert (results / EXPERIMENT / "table.csv").is_file() and (results / EXPERIMENT / "plots" / "stsb.png").is_file()
