"""The comparison's interval and test (childtuning/report/inference.py) against scipy, on samples
large enough that a wrong program shows."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from childtuning import comparisons
from childtuning.report.inference import (bca_interval, compare, paired_t_p, sign_flip_p, t_interval, welch_interval,
                                          welch_p)

RNG = np.random.default_rng(12345)
METHOD = 70 + 3 * RNG.standard_normal(20)
BASELINE = 68 + 3 * RNG.standard_normal(20)
DIFF = METHOD - BASELINE
SKEWED = RNG.lognormal(0.0, 1.0, 12)


def test_t_interval_and_paired_test_are_scipys():
    for d in (DIFF, DIFF[:3], SKEWED):
        result = stats.ttest_1samp(d, 0.0)
        assert t_interval(d, 0.95) == pytest.approx(tuple(result.confidence_interval(0.95)), rel=1e-12)
        assert t_interval(d, 0.9) == pytest.approx(tuple(result.confidence_interval(0.9)), rel=1e-12)
        assert paired_t_p(d) == pytest.approx(result.pvalue, rel=1e-12)
    assert paired_t_p(METHOD - BASELINE) == pytest.approx(stats.ttest_rel(METHOD, BASELINE).pvalue, rel=1e-12)
    assert all(math.isnan(x) for x in t_interval([1.0], 0.95)) and math.isnan(paired_t_p([1.0]))
    assert math.isnan(paired_t_p([2.0, 2.0, 2.0]))           # constant differences: t is not defined
    assert t_interval([2.0, 2.0, 2.0], 0.95) == (2.0, 2.0)


def test_welch_interval_and_test_are_scipys():
    a, b = METHOD[:7], BASELINE[:12]
    result = stats.ttest_ind(a, b, equal_var=False)
    assert welch_interval(a, b, 0.95) == pytest.approx(tuple(result.confidence_interval(0.95)), rel=1e-12)
    assert welch_p(a, b) == pytest.approx(result.pvalue, rel=1e-12)
    assert all(math.isnan(x) for x in welch_interval([1.0], b, 0.95)) and math.isnan(welch_p(a, [1.0]))


def test_sign_flip_is_exact_up_to_ten_pairs_and_seeded_above():
    for d in (DIFF[:5], DIFF[:10], np.array([1.0, 2.0, 3.0])):
        exact = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
        assert sign_flip_p(d) == pytest.approx(exact, rel=1e-12)
    assert sign_flip_p(np.array([1.0, 2.0, 3.0])) == 0.25                 # the smallest p with 3 pairs: 2/2^3
    assert sign_flip_p(np.zeros(4)) == 1.0                                 # no difference at all
    # hand count: of the 8 sign patterns of (1, 2, -4), |sum| >= 1 for all 8
    assert sign_flip_p(np.array([1.0, 2.0, -4.0])) == 1.0
    many = DIFF                                                            # 20 pairs: Monte Carlo, fixed seed
    assert sign_flip_p(many) == sign_flip_p(many)
    assert sign_flip_p(many) == pytest.approx(stats.ttest_1samp(many, 0.0).pvalue, abs=0.03)


def test_bca_interval_is_scipys_bca_and_follows_its_seed():
    got = bca_interval(SKEWED, 0.95, resamples=100_000)
    want = stats.bootstrap((SKEWED,), np.mean, n_resamples=100_000, method="BCa", rng=1).confidence_interval
    assert got == pytest.approx((want.low, want.high), rel=0.02)
    assert bca_interval(SKEWED, 0.95) == bca_interval(SKEWED, 0.95)            # deterministic, to the bit
    assert bca_interval(SKEWED, 0.95, seed=1) != bca_interval(SKEWED, 0.95)     # the seed is what fixes it
    assert bca_interval([3.0, 3.0, 3.0], 0.95) == (3.0, 3.0)


def scores(values, seeds=None):
    return pd.Series(values, index=seeds or range(1, len(values) + 1), dtype=float)


def test_compare_follows_the_declaration():
    a = scores([75.0, 50.0, math.nan, 66.0])          # seed 3 unscored: leaves the pairs
    b = scores([60.0, 70.0, 80.0, 61.0])
    pairs = np.array([15.0, -20.0, 5.0])
    paired = compare(a, b, comparisons.read(None))
    assert paired["delta"] == pytest.approx(pairs.mean()) and paired["seeds_better"] == "2/3"
    assert (paired["ci_low"], paired["ci_high"]) == pytest.approx(t_interval(pairs, 0.95))
    assert paired["p"] == pytest.approx(stats.ttest_rel([75, 50, 66], [60, 70, 61]).pvalue)
    assert paired["equivalent"] == ""                                     # no margin declared
    flip = compare(a, b, comparisons.read({"test": "sign_flip", "interval": "bca", "margin": 100}))
    assert flip["p"] == sign_flip_p(pairs) and (flip["ci_low"], flip["ci_high"]) == bca_interval(pairs, 0.95)
    assert flip["equivalent"] == "yes"
    unpaired = compare(a, b, comparisons.read({"design": "unpaired", "margin": 1}))
    got, base = [75.0, 50.0, 66.0], [60.0, 70.0, 80.0, 61.0]
    assert unpaired["delta"] == pytest.approx(np.mean(got) - np.mean(base))
    assert unpaired["p"] == pytest.approx(stats.ttest_ind(got, base, equal_var=False).pvalue)
    assert (unpaired["ci_low"], unpaired["ci_high"]) == pytest.approx(welch_interval(got, base, 0.95))
    assert unpaired["equivalent"] == "no"


def test_a_paired_comparison_with_two_records_of_one_seed_has_no_value():
    a = scores([75.0, 50.0, 60.0], seeds=[1, 1, 2])
    got = compare(a, scores([60.0, 70.0]), comparisons.read(None))
    assert all(math.isnan(got[k]) for k in ("delta", "ci_low", "ci_high", "p")) and got["seeds_better"] == ""


@pytest.mark.parametrize("low, high, margin, expected", [(-0.5, 0.9, 1.0, "yes"), (-1.2, 0.3, 1.0, "no"),
                                                         (-0.5, 0.9, None, ""), (math.nan, math.nan, 1.0, "")])
def test_equivalence_needs_the_whole_interval_inside_the_margin(low, high, margin, expected):
    from childtuning.report.inference import equivalent

    assert equivalent(low, high, margin) == expected


def test_paired_interval_is_narrower_than_welchs_when_seeds_share_variation():
    """What pairing buys: scores that move together by seed give a paired interval much narrower
    than the unpaired one over the same numbers."""
    seed_effect = 5 * RNG.standard_normal(8)
    a, b = seed_effect + 1.0 + 0.3 * RNG.standard_normal(8), seed_effect + 0.3 * RNG.standard_normal(8)
    paired = t_interval(a - b, 0.95)
    unpaired = welch_interval(a, b, 0.95)
    assert paired[1] - paired[0] < 0.3 * (unpaired[1] - unpaired[0])


def test_every_exact_sign_pattern_is_counted_once():
    d = np.array([0.5, -1.0, 2.0, 3.5])
    hits = sum(abs(np.dot(s, d)) >= abs(d.sum()) for s in itertools.product((1, -1), repeat=4))
    assert sign_flip_p(d) == hits / 16


def test_bca_counts_resampled_means_equal_to_the_observed_one_as_half_below():
    """With 3 seeds a quarter of the resamples have exactly the observed mean: counting them all as
    "not below" would bias the interval; for symmetric differences it stays symmetric."""
    low, high = bca_interval([-1.0, 0.0, 1.0], 0.9)
    assert low < 0 < high and abs(low + high) < 0.05 * (high - low)
