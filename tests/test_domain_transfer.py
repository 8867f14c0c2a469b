"""Evaluation targets in a run and the domain-transfer table (tiny model, synthetic GLUE folders)."""
import json

import pytest

import childtuning.train as train_mod
from childtuning.errors import InputError
from childtuning.report import aggregate
from conftest import compose_cfg, run_notebook

MRPC_MAP = "{task: mrpc, split: dev, label_map: {entailment: '1', not_entailment: '0'}}"


def tiny(tmp_path, glue, *extra):
    return compose_cfg("model=tiny_bert", "task=rte", "task.max_train_samples=24", "trainer.epochs=1",
                       "trainer.batch_size=8", "impl.progress_bar=false", f"paths.results={tmp_path}",
                       f"paths.glue_dir={glue}", f"paths.cache={tmp_path}/cache", *extra)


def test_a_run_scores_each_target_and_keeps_the_in_domain_metric_main(tmp_path, synthetic_glue):
    rec = train_mod.run(tiny(tmp_path, synthetic_glue, "experiment=dt", f"targets=[{MRPC_MAP},rte:dev]"))
    assert list(rec["targets"]) == ["mrpc:dev", "rte:dev"] and rec["target_seconds"] > 0
    own = rec["targets"]["rte:dev"]          # the same model on its own dev split, mapped by name
    assert own["metrics"] == rec["metrics"] and own["label_map"]["name"] == "by_name"
    assert rec["main_metric"]["value"] == rec["metrics"]["accuracy"]          # the in-domain score stays main
    mrpc = rec["targets"]["mrpc:dev"]
    assert mrpc["size"] == 24 and mrpc["label_map"] == {"name": "explicit", "pairs": {"entailment": "1", "not_entailment": "0"}}
    assert set(mrpc["metrics"]) == {"f1", "accuracy"} and mrpc["main_metric"] == "f1"
    assert set(mrpc["majority_class"]) == {"f1", "accuracy"} and len(mrpc["fingerprint"]) == 16
    on_disk = json.loads((tmp_path / "dt" / "runs" / f"{rec['run_id']}.json").read_text())
    assert on_disk["targets"] == rec["targets"]


def test_targets_enter_the_run_id_with_their_label_pairs(tmp_path, synthetic_glue):
    from childtuning.config import validate
    from childtuning.record import run_id
    ids = {run_id(validate(tiny(tmp_path, synthetic_glue, *extra))) for extra in
           [(), ("targets=[rte:dev]",), (f"targets=[{MRPC_MAP}]",),
            ("targets=[{task: mrpc, split: dev, label_map: {entailment: '0', not_entailment: '1'}}]",)]}
    assert len(ids) == 4


@pytest.mark.parametrize("targets, message", [
    ("[nope:dev]", "unknown task 'nope'"),
    ("[rte:test_b]", "no split 'test_b'"),
    ("[stsb:dev]", "regression task"),
    ("[mrpc:dev]", r"maps to \['entailment', 'not_entailment'\], which mrpc's labels"),
    ("[{task: mrpc, label_map: {entailment: '1', not_entailment: '1'}}]", r"no prediction can become mrpc's \['0'\]"),
    ("[{task: mrpc, label_map: {yes: '1', not_entailment: '0'}}]", r"maps from \['yes'\]"),
    ("[rte:dev,rte:dev]", "listed twice"),
])
def test_bad_targets_are_refused_before_any_model_loads(tmp_path, synthetic_glue, monkeypatch, targets, message):
    monkeypatch.setattr(train_mod, "build_model", lambda *a, **k: pytest.fail("must fail before the model loads"))
    with pytest.raises(InputError, match=message):
        train_mod.run(tiny(tmp_path, synthetic_glue, f"targets={targets}"))
    assert not list(tmp_path.glob("*/runs/*.json"))


