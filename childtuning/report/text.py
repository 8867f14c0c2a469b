"""How the tables show values: number formats, the marks for unknown values, Markdown tables."""
from __future__ import annotations

import numpy as np

NA = "–"          # shown for a statistic that cannot be computed (too few scores)
UNKNOWN = "?"     # shown for a paper value (or a device) that is not known


def num(x: float, digits: int = 2) -> str:
    return NA if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def signed(x: float) -> str:
    return NA if not np.isfinite(x) else f"{x:+.2f}"


def p_value(x: float) -> str:
    return NA if not np.isfinite(x) else f"{x:.3g}"


def ci_text(c) -> str:
    """A comparison's interval (its `ci_low`, `ci_high`) as "[low, high]"."""
    return f"[{signed(c['ci_low'])}, {signed(c['ci_high'])}]" if np.isfinite(c["ci_low"]) else NA


def test_header(decl) -> list[str]:
    """The column names of test_cells under declaration `decl` (table.comparisons)."""
    return [f"{decl.level:.0%} CI", "p", "p (Holm)", "seeds better"] + (["equivalent"] if decl.margin is not None else [])


def test_cells(c, decl) -> list[str]:
    """A comparison's interval, p, Holm-adjusted p, seeds better and, when a margin is declared,
    whether the interval lies inside it, as table cells."""
    cells = [ci_text(c), p_value(c["p"]), p_value(c["p_holm"]), c["seeds_better"] or NA]
    return cells + ([c["equivalent"] or NA] if decl.margin is not None else [])


def near_constant_text(c) -> str:
    """"k" near-constant runs of a cell, "k (+u unknown)" when u records predate the flag."""
    known, unknown = int(c["n_near_constant"]), int(c["n_near_constant_unknown"])
    return f"{known} (+{unknown} unknown)" if unknown else str(known)


def near_constant_legend(known: int, unknown: int, n: int, unit: str = "records") -> str:
    """What the near-constant column counts, and how many of the `n` records cannot say."""
    return ("near-constant: runs whose dev predictions are near-constant (record `near_constant`: the majority class "
            "above 95% of the predictions; regression: prediction std under 5% of the label std), "
            f"{known} here; \"+u unknown\": u records made before records kept the prediction distribution "
            f"({unknown} of the {n} {unit}).")


def cell_text(c) -> str:
    """`mean ± std (n_ok/n)` of a cell row; NA for a cell that does not exist."""
    if c is None:
        return NA
    if not np.isfinite(c["mean"]):
        return f"{NA} ({c['n_ok']}/{c['n']})"
    return f"{num(c['mean'])} ± {num(c['std'])} ({c['n_ok']}/{c['n']})"


def paper_text(x: float) -> str:
    return UNKNOWN if not np.isfinite(x) else num(x)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda s: str(s).replace("|", "\\|")  # noqa: E731 - a pipe would split the cell
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(escape, r)) + " |" for r in rows]
    return lines
