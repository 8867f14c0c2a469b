"""Synthetic task-transfer records (source runs and probe records) with chosen scores, for the
table and notebook tests: the layout of experiments/task_transfer_smoke.yaml (tiny_bert, source
task rte, methods vanilla and child_tuning_d, source seeds 1-2, targets mrpc and stsb, head
seeds 1-2, with the pretrained reference)."""
from __future__ import annotations

import json
from pathlib import Path

from childtuning import SCHEMA_VERSION, comparisons
from helpers.records import MAIN_METRIC

EXPERIMENT = "task_transfer_smoke"


def source_record(method, seed, value, status="ok", model="tiny_bert", task="rte", experiment=EXPERIMENT):
    metric = MAIN_METRIC[task]
    return {"schema_version": SCHEMA_VERSION, "run_id": f"{model}.{task}.{method}.s{seed}.0000000000",
            "experiment": experiment, "model": model, "task": task, "method": method, "seed": seed,
            "status": status, "reason": None if status == "ok" else status,
            "metrics": {} if value is None else {metric: value},
            "main_metric": {"name": metric, "value": value, "checkpoint": "last epoch (paper protocol)"},
            "history": [{"epoch": 1, "step": 4, "metrics": {metric: value}, "train_loss": 0.7, "degenerate": None}],
            "steps": 4, "train_seconds": 1.0, "method_stats": {}, "config": {"task": {"main_metric": metric}},
            "started_at": "2026-01-01T10:00:00+00:00", "finished_at": "2026-01-01T10:01:00+00:00",
            "device": {"type": "cpu", "threads": 1},
            "comparisons_digest": comparisons.digest(None)}      # the smoke file declares the defaults


def probe_record(method, seed, target, head_seed, value, status="ok", model="tiny_bert", source_task="rte",
                 experiment=EXPERIMENT):
    metric = MAIN_METRIC[target]
    source = f"{model}.{source_task}.{method}.s{seed}.0000000000" if seed is not None else None
    label = source or f"{model}.pretrained"
    history = [{"epoch": 1, "step": 3, "train_loss": 0.5, "metrics": {} if value is None else {metric: value},
                "degenerate": None}]
    return {"schema_version": SCHEMA_VERSION, "kind": "probe", "run_id": f"{label}.{target}.h{head_seed}.0000000000",
            "experiment": experiment, "model": model, "method": method, "seed": seed,
            "source_task": source_task if seed is not None else None, "task": target, "head_seed": head_seed,
            "source": {"kind": "run", "run_id": source} if source else {"kind": "pretrained"},
            "status": status, "reason": None if status == "ok" else status,
            "metrics": {} if value is None else {metric: value},
            "main_metric": {"name": metric, "value": value, "checkpoint": "last epoch of the head"},
            "history": history, "steps": 3, "train_seconds": 0.5, "probe": {"lr": 0.001},
            "features": {"train": {"cached": False, "seconds": 2.0}, "dev": {"cached": False, "seconds": 1.0}},
            "started_at": "2026-01-01T11:00:00+00:00", "finished_at": "2026-01-01T11:00:01+00:00",
            "device": {"type": "cpu", "threads": 1}}


def write_records(results, sources=(), probes=(), experiment=EXPERIMENT) -> Path:
    """Write the records as the runner and the probe command name them; returns the experiment folder."""
    folder = Path(results) / experiment
    for sub, records in (("runs", sources), ("probes", probes)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for r in records:
            (folder / sub / f"{r['run_id']}.json").write_text(json.dumps(r, allow_nan=True))
    return folder


# Scores chosen so that the order of averaging matters: vanilla seed 1 has one diverged head on
# mrpc, so the mean over source seeds of head-seed means differs from the mean of all heads.
SOURCES = {("vanilla", 1): 80.0, ("vanilla", 2): 70.0, ("child_tuning_d", 1): 82.0, ("child_tuning_d", 2): 74.0}
PROBES = {  # (method, seed, target) -> score per head seed 1, 2 (None: no score)
    ("vanilla", 1, "mrpc"): [60.0, None], ("vanilla", 2, "mrpc"): [70.0, 80.0],
    ("child_tuning_d", 1, "mrpc"): [66.0, 70.0], ("child_tuning_d", 2, "mrpc"): [78.0, 82.0],
    ("vanilla", 1, "stsb"): [20.0, 30.0], ("vanilla", 2, "stsb"): [40.0, 50.0],
    ("child_tuning_d", 1, "stsb"): [30.0, 30.0], ("child_tuning_d", 2, "stsb"): [50.0, 60.0],
    ("pretrained", None, "mrpc"): [50.0, 54.0], ("pretrained", None, "stsb"): [10.0, 14.0],
}


def write_synthetic(results, experiment=EXPERIMENT) -> Path:
    """The records above: every source run ok, one probe diverged (vanilla s1 mrpc h2), one
    degenerate (child_tuning_d s1 mrpc h1, scored)."""
    sources = [source_record(m, s, v) for (m, s), v in SOURCES.items()]
    probes = []
    for (method, seed, target), values in PROBES.items():
        for head, value in enumerate(values, start=1):
            status = "diverged" if value is None else \
                "degenerate" if (method, seed, target, head) == ("child_tuning_d", 1, "mrpc", 1) else "ok"
            probes.append(probe_record(method, seed, target, head, value, status))
    return write_records(results, sources, probes, experiment)
