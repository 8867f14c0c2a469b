"""The domain-transfer table kind (`table.kind: transfer`): rows model x source task x method,
columns the evaluation targets each run scored its final model on (record["targets"]), the
in-domain dev score first. Per cell: mean ± std over seeds, Δ to the baseline method compared as
the experiment declares (table.comparisons, as in Table 1's), and each target's majority-class
score. One Holm family covers every source task's and target's comparisons."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .family import legend
from .markdown import compute_lines
from .frames import flag
from .plots import save_png
from .registry import TableKind, register
from .stats import (COMPARISON, compare_cells, finite, missing_runs, near_constant_counts, outside_grid,
                    status_counts)
from .text import NA, md_table, near_constant_legend, near_constant_text, num, signed, test_cells, test_header

IN_DOMAIN = "in-domain (dev)"
KEY = ["model", "task", "method", "target"]
STATS = ["metric", "mean", "std", "n_ok", "n", "n_scored", "failed_by_status", "n_near_constant",
         "n_near_constant_unknown", "majority", "delta_vs_baseline", "ci_low", "ci_high", "p", "p_holm", "seeds_better",
         "equivalent"]


def long_frame(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, target): the target's main metric; the in-domain dev score as a target too."""
    rows = []
    for _, r in records.iterrows():
        base = {"model": r["model"], "task": r["task"], "method": r["method"], "seed": r["seed"], "run_id": r["run_id"]}
        rows.append({**base, "target": IN_DOMAIN, "metric": r["metric"], "value": r["value"], "status": r["status"],
                     "majority": math.nan, "near_constant": r["near_constant"]})
        for name, t in (r["targets"] or {}).items():
            main = t.get("main_metric", "")
            status = r["status"] if r["status"] != "ok" else ("degenerate" if t.get("degenerate") else "ok")
            rows.append({**base, "target": name, "metric": main, "value": float(t["metrics"].get(main, math.nan)),
                         "status": status, "majority": float((t.get("majority_class") or {}).get(main, math.nan)),
                         "near_constant": flag(t.get("near_constant")), "by_label": t.get("by_label"),
                         "by_bin": t.get("by_bin")})
    return pd.DataFrame(rows, columns=["model", "task", "method", "seed", "run_id", "target", "metric", "value",
                                       "status", "majority", "near_constant", "by_label", "by_bin"])


@dataclass
class TransferSummary:
    spec: object
    records: pd.DataFrame
    long: pd.DataFrame
    cells: pd.DataFrame
    missing: list
    outside: list
    skipped: list
    family: object = None           # the Holm family (report/family.py), set by the aggregator
    provenance: object = None       # the records against the declaration (report/family.py)

    @property
    def n_expected(self) -> int:
        return math.prod(len(self.spec.expected[a]) for a in self.spec.key + ["seed"])


