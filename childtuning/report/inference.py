"""One comparison of two cells as the experiment declares it: the interval, the test and Holm.

Seed-paired (the default): the runs of one seed share data subset, order and head initialisation
under every method, so the unit is the seed. Δ is the mean of the paired differences over the
seeds scored on both sides; its interval is Student's t (n - 1 df) or, declared, a paired BCa
bootstrap; its test the paired t-test or, declared, a sign-flip permutation test. Unpaired: Δ is
the difference of means, with the Welch-Satterthwaite interval and Welch's t-test.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd

from ..comparisons import Declaration

BOOTSTRAP_RESAMPLES = 10_000        # paired BCa: resamples of the seeds
BOOTSTRAP_SEED = 0                  # a fresh generator per comparison: no dependence on the order of cells
EXACT_SIGN_FLIP = 10                # up to this many pairs the sign-flip test enumerates all 2^n patterns
SIGN_FLIP_RESAMPLES = 100_000       # above it: this many random patterns, numpy seed SIGN_FLIP_SEED
SIGN_FLIP_SEED = 0


def _scipy_stats():
    from scipy import stats  # imported here: scipy is slow to import and only needed with comparisons

    return stats


def t_interval(d, level: float) -> tuple[float, float]:
    """Student t interval of the mean of `d` (n - 1 df); NaNs with fewer than 2 values."""
    low, high = t_intervals(np.asarray(d, dtype=float)[None, :], level)
    return float(low[0]), float(high[0])


def t_intervals(d: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """t_interval of each row of the 2-D array `d` (one study per row)."""
    n = d.shape[1]
    if n < 2:
        return np.full(len(d), math.nan), np.full(len(d), math.nan)
    half = _scipy_stats().t.ppf(0.5 + level / 2, n - 1) * d.std(axis=1, ddof=1) / math.sqrt(n)
    return d.mean(axis=1) - half, d.mean(axis=1) + half


def bca_interval(d, level: float, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Bias-corrected and accelerated bootstrap interval of the mean of `d` (Efron 1987), the seeds
    resampled with replacement from a fresh generator (numpy `seed`); NaNs with fewer than 2 values."""
    low, high = bca_intervals(np.asarray(d, dtype=float)[None, :], level, resamples, np.random.default_rng(seed))
    return float(low[0]), float(high[0])


def bca_intervals(d: np.ndarray, level: float, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """bca_interval of each row of the 2-D array `d`: bias z0 from the share of resampled means below
    the observed one (ties count half), acceleration from the jackknife means, the interval the
    resampled means' quantiles at Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = the normal's
    (1 -+ level) / 2 quantiles (linear interpolation, as numpy.quantile)."""
    k, n = d.shape
    if n < 2:
        return np.full(k, math.nan), np.full(k, math.nan)
    stats = _scipy_stats()
    means = np.take_along_axis(d, rng.integers(0, n, size=(k, resamples * n)), axis=1)
    means = np.sort(means.reshape(k, resamples, n).mean(axis=2), axis=1)
    theta = d.mean(axis=1, keepdims=True)
    tie = np.maximum(1.0, np.abs(theta)) * 1e-12
    below = (means < theta - tie).mean(axis=1) + 0.5 * (np.abs(means - theta) <= tie).mean(axis=1)
    z0 = stats.norm.ppf(np.clip(below, 0.5 / resamples, 1 - 0.5 / resamples))[:, None]
    jack = (d.sum(axis=1, keepdims=True) - d) / (n - 1)
    dev = jack.mean(axis=1, keepdims=True) - jack
    spread = (dev ** 2).sum(axis=1)
    accel = np.divide((dev ** 3).sum(axis=1), 6 * spread ** 1.5, out=np.zeros(k), where=spread > 0)[:, None]
    z = stats.norm.ppf([0.5 - level / 2, 0.5 + level / 2])[None, :]
    at = stats.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z))) * (resamples - 1)
    lo, frac = np.floor(at).astype(int), at - np.floor(at)
    hi = np.minimum(lo + 1, resamples - 1)
    bounds = np.take_along_axis(means, lo, axis=1) * (1 - frac) + np.take_along_axis(means, hi, axis=1) * frac
    return bounds[:, 0], bounds[:, 1]


def welch_interval(a, b, level: float) -> tuple[float, float]:
    """Welch-Satterthwaite t interval of mean(a) - mean(b); NaNs with fewer than 2 values a side
    or no spread on either side."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.nan, math.nan
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = _scipy_stats().t.ppf(0.5 + level / 2, df) * math.sqrt(va + vb)
    delta = a.mean() - b.mean()
    return float(delta - half), float(delta + half)


def paired_t_p(d) -> float:
    """Two-sided one-sample t-test of mean(d) = 0 (the paired t-test); NaN with < 2 values or
    constant differences (no spread: t is not defined)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2 or np.all(d == d[0]):
        return math.nan
    return float(_scipy_stats().ttest_1samp(d, 0.0).pvalue)


