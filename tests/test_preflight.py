"""A sweep checks every cell at launch (childtuning/preflight.py), and a run that fails later is
recorded or reported while the sweep goes on, with every launcher."""
import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
from hydra import compose, initialize_config_dir

from childtuning import REPO_ROOT
from childtuning.config import compose as compose_run, validate
from childtuning.preflight import CellComposer, check_cells, sweep_jobs
from childtuning.record import run_id
from helpers.glue import write_synthetic_glue
from helpers.paths import REPO


@contextmanager
def sweep(*overrides):
    """(jobs, composer) of `python -m childtuning.train -m <overrides>`, composed in this process."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        master = GlobalHydra.instance().hydra.compose_config("config", list(overrides), run_mode=RunMode.MULTIRUN)
        groups = set(master.hydra.runtime.choices)
        yield sweep_jobs(master), CellComposer(lambda o: compose("config", overrides=list(o)), groups)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["smoke", "lr_search_cpu", "optimizer_cpu"])
def test_the_fast_composition_gives_the_runners_run_ids(experiment, synthetic_glue, tmp_path):
    """Composed once per group choice, values applied after, seeds apart: the same run ids as
    composing each job in full as the runner does (lr_search sweeps trainer.lr, optimizer_cpu
    trainer.optimizer: value overrides)."""
    extra = [f"paths.glue_dir={synthetic_glue}", f"paths.results={tmp_path}"]
    with sweep(f"exp={experiment}", *extra) as (jobs, composer):
        report = check_cells(jobs, composer)
    assert not report.bad, report.refusal()
    slow = [run_id(validate(compose_run(*job))) for job in jobs]
    assert report.run_ids == slow and len(set(slow)) == len(jobs) > 1
    assert report.summary().startswith(f"pre-flight: {len(jobs)} cell(s) checked in ")


@pytest.mark.slow
def test_missing_data_and_an_unwritable_results_folder_are_found_at_launch(synthetic_glue, tmp_path):
    (synthetic_glue / "MRPC" / "dev.tsv").unlink()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with sweep("exp=smoke", "task=rte,mrpc", f"paths.glue_dir={synthetic_glue}", "method=vanilla", "seed=1",
               f"paths.results={tmp_path},{blocker}") as (jobs, composer):
        report = check_cells(jobs, composer)
    bad = {reason.split(" ")[0] + " " + reason.split(" ")[1]: cells for reason, cells in report.bad.items()}
    assert report.cells == 4 and set(bad) == {"task mrpc:", "cannot write"}, report.refusal()
    assert bad["task mrpc:"] == [f"task=mrpc paths.results={tmp_path}", f"task=mrpc paths.results={blocker}"]
    assert bad["cannot write"] == [f"task=rte paths.results={blocker}", f"task=mrpc paths.results={blocker}"]
    assert "missing data file" in report.refusal() and "MRPC/dev.tsv" in report.refusal()


@pytest.mark.slow
def test_complete_corrupt_and_leased_runs_are_counted_at_launch(synthetic_glue, tmp_path):
    import childtuning.train as train_mod
    from childtuning import lease

    base = ("exp=smoke", f"paths.glue_dir={synthetic_glue}", f"paths.results={tmp_path}")
    done = train_mod.run(compose_run(*base, "method=vanilla", "seed=1"))
    runs = tmp_path / "smoke" / "runs"
    corrupt = train_mod.run(compose_run(*base, "method=vanilla", "seed=2"))
    (runs / f"{corrupt['run_id']}.json").write_text("{")
    held = lease.Lease(tmp_path / "smoke" / "leases", run_id(validate(compose_run(*base, "method=child_tuning_d",
                                                                               "seed=1"))), 60, 30)
    assert held.acquire() is None
    try:
        with sweep(*base) as (jobs, composer):
            report = check_cells(jobs, composer)
    finally:
        held.release()
    assert (report.complete, report.corrupt, report.leased) == (1, 1, 1) and done["run_id"] in report.run_ids
    assert ": 2 to run, 1 complete (skipped), 1 leased by a live owner (skipped), 1 corrupt" in report.summary()


def launch(tmp_path, *overrides, env=None):
    cmd = [sys.executable, "-m", "childtuning.train", "-m", f"paths.results={tmp_path}/results",
           f"paths.cache={tmp_path}/cache", *overrides]
    return subprocess.run(cmd, cwd=REPO, env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_sweep_with_bad_cells_is_refused_before_any_run_listing_each(tmp_path, synthetic_glue):
    """A hub model missing from an (empty) offline cache and a refused value, in 12 of 16 cells."""
    cache = tmp_path / "hf"
    cache.mkdir()
    out = launch(tmp_path, "exp=smoke", "model=tiny_bert,bert_large", "trainer.lr=4e-5,-1",
                 f"paths.glue_dir={synthetic_glue}", env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert "the sweep is refused before any run starts: 12 of 16 cell(s) cannot run." in err
    assert f"model bert_large: bert-large-cased is not in the local Hugging Face cache {cache}" in err
    assert "`hf download bert-large-cased`" in err and "snapshot_download('bert-large-cased')" in err
    assert "trainer.lr must be positive" in err.replace("trainer.lr and trainer.max_length", "trainer.lr")
    cells = [line.strip() for line in err.splitlines() if line.startswith("    - ")]
    assert len(cells) == 12 and "- method=vanilla seed=1 model=bert_large trainer.lr=4e-05" in cells
    assert "Launching" not in out.stdout + err and not list((tmp_path / "results").glob("smoke/runs/*.json"))


@pytest.fixture
def troubled_glue(tmp_path):
    """RTE with a malformed row (found only when the run reads it), CoLA with an example longer
    than the tiny model's 256 positions (fails in training), MRPC sound."""
    glue = write_synthetic_glue(tmp_path / "glue", tasks=("RTE", "MRPC", "CoLA"), n_train=16, n_dev=8)
    with open(glue / "RTE" / "train.tsv", "a") as f:
        f.write("99\tonly two fields\n")
    with open(glue / "CoLA" / "train.tsv", "a") as f:
        f.write("syn1\t1\t\t" + " ".join(["cat dog"] * 200) + " .\n")
    return glue


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "hydra/launcher=parallel", "hydra/launcher=submitit_local"])
def test_a_sweep_goes_on_past_runs_that_fail(tmp_path, troubled_glue, launcher):
    """Bad data found only by the run: that cell fails (no record) and the sweep goes on; a run that
    fails in training is recorded as failed; the sweep exits non-zero at the end."""
    if "submitit" in launcher:
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    extra = [] if launcher == "basic" else [launcher]
    out = launch(tmp_path, "exp=smoke", "task=rte,mrpc,cola", "task.max_train_samples=null", "method=vanilla", "seed=1",
                 "trainer.max_length=512",
                 "trainer.epochs=1", f"paths.glue_dir={troubled_glue}", *extra,
                 *(["hydra.launcher.timeout_min=10"] if "submitit" in launcher else []))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pre-flight: 3 cell(s) checked" in out.stdout and "malformed row" in out.stdout + out.stderr
    records = {json.loads(p.read_text())["task"]: json.loads(p.read_text())
               for p in (tmp_path / "results" / "smoke" / "runs").glob("*.json")}
    assert set(records) == {"mrpc", "cola"}
    assert records["mrpc"]["status"] in ("ok", "degenerate") and records["cola"]["status"] == "failed"
    assert "IndexError" in records["cola"]["reason"]
    assert not list((tmp_path / "results" / "smoke" / "leases").iterdir())
