"""The task-transfer table kind (`table.kind: task_transfer`, paper Sec. 3.4): rows model x method
(the source's fine-tuning method, plus `pretrained`, the un-fine-tuned reference), columns the
target tasks of the experiment's probes (childtuning/probe), the source task's own dev score beside.

Statistics, per row and target: each source run's score is the mean over its head seeds of the
probes' main metric (head seeds are averaged within a source seed first); the cell is the mean ±
sample std of those per-source scores over the source seeds. The pretrained reference is one
encoder, so its ± is over head seeds. Δ to the baseline method: over per-source scores, compared as
the experiment declares (table.comparisons; by default paired by source seed, which fixes the data
order and the head initialisation under every method: the mean paired difference, its t interval
and the paired t-test, report/inference.py); the pretrained row gets the difference of means only.
The Avg comparisons (each source seed's average over the targets) join the targets' in one Holm
family. Probes without a finite score (diverged, failed) count but do not enter a mean; a source
run whose head seeds are all unscored has no per-source score.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ..errors import InputError
from ..probe.records import PRETRAINED
from ..sweep import CONF_DIR, composer
from .probes import load_probes
from .inference import EMPTY, compare
from .registry import TableKind, register
from .stats import COMPARISON, compare_averages, finite, near_constant_counts, status_counts
from .task_transfer_render import plot_targets, render_latex, render_markdown

CSV_COLUMNS = ["model", "method", "target", "metric", "mean", "std", "spread", "n_sources", "n_sources_scored",
               "n_probes", "n_scored", "n_ok", "n_failed", "failed_by_status", "n_near_constant",
               "n_near_constant_unknown", "delta_vs_baseline", "ci_low", "ci_high", "p", "p_holm", "seeds_better",
               "equivalent", "source_task", "source_metric", "source_mean", "source_std", "source_n_ok", "source_n"]
FLOATS = ("mean", "std", "delta_vs_baseline", "ci_low", "ci_high", "p", "p_holm", "source_mean", "source_std")
PROBE_AXES = ["model", "method", "seed", "task", "head_seed"]


def probe_plan(path) -> dict:
    """The probes of experiment file `path`: conf/probe/default.yaml under its `probe:` block
    (targets, head_seeds, reference), as `python -m childtuning.probe exp=<experiment>` reads them."""
    plan = OmegaConf.load(CONF_DIR / "probe" / "default.yaml")
    if path is not None:
        with composer(path) as compose_with:
            block = OmegaConf.select(compose_with(), "probe")
        if block is not None:
            plan = OmegaConf.merge(plan, block)
    plan = OmegaConf.to_container(plan, resolve=True)
    return {"targets": list(plan.get("targets") or []), "head_seeds": [int(s) for s in plan.get("head_seeds") or []],
            "reference": bool(plan.get("reference"))}


@dataclass
class TransferSummary:
    """Everything the renderers read (childtuning/report/task_transfer_render.py)."""
    spec: object
    records: pd.DataFrame          # the probe records, one row each
    sources: pd.DataFrame          # the experiment's own run records (the source runs)
    per_source: pd.DataFrame       # one row per encoder x target: the mean over its head seeds
    cells: pd.DataFrame            # one row per model x method x target (table.csv)
    source_cells: pd.DataFrame     # one row per model x method: the source task's dev score
    targets: list[str]
    rows: list[tuple]
    plan: dict
    averages: pd.DataFrame | None = None   # each row's Avg over the targets against the baseline's
    family: object = None                  # the Holm family (report/family.py), set by the aggregator
    provenance: object = None              # the records against the declaration (report/family.py)
    missing: list[tuple] = field(default_factory=list)          # (model, method, seed, target, head seed)
    missing_sources: list[tuple] = field(default_factory=list)  # (model, task, method, seed) without a run record
    outside: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self):
        # positions, not rows: the aggregator fills p_holm into `cells` after this (report/family.py)
        self._cells = {(c["model"], c["method"], c["target"]): i for i, (_, c) in enumerate(self.cells.iterrows())}
        self._source = {(c["model"], c["method"]): c for _, c in self.source_cells.iterrows()}

    @property
    def n_expected(self) -> int:
        n_sources = math.prod(len(self.spec.expected[a]) for a in ("model", "method", "seed"))
        n_ref = len(self.spec.expected["model"]) if self.plan["reference"] else 0
        return (n_sources + n_ref) * len(self.plan["targets"]) * len(self.plan["head_seeds"])

    def cell(self, row: tuple, target: str):
        i = self._cells.get((*row, target))
        return None if i is None else self.cells.iloc[i]

    def source_cell(self, row: tuple):
        return self._source.get(row)

    def avg(self, row: tuple) -> float:
        """The mean of the per-target means; NaN unless every target has one."""
        means = [self.cell(row, t)["mean"] if self.cell(row, t) is not None else math.nan for t in self.targets]
        return float(np.mean(means)) if means and np.all(np.isfinite(means)) else math.nan

    def metric(self, target: str) -> str:
        c = self.cells.loc[self.cells["target"] == target, "metric"]
        return "/".join(sorted(set(c) - {""})) or "?"

    @property
    def source_task(self) -> str:
        return str(self.spec.expected["task"][0])


def per_source_scores(probes: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder (source run, or the pretrained model) x target: its probes' count, how
    many have a score, and the mean of those scores over head seeds (NaN if none)."""
    key = ["model", "method", "seed", "source_run_id", "task"]
    rows = []
    for k, sub in probes.groupby(key, sort=False, dropna=False):
        got = finite(sub["value"])
        rows.append({**dict(zip(key, k)), "metric": "/".join(sorted(set(sub["metric"]) - {""})),
                     "n_heads": len(sub), "n_heads_scored": len(got), "value": got.mean() if len(got) else math.nan})
    frame = pd.DataFrame(rows, columns=key + ["metric", "n_heads", "n_heads_scored", "value"])
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def row_order(spec, probes: pd.DataFrame, plan: dict) -> list[tuple]:
    models = list(dict.fromkeys([*spec.expected["model"], *sorted(set(probes["model"]))]))
    methods = ([PRETRAINED] if plan["reference"] or PRETRAINED in set(probes["method"]) else []) + \
        [m for m in spec.expected["method"] if m != PRETRAINED]
    methods += sorted(set(probes["method"]) - set(methods))
    present = set(probes[["model", "method"]].itertuples(index=False, name=None))
    expected = {(m, x) for m in spec.expected["model"] for x in methods if x != PRETRAINED or plan["reference"]}
    return [(m, x) for m in models for x in methods if (m, x) in present | expected]


