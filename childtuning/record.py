"""Run records: one JSON file per run, written atomically, named by a hash of its outcome."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from . import REPO_ROOT, __version__, families
from . import fields
from .schemas import SCHEMAS, RunConfig, id_part

REQUIRED = ("schema_version", "run_id", "experiment", "model", "task", "method", "seed", "status",
            "metrics", "main_metric", "history", "train_seconds", "config")
# Config groups whose values change a run's outcome (less the keys each schema marks as not).
OUTCOME_KEYS = ("model", "task", "method", "trainer", "seed")
# How a run executes (`impl`) stays out of the run id but for these, which change the numbers:
# each enters only away from the value the first runs used (see `outcome`).
IMPL_IN_ID = ("precision", "packing", "packed_layout", "pad_to_multiple_of")


def outcome(resolved: dict) -> dict:
    """The part of a resolved run config that decides what the run computes: model, task, method
    (this run's method only), trainer and seed, less the keys a schema marks `not_outcome` (where
    the data files are, whether to checkpoint) and the `added_later` keys still at their old
    value, plus a precision other than fp32 and the packed layout. Not: paths, logging, device,
    threads, the experiment, the evaluation targets (schema 3; schema 2 ids hashed them)."""
    out = {}
    for key in OUTCOME_KEYS:
        value = resolved[key]
        out[key] = id_part(key, value) if isinstance(value, dict) else value
    if resolved["impl"]["precision"] != "fp32":   # autocast changes the numbers; fp32 ids carry no key
        out["precision"] = resolved["impl"]["precision"]
    if uses_packing(resolved):                      # padded runs (all runs before packing) carry no key
        # rows: the id of the packed runs made before the varlen layout existed
        layout = resolved["impl"].get("packed_layout", "rows")
        out["layout"] = "packed" if layout == "rows" else layout
    if resolved["impl"].get("pad_to_multiple_of", 1) > 1:
        out["pad_to_multiple_of"] = resolved["impl"]["pad_to_multiple_of"]
    return out            # not `targets`: evaluation targets are scored into records of their own


def id_contract() -> dict[str, str]:
    """Every config key a run has, with how it enters the run id: "id" (hashed), "not_outcome"
    (never), "added_later" (only away from its old value), "impl" (IMPL_IN_ID: by `outcome`'s own
    rule), or "out" (a group outside OUTCOME_KEYS). Method keys are listed per registered method.
    tests/test_run_id_contract.py holds this against a committed list, so a new key must be given
    its status on purpose (the rules: childtuning/schemas.py's docstring)."""
    from dataclasses import fields as dataclass_fields

    from . import methods      # deferred, as in schemas.id_part: methods import torch

    def walk(schema, prefix: str, group_in_id: bool) -> dict:
        out = {}
        for f in dataclass_fields(schema):
            key = f"{prefix}.{f.name}"
            inner = fields.nested_schema(schema, f.name)
            if f.metadata.get("outcome") is False:
                out[key] = "not_outcome"
            elif "id_omits" in f.metadata:
                out[key] = "added_later"
            elif inner is not None and group_in_id:
                out.update(walk(inner, key, True))
            else:
                out[key] = "id" if group_in_id else "out"
        return out

    contract = {}
    for group, schema in SCHEMAS.items():
        contract.update(walk(schema, group, group in OUTCOME_KEYS))
    contract.update({f"impl.{k}": "impl" for k in IMPL_IN_ID})
    for name, cls in sorted(methods.REGISTRY.items()):
        if name.startswith("_"):
            continue              # a method a test registers for itself
        contract.update(walk(cls.Config, f"method[{name}]", True))
    for f in dataclass_fields(RunConfig):
        if f.name not in SCHEMAS and f.name != "method":
            contract[f.name] = "id" if f.name in OUTCOME_KEYS else "out"
    return dict(sorted(contract.items()))


def uses_packing(resolved: dict) -> bool:
    """Whether a run computes on packed batches: asked for (impl.packing), not overruled by the
    official fixed layout (trainer.pad_to_max_length), and its model family packs
    (childtuning/families/; a model without a family is refused at validation unless impl.packing=false)."""
    if not resolved["impl"].get("packing") or resolved["trainer"].get("pad_to_max_length"):
        return False
    family = families.find(resolved["model"]["architecture"])
    return family is not None and family.packed is not None


def run_id(cfg) -> str:
    """`<model>.<task>.<method>.s<seed>.<hash of outcome(cfg)>`. `cfg`: a validated config or its
    resolved dict (as a record's `config` holds it)."""
    resolved = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    digest = hashlib.sha256(json.dumps(outcome(resolved), sort_keys=True).encode()).hexdigest()[:10]
    return f"{resolved['model']['name']}.{resolved['task']['name']}.{resolved['method']['name']}.s{resolved['seed']}.{digest}"


# The folders of an experiment, <results>/<experiment>/: its run records, its target records
# (childtuning/targets.py), each run's large outputs, the sweeps' leases and mid-run checkpoints
# (probe records: probe/records.probes_dir). One place, so that moving one moves it everywhere.
RUNS, TARGETS, ARTIFACTS, LEASES, CHECKPOINTS = "runs", "targets", "artifacts", "leases", "checkpoints"


def default_results() -> str:
    """paths.results as conf/paths/default.yaml gives it ($CHILDTUNING_RESULTS, else `results`): the
    default of the command-line tools that are not Hydra apps, read from that file, not restated."""
    return str(OmegaConf.load(REPO_ROOT / "conf" / "paths" / "default.yaml").results)


def runs_dir(results: str, experiment: str) -> Path:
    return Path(results) / experiment / RUNS


def artifacts_dir(runs: Path, rid: str) -> Path:
    """Run `rid`'s large outputs (child mask, saved model), beside its experiment's runs folder `runs`."""
    return Path(runs).parent / ARTIFACTS / rid


def leases_dir(runs: Path) -> Path:
    return Path(runs).parent / LEASES


def checkpoint_path(runs: Path, rid: str) -> Path:
    return Path(runs).parent / CHECKPOINTS / f"{rid}.pt"


CHECKSUM = "checksum"    # "sha256:<hex>" of the record's canonical JSON without this field (childtuning/integrity.py)


def canonical(record: dict) -> bytes:
    """The bytes the checksum covers: the record less its checksum, keys sorted, compact."""
    body = {k: v for k, v in record.items() if k != CHECKSUM}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def checksum(record: dict) -> str:
    return "sha256:" + hashlib.sha256(canonical(record)).hexdigest()


def sign(record: dict) -> dict:
    """The record with its checksum (any old checksum replaced), as it is written."""
    return {**{k: v for k, v in record.items() if k != CHECKSUM}, CHECKSUM: checksum(record)}


def write_atomic(path: Path, record: dict) -> dict:
    """Write `record` with its checksum (`sign`) to a temporary file, flush it to disk and
    rename it over `path`: readers see the old file or the whole new one, never a part. Returns
    the record as written. On failure (e.g. a full disk) the old file is left as it was."""
    record = sign(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=1, sort_keys=False, allow_nan=True) + "\n")
            f.flush()
            os.fsync(f.fileno())     # the data is on disk before the rename makes it the record
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)      # after a failed write: no stray temporary file
    return record


