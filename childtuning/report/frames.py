"""Run records into a DataFrame: one row per sound record; corrupt files named with the reason, never counted."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import comparisons, integrity, target_records
from ..record import runs_dir
from ..sweep import axis_value
from .text import UNKNOWN

RECORD_COLUMNS = ["run_id", "file", "model", "task", "method", "seed", "status", "reason", "metric", "value",
                  "history", "method_stats", "train_loss", "seconds", "device", "started_at", "finished_at",
                  "targets", "target_seconds", "train_seconds", "prepare_seconds", "resumed", "near_constant",
                  "comparisons_digest", "last_at"]
# Time stamps have whole seconds: a run is taken as resumed only when its measured parts exceed
# its stamps by more than this.
STAMP_SLACK_S = 1.5


def score(value) -> float:
    """A record's score as a float; NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def flag(value) -> bool | None:
    """A record's true/false flag; None when it is absent (or not a boolean)."""
    return value if isinstance(value, bool) else None


def config_value(record: dict, dotted: str):
    """The value at a dotted path (e.g. trainer.lr) of the record's resolved config; None if absent."""
    node = record.get("config") or {}
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def timestamp(value) -> datetime | None:
    """An ISO time stamp; one without a time zone is taken as UTC (the runner writes UTC)."""
    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def device_label(device) -> str:
    """e.g. "cpu, 1 thread" or "cuda NVIDIA H100, bf16"; "?" when the record does not say."""
    if not isinstance(device, dict) or not device.get("type"):
        return UNKNOWN
    if device["type"] == "cpu":
        threads = device.get("threads")
        return f"cpu, {threads} thread{'s' if threads != 1 else ''}" if threads else "cpu"
    return f"{device['type']} {device.get('name', '')}, {device.get('precision', '?')}".replace(" ,", ",")


def parse(path: Path, metric: str, extra: list[str]) -> dict:
    """One record file as a flat row; raises ValueError saying why it cannot be used."""
    record, reason = integrity.read(path)     # parse, required keys, schema, checksum, run id
    if record is None:
        raise ValueError(reason or "the file vanished while it was read")
    if not isinstance(record["seed"], int):
        raise ValueError(f"seed {record['seed']!r} is not an integer")
    main = record["main_metric"] if isinstance(record["main_metric"], dict) else {}
    if metric == "main":
        name = main.get("name") or config_value(record, "task.main_metric")
        value = main.get("value")
    else:
        name, value = metric, (record.get("metrics") or {}).get(metric)
    row = {"run_id": str(record["run_id"]), "file": path.name, "model": str(record["model"]),
           "task": str(record["task"]), "method": str(record["method"]), "seed": record["seed"],
           "status": str(record["status"]), "reason": record.get("reason"), "metric": name or "",
           "value": score(value), "history": record.get("history") or [],
           "method_stats": record.get("method_stats") or {}, "device": device_label(record.get("device")),
           "targets": {}, "target_seconds": score(record.get("target_seconds")),    # schema 2 kept the total
           "declared_targets": [f"{t.get('task')}:{t.get('split', 'dev')}" for t in config_value(record, "targets") or []
                                if isinstance(t, dict)],
           "train_seconds": score(record.get("train_seconds")), "prepare_seconds": score(record.get("prepare_seconds")),
           # made before records kept a prediction histogram: unknown (None), never guessed
           "near_constant": flag(record.get("near_constant")),
           # the declaration the run was made under (report/family.py); None for runs made before any
           "comparisons_digest": declared_digest(record)}
    started, finished = timestamp(record.get("started_at")), timestamp(record.get("finished_at"))
    row["started_at"], row["finished_at"] = record.get("started_at"), record.get("finished_at")
    row["last_at"] = row["finished_at"]        # the run's last time stamp; its target records' are added below
    last = row["history"][-1] if row["history"] and isinstance(row["history"][-1], dict) else {}
    row["train_loss"] = score(last.get("train_loss"))
    row["seconds"] = (finished - started).total_seconds() if started and finished else math.nan
    # A run resumed from a checkpoint keeps the start time of its last attempt, while its measured
    # training and preparation add up over all attempts: count it at those (a lower bound).
    measured = sum(v for v in (row["train_seconds"], row["prepare_seconds"], row["target_seconds"]) if math.isfinite(v))
    row["resumed"] = bool(math.isfinite(row["seconds"]) and measured > row["seconds"] + STAMP_SLACK_S)
    if row["resumed"]:
        row["seconds"] = measured
    row.update({axis: axis_value(axis, config_value(record, axis)) for axis in extra})
    return row


