"""Write the whole report into one folder, atomically: every file is made in a temporary folder first and
moved in only when all of them exist, so a failure leaves the previous report as it was.

Files: report.html (interactive, offline), pareto-<device>_<runtime>.png/.svg (one column wide),
grid.png/.svg (every panel, like the paper's Fig. 9), fronts.json and comparisons.json.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dass_edge.errors import InputError
from dass_edge.report import page, static, style
from dass_edge.report.compare import compare
from dass_edge.report.pareto import by_panel, fronts_by_source
from dass_edge.report.points import Results


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(results: Results, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write the report; returns what was written, the fronts and the comparisons (the ``--json`` result)."""
    panels = by_panel(results.points)
    if not panels:
        raise InputError("no points to plot")
    comparisons = compare(results.points)
    fronts = {panel: {s: [p.to_dict() for p in line] for s, line in fronts_by_source(pts).items()}
              for panel, pts in panels.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".report-"))
    try:
        colors = style.colors(results.points)
        files = {panel: static.save(static.figure({panel: pts}, colors), tmp / f"pareto-{_safe(panel)}")
                 for panel, pts in panels.items()}
        grid = static.save(static.figure(panels, colors, cols=1 if len(panels) == 1 else 2), tmp / "grid")
        (tmp / "fronts.json").write_text(json.dumps(fronts, indent=2))
        (tmp / "comparisons.json").write_text(json.dumps([c.to_dict() for c in comparisons], indent=2))
        (tmp / "report.html").write_text(page.render(results, panels, comparisons), encoding="utf-8")
        for made in tmp.iterdir():
            os.replace(made, out / made.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "html": str(out / "report.html"),
            "panels": {panel: [str(out / p.name) for p in paths] for panel, paths in files.items()},
            "grid": [str(out / p.name) for p in grid], "fronts": fronts,
            "comparisons": [c.to_dict() for c in comparisons],
            "left_out": {"emulated": results.emulated, "incomplete": results.incomplete}}
