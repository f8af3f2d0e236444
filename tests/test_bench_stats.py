"""Statistics on known inputs, checked against hand values and numpy/scipy (independent implementations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from dass_edge.bench.stats import (paired_ratio_interval, percentile, ratio_interval, relative_spread,
                                   samples_needed, summarize_ns, t_quantile, unstable)


def test_summary_of_known_samples():
    s = summarize_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000, 10_000_000])  # 1,2,3,4,10 ms
    assert s.count == 5
    assert s.median_ms == 3.0 == s.p50_ms
    assert s.mean_ms == 4.0
    assert s.min_ms == 1.0 and s.max_ms == 10.0
    assert s.std_ms == pytest.approx(math.sqrt(12.5))  # sample variance: (9+4+1+0+36)/4
    assert s.cv == pytest.approx(math.sqrt(12.5) / 4.0)
    assert s.p90_ms is None and s.p99_ms is None  # 5 samples: too few for either tail
    ten = summarize_ns([1_000_000 * v for v in (1, 2, 3, 4, 5, 6, 7, 8, 9, 20)])
    assert ten.p90_ms == pytest.approx(9 + 11 * 0.1) and ten.p99_ms is None  # 10 samples: p90 yes, p99 no


def test_tails_need_enough_samples():
    """p99 of 20 runs is not measured; of 100 it is (numpy's value); p99.9 only when asked, and needs 1000."""
    values = list(np.random.default_rng(2).lognormal(0, 0.3, size=1000))
    ns = [int(v * 1e6) for v in values]
    few = summarize_ns(ns[:20], (50, 90, 99, 99.9))
    assert few.p99_ms is None and few.percentiles["p99"] == {"ms": None, "needs": 100, "measured": False}
    assert few.percentiles["p99.9"]["needs"] == 1000 and few.to_dict()["p99_9_ms"] is None
    assert few.p90_ms == pytest.approx(np.percentile([n / 1e6 for n in ns[:20]], 90))
    hundred = summarize_ns(ns[:100])
    assert hundred.p99_ms == pytest.approx(np.percentile([n / 1e6 for n in ns[:100]], 99))
    assert "p99.9" not in hundred.percentiles and "p99_9_ms" not in hundred.to_dict()
    full = summarize_ns(ns, (99.9,))
    assert full.to_dict()["p99_9_ms"] == pytest.approx(np.percentile([n / 1e6 for n in ns], 99.9))
    assert [samples_needed(q) for q in (10, 50, 90, 99, 99.9)] == [10, 2, 10, 100, 1000]


def test_high_variation_warns():
    steady = summarize_ns([1_000_000 + i for i in range(50)])
    jumpy = summarize_ns([1_000_000, 3_000_000] * 25)
    assert unstable(steady) is None and steady.cv < 0.01
    assert jumpy.cv == pytest.approx(np.std([1, 3] * 25, ddof=1) / 2)
    assert "coefficient of variation 51%" in unstable(jumpy)


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy(q):
    values = list(np.random.default_rng(1).lognormal(0, 0.5, size=37))
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_single_sample_and_bad_input():
    s = summarize_ns([2_500_000])
    assert (s.count, s.median_ms, s.p99_ms, s.std_ms, s.cv) == (1, 2.5, None, 0.0, 0.0)
    with pytest.raises(ValueError):
        summarize_ns([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@pytest.mark.parametrize("df", [2, 3, 4, 7.5, 9, 30, 200])
def test_t_quantile_matches_scipy(df):
    tolerance = 0.03 if df < 3 else 2e-3
    assert t_quantile(0.975, df) == pytest.approx(sp.t.ppf(0.975, df), rel=tolerance)
    assert t_quantile(0.95, df) == pytest.approx(sp.t.ppf(0.95, df), rel=tolerance)


def test_ratio_interval_matches_welch_on_logs():
    cand = [2.1, 2.0, 2.2, 2.05, 2.15]
    base = [1.0, 1.05, 0.98, 1.02, 1.01]
    got = ratio_interval(cand, base, 0.95)
    res = sp.ttest_ind(np.log(cand), np.log(base), equal_var=False)
    ci = res.confidence_interval(0.95)
    assert got.ratio == pytest.approx(math.exp(np.mean(np.log(cand)) - np.mean(np.log(base))))
    assert got.low == pytest.approx(math.exp(ci.low), rel=2e-3)
    assert got.high == pytest.approx(math.exp(ci.high), rel=2e-3)
    assert 1.9 < got.low < got.ratio < got.high < 2.3


def test_ratio_interval_of_identical_rounds_contains_one():
    rounds = [1.0, 1.1, 0.9, 1.05]
    got = ratio_interval(rounds, list(reversed(rounds)))
    assert got.ratio == pytest.approx(1.0)
    assert got.low < 1.0 < got.high


def test_ratio_interval_refuses_a_single_round():
    """One round has no spread: no interval is made up for it (it used to collapse to the point ratio)."""
    with pytest.raises(ValueError, match="at least 2 rounds"):
        ratio_interval([3.0], [2.0, 2.0])
    with pytest.raises(ValueError):
        ratio_interval([], [1.0])


def test_paired_interval_matches_paired_t_on_logs():
    cand = [2.1, 3.9, 2.3, 6.2, 2.0, 4.4]
    ref = [1.4, 2.7, 1.5, 4.0, 1.35, 3.0]
    got = paired_ratio_interval(cand, ref, 0.95)
    ci = sp.ttest_rel(np.log(cand), np.log(ref)).confidence_interval(0.95)
    assert got.ratio == pytest.approx(math.exp(np.mean(np.log(cand) - np.log(ref))))
    assert got.low == pytest.approx(math.exp(ci.low), rel=2e-3)
    assert got.high == pytest.approx(math.exp(ci.high), rel=2e-3)


def test_pairing_cancels_load_shared_by_a_pair():
    """Rounds slowed by up to 3x by a neighbour, the candidate always 1.5x its reference in the same round:
    unpaired the interval spans 1 to well above 2; paired it is tight around 1.5."""
    load = [1.0, 2.6, 1.1, 3.0, 1.3, 2.2, 1.0, 2.8]
    ref = [v * w for v, w in zip(load, [1.0, 1.02, 0.99, 1.01, 1.0, 0.98, 1.01, 1.0])]
    cand = [1.5 * v for v in load]
    unpaired = ratio_interval(cand, ref)
    paired = paired_ratio_interval(cand, ref)
    assert unpaired.low < 1.1 and unpaired.high > 2.0
    assert 1.45 < paired.low < paired.ratio < paired.high < 1.55


def test_paired_interval_needs_matching_rounds_and_three_pairs():
    with pytest.raises(ValueError, match="as many"):
        paired_ratio_interval([1.0, 1.1, 1.2], [1.0, 1.1])
    with pytest.raises(ValueError, match="at least 3"):
        paired_ratio_interval([1.0, 1.1], [1.0, 1.2])


def test_relative_spread():
    assert relative_spread([4.5, 14.8, 6.0]) == pytest.approx((14.8 - 4.5) / 6.0)
    assert relative_spread([2.0, 2.0]) == 0.0
