"""Run records: one JSON file per run, written atomically, named by a hash of its outcome."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from . import SCHEMA_VERSION, __version__
from .config import OUTCOME_KEYS
from .data import REPO_ROOT

REQUIRED = ("schema_version", "run_id", "experiment", "model", "task", "method", "seed", "status",
            "metrics", "main_metric", "history", "train_seconds", "config")


def run_id(cfg) -> str:
    """`<model>.<task>.<method>.s<seed>.<hash>`; the hash covers every outcome-changing value
    (model, task, method, trainer, seed, and a precision other than fp32), not paths, logging,
    device, threads or the experiment."""
    outcome = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
               for k in OUTCOME_KEYS}
    if cfg.impl.precision != "fp32":   # autocast changes the numbers; fp32 ids stay as they were
        outcome["precision"] = cfg.impl.precision
    digest = hashlib.sha256(json.dumps(outcome, sort_keys=True).encode()).hexdigest()[:10]
    return f"{cfg.model.name}.{cfg.task.name}.{cfg.method.name}.s{cfg.seed}.{digest}"


def runs_dir(results: str, experiment: str) -> Path:
    return Path(results) / experiment / "runs"


def read_complete(path: Path) -> dict | None:
    """The record at `path` if it exists and is complete, else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not all(k in record for k in REQUIRED) or record.get("schema_version") != SCHEMA_VERSION:
        return None
    return record


def write_atomic(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=False, allow_nan=True) + "\n")
    os.replace(tmp, path)


def versions() -> dict:
    import torch
    import transformers

    try:
        import datasets
        datasets_version = datasets.__version__
    except ImportError:
        datasets_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"childtuning": __version__, "git_commit": commit, "git_dirty": dirty, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "datasets": datasets_version}