def compute_cells(spec, probes, per_source, rows, targets) -> pd.DataFrame:
    out = []
    for (model, method), target in itertools.product(rows, targets):
        sub = probes[(probes["model"] == model) & (probes["method"] == method) & (probes["task"] == target)]
        src = per_source[(per_source["model"] == model) & (per_source["method"] == method) & (per_source["task"] == target)]
        reference = method == PRETRAINED
        values = finite(sub["value"]) if reference else finite(src["value"])
        not_ok = sub["status"][sub["status"] != "ok"]
        row = {"model": model, "method": method, "target": target,
               "metric": "/".join(sorted(set(sub["metric"]) - {""})),
               "mean": values.mean() if len(values) else math.nan,
               "std": values.std(ddof=1) if len(values) >= 2 else math.nan,
               "spread": "head seeds" if reference else "source seeds",
               "n_sources": len(src), "n_sources_scored": int(np.isfinite(src["value"]).sum()),
               "n_probes": len(sub), "n_scored": len(finite(sub["value"])), "n_ok": len(sub) - len(not_ok),
               "n_failed": len(not_ok), "failed_by_status": status_counts(not_ok),
               **dict(zip(("n_near_constant", "n_near_constant_unknown"), near_constant_counts(sub))),
               **{("delta_vs_baseline" if k == "delta" else k): v for k, v in EMPTY.items()}, "p_holm": math.nan}
        base = per_source[(per_source["model"] == model) & (per_source["method"] == spec.baseline)
                          & (per_source["task"] == target)]
        if spec.baseline is not None and method != spec.baseline and len(base):
            base_values = finite(base["value"])
            if reference:           # one encoder, spread over head seeds: the difference only, no test
                if len(values) and len(base_values):
                    row["delta_vs_baseline"] = values.mean() - base_values.mean()
            else:
                got = compare(by_source_seed(src), by_source_seed(base), spec.comparisons)
                row.update({("delta_vs_baseline" if c == "delta" else c): got[c] for c in COMPARISON if c in got})
        out.append(row)
    return out


def by_source_seed(per_source: pd.DataFrame) -> pd.Series:
    return per_source.set_index(per_source["seed"].astype("int64"))["value"].astype(float)


def average_comparisons(spec, per_source: pd.DataFrame, rows: list[tuple], targets: list[str]) -> pd.DataFrame:
    """Each fine-tuned row's average over the targets against the baseline's: each source seed's
    average over the targets (seeds scored on every target) is one score (report/stats.py)."""
    out = []
    for model, method in rows:
        if spec.baseline is None or method in (spec.baseline, PRETRAINED):
            continue
        of = lambda m: per_source[(per_source["model"] == model) & (per_source["method"] == m)]  # noqa: E731
        out.append({"model": model, "method": method,
                    **compare_averages(of(method), of(spec.baseline), targets, spec.comparisons)})
    return pd.DataFrame(out, columns=["model", "method"] + COMPARISON)


def compute_source_cells(sources: pd.DataFrame, rows: list[tuple], source_task: str) -> pd.DataFrame:
    """The source task's own dev score per model x method (the runs the probes froze)."""
    out = []
    for model, method in rows:
        sub = sources[(sources["model"] == model) & (sources["method"] == method) & (sources["task"] == source_task)]
        got = finite(sub["value"])
        out.append({"model": model, "method": method, "source_task": source_task,
                    "source_metric": "/".join(sorted(set(sub["metric"]) - {""})),
                    "source_mean": got.mean() if len(got) else math.nan,
                    "source_std": got.std(ddof=1) if len(got) >= 2 else math.nan,
                    "source_n_ok": int((sub["status"] == "ok").sum()), "source_n": len(sub),
                    "source_failed_by_status": status_counts(sub["status"][sub["status"] != "ok"])})
    return pd.DataFrame(out)


