"""A new user's first commands, run as a user runs them (`python -m childtuning.train ...` in a
subprocess): missing data, an unwritable results folder, mistyped keys and a SLURM launcher without
SLURM are refused at launch with exit code 2 and the fix named, before any run starts or any folder
is made; a dry run prints the plan and runs nothing. The messages for Hydra's own refusals are also
checked in this process (childtuning/hydra_errors.py), cheaply enough for the fast loop."""
import shutil
import statistics
import sys
from pathlib import Path

import pytest
from hydra.errors import HydraException

from childtuning import hub, hydra_errors, preflight
from childtuning.config import load_task_config
from helpers.commands import launch
from helpers.paths import REPO


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """The package and its configs in a folder with nothing beside it (no ../shared/data/glue, no
    data/glue): where a fresh clone's runs look for local data and find none."""
    clone = tmp_path_factory.mktemp("alone") / "clone"
    for part in ("childtuning", "conf", "experiments"):
        shutil.copytree(REPO / part, clone / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return clone


def empty_hub_cache(tmp_path) -> dict:
    (tmp_path / "hf").mkdir(exist_ok=True)
    return {"HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}


# ---------------------------------------------------------------- data that cannot be read (issue 29, item 1)
@pytest.mark.slow
@pytest.mark.parametrize("sweep", [True, False], ids=["sweep", "single run"])
def test_a_fresh_clone_without_data_is_refused_at_launch_naming_glue_dir(fresh_clone, tmp_path, sweep):
    out = launch(*(["-m"] if sweep else []), "exp=smoke", f"paths.results={tmp_path}/results",
                 f"paths.cache={tmp_path}/cache", cwd=fresh_clone, env=empty_hub_cache(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert "task rte: the train and dev splits have no local copy" in err and f"{fresh_clone}/data/glue" in err
    assert "hub dataset nyu-mll/glue/rte is not in the local datasets cache" in err and "offline mode is on" in err
    assert "GLUE_DIR" in err and "RTE/train.tsv" in err
    assert "Traceback" not in err and "start " not in out.stdout and "Launching" not in out.stdout + err
    assert not list((tmp_path / "results").glob("smoke/runs/*.json")) and not (tmp_path / "results" / "smoke" / "hydra").exists()


def test_a_cached_hub_dataset_passes_offline_and_the_hub_is_asked_once_per_dataset(tmp_path, monkeypatch):
    from datasets import config

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path)
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", True)
    hub.dataset_problem.cache_clear()
    assert "offline mode is on" in hub.dataset_problem("nyu-mll/glue", "rte")
    (tmp_path / "nyu-mll___glue" / "rte" / "0.0.0" / "abc123").mkdir(parents=True)   # the layout `datasets` caches in
    hub.dataset_problem.cache_clear()
    assert hub.dataset_problem("nyu-mll/glue", "rte") is None
    assert "offline mode is on" in hub.dataset_problem("nyu-mll/glue", "mrpc")          # another configuration

    asked = []

    class Hub:
        def dataset_info(self, path, timeout):
            asked.append(path)
            raise ConnectionError("no route to host")
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.HfApi", Hub)
    hub.dataset_problem.cache_clear()
    task = load_task_config("cola")
    cfg = type("Cfg", (), {"task": task, "targets": [], "paths": type("P", (), {"glue_dir": None})()})()
    monkeypatch.setattr("childtuning.readers.glue_dir_candidates", lambda configured: [tmp_path / "none"])
    for _ in range(3):                                             # three cells of one sweep, train and dev each
        problems = preflight.data_problems(cfg)
    assert asked == ["nyu-mll/glue"] and len(problems) == 1
    assert "the hub cannot be reached (ConnectionError: no route to host)" in problems[0] and "GLUE_DIR" in problems[0]
    hub.dataset_problem.cache_clear()


# ---------------------------------------------------------------- an unwritable results folder (item 2)
@pytest.mark.slow
def test_a_single_run_into_an_unwritable_results_folder_exits_2_without_a_trace(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")            # a folder inside a file cannot be made, not even by root
    out = launch("exp=smoke", f"paths.results={blocker}/results", f"paths.cache={tmp_path}/cache",
                 f"paths.glue_dir={tmp_path}/unused")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith(f"error: cannot write run records in {blocker}/results/smoke/runs: Not a directory "
                                 "(ENOTDIR)") and "paths.results=" in out.stderr
    assert "Traceback" not in out.stderr and "start " not in out.stdout


@pytest.mark.slow
def test_a_refused_single_run_leaves_no_hydra_folder(tmp_path):
    out = launch("exp=smoke", "trainer.lr=-1", f"paths.results={tmp_path}/results", f"paths.cache={tmp_path}/cache")
    assert out.returncode == 2 and "trainer.lr must be positive" in out.stderr.replace(
        "trainer.lr and trainer.max_length", "trainer.lr"), out.stderr
    assert not (tmp_path / "results" / "smoke" / "hydra").exists()


# ---------------------------------------------------------------- messages through Hydra (item 5)
@pytest.mark.slow
def test_a_mistyped_key_names_the_key_meant(tmp_path):
    out = launch("exp=smoke", "trainer.lrr=1e-5", f"paths.results={tmp_path}")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: trainer.lrr=1e-5: no setting trainer.lrr in the config; did you mean trainer.lr?")
    assert "+trainer.lrr=... does not help" in out.stderr and "To append to your config" not in out.stderr
    assert not (tmp_path / "smoke").exists()


@pytest.mark.slow
def test_a_sweep_key_that_some_cells_lack_names_them(tmp_path):
    out = launch("-m", "exp=smoke", "method=vanilla,child_tuning_d", "method.keep_ratio=0", f"paths.results={tmp_path}")
    assert out.returncode == 2, out.stderr
    assert ("error: method.keep_ratio=0: method.keep_ratio is not a setting of 2 of 4 cell(s) of this sweep: "
            "method=vanilla seed=1, method=vanilla seed=2") in out.stderr
    out = launch("-m", "exp=smoke", "method=child_tuning_d,child_tuning_f", "method.keep_ratio=0", f"paths.results={tmp_path}")
    assert out.returncode == 2 and "every cell of this sweep has method.keep_ratio" in out.stderr
    assert "'method.keep_ratio=choice(0)'" in out.stderr


@pytest.mark.slow
def test_an_old_schema_key_in_a_task_file_says_where_it_lives_now(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf, symlinks=False)
    with open(conf / "task" / "rte.yaml", "a") as f:
        f.write("keep_ratio: {child_tuning_d: 0.3}\n")           # schema 1's per-task table
    out = launch("--config-path", str(conf), "exp=smoke", f"paths.results={tmp_path}/results")
    assert out.returncode == 2, out.stderr
    assert f"config error at `task.keep_ratio` (set in conf/task/rte.yaml" in out.stderr
    assert "conf/method_task/<method>_<task>.yaml" in out.stderr


@pytest.mark.slow
def test_a_missing_experiment_or_config_file_is_refused_with_the_name_meant(tmp_path):
    out = launch("exp=smok", f"paths.results={tmp_path}")        # Hydra alone would run the defaults
    assert out.returncode == 2 and "exp=smok: there is no conf/exp/smok.yaml; did you mean exp=smoke?" in out.stderr
    out = launch("exp=smoke", "method=vanila", f"paths.results={tmp_path}")
    assert out.returncode == 2 and "method=vanila: there is no conf/method/vanila.yaml; did you mean method=vanilla?" \
        in out.stderr
    assert not list(tmp_path.iterdir())


def hydra_refusal(*argv: str) -> str:
    """The message for Hydra's own refusal of `python -m childtuning.train <argv>`, the refusal made
    in this process by composing the repository's configs as Hydra does."""
    overrides, multirun = hydra_errors.command_line(list(argv))
    with pytest.raises(HydraException) as refused:
        hydra_errors.Composer(REPO / "conf", "config")(overrides, multirun)
    return hydra_errors.explain(refused.value, list(argv))


def test_an_unknown_key_is_explained_with_the_key_meant_or_where_it_moved():
    message = hydra_refusal("exp=smoke", "trainer.lrr=1e-5")
    assert message.startswith("trainer.lrr=1e-5: no setting trainer.lrr in the config; did you mean trainer.lr? "
                              "(settings under trainer: ")
    assert "+trainer.lrr=... does not help" in message and "To append to your config" not in message
    message = hydra_refusal("exp=smoke", "~trainer.lrr")                    # deleting: no advice about adding
    assert message.startswith("~trainer.lrr: no setting trainer.lrr in the config; did you mean trainer.lr?")
    assert "does not help" not in message
    message = hydra_refusal("exp=smoke", "trainer.num_threads=2")          # moved to impl
    assert message == ("trainer.num_threads=2: no setting trainer.num_threads in the config; trainer.num_threads has "
                       "moved: threads are a setting of how a run executes: impl.num_threads")
    assert "has moved: the official code's reserve_p is method.keep_ratio here" in hydra_refusal("reserve_p=0.3")
    assert "conf/method_task/<method>_<task>.yaml" in hydra_refusal("exp=smoke", "task.keep_ratio=0.3")


def test_a_sweep_key_some_cells_lack_is_explained_with_those_cells():
    message = hydra_refusal("-m", "exp=smoke", "method=vanilla,child_tuning_d", "method.keep_ratio=0")
    assert message.startswith("method.keep_ratio=0: method.keep_ratio is not a setting of 2 of 4 cell(s) of this "
                              "sweep: method=vanilla seed=1, method=vanilla seed=2 (in method=vanilla seed=1, the "
                              "settings under method: ")
    message = hydra_refusal("-m", "exp=smoke", "method=child_tuning_d,child_tuning_f", "method.keep_ratio=0")
    assert message.startswith("method.keep_ratio=0: every cell of this sweep has method.keep_ratio")
    assert message.endswith("Write it as a one-value sweep: 'method.keep_ratio=choice(0)'")


def test_a_missing_config_file_or_an_unparsed_override_is_explained():
    assert hydra_refusal("exp=smoke", "method=vanila").startswith(
        "method=vanila: there is no conf/method/vanila.yaml; did you mean method=vanilla? (options: ")
    # what hydra_errors cannot place passes through, without Hydra's advice about its environment variable
    message = hydra_refusal("exp=smoke", "trainer.lr=1=2")
    assert message.startswith("mismatched input '='") and "override_grammar" in message
    refusal = HydraException("odd refusal\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.")
    assert hydra_errors.explain(refusal, ["exp=smoke"]) == "odd refusal"

# ---------------------------------------------------------------- the SLURM launcher without SLURM (item 6)
@pytest.mark.slow
def test_the_slurm_launcher_without_slurm_is_refused_before_submitting(tmp_path, synthetic_glue):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = launch("-m", "exp=smoke", "hydra/launcher=slurm", f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}",
                 path=str(Path(sys.executable).parent))           # no sbatch, no srun on PATH
    assert out.returncode == 2, out.stdout + out.stderr
    assert "hydra/launcher=slurm submits each run as a SLURM job, but sbatch and srun are not on PATH" in out.stderr
    assert "Could not detect" not in out.stderr and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- the dry run (item 7)
@pytest.mark.slow
def test_a_dry_run_prints_each_cells_fate_and_cost_and_runs_nothing(tmp_path, synthetic_glue):
    import childtuning.train as train_mod
    from childtuning.config import compose

    results = tmp_path / "results"
    base = ("exp=smoke", f"paths.glue_dir={synthetic_glue}", f"paths.results={results}", f"paths.cache={tmp_path}/cache")
    done = train_mod.run(compose(*base, "method=vanilla", "seed=1"))                       # complete
    other = train_mod.run(compose(*base, "method=child_tuning_d", "seed=1", "experiment=elsewhere"))   # reused
    before = sorted(p.name for p in results.rglob("*.json"))
    out = launch("-m", *base, "seed=1,2,3", "preflight.dry_run=true")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {cell: line for line in out.stdout.splitlines() for cell in
             [f"method={m} seed={s}" for m in ("vanilla", "child_tuning_d") for s in (1, 2, 3)] if f" {cell} " in line}
    assert lines["method=vanilla seed=1"].startswith("  complete") and done["run_id"] in lines["method=vanilla seed=1"]
    assert lines["method=child_tuning_d seed=1"].startswith("  reused") and "experiment elsewhere" in \
        lines["method=child_tuning_d seed=1"] and other["run_id"] in lines["method=child_tuning_d seed=1"]
    assert "about " in lines["method=vanilla seed=2"] and "median of 1 record(s) of tiny_bert/rte/vanilla" in \
        lines["method=vanilla seed=2"]
    assert "median of 1 record(s) of tiny_bert/rte/child_tuning_d" in lines["method=child_tuning_d seed=3"]
    assert "cells: 4 to run, 1 complete, 1 reused" in out.stdout
    assert sorted(p.name for p in results.rglob("*.json")) == before and not (results / "smoke" / "hydra").exists()

    out = launch("-m", *base, "seed=1,2", "trainer.lr=4e-5,-1", "preflight.dry_run=true")   # refused cells: exit 2
    assert out.returncode == 2 and "refused" in out.stdout and "the sweep is refused" in out.stderr
    assert sorted(p.name for p in results.rglob("*.json")) == before


def test_the_plan_scales_an_earlier_runs_time_by_examples_and_epochs():
    from childtuning.plan import estimate

    runs = [{"model": "m", "task": "t", "method": "a", "prepare_s": 10.0, "train_s": 100.0, "examples": 1000,
             "epochs": 2, "subset": True, "threads": 1, "device": "cpu"},
            {"model": "m", "task": "t", "method": "b", "prepare_s": 0.0, "train_s": 40.0, "examples": 4000,
             "epochs": 1, "subset": False, "threads": 2, "device": "cpu"}]
    cell = {"model": "m", "task": "t", "method": "a", "examples": 500, "epochs": 4}
    assert estimate(cell, runs)[0] == pytest.approx(10 * 0.5 + 100 * 0.5 * 2)
    assert estimate({**cell, "examples": None}, runs)[0] == pytest.approx(10 * 4 + 100 * 4 * 2)  # whole set: 4000
    seconds, basis = estimate({**cell, "method": "c"}, runs)                 # no record of c: model and task
    assert seconds == pytest.approx(statistics.median([10 * 0.5 + 100 * 0.5 * 2, 40 * 0.125 * 4]))
    assert "m/t," in basis and "2 record(s)" in basis
    assert estimate({**cell, "task": "u"}, runs) == (None, "no earlier record of m on u")
