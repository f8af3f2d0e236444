"""Latency statistics, pure Python: summaries of one run and a confidence interval for comparing two.

Kept free of numpy/scipy so the gate's arithmetic is easy to check by hand and identical everywhere.
Percentiles interpolate linearly between order statistics (numpy's default), so ``p50 == median``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """What the bench reports for one set of latencies, in milliseconds."""

    count: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RatioInterval:
    """candidate/baseline latency ratio with a two-sided confidence interval (from round medians)."""

    ratio: float
    low: float
    high: float
    confidence: float


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, like ``numpy.percentile``'s default."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def summarize_ns(samples_ns: Sequence[int]) -> Summary:
    """Summary of raw ``perf_counter_ns`` samples; the standard deviation is the sample one (n-1)."""
    if not samples_ns:
        raise ValueError("no latency samples to summarize")
    ms = [s / 1e6 for s in samples_ns]
    return Summary(
        count=len(ms),
        median_ms=statistics.median(ms),
        mean_ms=statistics.fmean(ms),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        min_ms=min(ms),
        max_ms=max(ms),
        std_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0,
    )


def t_quantile(p: float, df: float) -> float:
    """Student-t quantile by the Cornish-Fisher expansion around the normal quantile.

    Accurate to ~1e-3 for df >= 3 (the gate uses >= 2 rounds per side, so df >= 2 where it is
    ~1% high, which only makes the gate more cautious). Avoids a SciPy dependency for one number.
    """
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def ratio_interval(candidate: Sequence[float], baseline: Sequence[float],
                   confidence: float = 0.95) -> RatioInterval:
    """Confidence interval of the ratio of geometric means, candidate/baseline (Welch t on logs).

    Each value is one round's median latency. Latency noise is multiplicative (a busy core slows every
    run by a factor), so the comparison is done on logarithms and the interval is a ratio. With a single
    round on a side its spread is unknown: the interval collapses to the point ratio.
    """
    if not candidate or not baseline:
        raise ValueError("ratio_interval needs at least one round on each side")
    if min(candidate) <= 0 or min(baseline) <= 0:
        raise ValueError("latencies must be positive")
    log_c = [math.log(v) for v in candidate]
    log_b = [math.log(v) for v in baseline]
    diff = statistics.fmean(log_c) - statistics.fmean(log_b)
    ratio = math.exp(diff)
    if len(log_c) < 2 or len(log_b) < 2:
        return RatioInterval(ratio, ratio, ratio, confidence)
    var_c = statistics.variance(log_c) / len(log_c)
    var_b = statistics.variance(log_b) / len(log_b)
    se = math.sqrt(var_c + var_b)
    if se == 0:
        return RatioInterval(ratio, ratio, ratio, confidence)
    df = (var_c + var_b) ** 2 / (var_c**2 / (len(log_c) - 1) + var_b**2 / (len(log_b) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return RatioInterval(ratio, math.exp(diff - half), math.exp(diff + half), confidence)
