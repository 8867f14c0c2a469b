"""benchmarks/gpu_session.py, the prepared device calls: its dry run on the CPU goes through every
stage as a GPU call would (carry packed and checked, CUDA tests, throughput, runner vs Trainer, the
20-step measurement, the projection and the sweep), and its outputs fit what a call returns."""
import importlib.util
import json
import re
import subprocess
import sys
import tarfile

import pytest

from helpers.paths import REAL_GLUE, REPO

SESSION = REPO / "benchmarks" / "gpu_session.py"
RETURNABLE = re.compile(r"^[A-Za-z0-9._-]+$")     # what the device tool brings back: at most 8 such files


spec = importlib.util.spec_from_file_location("gpu_session", SESSION)
gpu_session = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_session)


def session(*args, timeout=900):
    return subprocess.run([sys.executable, str(SESSION), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_call_b_without_call_a_stops_at_setup_saying_why(tmp_path):
    empty = tmp_path / "carry"
    empty.mkdir()
    out = session("--call", "b", "--carry", str(empty), "--out", str(tmp_path / "out"), "--site", str(tmp_path / "s"))
    assert out.returncode == 1, out.stdout + out.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["stages"]) == ["setup"] and summary["stages"]["setup"]["status"] == "failed"
    assert "call a's folder is not on this machine" in summary["stages"]["setup"]["error"]
    assert "setup failed: nothing else can run" in out.stdout


def test_an_unknown_stage_is_refused_before_anything_runs(tmp_path):
    out = session("--call", "a", "--stages", "table1", "--out", str(tmp_path / "out"))
    assert out.returncode != 0 and "--call a has no stage(s) ['table1']" in out.stderr
    assert not (tmp_path / "out").exists()


def test_seeds_are_chosen_from_the_projection_and_finished_seeds_cost_nothing():
    per_seed = lambda todo: 100.0 * len(todo)            # noqa: E731 - a projection of 100 s a seed
    assert gpu_session.choose_seeds([10, 5], set(), per_seed, 1000) == (10, {10: 1000})
    assert gpu_session.choose_seeds([10, 5], set(), per_seed, 999) == (5, {10: 1000, 5: 500})
    assert gpu_session.choose_seeds([10, 5], set(), per_seed, 350) == (3, {10: 1000, 5: 500, 3: 300})
    assert gpu_session.choose_seeds([10, 5], set(), per_seed, 99)[0] is None
    assert gpu_session.choose_seeds([10, 5], {1, 2, 3, 4, 5}, per_seed, 500) == (10, {10: 500})
    assert gpu_session.choose_seeds([10, 5], set(range(1, 11)), per_seed, 0) == (10, {10: 0})


@pytest.mark.slow
def test_a_seed_is_complete_when_each_of_its_runs_has_a_record(tmp_path):
    for i in range(3):
        (tmp_path / f"a{i}.json").write_text(json.dumps({"seed": 1}))
    (tmp_path / "b0.json").write_text(json.dumps({"seed": 2}))
    (tmp_path / "b1.json").write_text("{")                    # a corrupt record does not count
    assert gpu_session.complete_seeds(tmp_path, 3) == {1}
    assert gpu_session.cells_per_seed() == 12                 # table1_minilm_gpu: 4 tasks x 3 methods


@pytest.mark.slow
@pytest.mark.skipif(not all((REAL_GLUE / t).is_dir() for t in ("CoLA", "RTE", "MRPC", "STS-B")),
                    reason=f"the dry run packs its data slices from real GLUE files (none under {REAL_GLUE})")
def test_dry_run_goes_through_every_stage_on_the_cpu(tmp_path):
    out_dir = tmp_path / "out"
    out = session("--dry-run", "--out", str(out_dir), "--glue", str(REAL_GLUE))
    summary = json.loads((out_dir / "summary.json").read_text())
    assert out.returncode == 0, json.dumps(summary, indent=1) + out.stderr[-3000:]
    stages = summary["stages"]
    assert list(stages) == ["setup", "env", "cuda_tests", "throughput", "trainer", "table1"]
    assert stages["setup"]["weights"] and stages["setup"]["sizes_mib"]["call_a"] <= 64 >= stages["setup"]["sizes_mib"]["call_b"]
    assert stages["cuda_tests"]["files"] and "skipped" in stages["cuda_tests"]["result"][0]   # no CUDA here
    assert set(stages["trainer"]) >= {"rte", "mrpc"}
    table1 = stages["table1"]
    assert table1["seeds"] == 2 and table1["projected_s"]["2"] > 0
    assert table1["records"] == 24 and set(table1["statuses"]) <= {"ok", "degenerate"}   # 2 seeds x 4 tasks x 3 methods
    with tarfile.open(out_dir / table1["archive"]) as tar:
        names = tar.getnames()
    assert len(names) == 24 and all(n.startswith("runs/tiny_bert.") for n in names)
    files = list(out_dir.iterdir())
    assert len(files) <= 8 and all(p.is_file() and RETURNABLE.match(p.name) for p in files), files
