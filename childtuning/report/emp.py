"""Expected maximum performance (Dodge et al., 2019, "Show Your Work"): the expected best dev score
of n runs drawn from a cell's runs, as a function of n; a table section and a plot per task.

Dodge et al. (Sec. 3, Eq. 1) estimate E[max of n runs] from N observed scores by the empirical
distribution: with the scores sorted, v_(1) <= ... <= v_(N), the maximum of n draws with
replacement is v_(i) with probability (i/N)^n - ((i-1)/N)^n (ties need no special case: the
probabilities of equal values add up). Its spread is the standard deviation of that maximum.
A cell's runs are its seeds; where the table has further row axes (e.g. trainer.lr in a search),
the runs of one model x task x method are pooled over them too: the expected best of n trials of
the search, as the paper uses it for hyper-parameter budgets.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .plots import filename, save_png
from .text import NA, md_table, num

MAX_COLUMNS = 10    # table.md shows n = 1..10 (the plots go up to each group's number of runs)


def expected_max(values, n: int) -> tuple[float, float]:
    """(mean, std) of the maximum of `n` draws with replacement from the finite `values`; NaNs if none."""
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(np.asarray(values, dtype=float))])
    if not len(v) or n < 1:
        return math.nan, math.nan
    i = np.arange(1, len(v) + 1)
    weights = (i / len(v)) ** n - ((i - 1) / len(v)) ** n
    mean = float((weights * v).sum())
    return mean, math.sqrt(max(0.0, float((weights * v * v).sum()) - mean * mean))


def groups(summary) -> tuple[list[str], str, dict[tuple, np.ndarray]]:
    """The key axes of the groups, what their runs span, and each group's finite scores."""
    spec, records = summary.spec, summary.records
    key = ["model", "task", "method"] if spec.extra else spec.key
    over = "seeds × " + " × ".join(spec.extra) if spec.extra else "seeds"
    scored = records[np.isfinite(records["value"])]
    found = {k if isinstance(k, tuple) else (k,): sub["value"].to_numpy() for k, sub in scored.groupby(key, sort=False)}
    ordered = {}
    for _, c in summary.cells.iterrows():          # the table's order
        k = tuple(c[a] for a in key)
        if k in found and k not in ordered:
            ordered[k] = found[k]
    return key, over, ordered


def emp_lines(summary) -> list[str]:
    """The table.md section: E[max] for n = 1..MAX_COLUMNS per group with at least 2 scored runs."""
    key, over, found = groups(summary)
    found = {k: v for k, v in found.items() if len(v) >= 2}
    if not found:
        return []
    width = min(MAX_COLUMNS, max(len(v) for v in found.values()))
    rows = [[str(x) for x in k] + [str(len(v))] + [num(expected_max(v, n)[0]) if n <= len(v) else NA
                                                   for n in range(1, width + 1)] for k, v in found.items()]
    return ["", "## Expected maximum performance", "",
            f"E[best dev score of n runs] (Dodge et al. 2019, \"Show Your Work\", Sec. 3): the expected maximum of n "
            f"draws with replacement from a group's runs with a score (runs over {over}); n = 1 is the mean. "
            f"Shown up to each group's number of runs (`{NA}` beyond it); plots/emp_<task>.png adds ± one standard "
            "deviation of that maximum.", ""] \
        + md_table(key + ["runs"] + [f"n={n}" for n in range(1, width + 1)], rows)


def plot_emp(summary, folder: Path) -> list[Path]:
    """One PNG per task: E[max] against n for each group with at least 2 scored runs, ± 1 std."""
    from matplotlib.figure import Figure

    key, over, found = groups(summary)
    written = []
    for task in summary.tasks:
        lines = {k: v for k, v in found.items() if dict(zip(key, k))["task"] == task and len(v) >= 2}
        if not lines:
            continue
        fig = Figure(figsize=(5.0, 3.4), dpi=100)
        ax = fig.add_subplot()
        for k, v in lines.items():
            n = np.arange(1, len(v) + 1)
            stats = np.array([expected_max(v, int(i)) for i in n])
            label = " / ".join(str(x) for a, x in zip(key, k) if a not in ("model", "task") or
                               len({kk[key.index(a)] for kk in lines}) > 1)
            ax.plot(n, stats[:, 0], marker="o", markersize=3, label=label)
            ax.fill_between(n, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], alpha=0.15)
        ax.set_xlabel(f"number of runs n (drawn from {over})")
        ax.set_ylabel(f"expected best {summary.task_metric(task)}")
        ax.set_title(f"{summary.spec.experiment}: {task}, expected maximum performance", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        written.append(save_png(fig, folder / f"emp_{filename(task)}.png"))
    return written


def emp_frame(summary, n_max: int | None = None) -> pd.DataFrame:
    """Long format for notebooks: one row per group and n, with the mean and std of the maximum."""
    key, over, found = groups(summary)
    rows = []
    for k, v in found.items():
        for n in range(1, (n_max or len(v)) + 1):
            mean, std = expected_max(v, n)
            rows.append({**dict(zip(key, k)), "over": over, "runs": len(v), "n": n, "emp": mean, "emp_std": std})
    return pd.DataFrame(rows)
