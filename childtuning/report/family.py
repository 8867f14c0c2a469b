"""A table's Holm family and whether it was fixed before the runs.

The family is every comparison the table reports (per cell, Avg rows, combinations), pooled with
the families of the experiments it joins (`table.comparisons.joins`) or that join it, so a
follow-up study cannot start a family of its own. Each run record names the declaration it ran
under (`comparisons_digest`); a table whose records ran under another declaration, or under none,
is refused unless the file states the change (`amended`), which the legend then repeats.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError
from .inference import describe, holm


@dataclass
class Family:
    """Which p-values one Holm adjustment covered."""
    experiment: str
    sizes: dict[str, int] = field(default_factory=dict)     # experiment -> comparisons with a p-value
    unknown: int = 0          # this table's comparisons without a p-value (not in m)

    @property
    def m(self) -> int:
        return sum(self.sizes.values())


@dataclass
class Provenance:
    """How the counted records relate to the file's current declaration."""
    n: int
    other: int           # made under another declaration
    none: int            # made before records named one
    amended: tuple = ()


def tested_p(frames: list) -> np.ndarray:
    """The p-values of the tested rows of (frame, rows) pairs, in order."""
    parts = [f["p"].to_numpy(dtype=float)[slice(None) if rows is None else rows] for f, rows in frames if len(f)]
    return np.concatenate(parts) if parts else np.zeros(0)


def adjust(experiment: str, own: list, others: dict[str, list]) -> Family:
    """Set column p_holm of each (frame, rows) pair in `own`: Holm over the p-values of their tested
    rows and those of `others` (experiment name -> its (frame, rows) pairs, unadjusted); rows that
    are not tested get NaN."""
    mine = tested_p(own)
    pooled = [mine] + [tested_p(f) for f in others.values()]
    adjusted = holm(np.concatenate(pooled)) if sum(map(len, pooled)) else np.zeros(0)
    start = 0
    for f, rows in own:
        if not len(f):
            f["p_holm"] = f["p"]
            continue
        mask = np.ones(len(f), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        column = np.full(len(f), np.nan)
        column[mask] = adjusted[start: start + int(mask.sum())]
        f["p_holm"] = column
        start += int(mask.sum())
    sizes = {experiment: int(np.isfinite(mine).sum())}
    sizes.update({name: int(np.isfinite(tested_p(f)).sum()) for name, f in others.items()})
    return Family(experiment=experiment, sizes=sizes, unknown=int((~np.isfinite(mine)).sum()))


def check_records(spec, records: pd.DataFrame) -> Provenance:
    """Compare each record's comparisons_digest with the file's current declaration. Raises
    InputError when some differ or are missing and the file states no amendment."""
    decl = spec.comparisons
    current = decl.digest()
    digests = records["comparisons_digest"] if "comparisons_digest" in records else pd.Series(dtype=object)
    none = int(digests.isna().sum())
    other = int((digests.notna() & (digests != current)).sum())
    if (none or other) and not decl.amended:
        example = [rid for rid, d in zip(records["run_id"], digests) if d != current][:3]
        raise InputError(
            f"{spec.file}: {other} record(s) of {spec.experiment} ran under another table.comparisons declaration "
            f"and {none} under none (e.g. {', '.join(example)}; current digest {current}), so the family and tests "
            "were not all fixed before these runs. Either restore the declaration they ran under, rerun them "
            "(force=true), or state the change in the file: table.comparisons.amended: "
            "[{date: YYYY-MM-DD, reason: \"...\"}]; the table's legend then repeats it")
    return Provenance(n=len(records), other=other, none=none, amended=decl.amended)


def legend(s, extra: str = "") -> list[str]:
    """The legend of a table's comparisons, as paragraphs: what Δ, the interval and p are (then
    `extra`, the kind's own words), the family, how to read a "no difference", any amendment."""
    decl, family, provenance = s.spec.comparisons, s.family, s.provenance
    words = describe(decl)
    out = [f"{words['delta']}. {words['interval']}. {words['test']}." + (f" {extra}" if extra else "")
           + ("" if s.spec.declared else " (There is no experiment file, so no experiment file declares these "
              "comparisons: the defaults of table.comparisons apply, fixed by nobody before the runs.)")]
    if family is not None:
        pooled = [e for e in family.sizes if e != family.experiment]
        where = (f"this table's comparisons pooled with those of {', '.join(f'`{e}`' for e in pooled)} ("
                 + "; ".join(f"{e}: {n}" for e, n in family.sizes.items()) + "), so their tables show the same "
                 "adjusted p-values") if pooled else "every comparison of this table that has a p-value"
        out.append(f"p (Holm): p adjusted by Holm's step-down method over one family, m = {family.m}: {where}"
                   + (f"; {family.unknown} comparison(s) without a p-value (fewer than 2 pairs, or constant "
                      "differences under the t-test) are not counted" if family.unknown else "")
                   + f". Read a difference as shown only where its adjusted p is below α = {decl.alpha:.2g}; the "
                   "chance of any false claim in the family is then at most α.")
    if decl.margin is None:
        out.append("No equivalence margin is declared, so this table supports no \"no difference\" claim: an "
                   "interval that contains 0 means no evidence of a difference, not evidence of none.")
    else:
        out.append(f"equivalent: yes where the interval lies inside ±{decl.margin:g} (the declared margin, in the "
                   "metric's points); \"no difference\" may be claimed only there (per comparison, not adjusted for "
                   "the family). Elsewhere an interval that contains 0 means no evidence of a difference.")
    if provenance is not None and provenance.amended:
        changes = "; ".join(f"{a.date}: {a.reason}" for a in provenance.amended)
        out.append(f"**Declaration amended after records existed** ({changes}). Of the {provenance.n} record(s), "
                   f"{provenance.other} were made under another declaration and {provenance.none} under none "
                   "(before records named one).")
    return out
