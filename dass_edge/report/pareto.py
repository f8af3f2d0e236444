"""Accuracy-latency Pareto fronts per device: the set, PNG/SVG plots, a grid like the paper's Fig. 9, HTML.

A point is non-dominated when no other point of the same device is at least as accurate and at least as
fast, and strictly better in one. Two different models at identical coordinates are both on the front;
the same model listed twice (same label, device, source and coordinates) counts once.
"""

from __future__ import annotations

import html
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dass_edge.bench.results import is_emulated
from dass_edge.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    label: str
    device: str
    latency_ms: float
    accuracy: float
    source: str = "measured"  # or "predicted"


def _dominates(a: Point, b: Point) -> bool:
    return (a.accuracy >= b.accuracy and a.latency_ms <= b.latency_ms
            and (a.accuracy > b.accuracy or a.latency_ms < b.latency_ms))


def unique(points: list[Point]) -> list[Point]:
    return list(dict.fromkeys(points))


def front(points: list[Point]) -> list[Point]:
    """Non-dominated points of ONE device, sorted by latency (O(n^2): result sets are small)."""
    pts = unique(points)
    kept = [p for p in pts if not any(_dominates(q, p) for q in pts)]
    return sorted(kept, key=lambda p: (p.latency_ms, -p.accuracy, p.label))


def by_device(points: list[Point]) -> dict[str, list[Point]]:
    groups: dict[str, list[Point]] = {}
    for p in unique(points):
        groups.setdefault(p.device, []).append(p)
    return dict(sorted(groups.items()))


def _accuracy_of(entry: dict[str, Any]) -> float | None:
    if entry.get("test_accuracy") is not None:
        return float(entry["test_accuracy"])
    for key in ("checkpoint", "model"):
        path = entry.get(key)
        if path and str(path).endswith((".pt", ".pth")) and Path(path).is_file():
            from dass_edge import checkpoint

            return checkpoint.load(path).test_accuracy
    return None


def point_from_result(entry: dict[str, Any]) -> Point | None:
    """A bench/predict result -> Point; None (logged) if it lacks a latency or an accuracy."""
    if is_emulated(entry):
        log.warning("skipping %s: timed under emulation, not on the device", entry.get("model"))
        return None
    latency = entry.get("median_ms", entry.get("latency_ms"))
    accuracy = _accuracy_of(entry)
    if latency is None or accuracy is None or "device" not in entry:
        log.warning("skipping a result without device, latency or accuracy: %s", entry.get("model"))
        return None
    label = entry.get("label") or Path(str(entry.get("model", "?"))).stem
    source = "predicted" if entry.get("latency_source") == "predicted" else "measured"
    return Point(label, str(entry["device"]), float(latency), float(accuracy), source)


def load_results(paths: list[str | os.PathLike]) -> list[Point]:
    """Points from JSON files holding one result, a list of them, or JSON lines."""
    points = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"result file {path} does not exist")
        text = path.read_text()
        try:
            data = json.loads(text)
            entries = data if isinstance(data, list) else data.get("results", [data])
        except json.JSONDecodeError:
            try:
                entries = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError:
                raise InputError(f"{path} is neither JSON nor JSON lines") from None
        points += [p for p in map(point_from_result, entries) if p is not None]
    if not points:
        raise InputError("no result with a device, a latency and an accuracy in the given files")
    return points


def _draw(ax: Any, device: str, points: list[Point]) -> None:
    on_front = set(front(points))
    for source, marker in (("measured", "o"), ("predicted", "^")):
        pts = [p for p in points if p.source == source]
        if pts:
            ax.scatter([p.latency_ms for p in pts], [100 * p.accuracy for p in pts], marker=marker,
                       c=["tab:red" if p in on_front else "tab:gray" for p in pts], label=source, zorder=3)
    line = front(points)
    ax.step([p.latency_ms for p in line], [100 * p.accuracy for p in line], where="post", color="tab:red",
            alpha=0.6, zorder=2)
    for p in points:
        ax.annotate(p.label, (p.latency_ms, 100 * p.accuracy), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title(device)
    ax.set_xlabel("latency (ms, batch 1)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def _figure(devices: dict[str, list[Point]], cols: int) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(devices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax, (device, pts) in zip(axes.flat, devices.items()):
        _draw(ax, device, pts)
    for ax in list(axes.flat)[len(devices):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(points: list[Point], out_dir: str | os.PathLike) -> dict[str, Any]:
    """PNG + SVG per device, grid.png/grid.svg, report.html (inline SVG, no network) and fronts.json."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    devices = by_device(points)
    if not devices:
        raise InputError("no points to plot")
    files: dict[str, list[str]] = {}
    svgs: dict[str, str] = {}
    for device, pts in devices.items():
        fig = _figure({device: pts}, 1)
        stem = out / f"pareto-{_safe(device)}"
        fig.savefig(f"{stem}.png", dpi=120)
        fig.savefig(f"{stem}.svg")
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        svgs[device] = buffer.getvalue()
        plt.close(fig)
        files[device] = [f"{stem}.png", f"{stem}.svg"]
    grid = _figure(devices, min(3, len(devices)))
    grid.savefig(out / "grid.png", dpi=120)
    grid.savefig(out / "grid.svg")
    plt.close(grid)
    fronts = {d: [vars(p) for p in front(pts)] for d, pts in devices.items()}
    (out / "fronts.json").write_text(json.dumps(fronts, indent=2))
    (out / "report.html").write_text(_html(devices, svgs))
    return {"out": str(out), "devices": files, "grid": [str(out / "grid.png"), str(out / "grid.svg")],
            "html": str(out / "report.html"), "fronts": fronts}


def _html(devices: dict[str, list[Point]], svgs: dict[str, str]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>dass-edge Pareto report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}.front{font-weight:bold;color:#b00}</style></head><body>",
             "<h1>Accuracy vs latency per device</h1><p>Circles: measured; triangles: predicted (nn-Meter or "
             "our calibrated predictors). Red: on the Pareto front.</p>"]
    for device, pts in devices.items():
        on_front = set(front(pts))
        parts.append(f"<h2>{html.escape(device)}</h2>")
        svg = svgs[device]
        parts.append(svg[svg.find("<svg"):])  # inline: the report works offline, no external files
        parts.append("<table><tr><th>model</th><th>latency (ms)</th><th>accuracy</th><th>source</th>"
                     "<th>on front</th></tr>")
        for p in sorted(pts, key=lambda p: p.latency_ms):
            cls = " class='front'" if p in on_front else ""
            parts.append(f"<tr{cls}><td>{html.escape(p.label)}</td><td>{p.latency_ms:.4f}</td>"
                         f"<td>{p.accuracy:.2%}</td><td>{p.source}</td><td>{'yes' if p in on_front else ''}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
