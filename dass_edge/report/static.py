"""Static PNG/SVG figures for a paper: one panel per device and runtime, sized for one column.

Models are told apart by colour and named in a legend below the axes instead of beside their points:
labels written next to points pile up wherever models land close together (three names on top of each
other in the demo's report), while a legend never overlaps anything. Filled circles are timings (with
p10-p90 bars), open triangles predictions; the steps join each source's non-dominated points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dass_edge.report import style
from dass_edge.report.pareto import fronts_by_source
from dass_edge.report.points import Point

COLUMN_IN = 3.5  # one column of a two-column paper
PANEL_HEIGHT_IN = 2.4
FONT = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
        "legend.fontsize": 7, "svg.fonttype": "none"}  # SVG text stays text: editable and searchable
MARKERS = {"measured": "o", "predicted": "^"}
INT8_MARKER = "D"  # an int8 file's point, filled or open as its source says


def _draw(ax: Any, panel: str, points: list[Point], colors: dict[str, str]) -> None:
    for source, line in fronts_by_source(points).items():
        ax.step([p.latency_ms for p in line], [100 * p.accuracy for p in line], where="post", color="0.35",
                linewidth=0.9, linestyle="-" if source == "measured" else "--", zorder=1)
    for p in points:
        bar = style.spread(p)
        color = colors[p.label]
        ax.errorbar(p.latency_ms, 100 * p.accuracy, xerr=None if bar is None else [[bar[0]], [bar[1]]],
                    fmt=INT8_MARKER if p.details.precision == "int8" else MARKERS[p.source], color=color, markersize=5, elinewidth=0.8, capsize=2,
                    markerfacecolor=color if p.source == "measured" else "white", zorder=3)
    if style.wide_range(points):
        ax.set_xscale("log")
    ax.set_title(panel)
    ax.set_xlabel("latency (ms, batch 1)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, linewidth=0.5)


def _legend_handles(points: list[Point], colors: dict[str, str]) -> list[Any]:
    from matplotlib.lines import Line2D

    shown = {p.label for p in points}
    dead = {p.label for p in points if p.details.dead}
    models = [Line2D([], [], color=c, marker="o", linestyle="none", markersize=5,
                     label=label + (" (dead)" if label in dead else ""))
              for label, c in colors.items() if label in shown]
    sources = sorted({p.source for p in points})
    kinds = [Line2D([], [], color="0.35", marker=MARKERS[s], linestyle="-" if s == "measured" else "--",
                    markerfacecolor="0.35" if s == "measured" else "white", markersize=5,
                    label=f"{s}, front") for s in sources]
    if any(p.details.precision == "int8" for p in points):
        kinds.append(Line2D([], [], color="0.35", marker=INT8_MARKER, linestyle="none", markersize=5, label="int8"))
    return models + kinds


def figure(panels: dict[str, list[Point]], colors: dict[str, str], cols: int = 1) -> Any:
    """A figure of ``panels`` (panel name -> points), ``cols`` panels wide at one column width each;
    ``colors`` (style.colors of the whole report) keeps a model's colour the same in every file."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    everything = [p for pts in panels.values() for p in pts]
    handles = _legend_handles(everything, colors)
    rows = math.ceil(len(panels) / cols)
    legend_rows = math.ceil(len(handles) / (2 * cols))
    with rc_context(FONT):
        fig = Figure(figsize=(COLUMN_IN * cols, PANEL_HEIGHT_IN * rows + 0.2 * legend_rows + 0.1),
                     layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (panel, pts) in zip(axes.flat, panels.items()):
            _draw(ax, panel, pts, colors)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.legend(handles=handles, loc="outside lower center", ncols=2 * cols, frameon=False,
                   handletextpad=0.3, columnspacing=1.0)
    return fig


def save(fig: Any, stem: Path) -> list[Path]:
    """``stem``.png (300 dpi: sharp in print) and ``stem``.svg, laid out once: the layout found for the PNG
    is kept for the SVG (constrained layout would otherwise be solved again for each file)."""
    from matplotlib import rc_context

    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    with rc_context(FONT):
        fig.savefig(paths[0], dpi=300)
        fig.set_layout_engine("none")
        fig.savefig(paths[1])
    return paths
