"""Latency statistics, pure Python: summaries of one run and a confidence interval for comparing two.

Kept free of numpy/scipy so the gate's arithmetic is easy to check by hand and identical everywhere.
Percentiles interpolate linearly between order statistics (numpy's default), so ``p50 == median``.

A tail percentile from too few samples is an interpolation between the largest few, not a measurement: the
q-th percentile needs at least ``1 / (1 - q)`` samples (``samples_needed``: p90 10, p99 100 as edgelens asks,
p99.9 1000), so that one sample is expected at or beyond it. Below that it is reported as not measured
(None), and nothing compares it. The coefficient of variation (std / mean) flags an unstable run, as trtexec
does for its GPU compute time.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

PAIRED_MIN_ROUNDS = 3  # n - 1 >= 2 degrees of freedom, where t_quantile is accurate
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)
# trtexec warns above 1% for GPU compute time; a Python-timed CPU call of well under a millisecond on a shared
# machine spreads more than that when all is well (tens of percent beside a busy neighbour), so 10% here.
CV_WARNING = 0.10


@dataclass(frozen=True)
class Summary:
    """What the bench reports for one set of latencies, in milliseconds. A percentile is None where the
    samples are too few for it (``samples_needed``); ``percentiles`` says, per percentile, what it needs."""

    count: int
    median_ms: float
    mean_ms: float
    p10_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    min_ms: float
    max_ms: float
    std_ms: float
    cv: float  # coefficient of variation, std / mean
    percentiles: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, tail in self.percentiles.items():  # p99.9 and others asked for get a flat field too
            out.setdefault(f"{name.replace('.', '_')}_ms", tail["ms"])
        return out


def samples_needed(q: float) -> int:
    """Samples a q-th percentile needs: one over its tail's share, rounded up (p50 2, p10 and p90 10, p99 100,
    p99.9 1000), so that at least one sample is expected in the tail it marks."""
    if not 0 < q < 100:
        raise ValueError(f"a percentile must be in (0, 100), not {q}")
    return math.ceil(round(100 / min(q, 100 - q), 9))


def tail(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile of ``values``, or None when they are too few to measure it."""
    return percentile(values, q) if len(values) >= samples_needed(q) else None


def percentile_name(q: float) -> str:
    return f"p{q:g}"


def unstable(summary: Summary, limit: float = CV_WARNING) -> str | None:
    """A warning when the run's coefficient of variation is above ``limit``, else None."""
    if summary.cv <= limit:
        return None
    return (f"latency is unstable: coefficient of variation {summary.cv:.0%} (over {limit:.0%}); set the "
            "performance governor, stop other load (dass-edge boards doctor) or gate with --against")


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


def summarize_ns(samples_ns: Sequence[int], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Summary:
    """Summary of raw ``perf_counter_ns`` samples; the standard deviation is the sample one (n-1).
    ``percentiles`` (p50, p90, p99 by default; add 99.9 to ask for it) are reported with what each needs."""
    if not samples_ns:
        raise ValueError("no latency samples to summarize")
    ms = [s / 1e6 for s in samples_ns]
    mean, std = statistics.fmean(ms), statistics.stdev(ms) if len(ms) > 1 else 0.0
    tails = {percentile_name(q): {"ms": tail(ms, q), "needs": samples_needed(q), "measured": tail(ms, q) is not None}
             for q in sorted(set(DEFAULT_PERCENTILES) | set(percentiles))}
    return Summary(
        count=len(ms),
        median_ms=statistics.median(ms),
        mean_ms=mean,
        p10_ms=tail(ms, 10),
        p50_ms=tails["p50"]["ms"],
        p90_ms=tails["p90"]["ms"],
        p99_ms=tails["p99"]["ms"],
        min_ms=min(ms),
        max_ms=max(ms),
        std_ms=std,
        cv=std / mean if mean > 0 else 0.0,
        percentiles=tails,
    )


def t_quantile(p: float, df: float) -> float:
    """Student-t quantile by the Cornish-Fisher expansion around the normal quantile.

    Accurate to ~1e-3 for df >= 3 and 0.7% low at df = 2; at df = 1 it is 11% low, so the intervals
    below need df >= 2 (Welch with 2 rounds a side has df >= 2 unless one side has no spread at all;
    paired rounds need 3 pairs). Avoids a SciPy dependency for one number.
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


def _log_interval(mean: float, variance_of_mean: float, df: float, confidence: float) -> RatioInterval:
    """exp of a t-interval on a mean of log latencies: a ratio and its bounds."""
    ratio = math.exp(mean)
    if variance_of_mean == 0:
        return RatioInterval(ratio, ratio, ratio, confidence)
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(variance_of_mean)
    return RatioInterval(ratio, math.exp(mean - half), math.exp(mean + half), confidence)


def _logs(values: Sequence[float], what: str, least: int = 2) -> list[float]:
    if len(values) < least:
        raise ValueError(f"{what} needs at least {least} rounds, got {len(values)}: one round has no spread, "
                         "so no interval")
    if min(values) <= 0:
        raise ValueError("latencies must be positive")
    return [math.log(v) for v in values]


def ratio_interval(candidate: Sequence[float], baseline: Sequence[float],
                   confidence: float = 0.95) -> RatioInterval:
    """Confidence interval of the ratio of geometric means, candidate/baseline (Welch t on logs).

    Each value is one round's median latency. Latency noise is multiplicative (a busy core slows every
    run by a factor), so the comparison is done on logarithms and the interval is a ratio. A side with
    a single round has no spread to judge noise by: refused (ValueError), never a point passed off as an
    interval.
    """
    log_c = _logs(candidate, "ratio_interval")
    log_b = _logs(baseline, "ratio_interval")
    var_c = statistics.variance(log_c) / len(log_c)
    var_b = statistics.variance(log_b) / len(log_b)
    diff = statistics.fmean(log_c) - statistics.fmean(log_b)
    if var_c + var_b == 0:
        return _log_interval(diff, 0.0, 1.0, confidence)
    df = (var_c + var_b) ** 2 / (var_c**2 / (len(log_c) - 1) + var_b**2 / (len(log_b) - 1))
    return _log_interval(diff, var_c + var_b, df, confidence)


def paired_ratio_interval(candidate: Sequence[float], reference: Sequence[float],
                          confidence: float = 0.95) -> RatioInterval:
    """Confidence interval of the candidate/reference ratio from PAIRED rounds (t on the log ratios).

    Round i of each model is measured back to back, so a slowdown of the machine that lasts longer than
    a round hits both and cancels in their ratio; what is left is the spread of the per-pair ratios.
    The estimate is the geometric mean of the pair ratios with a t interval on n - 1 degrees of freedom.
    """
    if len(candidate) != len(reference):
        raise ValueError(f"paired rounds need as many candidate as reference rounds ({len(candidate)} vs "
                         f"{len(reference)})")
    diffs = [c - r for c, r in zip(_logs(candidate, "paired_ratio_interval", PAIRED_MIN_ROUNDS),
                                   _logs(reference, "paired_ratio_interval", PAIRED_MIN_ROUNDS))]
    return _log_interval(statistics.fmean(diffs), statistics.variance(diffs) / len(diffs), len(diffs) - 1,
                         confidence)


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median of a set of round medians: the noise a run saw, 0 for identical rounds."""
    if not values:
        raise ValueError("spread of no values")
    return (max(values) - min(values)) / statistics.median(values)
