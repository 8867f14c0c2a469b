"""Upgrade run records written by an older schema, so that a relaunch finds them under today's run ids.

    python -m childtuning.migrate results/table1_cpu [results/other ...] [--dry-run]

Each step turns a record of schema N into N+1: it rewrites the resolved config the way today's
configs spell the same run (values the old code used implicitly become explicit), recomputes the
run id, renames the record and its artifacts folder, and notes what it did under `migrated_from`.
From schema 2 to 3, the evaluation targets a run record held become target records of their own
(<experiment>/targets/, childtuning/target_records.py), with the same numbers.
Metrics, history and statistics are never touched. A record whose stored run id does not match
its own config under its schema's rule is refused (it was edited or is corrupt).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

from . import SCHEMA_VERSION, target_records
from .probe.records import probes_dir
from .record import ARTIFACTS, RUNS, TARGETS, outcome, run_id, write_atomic


def _v1_run_id(config: dict) -> str:
    """The run id rule of schema 1: every key of model, task, method, trainer and seed."""
    outcome = {k: config[k] for k in ("model", "task", "method", "trainer", "seed")}
    if config["impl"]["precision"] != "fp32":
        outcome["precision"] = config["impl"]["precision"]
    digest = hashlib.sha256(json.dumps(outcome, sort_keys=True).encode()).hexdigest()[:10]
    return f"{config['model']['name']}.{config['task']['name']}.{config['method']['name']}.s{config['seed']}.{digest}"


def _v1_to_v2(record: dict) -> list[str]:
    """Schema 1 -> 2: per-task keep ratios moved from the task to conf/method_task (the task's
    table of every method's ratio is dropped; the run's own ratio was already in method.keep_ratio);
    the optimizer became a switch (schema 1 runs all used torch.optim.AdamW); Child-Tuning_D's
    selection rule and percentile arithmetic became switches (schema 1: top, float32); every
    model file declares its architecture (schema 1: tiny models only)."""
    config, changes = record["config"], []
    if not config["model"].get("architecture"):
        config["model"]["architecture"] = V1_ARCHITECTURES[config["model"]["name"]]
        changes.append(f"model.architecture={config['model']['architecture']} (declared in conf/model since schema 2)")
    if config["task"].pop("keep_ratio", None) is not None:
        changes.append("task.keep_ratio removed (per-task ratios live in conf/method_task)")
    if "optimizer" not in config["trainer"]:
        config["trainer"]["optimizer"] = "adamw_torch"
        changes.append("trainer.optimizer=adamw_torch (what schema 1 always used)")
    if config["method"]["name"] == "child_tuning_d":
        for key, value in (("selection", "top"), ("percentile_interpolation", "float32")):
            if key not in config["method"]:
                config["method"][key] = value
                changes.append(f"method.{key}={value} (what schema 1 always did)")
    return changes


def _v2_run_id(config: dict) -> str:
    """The run id rule of schema 2: today's outcome keys plus the evaluation targets."""
    out = outcome(config)
    if config.get("targets"):
        out["targets"] = config["targets"]
    digest = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:10]
    return f"{config['model']['name']}.{config['task']['name']}.{config['method']['name']}.s{config['seed']}.{digest}"


def _v2_to_v3(record: dict) -> list[str]:
    """Schema 2 -> 3: evaluation targets left the run id; their scores leave the run record for
    target records (migrate_experiment writes them from `targets`, which this step keeps for it)."""
    changes = []
    if record.get("targets"):
        changes.append(f"{len(record['targets'])} target score(s) moved to target records; targets left the run id")
    return changes


def moved_targets(record: dict) -> list[dict]:
    """The target records of a run record that still holds schema 2's `targets` entries: the same
    numbers, keyed by the run's new id; what schema 2 did not keep (the prediction histogram, the
    seconds per target) is null."""
    out = []
    for name, t in (record.get("targets") or {}).items():
        entry = {"task": t["task"], "split": t["split"], "label_map": t["label_map"]}
        scores = {"metrics": t["metrics"], "main_metric": t["main_metric"], "reason": t.get("degenerate"),
                  "predictions": None, "near_constant": None, "majority_class": t.get("majority_class"),
                  "size": t["size"], "dropped": t.get("dropped", 0), "source": t.get("source"),
                  "fingerprint": t["fingerprint"], "seconds": None,
                  "model_from": "end of run (moved from its schema-2 run record by childtuning.migrate)",
                  "device": record.get("device")}
        made = target_records.build(record, entry, scores)
        made.update(versions=record.get("versions"), evaluated_at=record.get("finished_at"))
        out.append(made)
    return out


