"""Statistics over cells: mean/std per cell, tests against the baseline, and the grid's gaps."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ..sweep import CONF_DIR
from .inference import EMPTY, compare
from .frames import score

STATUS_ORDER = ("ok", "degenerate", "diverged", "failed")
# table.csv: the cell's axes (model, task, method, then any extra row axes), then these
CSV_STATS = ["metric", "mean", "std", "max", "n_ok", "n_failed", "n", "n_scored", "failed_by_status",
             "n_near_constant", "n_near_constant_unknown", "delta_vs_baseline", "ci_low", "ci_high", "p", "p_holm",
             "seeds_better", "equivalent", "paper", "train_loss_mean", "seconds_mean"]
FLOAT_STATS = ("mean", "std", "max", "delta_vs_baseline", "ci_low", "ci_high", "p", "p_holm", "paper",
               "train_loss_mean", "seconds_mean")
COMPARISON = ["delta", "ci_low", "ci_high", "p", "p_holm", "seeds_better", "equivalent"]   # one comparison's columns


def order(declared: list, found) -> list:
    """The declared values in their declared order, then any others found, sorted."""
    declared = list(declared)
    return declared + sorted(set(found) - set(declared), key=str)


def status_counts(statuses) -> str:
    counts = pd.Series(list(statuses), dtype=object).value_counts()
    names = [s for s in STATUS_ORDER if s in counts and s != "ok"] + \
            sorted(s for s in counts.index if s not in STATUS_ORDER)
    return "; ".join(f"{s}:{counts[s]}" for s in names)


def task_metric(task: str, metric: str) -> str:
    """The metric name of a task that has no records (from conf/task/<task>.yaml)."""
    if metric != "main":
        return metric
    path = CONF_DIR / "task" / f"{task}.yaml"
    return str(OmegaConf.load(path).get("main_metric", "")) if path.is_file() else ""


def paper_value(values: dict, model: str, method: str, task: str) -> float:
    """table.paper.values[model][method][task] as a float; NaN when unknown."""
    node = values
    for key in (model, method, task):
        node = node.get(key) if isinstance(node, dict) else None
    return score(node)


def finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def finite_mean(values) -> float:
    """Mean of the finite values; NaN when there are none."""
    got = finite(values)
    return float(got.mean()) if len(got) else math.nan


def cell_groups(records: pd.DataFrame, key: list[str]) -> dict[tuple, pd.DataFrame]:
    """The records of each cell, by the cell's key tuple."""
    return {k if isinstance(k, tuple) else (k,): sub for k, sub in records.groupby(key, sort=False)}


def by_seed(runs: pd.DataFrame) -> pd.Series:
    """A cell's scores indexed by seed (NaN: unscored)."""
    return runs.set_index("seed")["value"].astype(float)


def compare_cells(sub: pd.DataFrame, base_runs: pd.DataFrame, decl) -> dict:
    """The declared comparison of a cell's runs with the baseline cell's (report/inference.py),
    with its Holm column left for the family (report/family.py)."""
    return {**compare(by_seed(sub), by_seed(base_runs), decl), "p_holm": math.nan}


def near_constant_counts(runs: pd.DataFrame) -> tuple[int, int]:
    """(runs flagged near-constant, runs whose record predates the flag)."""
    flags = runs["near_constant"] if "near_constant" in runs else pd.Series([None] * len(runs), dtype=object)
    return int((flags == True).sum()), int(flags.isna().sum())  # noqa: E712 - object column of True/False/None


def seed_averages(runs: pd.DataFrame, tasks: list) -> pd.Series:
    """Each seed's score averaged over `tasks` (index: seed), for the seeds scored on every task;
    empty when a task has two records of one seed (the seeds would not say which run to take)."""
    if runs.duplicated(["task", "seed"]).any():
        return pd.Series(dtype=float)
    wide = runs.pivot(index="seed", columns="task", values="value").reindex(columns=list(tasks)).astype(float)
    return wide[np.isfinite(wide.to_numpy()).all(axis=1)].mean(axis=1)


def compare_averages(row_runs: pd.DataFrame, base_runs: pd.DataFrame, tasks: list, decl) -> dict:
    """A row's task average against the baseline row's: each seed's average over the tasks is one
    score (seed_averages), then the declared comparison as for a cell."""
    return {**compare(seed_averages(row_runs, tasks), seed_averages(base_runs, tasks), decl), "p_holm": math.nan}


def cell_table(records: pd.DataFrame, spec) -> pd.DataFrame:
    """One row per cell (model x task x method [x extra axes]): the expected grid plus any cell
    that has records, in the grid's order."""
    key = spec.key
    orders = [order(spec.expected[a], records[a]) for a in key]
    wanted = set(records[key].itertuples(index=False, name=None)) | \
        set(itertools.product(*(spec.expected[a] for a in key)))
    groups, empty, base_at = cell_groups(records, key), records.iloc[0:0], key.index(spec.baseline_axis)
    rows = []
    for k in (k for k in itertools.product(*orders) if k in wanted):
        sub = groups.get(k, empty)
        got = finite(sub["value"])
        names = sorted(set(sub["metric"]) - {""})
        not_ok = sub["status"][sub["status"] != "ok"]
        named = dict(zip(key, k))
        row = {**named, "metric": "/".join(names) if names else task_metric(named["task"], spec.metric),
               "mean": got.mean() if len(got) else math.nan,
               "std": got.std(ddof=1) if len(got) >= 2 else math.nan,
               "max": got.max() if len(got) else math.nan,
               "n_ok": len(sub) - len(not_ok), "n_failed": len(not_ok), "n": len(sub), "n_scored": len(got),
               "failed_by_status": status_counts(not_ok),
               **dict(zip(("n_near_constant", "n_near_constant_unknown"), near_constant_counts(sub))),
               **{("delta_vs_baseline" if k == "delta" else k): v for k, v in EMPTY.items()}, "p_holm": math.nan,
               "paper": paper_value(spec.paper_values, named["model"], named["method"], named["task"]),
               "train_loss_mean": finite_mean(sub["train_loss"]), "seconds_mean": finite_mean(sub["seconds"])}
        if spec.baseline is not None and named[spec.baseline_axis] != spec.baseline:
            got = compare_cells(sub, groups.get(k[:base_at] + (spec.baseline,) + k[base_at + 1:], empty),
                                spec.comparisons)
            row.update({("delta_vs_baseline" if c == "delta" else c): got[c] for c in COMPARISON})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=key + CSV_STATS)
    return frame.astype({c: "float64" for c in FLOAT_STATS})


def missing_runs(records: pd.DataFrame, spec) -> list[tuple]:
    """Expected (cell key..., seed) combinations with no record, in the grid's order."""
    axes = spec.key + ["seed"]
    have = set(records[axes].itertuples(index=False, name=None))
    return [k for k in itertools.product(*(spec.expected[a] for a in axes)) if k not in have]


def outside_grid(records: pd.DataFrame, spec) -> list[str]:
    """Run ids of records with a value on some axis (model, task, method, seed, ...) outside the grid."""
    inside = np.ones(len(records), dtype=bool)
    for axis in spec.key + ["seed"]:
        inside &= records[axis].isin(spec.expected[axis]).to_numpy()
    return list(records.loc[~inside, "run_id"])


def duplicate_seeds(records: pd.DataFrame, spec) -> list[str]:
    """Cells with more than one record for a seed (e.g. a rerun with other hyper-parameters)."""
    counts = records.groupby(spec.key + ["seed"], sort=False).size()
    return [f"{' / '.join(map(str, k[:-1]))} / seed {k[-1]}: {n} records" for k, n in counts.items() if n > 1]
