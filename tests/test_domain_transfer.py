"""Evaluation targets in a run and the domain-transfer table (tiny model, synthetic GLUE folders)."""
import json

import numpy as np
import pytest

import childtuning.train as train_mod
from childtuning.errors import InputError
from childtuning.report import aggregate
from helpers.configs import MRPC_MAP, compose_cfg, tiny_rte_cfg
from helpers.notebooks import run_notebook
from helpers.records import read_target_records


@pytest.mark.slow
def test_a_run_scores_each_target_into_its_own_record_and_keeps_the_in_domain_metric_main(tmp_path, synthetic_glue):
    rec = train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", f"targets=[{MRPC_MAP},rte:dev]"))
    assert "targets" not in rec and rec["main_metric"]["value"] == rec["metrics"]["accuracy"]   # in-domain stays main
    found = read_target_records(tmp_path)
    assert list(found) == ["mrpc:dev", "rte:dev"]
    own = found["rte:dev"]                    # the same model on its own dev split, mapped by name
    assert own["metrics"] == rec["metrics"] and own["target"]["label_map"]["name"] == "by_name"
    assert own["predictions"] == rec["predictions"]["dev"] and own["source_run"] == rec["run_id"]
    mrpc = found["mrpc:dev"]
    assert mrpc["size"] == 24 and mrpc["target"]["label_map"] == {"name": "explicit",
                                                                 "pairs": {"entailment": "1", "not_entailment": "0"}}
    assert set(mrpc["metrics"]) == {"f1", "accuracy"} and mrpc["main_metric"]["name"] == "f1"
    assert set(mrpc["majority_class"]) == {"f1", "accuracy"} and len(mrpc["fingerprint"]) == 16
    assert sum(mrpc["predictions"]["counts"].values()) == 24 and mrpc["model_from"] == "end of run"
    assert rec["artifacts"]["model"]["files"]         # a run with targets keeps its model by default


def test_targets_stay_out_of_the_run_id(tmp_path, synthetic_glue):
    from childtuning.config import validate
    from childtuning.record import run_id
    ids = {run_id(validate(tiny_rte_cfg(tmp_path, synthetic_glue, *extra))) for extra in
           [(), ("targets=[rte:dev]",), (f"targets=[{MRPC_MAP}]",),
            ("targets=[{task: mrpc, split: dev, label_map: {entailment: '0', not_entailment: '1'}}]",)]}
    assert len(ids) == 1


def learning_cola(results, glue, *extra):
    """A tiny CoLA run that learns (tests/test_runner.py says why), so its predictions vary."""
    return compose_cfg("model=tiny_bert", "task=cola", "method=child_tuning_f", "trainer.epochs=3",
                       "trainer.batch_size=8", "trainer.lr=1e-2", "impl.progress_bar=false", f"paths.results={results}", f"paths.glue_dir={glue}",
                       f"paths.cache={results}/cache", "experiment=dt", *extra)


def target_files(results, experiment="dt") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / experiment / "targets").glob("*.json"))]


@pytest.mark.slow
def test_a_target_added_later_is_scored_by_the_command_from_the_kept_model_without_training(tmp_path, monkeypatch):
    """Declared up front, or added after the run and scored by childtuning.evaluate: the same
    scores, and no training step when it is added later."""
    from childtuning import evaluate
    from helpers.glue import write_synthetic_glue

    glue = write_synthetic_glue(tmp_path / "glue", tasks=("CoLA", "MRPC"), n_train=160)
    upfront, later = tmp_path / "upfront", tmp_path / "later"
    train_mod.run(learning_cola(upfront, glue, "targets=[cola:dev,mrpc:dev]"))
    first = train_mod.run(learning_cola(later, glue, "targets=[cola:dev]"))
    assert not first["near_constant"]                       # it learnt: a wrong model would score otherwise
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("a kept model needs no training"))
    args = ["model=tiny_bert", "task=cola", "method=child_tuning_f", "trainer.epochs=3", "trainer.batch_size=8",
            "trainer.lr=1e-2", f"paths.results={later}", f"paths.glue_dir={glue}", f"paths.cache={later}/cache", "experiment=dt",
            "targets=[cola:dev,mrpc:dev]"]
    assert evaluate.main(args) == 0
    mine, reference = read_target_records(later), read_target_records(upfront)
    assert sorted(mine) == ["cola:dev", "mrpc:dev"] and "kept model dt/" in mine["mrpc:dev"]["model_from"]
    assert mine["cola:dev"]["metrics"] == first["metrics"]
    for name in mine:
        assert mine[name]["metrics"] == reference[name]["metrics"], name
        assert mine[name]["predictions"] == reference[name]["predictions"], name
    assert evaluate.main(args) == 0 and len(target_files(later)) == 2        # nothing left to score


