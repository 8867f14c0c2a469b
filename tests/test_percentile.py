"""Child-Tuning_D's percentile threshold in both arithmetics: current numpy (float32) and the official environment's (float64)."""
import numpy as np
import pytest
import torch

from childtuning.fisher import percentile_threshold

KEEP_RATIOS = (0.1, 0.2, 0.3, 0.4)   # the author's per-task reserve ratios (p_D)


def numpy119_percentile(x: np.ndarray, percent: float) -> np.float64:
    """np.percentile(x, percent) as numpy <= 1.19 computed it (`_quantile_ureduce_func`, linear):
    float64 weights times the float32 order statistics (float32 array * float64 array -> float64), summed."""
    q = np.true_divide(percent, 100)
    ap = np.sort(x)
    indices = q * (ap.size - 1)
    below = int(np.floor(indices))
    above = min(below + 1, ap.size - 1)
    weights_above = indices - below
    weights_below = 1.0 - weights_above
    x1 = ap[below:below + 1] * np.array([weights_below])
    x2 = ap[above:above + 1] * np.array([weights_above])
    return np.add(x1, x2)[0]


def test_torch_rounds_a_float64_scalar_to_the_tensors_float32_before_comparing():
    """The premise of interpolation="float64": `float32 tensor >= np.float64(x)` compares with float32(x)."""
    low = np.float32(0.1)
    high = np.nextafter(low, np.float32(1))
    tensor = torch.tensor([low, high])
    for fraction in (0.25, 0.75):                    # x strictly between two float32 values
        x = np.float64(low) + (np.float64(high) - np.float64(low)) * fraction
        assert (tensor >= x).tolist() == (tensor >= float(np.float32(x))).tolist()
    x = np.float64(low) + (np.float64(high) - np.float64(low)) * 0.25
    assert (tensor >= x).tolist() == [True, True]    # compared in float64 it would drop `low`


@pytest.mark.slow
def test_float32_and_float64_thresholds_each_match_their_numpy():
    """10,000 random non-negative float32 arrays (Fisher-like, heavy-tailed; a fifth with ties):
    counts how often the two environments' thresholds differ (about 0.5% of trials here) and
    whether a kept set ever differs. percentile_threshold is checked against both references,
    and `scores >= threshold` against the official kept set, on the first 100 trials and on every
    trial where the thresholds differ."""
    rng = np.random.default_rng(0)
    trials, thresholds_differ, kept_sets_differ, checked_differing = 10_000, 0, 0, 0
    for trial in range(trials):
        n = int(rng.integers(2, 3000))
        x = (rng.lognormal(-12, 3, n) if rng.random() < 0.8 else rng.integers(0, 20, n) * 1e-6).astype(np.float32)
        keep = float(rng.choice(KEEP_RATIOS)) if rng.random() < 0.5 else float(rng.uniform(0.01, 0.99))
        scores = torch.from_numpy(x)
        t32 = np.percentile(x, (1 - keep) * 100)                 # current numpy: float32 lerp
        polar = numpy119_percentile(x, (1 - keep) * 100)          # the official environment: float64
        official_kept = scores >= polar                           # the official comparison
        differ = t32 != np.float32(polar)
        thresholds_differ += differ
        kept_sets_differ += not torch.equal(scores >= float(t32), official_kept)
        if trial < 100 or differ:
            parts = [torch.from_numpy(piece) for piece in np.array_split(x, 3)]
            assert percentile_threshold(parts, keep, interpolation="float32") == t32
            t64 = percentile_threshold(parts, keep, interpolation="float64")
            assert t64 == float(np.float32(polar))
            assert torch.equal(scores >= t64, official_kept)
            checked_differing += differ
    print(f"thresholds differ in {thresholds_differ} of {trials} trials; kept sets in {kept_sets_differ}")
    assert 0.002 * trials <= thresholds_differ <= 0.03 * trials
    assert checked_differing == thresholds_differ
    assert kept_sets_differ <= thresholds_differ


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="float64"):
        percentile_threshold([torch.ones(3)], 0.3, interpolation="exact")