def sign_flip_p(d, resamples: int = SIGN_FLIP_RESAMPLES, seed: int = SIGN_FLIP_SEED) -> float:
    """Two-sided sign-flip permutation p of mean(d) = 0: the share of sign patterns whose |sum|
    is at least the observed one; exact (all 2^n patterns) for n <= EXACT_SIGN_FLIP, else a Monte
    Carlo estimate (1 + hits) / (1 + resamples). NaN with < 2 values."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return math.nan
    if len(d) <= EXACT_SIGN_FLIP:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(resamples, len(d)))
    observed = abs(d.sum())
    hits = int((np.abs(signs @ d) >= observed - 1e-9 * max(1.0, observed)).sum())
    return hits / len(signs) if len(d) <= EXACT_SIGN_FLIP else (1 + hits) / (1 + resamples)


def welch_p(a, b) -> float:
    """Two-sided Welch t-test p-value of a vs b; NaN when either has fewer than 2 values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():              # constant samples: scipy warns and returns NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(_scipy_stats().ttest_ind(a, b, equal_var=False).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (Holm 1979): the i-th smallest of the m
    known ones becomes max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where the adjusted p
    is below alpha keeps the chance of any false rejection in the family at most alpha. NaN (a
    comparison without a p-value) stays NaN and is not counted in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    known = np.flatnonzero(np.isfinite(p))
    m = len(known)
    running = 0.0
    for rank, i in enumerate(known[np.argsort(p[known], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def pairs(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """The seeds scored on both sides (columns a, b; index seed)."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return both[np.isfinite(both["a"].astype(float)) & np.isfinite(both["b"].astype(float))]


def equivalent(low: float, high: float, margin: float | None) -> str:
    """"yes" when the interval lies inside [-margin, +margin], "no" when not, "" when no margin is
    declared or the interval is unknown."""
    if margin is None or not (np.isfinite(low) and np.isfinite(high)):
        return ""
    return "yes" if -margin <= low and high <= margin else "no"


EMPTY = {"delta": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "seeds_better": "",
         "equivalent": ""}


def compare(a: pd.Series, b: pd.Series, decl: Declaration) -> dict:
    """The comparison of cell a with cell b (scores indexed by seed; NaN = unscored) under `decl`:
    delta, ci_low, ci_high, p, seeds_better ("k/n": seeds where a beats b among the n scored on
    both; "" when a cell holds two records of one seed) and equivalent. A paired comparison of
    cells with duplicate seeds has no value at all (which run would pair with which?)."""
    out = dict(EMPTY)
    unique = not a.index.duplicated().any() and not b.index.duplicated().any()
    both = pairs(a, b) if unique else None
    if both is not None and len(both):
        out["seeds_better"] = f"{int((both['a'] > both['b']).sum())}/{len(both)}"
    if decl.design == "paired":
        if both is None or both.empty:
            return out
        d = (both["a"] - both["b"]).to_numpy(dtype=float)
        out["delta"] = float(d.mean())
        out["ci_low"], out["ci_high"] = (bca_interval(d, decl.level) if decl.interval == "bca"
                                         else t_interval(d, decl.level))
        out["p"] = sign_flip_p(d) if decl.test == "sign_flip" else paired_t_p(d)
    else:
        got, base = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        got, base = got[np.isfinite(got)], base[np.isfinite(base)]
        if len(got) and len(base):
            out["delta"] = float(got.mean() - base.mean())
        out["ci_low"], out["ci_high"] = welch_interval(got, base, decl.level)
        out["p"] = welch_p(got, base)
    out["equivalent"] = equivalent(out["ci_low"], out["ci_high"], decl.margin)
    return out


def describe(decl: Declaration) -> dict[str, str]:
    """The legend's words for the declared interval, test and delta."""
    level = f"{decl.level:.0%}"
    if decl.design == "unpaired":
        return {"delta": "Δ = mean(row) − mean(baseline) over each side's scored seeds (design: unpaired)",
                "interval": f"{level} CI: Welch-Satterthwaite t interval of that difference",
                "test": "p: Welch's t-test"}
    interval = (f"{level} CI: paired BCa bootstrap of the mean paired difference ({BOOTSTRAP_RESAMPLES:,} resamples "
                f"of the seeds, numpy seed {BOOTSTRAP_SEED})" if decl.interval == "bca" else
                f"{level} CI: Student t interval of the mean paired difference (n − 1 degrees of freedom)")
    test = ("p: sign-flip permutation test of the mean paired difference (two-sided; exact over all 2^n sign "
            f"patterns for n ≤ {EXACT_SIGN_FLIP} pairs, else {SIGN_FLIP_RESAMPLES:,} random patterns, numpy seed "
            f"{SIGN_FLIP_SEED}; with n pairs the smallest possible p is 2/2^n: 0.25 at n = 3, 0.0625 at n = 5)"
            if decl.test == "sign_flip" else
            "p: paired t-test (two-sided; unknown when the differences are constant)")
    return {"delta": "Δ = mean over the n seeds scored under both of (row − baseline), the paired difference "
                     "(design: paired: a seed has the same data subset, order and head initialisation under every "
                     "method)", "interval": interval, "test": test}
