"""The human lines `dass-edge bench` prints beside the median: tails and their validity, peak memory, the
per-operator profile and, after a gate, the operators that grew. JSON (--json) carries the same, complete."""

from __future__ import annotations

import shutil
from typing import Any

from rich.console import Console
from rich.table import Table

from dass_edge.bench.profile import top_operators

MIB = 1 << 20
WIDTH = 120


def _console() -> Console:
    """Made per call (it writes to the sys.stdout of the moment), wide enough for layer names when piped."""
    return Console(highlight=False, width=max(shutil.get_terminal_size().columns, WIDTH))


def tails_line(result: dict[str, Any]) -> str:
    """``p50 0.2 ms, p90 0.3 ms, p99 not measured (needs 100 runs, has 20); CV 8%``."""
    parts = []
    for name, tail in (result.get("percentiles") or {}).items():
        parts.append(f"{name} {tail['ms']:.4f} ms" if tail["measured"] else
                     f"{name} not measured (needs {tail['needs']} runs, has {result['count']})")
    line = ", ".join(parts)
    return f"{line}; coefficient of variation {result['cv']:.1%}" if "cv" in result else line


def memory_line(result: dict[str, Any]) -> str | None:
    memory = result.get("memory")
    if not memory:
        return None
    if "error" in memory:
        return f"peak memory not measured: {memory['error']}"
    return (f"peak memory: the model adds {memory['model_peak_rss_bytes'] / MIB:.1f} MiB (fresh process "
            f"{memory['process_peak_rss_bytes'] / MIB:.1f} MiB, of which {memory['baseline_rss_bytes'] / MIB:.1f} "
            f"MiB before loading: Python, numpy, {memory.get('runtime', 'the runtime')}); files "
            f"{result.get('model_size_bytes', 0) / 1024:.1f} KiB")


def print_profile(result: dict[str, Any]) -> None:
    """The slowest operators with their layer and share, and the gap to the end-to-end median."""
    profile = result.get("profile")
    if not profile:
        return
    console = _console()
    if not profile.get("available"):
        console.print(f"per-operator profile not available: {profile['reason']}", soft_wrap=True)
        return
    table = Table(title=f"slowest operators ({profile['profiler']}, median of {profile['runs']} profiled runs)",
                  title_justify="left")
    for column in ("layer (or operator)", "where", "type", "ms", "share"):
        table.add_column(column, justify="right" if column in ("ms", "share") else "left")
    for op in top_operators(profile):
        where = op["where"] if op["where"] != op["layer"] else ""
        table.add_row(op["key"], where or "", op["type"], f"{op['ms']:.4f}", f"{op['share']:.1%}")
    console.print(table)
    kinds = ", ".join(f"{kind} {ms / profile['sum_ms']:.0%}" for kind, ms in list(profile["by_type_ms"].items())[:6])
    console.print(f"{len(profile['ops'])} operators; by type: {kinds}", soft_wrap=True)
    gap_share = f" ({profile['gap_share']:.0%})" if profile.get("gap_share") is not None else ""
    console.print(f"operators sum to {profile['sum_ms']:.4f} ms of the profiled runs' {profile['end_to_end_ms']:.4f} "
                  f"ms end to end: gap {profile['gap_ms']:.4f} ms{gap_share} (scheduling, layout copies, the call, the "
                  f"profiler's bookkeeping); {profile['mapped_share']:.0%} of operator time mapped to layers",
                  soft_wrap=True)
    if profile.get("profiler_slowdown"):
        console.print(f"profiling made the runs {profile['profiler_slowdown']:.1f}x the timed median "
                      f"{profile['median_ms']:.4f} ms" + ("; read the shares rather than the absolute times"
                                                          if profile["profiler_slowdown"] > 1.5 else ""),
                      soft_wrap=True)


def print_grown(result: dict[str, Any]) -> None:
    grown = result.get("grown_operators")
    if not grown or result.get("decision") == "pass":
        return
    table = Table(title="operators that grew most", title_justify="left")
    for column in ("operator", "before ms", "after ms", "growth ms"):
        table.add_column(column, justify="left" if column == "operator" else "right")
    for g in grown:
        table.add_row(g["op"], f"{g['before_ms']:.4f}", f"{g['after_ms']:.4f}", f"{g['growth_ms']:+.4f}")
    _console().print(table)
