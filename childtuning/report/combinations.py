"""What one method adds on top of another: each combination row of a table (`child_tuning_d+mixout`)
against the row of the same table without one of its parts (`mixout`, `child_tuning_d`), per task.

The paper's claim for its prior-methods table is of this kind ("adding Child-Tuning on top of each
helps further"), which the baseline comparison (every row against vanilla) does not test. Each is
compared as the experiment declares (table.comparisons: by default the mean paired difference over
seeds, its t interval and the paired t-test), and joins the table's one Holm family: a claim about
a combination is one more claim the table makes, so it is adjusted with the others.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import COMPARISON, cell_groups, compare_cells

COLUMNS = ["combination", "added", "without", "task", *COMPARISON, "n_combination", "n_without"]


def parts(method: str) -> list[str]:
    return method.split("+")


def combination_gains(s) -> pd.DataFrame:
    """One row per (table row that is a combination, part removed whose remainder is also a row of
    the table, task): the combination minus the remainder. Extra row axes (e.g. trainer.lr) are
    kept as columns and must match. Empty when the table has no such pair."""
    spec = s.spec
    others = [a for a in spec.rows if a != "method"]
    groups, empty = cell_groups(s.records, spec.key), s.records.iloc[0:0]
    present = set(s.rows)
    rows = []
    for row in s.rows:
        named = s.named(row)
        if len(parts(named["method"])) < 2:
            continue
        for added in parts(named["method"]):
            without = "+".join(p for p in parts(named["method"]) if p != added)
            twin = tuple(without if a == "method" else v for a, v in zip(spec.rows, row))
            if twin not in present:
                continue
            for task in s.tasks:
                def key(method):
                    where = {**named, "method": method, "task": task}
                    return tuple(where[a] for a in spec.key)
                sub, base = groups.get(key(named["method"]), empty), groups.get(key(without), empty)
                if sub.empty:                       # the combination has no run here
                    continue
                rows.append({**{a: named[a] for a in others}, "combination": named["method"], "added": added,
                             "without": without, "task": task, **compare_cells(sub, base, spec.comparisons),
                             "n_combination": int(np.isfinite(sub["value"]).sum()),
                             "n_without": int(np.isfinite(base["value"]).sum())})
    return pd.DataFrame(rows, columns=others + COLUMNS)
