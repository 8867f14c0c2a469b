"""How often each interval covers the true difference: a simulation of small seed studies.

    python -m childtuning.report.coverage [--studies 4000] [--resamples 1000] [--seed 0]

For n = 3, 5 and 10 pairs and paired differences drawn from a normal, a skewed (log-normal) and a
heavy-tailed (t, 3 df) distribution with a known mean, it counts how often a nominal 95% interval
contains that mean: the tables' paired Student t interval, the paired BCa bootstrap (the declared
option) and, beside them, the percentile bootstrap the tables used before (mean(a) - mean(b), each
side resampled on its own), in the setting it assumed: two independent samples of n scores each
whose errors come from the same distribution. results/coverage.md holds this command's output.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from .inference import bca_intervals, t_intervals
from .text import md_table

SIZES = (3, 5, 10)
LEVEL = 0.95
TRUE_DIFFERENCE = 1.0
CHUNK = 250           # studies per vectorised bootstrap batch (memory: CHUNK x resamples x n)


def errors(kind: str, rng: np.random.Generator, shape) -> np.ndarray:
    """Draws with mean 0: normal(0, 1), log-normal(0, 1) minus its mean e^(1/2), or t with 3 df."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "log-normal":
        return rng.lognormal(0.0, 1.0, shape) - math.exp(0.5)
    if kind == "t (3 df)":
        return rng.standard_t(3, shape)
    raise ValueError(kind)


DISTRIBUTIONS = ("normal", "log-normal", "t (3 df)")


def percentile_intervals(a: np.ndarray, b: np.ndarray, level: float, resamples: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The old tables' interval, per row: the percentile bootstrap of mean(a) - mean(b) with each
    sample resampled with replacement on its own (pairing ignored)."""
    k, n = a.shape

    def means(x):
        picked = np.take_along_axis(x, rng.integers(0, n, size=(k, resamples * n)), axis=1)
        return picked.reshape(k, resamples, n).mean(axis=2)

    diff = means(a) - means(b)
    low, high = np.percentile(diff, [50 * (1 - level), 50 * (1 + level)], axis=1)
    return low, high


def covered(low, high, truth: float = TRUE_DIFFERENCE) -> int:
    return int(((low <= truth) & (truth <= high)).sum())


def coverage_table(studies: int = 4000, resamples: int = 1000, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """One row per distribution x n: the share (in %) of `studies` simulated studies whose interval
    contains the true difference, for the paired t, paired BCa and old percentile intervals."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in DISTRIBUTIONS:
        for n in SIZES:
            d = TRUE_DIFFERENCE + errors(kind, rng, (studies, n))
            hits = {"t": covered(*t_intervals(d, level)), "bca": 0, "old": 0}
            a = TRUE_DIFFERENCE + errors(kind, rng, (studies, n))
            b = errors(kind, rng, (studies, n))
            for start in range(0, studies, CHUNK):
                part = slice(start, start + CHUNK)
                hits["bca"] += covered(*bca_intervals(d[part], level, resamples, rng))
                hits["old"] += covered(*percentile_intervals(a[part], b[part], level, resamples, rng))
            rows.append({"distribution": kind, "n": n, **{k: 100 * v / studies for k, v in hits.items()}})
    return pd.DataFrame(rows)


def render(frame: pd.DataFrame, studies: int, resamples: int, seed: int, level: float = LEVEL) -> str:
    """The Markdown that results/coverage.md holds."""
    pct = f"{level:.0%}"
    lines = ["# Coverage of the comparison intervals", "",
             f"Made by `python -m childtuning.report.coverage --studies {studies} --resamples {resamples} --seed {seed}` "
             "(childtuning/report/coverage.py); do not edit by hand.", "",
             f"Share (%) of {studies:,} simulated studies whose nominal {pct} interval contains the true difference "
             f"({TRUE_DIFFERENCE:g}). Paired t: the tables' default, the Student t interval of the mean of n paired "
             f"differences. Paired BCa: the declared option `interval: bca` ({resamples:,} resamples per study here; the "
             "tables use 10,000). Old percentile: the interval the tables used before, a percentile bootstrap of "
             "mean(a) − mean(b) resampling each side on its own, simulated in the setting it assumed: two independent "
             "samples of n scores each (the distribution's errors on both sides; a seed-paired design breaks that "
             f"assumption as well). Differences: normal(0, 1), log-normal(0, 1) minus its mean (skewed), t with 3 df "
             f"(heavy tails), each shifted by {TRUE_DIFFERENCE:g}. Monte Carlo standard error at {pct}: about "
             f"{100 * math.sqrt(level * (1 - level) / studies):.2f} points.", ""]
    body = [[r["distribution"], str(r["n"]), f"{r['t']:.1f}", f"{r['bca']:.1f}", f"{r['old']:.1f}"]
            for _, r in frame.iterrows()]
    return "\n".join(lines + md_table(["differences", "n pairs", "paired t", "paired BCa", "old percentile"], body)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m childtuning.report.coverage", description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=4000, help="simulated studies per distribution and n")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per study")
    parser.add_argument("--seed", type=int, default=0, help="numpy seed of the whole simulation")
    args = parser.parse_args(argv)
    print(render(coverage_table(args.studies, args.resamples, args.seed), args.studies, args.resamples, args.seed), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
