"""Probe records (childtuning/probe) into a DataFrame: one row per readable record of
`<results>/<experiment>/probes/`, unreadable files named, not dropped silently."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..integrity import problem
from ..probe.records import REQUIRED, probes_dir
from .frames import device_label, flag, score, timestamp

PROBE_COLUMNS = ["run_id", "file", "model", "method", "seed", "source_run_id", "source_task", "task", "head_seed",
                 "status", "reason", "metric", "value", "history", "train_seconds", "feature_seconds", "seconds",
                 "device", "started_at", "finished_at", "near_constant"]


def parse(path: Path) -> dict:
    """One probe record as a flat row; raises ValueError saying why it cannot be used."""
    record = json.loads(path.read_text(encoding="utf-8"))
    reason = problem(record, path, REQUIRED, own_id=False)     # as run records are checked
    if reason:
        raise ValueError(reason)
    if not isinstance(record["head_seed"], int) or not (record["seed"] is None or isinstance(record["seed"], int)):
        raise ValueError(f"head_seed {record['head_seed']!r} / seed {record['seed']!r} is not an integer")
    main = record["main_metric"] if isinstance(record["main_metric"], dict) else {}
    source = record["source"] if isinstance(record["source"], dict) else {}
    features = record.get("features") or {}
    started, finished = timestamp(record.get("started_at")), timestamp(record.get("finished_at"))
    return {"run_id": str(record["run_id"]), "file": path.name, "model": str(record["model"]),
            "method": str(record["method"]), "seed": record["seed"], "source_run_id": source.get("run_id"),
            "source_task": record.get("source_task"), "task": str(record["task"]), "head_seed": record["head_seed"],
            "status": str(record["status"]), "reason": record.get("reason"), "metric": main.get("name") or "",
            "value": score(main.get("value")), "history": record.get("history") or [],
            "train_seconds": score(record.get("train_seconds")),
            # extraction time, shared by the head seeds of one encoder and target (counted once in Compute)
            "feature_seconds": sum(score(f.get("seconds")) for f in features.values()
                                   if isinstance(f, dict) and not f.get("cached")),
            "seconds": (finished - started).total_seconds() if started and finished else float("nan"),
            "device": device_label(record.get("device")),
            "started_at": record.get("started_at"), "finished_at": record.get("finished_at"),
            "near_constant": flag(record.get("near_constant"))}    # None: made before probes kept the flag


def load_probes(experiment: str, results: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """All readable probe records of `experiment` (one row each, sorted) and a message per skipped file."""
    rows, skipped = [], []
    folder = probes_dir(results, experiment)
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    for path in paths:
        try:
            rows.append(parse(path))
        except (OSError, ValueError) as e:
            skipped.append(f"probes/{path.name}: {e}")
    frame = pd.DataFrame(rows, columns=PROBE_COLUMNS)
    frame["seed"] = frame["seed"].astype("Int64")            # the pretrained reference has none
    frame["head_seed"] = frame["head_seed"].astype("int64")
    for c in ("value", "train_seconds", "feature_seconds", "seconds"):
        frame[c] = frame[c].astype("float64")
    order = ["model", "method", "seed", "task", "head_seed", "run_id"]
    return frame.sort_values(order, kind="stable", na_position="first").reset_index(drop=True), skipped
