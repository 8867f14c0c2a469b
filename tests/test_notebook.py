"""The results notebook executes headless on the records of a real smoke sweep."""
import os
import re
import subprocess
import sys

import nbformat
import pytest

from helpers.glue import write_synthetic_glue
from helpers.notebooks import run_notebook
from helpers.paths import REAL_GLUE, REPO, has_real_glue


# every notebook: the committed file carries no outputs, and its first cell names its defaults
# (the tests that execute each one override them through CHILDTUNING_* variables)
DEFAULTS = {"inspect_results": 'EXPERIMENT = "table1_cpu"', "domain_transfer": 'EXPERIMENT = "domain_transfer_cpu"',
            "task_transfer": 'EXPERIMENT = "task_transfer_cpu"', "inspect_ablations": 'RESULTS = "results"',
            "prior_methods": 'EXPERIMENT = "prior_methods_cpu"'}


# the committed notebooks (a headless run kept with --output=<name>_run is a local, ignored copy)
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb") if not p.stem.endswith("_run"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_saved_without_outputs(name):
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert name in DEFAULTS, f"notebooks/{name}.ipynb: add its first cell's default to DEFAULTS"
    assert DEFAULTS[name] in code[0].source and 'RESULTS = "results"' in code[0].source


@pytest.mark.slow
def test_notebook_runs_on_smoke_sweep_records(tmp_path, monkeypatch):
    glue = REAL_GLUE if has_real_glue("RTE") else write_synthetic_glue(tmp_path / "glue", ("RTE",))
    results = tmp_path / "results"
    # One torch thread: the runs are tiny, and on a busy 2-core machine two threads per run are
    # many times slower. A speed-only setting: it changes neither the run ids nor the results.
    sweep = subprocess.run([sys.executable, "-m", "childtuning.train", "-m", "exp=smoke", f"paths.results={results}",
                            f"paths.glue_dir={glue}", f"paths.cache={tmp_path}/cache", "impl.num_threads=1"],
                           cwd=REPO, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True,
                           timeout=600)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert len(list((results / "smoke" / "runs").glob("*.json"))) == 4

    out = tmp_path / "out"
    text, images = run_notebook("inspect_results", monkeypatch, experiment="smoke", results=results, notebook_out=out)
    assert "# Experiment `smoke`" in text and "tiny_bert" in text and "child_tuning_d" in text
    assert len(images) >= 3            # the per-seed plot, the training curves, the kept fraction per layer
    assert (out / "smoke" / "table.csv").is_file() and (out / "smoke" / "plots" / "rte.png").is_file()
    assert not (results / "smoke" / "table.csv").exists()        # run_notebook also checks nothing changed there


def default_experiments(name: str) -> list[str]:
    """The experiments a notebook's first cell names as defaults (string values that are experiment files)."""
    from childtuning.report import available_experiments

    first = next(c for c in nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code")
    return [v for v in re.findall(r'= "([A-Za-z0-9_]+)"', first.source) if v in available_experiments()]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_opens_committed_studies_by_default(name):
    """A fresh clone has the records of every experiment a notebook opens by default: committed under results/."""
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout with committed results")
    named = default_experiments(name)
    assert named, f"notebooks/{name}.ipynb names no experiment in its first cell"
    for experiment in named:
        assert any(p.startswith(f"results/{experiment}/runs/") and p.endswith(".json") for p in tracked), \
            f"notebooks/{name}.ipynb opens {experiment} by default, which has no committed records"


@pytest.mark.slow
def test_the_results_notebook_opens_its_default_study_and_writes_nothing_there(monkeypatch):
    for var in ("CHILDTUNING_EXPERIMENT", "CHILDTUNING_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    text, images = run_notebook("inspect_results", monkeypatch)   # its defaults, on the committed results/
    assert "# Experiment `table1_cpu`" in text and len(images) >= 3
