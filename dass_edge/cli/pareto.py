"""`dass-edge pareto RESULTS... --out DIR`: Pareto fronts per device from bench/predict results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dass_edge.cli.options import JsonFlag, emit


def pareto(
    results: Annotated[list[Path], typer.Argument(help="Bench/predict result files (JSON, a JSON list, or "
                                                  "JSON lines).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/pareto"),
    as_json: JsonFlag = False,
) -> None:
    """Plot accuracy against latency per device, mark the non-dominated models, write PNG/SVG/HTML."""
    from dass_edge.report.pareto import load_results, write_report

    report = write_report(load_results(results), out)

    def human(r: dict[str, Any]) -> None:
        table = Table("device", "model on the front", "latency (ms)", "accuracy", "source")
        for device, pts in r["fronts"].items():
            for p in pts:
                table.add_row(device, p["label"], f"{p['latency_ms']:.4f}", f"{p['accuracy']:.2%}", p["source"])
        Console().print(table)
        typer.echo(f"report: {r['html']}")

    emit(report, as_json, human)


def register(app: typer.Typer) -> None:
    app.command()(pareto)
