"""Turn an experiment's run records into tables (md, csv, tex), baseline comparisons and per-seed plots.

    python -m childtuning.aggregate <experiment> [--results DIR] [--experiment-file FILE]

Reads `<DIR>/<experiment>/runs/*.json` (DIR: --results, else $CHILDTUNING_RESULTS, else "results")
and the table layout in `experiments/<experiment>.yaml` (its `table:` block), and writes
`<DIR>/<experiment>/table.md`, `table.csv`, `table.tex` and `plots/<task>.png`.

A cell is one model x task x method (x any further row axis the table declares, such as
`trainer.lr`, read from each record's resolved config); its runs are the seeds.
Which runs enter a cell's statistics:
  * every run whose score (the task's main metric at the last epoch) is a finite number enters
    the mean, the sample std (ddof=1) and the max. That is status "ok" and also "degenerate":
    a degenerate run (say, constant predictions, MCC 0) is a real outcome of that seed, and
    leaving it out would flatter the method;
  * runs without a finite score (status "diverged" or "failed", value null or NaN) cannot be
    averaged and are left out of the statistics, but never out of the counts;
  * every cell reports n (all records), n_scored (the runs in the mean), n_ok (status "ok"),
    n_failed (every other status) and failed_by_status (e.g. "degenerate:2; diverged:1").
No run is dropped or invented: records outside the experiment's declared grid are aggregated
too (and listed), and declared runs without a record are listed as missing.

Comparisons with the baseline method (table.baseline), per model x task: the difference of
means (known when each side has a score), Welch's t-test p-value over seeds and a percentile
bootstrap 95% CI of the difference (10,000 resamples, numpy seed 0); the p-value and the CI are
unknown when either side has < 2 scores. Because a seed fixes the data order and the new head's
initialisation under every method, runs are also compared seed by seed: a paired t-test over the
seeds scored on both sides and the count of seeds where the method beats the baseline (both
left out when a cell holds two records for one seed).
The average over tasks (per model x method) is the mean of the per-task means, and unknown
unless every task has a mean.
Cost: a run's time is its record's finished_at - started_at (tokenizing, model load, any Fisher
pass, training and evaluation); the tables give the mean per cell and the sum over all records,
with the devices and thread counts the records name. Where records carry a fixed child network's
statistics (Child-Tuning_D's method_stats.kept_fraction_per_layer), table.md shows the mean kept
fraction per layer and cell. Outputs are sorted and carry no timestamps, so the same records
give byte-identical files.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from . import SCHEMA_VERSION
from .errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
TASK_CONF_DIR = REPO_ROOT / "conf" / "task"
STATUS_ORDER = ("ok", "degenerate", "diverged", "failed")
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
REQUIRED = ("run_id", "model", "task", "method", "seed", "status", "main_metric")
RECORD_COLUMNS = ["run_id", "file", "model", "task", "method", "seed", "status", "reason", "metric", "value",
                  "history", "method_stats", "train_loss", "seconds", "device", "started_at", "finished_at"]
# table.csv: the cell's axes (model, task, method, then any extra row axes), then these
CSV_STATS = ["metric", "mean", "std", "max", "n_ok", "n_failed", "n", "n_scored", "failed_by_status",
             "delta_vs_baseline", "p_welch", "ci_low", "ci_high", "p_paired", "seeds_better", "paper",
             "train_loss_mean", "seconds_mean"]
NA = "–"          # shown for a statistic that cannot be computed (too few scores)
UNKNOWN = "?"     # shown for a paper value that is not known


# ----------------------------------------------------------------------------- the table spec
@dataclass
class TableSpec:
    """An experiment's `table:` block, with defaults filled in."""
    experiment: str
    rows: list[str] = field(default_factory=lambda: ["model", "method"])   # table row axes, in order
    metric: str = "main"          # "main" = each task's main metric, else a metric name
    baseline: str | None = None
    expected: dict[str, list] = field(default_factory=dict)
    paper_values: dict = field(default_factory=dict)
    paper_source: str | None = None

    @property
    def extra(self) -> list[str]:
        """Row axes besides model and method: dotted config paths such as `trainer.lr`."""
        return [a for a in self.rows if a not in ("model", "method")]

    @property
    def key(self) -> list[str]:
        """The axes that name a cell, in csv column order."""
        return ["model", "task", "method", *self.extra]


