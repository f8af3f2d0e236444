"""`dass-edge history FILE --out DIR`: the latency trend of every device and model, with change points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dass_edge.cli.options import JsonFlag, emit
from dass_edge.history.changepoints import MIN_CHANGE


def _human(report: dict[str, Any]) -> None:
    for s in report["series"]:
        points = "; ".join(f"{p['ratio']:.2f}x from {p['commit'] or '?'} ({p['time']})" for p in s["change_points"])
        typer.echo(f"{s['device']} / {s['model']}: {s['runs']} runs, latest median {s['latest_median_ms']:.4f} ms "
                   f"({s['latest_decision'] or 'not gated'}); change points: {points or 'none'}")
    typer.echo(f"trend page: {report['html']}")
    if report.get("summary"):
        typer.echo(f"summary appended to {report['summary']}")


def history(
    file: Annotated[Path, typer.Argument(help="A latency history (SQLite) written by bench --history.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the trend page (index.html).")
                   ] = Path("runs/history"),
    device: Annotated[str | None, typer.Option("--device", help="Only this device's series.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's series (its baseline key).")
                     ] = None,
    min_change: Annotated[float, typer.Option("--min-change", help="Smallest change between levels reported as a "
                                              "change point, e.g. 0.02 = 2%.")] = MIN_CHANGE,
    summary: Annotated[Path | None, typer.Option("--summary", help="Append a Markdown summary of the latest run "
                                                 "to this file (in GitHub Actions: \"$GITHUB_STEP_SUMMARY\").")
                       ] = None,
    page_url: Annotated[str | None, typer.Option("--page-url", help="Where the summary links to the trend page "
                                                 "(default: its path here).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write an offline trend page of a latency history: one panel per device and model, the gate's verdicts
    marked, and the change points (ruptures' PELT on the log medians), each with the commit where the new
    level starts."""
    from dass_edge.history.report import write_history_report

    emit(write_history_report(file, out, device, model, min_change, summary, page_url), as_json, _human)


def register(app: typer.Typer) -> None:
    app.command()(history)
