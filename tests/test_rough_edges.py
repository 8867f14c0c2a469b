"""Small things that cost a newcomer time (issue 29, item 9): the load report of a pretrained encoder,
Hydra's empty train.log, wandb's folder, user scratch under results/, a training-set cap above the
set, and the aggregator without an experiment."""
import json
import shutil
import subprocess

import pytest
from omegaconf import OmegaConf

from childtuning.models import build_model
from helpers.commands import launch
from helpers.configs import compose_cfg
from helpers.paths import REPO


def encoder_cfg(path):
    return OmegaConf.create({"name": "tiny_saved", "source": "hub", "pretrained": str(path), "architecture": "bert",
                             "padding_side": "right", "tokenizer": None, "config": {}})


def test_a_pretrained_encoder_missing_only_its_new_head_says_so_in_one_line(tmp_path, capsys):
    import logging

    from transformers import BertConfig, BertForMaskedLM, BertModel

    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(tmp_path / "encoder")      # an encoder with its pooler: only the head is new
    BertForMaskedLM(config).save_pretrained(tmp_path / "mlm")     # no pooler, and a language-model head to drop
    reports = []                                                  # what transformers' logger passes to its handlers
    handler = logging.Handler()
    handler.emit = lambda record: reports.append(record.getMessage())
    logging.getLogger("transformers.modeling_utils").addHandler(handler)
    try:
        capsys.readouterr()
        build_model(encoder_cfg(tmp_path / "encoder"), 2, False, None)
        assert not reports and ("model tiny_saved: new classification head (classifier.bias, classifier.weight) "
                                "initialised from the run's seed; the checkpoint has none, as expected") in capsys.readouterr().out
        build_model(encoder_cfg(tmp_path / "mlm"), 2, False, None)
        assert len(reports) == 1 and "LOAD REPORT" in reports[0] and "bert.pooler.dense.weight" in reports[0]
        assert "new classification head" not in capsys.readouterr().out
    finally:
        logging.getLogger("transformers.modeling_utils").removeHandler(handler)


@pytest.mark.slow
def test_a_single_run_writes_no_empty_train_log(tmp_path, synthetic_glue):
    out = launch("exp=smoke", "trainer.epochs=1", f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}",
                 f"paths.cache={tmp_path}/cache")
    assert out.returncode == 0, out.stderr
    folders = list((tmp_path / "smoke" / "hydra").iterdir())
    assert len(folders) == 1 and (folders[0] / ".hydra" / "config.yaml").is_file()
    assert not list(folders[0].glob("*.log"))


@pytest.mark.slow
def test_a_training_set_cap_above_the_set_is_refused_and_leaves_nothing(tmp_path, synthetic_glue):
    out = launch("exp=smoke", "task.max_train_samples=41", f"paths.results={tmp_path}", f"paths.glue_dir={synthetic_glue}",
                 f"paths.cache={tmp_path}/cache")
    assert out.returncode == 2, out.stdout + out.stderr
    assert ("task rte: task.max_train_samples=41 is more than the 40 examples of its training set "
            f"({synthetic_glue}/RTE/train.tsv); use at most 40, or null for the whole set") in out.stderr
    assert not list(tmp_path.glob("smoke/runs/*.json")) and not (tmp_path / "smoke" / "hydra").exists()


def test_wandb_writes_under_the_experiments_results_folder(tmp_path, monkeypatch):
    import wandb

    from childtuning.logger import Logger

    seen = {}
    monkeypatch.setattr(wandb, "init", lambda **kwargs: seen.update(kwargs))
    cfg = compose_cfg("logger=wandb", "experiment=mine", f"paths.results={tmp_path}")
    Logger(cfg.logger, "run", {})
    assert seen["dir"] == f"{tmp_path}/mine" and (tmp_path / "mine").is_dir()


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_user_scratch_under_results_is_ignored_and_committed_studies_are_not():
    def ignored(*paths):
        out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
        return set(out.stdout.split())

    scratch = ["results/smoke/runs/a.json", "results/mine/runs/a.json", "results/default/runs/a.json",
               "results/table1_cpu/wandb/offline-run-1/run.wandb"]
    assert ignored(*scratch) == set(scratch)
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert tracked and not ignored(*tracked)
    assert not ignored("results/demo/runs/minilm.mrpc.vanilla.s1.0123456789.json", "results/demo/table.md")


def test_the_aggregator_without_an_experiment_lists_what_it_can_aggregate(tmp_path, capsys):
    from childtuning.report.cli import main

    (tmp_path / "mine" / "runs").mkdir(parents=True)
    (tmp_path / "mine" / "runs" / "r.json").write_text(json.dumps({}))
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    assert main(["--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"experiments with run records under {tmp_path}" in out and "  mine (1 record(s))" in out
    assert "empty" not in out and "declared in experiments/ with no records there yet" in out and "table1_cpu" in out