@register
class TransferTable(TableKind):
    name = "transfer"

    def check(self, spec, where: str) -> None:
        if spec.rows != ["model", "method"] or spec.columns != "target" or spec.baseline_axis != "method":
            raise InputError(f"{where}: a transfer table has rows [model, method] (one block per source task), "
                             f"columns target and a baseline method (got rows {spec.rows}, columns {spec.columns})")

    def summarize(self, spec, records, skipped):
        long = long_frame(records)
        targets = list(dict.fromkeys(long["target"]))
        groups = {k: sub for k, sub in long.groupby(KEY, sort=False)}
        cells = []
        for model in dict.fromkeys(records["model"]):
            for task in spec.expected["task"] + sorted(set(records["task"]) - set(spec.expected["task"])):
                for method in spec.expected["method"] + sorted(set(records["method"]) - set(spec.expected["method"])):
                    for target in targets:
                        sub = groups.get((model, task, method, target))
                        if sub is None:
                            continue
                        got, not_ok = finite(sub["value"]), sub["status"][sub["status"] != "ok"]
                        row = {"model": model, "task": task, "method": method, "target": target,
                               "metric": "/".join(sorted(set(sub["metric"]) - {""})),
                               "mean": got.mean() if len(got) else math.nan,
                               "std": got.std(ddof=1) if len(got) >= 2 else math.nan,
                               "n_ok": len(sub) - len(not_ok), "n": len(sub), "n_scored": len(got),
                               "failed_by_status": status_counts(not_ok),
                               **dict(zip(("n_near_constant", "n_near_constant_unknown"), near_constant_counts(sub))),
                               "majority": sub["majority"].iloc[0], "delta_vs_baseline": math.nan, "ci_low": math.nan,
                               "ci_high": math.nan, "p": math.nan, "p_holm": math.nan, "seeds_better": "",
                               "equivalent": ""}
                        base = groups.get((model, task, spec.baseline, target))
                        if spec.baseline is not None and method != spec.baseline and base is not None:
                            got = compare_cells(sub, base, spec.comparisons)
                            row.update({("delta_vs_baseline" if c == "delta" else c): got[c] for c in COMPARISON})
                        cells.append(row)
        frame = pd.DataFrame(cells, columns=KEY + STATS)
        return TransferSummary(spec, records, long, frame, missing_runs(records, spec), outside_grid(records, spec),
                               skipped)

    def render(self, s: TransferSummary) -> dict[str, str]:
        return {"table.csv": s.cells.to_csv(index=False, float_format="%.10g", na_rep="", lineterminator="\n"),
                "table.md": render_markdown(s), "table.tex": render_latex(s)}

    def comparisons(self, s: TransferSummary) -> list:
        return [(s.cells, (s.cells["method"] != s.spec.baseline).to_numpy())] if s.spec.baseline is not None else []

    def plot(self, s: TransferSummary, folder: Path) -> list[Path]:
        return plot_targets(s, folder)


def _blocks(s: TransferSummary):
    """(model, source task, its cells) in table order."""
    for (model, task), block in s.cells.groupby(["model", "task"], sort=False):
        yield model, task, block


