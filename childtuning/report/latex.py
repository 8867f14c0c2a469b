"""table.tex of a model x method table: a booktabs tabular of the cells and the task average."""
from __future__ import annotations

import math
import re

import numpy as np

from .summary import Summary


def tex(text: str) -> str:
    return re.sub(r"([_&%#$])", r"\\\1", str(text))


def render_latex(s: Summary) -> str:
    """The main table as a booktabs tabular: mean ± std per task, then the average; paper rows where known."""
    def value(mean, std=math.nan):
        if not np.isfinite(mean):
            return "--"
        return f"${mean:.2f} \\pm {std:.2f}$" if np.isfinite(std) else f"${mean:.2f}$"

    n_axes = len(s.spec.rows)
    lines = [f"% {tex(s.spec.experiment)}: dev-set score at the last epoch, mean $\\pm$ sample std over seeds "
             "(runs with a finite score). Needs \\usepackage{booktabs}.",
             "\\begin{tabular}{" + "l" * n_axes + "r" * (len(s.tasks) + 1) + "}", "\\toprule",
             " & ".join(tex(a.capitalize() if a in ("model", "method") else a) for a in s.spec.rows) + " & "
             + " & ".join(f"{tex(t)} ({tex(s.task_metric(t))})" for t in s.tasks) + " & Avg \\\\", "\\midrule"]
    for row in s.rows:
        cells = [s.cell(row, t) for t in s.tasks]
        ours = [value(c["mean"], c["std"]) if c is not None else "--" for c in cells]
        lines.append(" & ".join(map(tex, row)) + " & " + " & ".join(ours) + f" & {value(s.avg(row))} \\\\")
        paper = [s.paper(row, t) for t in s.tasks + ["avg"]]
        if any(np.isfinite(p) for p in paper):
            label = " & ".join([""] * (n_axes - 1) + ["paper"])
            lines.append(label + " & " + " & ".join(f"{p:.2f}" if np.isfinite(p) else "?" for p in paper) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
