"""Evaluation targets: other tasks' splits a model is scored on, through a label map, each score
its own record.

A target is "task:split" (e.g. "sick:dev") or {task, split, label_map}, where label_map is
`by_name`, a map name from the target's task file (e.g. QQP's `literal`) or an explicit
{source label: target label}. Targets are evaluation, not training: they never enter a run's id.
A run that declares targets scores its final model (eval mode) on each after its last epoch; a
target added later is scored from the run's kept model (`python -m childtuning.evaluate`, or a
relaunch of the sweep), with no training step. Each score is a target record,
<results>/<experiment>/targets/<run_id>.<task>-<split>.<map digest>.json, keyed by the run, the
target split and the label map; it holds the metrics, size, data fingerprint, the map used, the
prediction histogram and the score of always predicting the target's most frequent label. The
in-domain dev score stays in the run record as the run's main metric.
"""
from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from . import data, readers, target_records
from . import metrics as metrics_lib
from .errors import InputError
from .target_records import missing  # noqa: F401 (used as targets.missing by the runner)
from .label_maps import LabelMapping, check_target



def parse(spec) -> tuple[str, str, object]:
    """(task, split, label-map choice) of one `targets` entry."""
    if isinstance(spec, str):
        task, _, split = spec.partition(":")
        return task, split or "dev", None
    if isinstance(spec, Mapping) and "task" in spec and set(spec) <= {"task", "split", "label_map"}:
        return str(spec["task"]), str(spec.get("split") or "dev"), spec.get("label_map")
    raise InputError(f"targets entry {spec!r}: write \"task:split\" (e.g. sick:dev) or "
                     "{task: ..., split: ..., label_map: ...}")


# The run's own training examples that its training subset leaves out (subsets.held_out): a
# target "<the run's task>:heldout", scored without a label map, for choosing settings on data no
# table reports (childtuning/protocol.py).
HELDOUT = readers.HELDOUT
IDENTITY = {"name": "identity", "pairs": {}}      # the held-out split's predictions are the task's own


def check(source_task, task: str, split: str, choice):
    """(target task config, its LabelMapping or None for the run's own held-out examples)."""
    if split != HELDOUT:
        return check_target(source_task, task, split, choice)
    if task != source_task.name:
        raise InputError(f"target {task}:{HELDOUT}: only the run's own task has held-out training examples "
                         f"(this run trains on {source_task.name}: write {source_task.name}:{HELDOUT})")
    if choice not in (None, IDENTITY["name"]) and choice != {}:
        raise InputError(f"target {task}:{HELDOUT} is scored as the task itself: give it no label_map")
    return source_task, None


def resolve(source_task, specs) -> list[dict]:
    """The checked, explicit form of `targets` (what the record holds): each entry's task, split
    and the label pairs it will use. Raises InputError before any data is read."""
    out, seen = [], set()
    for spec in specs or []:
        task, split, choice = parse(spec)
        if (task, split) in seen:
            raise InputError(f"targets: {task}:{split} is listed twice")
        seen.add((task, split))
        _, mapping = check(source_task, task, split, choice)
        out.append({"task": task, "split": split, "label_map": mapping.as_record() if mapping else dict(IDENTITY)})
    return out


@dataclass
class Target:
    name: str                 # "task:split"
    task: object              # the target's task config
    mapping: LabelMapping | None      # None: the run's own task (held out), no map
    split: data.Split
    label_map: dict           # the resolved map as validate() wrote it (name and pairs), for the record

    @property
    def entry(self) -> dict:
        """The resolved `targets` entry this target was read from (what keys its record)."""
        return {"task": self.task.name, "split": self.name.split(":", 1)[1], "label_map": self.label_map}