@pytest.mark.slow
def test_a_relaunch_with_one_more_target_scores_it_without_training(tmp_path, synthetic_glue, monkeypatch):
    first = train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", "targets=[rte:dev]"))
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("a kept model needs no training"))
    again = train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", f"targets=[rte:dev,{MRPC_MAP}]"))
    assert again == first
    scored = read_target_records(tmp_path)
    assert sorted(scored) == ["mrpc:dev", "rte:dev"] and scored["rte:dev"]["model_from"] == "end of run"
    assert scored["mrpc:dev"]["model_from"].startswith("kept model dt/")


def test_evaluate_refuses_a_run_without_a_kept_model_naming_the_fix(tmp_path, synthetic_glue, capsys):
    from childtuning import evaluate

    train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", "trainer.save_model=false", "targets=[rte:dev]"))
    args = ["model=tiny_bert", "task=rte", "task.max_train_samples=24", "trainer.epochs=1", "trainer.batch_size=8",
            f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}", "experiment=dt", "trainer.save_model=false",
            f"targets=[rte:dev,{MRPC_MAP}]"]
    assert evaluate.main(args) == 2
    assert "saved no model" in capsys.readouterr().err and len(read_target_records(tmp_path)) == 1


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
        train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, f"targets={targets}"))
    assert not list(tmp_path.glob("*/runs/*.json"))


@pytest.mark.slow
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
            train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", f"targets=[{MRPC_MAP},rte:dev]",
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
    # the confusion counts, summed over both seeds: every MRPC dev example once per seed, the right ones as in f1's accuracy
    from childtuning.report.domain_transfer import confusion, long_frame
    from childtuning.report.frames import load_records
    counts = confusion(long_frame(load_records("dt", tmp_path)[0]))
    mrpc = counts[(counts["target"] == "mrpc:dev") & (counts["method"] == "vanilla")].set_index("gold")
    assert (mrpc["seeds"] == 2).all() and int(mrpc[["0", "1"]].to_numpy().sum()) == 48
    right = int(mrpc.loc["0", "0"] + mrpc.loc["1", "1"])
    accuracy = cells[(cells["target"] == "mrpc:dev") & (cells["method"] == "vanilla")]
    scored = [json.loads(p.read_text()) for p in (tmp_path / "dt" / "targets").glob("*mrpc-dev*")
              if ".vanilla." in p.name]
    assert right == round(sum(r["metrics"]["accuracy"] for r in scored) * 24 / 100) and len(accuracy) == 1
    assert "## Predictions by gold label" in md and "| predicted 0 | predicted 1 |" in md
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

    from childtuning import SCHEMA_VERSION, comparisons, target_records
    rng, runs = random.Random(0), results / experiment / "runs"
    runs.mkdir(parents=True)
    (results / experiment / "targets").mkdir()
    for method in ("vanilla", "child_tuning_d"):
        for seed in (1, 2, 3):
            acc = 60 + rng.random() * 5 + (2 if method == "child_tuning_d" else 0)
            rid = f"tiny_bert.rte.{method}.s{seed}.000000000{seed}"
            record = {"schema_version": SCHEMA_VERSION, "run_id": rid, "experiment": experiment, "model": "tiny_bert",
                      "task": "rte", "method": method, "seed": seed, "status": "ok", "reason": None,
                      "metrics": {"accuracy": acc}, "main_metric": {"name": "accuracy", "value": acc},
                      "history": [{"epoch": 1, "metrics": {"accuracy": acc}, "train_loss": 0.5, "degenerate": None}],
                      "train_seconds": 10.0, "started_at": "2026-01-01T00:00:00+00:00",
                      "finished_at": "2026-01-01T00:00:20+00:00",
                      "config": {"task": {"main_metric": "accuracy"}},
                      "comparisons_digest": comparisons.digest(None)}      # NB_EXPERIMENT declares the defaults
            (runs / f"{rid}.json").write_text(json.dumps(record))
            for name in ("snli:dev", "sick:test"):
                task, split = name.split(":")
                entry = {"task": task, "split": split, "label_map": {"name": "by_name", "pairs": {}}}
                right = rng.randrange(20, 40)         # sick:test keeps confusion counts, snli:dev does not
                by_label = {"entailment": {"entailment": right, "neutral": 40 - right},
                            "neutral": {"entailment": 50, "neutral": 10}}
                low = {"entailment": {"entailment": 0, "neutral": 0}, "neutral": {"entailment": 10, "neutral": 10}}
                high = {"entailment": {"entailment": right, "neutral": 40 - right},
                        "neutral": {"entailment": 40, "neutral": 0}}
                predictions = {"by_label": by_label, "by_bin": {"column": "relatedness_score", "edges": [1, 3, 5],
                                                                "bins": {"[1, 3)": low, "[3, 5]": high}, "outside": 0}} \
                    if task == "sick" else None
                made = target_records.build(record, entry, {
                    "metrics": {"accuracy": acc - 10 + rng.random()}, "main_metric": "accuracy", "reason": None,
                    "predictions": predictions, "near_constant": None, "majority_class": {"accuracy": 50.0}, "size": 100,
                    "dropped": 0, "source": "synthetic", "fingerprint": "0" * 16, "model_from": "end of run",
                    "seconds": 2.0, "device": None})
                (results / experiment / "targets" / f"{made['run_id']}.json").write_text(json.dumps(made))


