"""A computed table: the cells, gaps and notes a renderer reads, with accessors by row and task."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .spec import TableSpec
from .stats import COMPARISON, compare_averages, order, paper_value


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
    averages: pd.DataFrame | None = None   # each row's Avg against its baseline row (average_comparisons)
    gains: pd.DataFrame | None = None      # what each part of a combination adds (report/combinations.py)
    family: object = None                  # the Holm family (report/family.py), set by the aggregator
    provenance: object = None              # the records against the declaration (report/family.py)

    def __post_init__(self):
        key = self.spec.key
        # positions, not rows: the aggregator fills p_holm into `cells` after this (report/family.py)
        self._by_key = {tuple(c[a] for a in key): i for i, (_, c) in enumerate(self.cells.iterrows())}
        self.tasks = list(dict.fromkeys(self.cells["task"]))
        present = set(self.cells[self.spec.rows].itertuples(index=False, name=None))
        orders = [list(dict.fromkeys(self.cells[a])) if a == "model" else order(self.spec.expected[a], self.cells[a])
                  for a in self.spec.rows]
        self.rows = [r for r in itertools.product(*orders) if r in present]

    @property
    def n_expected(self) -> int:
        return math.prod(len(self.spec.expected[a]) for a in self.spec.key + ["seed"])

    def cell_rows(self) -> list[tuple[tuple, pd.Series]]:
        """(cell key, cell row) for every cell, in table.csv order."""
        return [(k, self.cells.iloc[i]) for k, i in self._by_key.items()]

    def named(self, row: tuple) -> dict:
        return dict(zip(self.spec.rows, row))

    def cell(self, row: tuple, task: str):
        """The cell row of a table row and task (a Series of table.csv's columns); None if there is none."""
        named = {**self.named(row), "task": task}
        i = self._by_key.get(tuple(named[a] for a in self.spec.key))
        return None if i is None else self.cells.iloc[i]

    def baseline_row(self, row: tuple) -> tuple:
        return tuple(self.spec.baseline if a == self.spec.baseline_axis else v for a, v in zip(self.spec.rows, row))

    def avg(self, row: tuple) -> float:
        """The mean of the per-task means; NaN unless every task has one."""
        means = [self.cell(row, t)["mean"] if self.cell(row, t) is not None else math.nan for t in self.tasks]
        return float(np.mean(means)) if means and np.all(np.isfinite(means)) else math.nan

    def runs(self, row: tuple) -> pd.DataFrame:
        """The records of a table row, over every task."""
        match = np.ones(len(self.records), dtype=bool)
        for axis, value in self.named(row).items():
            match &= (self.records[axis] == value).to_numpy()
        return self.records[match]

    def paper(self, row: tuple, task: str) -> float:
        named = self.named(row)
        return paper_value(self.spec.paper_values, named["model"], named["method"], task)

    def task_metric(self, task) -> str:
        names = sorted(set(self.cells.loc[self.cells["task"] == task, "metric"]) - {""})
        return "/".join(names) or "?"

    def label(self, row: tuple, sep: str = " / ") -> str:
        """model / method [/ axis=value ...]"""
        return sep.join(v if a in ("model", "method") else f"{a}={v}" for a, v in self.named(row).items())

    def average_comparisons(self) -> pd.DataFrame:
        """One row per table row besides the baseline: its task average against the baseline row's
        (each seed's average over the tasks is one score), under the declared comparison."""
        spec, rows = self.spec, []
        if spec.baseline is not None:
            for row in self.rows:
                if self.named(row)[spec.baseline_axis] != spec.baseline:
                    rows.append({**self.named(row), **compare_averages(self.runs(row), self.runs(self.baseline_row(row)),
                                                                       self.tasks, spec.comparisons)})
        return pd.DataFrame(rows, columns=list(spec.rows) + COMPARISON)

    def average_of(self, row: tuple):
        """The Avg comparison of a table row (a Series), or None."""
        if self.averages is None or self.averages.empty:
            return None
        match = np.ones(len(self.averages), dtype=bool)
        for axis, value in self.named(row).items():
            match &= (self.averages[axis] == value).to_numpy()
        return self.averages[match].iloc[0] if match.any() else None
