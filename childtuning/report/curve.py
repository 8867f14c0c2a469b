"""The curve table kind (`table.kind: curve`): a GLUE table one of whose row axes is numeric (e.g.
method.keep_ratio), plotted as score against that axis, one line per method, one plot per task.

    table:
      kind: curve
      rows: [model, method, method.keep_ratio]
      x: method.keep_ratio                  # the numeric row axis on the horizontal axis
      reference: {at: 1.0, label: "..."}    # optional: each line's mean at x = 1.0 drawn across the plot
      x_scale: linear                       # or log, for values spread over orders of magnitude (x > 0)
      baseline: {method.keep_ratio: 1.0}    # the tables compare every x with that one, as usual

Tables (md, csv, tex) are the GLUE kind's; the plots replace its per-seed dot plots.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ..errors import InputError
from .emp import plot_emp
from .glue import GlueTable
from .plots import STATUS_COLORS, filename, save_png
from .registry import register


X_SCALES = ("linear", "log")


def as_number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@register
class CurveTable(GlueTable):
    name = "curve"

    def check(self, spec, where: str) -> None:
        super().check(spec, where)
        x = spec.options.get("x")
        if x not in spec.extra:
            raise InputError(f"{where}: table.kind curve needs table.x, one of its numeric row axes {spec.extra} "
                             f"(got {x!r})")
        if spec.options.get("x_scale", "linear") not in X_SCALES:
            raise InputError(f"{where}: table.x_scale must be one of {X_SCALES} (got {spec.options['x_scale']!r})")
        ref = spec.options.get("reference")
        if ref is not None and (not isinstance(ref, dict) or "at" not in ref):
            raise InputError(f"{where}: table.reference must be {{at: <x value>, label: <text>}} (got {ref!r})")

    def plot(self, summary, folder: Path) -> list[Path]:
        return plot_curves(summary, folder) + plot_emp(summary, folder)


def plot_curves(s, folder: Path) -> list[Path]:
    """One PNG per task: each line's mean ± std over seeds at every x, its seeds as faint dots
    (orange: degenerate), and the reference line where declared."""
    from matplotlib.figure import Figure

    x_axis, ref = s.spec.options["x"], s.spec.options.get("reference")
    others = [a for a in s.spec.rows if a != x_axis]
    lines = list(dict.fromkeys(tuple(s.named(r)[a] for a in others) for r in s.rows))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task in s.tasks:
        fig = Figure(figsize=(5.2, 3.6), dpi=100)
        ax = fig.add_subplot()
        colors = itertools.cycle(f"C{i}" for i in range(10))
        for line in lines:
            color = next(colors)
            rows = [r for r in s.rows if tuple(s.named(r)[a] for a in others) == line]
            cells = [(as_number(s.named(r)[x_axis]), s.cell(r, task)) for r in rows]
            cells = sorted((x, c) for x, c in cells if c is not None and np.isfinite(x))
            if not cells:
                continue
            xs = np.array([x for x, _ in cells])
            means = np.array([c["mean"] for _, c in cells])
            stds = np.array([c["std"] if np.isfinite(c["std"]) else 0.0 for _, c in cells])
            label = " / ".join(str(v) for a, v in zip(others, line) if a != "model" or len(lines) > 1)
            ax.errorbar(xs, means, yerr=stds, color=color, marker="o", markersize=4, capsize=3, label=label, zorder=3)
            runs = s.records[(s.records["task"] == task)]
            for a, v in zip(others, line):
                runs = runs[runs[a] == v]
            for _, r in runs[np.isfinite(runs["value"])].iterrows():
                ax.scatter(as_number(r[x_axis]), r["value"], s=9, alpha=0.35, zorder=2,
                           color="tab:orange" if r["status"] == "degenerate" else color)
            if ref is not None:
                at = [m for x, m in zip(xs, means) if np.isclose(x, float(ref["at"]))]
                if at:
                    text = ref.get("label") or f"{x_axis} = {ref['at']}"
                    ax.axhline(at[0], color=color, linestyle="--", linewidth=1, label=f"{label}: {text}")
        ax.set_xscale(s.spec.options.get("x_scale", "linear"))
        ax.set_xlabel(x_axis)
        ax.set_ylabel(s.task_metric(task))
        ax.set_title(f"{s.spec.experiment}: {task}, mean ± std over seeds\n(dots: seeds; "
                     f"orange: {', '.join(k for k in STATUS_COLORS if k != 'ok')})", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
        written.append(save_png(fig, folder / f"{filename(task)}.png"))
    return written
