"""`dass-edge export CHECKPOINT --target NAME|all`: device files plus manifest.json, each checked against
PyTorch. With ``all`` every target is tried, a status table is printed and, if any failed, the exit code is
the failures' own (4 when parity failed) or 1 when they failed for different reasons. A network whose output
does not depend on its input is refused (exit 7) unless --allow-dead."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dass_edge.cli.options import AllowDead, JsonFlag, OutDir, emit, table_console
from dass_edge.errors import InputError
from dass_edge.targets import CHOICES, get_target, load_targets

TargetName = Annotated[str, typer.Option("--target", "-t", help="A target name (see `dass-edge targets`) or "
                                         "'all'.")]


def _print_manifest(manifest: dict[str, Any]) -> None:
    size = sum(manifest["size_bytes"].values())
    parity = ("DEAD: the output does not depend on the input, parity not checked" if manifest["dead"]
              else f"{_judged_on(manifest)} ({_validation(manifest)})")
    Console().print(f"[bold]{manifest['target']}[/]: {', '.join(manifest['files'])} ({size / 1024:.1f} KiB, "
                    f"{manifest['format']} {manifest['precision']}, {manifest['input_layout']}), {parity} "
                    f"-> {manifest['path']}")


def _judged_on(manifest: dict[str, Any]) -> str:
    """What the files passed on: their logits (fp32), or their answers on the test split (fp16, int8), the
    worst file's figures."""
    checks = manifest["checks"]
    if not any(c.get("rule") == "predictions" for c in checks):
        return f"max abs diff {manifest['max_abs_diff']:.2g} <= {manifest['atol']:g} x output scale"
    worst = min(checks, key=lambda c: c["test_accuracy"])
    return (f"test accuracy {worst['test_accuracy']:.1%} (PyTorch {worst['pytorch_accuracy']:.1%}), agreement "
            f"{manifest['top1_agreement']:.1%} on {worst['test_images']} test images, max logit diff "
            f"{manifest['max_abs_diff']:.2g}")


def _validation(manifest: dict[str, Any]) -> str:
    """Which runtimes checked the files: 'pass' only for the board's own versions (export.validate)."""
    ran = ", ".join(f"{c['runtime']} {c['runtime_version']}" for c in manifest["checks"])
    return f"{manifest['validation']}: {ran}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def print_table(rows: list[dict[str, Any]]) -> None:
    """The export table, a row per file; each refusal's reason on its own line below it (a table cell
    would cut it at a terminal's width)."""
    console = table_console()
    table = Table("target", "format", "precision", "status", "size", "non-zero w.", "test acc.", "agreement",
                  "latency")
    refused = []
    for row in rows:
        status, _, why = row["status"].partition(": ")
        style = "green" if status == "ok" else "red" if status == "refused" else "yellow"
        if why:
            refused.append(f"{row['target']} {row['format']} {row['precision']}: {why}")
        table.add_row(row["target"], row["format"], row["precision"], f"[{style}]{status}[/]",
                      "" if row["size_bytes"] is None else f"{row['size_bytes'] / 1024:.1f} KiB",
                      "" if row["nonzero_weights"] is None else f"{row['nonzero_weights']:,}",
                      _pct(row["test_accuracy"]), _pct(row["agreement"]),
                      "" if row["latency_ms"] is None else f"{row['latency_ms']:.3f} ms")
    console.print(table)
    for line in refused:
        console.print(f"[red]refused[/] {line}", soft_wrap=True)


def export(
    checkpoint: Annotated[Path, typer.Argument(help="A fine-tuned checkpoint (dass-edge train).")],
    target: TargetName,
    out: OutDir = Path("exported"),
    precision: Annotated[str | None, typer.Option("--precision", "-p", help="fp32, fp16 or int8 (one of the "
                                                  "target's precisions; default: its first), or 'all' of them. "
                                                  "int8 is calibrated on 300 of the checkpoint's training "
                                                  "images.")] = None,
    compact: Annotated[bool, typer.Option("--compact/--no-compact", help="Remove pruned channels exactly before "
                                          "exporting (default), rounding kept counts up to the target's "
                                          "channel_multiple; --no-compact exports the masked network densely.")] = True,
    allow_dead: AllowDead = False,
    as_json: JsonFlag = False,
) -> None:
    """Export a checkpoint for a device target into OUT/<model>/<target>/ and check it against PyTorch.

    Each file is compared with the masked PyTorch model on random inputs and real test images, and run on
    the checkpoint's test split: an fp32 file must match the logits within the target's atol, an fp16 or
    int8 file its accuracy (max_accuracy_drop, min_agreement); a failure leaves nothing behind. Another
    precision than the target's first goes to OUT/<model>/<target>-<precision>/. With 'all' targets or
    'all' precisions, a table ends the run (target, format, precision, status, size, non-zero weights, test
    accuracy, agreement, latency here) and the exit code is the failures' own when they agree (4: parity),
    else 1. A network whose output does not depend on its input is refused (exit 7) unless --allow-dead."""
    from dass_edge.export.pipeline import export_checkpoint  # torch and converters: not for `--help`
    from dass_edge.export.table import ALL, export_all
    from dass_edge.outputs import output_folder

    if precision not in (None, ALL, *CHOICES["precision"]):
        raise InputError(f"--precision {precision!r}: expected one of {', '.join(CHOICES['precision'])} or 'all'")
    chosen = list(load_targets().values()) if target == ALL else [get_target(target)]
    with output_folder(out):
        if target != ALL and precision != ALL:
            emit(export_checkpoint(checkpoint, chosen[0], out, compact=compact, allow_dead=allow_dead,
                                   precision=precision).to_dict(), as_json, _print_manifest)
            return
        rows = [row.to_dict() for row in export_all(checkpoint, out, chosen, precision, compact=compact,
                                                       allow_dead=allow_dead)]
    emit(rows, as_json, print_table)
    codes = {row["exit_code"] for row in rows if row["exit_code"]}
    if codes:
        exports = {(row["target"], row["precision"]) for row in rows}
        failed = sum(1 for row in rows if row["exit_code"])
        typer.echo(f"error: {failed} of {len(exports)} exports failed", err=True)
        raise typer.Exit(codes.pop() if len(codes) == 1 else 1)


def register(app: typer.Typer) -> None:
    app.command()(export)