@pytest.mark.slow
def test_notebook_runs_on_domain_transfer_records(tmp_path, monkeypatch):
    results, spec = tmp_path / "results", tmp_path / "dt_nb.yaml"
    spec.write_text(NB_EXPERIMENT)
    write_synthetic_transfer(results)
    text, images = run_notebook("domain_transfer", monkeypatch, experiment="dt_nb", results=results, experiment_file=spec)
    assert "domain transfer" in text and "sick:test" in text and "target_share" in text
    assert "% predicted entailment" in text and "83.3" in text       # neutral's row: 150 of 180 called entailment
    assert "relatedness_score" in text and "[1, 3)" in text            # the counts by bin of the breakdown column
    assert len(images) >= 2


@pytest.mark.slow
def test_the_transfer_table_breaks_a_targets_counts_down_by_its_bins(tmp_path):
    results, spec = tmp_path / "results", tmp_path / "dt_nb.yaml"
    spec.write_text(NB_EXPERIMENT)
    write_synthetic_transfer(results)
    aggregate("dt_nb", results, spec)
    md = (results / "dt_nb" / "table.md").read_text()
    assert "## Predictions by gold label" in md and "### sick:test by relatedness_score" in md
    assert "snli:dev" not in md.split("## Predictions by gold label")[1].split("## Compute")[0]   # it keeps none
    # neutral pairs in the low bin: 10 of 20 per seed called entailment, summed over 3 seeds
    assert "| tiny_bert | rte | vanilla | 3 | [1, 3) | neutral | 60 | 30 (50.0%) | 30 (50.0%) |" in md
    assert "| tiny_bert | rte | vanilla | 3 | [3, 5] | neutral | 120 | 120 (100.0%) | 0 (0.0%) |" in md
    assert "6 run × target score(s) come from target records made before" in md


@pytest.mark.slow
def test_the_held_out_target_scores_the_training_examples_outside_the_subset(tmp_path, synthetic_glue):
    """A tuning protocol's search scores candidates on `<task>:heldout`: the run's own training
    file less its training subset (no label map; regression too), never on the dev set."""
    from childtuning import data
    from childtuning.config import validate

    rec = train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", "targets=[rte:heldout]"))
    held = read_target_records(tmp_path)["rte:heldout"]
    assert held["size"] == 40 - 24 and held["target"]["label_map"] == {"name": "identity", "pairs": {}}
    assert "not in this run's 24-example subset" in held["source"]
    cfg = validate(tiny_rte_cfg(tmp_path, synthetic_glue))
    train = data.load_task(cfg.task, cfg.paths.glue_dir, ["train"])["train"]
    used = set(data.training_subset(train, cfg.task, cfg.seed).texts)
    outside = data.held_out(train, cfg.task, cfg.seed)
    assert len(outside) == 16 and not used & set(outside.texts) and held["fingerprint"] == data.fingerprint(outside)
    stsb = train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", "task=stsb", "targets=[stsb:heldout]"))
    reg = read_target_records(tmp_path)["stsb:heldout"]
    assert set(reg["metrics"]) == {"pearson", "spearman"} and "std" in reg["predictions"] and stsb["status"]
    assert rec["status"] in ("ok", "degenerate")


@pytest.mark.parametrize("extra, message", [
    (("targets=[mrpc:heldout]",), "only the run's own task has held-out training examples"),
    (("targets=[rte:heldout]", "task.max_train_samples=null"), "needs a run that trains on a subset"),
])
def test_a_held_out_target_is_refused_where_there_is_none(tmp_path, synthetic_glue, extra, message):
    with pytest.raises(InputError, match=message):
        train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=dt", *extra))


def test_pre_flight_finds_a_held_out_targets_data_in_the_training_file(tmp_path, synthetic_glue):
    from childtuning.config import validate
    from childtuning.preflight import data_problems

    assert data_problems(validate(tiny_rte_cfg(tmp_path, synthetic_glue, "targets=[rte:heldout]"))) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    problems = data_problems(validate(tiny_rte_cfg(tmp_path, empty, "targets=[rte:heldout]")))
    assert problems and all("RTE/train.tsv" in p or "RTE/dev.tsv" in p for p in problems)


