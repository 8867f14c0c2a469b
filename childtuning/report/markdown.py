"""table.md of a model x method table: cells, differences to the baseline, counts, cost, gaps."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .emp import emp_lines
from .family import legend
from .frames import timestamp
from .stats import cell_groups, near_constant_counts
from .summary import Summary
from .text import NA, UNKNOWN, cell_text, md_table, near_constant_legend, near_constant_text, num, paper_text, signed, \
    test_cells, test_header
from .protocol_section import protocol_lines


def render_markdown(s: Summary) -> str:
    spec = s.spec
    metric = "main metric" if spec.metric == "main" else spec.metric
    out = [f"# Experiment `{spec.experiment}`", ""] + [line for note in spec.notes for line in (note, "")]
    out += [f"Dev-set {metric} at the last epoch, mean ± sample std over seeds. Cell: `mean ± std (n_ok/n)`, "
            "n_ok = runs with status ok, n = all runs. The mean covers every run with a finite score "
            "(ok and degenerate); diverged/failed runs have none and only count in n (see the counts below). "
            f"`{NA}`: not computable; `{UNKNOWN}`: paper value unknown.", "",
            "Metrics: " + ", ".join(f"{t}: {s.task_metric(t)}" for t in s.tasks) + ".",
            f"Paper values: {spec.paper_source or 'none given'}.", ""]
    header = list(spec.rows)
    for task in s.tasks:
        header += [task, f"{task} (paper)"]
    header += ["Avg", "Avg (paper)"]
    rows = []
    for row in s.rows:
        cells = []
        for task in s.tasks:
            cells += [cell_text(s.cell(row, task)), paper_text(s.paper(row, task))]
        rows.append(list(row) + cells + [num(s.avg(row)), paper_text(s.paper(row, "avg"))])
    out += md_table(header, rows)
    out += protocol_lines(s)
    out += baseline_lines(s)
    out += combination_lines(s)
    out += emp_lines(s)
    out += ["", "## Counts per cell", "",
            "train loss: the last epoch's mean training loss, averaged over the cell's runs (how well each "
            "method fit the training set in the step budget); s/run: mean run time (see Compute). "
            + near_constant_legend(*near_constant_counts(s.records), len(s.records)), ""]
    out += md_table(spec.key + ["metric", "mean", "std", "max", "n_scored", "n_ok", "n", "not ok by status",
                                "near-constant", "train loss", "s/run"],
                    [[str(c[a]) for a in spec.key]
                     + [c["metric"] or "?", num(c["mean"]), num(c["std"]), num(c["max"]), str(c["n_scored"]),
                        str(c["n_ok"]), str(c["n"]), c["failed_by_status"] or NA, near_constant_text(c),
                        num(c["train_loss_mean"], 3), num(c["seconds_mean"], 0)]
                     for _, c in s.cell_rows()])
    out += child_network_lines(s)
    out += target_lines(s)
    out += ["", "## Compute", ""] + compute_lines(s.records)
    out += missing_lines(s) + notes_lines(s)
    return "\n".join(out) + "\n"


def target_lines(s: Summary) -> list[str]:
    """The evaluation targets the runs were scored on (their target records), per table row and
    task, in the runs' declared order: a table of another kind (`transfer`) compares them; here
    they are listed so that no score a run made is left out of its table."""
    names = list(dict.fromkeys(n for t in s.records["targets"] for n in (t or {})))
    if not names:
        return []
    rows = []
    for row in s.rows:
        runs = s.runs(row)
        for task in s.tasks:
            of_task = runs[runs["task"] == task]
            for name in names:
                entries = [t[name] for t in of_task["targets"] if t and name in t]
                if not entries:
                    continue
                values = np.array([float(e["metrics"].get(e["main_metric"], np.nan)) for e in entries])
                got = values[np.isfinite(values)]
                std = f" ± {num(got.std(ddof=1))}" if len(got) >= 2 else ""
                rows.append(list(row) + [task, name, entries[0]["main_metric"],
                                         f"{num(got.mean()) if len(got) else NA}{std} ({len(got)}/{len(entries)})"])
    return ["", "## Evaluation targets", "",
            "Each run's final model scored on other tasks' splits (its target records; `table.kind: transfer` "
            "compares methods on them): the target's main metric, mean ± std over the runs scored (scored/runs). "
            "No test here.", ""] + md_table(list(s.spec.rows) + ["task", "target", "metric", "score"], rows)


def baseline_lines(s: Summary) -> list[str]:
    """Each method's difference to the baseline per task and on the average, with its interval and test."""
    spec, decl = s.spec, s.spec.comparisons
    named = spec.baseline if spec.baseline_axis == "method" else f"{spec.baseline_axis}={spec.baseline}"
    out = ["", f"## Difference to the baseline ({named or 'none declared'})", ""]
    if spec.baseline is None:
        return out + ["No baseline method is declared (table.baseline), so nothing is compared."]
    extra = ("p and CI are unknown with fewer than 2 seeds scored on both sides; seeds better: on how many of those "
             "seeds the row scored higher. Avg: each seed's average over the tasks (seeds scored on every task) is one "
             "score, compared in the same way; the Avg rows are in the Holm family."
             + ("" if spec.baseline_axis == "method" else f" Here the baseline is a value of {spec.baseline_axis}, "
                f"and each row is compared with the row that differs from it only there."))
    out += [line for paragraph in legend(s, extra) for line in (paragraph, "")]
    delta_rows = []
    for row in s.rows:
        if s.named(row)[spec.baseline_axis] == spec.baseline:
            continue
        for task in s.tasks:
            c = s.cell(row, task)
            if c is not None:
                delta_rows.append(list(row) + [task, signed(c["delta_vs_baseline"]), *test_cells(c, decl)])
        avg = s.average_of(row)
        if avg is not None:
            delta_rows.append(list(row) + ["Avg", signed(avg["delta"]), *test_cells(avg, decl)])
    if not delta_rows:
        return out + ["(no method besides the baseline)"]
    return out + md_table(list(spec.rows) + ["task", "Δ", *test_header(decl)], delta_rows)


