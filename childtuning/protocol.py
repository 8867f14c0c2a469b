"""A tuning protocol's search applied (childtuning/tuning.py declares it): the rule run on the
search stage's records, the choice written for the confirmation runs, and the command

    python -m childtuning.protocol <experiment> [--results DIR] [--launch [OVERRIDE ...]]

which reads the search stage's records, refuses an incomplete search or seeds shared with the
reported ones, applies the rule, writes `<DIR>/<experiment>/selection.json` (every candidate's
score, the choice, the seeds, the examples scored) and prints, or with --launch runs, the
confirmation sweep. A selection is not replaced once confirmation records exist, unless --force.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

from .errors import InputError
from .record import RUNS, default_results, runs_dir
from .report import load_records, load_spec
from .report.frames import config_value
from .report.stats import missing_runs, outside_grid
from .sweep import axis_value
from .tuning import (HELDOUT, RULE_TEXT, RULES, SCORE_ON, check_protocol, read_protocol,  # noqa: F401
                     selection_path)


def value_of(record_file: Path, key: str):
    """A config value as the record holds it (a float stays a float, unlike a table axis)."""
    return config_value(json.loads(record_file.read_text(encoding="utf-8")), key)


def select(experiment: str, results: str | Path, allow_missing: bool = False) -> dict:
    """Apply `experiment`'s protocol to its search stage's records: the selection document."""
    proto = check_protocol(f"experiments/{experiment}.yaml", read_protocol(experiment))
    if "selection_from" in proto:
        raise InputError(f"experiment {experiment} uses the selection of {proto['selection_from']}: run "
                         f"`python -m childtuning.protocol {proto['selection_from']}` for it")
    search = load_spec(proto["search"])
    reported = load_spec(experiment).expected["seed"]
    shared = sorted(set(search.expected["seed"]) & set(reported))
    if shared:
        raise InputError(f"the search stage {proto['search']} uses seeds {shared}, which experiment {experiment} "
                         "reports: a choice fitted to the reported seeds would flatter it; search on other seeds")
    for key in proto["select"]:
        if key not in search.extra:
            raise InputError(f"protocol.select names {key}, which is not a row axis of {proto['search']}'s table "
                             f"(rows: {search.rows}); add it there")
    for axis in proto["per"]:
        if axis not in search.key:
            raise InputError(f"protocol.per names {axis}, which {proto['search']}'s table does not have ({search.key})")
    records, skipped = load_records(proto["search"], results, search.metric, search.extra)
    records = records[~records["run_id"].isin(outside_grid(records, search))].copy()
    scored_on = scored_split(records, proto, results)
    axes = search.key + ["seed"]
    missing = missing_runs(records, search)
    if missing and not allow_missing:
        raise InputError(f"the search stage {proto['search']} has {len(missing)} of "
                         f"{math.prod(len(search.expected[a]) for a in axes)} runs missing under {results} "
                         f"(e.g. {dict(zip(axes, missing[0]))}); run it first: python -m childtuning.train -m "
                         f"exp={proto['search']} paths.results={results}")
    tasks = search.expected["task"]
    groups = list(itertools.product(*(search.expected[a] for a in proto["per"])))
    grid = list(itertools.product(*(search.expected[k] for k in proto["select"])))
    choices = []
    for where in groups:
        rows = records
        for axis, v in zip(proto["per"], where):
            rows = rows[rows[axis] == v]
        candidates = []
        for values in grid:
            sub = rows
            for key, v in zip(proto["select"], values):
                sub = sub[sub[key] == v]
            per_task, counts = {}, {}
            for task in tasks:
                runs = sub[sub["task"] == task]
                scored = runs["value"][runs["value"].notna() & (runs["value"].abs() != math.inf)]
                per_task[task] = float(scored.mean()) if len(scored) else None
                counts[task] = f"{len(scored)}/{len(runs)}"
            raw = {key: value_of(runs_dir(results, proto["search"]) / sub["file"].iloc[0], key) if len(sub) else v
                   for key, v in zip(proto["select"], values)}
            candidates.append({"values": raw, "per_task": per_task, "scored_of_runs": counts})
        best = RULES[proto["rule"]](candidates, tasks)
        if best is None:
            raise InputError(f"no candidate of {proto['search']} has a score on every task for "
                             f"{dict(zip(proto['per'], where))}: nothing can be chosen")
        chosen = _axis_values(best, proto)
        edge = [k for i, k in enumerate(proto["select"])
                if len(search.expected[k]) > 1 and chosen[i] in (search.expected[k][0], search.expected[k][-1])]
        choices.append({"where": dict(zip(proto["per"], where)), "values": best["values"], "score": best["score"],
                        "at_grid_edge": edge, "candidates": candidates})
    return {"experiment": experiment, "rule": {"name": proto["rule"], "statement": RULE_TEXT[proto["rule"]]},
            "select": proto["select"], "per": proto["per"],
            "search": {"experiment": proto["search"], "seeds": search.expected["seed"], "tasks": tasks,
                       "grid": {k: search.expected[k] for k in proto["select"]}, "runs": len(records),
                       "missing": len(missing), "skipped_files": len(skipped)},
            "scored_on": scored_on, "reported_seeds": reported, "choices": choices}


def scored_split(records, proto: dict, results) -> dict:
    """Point each search record's `value` at the split the candidates are scored on; returns what
    the selection document says about it (per task: the examples scored and their fingerprints).
    With score_on heldout, a search run without its held-out target record is refused (nothing
    is read from its dev score)."""
    out = {"split": proto["score_on"], "what": SCORE_ON[proto["score_on"]]}
    if proto["score_on"] != HELDOUT:
        return out
    values, per_task, lacking = [], {}, []
    for _, r in records.iterrows():
        entry = (r["targets"] or {}).get(f"{r['task']}:{HELDOUT}")
        if entry is None:           # a failed run has no model to score: unscored, as on dev
            if r["status"] in ("ok", "degenerate"):
                lacking.append(r["run_id"])
            values.append(math.nan)
            continue
        values.append(float(entry["metrics"].get(entry["main_metric"], math.nan)))
        sizes = per_task.setdefault(r["task"], {})
        sizes[f"seed {r['seed']}"] = entry["size"]
    if lacking:
        raise InputError(f"{len(lacking)} run(s) of the search stage {proto['search']} have no held-out score, e.g. "
                         f"{lacking[0]}: the candidates are scored on each run's training examples outside its "
                         f"subset (protocol.score_on: heldout). Declare `targets: [\"${{task.name}}:heldout\"]` in "
                         f"experiments/{proto['search']}.yaml and relaunch its sweep (runs that kept their model are "
                         "scored without training; others run again), or set protocol.score_on: dev and say so")
    records["value"] = values
    out["examples"] = per_task
    return out


def _axis_values(candidate: dict, proto: dict) -> tuple:
    """A candidate's values as the tables spell them (its grid coordinates)."""
    return tuple(axis_value(k, candidate["values"][k]) for k in proto["select"])


