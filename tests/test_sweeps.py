"""Sweeps: the smoke experiment through Hydra multirun, killed and relaunched, and via submitit."""
import os
import signal
import subprocess
import sys
import time
import pytest

from helpers.paths import REPO


def sweep(results, glue, *extra, **popen):
    cmd = [sys.executable, "-m", "childtuning.train", "-m", "exp=smoke", f"paths.results={results}",
           f"paths.glue_dir={glue}", f"paths.cache={results}/cache", *extra]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True, **popen)


def table(results):
    """The smoke table without its run-time column (wall time differs between identical runs)."""
    from childtuning.aggregate import aggregate
    cells = aggregate("smoke", results)
    assert "seconds_mean" in cells
    return cells.drop(columns="seconds_mean").to_csv(index=False)


@pytest.mark.slow
def test_killed_sweep_relaunched_gives_the_same_table(tmp_path, synthetic_glue):
    full = sweep(tmp_path / "full", synthetic_glue)
    assert full.wait(timeout=600) == 0, full.stdout.read()

    part = sweep(tmp_path / "part", synthetic_glue)
    runs = tmp_path / "part" / "smoke" / "runs"
    deadline = time.time() + 600
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 1:
        time.sleep(0.2)
    os.killpg(part.pid, signal.SIGKILL)                 # kill -9 the whole sweep mid-way
    part.wait()
    done = list(runs.glob("*.json"))
    assert 1 <= len(done) < 4, "the sweep should have been killed part-way"
    relaunch = sweep(tmp_path / "part", synthetic_glue)
    out, _ = relaunch.communicate(timeout=600)
    assert relaunch.returncode == 0, out
    assert out.count("skip ") == len(done)              # finished runs are not redone
    assert len(list(runs.glob("*.json"))) == 4 and not list(runs.glob(".*tmp*"))
    assert table(tmp_path / "part") == table(tmp_path / "full")


@pytest.mark.slow
def test_sweep_through_submitit_local_executor(tmp_path, synthetic_glue):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = sweep(tmp_path, synthetic_glue, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                 "seed=1")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert len(list((tmp_path / "smoke" / "runs").glob("*.json"))) == 2     # 2 methods x seed 1


@pytest.mark.slow
def test_parallel_launcher_runs_the_grid_with_the_same_records(tmp_path, synthetic_glue):
    """LAUNCHER=parallel (joblib workers, one thread each) gives the records a one-thread
    sequential sweep gives: same run ids, same metrics and history."""
    import json
    serial = sweep(tmp_path / "serial", synthetic_glue, "impl.num_threads=1", "seed=1")
    parallel = sweep(tmp_path / "parallel", synthetic_glue, "hydra/launcher=parallel", "impl.num_threads=1", "seed=1")
    for proc in (serial, parallel):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out

    def runs(results):
        return {p.name: (lambda r: (r["metrics"], r["history"]))(json.loads(p.read_text()))
                for p in sorted((results / "smoke" / "runs").glob("*.json"))}
    assert len(runs(tmp_path / "serial")) == 2 and runs(tmp_path / "serial") == runs(tmp_path / "parallel")


def test_sweep_jobs_expand_as_hydra_with_the_command_line_winning():
    """childtuning.sweep.jobs, which pre-flight and the probe use to know a sweep before it runs:
    the experiment's params in their order, a command-line value replacing a swept one in place,
    a command-line list swept too."""
    from childtuning import sweep

    jobs = sweep.jobs({"task": "rte,mrpc", "seed": "range(1,3)"}, ["seed=5", "method=vanilla,child_tuning_d"])
    assert jobs == [[f"task={t}", "seed=5", f"method={m}"] for t in ("rte", "mrpc") for m in ("vanilla", "child_tuning_d")]


def test_the_probe_finds_the_runs_of_a_sweep_narrowed_on_the_command_line():
    from childtuning import sweep

    jobs = sweep.experiment_jobs(["exp=task_transfer_smoke", "seed=2"])
    assert [sorted(j) for j in jobs] == [sorted(["exp=task_transfer_smoke", f"method={m}", "seed=2"])
                                         for m in ("vanilla", "child_tuning_d")]
