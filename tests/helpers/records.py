"""Hand-made run records and the files beside them (target records, saved child networks) for the
aggregator's tests, and the small experiment file `unit` they belong to."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import yaml

from childtuning import SCHEMA_VERSION, comparisons, target_records
from helpers.paths import REPO

UNIT_EXPERIMENT_YAML = """\
# @package _global_
defaults:
  - override /model: tiny_bert
experiment: unit
hydra:
  sweeper:
    params:
      task: rte,mrpc
      method: vanilla,child_tuning_d
      seed: range(1,4)
table:
  rows: [model, method]
  columns: task
  metric: main
  statistic: mean
  baseline: vanilla
  paper:
    source: "made up for a test"
    values: {tiny_bert: {vanilla: {rte: 69.5, mrpc: null}}}
"""
# Each task's main metric, as conf/task/<task>.yaml names it.
MAIN_METRIC = {"cola": "matthews_corrcoef", "rte": "accuracy", "mrpc": "f1", "stsb": "pearson"}


def unit_record(task, method, seed, value, status="ok", model="tiny_bert"):
    """A run record of experiment `unit` with the fields the aggregator reads (and a few it does not)."""
    metric = MAIN_METRIC[task]
    return {"schema_version": SCHEMA_VERSION, "run_id": f"{model}.{task}.{method}.s{seed}.0000000000", "experiment": "unit",
            "model": model, "task": task, "method": method, "seed": seed, "status": status,
            "reason": None if status == "ok" else status,
            "metrics": {} if value is None else {metric: value},
            "main_metric": {"name": metric, "value": value, "checkpoint": "last epoch (paper protocol)"},
            "best_epoch": None, "history": [{"epoch": 1, "step": 4, "metrics": {metric: value}, "train_loss": 0.7,
                                             "degenerate": None}],
            "steps": 4, "train_seconds": 1.0, "method_stats": {}, "config": {"task": {"main_metric": metric}},
            "comparisons_digest": comparisons.digest(None)}    # UNIT_EXPERIMENT_YAML declares no block: the defaults


def write_runs(results, *records, experiment="unit"):
    """Write `records` where the runner writes them; returns the runs folder."""
    runs = Path(results) / experiment / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for r in records:
        (runs / f"{r['run_id']}.json").write_text(json.dumps(r, allow_nan=True))
    return runs


def cell(frame, task, method):
    """The one row of the aggregated `frame` for (task, method)."""
    rows = frame[(frame["task"] == task) & (frame["method"] == method)]
    assert len(rows) == 1
    return rows.iloc[0]


def declared_digest(experiment: str) -> str:
    """The digest of experiments/<experiment>.yaml's own table.comparisons block: what a run made
    under that declaration carries (hand-made records stamp it to count as made after it)."""
    text = yaml.safe_load((REPO / "experiments" / f"{experiment}.yaml").read_text(encoding="utf-8"))
    return comparisons.digest(((text or {}).get("table") or {}).get("comparisons"))


def write_targets(results, experiment: str, run: dict, targets: dict) -> None:
    """Target records (childtuning/target_records.py) of the hand-made run record `run`: `targets`
    maps "task:split" to {main_metric, metrics[, near_constant, majority_class]}."""
    folder = Path(results) / experiment / "targets"
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in targets.items():
        task, _, split = name.partition(":")
        entry = {"task": task, "split": split or "dev", "label_map": {"name": "by_name", "pairs": {}}}
        made = target_records.build(run, entry, {
            "metrics": t["metrics"], "main_metric": t["main_metric"], "reason": None, "predictions": None,
            "near_constant": t.get("near_constant"), "majority_class": t.get("majority_class"), "size": 10,
            "dropped": 0, "source": "synthetic", "fingerprint": "0" * 16, "model_from": "end of run",
            "seconds": t.get("seconds"), "device": None})
        (folder / f"{made['run_id']}.json").write_text(json.dumps(made, allow_nan=True))


def read_target_records(results, experiment="dt") -> dict:
    """The target records under <results>/<experiment>/targets, by "task:split"."""
    out = {}
    for path in sorted((results / experiment / "targets").glob("*.json")):
        record = json.loads(path.read_text())
        out[f"{record['target']['task']}:{record['target']['split']}"] = record
    return out


# The eligible weights of a saved child network: 20 + 12 of them.
MASK_NAMES = ["bert.encoder.layer.0.attention.weight", "bert.encoder.layer.1.output.weight"]
MASK_SHAPES = [(4, 5), (2, 6)]


def mask_record(results, task, seed, mask: np.ndarray, keep=0.5, size=100, experiment="ov"):
    """A Child-Tuning_D record with a saved child network (as the runner saves it)."""
    rid = f"tiny_bert.{task}.child_tuning_d.s{seed}.0000000000"
    folder = Path(results) / experiment / "artifacts" / rid
    folder.mkdir(parents=True, exist_ok=True)
    bits = np.packbits(mask)
    np.savez_compressed(folder / "child_mask.npz", bits=bits, names=np.array(MASK_NAMES),
                        shapes=np.array([str(s) for s in MASK_SHAPES]), keep_ratio=keep, selection="top")
    rec = unit_record(task, "child_tuning_d", seed, None)
    rec.update(run_id=rid, experiment=experiment, artifacts={"child_mask": "child_mask.npz"},
               data={"train": {"size": size}},
               method_params={"selection": "top", "eligible": {"include": ["layer"]}, "keep_ratio": keep},
               method_stats={"keep_ratio": keep, "selection": "top",
                             "child_mask_sha256": hashlib.sha256(bits.tobytes()).hexdigest()})
    write_runs(results, rec, experiment=experiment)
    return rid
