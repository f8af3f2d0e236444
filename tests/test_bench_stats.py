"""Statistics on known inputs, checked against hand values and numpy/scipy (independent implementations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from dass_edge.bench.stats import percentile, ratio_interval, summarize_ns, t_quantile


def test_summary_of_known_samples():
    s = summarize_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000, 10_000_000])  # 1,2,3,4,10 ms
    assert s.count == 5
    assert s.median_ms == 3.0
    assert s.mean_ms == 4.0
    assert s.min_ms == 1.0 and s.max_ms == 10.0
    assert s.std_ms == pytest.approx(math.sqrt(12.5))  # sample variance: (9+4+1+0+36)/4
    assert s.p90_ms == pytest.approx(7.6)  # between 4 and 10 at 0.6
    assert s.p99_ms == pytest.approx(9.76)


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy(q):
    values = list(np.random.default_rng(1).lognormal(0, 0.5, size=37))
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_single_sample_and_bad_input():
    s = summarize_ns([2_500_000])
    assert (s.count, s.median_ms, s.p99_ms, s.std_ms) == (1, 2.5, 2.5, 0.0)
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


def test_ratio_interval_single_round_is_a_point():
    got = ratio_interval([3.0], [2.0, 2.0])
    assert got.low == got.ratio == got.high == pytest.approx(1.5)
    with pytest.raises(ValueError):
        ratio_interval([], [1.0])
