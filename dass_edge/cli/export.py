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

from dass_edge.cli.options import AllowDead, JsonFlag, OutDir, emit
from dass_edge.errors import DassEdgeError
from dass_edge.targets import get_target, load_targets

TargetName = Annotated[str, typer.Option("--target", "-t", help="A target name (see `dass-edge targets`) or "
                                         "'all'.")]


def _print_manifest(manifest: dict[str, Any]) -> None:
    size = sum(manifest["size_bytes"].values())
    parity = ("DEAD: the output does not depend on the input, parity not checked" if manifest["dead"]
              else f"max abs diff {manifest['max_abs_diff']:.2g} <= {manifest['atol']:g} x output scale ({_validation(manifest)})")
    Console().print(f"[bold]{manifest['target']}[/]: {', '.join(manifest['files'])} ({size / 1024:.1f} KiB, "
                    f"{manifest['format']} {manifest['precision']}, {manifest['input_layout']}), {parity} "
                    f"-> {manifest['path']}")


def _validation(manifest: dict[str, Any]) -> str:
    """Which runtimes checked the files: 'pass' only for the board's own versions (export.validate)."""
    ran = ", ".join(f"{c['runtime']} {c['runtime_version']}" for c in manifest["checks"])
    return f"{manifest['validation']}: {ran}"


def _print_status(rows: list[dict[str, Any]]) -> None:
    table = Table("target", "format", "size", "max diff", "status")
    for row in rows:
        ok = "error" not in row
        table.add_row(row["target"], row.get("format", ""),
                      f"{sum(row['size_bytes'].values()) / 1024:.1f} KiB" if ok else "",
                      f"{row['max_abs_diff']:.2g}" if ok else "",
                      ("[yellow]dead[/]" if row["dead"] else "[green]ok[/]" if row["validation"] == "pass"
                       else f"[yellow]{row['validation']}[/]") if ok else f"[red]{row['error']}[/]")
    Console().print(table)


def _export_all(checkpoint: Path, out: Path, compact: bool, allow_dead: bool) -> list[dict[str, Any]]:
    from dass_edge.export.conversions import ConversionCache
    from dass_edge.export.pipeline import admit, export_checkpoint

    rows, conversions = [], ConversionCache()
    health = admit(checkpoint, allow_dead)  # a dead network: one error, not a table of them
    for target in load_targets().values():
        try:
            rows.append(export_checkpoint(checkpoint, target, out, compact=compact, allow_dead=allow_dead,
                                          conversions=conversions, health=health).to_dict())
        except DassEdgeError as exc:
            rows.append({"target": target.name, "format": target.format, "error": str(exc),
                         "exit_code": exc.exit_code})
    return rows


def export(
    checkpoint: Annotated[Path, typer.Argument(help="A fine-tuned checkpoint (dass-edge train).")],
    target: TargetName,
    out: OutDir = Path("exported"),
    compact: Annotated[bool, typer.Option("--compact/--no-compact", help="Remove pruned channels exactly before "
                                          "exporting (default), rounding kept counts up to the target's "
                                          "channel_multiple; --no-compact exports the masked network densely.")] = True,
    allow_dead: AllowDead = False,
    as_json: JsonFlag = False,
) -> None:
    """Export a checkpoint for a device target into OUT/<model>/<target>/ and check it against PyTorch.

    The exported file is compared with the masked PyTorch model on random inputs and real test images; a
    difference above the target's atol fails the export and leaves nothing behind. A network whose output
    does not depend on its input is refused (exit 7) before anything is written, unless --allow-dead. With
    'all', the exit code is the failed targets' own when they agree (4: parity), else 1."""
    from dass_edge.export.pipeline import export_checkpoint  # torch and converters: not for `--help`
    from dass_edge.outputs import output_folder

    chosen = None if target == "all" else get_target(target)
    with output_folder(out):
        if chosen is not None:
            emit(export_checkpoint(checkpoint, chosen, out, compact=compact, allow_dead=allow_dead).to_dict(),
                 as_json, _print_manifest)
            return
        rows = _export_all(checkpoint, out, compact, allow_dead)
    emit(rows, as_json, _print_status)
    failed = [row for row in rows if "error" in row]
    if failed:
        codes = {row["exit_code"] for row in failed}
        typer.echo(f"error: {len(failed)} of {len(rows)} targets failed", err=True)
        raise typer.Exit(codes.pop() if len(codes) == 1 else 1)


def register(app: typer.Typer) -> None:
    app.command()(export)