def write_selection(doc: dict, results: str | Path, force: bool = False) -> Path:
    """Write the selection; refuse to change one that confirmation runs already used (unless force)."""
    path = selection_path(results, doc["experiment"])
    runs = list((path.parent / RUNS).glob("*.json"))
    if path.is_file() and runs and not force:
        old = json.loads(path.read_text(encoding="utf-8"))
        if [c["values"] for c in old["choices"]] != [c["values"] for c in doc["choices"]]:
            raise InputError(f"{path} chose {[c['values'] for c in old['choices']]} and {len(runs)} run(s) of "
                             f"{doc['experiment']} used it; the search now gives {[c['values'] for c in doc['choices']]}. "
                             "--force replaces it (the old runs then no longer match the selection)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def sweep_command(experiment: str, results: str | Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "childtuning.train", "-m", f"exp={experiment}", f"paths.results={results}", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m childtuning.protocol", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="an experiment whose file has a protocol: block")
    parser.add_argument("--results", default=default_results(),
                        help="results folder (default: $CHILDTUNING_RESULTS or 'results', as conf/paths/default.yaml)")
    parser.add_argument("--force", action="store_true", help="replace a selection that confirmation runs used")
    parser.add_argument("--allow-missing", action="store_true", help="choose from an incomplete search (noted)")
    parser.add_argument("--launch", nargs=argparse.REMAINDER, default=None, metavar="OVERRIDE",
                        help="then run the confirmation sweep, with these extra overrides")
    args = parser.parse_args(argv)
    try:
        proto = check_protocol(f"experiments/{args.experiment}.yaml", read_protocol(args.experiment))
        if "selection_from" in proto:
            source = selection_path(args.results, proto["selection_from"])
            if not source.is_file():
                raise InputError(f"experiment {args.experiment} uses the selection of {proto['selection_from']}, "
                                 f"which has none yet ({source}): python -m childtuning.protocol {proto['selection_from']}")
            doc = json.loads(source.read_text(encoding="utf-8"))
            print(f"{args.experiment} uses the selection of {proto['selection_from']} ({source}):")
        else:
            doc = select(args.experiment, args.results, args.allow_missing)
            source = write_selection(doc, args.results, args.force)
            print(f"{args.experiment}: rule {doc['rule']['name']} on {doc['search']['experiment']} "
                  f"(seeds {doc['search']['seeds']}; reported seeds {doc['reported_seeds']}) -> {source}")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for c in doc["choices"]:
        edge = f"  (at the edge of the grid: {', '.join(c['at_grid_edge'])})" if c.get("at_grid_edge") else ""
        print(f"  {c['where']}: {c['values']}  score {c['score']:.2f}{edge}")
    command = sweep_command(args.experiment, args.results, args.launch or [])
    if args.launch is None:
        print("confirmation sweep: python " + " ".join(command[1:]))
        return 0
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