def gaps(spec, probes: pd.DataFrame, sources: pd.DataFrame, plan: dict) -> tuple[list, list, list, list]:
    """(missing probes, missing source runs, probes outside the grid, duplicate probes)."""
    exp = spec.expected
    have_runs = set(sources[["model", "task", "method", "seed"]].itertuples(index=False, name=None))
    missing_sources = [k for k in itertools.product(exp["model"], exp["task"], exp["method"], exp["seed"])
                       if k not in have_runs]
    keys = [(m, PRETRAINED, None) for m in exp["model"]] if plan["reference"] else []
    keys += list(itertools.product(exp["model"], exp["method"], exp["seed"]))
    expected = {(*k, t, h) for k in keys for t in plan["targets"] for h in plan["head_seeds"]}
    found = [(r.model, r.method, None if pd.isna(r.seed) else int(r.seed), r.task, int(r.head_seed))
             for r in probes[PROBE_AXES].itertuples(index=False)]
    have = set(found)
    ordered = [(*k, t, h) for k in keys for t in plan["targets"] for h in plan["head_seeds"]]
    missing = [k for k in ordered if k not in have]
    outside = [rid for rid, k in zip(probes["run_id"], found) if k not in expected]
    counts = pd.Series(found, dtype=object).value_counts() if found else pd.Series(dtype=int)
    duplicates = [f"{' / '.join(str(v) for v in k if v is not None)}: {n} probe records"
                  for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])) if n > 1]
    return missing, missing_sources, outside, duplicates


@register
class TaskTransferTable(TableKind):
    name = "task_transfer"

    def check(self, spec, where: str) -> None:
        if spec.rows != ["model", "method"] or spec.columns != "target" or spec.statistic != "mean" \
                or spec.metric != "main" or spec.baseline_axis != "method":
            raise InputError(f"{where}: a task_transfer table has rows: [model, method], columns: target, metric: main, "
                             f"statistic: mean and a baseline method (got rows {spec.rows}, columns {spec.columns}, "
                             f"metric {spec.metric}, statistic {spec.statistic}, baseline {spec.baseline_axis})")

    def summarize(self, spec, records, skipped: list[str]) -> TransferSummary:
        if len(spec.expected.get("task", [])) != 1:
            raise InputError(f"experiment {spec.experiment}: a task_transfer table needs one source task, its sweep "
                             f"gives {spec.expected.get('task')}")
        results = getattr(spec, "results", None)
        if results is None:
            raise InputError("the task_transfer table reads <results>/<experiment>/probes: call it through "
                             "childtuning.report.summarize (python -m childtuning.aggregate)")
        probes, probe_skipped = load_probes(spec.experiment, results)
        plan = probe_plan(spec.file)
        if probes.empty:
            raise InputError(f"no probe records for experiment {spec.experiment!r} in {Path(results) / spec.experiment / 'probes'}: "
                             f"run them with python -m childtuning.probe exp={spec.experiment} paths.results={results}")
        targets = list(dict.fromkeys([*plan["targets"], *sorted(set(probes["task"]))]))
        rows = row_order(spec, probes, plan)
        per_source = per_source_scores(probes)
        source_cells = compute_source_cells(records, rows, str(spec.expected["task"][0]))
        cells = pd.DataFrame(compute_cells(spec, probes, per_source, rows, targets))
        cells = cells.merge(source_cells.drop(columns="source_failed_by_status"), on=["model", "method"], how="left")
        cells = cells[CSV_COLUMNS].astype({c: "float64" for c in FLOATS})
        missing, missing_sources, outside, duplicates = gaps(spec, probes, records, plan)
        return TransferSummary(spec=spec, records=probes, sources=records, per_source=per_source, cells=cells,
                               source_cells=source_cells, targets=targets, rows=rows, plan=plan,
                               averages=average_comparisons(spec, per_source, rows, targets), missing=missing,
                               missing_sources=missing_sources, outside=outside, duplicates=duplicates,
                               skipped=list(skipped) + probe_skipped)

    def comparisons(self, summary: TransferSummary) -> list:
        if summary.spec.baseline is None:
            return []
        tested = ~summary.cells["method"].isin([summary.spec.baseline, PRETRAINED])    # the pretrained row: Δ only
        return [(summary.cells, tested.to_numpy()), (summary.averages, None)]

    def render(self, summary: TransferSummary) -> dict[str, str]:
        csv = summary.cells.to_csv(index=False, float_format="%.10g", na_rep="", lineterminator="\n")
        return {"table.csv": csv, "table.md": render_markdown(summary), "table.tex": render_latex(summary)}

    def plot(self, summary: TransferSummary, folder: Path) -> list[Path]:
        return plot_targets(summary, folder)
