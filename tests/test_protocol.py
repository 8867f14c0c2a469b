"""The tuning protocol (childtuning/protocol.py): a rule applied to a search stage's records, on
seeds disjoint from the reported ones, read back by the confirmation runs through ${selected:...}."""
import json
from pathlib import Path

import pytest
from omegaconf import open_dict

import childtuning.report.spec as spec_mod  # noqa: F401
import childtuning.sweep as sweep_mod
import childtuning.train as train_mod
from childtuning import SCHEMA_VERSION, protocol
from childtuning.aggregate import aggregate
from childtuning.config import validate
from childtuning.errors import InputError
from childtuning.report import available_experiments
from childtuning.sweep import composer

SEARCH = """\
# @package _global_
defaults:
  - override /model: tiny_bert
experiment: search
task: {max_train_samples: 24}
trainer: {epochs: 1, batch_size: 8}
impl: {progress_bar: false, num_threads: 1}
hydra:
  sweeper:
    params:
      task: rte,mrpc
      method: vanilla,child_tuning_d
      trainer.lr: 1e-3,1e-2
      seed: "0"
table:
  rows: [model, method, trainer.lr]
  columns: task
  baseline: null
"""
TUNED = """\
# @package _global_
defaults:
  - override /model: tiny_bert
experiment: tuned
task: {max_train_samples: 24}
trainer: {epochs: 1, batch_size: 8, lr: "${selected:trainer.lr}"}
impl: {progress_bar: false, num_threads: 1}
protocol: {search: search, select: [trainer.lr], per: [model, method], rule: best_mean_over_tasks}
hydra:
  sweeper:
    params:
      task: rte,mrpc
      method: vanilla,child_tuning_d
      seed: SEEDS
table:
  rows: [model, method]
  columns: task
  baseline: vanilla
"""
METRIC = {"rte": "accuracy", "mrpc": "f1"}
# (method, lr) -> {task: score}; None = a failed run (no score)
SCORES = {("vanilla", 1e-3): {"rte": 60.0, "mrpc": 80.0},     # average 70: chosen
          ("vanilla", 1e-2): {"rte": 70.0, "mrpc": 60.0},     # 65
          ("child_tuning_d", 1e-3): {"rte": 50.0, "mrpc": 50.0},
          ("child_tuning_d", 1e-2): {"rte": 90.0, "mrpc": None}}   # best RTE, but no MRPC score: not eligible


@pytest.fixture
def experiments(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "search.yaml").write_text(SEARCH)
    (folder / "tuned.yaml").write_text(TUNED.replace("SEEDS", "1,2"))
    monkeypatch.setattr(sweep_mod, "EXPERIMENTS_DIR", folder)
    return folder


def search_records(results, skip=(), held_out=True):
    """The search stage's records: SCORES on each run's held-out training examples (target records
    `<task>:heldout`), and dev scores that rank the candidates the other way round (100 - score),
    so a rule that read dev would choose otherwise."""
    from childtuning import target_records

    runs = Path(results) / "search" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for (method, lr), by_task in SCORES.items():
        for task, value in by_task.items():
            if (method, lr, task) in skip:
                continue
            rid = f"tiny_bert.{task}.{method}.s0.{abs(hash((lr, task))) % 10**10:010d}"
            metric = METRIC[task]
            dev = None if value is None else 100.0 - value
            rec = {"schema_version": SCHEMA_VERSION, "run_id": rid, "experiment": "search", "model": "tiny_bert",
                   "task": task, "method": method, "seed": 0, "status": "ok" if value is not None else "failed",
                   "reason": None, "metrics": {metric: dev} if value is not None else {},
                   "main_metric": {"name": metric, "value": dev}, "history": [], "train_seconds": 1.0,
                   "method_stats": {}, "config": {"trainer": {"lr": lr}, "task": {"main_metric": metric}}}
            (runs / f"{rid}.json").write_text(json.dumps(rec))
            if held_out and value is not None:
                entry = {"task": task, "split": "heldout", "label_map": {"name": "identity", "pairs": {}}}
                made = target_records.build(rec, entry, {
                    "metrics": {metric: value}, "main_metric": metric, "reason": None, "predictions": None,
                    "near_constant": None, "majority_class": None, "size": 16, "dropped": 0, "source": "synthetic",
                    "fingerprint": "0" * 16, "model_from": "end of run", "seconds": 1.0, "device": None})
                (Path(results) / "search" / "targets").mkdir(exist_ok=True)
                (Path(results) / "search" / "targets" / f"{made['run_id']}.json").write_text(json.dumps(made))