def test_the_transfer_table_from_records(tmp_path, synthetic_glue):
    spec = tmp_path / "dt.yaml"
    spec.write_text("""# @package _global_
defaults:
  - override /model: tiny_bert
experiment: dt
task: {max_train_samples: 24}
trainer: {epochs: 1, batch_size: 8}
targets: [%s, rte:dev]
hydra:
  sweeper:
    params:
      method: vanilla,child_tuning_f
      seed: 1,2
table:
  kind: transfer
  rows: [model, method]
  columns: target
  baseline: vanilla
  caption: "a test: tiny random model, synthetic data"
""" % MRPC_MAP)
    for method in ("vanilla", "child_tuning_f"):
        for seed in (1, 2):
            train_mod.run(tiny(tmp_path, synthetic_glue, "experiment=dt", f"targets=[{MRPC_MAP},rte:dev]",
                               f"method={method}", f"seed={seed}"))
    cells = aggregate("dt", tmp_path, spec)
    assert set(cells["target"]) == {"in-domain (dev)", "mrpc:dev", "rte:dev"} and len(cells) == 6
    assert (cells["n"] == 2).all() and cells.loc[cells["method"] == "vanilla", "delta_vs_baseline"].isna().all()
    own = cells[cells["target"] == "rte:dev"].set_index("method")["mean"]
    indomain = cells[cells["target"] == "in-domain (dev)"].set_index("method")["mean"]
    assert own.to_dict() == indomain.to_dict()          # the same split scored twice
    md = (tmp_path / "dt" / "table.md").read_text()
    assert "## tiny_bert, trained on rte" in md and "majority class" in md and "a test: tiny random model" in md
    assert "Target evaluation" in md and (tmp_path / "dt" / "plots" / "rte.png").is_file()
    assert (tmp_path / "dt" / "table.tex").read_text().count("\\begin{tabular}") == 1


# ---------------------------------------------------------------- the notebook, on synthetic records
NB_EXPERIMENT = """# @package _global_
defaults:
  - override /model: tiny_bert
experiment: dt_nb
hydra:
  sweeper:
    params:
      method: vanilla,child_tuning_d
      seed: 1,2,3
table:
  kind: transfer
  rows: [model, method]
  columns: target
  baseline: vanilla
"""


def write_synthetic_transfer(results, experiment="dt_nb"):
    """Records of a transfer sweep (rte source, two targets) with made-up scores, in the runner's format."""
    import random

    from childtuning import SCHEMA_VERSION, comparisons
    rng, runs = random.Random(0), results / experiment / "runs"
    runs.mkdir(parents=True)
    for method in ("vanilla", "child_tuning_d"):
        for seed in (1, 2, 3):
            acc = 60 + rng.random() * 5 + (2 if method == "child_tuning_d" else 0)
            targets = {name: {"task": name.split(":")[0], "split": "dev", "metrics": {"accuracy": acc - 10 + rng.random()},
                              "main_metric": "accuracy", "size": 100, "majority_class": {"accuracy": 50.0},
                              "degenerate": None, "label_map": {"name": "by_name", "pairs": {}}}
                       for name in ("snli:dev", "sick:test")}
            rid = f"tiny_bert.rte.{method}.s{seed}.000000000{seed}"
            record = {"schema_version": SCHEMA_VERSION, "run_id": rid, "experiment": experiment, "model": "tiny_bert",
                      "task": "rte", "method": method, "seed": seed, "status": "ok", "reason": None,
                      "metrics": {"accuracy": acc}, "main_metric": {"name": "accuracy", "value": acc},
                      "history": [{"epoch": 1, "metrics": {"accuracy": acc}, "train_loss": 0.5, "degenerate": None}],
                      "train_seconds": 10.0, "started_at": "2026-01-01T00:00:00+00:00",
                      "finished_at": "2026-01-01T00:00:20+00:00", "targets": targets, "target_seconds": 4.0,
                      "config": {"task": {"main_metric": "accuracy"}},
                      "comparisons_digest": comparisons.digest(None)}      # NB_EXPERIMENT declares the defaults
            (runs / f"{rid}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_notebook_runs_on_domain_transfer_records(tmp_path, monkeypatch):
    results, spec = tmp_path / "results", tmp_path / "dt_nb.yaml"
    spec.write_text(NB_EXPERIMENT)
    write_synthetic_transfer(results)
    text, images = run_notebook("domain_transfer", monkeypatch, experiment="dt_nb", results=results, experiment_file=spec)
    assert "domain transfer" in text and "sick:test" in text and "target_share" in text
    assert len(images) >= 2
