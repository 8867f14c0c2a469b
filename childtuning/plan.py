"""A launch's plan, printed without running anything (preflight.dry_run=true, `make plan EXP=<name>`):
each cell's fate and the time of the cells to run, estimated from earlier records of the same kind."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from .record import RUNS

# How each status of preflight.Report.entries reads in the plan.
STATUS = {"run": "to run", "corrupt": "to rerun", "complete": "complete", "reused": "reused",
          "leased": "leased", "duplicate": "duplicate", "refused": "refused"}
RUNNING = ("run", "corrupt")      # the statuses whose cells train here


def earlier_runs(results: str | Path) -> list[dict]:
    """What each finished run under `results` cost: its kind (model, task, method), its Fisher or
    other preparation and its training seconds, examples, epochs and threads. Copies of another
    experiment's record (reused_from) and failed runs are left out."""
    runs = []
    for path in sorted(Path(results).glob(f"*/{RUNS}/*.json")):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
            if r.get("reused_from") or r.get("status") == "failed":
                continue
            runs.append({"model": r["model"], "task": r["task"], "method": r["method"],
                         "prepare_s": r.get("prepare_seconds") or 0.0, "train_s": r.get("train_seconds") or 0.0,
                         "examples": r["data"]["train"]["size"], "epochs": r["hyperparameters"]["epochs"],
                         "subset": r["config"]["task"].get("max_train_samples") is not None,
                         "threads": r.get("device", {}).get("threads"), "device": r.get("device", {}).get("type")})
        except (OSError, ValueError, KeyError, TypeError):    # not a run record we can read: no basis
            continue
    return runs


def estimate(entry: dict, runs: list[dict]) -> tuple[float | None, str]:
    """(seconds, basis) for a cell to run: the median over earlier runs of the same model, task and
    method (else the same model and task) of their preparation scaled by the examples and their
    training by examples x epochs. A cell on the whole training set takes its size from an earlier
    whole-set run of the task, else from the earlier run itself."""
    for keys in (("model", "task", "method"), ("model", "task")):
        same = [r for r in runs if all(r[k] == entry[k] for k in keys)]
        if same:
            break
    else:
        return None, f"no earlier record of {entry['model']} on {entry['task']}"
    whole = max((r["examples"] for r in runs if r["task"] == entry["task"] and not r["subset"]), default=None)
    guesses = []
    for r in same:
        examples = entry["examples"] or whole or r["examples"]
        if whole:
            examples = min(examples, whole)
        size = examples / r["examples"] if r["examples"] else 1.0
        epochs = entry["epochs"] / r["epochs"] if r["epochs"] else (1.0 if entry["epochs"] == 0 else None)
        train = r["train_s"] * size * epochs if epochs is not None else None
        if train is not None:
            guesses.append(r["prepare_s"] * size + train)
    if not guesses:
        return None, f"earlier records of {'/'.join(entry[k] for k in keys)} only prepared (epochs 0)"
    threads = sorted({str(r["threads"]) for r in same})
    return statistics.median(guesses), (f"median of {len(guesses)} record(s) of {'/'.join(entry[k] for k in keys)}, "
                                        f"{'/'.join(sorted({str(r['device']) for r in same}))}, "
                                        f"{'/'.join(threads)} thread(s)")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(report, results: str | Path) -> str:
    """The plan of a preflight.Report: one line per cell, then the counts and the estimated time."""
    runs = earlier_runs(results)
    lines = [f"plan (preflight.dry_run=true: nothing runs): {report.cells} cell(s), results under {results}"]
    total, unknown, counts = 0.0, 0, {}
    width = max((len(e["cell"]) for e in report.entries), default=0)
    for e in report.entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
        detail = e.get("detail", "")
        if e["status"] in RUNNING:
            seconds, basis = estimate(e, runs)
            if seconds is None:
                unknown += 1
                detail = "; ".join(x for x in (detail, f"cost unknown ({basis})") if x)
            else:
                total += seconds
                detail = "; ".join(x for x in (detail, f"about {duration(seconds)} ({basis})") if x)
        lines.append(f"  {STATUS[e['status']]:<9} {e['cell']:<{width}}  {e.get('run_id') or ''}  {detail}".rstrip())
    lines.append("cells: " + ", ".join(f"{counts[s]} {STATUS[s]}" for s in STATUS if s in counts))
    running = sum(counts.get(s, 0) for s in RUNNING)
    if running and unknown == running:
        lines.append(f"estimated time: unknown (no earlier record of the kind of any of the {running} cell(s) to run "
                     f"under {results})")
    elif running:
        known = running - unknown
        lines.append(f"estimated time of the {known} cell(s) with an earlier record of their kind: about "
                     f"{duration(total)} one after another" + (f"; {unknown} cell(s) without one" if unknown else "")
                     + " (earlier runs' devices and threads may differ from this launch's)")
    return "\n".join(lines)