def target_entries(records: list[dict], declared: list[str]) -> tuple[dict, float]:
    """A run's target records as its `targets` column ("task:split" -> scores, map, majority-class
    score; "task:split (map)" where one split was scored through two maps), the run's declared
    targets first in their declared order, and their summed seconds (NaN if one is unknown)."""
    out, seconds = {}, 0.0
    rank = {name: i for i, name in enumerate(declared)}
    name_of = lambda t: f"{t['target']['task']}:{t['target']['split']}"  # noqa: E731
    for t in sorted(records, key=lambda t: rank.get(name_of(t), len(rank))):
        name = name_of(t)
        if name in out:
            name = f"{name} ({t['target']['label_map'].get('name')})"
        out[name] = {"task": t["target"]["task"], "split": t["target"]["split"], "metrics": t["metrics"],
                     "main_metric": t["main_metric"]["name"], "size": t["size"], "label_map": t["target"]["label_map"],
                     "majority_class": t.get("majority_class"), "degenerate": t.get("reason"),
                     "near_constant": t.get("near_constant"),
                     "by_label": (t.get("predictions") or {}).get("by_label"),   # confusion counts; older records lack them
                     "by_bin": (t.get("predictions") or {}).get("by_bin")}       # the same per bin of task.breakdown
        seconds += score(t.get("seconds"))
    return out, seconds if records else math.nan


def declared_digest(record: dict) -> str | None:
    """The digest of the comparisons a run was made under (report/family.py): the one the runner
    stamped (`comparisons_digest`), else that of the `table.comparisons` block its config holds (runs
    made while the stamp did not exist yet, from a file that declared its comparisons); None for a
    run made before its experiment declared any."""
    if record.get("comparisons_digest"):
        return record["comparisons_digest"]
    table = config_value(record, "table")
    return comparisons.digest(table["comparisons"]) if isinstance(table, dict) and "comparisons" in table else None


def load_records(experiment: str, results: str | Path, metric: str = "main",
                 extra: list[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """All sound records of `experiment` (one row each) and a message per corrupt file (never counted:
    childtuning/integrity.py says what is checked).
    `extra`: config paths to add as columns (the spec's extra row axes).

    Only `*.json` files not starting with "." are read (the runner writes `.<name>.tmp<pid>`
    first, then renames; leases live in <experiment>/leases/, moved-aside files in runs/corrupt/),
    sorted by name so the row order is the same on every call."""
    rows, skipped = [], []
    folder = runs_dir(results, experiment)
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    for path in paths:
        try:
            rows.append(parse(path, metric, list(extra)))
        except (OSError, ValueError) as e:       # JSONDecodeError is a ValueError
            skipped.append(f"{path.name}: {e}")
    by_run, broken = target_records.load_records(results, experiment)
    skipped += broken
    for row in rows:
        found = by_run.get(row["run_id"], [])
        row["targets"], seconds = target_entries(found, row["declared_targets"])
        if found and math.isfinite(seconds):
            row["target_seconds"] = seconds
            # a run writes its record, then scores its targets (train.py), so its time stamps leave
            # the target records' time out (a resumed run's measured time, too): the run's time is both
            row["seconds"] += seconds
        stamps = [t["evaluated_at"] for t in found if timestamp(t.get("evaluated_at"))]
        if stamps and timestamp(row["last_at"]):
            row["last_at"] = max([row["last_at"], *stamps], key=timestamp)
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS + list(extra))
    frame["seed"] = frame["seed"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    timing = ["seconds", "train_loss", "target_seconds", "train_seconds", "prepare_seconds"]
    frame[timing] = frame[timing].astype("float64")
    order = ["model", "task", "method", *extra, "seed", "run_id"]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    frame.attrs["runs_dir"] = str(folder)     # where the records are (a kind may read files beside them)
    return frame, skipped
