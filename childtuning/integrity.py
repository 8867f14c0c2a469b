"""Whether a record file can be counted: parseable, complete, this schema, intact (checksum), its own run id.

A record written by record.write_atomic carries `checksum`: "sha256:<hex>" of the canonical JSON of
the record without that field (keys sorted, no spaces). Records written before checksums existed
(the committed CPU studies) have none: their checksum is "not checked", not a fault; everything
else (JSON, required keys, schema, run id) is checked for them too. A file that fails a check is
corrupt: the aggregator lists it with the reason and never counts it; a relaunch moves it aside
(`set_aside`, never deletes) and reruns its run.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from . import SCHEMA_VERSION
from .record import CHECKSUM, REQUIRED, checksum, run_id

CORRUPT_DIR = "corrupt"      # <runs>/corrupt/: files a relaunch moved aside (the aggregator reads runs/*.json only)
OUTCOME_GROUPS = ("model", "task", "method", "trainer", "impl")


def problem(record, path: Path | None = None, required: tuple[str, ...] | None = None,
            own_id: bool = True) -> str | None:
    """Why `record` (parsed from `path`) must not be counted, or None if it may. `required`: the
    keys it must have (default: a run record's); `own_id`: check that its run_id is its config's
    (a run record; a probe's id hashes its source encoder, which the record does not hold whole)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in (required or REQUIRED) if k not in record]
    if missing:
        return f"incomplete record, missing {', '.join(missing)}"
    if record["schema_version"] != SCHEMA_VERSION:
        return f"schema_version {record['schema_version']} (this version reads {SCHEMA_VERSION}; " \
               "python -m childtuning.migrate upgrades older records)"
    if CHECKSUM in record and record[CHECKSUM] != checksum(record):
        return f"checksum mismatch (the file holds {str(record[CHECKSUM])[:19]}..., its content hashes to " \
               f"{checksum(record)[:19]}...): changed or damaged after it was written"
    if path is not None and path.stem != str(record["run_id"]):
        return f"the file is named {path.name} but holds run {record['run_id']} (a foreign or renamed record)"
    return id_problem(record) if own_id else None


def id_problem(record: dict) -> str | None:
    """A record whose run_id is not the id of its own config is foreign or edited. Records whose
    config lacks the outcome groups (hand-made test records) cannot be checked and are not."""
    config = record.get("config")
    if not isinstance(config, dict) or "seed" not in config or \
            not all(isinstance(config.get(g), dict) for g in OUTCOME_GROUPS):
        return None
    try:
        expected = run_id(config)
    except (KeyError, TypeError, ValueError) as e:
        return f"its config does not give a run id ({type(e).__name__}: {e})"
    if expected != record["run_id"]:
        return f"run_id {record['run_id']} is not the id of its config ({expected}): edited or foreign"
    return None


def read(path: Path, required: tuple[str, ...] | None = None, own_id: bool = True) -> tuple[dict | None, str | None]:
    """(record, None) for a usable record; (None, reason) for a corrupt file; (None, None) when
    there is no file. `required`, `own_id`: as for `problem`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    try:
        record = json.loads(text)
    except ValueError as e:
        return None, f"not valid JSON ({e}; truncated or damaged)"
    reason = problem(record, path, required, own_id)
    return (None, reason) if reason else (record, None)


def read_complete(path: Path) -> dict | None:
    """The record at `path` if it exists and can be counted, else None."""
    return read(path)[0]


def set_aside(path: Path, reason: str) -> Path:
    """Move a corrupt record to <runs>/corrupt/<name>.<UTC time>.<pid> with a `.reason` file beside
    it (never deleted: a person may want to look). Returns where it went."""
    folder = path.parent / CORRUPT_DIR
    folder.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{path.name}.{stamp}.{os.getpid()}"
    os.replace(path, target)
    target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")
    return target