def prediction_fields(final: dict | None, split: str = "dev") -> dict:
    """A record's `predictions` (the last evaluation's distribution per split, metrics.prediction_summary)
    and `near_constant` (that distribution's flag; None when nothing was evaluated). Records made
    before these keys existed lack both: the tables count them as unknown."""
    summary = (final or {}).get("predictions")
    return {"predictions": {split: summary} if summary else {},
            "near_constant": summary["near_constant"] if summary else None}


# What a run's computation can depend on in the checkout: a change here (tracked or not) makes the
# tree dirty for provenance. Results, docs and notebooks are not code a run executes.
CODE_PATHS = ("childtuning", "conf", "experiments", "pyproject.toml")
COMMIT_VARIABLE = "CHILDTUNING_GIT_COMMIT"     # the commit of a checkout copied without .git


def git(*args: str) -> str | None:
    """A git command's standard output in the checkout, or None when git or the checkout is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def provenance() -> dict:
    """The commit a run's code came from, whether the code paths (CODE_PATHS) differ from it, and
    if so a sha256 over the differences (`git diff HEAD` of tracked files and the untracked files'
    names and contents), so that two records made from the same uncommitted state can be told apart
    from others. A committed record must be clean (tests/test_provenance.py)."""
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    if (commit is None or status is None) and os.environ.get(COMMIT_VARIABLE):
        # A copy of the checkout without its git folder (a device machine, benchmarks/gpu_session.py),
        # packed from a clean tree at that commit (benchmarks/gpu_carry.py refuses a dirty one).
        return {"git_commit": os.environ[COMMIT_VARIABLE], "git_dirty": False, "git_diff_sha256": None}
    if commit is None or status is None:
        return {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}
    digest = None
    if status.strip():
        h = hashlib.sha256((git("diff", "HEAD", "--", *CODE_PATHS) or "").encode())
        for line in sorted(status.splitlines()):
            if line.startswith("??"):
                path = REPO_ROOT / line[3:]
                h.update(line.encode() + (path.read_bytes() if path.is_file() else b""))
        digest = h.hexdigest()
    return {"git_commit": commit.strip() or None, "git_dirty": bool(status.strip()), "git_diff_sha256": digest}


def versions() -> dict:
    import torch
    import transformers

    try:
        import datasets
        datasets_version = datasets.__version__
    except ImportError:
        datasets_version = None
    return {"childtuning": __version__, **provenance(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "datasets": datasets_version}
