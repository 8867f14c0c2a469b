"""table.md, table.tex and per-target plots of a task-transfer summary (report/task_transfer.py)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..probe.records import PRETRAINED
from .family import legend
from .latex import tex
from .markdown import compute_lines
from .plots import STATUS_COLORS, filename, save_png
from .stats import near_constant_counts
from .text import NA, md_table, near_constant_legend, near_constant_text, num, signed, test_cells, test_header


def cell_text(c) -> str:
    """`mean ± std (scored/n)`: n = source runs probed (the reference: head seeds)."""
    if c is None:
        return NA
    n_scored, n = (c["n_scored"], c["n_probes"]) if c["method"] == PRETRAINED else (c["n_sources_scored"], c["n_sources"])
    if not np.isfinite(c["mean"]):
        return f"{NA} ({n_scored}/{n})"
    return f"{num(c['mean'])} ± {num(c['std'])} ({n_scored}/{n})"


def source_text(c) -> str:
    if c is None or c["source_n"] == 0:
        return NA
    return f"{num(c['source_mean'])} ± {num(c['source_std'])} ({c['source_n_ok']}/{c['source_n']})"


def render_markdown(s) -> str:
    spec = s.spec
    out = [f"# Experiment `{spec.experiment}`: task transfer by linear probes", "",
           f"Each encoder fine-tuned on **{s.source_task}** (one run per method and source seed) is frozen (eval mode) "
           "and a fresh linear head is trained on each target task's training set, then scored on its dev set "
           "(the target's main metric, the head's last epoch). Head seeds are averaged within a source run first; "
           "a cell is `mean ± sample std (scored/n)` over the source seeds (n: source runs probed, scored: those "
           f"with a finite mean). Row `{PRETRAINED}`: the same probe on the un-fine-tuned pretrained encoder, one "
           "encoder, so its ± and n are over head seeds. Degenerate probes (a head predicting one class) keep their "
           "score; diverged or failed ones have none and only count. "
           f"Source column: the source run's own {s.source_task} dev score (last epoch), mean ± std (n_ok/n).", "",
           f"Probes: targets {', '.join(s.targets)}; head seeds {', '.join(map(str, s.plan['head_seeds']))}. "
           "Metrics: " + ", ".join(f"{t}: {s.metric(t)}" for t in s.targets) + ".",
           f"Paper values: {spec.paper_source or 'none given'}.", ""]
    header = ["model", "method", f"source: {s.source_task}"] + list(s.targets) + ["Avg"]
    out += md_table(header, [[*row, source_text(s.source_cell(row))] + [cell_text(s.cell(row, t)) for t in s.targets]
                             + [num(s.avg(row))] for row in s.rows])
    out += delta_lines(s) + per_source_lines(s)
    out += ["", "## Counts per cell", "", "Probes per cell; " + near_constant_legend(
        *near_constant_counts(s.records), len(s.records), "probe records") + " (A probe's flag is about its head's dev "
        "predictions.)", ""]
    out += md_table(["model", "method", "target", "metric", "mean", "std", "over", "sources scored", "probes",
                     "probes scored", "n_ok", "not ok by status", "near-constant"],
                    [[c["model"], c["method"], c["target"], c["metric"] or "?", num(c["mean"]), num(c["std"]), c["spread"],
                      f"{c['n_sources_scored']}/{c['n_sources']}", str(c["n_probes"]), str(c["n_scored"]),
                      str(c["n_ok"]), c["failed_by_status"] or NA, near_constant_text(c)] for _, c in s.cells.iterrows()])
    out += ["", "## Compute", ""] + transfer_compute_lines(s)
    out += missing_lines(s) + notes_lines(s)
    return "\n".join(out) + "\n"


def delta_lines(s) -> list[str]:
    base, decl = s.spec.baseline, s.spec.comparisons
    out = ["", f"## Difference to the baseline ({base or 'none declared'})", ""]
    if base is None:
        return out + ["No baseline method is declared (table.baseline), so nothing is compared."]
    out += ["Per target, over per-source scores (head seeds averaged first).", ""]
    out += [line for paragraph in legend(
        s, "p and CI are unknown with fewer than 2 source seeds scored on both sides; seeds better: on how many of them "
           f"the row scored higher. Row {PRETRAINED}: the difference of means only, no interval or test (its spread is "
           "over head seeds, not comparable with source seeds), so it is outside the family. Avg: each source seed's "
           "average over the targets (seeds scored on every target) is one score, compared in the same way; the Avg "
           "rows are in the Holm family.") for line in (paragraph, "")]
    rows = []
    averages = {(a["model"], a["method"]): a for a in s.averages.to_dict("records")} if s.averages is not None else {}
    for row in s.rows:
        if row[1] == base:
            continue
        for t in s.targets:
            c = s.cell(row, t)
            if c is not None:
                rows.append([*row, t, signed(c["delta_vs_baseline"]), *test_cells(c, decl)])
        avg = averages.get(tuple(row))
        if avg is not None:
            rows.append([*row, "Avg", signed(avg["delta"]), *test_cells(avg, decl)])
        else:                                   # the pretrained row: the difference of the averages only
            rows.append([*row, "Avg", signed(s.avg(row) - s.avg((row[0], base)))] + [NA] * len(test_header(decl)))
    if not rows:
        return out + ["(no row besides the baseline)"]
    return out + md_table(["model", "method", "target", "Δ", *test_header(decl)], rows)


def per_source_lines(s) -> list[str]:
    """Every encoder's per-target score (mean over its head seeds) and its source run."""
    src = s.per_source
    status = dict(zip(s.sources["run_id"], s.sources["status"]))
    score = dict(zip(s.sources["run_id"], s.sources["value"]))
    out = ["", "## Per source run", "",
           "Each encoder's score per target: the mean over its head seeds (scored/probed), with its source run.", ""]
    rows = []
    keys = src[["model", "method", "seed", "source_run_id"]].drop_duplicates()
    rank = {row: i for i, row in enumerate(s.rows)}
    keys = sorted(keys.itertuples(index=False, name=None),
                  key=lambda k: (rank.get((k[0], k[1]), len(rank)), -1 if pd.isna(k[2]) else int(k[2]), str(k[3])))
    for model, method, seed, rid in keys:
        rid = None if pd.isna(rid) else rid
        mine = src[(src["model"] == model) & (src["method"] == method) & (src["source_run_id"].fillna("") == (rid or ""))]
        by_target = {r["task"]: r for _, r in mine.iterrows()}
        cells = [f"{num(by_target[t]['value'])} ({by_target[t]['n_heads_scored']}/{by_target[t]['n_heads']})"
                 if t in by_target else NA for t in s.targets]
        rows.append([model, method, NA if pd.isna(seed) else str(int(seed)), rid or f"({PRETRAINED} encoder)",
                     status.get(rid, NA) if rid else NA, num(score.get(rid, math.nan)) if rid else NA] + cells)
    return out + md_table(["model", "method", "seed", "source run", "source status", f"source {s.source_task}"]
                          + list(s.targets), rows)


