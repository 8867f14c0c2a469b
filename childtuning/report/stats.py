"""Statistics over cells: mean/std per cell, tests against the baseline, and the grid's gaps."""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from .grid import CONF_DIR
from .records import score
from .text import NA

STATUS_ORDER = ("ok", "degenerate", "diverged", "failed")
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# table.csv: the cell's axes (model, task, method, then any extra row axes), then these
CSV_STATS = ["metric", "mean", "std", "max", "n_ok", "n_failed", "n", "n_scored", "failed_by_status",
             "delta_vs_baseline", "p_welch", "p_welch_holm", "ci_low", "ci_high", "p_paired", "p_paired_holm",
             "seeds_better", "paper", "train_loss_mean", "seconds_mean"]
FLOAT_STATS = ("mean", "std", "max", "delta_vs_baseline", "p_welch", "p_welch_holm", "ci_low", "ci_high", "p_paired",
               "p_paired_holm", "paper", "train_loss_mean", "seconds_mean")
# Raw p-value column -> its Holm-adjusted column (adjusted over the table's comparisons).
HOLM_COLUMNS = {"p_welch": "p_welch_holm", "p_paired": "p_paired_holm"}


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


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (Holm 1979): the i-th smallest of the m
    known ones becomes max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where the adjusted p
    is below alpha keeps the chance of any false rejection in the family at most alpha. NaN (a
    comparison without a p-value) stays NaN and is not counted in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    known = np.flatnonzero(np.isfinite(p))
    m = len(known)
    running = 0.0
    for rank, i in enumerate(known[np.argsort(p[known], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def add_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each raw p-value column's Holm-adjusted column (HOLM_COLUMNS), one family per
    test: every comparison in the frame."""
    for raw, adjusted in HOLM_COLUMNS.items():
        frame[adjusted] = holm(frame[raw].astype("float64")) if len(frame) else frame[raw]
    return frame


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


def compare(row: dict, sub: pd.DataFrame, base_runs: pd.DataFrame) -> None:
    """Fill `row`'s baseline columns: difference of means, Welch p, bootstrap CI, paired p and seeds better."""
    got, base = finite(sub["value"]), finite(base_runs["value"])
    if len(got) and len(base):
        row["delta_vs_baseline"] = got.mean() - base.mean()
    row["p_welch"] = welch_p(got, base)
    row["ci_low"], row["ci_high"] = bootstrap_ci(got, base)
    if not sub["seed"].duplicated().any() and not base_runs["seed"].duplicated().any():
        row["p_paired"], row["seeds_better"] = paired(sub.set_index("seed")["value"],
                                                      base_runs.set_index("seed")["value"])


def seed_averages(runs: pd.DataFrame, tasks: list) -> pd.Series:
    """Each seed's score averaged over `tasks` (index: seed), for the seeds scored on every task;
    empty when a task has two records of one seed (the seeds would not say which run to take)."""
    if runs.duplicated(["task", "seed"]).any():
        return pd.Series(dtype=float)
    wide = runs.pivot(index="seed", columns="task", values="value").reindex(columns=list(tasks)).astype(float)
    return wide[np.isfinite(wide.to_numpy()).all(axis=1)].mean(axis=1)


def compare_averages(row_runs: pd.DataFrame, base_runs: pd.DataFrame, tasks: list) -> dict:
    """Tests of a row's task average against the baseline row's: each seed's average over the tasks
    is one score (seed_averages), then Welch p, bootstrap CI, paired p and seeds better as for a cell."""
    got, base = seed_averages(row_runs, tasks), seed_averages(base_runs, tasks)
    p_paired, better = paired(got, base)
    low, high = bootstrap_ci(got, base)
    return {"p_welch": welch_p(got, base), "ci_low": low, "ci_high": high, "p_paired": p_paired,
            "seeds_better": better if better != NA else ""}


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
               "delta_vs_baseline": math.nan, "p_welch": math.nan, "p_welch_holm": math.nan, "ci_low": math.nan,
               "ci_high": math.nan, "p_paired": math.nan, "p_paired_holm": math.nan, "seeds_better": "",
               "paper": paper_value(spec.paper_values, named["model"], named["method"], named["task"]),
               "train_loss_mean": finite_mean(sub["train_loss"]), "seconds_mean": finite_mean(sub["seconds"])}
        if spec.baseline is not None and named[spec.baseline_axis] != spec.baseline:
            compare(row, sub, groups.get(k[:base_at] + (spec.baseline,) + k[base_at + 1:], empty))
        rows.append(row)
    frame = add_holm(pd.DataFrame(rows, columns=key + CSV_STATS))
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
