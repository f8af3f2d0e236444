"""`dass-edge targets`: the device targets of the targets folder (DASS_EDGE_TARGETS overrides it)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dass_edge.cli.options import JsonFlag, emit
from dass_edge.targets import load_targets


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = Table("target", "format", "precision", "runtime", "device", "latency")
    for row in rows:
        latency = f"predicted ({row['predictor']})" if row["latency_source"] == "predicted" else row["latency_source"]
        table.add_row(row["name"], "+".join([row["format"], *row["extra_formats"]]),
                      "+".join([row["precision"], *row["extra_precisions"]]),
                      row["runtime"], row["runtime_device"], latency)
    Console().print(table)


def targets(as_json: JsonFlag = False) -> None:
    """List the device targets: export format and precision, runtime, and how latency is obtained."""
    emit([t.to_dict() for t in load_targets().values()], as_json, _print_table)


def register(app: typer.Typer) -> None:
    app.command()(targets)