def available_experiments() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def load_spec(experiment: str, experiment_file: str | Path | None = None) -> TableSpec:
    """The table layout of `experiment` (from `experiment_file`, else experiments/<experiment>.yaml)."""
    if experiment_file is None:
        path = EXPERIMENTS_DIR / f"{experiment}.yaml"
        if not path.is_file():
            raise InputError(f"unknown experiment {experiment!r}: there is no {path}. Available experiments: "
                             f"{', '.join(available_experiments()) or '(none)'}")
    else:
        path = Path(experiment_file)
        if not path.is_file():
            raise InputError(f"experiment file {path} does not exist")
    cfg = OmegaConf.load(path)
    if "table" not in cfg or not OmegaConf.is_dict(cfg.table):
        raise InputError(f"{path} has no `table:` block (rows, columns, metric, baseline, expected, paper)")
    table = OmegaConf.to_container(cfg.table, resolve=True)
    if table.get("statistic", "mean") != "mean":
        raise InputError(f"{path}: table.statistic={table['statistic']!r} is not supported (only 'mean')")
    rows, columns = [str(a) for a in table.get("rows") or ["model", "method"]], table.get("columns", "task")
    if not {"model", "method"} <= set(rows) or {"task", "seed"} & set(rows) or columns != "task" \
            or len(set(rows)) != len(rows):
        raise InputError(f"{path}: table.rows must name model, method and optionally config paths (e.g. "
                         f"trainer.lr), and table.columns must be task (got rows: {rows}, columns: {columns})")
    declared = table.get("expected") or {}
    expected = {axis: [_axis_value(axis, v) for v in dict.fromkeys(declared.get(axis) or [])]
                for axis in ["model", "task", "method", "seed", *rows]}
    paper = table.get("paper") or {}
    return TableSpec(experiment=experiment, rows=rows, metric=str(table.get("metric", "main")),
                     baseline=table.get("baseline"), expected=expected, paper_values=paper.get("values") or {},
                     paper_source=paper.get("source"))


def _axis_value(axis: str, value):
    """A grid value as the tables compare and show it: seeds as ints, numbers in one spelling
    (so 2e-5 in the experiment file matches 2.0e-05 in a record), everything else as text."""
    if axis == "seed":
        try:
            return int(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(float(value), ".12g")
    return "null" if value is None else str(value)


# ----------------------------------------------------------------------------- records
def runs_dir(results: str | Path, experiment: str) -> Path:
    return Path(results) / experiment / "runs"


def _score(value) -> float:
    """A record's score as a float; NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _config_value(record: dict, dotted: str):
    """The value at a dotted path (e.g. trainer.lr) of the record's resolved config; None if absent."""
    node = record.get("config") or {}
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _timestamp(value) -> datetime | None:
    """An ISO time stamp; one without a time zone is taken as UTC (the runner writes UTC)."""
    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def _device_label(device) -> str:
    """e.g. "cpu, 1 thread" or "cuda NVIDIA H100, bf16"; "?" when the record does not say."""
    if not isinstance(device, dict) or not device.get("type"):
        return UNKNOWN
    if device["type"] == "cpu":
        threads = device.get("threads")
        return f"cpu, {threads} thread{'s' if threads != 1 else ''}" if threads else "cpu"
    return f"{device['type']} {device.get('name', '')}, {device.get('precision', '?')}".replace(" ,", ",")


def _parse(path: Path, metric: str, extra: list[str]) -> dict:
    """One record file as a flat row; raises ValueError saying why it cannot be used."""
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"incomplete record, missing {', '.join(missing)}")
    if record.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ValueError(f"schema_version {record['schema_version']} (this aggregator reads {SCHEMA_VERSION})")
    if not isinstance(record["seed"], int):
        raise ValueError(f"seed {record['seed']!r} is not an integer")
    main = record["main_metric"] if isinstance(record["main_metric"], dict) else {}
    if metric == "main":
        name = main.get("name") or _config_value(record, "task.main_metric")
        value = main.get("value")
    else:
        name, value = metric, (record.get("metrics") or {}).get(metric)
    row = {"run_id": str(record["run_id"]), "file": path.name, "model": str(record["model"]),
           "task": str(record["task"]), "method": str(record["method"]), "seed": record["seed"],
           "status": str(record["status"]), "reason": record.get("reason"), "metric": name or "",
           "value": _score(value), "history": record.get("history") or [],
           "method_stats": record.get("method_stats") or {}, "device": _device_label(record.get("device"))}
    started, finished = _timestamp(record.get("started_at")), _timestamp(record.get("finished_at"))
    row["started_at"], row["finished_at"] = record.get("started_at"), record.get("finished_at")
    last = row["history"][-1] if row["history"] and isinstance(row["history"][-1], dict) else {}
    row["train_loss"] = _score(last.get("train_loss"))
    row["seconds"] = (finished - started).total_seconds() if started and finished else math.nan
    row.update({axis: _axis_value(axis, _config_value(record, axis)) for axis in extra})
    return row