def test_the_rule_picks_per_method_from_the_search_records(experiments, tmp_path):
    search_records(tmp_path / "results")
    doc = protocol.select("tuned", tmp_path / "results")
    chosen = {c["where"]["method"]: c["values"]["trainer.lr"] for c in doc["choices"]}
    assert chosen == {"vanilla": 1e-3, "child_tuning_d": 1e-3}
    assert isinstance(chosen["vanilla"], float)                      # the record's value, not a table label
    vanilla = next(c for c in doc["choices"] if c["where"]["method"] == "vanilla")
    assert [c["score"] for c in vanilla["candidates"]] == [70.0, 65.0] and vanilla["at_grid_edge"] == ["trainer.lr"]
    d = next(c for c in doc["choices"] if c["where"]["method"] == "child_tuning_d")
    assert d["candidates"][1]["score"] is None and d["candidates"][1]["scored_of_runs"]["mrpc"] == "0/1"
    assert doc["search"]["seeds"] == [0] and doc["reported_seeds"] == [1, 2]
    assert doc["scored_on"]["split"] == "heldout" and doc["scored_on"]["examples"] == {"rte": {"seed 0": 16},
                                                                                       "mrpc": {"seed 0": 16}}


def test_a_search_without_held_out_scores_is_refused_and_dev_is_only_read_when_declared(experiments, tmp_path):
    search_records(tmp_path / "results", held_out=False)
    with pytest.raises(InputError, match=r"have no held-out score.*\$\{task.name\}:heldout"):
        protocol.select("tuned", tmp_path / "results")
    (experiments / "tuned.yaml").write_text(TUNED.replace("SEEDS", "1,2").replace(
        "rule: best_mean_over_tasks}", "rule: best_mean_over_tasks, score_on: dev}"))
    doc = protocol.select("tuned", tmp_path / "results")
    chosen = {c["where"]["method"]: c["values"]["trainer.lr"] for c in doc["choices"]}
    assert chosen == {"vanilla": 1e-2, "child_tuning_d": 1e-3} and doc["scored_on"]["split"] == "dev"


