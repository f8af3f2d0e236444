"""``dass-edge history FILE --out DIR`` end to end: read the history, find each series' change points, write
the trend page and, for CI, the Markdown summary of the latest run. Returns what ``--json`` prints.

Kept out of the CLI so a CI helper script gets the same page and numbers as the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dass_edge.errors import InputError
from dass_edge.history import changepoints, page, store, summary


def _series_row(device: str, model: str, runs: list[store.Run], points: list[changepoints.ChangePoint]
                ) -> dict[str, Any]:
    latest = runs[-1]
    return {"device": device, "model": model, "runs": len(runs), "first": runs[0].time, "latest": latest.time,
            "latest_median_ms": latest.median_ms, "latest_decision": latest.decision,
            "change_points": [p.to_dict() for p in points]}


def write_history_report(history: Path, out: Path, device: str | None = None, model: str | None = None,
                         min_change: float = changepoints.MIN_CHANGE, summary_path: Path | None = None,
                         page_url: str | None = None) -> dict[str, Any]:
    """Write ``out/index.html`` (and append the latest run's summary to ``summary_path``); the report dict."""
    if min_change < 0:
        raise InputError(f"--min-change must be >= 0, not {min_change}")
    runs = store.read(history, device, model)
    if not runs:
        which = " and ".join(f"{k} {v}" for k, v in (("device", device), ("model", model)) if v) or "any run"
        raise InputError(f"history {history} has no runs" + ("" if which == "any run" else f" for {which}"))
    panels = {key: (series, changepoints.find(series, min_change))
              for key, series in sorted(store.series(runs).items())}
    html_path = page.write(page.render(panels, str(history)), out)
    report = {"history": str(history), "html": str(html_path), "runs": len(runs),
              "series": [_series_row(d, m, r, p) for (d, m), (r, p) in panels.items()]}
    if summary_path is not None:
        latest = max(runs, key=lambda r: (r.time, r.id))
        text = summary.markdown(latest, panels[latest.series][1], page_url or str(html_path))
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        with summary_path.open("a", encoding="utf-8") as handle:  # GitHub's step summary file is appended to
            handle.write(text)
        report["summary"] = str(summary_path)
    return report
