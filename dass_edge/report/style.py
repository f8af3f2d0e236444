"""One look for the static and the interactive figures: a colour per model, a marker per source."""

from __future__ import annotations

from dass_edge.report.points import Point

# matplotlib's tab10 then the light half of tab20: distinct in print and for the common colour blindnesses
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d")
LOG_RANGE = 20  # a latency axis spanning more than this factor is drawn in log scale by default


def colors(points: list[Point]) -> dict[str, str]:
    """The same colour for a model in every panel; DASS models first, so they keep the first colours."""
    labels = sorted({p.label for p in points}, key=lambda label: (not label.lower().startswith("dass"), label))
    return {label: COLORS[i % len(COLORS)] for i, label in enumerate(labels)}


def wide_range(points: list[Point]) -> bool:
    latencies = [p.latency_ms for p in points if p.latency_ms > 0]
    return bool(latencies) and max(latencies) / min(latencies) > LOG_RANGE


def spread(p: Point) -> tuple[float, float] | None:
    """(below, above) the median for a latency bar, or None for a prediction or an unrecorded spread."""
    d = p.details
    if p.source != "measured" or d.spread_low_ms is None or d.p90_ms is None:
        return None
    return max(p.latency_ms - d.spread_low_ms, 0.0), max(d.p90_ms - p.latency_ms, 0.0)
