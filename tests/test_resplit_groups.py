"""Resplits that keep related examples on one side: whole groups (e.g. an MNLI premise and its
hypotheses) go to train or to dev, never both; every resplit task of conf/task is checked."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from childtuning import data
from childtuning.config import load_task_config
from childtuning.errors import InputError
from childtuning.readers import Split
from childtuning.subsets import grouped_indices, resplit

from helpers.paths import REAL_GLUE, REPO, has_real_glue

TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))


def premise_pool(n_premises: int = 40) -> Split:
    """Three hypotheses per premise, one per label (as MNLI writes them), plus a few lone pairs."""
    texts, labels = [], []
    for p in range(n_premises):
        for label in range(3):
            texts.append((f"premise {p}", f"hypothesis {p}.{label}"))
            labels.append(label)
    texts += [("lone premise", "h"), ("other premise", "h")]
    return Split(texts, labels + [0, 1], "synthetic")


def test_grouped_indices_take_whole_groups_to_the_exact_size():
    groups = ["a"] * 3 + ["b"] * 2 + ["c"] * 3 + ["d"]
    for seed in range(5):
        chosen = grouped_indices(groups, 4, torch.Generator().manual_seed(seed))
        assert chosen is not None and len(chosen) == 4 and chosen == sorted(chosen)
        taken = Counter(groups[i] for i in chosen)
        assert all(taken[g] == groups.count(g) for g in taken)          # whole groups only
    assert grouped_indices(["a", "a", "b", "b"], 3, torch.Generator().manual_seed(0)) is None   # no exact draw


def test_a_grouped_resplit_shares_no_group_and_a_pair_level_one_does():
    pool = premise_pool()
    train, dev = resplit(pool, 60, seed=0, group_field=0, group_name="premise")
    assert len(train) == 60 and len(dev) == len(pool) - 60
    assert not {t[0] for t in train.texts} & {t[0] for t in dev.texts}
    assert "whole premise groups" in train.source
    again, _ = resplit(pool, 60, seed=0, group_field=0, group_name="premise")
    assert again.texts == train.texts                                      # seeded: the same cut
    flat, flat_dev = resplit(pool, 60, seed=0)                            # label-stratified pairs: leaks
    assert {t[0] for t in flat.texts} & {t[0] for t in flat_dev.texts}


def test_a_size_no_whole_groups_reach_is_refused():
    with pytest.raises(InputError, match="whole premise groups"):
        resplit(Split([("p", "a"), ("p", "b"), ("q", "a"), ("q", "b")], [0, 1, 0, 1], "x"), 3, 0, "t", 0, "premise")


def test_the_group_must_be_a_text_field(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    task = OmegaConf.load(REPO / "conf" / "task" / "mnli_m_dev_split.yaml")
    task.resplit.group = "title"
    OmegaConf.save(task, folder / "mnli_m_dev_split.yaml")
    with pytest.raises(InputError, match=r"resplit.group='title' must be one of its text_fields"):
        load_task_config("mnli_m_dev_split", config_dir=tmp_path)


@pytest.mark.parametrize("name", [t for t in TASKS if OmegaConf.load(REPO / "conf" / "task" / f"{t}.yaml").get("resplit")])
def test_every_resplit_task_of_pairs_groups_by_its_first_text(name):
    """A resplit of sentence pairs declares a group: without one, related pairs fall on both sides."""
    task = load_task_config(name)
    if len(task.text_fields) > 1:
        assert task.resplit.group == task.text_fields[0], \
            f"conf/task/{name}.yaml: resplit of pairs without resplit.group: {task.text_fields[0]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_no_resplit_task_shares_a_premise_between_train_and_dev(name):
    """On the real files: train and dev of every resplit task share no first text (0 allowed)."""
    task = load_task_config(name)
    if task.resplit is None:
        pytest.skip(f"{name} reads train and dev from their own files (no resplit)")
    if not has_real_glue(task.local.folder):
        pytest.skip(f"no real data for {task.local.folder} under {REAL_GLUE} (set GLUE_DIR)")
    splits = data.load_task(task, str(REAL_GLUE))
    train = {t[0] for t in splits["train"].texts}
    shared = [t for t in splits["dev"].texts if t[0] in train]
    assert not shared, f"{name}: {len(shared)} of {len(splits['dev'])} dev examples share their first text with train"


def test_a_null_group_keeps_the_run_ids_of_the_resplits_made_before_groups_existed():
    """task.resplit.group is `added_later` inside a nested schema: null (the first resplits' pairs)
    hashes as before the key existed, a group gives another run id."""
    from childtuning.config import compose, validate
    from childtuning.record import run_id

    cfg = validate(compose("task=mnli_m_dev_split", "method=child_tuning_d", "seed=1"))
    grouped = run_id(cfg)
    cfg.task.resplit.group = None
    pairs = run_id(cfg)
    before = OmegaConf.to_container(cfg, resolve=True)
    del before["task"]["resplit"]["group"]                     # a config written before the key existed
    assert run_id(before) == pairs != grouped
