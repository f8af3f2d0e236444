"""Per-operator profiles in a bench result, and which operators grew between two of them.

The runner (dass_edge/runtimes/runner.py, here or on a board) profiles with the runtime's own profiler after
the timing and returns each operator's median time over the profiled runs. Here the names become layers
(bench/layers.py), times are summed per layer into ``op_profile_ms`` (the field the CI summary reads: one
number per layer, so a fused conv and its bias add count as their layer), and the sum is set against the
profiled runs' end-to-end median: the gap is what no operator accounts for (the runtime's scheduling, layout
copies, the Python call, the profiler's own bookkeeping). ``profiler_slowdown`` compares those runs with the
timed median: ONNX Runtime's profiler costs ~10-20 us per operator here, nothing beside a 0.75 ms conv but
4-5x on a network of ~190 operators of a few microseconds, so there the shares mean more than the absolute
times. A gate that finds a regression lists the layers that grew most (``grown_operators``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dass_edge.bench.layers import describe_layer, layer_of, read_graph

TOP = 10  # operators printed
GROWN = 5  # operators a verdict names


def profile_fields(raw: dict[str, Any] | None, model: Path, median_ms: float) -> dict[str, Any]:
    """The result's ``profile`` (every operator with its layer and share, the sum and the gap) and
    ``op_profile_ms`` (layer or operator -> ms); {} when nothing was profiled."""
    if not raw:
        return {}
    if not raw.get("available"):
        return {"profile": {"available": False, "reason": raw.get("reason", "not profiled")}}
    graph = read_graph(model)
    ops, per_key = [], {}
    for op in raw["ops"]:
        layer = layer_of(op["name"], op["type"], graph)
        key = layer or op["name"]
        per_key[key] = per_key.get(key, 0.0) + op["ms"]
        ops.append({**op, "layer": layer, "where": describe_layer(layer) if layer else None, "key": key})
    total = sum(per_key.values())
    for op in ops:
        op["share"] = op["ms"] / total if total > 0 else 0.0
    mapped = sum(op["ms"] for op in ops if op["layer"])
    by_type: dict[str, float] = {}
    for op in ops:
        by_type[op["type"]] = by_type.get(op["type"], 0.0) + op["ms"]
    whole = raw["end_to_end_ms"]
    profile = {"available": True, "profiler": raw["profiler"], "runs": raw["runs"], "ops": ops, "sum_ms": total,
               "end_to_end_ms": whole, "gap_ms": whole - total, "gap_share": (whole - total) / whole if whole else None,
               "median_ms": median_ms, "profiler_slowdown": whole / median_ms if median_ms > 0 else None,
               "mapped_share": mapped / total if total else 0.0,
               "by_type_ms": dict(sorted(by_type.items(), key=lambda kv: kv[1], reverse=True))}
    return {"profile": profile, "op_profile_ms": per_key}


def top_operators(profile: dict[str, Any], n: int = TOP) -> list[dict[str, Any]]:
    """The ``n`` slowest operators of a profile, slowest first."""
    return sorted(profile.get("ops", ()), key=lambda op: op["ms"], reverse=True)[:n]


def grown_operators(candidate: dict[str, float] | None, reference: dict[str, float] | None,
                    n: int = GROWN) -> list[dict[str, Any]] | None:
    """Layers (or operators) whose time grew most from ``reference`` to ``candidate`` (``op_profile_ms`` of
    each), largest growth in ms first, with before/after times; one only in the candidate grew from 0.
    None when either side has no profile."""
    if not isinstance(candidate, dict) or not isinstance(reference, dict) or not candidate or not reference:
        return None
    grown = [{"op": op, "before_ms": reference.get(op, 0.0), "after_ms": ms,
              "growth_ms": ms - reference.get(op, 0.0)} for op, ms in candidate.items()]
    return sorted((g for g in grown if g["growth_ms"] > 0), key=lambda g: g["growth_ms"], reverse=True)[:n]


def describe_grown(grown: list[dict[str, Any]] | None, n: int = 3) -> str:
    """``a 0.010 -> 0.090 ms, b ...`` for a verdict's one line; empty when nothing grew or nothing was profiled."""
    if not grown:
        return ""
    return ", ".join(f"{g['op']} {g['before_ms']:.3f} -> {g['after_ms']:.3f} ms" for g in grown[:n])
