"""`dass-edge demo`: the main job, the whole pipeline on the bundled data."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dass_edge.cli.export import print_table
from dass_edge.cli.options import Data, DataDir, JsonFlag, OutDir, Seed, Sparsity, emit, table_console


def _print(summary: dict[str, Any]) -> None:
    console = table_console()
    devices = sorted({d for row in summary["models"] for d in row["latency_ms"]})
    table = Table("model", "accuracy", "non-zero / weights", "alive", *[f"{d} ms" for d in devices],
                  title=f"DASS demo at {summary['sparsity']:.1%} sparsity ({summary['preset']} preset)")
    for row in summary["models"]:
        cells = [f"{row['latency_ms'][d]:.3f}" if row["latency_ms"].get(d) is not None else "-" for d in devices]
        alive = {True: "yes", False: "[red]no: output ignores input[/]", None: "?"}[row["input_dependent"]]
        table.add_row(row["label"], f"{row['test_accuracy']:.1%}", f"{row['nonzero_params']:,} / {row['params']:,}",
                      alive, *cells)
    console.print(table)
    ok = len(summary["exports"])
    console.print(f"exports: {ok} passed their parity checks, {sum(f['stage'] == 'export' for f in summary['failures'])} failed")
    if summary["skipped_devices"]:
        console.print(f"not predicted (no nn-Meter predictor installed): {', '.join(summary['skipped_devices'])}; "
                      "see `dass-edge predictors --help`")
    if summary["export_table"]:
        console.print(f"[bold]{summary['models'][0]['label']}[/], every target and precision:")
        print_table(summary["export_table"])
    for failure in summary["failures"]:
        console.print(f"[yellow]{failure['stage']} {failure['what']}: {failure['error']}[/]")
    if summary["report"]:
        console.print(f"Pareto report: {summary['report']}")
    console.print(f"[bold]everything is in {summary['out']}[/]")


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Details and third-party warnings (FutureWarnings, JAX's fork warning, converter chatter) go to
    OUT/demo.log while the demo runs; the screen keeps the stages, errors and the result. Undone after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # torch installs its own stderr handlers on loggers that do not propagate: demote those too
    owners = [root] + [lg for lg in logging.root.manager.loggerDict.values()
                       if isinstance(lg, logging.Logger) and lg.handlers and not lg.propagate]
    levels = {(id(lg), id(h)): h.level for lg in owners for h in lg.handlers}
    root_level = root.level
    for logger in owners:
        for screen in logger.handlers:
            screen.setLevel(max(screen.level, logging.ERROR))
        logger.addHandler(handler)
    root.setLevel(min(root.level, logging.INFO))
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.setLevel(root_level)
        for logger in owners:
            logger.removeHandler(handler)
            for screen in logger.handlers:
                screen.setLevel(levels.get((id(logger), id(screen)), screen.level))
        handler.close()


def demo(
    out: OutDir = Path("runs/demo"),
    preset: Annotated[str, typer.Option("--preset", help="quick (the default, 11-15 minutes on 2 CPU "
                                        "cores), cpu (hours) or smoke (a few minutes, for CI).")] = "quick",
    data: Data = "mnist5k",
    data_dir: DataDir = None,
    sparsity: Sparsity = 0.99,
    seed: Seed = 0,
    as_json: JsonFlag = False,
) -> None:
    """Run the whole pipeline on the bundled data and report.

    DASS search, then DASS and sparse DARTS retrained at the preset's own cell-network size (quick: 5 cells x
    16 channels; cpu: 8 x 24; paper: Tiny and Small of Table 2), sparse MobileNet-v2 and sparse ResNet-18,
    all at --sparsity; a network whose output ignores its input is reported and not exported; every model
    exported to every target and checked; batch-1 latency measured on this CPU in each runtime; own latency
    predictors calibrated and used; nn-Meter's released predictors used for the devices they cover when
    installed; Pareto plots and an HTML report. Everything lands in --out, which is checked first.
    """
    from dass_edge.demo import run_demo
    from dass_edge.outputs import output_folder
    from dass_edge.search.presets import get_preset
    from dass_edge.workflows import DataChoice, check_sparsity

    def stage(message: str) -> None:
        typer.echo(f"[demo] {message}", err=True)

    # Bad input fails here, in one line, leaving nothing; a stage that fails later is recorded, not fatal.
    schedule, choice = get_preset(preset), DataChoice(data, str(data_dir) if data_dir else None)
    check_sparsity(sparsity)
    with output_folder(out):
        choice.load(schedule)
        with _log_to(out / "demo.log"):
            summary = run_demo(out, schedule, choice, sparsity, seed, on_stage=stage)
    emit(summary, as_json, _print)


def register(app: typer.Typer) -> None:
    app.command()(demo)
