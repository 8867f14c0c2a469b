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
    """A comparison's bootstrap CI (its `ci_low`, `ci_high`) as "[low, high]"."""
    return f"[{signed(c['ci_low'])}, {signed(c['ci_high'])}]" if np.isfinite(c["ci_low"]) else NA


def test_cells(c) -> list[str]:
    """A comparison's CI, Welch p, its Holm adjustment, paired p, its Holm adjustment and seeds
    better, as table cells; a comparison outside the Holm family (no `*_holm`) shows NA there."""
    return [ci_text(c), p_value(c["p_welch"]), p_value(c.get("p_welch_holm", np.nan)), p_value(c["p_paired"]),
            p_value(c.get("p_paired_holm", np.nan)), c["seeds_better"] or NA]


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