def load(cfg, entries=None) -> list[Target]:
    """Read every target split of a validated run config (cheap; before the model loads), or only
    those of `entries` (resolved entries of cfg.targets)."""
    targets = []
    for entry in cfg.targets if entries is None else entries:
        held = entry["split"] == HELDOUT
        task_cfg, mapping = check(cfg.task, entry["task"], entry["split"],
                                  None if held else dict(entry["label_map"]["pairs"]))
        if held:
            split = data.held_out(data.load_task(cfg.task, cfg.paths.glue_dir, ["train"])["train"], cfg.task, cfg.seed)
        else:
            split = data.load_task(task_cfg, cfg.paths.glue_dir, [entry["split"]])[entry["split"]]
        if len(split) == 0:
            raise InputError(f"target {entry['task']}:{entry['split']} is empty ({split.source})")
        targets.append(Target(f"{entry['task']}:{entry['split']}", task_cfg, mapping, split,
                              OmegaConf.to_container(entry["label_map"]) if OmegaConf.is_config(entry["label_map"])
                              else dict(entry["label_map"])))
    return targets


def majority_scores(task, labels: list) -> dict | None:
    """The target's metrics when every example gets its most frequent label (ties: the first
    label); None for a regression task (a constant prediction has no correlation)."""
    if task.regression:
        return None
    counts = Counter(labels)
    top = max(range(len(task.labels)), key=lambda c: (counts.get(c, 0), -c))
    return metrics_lib.compute(list(task.metrics), np.full(len(labels), top), np.asarray(labels))


def in_loader_order(target: Target, loader, labels, values: list) -> list:
    """`values` (one per example of the target split, in file order) in the order the loader gave
    the predictions (evaluation batches are sorted by length), checked against the gold labels."""
    order = loader.source_index
    if len(order) != len(values) or [target.split.labels[i] for i in order] != [int(y) for y in labels]:
        raise RuntimeError(f"target {target.name}: the predictions do not line up with the split's examples "
                           "(the breakdown needs each prediction's example); please report this")
    return [values[i] for i in order]


def score(model, target: Target, loader, device, autocast, predict) -> dict:
    """One target's scores: metrics of the mapped predictions, the prediction histogram, the
    majority-class baseline, whether the predictions are degenerate, and the seconds spent."""
    started = time.perf_counter()
    regression = bool(target.task.regression)
    preds, labels = predict(model, loader, device, autocast, regression, False)
    mapped = np.asarray(preds if target.mapping is None else target.mapping.apply(preds))
    scores = metrics_lib.compute(list(target.task.metrics), mapped, labels)
    summary = metrics_lib.prediction_summary(mapped, labels, regression, target.task.labels)
    breakdown = getattr(target.task, "breakdown", None)
    if breakdown is not None and breakdown.column in target.split.extra:     # e.g. SICK by relatedness_score
        values = in_loader_order(target, loader, labels, target.split.extra[breakdown.column])
        summary["by_bin"] = metrics_lib.by_bin(mapped, labels, values, breakdown.column, list(breakdown.edges),
                                               list(target.task.labels))
    return {"metrics": scores,
            "predictions": summary,
            "majority_class": majority_scores(target.task, list(target.split.labels)),
            "degenerate": metrics_lib.degenerate_reason(mapped, regression, scores),
            "seconds": time.perf_counter() - started}


def write(results, run: dict, target: Target, scored: dict, model_from: str, device) -> dict:
    """Write the target record of `run` (its run record) on `target`, from `score`'s result."""
    import torch

    device_info = {"type": device.type, "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                   "threads": torch.get_num_threads(), "host": socket.gethostname()}
    return target_records.write(results, run, target.entry, {
        "predictions": scored["predictions"], "near_constant": scored["predictions"]["near_constant"],
        "metrics": scored["metrics"], "main_metric": target.task.main_metric, "reason": scored["degenerate"],
        "majority_class": scored["majority_class"], "size": len(target.split), "dropped": target.split.dropped,
        "source": target.split.source, "fingerprint": data.fingerprint(target.split), "model_from": model_from,
        "seconds": scored["seconds"], "device": device_info})
