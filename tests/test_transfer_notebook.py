"""The task-transfer notebook executes headless on synthetic task-transfer records."""

import pytest

from conftest import run_notebook
from transfer_fixtures import EXPERIMENT, write_synthetic



@pytest.mark.slow
def test_notebook_runs_on_task_transfer_records(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_synthetic(results)
    text, images = run_notebook("task_transfer", monkeypatch, experiment=EXPERIMENT, results=results)
    assert "task transfer by linear probes" in text and "pretrained" in text and "child_tuning_d" in text
    assert len(images) >= 5            # two per-target plots, head seeds, source vs transfer, curves
    assert (results / EXPERIMENT / "table.csv").is_file() and (results / EXPERIMENT / "plots" / "stsb.png").is_file()
