"""The aggregator's statistics on samples large enough that a wrong program shows."""
import numpy as np

from childtuning.report import bootstrap_ci

# Continuous scores, 20 seeds a side: an unseeded bootstrap moves its percentiles from call to call
# (with 2-3 tied scores it would not: few distinct resample means, every seed the same percentiles).
RNG = np.random.default_rng(12345)
METHOD = 70 + 3 * RNG.standard_normal(20)
BASELINE = 68 + 3 * RNG.standard_normal(20)


def test_bootstrap_ci_is_reproducible_and_follows_its_seed():
    ci = bootstrap_ci(METHOD, BASELINE)
    assert bootstrap_ci(METHOD, BASELINE) == ci                       # same call, same interval, to the bit
    assert bootstrap_ci(list(METHOD), list(BASELINE)) == ci           # whatever the container
    assert bootstrap_ci(METHOD, BASELINE, seed=1) != ci               # the seed is what fixes it
    assert ci[0] < METHOD.mean() - BASELINE.mean() < ci[1]


def test_bootstrap_ci_width_matches_the_normal_approximation():
    """A 95% percentile interval of a difference of means is about +-1.96 standard errors."""
    low, high = bootstrap_ci(METHOD, BASELINE)
    se = np.sqrt(METHOD.var() / len(METHOD) + BASELINE.var() / len(BASELINE))   # plug-in, ddof=0
    assert abs((high - low) / (2 * 1.96 * se) - 1) < 0.05
    assert abs((low + high) / 2 - (METHOD.mean() - BASELINE.mean())) < 0.1 * se


def test_bootstrap_ci_is_unknown_with_fewer_than_two_scores():
    assert all(np.isnan(bootstrap_ci([70.0], BASELINE))) and all(np.isnan(bootstrap_ci(METHOD, [1.0])))
