"""Evaluation targets: other tasks' splits a run scores its final model on, through a label map.

A run trains on its own task and, after the last epoch, evaluates the final model (eval mode) on
each target in `targets`: "task:split" (e.g. "sick:dev"), or {task, split, label_map} where
label_map is `by_name`, a map name from the target's task file (e.g. QQP's `literal`) or an
explicit {source label: target label}. The in-domain dev score stays the run's main metric; each
target is one entry of the record's `targets`, with its metrics, size, data fingerprint, the
mapping used and the score of always predicting the target's most frequent label.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from . import data
from . import metrics as metrics_lib
from .errors import InputError
from .transfer import LabelMapping, check_target


def parse(spec) -> tuple[str, str, object]:
    """(task, split, label-map choice) of one `targets` entry."""
    if isinstance(spec, str):
        task, _, split = spec.partition(":")
        return task, split or "dev", None
    if isinstance(spec, Mapping) and "task" in spec and set(spec) <= {"task", "split", "label_map"}:
        return str(spec["task"]), str(spec.get("split") or "dev"), spec.get("label_map")
    raise InputError(f"targets entry {spec!r}: write \"task:split\" (e.g. sick:dev) or "
                     "{task: ..., split: ..., label_map: ...}")


def resolve(source_task, specs) -> list[dict]:
    """The checked, explicit form of `targets` (what the run id and the record hold): each entry's
    task, split and the label pairs it will use. Raises InputError before any data is read."""
    out, seen = [], set()
    for spec in specs or []:
        task, split, choice = parse(spec)
        if (task, split) in seen:
            raise InputError(f"targets: {task}:{split} is listed twice")
        seen.add((task, split))
        _, mapping = check_target(source_task, task, split, choice)
        out.append({"task": task, "split": split, "label_map": mapping.as_record()})
    return out


@dataclass
class Target:
    name: str                 # "task:split"
    task: object              # the target's task config
    mapping: LabelMapping
    split: data.Split
    label_map: dict           # the resolved map as validate() wrote it (name and pairs), for the record


def load(cfg) -> list[Target]:
    """Read every target split of a validated run config (cheap; before the model loads)."""
    targets = []
    for entry in cfg.targets:
        task_cfg, mapping = check_target(cfg.task, entry["task"], entry["split"], dict(entry["label_map"]["pairs"]))
        split = data.load_task(task_cfg, cfg.paths.glue_dir, [entry["split"]])[entry["split"]]
        if len(split) == 0:
            raise InputError(f"target {entry['task']}:{entry['split']} is empty ({split.source})")
        targets.append(Target(f"{entry['task']}:{entry['split']}", task_cfg, mapping, split,
                              OmegaConf.to_container(entry["label_map"]) if OmegaConf.is_config(entry["label_map"])
                              else dict(entry["label_map"])))
    return targets


def majority_scores(task, labels: list) -> dict:
    """The target's metrics when every example gets its most frequent label (ties: the first label)."""
    counts = Counter(labels)
    top = max(range(len(task.labels)), key=lambda c: (counts.get(c, 0), -c))
    return metrics_lib.compute(list(task.metrics), np.full(len(labels), top), np.asarray(labels))


def evaluate(model, targets: list[Target], loaders: list, device, autocast, predict) -> tuple[dict, float]:
    """Each target's record entry, and the seconds spent. `loaders`: each target's evaluation
    batches (as the dev set's); `predict`: the loop's prediction function (eval mode)."""
    started, out = time.perf_counter(), {}
    for t, loader in zip(targets, loaders):
        preds, labels = predict(model, loader, device, autocast, False, False)
        mapped = np.asarray(t.mapping.apply(preds))
        scores = metrics_lib.compute(list(t.task.metrics), mapped, labels)
        out[t.name] = {"task": t.task.name, "split": t.name.split(":", 1)[1], "metrics": scores,
                       "main_metric": t.task.main_metric, "size": len(t.split), "dropped": t.split.dropped,
                       "source": t.split.source, "fingerprint": data.fingerprint(t.split),
                       "label_map": t.label_map,
                       "majority_class": majority_scores(t.task, list(t.split.labels)),
                       "degenerate": metrics_lib.degenerate_reason(mapped, False, scores)}
    return out, time.perf_counter() - started
