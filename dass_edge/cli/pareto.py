"""`dass-edge pareto RESULTS... --out DIR`: Pareto fronts and DASS-vs-baseline comparisons per device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dass_edge.cli.options import JsonFlag, emit


def _human(report: dict[str, Any]) -> None:
    fronts = Table("device/runtime", "source", "model on the front", "latency (ms)", "accuracy")
    for panel, by_source in report["fronts"].items():
        for source, points in by_source.items():
            for p in points:
                fronts.add_row(panel, source, p["label"], f"{p['latency_ms']:.4f}", f"{p['accuracy']:.1%}")
    console = Console()
    console.print(fronts)
    if report["comparisons"]:
        table = Table("device/runtime", "source", "DASS vs", "latency ratio at equal or better accuracy",
                      "accuracy gap at equal or lower latency")
        for c in report["comparisons"]:
            table.add_row(c["panel"], c["source"], c["baseline"], c["latency_ratio_text"], c["accuracy_gap_text"])
        console.print(table)
    if report["left_out"]["emulated"]:
        typer.echo(f"{report['left_out']['emulated']} emulated timings left out", err=True)
    typer.echo(f"report: {report['html']}")


def pareto(
    results: Annotated[list[Path], typer.Argument(help="Bench/predict result files (JSON, a JSON list, or "
                                                  "JSON lines). Timings marked emulated are never plotted.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/pareto"),
    as_json: JsonFlag = False,
) -> None:
    """Plot accuracy against latency per device and runtime, mark the non-dominated models, compare DASS with
    each baseline; writes an offline interactive report.html, PNG/SVG figures and JSON."""
    from dass_edge.report.build import write_report
    from dass_edge.report.points import load_results

    emit(write_report(load_results(results), out), as_json, _human)


def register(app: typer.Typer) -> None:
    app.command()(pareto)