def load_records(experiment: str, results: str | Path, metric: str = "main",
                 extra: list[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """All readable records of `experiment` (one row each) and a message per file that was skipped.
    `extra`: config paths to add as columns (the spec's extra row axes).

    Only `*.json` files not starting with "." are read (the runner writes `.<name>.tmp<pid>`
    first, then renames), sorted by name so the row order is the same on every call."""
    rows, skipped = [], []
    folder = runs_dir(results, experiment)
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    for path in paths:
        try:
            rows.append(_parse(path, metric, list(extra)))
        except (OSError, ValueError) as e:       # JSONDecodeError is a ValueError
            skipped.append(f"{path.name}: {e}")
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS + list(extra))
    frame["seed"] = frame["seed"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    frame[["seconds", "train_loss"]] = frame[["seconds", "train_loss"]].astype("float64")
    order = ["model", "task", "method", *extra, "seed", "run_id"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True), skipped


# ----------------------------------------------------------------------------- statistics
def welch_p(a, b) -> float:
    """Two-sided Welch t-test p-value of a vs b; NaN when either has fewer than 2 values."""
    from scipy import stats  # imported here: scipy is slow to import and only needed with comparisons

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():              # constant samples: scipy warns and returns NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired(a: pd.Series, b: pd.Series) -> tuple[float, str]:
    """Seed-paired comparison of two cells (values indexed by seed): the two-sided paired t-test
    p-value and "k/n", the number of the n seeds scored on both sides where a beats b.
    The runner gives a seed the same data order and head initialisation under every method, so
    pairing by seed removes that shared variation. p is NaN with < 2 pairs or constant differences."""
    from scipy import stats

    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    both = both[np.isfinite(both["a"]) & np.isfinite(both["b"])]        # drops NaN (unscored) too
    if both.empty:
        return math.nan, NA
    wins = f"{int((both['a'] > both['b']).sum())}/{len(both)}"
    diff = (both["a"] - both["b"]).to_numpy()
    if len(both) < 2 or np.all(diff == diff[0]):
        return math.nan, wins
    return float(stats.ttest_rel(both["a"], both["b"]).pvalue), wins


def bootstrap_ci(a, b, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) - mean(b), each group resampled with replacement.
    A fresh generator per call, so a cell's CI does not depend on which cells came before it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    mean_a = a[rng.integers(0, len(a), size=(resamples, len(a)))].mean(axis=1)
    mean_b = b[rng.integers(0, len(b), size=(resamples, len(b)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(mean_a - mean_b, [tail, 100 - tail])
    return float(low), float(high)


def _order(declared: list, found) -> list:
    """The declared values in their declared order, then any others found, sorted."""
    declared = list(declared)
    extra = sorted(set(found) - set(declared), key=str)
    return declared + extra


def _status_counts(statuses) -> str:
    counts = pd.Series(list(statuses), dtype=object).value_counts()
    names = [s for s in STATUS_ORDER if s in counts and s != "ok"] + \
            sorted(s for s in counts.index if s not in STATUS_ORDER)
    return "; ".join(f"{s}:{counts[s]}" for s in names)


def _task_metric(task: str, spec: TableSpec) -> str:
    """The metric name of a task that has no records (from conf/task/<task>.yaml)."""
    if spec.metric != "main":
        return spec.metric
    path = TASK_CONF_DIR / f"{task}.yaml"
    if path.is_file():
        return str(OmegaConf.load(path).get("main_metric", ""))
    return ""


def _paper_value(spec: TableSpec, model: str, method: str, task: str) -> float:
    """table.paper.values[model][method][task] as a float; NaN when unknown."""
    node = spec.paper_values
    for key in (model, method, task):
        node = node.get(key) if isinstance(node, dict) else None
    return _score(node)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def _groups(records: pd.DataFrame, key: list[str]) -> dict[tuple, pd.DataFrame]:
    """The records of each cell, by the cell's key tuple."""
    return {k if isinstance(k, tuple) else (k,): sub for k, sub in records.groupby(key, sort=False)}


def _mean(values) -> float:
    """Mean of the finite values; NaN when there are none."""
    got = _finite(values)
    return float(got.mean()) if len(got) else math.nan


def cell_table(records: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """One row per cell (model x task x method [x extra axes]): the declared grid plus any cell
    that has records, in declared order."""
    key = spec.key
    orders = [_order(spec.expected[a], records[a]) for a in key]
    wanted = set(records[key].itertuples(index=False, name=None)) | \
        set(itertools.product(*(spec.expected[a] for a in key)))
    cells = [k for k in itertools.product(*orders) if k in wanted]
    groups = _groups(records, key)
    empty = records.iloc[0:0]
    method_at = key.index("method")

    rows = []
    for k in cells:
        sub = groups.get(k, empty)
        got = _finite(sub["value"])
        names = sorted(set(sub["metric"]) - {""})
        not_ok = sub["status"][sub["status"] != "ok"]
        named = dict(zip(key, k))
        row = {**named, "metric": "/".join(names) if names else _task_metric(named["task"], spec),
               "mean": got.mean() if len(got) else math.nan,
               "std": got.std(ddof=1) if len(got) >= 2 else math.nan,
               "max": got.max() if len(got) else math.nan,
               "n_ok": len(sub) - len(not_ok), "n_failed": len(not_ok), "n": len(sub), "n_scored": len(got),
               "failed_by_status": _status_counts(not_ok),
               "delta_vs_baseline": math.nan, "p_welch": math.nan, "ci_low": math.nan, "ci_high": math.nan,
               "p_paired": math.nan, "seeds_better": "",
               "paper": _paper_value(spec, named["model"], named["method"], named["task"]),
               "train_loss_mean": _mean(sub["train_loss"]), "seconds_mean": _mean(sub["seconds"])}
        if spec.baseline is not None and named["method"] != spec.baseline:
            base_runs = groups.get(k[:method_at] + (spec.baseline,) + k[method_at + 1:], empty)
            base = _finite(base_runs["value"])
            if len(got) and len(base):
                row["delta_vs_baseline"] = got.mean() - base.mean()
            row["p_welch"] = welch_p(got, base)
            row["ci_low"], row["ci_high"] = bootstrap_ci(got, base)
            if not sub["seed"].duplicated().any() and not base_runs["seed"].duplicated().any():
                row["p_paired"], row["seeds_better"] = paired(sub.set_index("seed")["value"],
                                                              base_runs.set_index("seed")["value"])
        rows.append(row)
    frame = pd.DataFrame(rows, columns=key + CSV_STATS)
    return frame.astype({c: "float64" for c in ("mean", "std", "max", "delta_vs_baseline", "p_welch",
                                                "ci_low", "ci_high", "p_paired", "paper", "train_loss_mean",
                                                "seconds_mean")})


def missing_runs(records: pd.DataFrame, spec: TableSpec) -> list[tuple]:
    """Declared (cell key..., seed) combinations with no record, in declared order."""
    axes = spec.key + ["seed"]
    have = set(records[axes].itertuples(index=False, name=None))
    return [k for k in itertools.product(*(spec.expected[a] for a in axes)) if k not in have]


def outside_grid(records: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Run ids of records with a value on some axis (model, task, method, seed, ...) that the experiment does not declare."""
    inside = np.ones(len(records), dtype=bool)
    for axis in spec.key + ["seed"]:
        inside &= records[axis].isin(spec.expected[axis]).to_numpy()
    return list(records.loc[~inside, "run_id"])


def duplicate_seeds(records: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Cells with more than one record for a seed (e.g. a rerun with other hyper-parameters)."""
    counts = records.groupby(spec.key + ["seed"], sort=False).size()
    return [f"{' / '.join(map(str, k[:-1]))} / seed {k[-1]}: {n} records" for k, n in counts.items() if n > 1]


# ----------------------------------------------------------------------------- rendering
def _num(x: float, digits: int = 2) -> str:
    return NA if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return NA if not np.isfinite(x) else f"{x:+.2f}"


def _p(x: float) -> str:
    return NA if not np.isfinite(x) else f"{x:.3g}"


def _cell_text(c) -> str:
    if c is None:
        return NA
    if not np.isfinite(c["mean"]):
        return f"{NA} ({c['n_ok']}/{c['n']})"
    return f"{_num(c['mean'])} ± {_num(c['std'])} ({c['n_ok']}/{c['n']})"


def _paper_text(x: float) -> str:
    return UNKNOWN if not np.isfinite(x) else _num(x)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda s: str(s).replace("|", "\\|")  # noqa: E731 - a pipe would split the cell
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(escape, r)) + " |" for r in rows]
    return lines


@dataclass
class Summary:
    """Everything the renderers need, computed once. A table row is a tuple of values of
    spec.rows (e.g. (model, method)); a cell is a row and a task."""
    spec: TableSpec
    records: pd.DataFrame
    cells: pd.DataFrame
    missing: list[tuple]
    outside: list[str]
    duplicates: list[str]
    skipped: list[str]

    def __post_init__(self):
        key = self.spec.key
        self._cells = {tuple(c[a] for a in key): c for _, c in self.cells.iterrows()}
        self.tasks = list(dict.fromkeys(self.cells["task"]))
        present = set(self.cells[self.spec.rows].itertuples(index=False, name=None))
        orders = [list(dict.fromkeys(self.cells[a])) if a == "model" else _order(self.spec.expected[a], self.cells[a])
                  for a in self.spec.rows]
        self.rows = [r for r in itertools.product(*orders) if r in present]

    @property
    def n_expected(self) -> int:
        return math.prod(len(self.spec.expected[a]) for a in self.spec.key + ["seed"])

    def named(self, row: tuple) -> dict:
        return dict(zip(self.spec.rows, row))

    def cell(self, row: tuple, task: str):
        named = {**self.named(row), "task": task}
        return self._cells.get(tuple(named[a] for a in self.spec.key))

    def baseline_row(self, row: tuple) -> tuple:
        return tuple(self.spec.baseline if a == "method" else v for a, v in zip(self.spec.rows, row))

    def avg(self, row: tuple) -> float:
        """The mean of the per-task means; NaN unless every task has one."""
        means = [self.cell(row, t)["mean"] if self.cell(row, t) is not None else math.nan for t in self.tasks]
        return float(np.mean(means)) if means and np.all(np.isfinite(means)) else math.nan

    def paper(self, row: tuple, task: str) -> float:
        named = self.named(row)
        return _paper_value(self.spec, named["model"], named["method"], task)

    def task_metric(self, task) -> str:
        names = sorted(set(self.cells.loc[self.cells["task"] == task, "metric"]) - {""})
        return "/".join(names) or "?"

    def label(self, row: tuple, sep: str = " / ") -> str:
        """model / method [/ axis=value ...]"""
        return sep.join(v if a in ("model", "method") else f"{a}={v}" for a, v in self.named(row).items())


def render_markdown(s: Summary) -> str:
    spec = s.spec
    metric = "main metric" if spec.metric == "main" else spec.metric
    out = [f"# Experiment `{spec.experiment}`", "",
           f"Dev-set {metric} at the last epoch, mean ± sample std over seeds. Cell: `mean ± std (n_ok/n)`, "
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
            cells += [_cell_text(s.cell(row, task)), _paper_text(s.paper(row, task))]
        rows.append(list(row) + cells + [_num(s.avg(row)), _paper_text(s.paper(row, "avg"))])
    out += _md_table(header, rows)

    out += ["", f"## Difference to the baseline ({spec.baseline or 'none declared'})", ""]
    if spec.baseline is None:
        out += ["No baseline method is declared (table.baseline), so nothing is compared."]
    else:
        out += ["Δ = mean(method) − mean(baseline); p: Welch's t-test over seeds; CI: bootstrap 95% "
                f"({BOOTSTRAP_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}). p and CI are unknown when either side "
                "has < 2 scores. Paired p: paired t-test over the seeds scored under both methods (a seed has the "
                "same data order and head initialisation under every method); seeds better: on how many of those "
                "seeds the method scored higher. Avg: difference of the task averages.", ""]
        delta_rows = []
        for row in s.rows:
            if s.named(row)["method"] == spec.baseline:
                continue
            for task in s.tasks:
                c = s.cell(row, task)
                if c is not None:
                    ci = f"[{_signed(c['ci_low'])}, {_signed(c['ci_high'])}]" if np.isfinite(c["ci_low"]) else NA
                    delta_rows.append(list(row) + [task, _signed(c["delta_vs_baseline"]), ci, _p(c["p_welch"]),
                                                   _p(c["p_paired"]), c["seeds_better"] or NA])
            delta_rows.append(list(row) + ["Avg", _signed(s.avg(row) - s.avg(s.baseline_row(row))), NA, NA, NA, NA])
        out += _md_table(list(spec.rows) + ["task", "Δ mean", "95% CI", "Welch p", "paired p", "seeds better"],
                         delta_rows) if delta_rows \
            else ["(no method besides the baseline)"]

    out += ["", "## Counts per cell", "",
            "train loss: the last epoch's mean training loss, averaged over the cell's runs (how well each "
            "method fit the training set in the step budget); s/run: mean run time (see Compute).", ""]
    out += _md_table(spec.key + ["metric", "mean", "std", "max", "n_scored", "n_ok", "n", "not ok by status",
                                 "train loss", "s/run"],
                     [[str(c[a]) for a in spec.key]
                      + [c["metric"] or "?", _num(c["mean"]), _num(c["std"]), _num(c["max"]), str(c["n_scored"]),
                         str(c["n_ok"]), str(c["n"]), c["failed_by_status"] or NA, _num(c["train_loss_mean"], 3),
                         _num(c["seconds_mean"], 0)]
                      for c in s._cells.values()])
    out += child_network_lines(s)
    out += ["", "## Compute", ""] + compute_lines(s.records)

    out += ["", f"## Missing runs ({len(s.missing)} of {s.n_expected} expected)", ""]
    if s.missing:
        by_cell: dict[tuple, list] = {}
        for *k, seed in s.missing:
            by_cell.setdefault(tuple(k), []).append(str(seed))
        out += [f"- {' / '.join(v if a in ('model', 'task', 'method') else f'{a}={v}' for a, v in zip(spec.key, k))}"
                f": seed {', '.join(seeds)}" for k, seeds in by_cell.items()]
    else:
        out += ["None: every declared " + " × ".join(spec.key + ["seed"]) + " has a record."]

    notes = []
    if s.outside:
        notes.append(f"{len(s.outside)} record(s) outside the declared grid, aggregated too: {', '.join(s.outside)}")
    notes += [f"more than one record for a seed (all aggregated): {d}" for d in s.duplicates]
    if spec.baseline is not None and spec.baseline not in set(s.records["method"]):
        notes.append(f"the baseline method {spec.baseline!r} has no records: no differences can be computed")
    notes += [f"skipped unreadable file {msg}" for msg in s.skipped]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _natural(name: str) -> list:
    """Sort key that puts layer.2 before layer.10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def child_network_lines(s: Summary) -> list[str]:
    """Where a fixed child network (Child-Tuning_D) sits: per cell, the mean over seeds of the
    fraction of each layer's eligible weights its mask keeps. Empty when no record reports it."""
    key, rows, layers = s.spec.key, [], set()
    groups = _groups(s.records, key)
    for k in s._cells:                                      # the table's cell order
        per_run = [st["kept_fraction_per_layer"] for st in groups[k]["method_stats"]
                   if isinstance(st.get("kept_fraction_per_layer"), dict)] if k in groups else []
        if per_run:
            layers |= {name for run in per_run for name in run}
            rows.append((k, per_run))
    if not rows:
        return []
    layers = sorted(layers, key=_natural)
    table = []
    for k, per_run in rows:
        means = [np.mean([run[name] for run in per_run if name in run]) * 100
                 if any(name in run for run in per_run) else math.nan for name in layers]
        table.append([str(v) for v in k] + [str(len(per_run))] + [_num(m, 1) for m in means])
    return ["", "## Child network", "",
            "Fraction (%) of each layer's eligible weights that the fixed mask keeps "
            "(`method_stats.kept_fraction_per_layer`), mean over the runs that report it.", ""] \
        + _md_table(key + ["runs"] + layers, table)


def compute_lines(records: pd.DataFrame) -> list[str]:
    """What the records cost: the summed run time, the span they ran in and the devices."""
    timed = records[np.isfinite(records["seconds"])]
    if timed.empty:
        return ["No record has started_at and finished_at, so no run time is known."]
    total = timed["seconds"].sum()
    devices = sorted(timed["device"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    first, last = min(timed["started_at"], key=_timestamp), max(timed["finished_at"], key=_timestamp)
    return [f"Run time (finished_at − started_at, per record) summed over {len(timed)} of {len(records)} "
            f"record(s): {total:,.0f} s = {total / 3600:.2f} h.",
            f"First run started {first}, last finished {last} "
            "(the span includes any pause between sweeps; runs that ran side by side overlap in the sum).",
            "Devices: " + "; ".join(f"{d} ({n} run{'s' if n != 1 else ''})" for d, n in devices) + "."]


def _tex(text: str) -> str:
    return re.sub(r"([_&%#$])", r"\\\1", str(text))


def render_latex(s: Summary) -> str:
    """The main table as a booktabs tabular: mean ± std per task, then the average; paper rows where known."""
    def value(mean, std=math.nan):
        if not np.isfinite(mean):
            return "--"
        return f"${mean:.2f} \\pm {std:.2f}$" if np.isfinite(std) else f"${mean:.2f}$"

    n_axes = len(s.spec.rows)
    lines = [f"% {_tex(s.spec.experiment)}: dev-set score at the last epoch, mean $\\pm$ sample std over seeds "
             "(runs with a finite score). Needs \\usepackage{booktabs}.",
             "\\begin{tabular}{" + "l" * n_axes + "r" * (len(s.tasks) + 1) + "}", "\\toprule",
             " & ".join(_tex(a.capitalize() if a in ("model", "method") else a) for a in s.spec.rows) + " & "
             + " & ".join(f"{_tex(t)} ({_tex(s.task_metric(t))})" for t in s.tasks) + " & Avg \\\\", "\\midrule"]
    for row in s.rows:
        cells = [s.cell(row, t) for t in s.tasks]
        ours = [value(c["mean"], c["std"]) if c is not None else "--" for c in cells]
        lines.append(" & ".join(map(_tex, row)) + " & " + " & ".join(ours) + f" & {value(s.avg(row))} \\\\")
        paper = [s.paper(row, t) for t in s.tasks + ["avg"]]
        if any(np.isfinite(p) for p in paper):
            label = " & ".join([""] * (n_axes - 1) + ["paper"])
            lines.append(label + " & " + " & ".join(f"{p:.2f}" if np.isfinite(p) else "?" for p in paper) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _filename(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


STATUS_COLORS = {"ok": "tab:blue", "degenerate": "tab:orange"}   # anything else: red, and has no score anyway


def plot_cells(s: Summary, folder: Path) -> list[Path]:
    """One PNG per task: each table row's per-seed scores as dots (colour = status), its mean as a
    bar, the paper's value as a star where known, the number of runs without a score in the axis
    label. Returns the files written."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's (e.g. a notebook's) backend alone

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    row_of = s.records[s.spec.rows].itertuples(index=False, name=None)
    by_row = pd.Series(list(row_of), index=s.records.index, dtype=object)
    for task in s.tasks:
        fig = Figure(figsize=(max(4.0, 1.1 * len(s.rows) + 1.5), 3.6), dpi=100)
        ax = fig.add_subplot()
        labels, seen = [], set()
        for x, row in enumerate(s.rows):
            sub = s.records[(s.records["task"] == task) & (by_row == row)]
            scored = sub[np.isfinite(sub["value"])]
            unscored = len(sub) - len(scored)       # diverged/failed runs: no dot, so say so under the axis
            labels.append(s.label(row, "\n") + (f"\n+{unscored} without score" if unscored else ""))
            offsets = np.linspace(-0.2, 0.2, len(scored)) if len(scored) > 1 else np.zeros(len(scored))
            for dx, (_, r) in zip(offsets, scored.iterrows()):
                ax.scatter(x + dx, r["value"], s=22, color=STATUS_COLORS.get(r["status"], "tab:red"),
                           label=r["status"] if r["status"] not in seen else None, zorder=3)
                seen.add(r["status"])
            if len(scored):
                ax.hlines(scored["value"].mean(), x - 0.3, x + 0.3, color="black", linewidth=1.5, zorder=2)
            paper = s.paper(row, task)
            if np.isfinite(paper):
                ax.scatter(x, paper, marker="*", s=90, color="black", label="paper" if "paper" not in seen else None,
                           zorder=4)
                seen.add("paper")
        ax.set_xticks(range(len(s.rows)), labels, fontsize=7)
        ax.set_xlim(-0.6, len(s.rows) - 0.4)
        ax.set_ylabel(s.task_metric(task))
        ax.set_title(f"{s.spec.experiment}: {task}, one dot per seed (bar: mean)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if seen:
            ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = folder / f"{_filename(task)}.png"
        fig.savefig(path, format="png", metadata={"Software": None})   # no version string: same bytes each run
        written.append(path)
    return written


# ----------------------------------------------------------------------------- entry points
def summarize(experiment: str, results: str | Path, experiment_file: str | Path | None = None) -> Summary:
    """Read the spec and records and compute every table (writes nothing)."""
    spec = load_spec(experiment, experiment_file)
    records, skipped = load_records(experiment, results, spec.metric, spec.extra)
    for msg in skipped:
        print(f"warning: skipped unreadable record {msg}", file=sys.stderr)
    if records.empty:
        where = runs_dir(results, experiment)
        extra = f" ({len(skipped)} unreadable file(s) skipped)" if skipped else ""
        raise InputError(f"no run records for experiment {experiment!r} in {where}{extra}. Produce them with: "
                         f"python -m childtuning.train -m exp={experiment} paths.results={results}")
    return Summary(spec=spec, records=records, cells=cell_table(records, spec), missing=missing_runs(records, spec),
                   outside=outside_grid(records, spec), duplicates=duplicate_seeds(records, spec), skipped=skipped)


def write_outputs(s: Summary, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    s.cells.to_csv(out / "table.csv", index=False, float_format="%.10g", na_rep="", lineterminator="\n")
    (out / "table.md").write_text(render_markdown(s), encoding="utf-8")
    (out / "table.tex").write_text(render_latex(s), encoding="utf-8")
    plot_cells(s, out / "plots")


def aggregate(experiment: str, results: str | Path, experiment_file: str | Path | None = None) -> pd.DataFrame:
    """Aggregate `<results>/<experiment>/runs`, write the tables and plots beside it, and return
    the per-cell frame that table.csv holds. Raises InputError for an unknown experiment or no records."""
    s = summarize(experiment, results, experiment_file)
    write_outputs(s, Path(results) / experiment)
    return s.cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m childtuning.aggregate", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", help="experiment name (experiments/<name>.yaml)")
    parser.add_argument("--results", default=os.environ.get("CHILDTUNING_RESULTS", "results"),
                        help="results folder (default: $CHILDTUNING_RESULTS or 'results')")
    parser.add_argument("--experiment-file", default=None, help="read the table layout from this file instead")
    args = parser.parse_args(argv)
    try:
        s = summarize(args.experiment, args.results, args.experiment_file)
        out = Path(args.results) / args.experiment
        write_outputs(s, out)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.experiment}: {len(s.records)} record(s), {len(s.skipped)} skipped, "
          f"{len(s.missing)} of {s.n_expected} expected run(s) missing, {len(s.outside)} outside the grid; "
          f"wrote {out}/table.md, table.csv, table.tex, plots/\n")
    print(render_markdown(s), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
