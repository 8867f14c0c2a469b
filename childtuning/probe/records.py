"""Probe records: one JSON file per (encoder, target task, head seed) under
`<results>/<experiment>/probes/`, named by a hash of what decides its outcome, linked to its
source run's id. Written atomically (record.write_atomic), checked as run records are (integrity.py); status rules as for runs. Light to
import (no torch): the aggregator reads REQUIRED and probes_dir from here."""
from __future__ import annotations

import hashlib
import json
import socket
from datetime import datetime, timezone
from pathlib import Path

from .. import SCHEMA_VERSION, integrity
from ..record import prediction_fields, versions
from ..schemas import id_part
from . import config

KIND = "probe"
PRETRAINED = "pretrained"     # the method name of the reference: the un-fine-tuned pretrained encoder
REQUIRED = ("schema_version", "kind", "run_id", "experiment", "model", "method", "seed", "task", "head_seed",
            "source", "status", "metrics", "main_metric", "history", "probe")


def probes_dir(results: str | Path, experiment: str) -> Path:
    return Path(results) / experiment / "probes"


def outcome(source, target_task: dict, head_seed: int, settings, precision: str) -> dict:
    """What decides a probe's result: the encoder (its source run's id, or the pretrained model's
    config), the target task's outcome keys, the head seed and the head's training settings
    (childtuning/probe/config.py outcome), plus a precision other than fp32."""
    out = {"source": source.outcome(), "target": id_part("task", target_task), "head_seed": int(head_seed),
           "probe": config.outcome(settings)}
    if precision != "fp32":
        out["precision"] = precision
    return out


def probe_id(source, target_task: dict, head_seed: int, settings, precision: str) -> str:
    """`<source run id | model.pretrained>.<target>.h<head seed>.<hash of outcome>`."""
    digest = hashlib.sha256(json.dumps(outcome(source, target_task, head_seed, settings, precision),
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"{source.label}.{target_task['name']}.h{head_seed}.{digest}"


def read(path: Path) -> tuple[dict | None, str | None]:
    """As a run record is read (childtuning/integrity.py: complete, this schema, intact, named by its
    own id): (record, None), (None, why it cannot be counted), or (None, None) when there is no file."""
    return integrity.read(Path(path), REQUIRED, own_id=False)


def build(pid: str, experiment: str, source, target, head_seed: int, settings, result, error: str | None,
          features: dict, device, precision: str, started: str) -> dict:
    """The probe record. `result`: the trained head (head.HeadResult), or None when the probe failed
    with `error`; `features`: per split, how its features were obtained (seconds, cached)."""
    import torch              # deferred, as data below: torch is slow to import and the aggregator reads this module

    from .. import data      # deferred with torch above

    history = result.history if result else []
    final = history[-1] if history and "metrics" in history[-1] else None
    main = target.task.main_metric
    status, reason = (result.status, result.reason) if result else ("failed", error)
    described = source.describe()
    return {
        "schema_version": SCHEMA_VERSION, "kind": KIND, "run_id": pid, "experiment": experiment,
        "model": source.model["name"], "method": source.method,
        "seed": described.get("seed"), "source_task": described.get("task"),
        "task": target.task.name, "head_seed": int(head_seed), "source": described,
        "status": status, "reason": reason,
        "metrics": final["metrics"] if final else {},
        "main_metric": {"name": main, "value": final["metrics"][main] if final else None,
                        "checkpoint": "last epoch of the head"},
        "history": history, **prediction_fields(final), "steps": result.steps if result else 0,
        "train_seconds": result.seconds if result else None,
        "probe": {**config.outcome(settings), "optimizer": "adam (constant lr, no weight decay)",
                  "head": "regression (MSE)" if target.task.regression else f"{target.info.num_labels} classes (cross-entropy)",
                  "encoder": "frozen, eval mode"},
        "features": features,
        "data": {s: {"source": sp.source, "size": len(sp), "dropped": sp.dropped, "fingerprint": data.fingerprint(sp)}
                 for s, sp in target.splits.items()},
        "device": {"type": device.type, "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                   "precision": precision, "threads": torch.get_num_threads(), "host": socket.gethostname()},
        "versions": versions(), "started_at": started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {"probe": {k: v for k, v in config.outcome(settings).items()},
                   "target_task": id_part("task", target.resolved), "head_seed": int(head_seed)},
    }
