"""The interactive accuracy/latency figure: plotly, one subplot per device and runtime, hover details.

plotly writes its JavaScript into the page (``include_plotlyjs=True``), so the report opens from a file
with no network at all. Legend entries are grouped per model and source: clicking one hides that model
in every panel, the filtering TensorBoard and W&B offer.
"""

from __future__ import annotations

import html
import math
from typing import Any

from dass_edge.errors import MissingDependencyError
from dass_edge.report import style
from dass_edge.report.pareto import fronts_by_source
from dass_edge.report.points import Point

SYMBOLS = {"measured": "circle", "predicted": "triangle-up-open"}
INT8_SYMBOLS = {"measured": "diamond", "predicted": "diamond-open"}  # an int8 file's point
PANEL_HEIGHT_PX = 420
DIV_ID = "pareto"


def _or_unknown(value: Any, fmt: str = "{}") -> str:
    return "not recorded" if value is None else fmt.format(value)


def _size(p: Point) -> str:
    n = p.details.size_bytes
    if n is None:  # a prediction made from a checkpoint has no file; a timing whose file is gone does
        return "none (predicted from the checkpoint)" if p.source == "predicted" else "not recorded"
    return f"{n / 1024:.1f} KiB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.2f} MiB"


def hover_text(p: Point, on_front: bool) -> str:
    """The hover box of a point: every fact a reader asks about, user text escaped."""
    d = p.details
    e = html.escape
    spread = (f"{d.spread_low_name} {d.spread_low_ms:.4g} ms, " if d.spread_low_ms is not None else "")
    lines = [
        f"<b>{e(p.label)}</b>" + (" (dead: output ignores input)" if d.dead else ""),
        f"architecture {e(_or_unknown(d.arch))}, variant {e(_or_unknown(d.variant))}",
        f"sparsity {_or_unknown(d.sparsity, '{:.1%}')}, non-zero weights {_or_unknown(d.nonzero_params, '{:,}')}",
        f"MACs after compaction {_or_unknown(d.macs, '{:,}')}",
        f"file size {_size(p)}, precision {e(_or_unknown(d.precision))}",
        f"median {p.latency_ms:.4g} ms ({spread}p90 {_or_unknown(d.p90_ms, '{:.4g} ms')})",
        f"runtime {e(p.runtime or 'not recorded')} {e(d.runtime_version or '')}",
        f"latency {e(d.method)}",
        f"test accuracy {p.accuracy:.1%} on {e(_or_unknown(d.dataset))}",
        "on the Pareto front" if on_front else "dominated",
    ]
    return "<br>".join(lines)


def _plotly() -> tuple[Any, Any]:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise MissingDependencyError("plotly", "report") from None
    return go, make_subplots


def _traces(points: list[Point], colors: dict[str, str]) -> list[Any]:
    """One panel's traces: each source's front as a step line, then each model's points of each source."""
    go, _ = _plotly()
    fronts = fronts_by_source(points)
    traces = [go.Scatter(
        x=[p.latency_ms for p in line], y=[100 * p.accuracy for p in line], mode="lines", name=f"front ({source})",
        line={"shape": "hv", "color": "#555", "width": 1, "dash": "solid" if source == "measured" else "dash"},
        hoverinfo="skip") for source, line in fronts.items()]
    groups: dict[tuple[str, str, bool], list[Point]] = {}
    for p in points:
        groups.setdefault((p.label, p.source, p.details.precision == "int8"), []).append(p)
    for (label, source, int8), pts in groups.items():
        bars = [style.spread(p) for p in pts]
        traces.append(go.Scatter(
            x=[p.latency_ms for p in pts], y=[100 * p.accuracy for p in pts], mode="markers",
            name=f"{label} ({source}{', int8' if int8 else ''}{', dead' if pts[0].details.dead else ''})",
            marker={"symbol": (INT8_SYMBOLS if int8 else SYMBOLS)[source], "size": 10, "color": colors[label], "line": {"width": 1.5}},
            error_x=None if None in bars else {"type": "data", "symmetric": False, "array": [b[1] for b in bars],
                                               "arrayminus": [b[0] for b in bars], "thickness": 1, "width": 3},
            hovertext=[hover_text(p, p in fronts[source]) for p in pts], hovertemplate="%{hovertext}<extra></extra>"))
    return traces


def _log_switch(panels: int) -> dict[str, Any]:
    """Buttons that set every panel's latency axis linear or log (only axes that exist: plotly throws on an
    empty grid cell's)."""
    axes = ["xaxis" if i == 1 else f"xaxis{i}" for i in range(1, panels + 1)]
    return {"type": "buttons", "direction": "right", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom",
            "pad": {"b": 30}, "showactive": True,
            "buttons": [{"label": f"{kind} latency axis", "method": "relayout",
                         "args": [{f"{axis}.type": kind for axis in axes}]} for kind in ("linear", "log")]}


def figure(panels: dict[str, list[Point]]) -> Any:
    """The plotly figure of ``panels`` (panel name -> points). A legend entry (model and source, or a
    front) shows once and toggles that group in every panel."""
    _, make_subplots = _plotly()
    cols = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels), horizontal_spacing=0.08,
                        vertical_spacing=min(0.12, 0.6 / rows))
    colors = style.colors([p for pts in panels.values() for p in pts])
    in_legend: set[str] = set()
    for i, pts in enumerate(panels.values()):
        where = {"row": i // cols + 1, "col": i % cols + 1}
        for trace in _traces(pts, colors):
            trace.update(legendgroup=trace.name, showlegend=trace.name not in in_legend)
            in_legend.add(trace.name)
            fig.add_trace(trace, **where)
        if style.wide_range(pts):
            fig.update_xaxes(type="log", **where)
    fig.update_xaxes(title_text="latency (ms, batch 1)")
    fig.update_yaxes(title_text="test accuracy (%)")
    fig.update_layout(template="plotly_white", height=PANEL_HEIGHT_PX * rows + 80, hovermode="closest",
                      legend={"title": {"text": "click to hide or show"}, "groupclick": "togglegroup"},
                      updatemenus=[_log_switch(len(panels))], margin={"t": 110})
    return fig


def figure_html(panels: dict[str, list[Point]]) -> str:
    """The figure as an HTML fragment with plotly.js inlined (no request leaves the page)."""
    import plotly.io as pio

    return pio.to_html(figure(panels), include_plotlyjs=True, full_html=False, div_id=DIV_ID,
                       config={"displaylogo": False, "responsive": True})
