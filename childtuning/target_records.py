"""Target records: one JSON file per (run, target split, label map), written atomically, read
without torch (the aggregator reads them). childtuning/targets.py scores them."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from . import SCHEMA_VERSION, integrity
from .record import TARGETS, versions, write_atomic

KIND = "target"
# What a target record must hold (integrity.problem checks it).
REQUIRED = ("schema_version", "kind", "run_id", "source_run", "experiment", "target", "status", "metrics",
            "main_metric", "size", "fingerprint")


def entry_id(entry) -> str:
    """The file-name key of one resolved target entry: "<task>-<split>.<digest of its label pairs>"."""
    pairs = json.dumps(dict(entry["label_map"]["pairs"]), sort_keys=True)
    return f"{entry['task']}-{entry['split']}.{hashlib.sha256(pairs.encode()).hexdigest()[:8]}"


def record_path(results, experiment: str, rid: str, entry) -> Path:
    """Where the target record of run `rid` on target `entry` lives."""
    return Path(results) / experiment / TARGETS / f"{rid}.{entry_id(entry)}.json"


def read(path: Path) -> tuple[dict | None, str | None]:
    """(record, None) for a sound target record, (None, reason) for a corrupt one, (None, None) if absent."""
    record, reason = integrity.read(path, required=REQUIRED, own_id=False)
    if record is not None and path.stem != record["run_id"]:
        return None, f"the file is named {path.name} but holds target record {record['run_id']} (renamed or foreign)"
    return record, reason


def missing(results, experiment: str, rid: str, entries) -> list:
    """The resolved target entries of run `rid` that have no sound target record yet."""
    return [e for e in entries if read(record_path(results, experiment, rid, e))[0] is None]


def build(run: dict, entry, scores: dict) -> dict:
    """The target record of `run` (its run record) on target `entry`: `scores` holds metrics,
    main_metric (its name), reason (why degenerate, or None), predictions, near_constant,
    majority_class, size, dropped, source, fingerprint, model_from, seconds and device."""
    entry = {"task": entry["task"], "split": entry["split"],
             "label_map": {"name": entry["label_map"]["name"], "pairs": dict(entry["label_map"]["pairs"])}}
    main = scores["main_metric"]
    status = run["status"] if run["status"] != "ok" else ("degenerate" if scores["reason"] else "ok")
    return {"schema_version": SCHEMA_VERSION, "kind": KIND, "run_id": f"{run['run_id']}.{entry_id(entry)}",
            "source_run": run["run_id"], "experiment": run["experiment"], "model": run["model"],
            "task": run["task"], "method": run["method"], "seed": run["seed"], "target": entry,
            "status": status, **scores, "main_metric": {"name": main, "value": scores["metrics"][main]},
            "versions": versions(), "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write(results, run: dict, entry, scores: dict) -> dict:
    """Write the target record of `run` on `entry` atomically; returns it as written."""
    return write_atomic(record_path(results, run["experiment"], run["run_id"], entry), build(run, entry, scores))


def load_records(results, experiment: str) -> tuple[dict[str, list[dict]], list[str]]:
    """Every sound target record of `experiment`, by source run id (in file-name order), and a
    message per corrupt file (never counted)."""
    folder = Path(results) / experiment / TARGETS
    by_run, skipped = {}, []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        record, reason = read(path)
        if record is None:
            skipped.append(f"{TARGETS}/{path.name}: {reason}")
        else:
            by_run.setdefault(record["source_run"], []).append(record)
    return by_run, skipped