def combination_lines(s: Summary) -> list[str]:
    """Each combination against the same table without one of its parts (report/combinations.py);
    nothing when the table has no such pair."""
    gains, decl = s.gains, s.spec.comparisons
    if gains is None or gains.empty:
        return []
    others = [a for a in s.spec.rows if a != "method"]
    out = ["", "## What each part of a combination adds", "",
           "Each combination against the row of this table without one of its parts: Δ = (combination − without), "
           "so a positive Δ is what adding that part gained. Interval and test as in the section above; these "
           "comparisons are in the same Holm family as the baseline comparisons (one family per table: each is "
           "one more claim the table makes).", ""]
    body = []
    for _, g in gains.iterrows():
        body.append([str(g[a]) for a in others] + [g["combination"], g["added"], g["without"], g["task"],
                     signed(g["delta"]), *test_cells(g, decl)])
    return out + md_table(others + ["combination", "adds", "without", "task", "Δ", *test_header(decl)], body)


def missing_lines(s: Summary) -> list[str]:
    key = s.spec.key
    out = ["", f"## Missing runs ({len(s.missing)} of {s.n_expected} expected)", ""]
    if not s.missing:
        return out + ["None: every declared " + " × ".join(key + ["seed"]) + " has a record."]
    by_cell: dict[tuple, list] = {}
    for *k, seed in s.missing:
        by_cell.setdefault(tuple(k), []).append(str(seed))
    return out + [f"- {' / '.join(v if a in ('model', 'task', 'method') else f'{a}={v}' for a, v in zip(key, k))}"
                  f": seed {', '.join(seeds)}" for k, seeds in by_cell.items()]