def test_the_confirmation_runs_read_the_selection(experiments, tmp_path, synthetic_glue):
    results = tmp_path / "results"
    search_records(results)
    with composer(experiments / "tuned.yaml") as compose_with:
        job = compose_with(["task=rte", "method=child_tuning_d", "seed=1", f"paths.results={results}",
                            f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache"])
    with open_dict(job):
        del job["hydra"]                                                # as the runner gets it
    with pytest.raises(InputError, match="python -m childtuning.protocol tuned"):
        validate(job)                                                   # no selection yet: says how to make it
    assert protocol.main(["tuned", "--results", str(results)]) == 0
    assert validate(job).trainer.lr == 1e-3
    rec = train_mod.run(job)
    assert rec["hyperparameters"]["lr"] == 1e-3
    aggregate("tuned", results)
    md = (results / "tuned" / "table.md").read_text()
    assert "## Tuning protocol" in md and "best_mean_over_tasks" in md and "search stage: experiment `search`, seeds 0" \
        in md.replace("Search", "search") and "reports seeds 1, 2" in md
    assert "| tiny_bert | child_tuning_d | 0.001 |" in md
    # a selection that confirmation runs used is not replaced silently
    doc = json.loads((results / "tuned" / "selection.json").read_text())
    doc["choices"][0]["values"]["trainer.lr"] = 0.5
    with pytest.raises(InputError, match="--force"):
        protocol.write_selection(doc, results)
    protocol.write_selection(doc, results, force=True)


BORROWER = """\
# @package _global_
defaults:
  - override /model: tiny_bert
  - override /preset: fair_warmup
experiment: borrower
task: {max_train_samples: 24}
trainer: {epochs: 1, batch_size: 8, lr: "${selected:trainer.lr}"}
protocol:
  selection_from: tuned
  stand_in: {method: {mixout: vanilla, child_tuning_d+mixout: child_tuning_d}}
hydra:
  sweeper:
    params:
      task: rte
      method: vanilla,mixout,child_tuning_d+mixout
      seed: 1,2
table:
  rows: [model, method]
  columns: task
  baseline: vanilla
"""


def test_a_stand_in_takes_the_choice_of_the_value_it_names(experiments, tmp_path, synthetic_glue):
    """Methods the search did not tune read the choice declared for them (protocol.stand_in); one
    without a choice or a stand-in is refused with the fix named."""
    (experiments / "borrower.yaml").write_text(BORROWER)
    results = tmp_path / "results"
    search_records(results)
    doc = protocol.select("tuned", results)
    for c in doc["choices"]:                        # make the two choices differ
        c["values"]["trainer.lr"] = {"vanilla": 1e-3, "child_tuning_d": 1e-2}[c["where"]["method"]]
    protocol.write_selection(doc, results)

    def lr(method):
        with composer(experiments / "borrower.yaml") as compose_with:
            job = compose_with(["task=rte", f"method={method}", "seed=1", f"paths.results={results}",
                                f"paths.glue_dir={synthetic_glue}", f"paths.cache={tmp_path}/cache"])
        with open_dict(job):
            del job["hydra"]
        return validate(job).trainer.lr

    assert (lr("vanilla"), lr("mixout"), lr("child_tuning_d"), lr("child_tuning_d+mixout")) == (1e-3, 1e-3, 1e-2, 1e-2)
    with pytest.raises(InputError, match="protocol.stand_in"):
        lr("r3f")
    from childtuning.report import load_spec
    spec = load_spec("borrower")
    assert spec.protocol["stand_in"] == {"method": {"mixout": "vanilla", "child_tuning_d+mixout": "child_tuning_d"}}
    assert spec.protocol["search"] == "search" and spec.protocol["selection_from"] == "tuned"
    (experiments / "borrower.yaml").write_text(BORROWER.replace("stand_in: {method:", "stand_in: {task:"))
    with pytest.raises(InputError, match=r"stand_in names axes \['task'\]"):
        load_spec("borrower")


def test_search_seeds_must_differ_from_the_reported_ones(experiments, tmp_path):
    (experiments / "tuned.yaml").write_text(TUNED.replace("SEEDS", "0,1"))
    search_records(tmp_path / "results")
    with pytest.raises(InputError, match=r"uses seeds \[0\], which experiment tuned reports"):
        protocol.select("tuned", tmp_path / "results")


def test_an_incomplete_search_is_refused(experiments, tmp_path, capsys):
    search_records(tmp_path / "results", skip={("vanilla", 1e-2, "rte")})
    with pytest.raises(InputError, match="1 of 8 runs missing"):
        protocol.select("tuned", tmp_path / "results")
    assert protocol.main(["tuned", "--results", str(tmp_path / "results")]) == 2
    assert "runs missing" in capsys.readouterr().err
    doc = protocol.select("tuned", tmp_path / "results", allow_missing=True)
    assert doc["search"]["missing"] == 1


@pytest.mark.slow
def test_every_committed_protocol_is_well_formed():
    """Each experiment with a protocol names a rule that exists and a search on other seeds; each
    experiment borrowing a selection names one that has a protocol."""
    from functools import cache

    from childtuning.report import load_spec

    load_spec = cache(load_spec)         # several experiments name the same search or selection
    found = 0
    for name in available_experiments():
        spec = load_spec(name)
        if not spec.protocol:
            continue
        found += 1
        proto = spec.protocol
        if "selection_from" in proto:
            source = {k: v for k, v in load_spec(proto["selection_from"]).protocol.items() if k != "stand_in"}
            assert {k: v for k, v in proto.items() if k != "stand_in"} == {**source, "selection_from": proto["selection_from"]}
        search = load_spec(proto["search"])
        assert not set(search.expected["seed"]) & set(spec.expected["seed"]), name
        assert set(proto["select"]) <= set(search.extra), name
    assert found >= 4


@pytest.mark.slow
def test_a_hydra_sweep_reads_the_selection_in_its_worker_processes(experiments, tmp_path, synthetic_glue):
    """The confirmation sweep as users launch it (Hydra multirun, joblib workers): each job resolves
    ${selected:trainer.lr} to its own method's choice."""
    import os
    import subprocess
    import sys

    from helpers.paths import REPO

    results = tmp_path / "results"
    search_records(results)
    assert protocol.main(["tuned", "--results", str(results)]) == 0
    doc = json.loads((results / "tuned" / "selection.json").read_text())
    for c in doc["choices"]:                       # make the two methods' choices differ
        c["values"]["trainer.lr"] = {"vanilla": 0.002, "child_tuning_d": 0.003}[c["where"]["method"]]
    (results / "tuned" / "selection.json").write_text(json.dumps(doc))
    search_path = tmp_path / "searchpath"
    (search_path / "exp").mkdir(parents=True)
    (search_path / "exp" / "tuned.yaml").write_text((experiments / "tuned.yaml").read_text())
    command = [sys.executable, "-m", "childtuning.train", "-m", "exp=tuned", f"hydra.searchpath=[file://{search_path}]",
               "task=rte", "seed=1", f"paths.results={results}", f"paths.glue_dir={synthetic_glue}",
               f"paths.cache={tmp_path}/cache", "hydra/launcher=parallel"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stdout + out.stderr
    lrs = {json.loads(p.read_text())["method"]: json.loads(p.read_text())["hyperparameters"]["lr"]
           for p in (results / "tuned" / "runs").glob("*.json")}
    assert lrs == {"vanilla": 0.002, "child_tuning_d": 0.003}


@pytest.mark.slow
def test_prior_methods_cpu_shares_table1_cpu_tuneds_runs_and_tunes_the_rest_by_stand_in(tmp_path):
    """The committed files: with a selection in place, prior_methods_cpu's vanilla / Child-Tuning
    jobs have table1_cpu_tuned's run ids (so those runs are reused, not rerun), each prior method
    runs at vanilla's chosen rate and each combination at Child-Tuning_D's."""
    from childtuning.record import run_id
    from childtuning.report.spec import find_experiment_file

    chosen = {"vanilla": 1e-4, "child_tuning_f": 4e-4, "child_tuning_d": 8e-4}
    path = protocol.selection_path(tmp_path, "table1_cpu_tuned")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"select": ["trainer.lr"], "per": ["model", "method"], "choices": [
        {"where": {"model": "minilm", "method": m}, "values": {"trainer.lr": lr}} for m, lr in chosen.items()]}))

    def job(experiment, method):
        with composer(find_experiment_file(experiment)) as compose_with:
            cfg = compose_with(["task=mrpc", f"method={method}", "seed=3", f"paths.results={tmp_path}"])
        with open_dict(cfg):
            del cfg["hydra"]
        return validate(cfg)

    for method in chosen:
        prior, tuned = job("prior_methods_cpu", method), job("table1_cpu_tuned", method)
        assert run_id(prior) == run_id(tuned) and prior.trainer.lr == chosen[method]
    assert job("prior_methods_cpu", "mixout").trainer.lr == chosen["vanilla"]
    combo = job("prior_methods_cpu", "child_tuning_d+r3f")
    assert combo.trainer.lr == chosen["child_tuning_d"]
    from childtuning.methods import TaskInfo, build
    built = build(combo.method, 3, TaskInfo("mrpc", regression=False, num_labels=2))
    assert [p.cfg.warmup_ratio for p in built.parts.values()] == [None, None]     # vanilla's warm-up
