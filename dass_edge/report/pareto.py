"""Non-dominated (Pareto) sets of accuracy against latency, per panel (device and runtime) and source.

A point is non-dominated when no other point of the same set is at least as accurate and at least as
fast, and strictly better in one. Two different models at identical coordinates are both on the front;
the same model listed twice (equal points) counts once. Measured and predicted points never compete:
a prediction is an estimate of a different quantity than a timing.
"""

from __future__ import annotations

from dass_edge.report.points import SOURCES, Point


def _dominates(a: Point, b: Point) -> bool:
    return (a.accuracy >= b.accuracy and a.latency_ms <= b.latency_ms
            and (a.accuracy > b.accuracy or a.latency_ms < b.latency_ms))


def unique(points: list[Point]) -> list[Point]:
    return list(dict.fromkeys(points))


def front(points: list[Point]) -> list[Point]:
    """Non-dominated points of ONE set, sorted by latency (O(n^2): result sets are small)."""
    pts = unique(points)
    kept = [p for p in pts if not any(_dominates(q, p) for q in pts)]
    return sorted(kept, key=lambda p: (p.latency_ms, -p.accuracy, p.label))


def by_panel(points: list[Point]) -> dict[str, list[Point]]:
    """Points grouped by panel ('device/runtime'), panels sorted by name."""
    groups: dict[str, list[Point]] = {}
    for p in unique(points):
        groups.setdefault(p.panel, []).append(p)
    return dict(sorted(groups.items()))


def fronts_by_source(points: list[Point]) -> dict[str, list[Point]]:
    """The front of each source present among ``points`` (one panel's)."""
    return {s: front(pts) for s in SOURCES if (pts := [p for p in points if p.source == s])}