def notes_lines(s: Summary) -> list[str]:
    notes = []
    if s.outside:
        notes.append(f"{len(s.outside)} record(s) outside the declared grid, aggregated too: {', '.join(s.outside)}")
    notes += [f"more than one record for a seed (all aggregated): {d}" for d in s.duplicates]
    if s.spec.baseline is not None and s.spec.baseline not in set(s.records[s.spec.baseline_axis]):
        notes.append(f"the baseline {s.spec.baseline_axis} {s.spec.baseline!r} has no records: no differences can be computed")
    # a relaunch moves each to runs/corrupt/ and reruns its run (childtuning/integrity.py)
    notes += [f"corrupt record, not counted (a relaunch sets it aside and reruns the run): {msg}" for msg in s.skipped]
    return ["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else []


def natural(name: str) -> list:
    """Sort key that puts layer.2 before layer.10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def child_network_lines(s: Summary) -> list[str]:
    """Where a fixed child network (Child-Tuning_D) sits: per cell, the mean over seeds of the
    fraction of each layer's eligible weights its mask keeps. Empty when no record reports it."""
    key, rows, layers = s.spec.key, [], set()
    groups = cell_groups(s.records, key)
    for k, _ in s.cell_rows():                              # the table's cell order
        per_run = [st["kept_fraction_per_layer"] for st in groups[k]["method_stats"]
                   if isinstance(st.get("kept_fraction_per_layer"), dict)] if k in groups else []
        if per_run:
            layers |= {name for run in per_run for name in run}
            rows.append((k, per_run))
    if not rows:
        return []
    layers = sorted(layers, key=natural)
    table = []
    for k, per_run in rows:
        means = [np.mean([run[name] for run in per_run if name in run]) * 100
                 if any(name in run for run in per_run) else math.nan for name in layers]
        table.append([str(v) for v in k] + [str(len(per_run))] + [num(m, 1) for m in means])
    return ["", "## Child network", "",
            "Fraction (%) of each layer's eligible weights that the fixed mask keeps "
            "(`method_stats.kept_fraction_per_layer`), mean over the runs that report it.", ""] \
        + md_table(key + ["runs"] + layers, table)


def compute_lines(records: pd.DataFrame) -> list[str]:
    """What the records cost: the summed run time, the span they ran in and the devices."""
    timed = records[np.isfinite(records["seconds"])]
    if timed.empty:
        return ["No record has started_at and finished_at, so no run time is known."]
    total = timed["seconds"].sum()
    devices = sorted(timed["device"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    scored = "target_seconds" in timed and np.isfinite(timed["target_seconds"]).any()    # frames.load_records adds them
    ends = timed["last_at"] if scored and "last_at" in timed else timed["finished_at"]    # targets are scored after the record
    first, last = min(timed["started_at"], key=timestamp), max(ends, key=timestamp)
    targets = " plus its target records' seconds" if scored else ""
    return [f"Run time (finished_at − started_at, per record{targets}) summed over {len(timed)} of {len(records)} "
            f"record(s): {total:,.0f} s = {total / 3600:.2f} h.",
            f"First run started {first}, last finished {last} "
            f"(the span includes {'the target records, scored after their runs, and ' if scored else ''}any pause "
            "between sweeps; runs that ran side by side overlap in the sum).",
            "Devices: " + "; ".join(f"{d} ({n} run{'s' if n != 1 else ''})" for d, n in devices) + "."] + \
        resumed_lines(timed) + split_lines(timed)


def resumed_lines(timed: pd.DataFrame) -> list[str]:
    """Say which runs were resumed from a checkpoint and how their time is counted."""
    resumed = timed[timed["resumed"].fillna(False).astype(bool)] if "resumed" in timed else timed.iloc[0:0]
    if resumed.empty:
        return []
    return [f"{len(resumed)} record(s) resumed from a checkpoint ({', '.join(resumed['run_id'])}): their time stamps "
            "cover the last attempt only, so each counts its measured training, preparation and target time "
            "(summed over its attempts; loading and writing of the earlier attempts are not known)."]


def split_lines(timed: pd.DataFrame) -> list[str]:
    """Where the run time went: training, the method's preparation, target evaluation, the rest."""
    timed = timed[np.isfinite(timed["train_seconds"])]
    if timed.empty or timed["seconds"].sum() <= 0:     # no time to split (e.g. records of a fraction of a second)
        return []
    parts = {"training (steps and dev evaluations)": timed["train_seconds"],
             "preparation (e.g. Child-Tuning_D's Fisher pass)": timed["prepare_seconds"].fillna(0),
             "target evaluation": timed["target_seconds"].fillna(0)}
    other = timed["seconds"] - sum(parts.values())
    total = timed["seconds"].sum()
    shares = [f"{name} {100 * v.sum() / total:.1f}%" for name, v in parts.items() if v.sum() > 0]
    return [f"Of the run time of the {len(timed)} record(s) with train_seconds: " + ", ".join(shares) +
            f", everything else (imports, loading data and weights, tokenising, writing) {100 * other.sum() / total:.1f}%, "
            f"median {other.median():.0f} s per run (the time stamps have whole seconds)."]
