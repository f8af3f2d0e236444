"""The trend page: one plotly panel per device and model, the gate's verdicts marked, change points drawn.

Like the Pareto report (report/interactive.py) the page inlines plotly.js, so it opens from a CI artifact
with no network. Text that comes from the history (model names, commits, hosts) is escaped before it
reaches hover boxes and tables: a history is data, and a model name is not markup.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from dass_edge.atomic import write_text
from dass_edge.errors import MissingDependencyError
from dass_edge.history.changepoints import ChangePoint
from dass_edge.history.store import Run

DIV_ID = "trend"
PANEL_HEIGHT_PX = 360
# decision -> (legend name, marker symbol, colour); None: recorded without a gate
VERDICTS = {"pass": ("pass", "circle", "#2a9d4b"), "regression": ("regression", "x", "#d62728"),
            "inconclusive": ("inconclusive", "diamond", "#ff8c00"),
            "bootstrapped": ("baseline bootstrapped", "square-open", "#777777"),
            None: ("recorded, not gated", "circle-open", "#1f77b4")}
STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px}"
         "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
         "text-align:left}th{background:#f4f4f4}.none{color:#777}")


def _plotly() -> tuple[Any, Any]:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise MissingDependencyError("plotly", "report") from None
    return go, make_subplots


def _x(time: str) -> str:
    """An ISO time as plotly.js reads dates (no UTC offset: the history stores UTC)."""
    return time.replace("T", " ").removesuffix("+00:00").removesuffix("Z")


def _hover(run: Run) -> str:
    c, e = run.columns, html.escape
    verdict = run.decision or "not gated"
    if c.get("ratio") is not None and c.get("ratio_ci_low") is not None:
        verdict += f" ({c['ratio']:.3f}x, 95% CI {c['ratio_ci_low']:.3f}-{c['ratio_ci_high']:.3f}, {c.get('method')})"
    lines = [f"<b>{e(run.commit or 'commit not recorded')}</b> {e(run.time)}",
             f"median {run.median_ms:.4g} ms, p90 {c.get('p90_ms') or float('nan'):.4g} ms",
             f"verdict: {e(verdict)}", f"{e(str(c.get('runtime')))} {e(str(c.get('runtime_version') or ''))}"
             f" on {e(str(c.get('host') or c.get('latency_source') or '?'))}",
             f"environment {e(str(c.get('env_fingerprint') or 'not recorded'))}, model "
             f"{e(str(c.get('model_hash') or 'not recorded'))}"]
    return "<br>".join(lines)


def _traces(runs: list[Run], points: list[ChangePoint], in_legend: set[str]) -> list[Any]:
    """One panel: the medians as a line, each verdict's runs as markers, the segment levels as steps."""
    go, _ = _plotly()
    traces = [go.Scatter(x=[_x(r.time) for r in runs], y=[r.median_ms for r in runs], mode="lines", name="median",
                         line={"color": "#999", "width": 1}, hoverinfo="skip", showlegend="median" not in in_legend)]
    in_legend.add("median")
    for decision, (name, symbol, colour) in VERDICTS.items():
        chosen = [r for r in runs if r.decision == decision]
        if chosen:
            traces.append(go.Scatter(
                x=[_x(r.time) for r in chosen], y=[r.median_ms for r in chosen], mode="markers", name=name,
                legendgroup=name, showlegend=name not in in_legend, hovertemplate="%{hovertext}<extra></extra>",
                marker={"symbol": symbol, "color": colour, "size": 9, "line": {"width": 1.5, "color": colour}},
                hovertext=[_hover(r) for r in chosen]))
            in_legend.add(name)
    if points:
        xs, ys = [_x(runs[0].time)], [points[0].before_ms]
        for p in points:
            xs += [_x(p.time), _x(p.time)]
            ys += [p.before_ms, p.after_ms]
        xs.append(_x(runs[-1].time))
        ys.append(points[-1].after_ms)
        traces.append(go.Scatter(x=xs, y=ys, mode="lines", name="level between change points",
                                 line={"color": "#d62728", "dash": "dash", "width": 1.5}, hoverinfo="skip",
                                 showlegend="level" not in in_legend))
        in_legend.add("level")
    return traces


def figure(panels: dict[tuple[str, str], tuple[list[Run], list[ChangePoint]]]) -> Any:
    """The plotly figure: one row per (device, model); each change point a vertical line and a label
    naming its ratio and the commit where the new level starts."""
    _, make_subplots = _plotly()
    titles = [f"{device} / {model}" for device, model in panels]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=titles, vertical_spacing=min(0.1, 0.5 / len(panels)))
    in_legend: set[str] = set()
    for row, (runs, points) in enumerate(panels.values(), start=1):
        for trace in _traces(runs, points, in_legend):
            fig.add_trace(trace, row=row, col=1)
        for p in points:
            fig.add_vline(x=_x(p.time), line={"color": "#d62728", "width": 1, "dash": "dot"}, row=row, col=1)
            fig.add_annotation(x=_x(p.time), y=0.97, xref="x" if row == 1 else f"x{row}",
                               yref="y domain" if row == 1 else f"y{row} domain", showarrow=False,
                               text=html.escape(f"{p.ratio:.2f}x from {p.commit or '?'}"), xanchor="left",
                               yanchor="top", font={"color": "#d62728"}, bgcolor="rgba(255,255,255,0.85)")
    fig.update_yaxes(title_text="median latency (ms)", rangemode="tozero")
    fig.update_layout(template="plotly_white", height=PANEL_HEIGHT_PX * len(panels) + 120, hovermode="closest",
                      margin={"t": 90})
    return fig


def _table(panels: dict[tuple[str, str], tuple[list[Run], list[ChangePoint]]]) -> list[str]:
    rows = ["<table id='changepoints'><tr><th>device</th><th>model</th><th>from commit</th><th>time</th>"
            "<th>before (ms)</th><th>after (ms)</th><th>ratio</th></tr>"]
    for (device, model), (_, points) in panels.items():
        for p in points:
            cells = [device, model, p.commit or "not recorded", p.time, f"{p.before_ms:.4f}", f"{p.after_ms:.4f}",
                     f"{p.ratio:.3f}x"]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    if len(rows) == 1:
        return ["<p class='none' id='changepoints'>No change point in any series.</p>"]
    return [*rows, "</table>"]


def render(panels: dict[tuple[str, str], tuple[list[Run], list[ChangePoint]]], source: str) -> str:
    """The whole page as one HTML string."""
    import plotly.io as pio

    plot = pio.to_html(figure(panels), include_plotlyjs=True, full_html=False, div_id=DIV_ID,
                       config={"displaylogo": False, "responsive": True})
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>dass-edge latency history</title>",
        f"<style>{STYLE}</style></head><body>", "<h1>Latency history per device and model</h1>",
        "<p>Each marker is one bench run (its median over all rounds), coloured by the gate's verdict. Red dashed "
        "steps: the level between change points (PELT on the log medians, ruptures); the dotted line and its "
        "label mark the run, and commit, where a new level starts. Hover a run for its details.</p>",
        f"<p class='none'>From {html.escape(source)}.</p>", plot, "<h2>Change points</h2>", *_table(panels),
        "</body></html>"])


def write(page: str, folder: Path) -> Path:
    """Write ``folder/index.html`` through a temporary file and a rename (never a half-written page)."""
    return write_text(Path(folder) / "index.html", page)
