"""The task-transfer notebook executes headless on synthetic task-transfer records."""

import pytest

from helpers.notebooks import run_notebook
from helpers.transfer import EXPERIMENT, write_synthetic


@pytest.mark.slow
def test_notebook_runs_on_task_transfer_records(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_synthetic(results)
    out = tmp_path / "out"
    text, images = run_notebook("task_transfer", monkeypatch, experiment=EXPERIMENT, results=results, notebook_out=out)
    assert "task transfer by linear probes" in text and "pretrained" in text and "child_tuning_d" in text
    assert len(images) >= 5            # two per-target plots, head seeds, source vs transfer, curves
    assert (out / EXPERIMENT / "table.csv").is_file() and (out / EXPERIMENT / "plots" / "stsb.png").is_file()
