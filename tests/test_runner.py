"""The runner end to end: config -> data -> model -> method -> loop -> one JSON record."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import childtuning.train as train_mod
from childtuning.errors import InputError
from helpers.configs import compose_cfg as cfg_for
from helpers.glue import write_synthetic_glue
from helpers.paths import REAL_GLUE, REPO, requires_real_glue


def tiny(results, glue, *extra):
    return cfg_for("model=tiny_bert", "task=rte", "task.max_train_samples=24", "trainer.epochs=2",
                   "trainer.batch_size=8", "impl.progress_bar=false", f"paths.results={results}",
                   f"paths.glue_dir={glue}", f"paths.cache={results}/cache", *extra)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a run gets as far as building the tokenizer or the model."""
    def boom(*a, **k):
        raise AssertionError("bad input must fail before the model is loaded")
    monkeypatch.setattr(train_mod, "build_model", boom)
    monkeypatch.setattr(train_mod, "build_tokenizer", boom)


def records(results):
    return sorted(Path(results).glob("*/runs/*.json"))


# ---------------------------------------------------------------- bad input
@pytest.mark.slow
def test_unknown_group_option_lists_the_choices(tmp_path):
    out = subprocess.run([sys.executable, "-m", "childtuning.train", "model=bert_huge", f"paths.results={tmp_path}"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "bert_huge" in out.stderr and "minilm" in out.stderr   # Hydra names the available options
    assert not records(tmp_path)


@pytest.mark.parametrize("ratio", ["0", "1.5", "-0.2"])
def test_keep_ratio_outside_unit_interval(tmp_path, synthetic_glue, no_model, ratio):
    with pytest.raises(InputError, match=r"keep_ratio=.*outside \(0, 1\].*KEPT"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", f"method.keep_ratio={ratio}"))
    assert not records(tmp_path)


def test_eligible_pattern_that_is_not_a_regex(tmp_path, synthetic_glue, no_model):
    with pytest.raises(InputError, match=r"method.eligible.include has '\(', which is not a regex"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_f", "method.eligible.include=['(']"))
    assert not records(tmp_path)


def test_eligible_rule_matching_nothing_is_bad_input_not_a_failed_run(tmp_path, synthetic_glue):
    with pytest.raises(InputError, match=r"matches no trainable parameter of BertForSequenceClassification.*widen"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "method.eligible.include=[no_such_name]"))
    assert not records(tmp_path)


@pytest.mark.parametrize("overrides,message", [
    (["task.main_metric=f1"], r"main_metric 'f1' is not in metrics \['accuracy'\]"),
    (["task=stsb", "task.stratified_subsample=true"], r"stratified_subsample needs class labels"),
])
def test_a_bad_task_setting_names_the_task_file(tmp_path, synthetic_glue, no_model, overrides, message):
    with pytest.raises(InputError, match=r"^task (rte|stsb) \(conf/task/(rte|stsb).yaml\): " + message):
        train_mod.run(tiny(tmp_path, synthetic_glue, *overrides))
    assert not records(tmp_path)


@pytest.mark.slow
def test_keep_ratio_error_exits_2_from_the_command_line(tmp_path, synthetic_glue):
    out = subprocess.run([sys.executable, "-m", "childtuning.train", "model=tiny_bert", "method=child_tuning_f",
                          "method.keep_ratio=2", f"paths.glue_dir={synthetic_glue}", f"paths.results={tmp_path}"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "error: method.keep_ratio=2.0" in out.stderr and "Traceback" not in out.stderr


def test_unknown_config_key_is_an_error(tmp_path, synthetic_glue, no_model):
    with pytest.raises(InputError, match="trainer.learning_rate"):
        train_mod.run(tiny(tmp_path, synthetic_glue, "+trainer.learning_rate=1e-5"))


def test_missing_data_folder_names_path_and_fix(tmp_path, no_model):
    (tmp_path / "glue").mkdir()
    with pytest.raises(InputError, match=r"RTE does not exist.*GLUE_DIR"):
        train_mod.run(tiny(tmp_path, tmp_path / "glue"))
    assert not records(tmp_path)


def test_missing_data_file_names_path(tmp_path, synthetic_glue, no_model):
    (synthetic_glue / "RTE" / "dev.tsv").rename(synthetic_glue / "RTE" / "dev.bak")
    try:
        with pytest.raises(InputError, match=r"missing data file .*RTE/dev.tsv.*paths.glue_dir"):
            train_mod.run(tiny(tmp_path, synthetic_glue))
    finally:
        (synthetic_glue / "RTE" / "dev.bak").rename(synthetic_glue / "RTE" / "dev.tsv")


def write_rte(root, train_rows):
    folder = root / "RTE"
    folder.mkdir(parents=True)
    header = "index\tsentence1\tsentence2\tlabel\n"
    (folder / "train.tsv").write_text(header + "".join(r + "\n" for r in train_rows))
    (folder / "dev.tsv").write_text(header + "0\ta b\ta\tentailment\n1\tc d\te\tnot_entailment\n")
    return root


def test_malformed_row_names_file_and_line(tmp_path, no_model):
    glue = write_rte(tmp_path / "g", ["0\ta\tb\tentailment", "1\tonly two fields"])
    with pytest.raises(InputError, match=r"train.tsv:3: malformed row with 2 .*expected 4"):
        train_mod.run(tiny(tmp_path, glue))


def test_label_outside_label_set(tmp_path, no_model):
    glue = write_rte(tmp_path / "g", ["0\ta\tb\tentailment", "1\tc\td\tmaybe"])
    with pytest.raises(InputError, match=r"train.tsv:3: label 'maybe' is not one of .*entailment"):
        train_mod.run(tiny(tmp_path, glue))


def test_empty_training_set(tmp_path, no_model):
    glue = write_rte(tmp_path / "g", [])
    with pytest.raises(InputError, match="train set is empty"):
        train_mod.run(tiny(tmp_path, glue))
    with pytest.raises(InputError, match="max_train_samples=0"):
        train_mod.run(tiny(tmp_path, glue, "task.max_train_samples=0"))
    assert not records(tmp_path)


# ---------------------------------------------------------------- records, skip, determinism
@pytest.mark.slow
def test_run_id_covers_outcome_settings_only():
    from childtuning.record import run_id
    base = run_id(cfg_for("model=tiny_bert", "task=rte"))
    # where and how fast a run goes leaves its id alone: finished runs are found again
    assert run_id(cfg_for("model=tiny_bert", "task=rte", "impl.num_threads=1", "impl.device=cpu",
                          "paths.results=elsewhere", "experiment=other", "impl.progress_bar=false")) == base
    # anything that changes the numbers gives another id
    for override in ("trainer.lr=1e-4", "seed=2", "method=child_tuning_f", "task.max_train_samples=10",
                     "impl.precision=bf16", "impl.precision=fp16", "impl.packing=false", "impl.pad_to_multiple_of=8"):
        assert run_id(cfg_for("model=tiny_bert", "task=rte", override)) != base, override
    assert run_id(cfg_for("model=tiny_bert", "task=rte", "impl.precision=bf16")) != \
        run_id(cfg_for("model=tiny_bert", "task=rte", "impl.precision=fp16"))
    # where the data files are and whether to checkpoint do not change what a run computes
    assert run_id(cfg_for("model=tiny_bert", "task=rte", "task.local.folder=RTE_copy", "trainer.checkpoint=true",
                          "task.hub.path=someone/glue")) == base


@pytest.mark.slow
def test_a_methods_per_task_setting_changes_only_its_own_run_ids(tmp_path):
    """Changing Child-Tuning_D's RTE keep ratio leaves every vanilla and Child-Tuning_F id alone,
    on every task, and every D id on the other tasks; it changes D's RTE id."""
    import shutil
    from childtuning.record import run_id
    grid = [(m, t) for m in ("vanilla", "child_tuning_f", "child_tuning_d") for t in ("cola", "rte", "mrpc", "stsb")]
    conf = shutil.copytree(REPO / "conf", tmp_path / "conf", symlinks=True)
    ids = lambda: {(m, t): run_id(cfg_for("model=tiny_bert", f"task={t}", f"method={m}", config_dir=conf))  # noqa: E731
                   for m, t in grid}
    before = ids()
    # the edit as a user makes it: another keep ratio in conf/method_task/child_tuning_d_rte.yaml
    path = conf / "method_task" / "child_tuning_d_rte.yaml"
    path.write_text(path.read_text().replace("keep_ratio: 0.3", "keep_ratio: 0.25"))
    after = ids()
    changed = {k for k in grid if before[k] != after[k]}
    assert changed == {("child_tuning_d", "rte")}


@pytest.mark.slow
def test_record_is_complete_and_rerun_is_skipped(tmp_path, synthetic_glue, capsys):
    cfg = tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=unit")
    rec = train_mod.run(cfg)
    path = tmp_path / "unit" / "runs" / f"{rec['run_id']}.json"
    on_disk = json.loads(path.read_text())
    for key in ("schema_version", "run_id", "experiment", "model", "task", "method", "seed", "status", "metrics",
                "main_metric", "history", "train_seconds", "config", "versions", "device", "data", "method_stats",
                "hyperparameters", "best_epoch", "steps"):
        assert key in on_disk, key
    assert on_disk["experiment"] == "unit" and on_disk["method"] == "child_tuning_d"
    assert on_disk["status"] in ("ok", "degenerate") and len(on_disk["history"]) == 2
    assert on_disk["main_metric"]["value"] == on_disk["history"][-1]["metrics"]["accuracy"]   # last epoch
    stats = on_disk["method_stats"]
    assert 0.25 < stats["kept_fraction_of_eligible"] < 0.35 and stats["kept_fraction_per_layer"]
    mask = np.load(tmp_path / "unit" / "artifacts" / rec["run_id"] / "child_mask.npz")
    assert np.unpackbits(mask["bits"]).sum() == stats["kept_params"]
    mtime = path.stat().st_mtime_ns
    capsys.readouterr()
    again = train_mod.run(cfg)
    assert "skip" in capsys.readouterr().out and again == on_disk and path.stat().st_mtime_ns == mtime
    forced = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=unit", "force=true"))
    assert forced["metrics"] == on_disk["metrics"]           # determinism: same run twice, same metrics
    assert [h["metrics"] for h in forced["history"]] == [h["metrics"] for h in on_disk["history"]]


@pytest.mark.slow
def test_same_seed_same_data_order_across_methods(tmp_path, synthetic_glue, monkeypatch):
    seen = {}
    real_batches = train_mod.data.BatchLoader.batches       # what iterating a loader (and the loop) calls

    def spy(self, skip=0):
        for batch in real_batches(self, skip):
            if self.batch_size == 8 and self.generator is not None:
                seen.setdefault(current[0], []).append(batch["input_ids"].sum().item())
            yield batch
    monkeypatch.setattr(train_mod.data.BatchLoader, "batches", spy)
    current = [None]
    for m in ("vanilla", "child_tuning_f", "child_tuning_d"):
        current[0] = m
        train_mod.run(tiny(tmp_path, synthetic_glue, f"method={m}"))
    # D's Fisher pass draws its own order (also batch size 8) before training; compare the training batches
    assert seen["vanilla"] == seen["child_tuning_f"] == seen["child_tuning_d"][-len(seen["vanilla"]):]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_xlnet", "tiny_roberta", "tiny_electra"])
def test_other_architectures_run_child_tuning(tmp_path, synthetic_glue, model):
    for method in ("child_tuning_d", "child_tuning_f"):
        rec = train_mod.run(cfg_for(f"model={model}", "task=mrpc", "task.max_train_samples=16", "trainer.epochs=1",
                                    "trainer.batch_size=8", f"method={method}", "impl.progress_bar=false",
                                    f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}",
                                    f"paths.cache={tmp_path}/cache"))
        assert rec["status"] in ("ok", "degenerate"), rec["reason"]


def test_regression_task_runs(tmp_path, synthetic_glue):
    rec = train_mod.run(cfg_for("model=tiny_bert", "task=stsb", "task.max_train_samples=16", "trainer.epochs=1",
                                "impl.progress_bar=false", f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}"))
    assert set(rec["metrics"]) == {"pearson", "spearman"} and rec["status"] in ("ok", "degenerate")


def learning_cola(results, glue, *extra):
    """The smallest tiny-model run found whose dev predictions change from epoch to epoch.

    Why it learns: a synthetic CoLA sentence is unacceptable exactly when it holds one of a few
    tokens ("the", "a", "is", "are", "of") that acceptable sentences never contain, so one token
    detector solves it (RTE's and MRPC's word overlap needs a comparison across the two sentences,
    which the tiny model does not find in a few epochs). With 160 examples, batch 8 and lr 1e-2
    (60 steps), seeds 1-4 go from one class in epoch 1 to MCC 51-92 in epoch 2 and 64-100 in
    epoch 3; with 40 examples, or the paper's lr 4e-5, every epoch predicts one class."""
    return cfg_for("model=tiny_bert", "task=cola", "trainer.epochs=3", "trainer.batch_size=8", "trainer.lr=1e-2",
                   "seed=1", "impl.progress_bar=false", f"paths.results={results}", f"paths.glue_dir={glue}",
                   f"paths.cache={results}/cache", *extra)


@pytest.mark.slow
def test_checkpointed_run_resumes_with_identical_result(tmp_path, monkeypatch):
    glue = write_synthetic_glue(tmp_path / "glue", tasks=("CoLA",), n_train=160)
    base = ("method=child_tuning_f", "trainer.checkpoint=true")
    full = train_mod.run(learning_cola(tmp_path / "a", glue, *base))
    # the run learns, so a resumed run that drew other batches or other dropout would score differently
    mcc = [h["metrics"]["matthews_corrcoef"] for h in full["history"]]
    assert len(set(mcc)) == 3 and mcc[-1] > 50 and full["history"][-1]["degenerate"] is None, full["history"]
    real_evaluate = train_mod.train.__globals__["evaluate"]
    calls = []

    def preempt(*a, **k):                                   # killed during epoch 2's evaluation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)
    monkeypatch.setitem(train_mod.train.__globals__, "evaluate", preempt)
    with pytest.raises(KeyboardInterrupt):
        train_mod.run(learning_cola(tmp_path / "b", glue, *base))
    assert not records(tmp_path / "b") and list((tmp_path / "b").glob("*/checkpoints/*.pt"))
    monkeypatch.setitem(train_mod.train.__globals__, "evaluate", real_evaluate)
    resumed = train_mod.run(learning_cola(tmp_path / "b", glue, *base))
    # epoch 1 comes from the checkpoint, epochs 2-3 were trained again: the same per-epoch training
    # loss, step count and dev metrics, to the bit
    assert [(h["epoch"], h["step"], h["train_loss"]) for h in resumed["history"]] == \
        [(h["epoch"], h["step"], h["train_loss"]) for h in full["history"]]
    assert [h["metrics"] for h in resumed["history"]] == [h["metrics"] for h in full["history"]]
    assert resumed["history"] == full["history"] and resumed["metrics"] == full["metrics"]
    assert not list((tmp_path / "b").glob("*/checkpoints/*.pt"))
    # the record says it went on from a checkpoint, and where; an uninterrupted run says none
    assert full["resumed_from_checkpoint"] == []
    assert resumed["resumed_from_checkpoint"] == [{"step": 20, "where": "after epoch 1"}]


@requires_real_glue("RTE")
def test_real_minilm_run_on_real_rte(tmp_path):
    rec = train_mod.run(cfg_for("model=minilm", "task=rte", "method=child_tuning_d", "task.max_train_samples=32",
                                "trainer.epochs=1", "impl.progress_bar=false", f"paths.results={tmp_path}",
                                f"paths.glue_dir={REAL_GLUE}"))
    assert rec["data"]["dev"]["size"] == 277 and rec["data"]["train"]["size"] == 32
    assert rec["status"] in ("ok", "degenerate") and 0 <= rec["main_metric"]["value"] <= 100
    assert rec["method_stats"]["eligible_tensors"] == 6 * 16      # MiniLM: 6 layers x 16 `layer` tensors


def test_model_config_overrides_reach_a_pretrained_model():
    # benchmarks/packing.py switches dropout off this way; it was once applied to tiny models only
    from childtuning.models import build_model, build_tokenizer

    cfg = cfg_for("model=minilm", "+model.config.hidden_dropout_prob=0.0",
                  "+model.config.attention_probs_dropout_prob=0.0")
    model = build_model(cfg.model, 2, False, build_tokenizer(cfg.model, [], None))
    assert model.config.hidden_dropout_prob == 0.0 and model.config.attention_probs_dropout_prob == 0.0
    assert model.bert.encoder.layer[0].output.dropout.p == 0.0
    default = build_model(cfg_for("model=minilm").model, 2, False, build_tokenizer(cfg.model, [], None))
    assert default.config.hidden_dropout_prob == 0.1


@pytest.mark.slow
def test_a_run_recorded_by_another_experiment_is_reused_not_rerun(tmp_path, synthetic_glue, monkeypatch, capsys):
    first = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=first"))

    def boom(*a, **k):
        raise AssertionError("a reused run must not train")
    monkeypatch.setattr(train_mod, "build_model", boom)
    second = train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=second"))
    assert "reuse " in capsys.readouterr().out
    assert second["reused_from"]["experiment"] == "first" and second["experiment"] == "second"
    # the copy's checksum covers its own experiment and reused_from
    assert {k: v for k, v in second.items() if k not in ("reused_from", "experiment", "checksum")} == \
        {k: v for k, v in first.items() if k not in ("experiment", "checksum")}
    rid = first["run_id"]
    assert (tmp_path / "second" / "artifacts" / rid / "child_mask.npz").is_file()
    assert json.loads((tmp_path / "second" / "runs" / f"{rid}.json").read_text()) == second
    with pytest.raises(AssertionError, match="must not train"):     # reuse=false trains it again
        train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d", "experiment=third", "reuse=false"))


@pytest.mark.slow
def test_reused_artifacts_are_links_that_a_rerun_never_writes_through(tmp_path, synthetic_glue):
    """The reused saved model is hard-linked, not copied; force=true in the reusing experiment
    writes new files and leaves the first experiment's byte for byte as they were."""
    import hashlib

    run = lambda *extra: train_mod.run(tiny(tmp_path, synthetic_glue, "method=child_tuning_d",  # noqa: E731
                                            "trainer.save_model=true", *extra))
    first = run("experiment=first")
    rid = first["run_id"]
    src, dst = tmp_path / "first" / "artifacts" / rid, tmp_path / "second" / "artifacts" / rid
    before = {p.relative_to(src): hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob("*") if p.is_file()}
    assert "model/model.safetensors" in {p.as_posix() for p in before}
    run("experiment=second")
    for rel in before:
        assert (dst / rel).stat().st_ino == (src / rel).stat().st_ino          # one file on disk, two names
    rerun = run("experiment=second", "force=true", "reuse=false")
    assert rerun["run_id"] == rid and "reused_from" not in rerun
    for rel, digest in before.items():
        assert hashlib.sha256((src / rel).read_bytes()).hexdigest() == digest  # the first experiment's files stand
        assert (dst / rel).stat().st_ino != (src / rel).stat().st_ino          # written anew, not through the link
