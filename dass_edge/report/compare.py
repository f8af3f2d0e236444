"""The paper's comparisons, computed: per panel (device and runtime) and source, DASS against each baseline.

Two statements, as in the paper's Table 3 and Fig. 9:
- latency ratio at equal or better accuracy: over every pair (DASS model d, baseline model b) with
  acc(d) >= acc(b), the largest latency(b) / latency(d) ("up to 3.87x lower latency than ...");
- accuracy gap at equal or lower latency: over every pair with latency(d) <= latency(b), the largest
  acc(d) - acc(b), in percentage points.
Where no pair qualifies the comparison says so and why, rather than reporting a number.
Measured and predicted points are compared only with their own kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dass_edge.report.pareto import by_panel
from dass_edge.report.points import SOURCES, Point

DASS = "dass"


@dataclass(frozen=True)
class Pair:
    dass: Point
    baseline: Point

    @property
    def latency_ratio(self) -> float:
        """How many times faster the DASS model is (> 1: faster)."""
        return self.baseline.latency_ms / self.dass.latency_ms

    @property
    def accuracy_gap_pp(self) -> float:
        """How many percentage points more accurate the DASS model is (> 0: more accurate)."""
        return 100 * (self.dass.accuracy - self.baseline.accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"dass": self.dass.label, "dass_ms": self.dass.latency_ms, "dass_accuracy": self.dass.accuracy,
                "baseline": self.baseline.label, "baseline_ms": self.baseline.latency_ms,
                "baseline_accuracy": self.baseline.accuracy}


@dataclass(frozen=True)
class Comparison:
    panel: str
    source: str
    baseline: str  # the baseline's architecture (family)
    faster: Pair | None  # the best latency ratio among pairs at equal or better accuracy
    more_accurate: Pair | None  # the best accuracy gap among pairs at equal or lower latency
    missing: str = ""  # why there is no pair at all ("" when both sides have live models)

    def _none(self, what: str) -> str:
        return f"none exists: {self.missing or f'no DASS model is {what} any {self.baseline} model'}"

    @property
    def latency_text(self) -> str:
        if self.faster is None:
            return self._none("as accurate as")
        p, r = self.faster, self.faster.latency_ratio
        how = f"{r:.2f}x lower latency" if r >= 1 else f"{1 / r:.2f}x higher latency"
        return (f"{how}: {p.dass.label} {p.dass.latency_ms:.3g} ms at {p.dass.accuracy:.1%} vs "
                f"{p.baseline.label} {p.baseline.latency_ms:.3g} ms at {p.baseline.accuracy:.1%}")

    @property
    def accuracy_text(self) -> str:
        if self.more_accurate is None:
            return self._none("as fast as")
        p = self.more_accurate
        return (f"{p.accuracy_gap_pp:+.1f} pp accuracy: {p.dass.label} {p.dass.accuracy:.1%} at "
                f"{p.dass.latency_ms:.3g} ms vs {p.baseline.label} {p.baseline.accuracy:.1%} at "
                f"{p.baseline.latency_ms:.3g} ms")

    def to_dict(self) -> dict[str, Any]:
        return {
            "panel": self.panel, "source": self.source, "baseline": self.baseline,
            "latency_ratio": None if self.faster is None else self.faster.latency_ratio,
            "latency_ratio_pair": None if self.faster is None else self.faster.to_dict(),
            "latency_ratio_text": self.latency_text,
            "accuracy_gap_pp": None if self.more_accurate is None else self.more_accurate.accuracy_gap_pp,
            "accuracy_gap_pair": None if self.more_accurate is None else self.more_accurate.to_dict(),
            "accuracy_gap_text": self.accuracy_text,
        }


def _best(pairs: list[Pair], key: str) -> Pair | None:
    """The pair with the largest ``key``; ties go to the faster, then more accurate, DASS model."""
    return max(pairs, key=lambda p: (getattr(p, key), -p.dass.latency_ms, p.dass.accuracy), default=None)


def _missing(source: str, family: str, dass: list[Point], baseline: list[Point]) -> str:
    """Why a panel has no pair at all: no DASS model, or every model on one side is dead."""
    for name, models in (("DASS", dass), (family, baseline)):
        if not models:
            return f"no {name} model {source} here"
        if all(p.details.dead for p in models):
            return f"every {name} model {source} here is dead (its output ignores its input)"
    return ""


def compare_set(panel: str, source: str, points: list[Point]) -> list[Comparison]:
    """Comparisons for one panel and source: one per baseline architecture present, sorted by name.
    Dead networks (output independent of the input) are never compared: their accuracy is chance."""
    dass = [p for p in points if p.family == DASS]
    out = []
    for family in sorted({p.family for p in points} - {DASS}):
        others = [p for p in points if p.family == family]
        pairs = [Pair(d, b) for d in dass for b in others if not (d.details.dead or b.details.dead)]
        out.append(Comparison(
            panel, source, family,
            faster=_best([p for p in pairs if p.dass.accuracy >= p.baseline.accuracy], "latency_ratio"),
            more_accurate=_best([p for p in pairs if p.dass.latency_ms <= p.baseline.latency_ms], "accuracy_gap_pp"),
            missing=_missing(source, family, dass, others)))
    return out


def compare(points: list[Point]) -> list[Comparison]:
    """Every panel's comparisons, measured before predicted."""
    return [c for panel, pts in by_panel(points).items() for source in SOURCES
            for c in compare_set(panel, source, [p for p in pts if p.source == source])]