# What schema 1's model files loaded (their transformers model_type).
V1_ARCHITECTURES = {"minilm": "bert", "bert_large": "bert", "xlnet_large": "xlnet", "roberta_large": "roberta",
                    "electra_large": "electra"}
STEPS = {1: (_v1_run_id, _v1_to_v2), 2: (_v2_run_id, _v2_to_v3)}


def migrate_record(record: dict) -> tuple[dict, list[str]]:
    """The record upgraded to SCHEMA_VERSION, and a line per change. Raises ValueError if it cannot."""
    record = copy.deepcopy(record)
    notes = []
    while record.get("schema_version") != SCHEMA_VERSION:
        version = record.get("schema_version")
        if version not in STEPS:
            raise ValueError(f"no migration from schema_version {version!r} (this code writes {SCHEMA_VERSION})")
        old_rule, step = STEPS[version]
        if old_rule(record["config"]) != record["run_id"]:
            raise ValueError(f"run_id {record['run_id']} does not match its own config under schema {version}'s rule")
        old_id = record["run_id"]
        changes = step(record)
        next_rule = STEPS[version + 1][0] if version + 1 in STEPS else run_id
        record.update(schema_version=version + 1, run_id=next_rule(record["config"]),
                      method_params=record["config"]["method"], hyperparameters=record["config"]["trainer"])
        record.setdefault("migrated_from", []).append({"schema_version": version, "run_id": old_id, "changes": changes})
        notes.append(f"schema {version} -> {version + 1}: {old_id} -> {record['run_id']}")
    return record, notes


def migrate_experiment(folder: Path, dry_run: bool = False) -> list[str]:
    """Migrate every record under <folder>/runs (and rename its artifacts folder); returns a log."""
    log = []
    for path in sorted((folder / RUNS).glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("schema_version") == SCHEMA_VERSION:
            continue
        new, notes = migrate_record(record)
        target = path.with_name(f"{new['run_id']}.json")
        if target != path and target.exists():
            raise ValueError(f"{path.name}: its migrated id {new['run_id']} already has a record; resolve by hand")
        log += [f"{path.name}: {n}" for n in notes]
        moved = moved_targets(new)
        new.pop("targets", None)
        if dry_run:
            continue
        for made in moved:
            write_atomic(folder / TARGETS / f"{made['run_id']}.json", made)
        write_atomic(target, new)
        artifacts = folder / ARTIFACTS
        if (artifacts / record["run_id"]).is_dir():
            (artifacts / record["run_id"]).rename(artifacts / new["run_id"])
        if target != path:
            path.unlink()
    return log


# Probe records (childtuning/probe) carry the schema version too; what each step changes for them.
PROBE_STEPS = {2: "none: schema 3 changed only run records with evaluation targets"}


def migrate_probes(folder: Path, dry_run: bool = False) -> list[str]:
    """Bring every probe record under <folder>/probes to SCHEMA_VERSION (their ids do not change)."""
    log = []
    probes = probes_dir(folder.parent, folder.name)
    for path in sorted(probes.glob("*.json")) if probes.is_dir() else []:
        record = json.loads(path.read_text())
        version = record.get("schema_version")
        if version == SCHEMA_VERSION:
            continue
        if version not in PROBE_STEPS:
            raise ValueError(f"{path.name}: no probe migration from schema_version {version!r}")
        changes = []
        while record["schema_version"] != SCHEMA_VERSION:
            changes.append(PROBE_STEPS[record["schema_version"]])
            record["schema_version"] += 1
        record.setdefault("migrated_from", []).append({"schema_version": version, "changes": changes})
        log.append(f"{path.name}: probe record, schema {version} -> {SCHEMA_VERSION}")
        if not dry_run:
            write_atomic(path, record)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m childtuning.migrate", description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="experiment folders (results/<experiment>)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            log = migrate_experiment(folder, args.dry_run) + migrate_probes(folder, args.dry_run)
        except (OSError, ValueError) as e:
            print(f"error: {folder}: {e}", file=sys.stderr)
            return 2
        print(f"{folder}: {len(log)} record(s) {'would be ' if args.dry_run else ''}migrated")
        for line in log:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
