"""Per-task PNGs of a model x method table: every seed's score as a dot, the cell mean as a bar."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .summary import Summary

STATUS_COLORS = {"ok": "tab:blue", "degenerate": "tab:orange"}   # anything else: red, and has no score anyway


def filename(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


def save_png(fig, path: Path) -> Path:
    """Lay out `fig` and write it to `path` (folders made) as a PNG without the matplotlib version
    in its metadata, so a rebuild from the same records gives the same bytes; returns `path`."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


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
        written.append(save_png(fig, folder / f"{filename(task)}.png"))
    return written
