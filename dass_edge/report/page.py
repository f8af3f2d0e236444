"""The report page: the interactive figure, the DASS-vs-baseline comparisons and every point in tables.

Everything is in the one file (plotly.js inlined, no fonts, images or scripts from elsewhere), so it opens
offline; every piece of text that comes from result files is escaped.
"""

from __future__ import annotations

import html

from dass_edge.report.compare import Comparison
from dass_edge.report.interactive import figure_html
from dass_edge.report.pareto import fronts_by_source
from dass_edge.report.points import Point, Results

STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px}"
         "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
         "text-align:left;vertical-align:top}th{background:#f4f4f4}.front{font-weight:bold}"
         ".none{color:#777}.note{color:#555}")


def _comparison_rows(comparisons: list[Comparison]) -> list[str]:
    rows = ["<table id='comparisons'><tr><th>device/runtime</th><th>source</th><th>DASS vs</th>"
            "<th>latency ratio at equal or better accuracy</th><th>accuracy gap at equal or lower latency</th></tr>"]
    for c in comparisons:
        cells = [c.panel, c.source, c.baseline]
        texts = [(c.latency_text, c.faster is None), (c.accuracy_text, c.more_accurate is None)]
        rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells)
                    + "".join(f"<td{' class=none' if none else ''}>{html.escape(t)}</td>" for t, none in texts)
                    + "</tr>")
    rows.append("</table>")
    return rows


def _point_rows(panel: str, points: list[Point]) -> list[str]:
    fronts = fronts_by_source(points)
    rows = [f"<h3>{html.escape(panel)}</h3><table class='points'><tr><th>model</th><th>source</th>"
            "<th>median (ms)</th><th>p90 (ms)</th><th>accuracy</th><th>non-zero weights</th><th>MACs</th>"
            "<th>on front</th></tr>"]
    for p in sorted(points, key=lambda p: (p.source, p.latency_ms)):
        on = p in fronts[p.source]
        d = p.details
        cells = [p.label + (" (dead)" if d.dead else ""), p.source, f"{p.latency_ms:.4f}",
                 "" if d.p90_ms is None else f"{d.p90_ms:.4f}", f"{p.accuracy:.1%}",
                 "" if d.nonzero_params is None else f"{d.nonzero_params:,}",
                 "" if d.macs is None else f"{d.macs:,}", "yes" if on else ""]
        rows.append(f"<tr{' class=front' if on else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    + "</tr>")
    rows.append("</table>")
    return rows


def render(results: Results, panels: dict[str, list[Point]], comparisons: list[Comparison]) -> str:
    left_out = []
    if results.emulated:
        left_out.append(f"{results.emulated} timings marked emulated (not real hardware) are not shown")
    if results.incomplete:
        left_out.append(f"{results.incomplete} results without a device, latency or accuracy are left out")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>dass-edge Pareto report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Accuracy vs latency per device and runtime</h1>",
        "<p>Filled circles: measured batch-1 latency (median, bars from p10, or the minimum where p10 is not "
        "recorded, to p90). Open triangles: predicted (nn-Meter or our calibrated predictors). Lines join "
        "the non-dominated models of each source; measured and predicted points are never compared with "
        "each other. Hover a point for its details; click a legend entry to hide a model.</p>",
        f"<p class='note'>From {html.escape(', '.join(results.files) or 'given points')}."
        + "".join(f" {html.escape(x)}." for x in left_out) + "</p>",
        figure_html(panels),
        "<h2>DASS vs each baseline</h2>",
        "<p>Per device/runtime and source: the largest latency ratio (baseline / DASS) over pairs where the "
        "DASS model is at least as accurate, and the largest accuracy gain over pairs where it is at least as "
        "fast.</p>",
        *(_comparison_rows(comparisons) if comparisons else ["<p class='none'>No panel holds a DASS model "
                                                             "and a baseline.</p>"]),
        "<h2>All points</h2>",
    ]
    for panel, points in panels.items():
        parts += _point_rows(panel, points)
    parts.append("</body></html>")
    return "\n".join(parts)