def transfer_compute_lines(s) -> list[str]:
    probes = s.records
    extraction = probes.drop_duplicates(["model", "method", "source_run_id", "task"])["feature_seconds"]
    heads = probes["train_seconds"]
    out = ["Source runs: " + " ".join(compute_lines(s.sources)) if not s.sources.empty else "Source runs: none recorded."]
    out += [f"Probes: feature extraction {np.nansum(extraction):,.0f} s (counted once per encoder and target; features "
            f"read from the cache count 0), head training {np.nansum(heads):,.0f} s over {len(probes)} probe(s). "
            "Devices: " + "; ".join(f"{d} ({n})" for d, n in sorted(probes["device"].value_counts().items())) + "."]
    return out


def missing_lines(s) -> list[str]:
    failed = set(s.sources.loc[s.sources["status"] == "failed", "seed"].astype(str) + "/" +
                 s.sources.loc[s.sources["status"] == "failed", "method"])
    out = ["", f"## Missing ({len(s.missing)} of {s.n_expected} expected probes)", ""]
    if s.missing_sources:
        out += [f"- source run without a record: {' / '.join(map(str, k))}" for k in s.missing_sources]
    if not s.missing:
        return out + ["None: every expected encoder × target × head seed has a probe record."]
    by_encoder: dict[tuple, list] = {}
    for model, method, seed, target, head in s.missing:
        by_encoder.setdefault((model, method, seed), []).append(f"{target}/h{head}")
    for (model, method, seed), probes in by_encoder.items():
        why = " (its source run failed: no model)" if f"{seed}/{method}" in failed else ""
        label = f"{model} / {method}" + ("" if seed is None else f" / seed {seed}")
        out.append(f"- {label}{why}: {', '.join(probes)}")
    return out