def render_markdown(s: TransferSummary) -> str:
    spec = s.spec
    out = [f"# Experiment `{spec.experiment}`: domain transfer", ""] + [f"{n}" for n in spec.notes]
    out += ["Each run trains on its source task, then scores its final model (eval mode) on each target's split, its "
            "predicted source labels mapped to the target's labels (the record names each map). Main metric of each "
            "target, at the last epoch, mean ± sample std over seeds, `(n_ok/n)`; the in-domain column is the source's "
            "own dev split. majority: always predicting the target's most frequent label.", ""]
    if spec.caption:
        out += [f"**Differences to the paper's setting.** {spec.caption}", ""]
    for model, task, block in _blocks(s):
        targets = list(dict.fromkeys(block["target"]))
        out += [f"## {model}, trained on {task}", ""]
        by_cell = {(c["method"], c["target"]): c for c in block.to_dict("records")}
        rows = [[m] + [_cell(by_cell.get((m, t))) for t in targets] for m in dict.fromkeys(block["method"])]
        majority = [num(block[block["target"] == t]["majority"].iloc[0]) for t in targets]
        out += md_table(["method"] + targets, rows + [["majority class"] + majority])
        out += ["", f"Δ to {spec.baseline} (legend: see Comparisons below):", ""]
        decl = spec.comparisons
        deltas = [[c["method"], c["target"], signed(c["delta_vs_baseline"]), *test_cells(c, decl)]
                  for c in block.to_dict("records") if c["method"] != spec.baseline]
        out += md_table(["method", "target", "Δ", *test_header(decl)], deltas) \
            if deltas else ["(no method besides the baseline)"]
        out.append("")
    if spec.baseline is not None:
        out += ["## Comparisons", ""] + [line for paragraph in legend(
            s, "p and CI are unknown with fewer than 2 seeds scored on both sides; seeds better: on how many of those "
               "seeds the row scored higher. The family covers every source task's and target's comparisons.")
            for line in (paragraph, "")]
    out += ["## Counts per cell", "", near_constant_legend(*near_constant_counts(s.long), len(s.long), "run × target scores")
            + " A run counts once per target (the in-domain column: its own dev predictions).", ""]
    out += md_table(KEY + ["n_scored", "n_ok", "n", "not ok by status", "near-constant"],
                    [[c[k] for k in KEY] + [str(c["n_scored"]), str(c["n_ok"]), str(c["n"]),
                                            c["failed_by_status"] or NA, near_constant_text(c)]
                     for c in s.cells.to_dict("records")]) + [""]
    out += confusion_lines(s.long)
    out += ["## Compute", ""] + compute_lines(s.records) + [""]
    if np.isfinite(s.records["target_seconds"]).any():
        out += [f"Target evaluation (record `target_seconds`): {_share(s.records)} of the summed run time.", ""]
    out += [f"## Missing runs ({len(s.missing)} of {s.n_expected} expected)", ""]
    out += [f"- {' / '.join(map(str, k[:-1]))}: seed {k[-1]}" for k in s.missing] or ["None."]
    notes = [f"skipped unreadable file {m}" for m in s.skipped] + \
        ([f"{len(s.outside)} record(s) outside the grid: {', '.join(s.outside)}"] if s.outside else [])
    return "\n".join(out + (["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


def _kept(value) -> bool:
    return isinstance(value, dict) and bool(value)


def _add(total: dict, by_label: dict) -> None:
    for gold, row in by_label.items():
        for pred, n in row.items():
            total.setdefault(gold, {}).setdefault(pred, 0)
            total[gold][pred] += int(n)


def confusion(long: pd.DataFrame) -> pd.DataFrame:
    """The target records' confusion counts summed over seeds: one row per model, source task,
    method, target and gold label, a column per predicted label (records made before target
    records kept them are left out; `confusion_lines` counts them)."""
    rows = []
    for key, sub in long[long["by_label"].map(_kept)].groupby(KEY, sort=False):
        total: dict[str, dict[str, int]] = {}
        for by_label in sub["by_label"]:
            _add(total, by_label)
        rows += [{**dict(zip(KEY, key)), "seeds": len(sub), "gold": gold, **row} for gold, row in total.items()]
    return pd.DataFrame(rows)


def confusion_by_bin(long: pd.DataFrame) -> pd.DataFrame:
    """As `confusion`, within each bin of the target task's breakdown column (task.breakdown; the
    records' `predictions.by_bin`): a `column` and a `bin` column beside the gold label."""
    rows = []
    for key, sub in long[long["by_bin"].map(_kept)].groupby(KEY, sort=False):
        totals: dict[tuple, dict] = {}
        for by_bin in sub["by_bin"]:
            for name, by_label in by_bin["bins"].items():
                _add(totals.setdefault((by_bin["column"], name), {}), by_label)
        rows += [{**dict(zip(KEY, key)), "seeds": len(sub), "column": column, "bin": name, "gold": gold, **row}
                 for (column, name), total in totals.items() for gold, row in total.items()]
    return pd.DataFrame(rows)


def _confusion_rows(frame: pd.DataFrame, head: list[str]) -> tuple[list[str], list[list[str]]]:
    """The predicted-label columns of a confusion frame and its rows as table cells: `head` columns,
    then the gold label's n and each predicted label's count and share of n."""
    preds = [c for c in frame.columns if c not in KEY + ["seeds", "column", "bin", "gold"]]
    rows = []
    for r in frame.to_dict("records"):
        n = sum(int(r[c]) for c in preds if pd.notna(r[c]))
        rows.append([str(r[h]) for h in head] + [f"{n:,}"] +
                    [f"{int(r[c]):,} ({100 * r[c] / n:.1f}%)" if n and pd.notna(r[c]) else NA for c in preds])
    return preds, rows


def confusion_lines(long: pd.DataFrame) -> list[str]:
    """The sections "Predictions by gold label" (and by bin of a target's breakdown column), from
    the target records that keep confusion counts."""
    scored = long[long["target"] != IN_DOMAIN]
    frame = confusion(scored)
    if frame.empty:
        return []
    lacking = int((~scored["by_label"].map(_kept)).sum())
    said = (f" {lacking} run × target score(s) come from target records made before records kept these counts, "
            "and are left out." if lacking else "")
    head = ["model", "task", "method", "target", "seeds", "gold"]
    preds, rows = _confusion_rows(frame, head)
    names = ["model", "source", "method", "target", "seeds", "gold", "n"]
    out = ["## Predictions by gold label", "",
           "What each target's gold labels were predicted as (after the label map), counts summed over the seeds "
           "scored, with the share of the gold label's examples (the record's `predictions.by_label`)." + said, ""] + \
        md_table(names + [f"predicted {c}" for c in preds], rows) + [""]
    binned = confusion_by_bin(scored)
    for (target, column), part in (binned.groupby(["target", "column"], sort=False) if not binned.empty else []):
        preds, rows = _confusion_rows(part, ["model", "task", "method", "seeds", "bin", "gold"])
        out += [f"### {target} by {column}", "",
                f"The same counts within bins of the target's `{column}` column (its task file's `breakdown`; the "
                "record's `predictions.by_bin`), summed over seeds.", ""] + \
            md_table(["model", "source", "method", "seeds", "bin", "gold", "n"] + [f"predicted {c}" for c in preds],
                     rows) + [""]
    return out


def _share(records: pd.DataFrame) -> str:
    timed = records[np.isfinite(records["seconds"]) & np.isfinite(records["target_seconds"])]
    total, spent = timed["seconds"].sum(), timed["target_seconds"].sum()
    return f"{spent:,.0f} s of {total:,.0f} s ({spent / total:.1%})" if total > 0 else NA


def _cell(c) -> str:
    if c is None:
        return NA
    mean = NA if not np.isfinite(c["mean"]) else f"{num(c['mean'])} ± {num(c['std'])}"
    return f"{mean} ({c['n_ok']}/{c['n']})"


def render_latex(s: TransferSummary) -> str:
    lines = [f"% {s.spec.experiment}: domain transfer, target main metric, mean $\\pm$ std over seeds. "
             "Needs \\usepackage{booktabs}."]
    for model, task, block in _blocks(s):
        targets = list(dict.fromkeys(block["target"]))
        lines += [f"% {model} trained on {task}", "\\begin{tabular}{l" + "r" * len(targets) + "}", "\\toprule",
                  "Method & " + " & ".join(t.replace("_", "\\_") for t in targets) + " \\\\", "\\midrule"]
        for m in dict.fromkeys(block["method"]):
            vals = []
            for t in targets:
                c = block[(block["method"] == m) & (block["target"] == t)]
                mean, std = (c["mean"].iloc[0], c["std"].iloc[0]) if len(c) else (math.nan, math.nan)
                vals.append("--" if not np.isfinite(mean) else
                            f"${mean:.2f} \\pm {std:.2f}$" if np.isfinite(std) else f"${mean:.2f}$")
            lines.append(m.replace("_", "\\_") + " & " + " & ".join(vals) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def plot_targets(s: TransferSummary, folder: Path) -> list[Path]:
    """One PNG per source task: per target, each method's per-seed scores as dots and its mean as a bar."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for model, task, block in _blocks(s):
        targets, methods = list(dict.fromkeys(block["target"])), list(dict.fromkeys(block["method"]))
        fig = Figure(figsize=(max(5.0, 1.3 * len(targets) + 1), 3.6), dpi=100)
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(methods))
        for j, m in enumerate(methods):
            for i, t in enumerate(targets):
                sub = s.long[(s.long["model"] == model) & (s.long["task"] == task) & (s.long["method"] == m)
                             & (s.long["target"] == t)]
                vals = finite(sub["value"])
                x = i - 0.4 + width * (j + 0.5)
                ax.scatter(np.full(len(vals), x), vals, s=12, color=f"C{j}", label=m if i == 0 else None, zorder=3)
                if len(vals):
                    ax.hlines(vals.mean(), x - width / 2, x + width / 2, color=f"C{j}", linewidth=2)
        ax.set_xticks(range(len(targets)), targets, fontsize=7, rotation=15)
        ax.set_ylabel("main metric")
        ax.set_title(f"{s.spec.experiment}: {model} trained on {task}, one dot per seed", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        written.append(save_png(fig, folder / f"{task}.png"))
    return written