@pytest.mark.slow
def test_a_one_off_run_with_targets_shows_them_in_its_table(tmp_path, synthetic_glue):
    """Runs with targets outside a transfer experiment (experiment=<name> on the command line, the
    table inferred) list their target scores rather than dropping them."""
    from childtuning.report import aggregate

    for seed in (1, 2):
        train_mod.run(tiny_rte_cfg(tmp_path, synthetic_glue, "experiment=oneoff", f"targets=[rte:dev,{MRPC_MAP}]", f"seed={seed}"))
    aggregate("oneoff", tmp_path)
    md = (tmp_path / "oneoff" / "table.md").read_text()
    section = md.split("## Evaluation targets", 1)[1].split("## ", 1)[0]
    assert "| tiny_bert | vanilla | rte | rte:dev | accuracy |" in section
    assert "| tiny_bert | vanilla | rte | mrpc:dev | f1 |" in section and "(2/2)" in section
    assert section.index("rte:dev") < section.index("mrpc:dev")            # the declared order


# ---------------------------------------------------------------- a target's breakdown column (SICK's relatedness)
SICK_HEADER = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"


def test_a_task_breakdown_column_is_read_and_checked(tmp_path):
    from childtuning import readers
    from childtuning.tasks import load_task_config
    sick = load_task_config("sick")
    assert sick.breakdown.column == "relatedness_score" and list(sick.breakdown.edges) == [1, 2, 3, 4, 5]
    (tmp_path / "SICK").mkdir()
    rows = ["1\tA man walks.\tA man is walking.\t4.6\tENTAILMENT", "2\tA dog runs.\tA cat sleeps.\t1.2\tNEUTRAL"]
    (tmp_path / "SICK" / "test.tsv").write_text(SICK_HEADER + "\r\n".join(rows) + "\r\n")
    split = readers.read_local_split(sick, tmp_path / "SICK", "test")
    assert split.extra == {"relatedness_score": [4.6, 1.2]} and split.labels == [0, 1]
    (tmp_path / "SICK" / "test.tsv").write_text(SICK_HEADER + rows[0].replace("4.6", "high") + "\n")
    with pytest.raises(InputError, match=r"relatedness_score='high' is not a number"):
        readers.read_local_split(sick, tmp_path / "SICK", "test")


@pytest.mark.parametrize("breakdown, message", [
    ({"column": "relatedness_score", "edges": [3, 1]}, "strictly ascending"),
    ({"column": "relatedness", "edges": [1, 5]}, "breakdown.column='relatedness' is not in local.columns")])
def test_a_bad_breakdown_is_refused_naming_the_fix(breakdown, message):
    from omegaconf import OmegaConf

    from childtuning.tasks import check_task, load_task_config
    sick = load_task_config("sick")
    bad = OmegaConf.merge(sick, {"breakdown": breakdown})
    with pytest.raises(InputError, match=message):
        check_task(bad)


def test_a_targets_breakdown_lines_each_prediction_up_with_its_example():
    """Evaluation batches are sorted by length, so predictions come out of file order: the breakdown
    puts each one in its own example's bin, and refuses predictions that do not line up."""
    from childtuning import data, targets
    from childtuning.readers import Split
    from childtuning.tasks import load_task_config

    sick = load_task_config("sick")
    labels, values = [0, 1, 2, 1, 1, 0], [4.5, 1.1, 3.2, 2.5, 1.9, 4.9]
    lengths = [9, 3, 7, 5, 2, 8]                        # sorted by length: examples 4, 1, 3, 2, 5, 0
    features = [{"input_ids": list(range(n)), "labels": y} for n, y in zip(lengths, labels)]
    loader = data.BatchLoader(features, 4, collate=lambda batch: batch, by_length=True)
    assert loader.source_index == [4, 1, 3, 2, 5, 0]
    target = targets.Target("sick:test", sick, None, Split([("a", "b")] * 6, labels, "synthetic", 0,
                                                           {"relatedness_score": values}), {})

    def predict(model, loader_, *_):                    # the gold label back as the prediction, in loader order
        gold = [f["labels"] for batch in loader_ for f in batch]
        return np.array(gold), np.array(gold)
    scored = targets.score(None, target, loader, "cpu", None, predict)
    bins = scored["predictions"]["by_bin"]["bins"]
    per_bin = {name: {g: row[g] for g, row in by_label.items() if row[g]} for name, by_label in bins.items()}
    assert per_bin == {"[1, 2)": {"neutral": 2}, "[2, 3)": {"neutral": 1}, "[3, 4)": {"contradiction": 1},
                       "[4, 5]": {"entailment": 2}}

    def shuffled(model, loader_, *_):                   # predictions in some other order: refused
        gold = [f["labels"] for batch in loader_ for f in batch][::-1]
        return np.array(gold), np.array(gold)
    with pytest.raises(RuntimeError, match="do not line up"):
        targets.score(None, target, loader, "cpu", None, shuffled)