def notes_lines(s) -> list[str]:
    notes = []
    if s.outside:
        notes.append(f"{len(s.outside)} probe record(s) outside the declared grid, aggregated too: {', '.join(s.outside)}")
    notes += [f"more than one probe record for one encoder, target and head seed (all aggregated): {d}" for d in s.duplicates]
    if s.spec.baseline is not None and s.spec.baseline not in set(s.records["method"]):
        notes.append(f"the baseline method {s.spec.baseline!r} has no probes: no differences can be computed")
    notes += [f"skipped unreadable file {msg}" for msg in s.skipped]
    return ["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else []


def render_latex(s) -> str:
    def value(mean, std=math.nan):
        if not np.isfinite(mean):
            return "--"
        return f"${mean:.2f} \\pm {std:.2f}$" if np.isfinite(std) else f"${mean:.2f}$"

    lines = [f"% {tex(s.spec.experiment)}: linear probes of frozen encoders fine-tuned on {tex(s.source_task)}; mean "
             "$\\pm$ sample std over source seeds (head seeds averaged first; pretrained: over head seeds). "
             "Needs \\usepackage{booktabs}.",
             "\\begin{tabular}{ll" + "r" * (len(s.targets) + 2) + "}", "\\toprule",
             f"Model & Method & {tex(s.source_task)} (source) & "
             + " & ".join(f"{tex(t)} ({tex(s.metric(t))})" for t in s.targets) + " & Avg \\\\", "\\midrule"]
    for row in s.rows:
        src = s.source_cell(row)
        first = value(src["source_mean"], src["source_std"]) if src is not None and src["source_n"] else "--"
        cells = [s.cell(row, t) for t in s.targets]
        lines.append(" & ".join(map(tex, row)) + f" & {first} & "
                     + " & ".join(value(c["mean"], c["std"]) if c is not None else "--" for c in cells)
                     + f" & {value(s.avg(row))} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def plot_targets(s, folder: Path) -> list[Path]:
    """One PNG per target: per row, each source run's score (head-seed mean) as a dot (the
    pretrained reference: each head seed), the mean as a bar."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for target in s.targets:
        fig = Figure(figsize=(max(4.0, 1.2 * len(s.rows) + 1.5), 3.6), dpi=100)
        ax = fig.add_subplot()
        labels, seen = [], set()
        for x, (model, method) in enumerate(s.rows):
            if method == PRETRAINED:
                sub = s.records[(s.records["model"] == model) & (s.records["method"] == method) & (s.records["task"] == target)]
                values, statuses = sub["value"].to_numpy(), list(sub["status"])
            else:
                sub = s.per_source[(s.per_source["model"] == model) & (s.per_source["method"] == method)
                                   & (s.per_source["task"] == target)]
                values, statuses = sub["value"].to_numpy(), ["ok"] * len(sub)
            scored = np.isfinite(values)
            labels.append(f"{model}\n{method}" + (f"\n+{int((~scored).sum())} without score" if (~scored).any() else ""))
            got = values[scored]
            offsets = np.linspace(-0.2, 0.2, len(got)) if len(got) > 1 else np.zeros(len(got))
            for dx, v, st in zip(offsets, got, [st for st, ok in zip(statuses, scored) if ok]):
                name = "head seed" if method == PRETRAINED else "source run (mean of head seeds)"
                ax.scatter(x + dx, v, s=22, color=STATUS_COLORS.get(st, "tab:red"),
                           marker="^" if method == PRETRAINED else "o", label=name if name not in seen else None, zorder=3)
                seen.add(name)
            if len(got):
                ax.hlines(got.mean(), x - 0.3, x + 0.3, color="black", linewidth=1.5, zorder=2)
        ax.set_xticks(range(len(s.rows)), labels, fontsize=7)
        ax.set_xlim(-0.6, len(s.rows) - 0.4)
        ax.set_ylabel(s.metric(target))
        ax.set_title(f"{s.spec.experiment}: {s.source_task} → {target} (bar: mean)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if seen:
            ax.legend(fontsize=7, loc="best")
        written.append(save_png(fig, folder / f"{filename(target)}.png"))
    return written
