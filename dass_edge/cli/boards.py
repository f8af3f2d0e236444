"""`dass-edge boards`: emulated ARM boards (a Debian userland under qemu-user, reached over SSH like a board)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dass_edge.bench import emulate
from dass_edge.bench.emulated_sshd import running_port, stop
from dass_edge.cli.options import JsonFlag, emit

boards_app = typer.Typer(help="Emulated ARM boards: build once, then bench with --board NAME-emulated.",
                         no_args_is_help=True)


def _summary(name: str, info: dict[str, Any]) -> dict[str, Any]:
    folder = emulate.board_folder(name)
    return {"name": name, "board": name + emulate.SUFFIX, "arch": info.get("arch"), "suite": info.get("suite"),
            "python": info.get("python"), "versions": info.get("versions", {}), "folder": str(folder),
            "sshd_port": running_port(folder / "ssh"), "built": info.get("built")}


def _human(row: dict[str, Any]) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in row["versions"].items())
    sshd = f"sshd on 127.0.0.1:{row['sshd_port']}" if row["sshd_port"] else "sshd not running (starts on use)"
    typer.echo(f"{row['board']}: Debian {row['suite']} {row['arch']}, Python {row['python']} ({versions}); "
               f"{sshd}; {row['folder']}")


@boards_app.command("emulate")
def emulate_board(
    name: Annotated[str, typer.Argument(help=f"An ARM target: {', '.join(emulate.SPECS)}.")],
    mirror: Annotated[str | None, typer.Option("--mirror", help="Debian mirror URL (default: "
                                               f"${emulate.MIRROR_ENV}, else the first Debian archive in "
                                               "/etc/apt/sources.list*).")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build again even if it is built.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Build (once, cached) the emulated board NAME: a Debian rootfs of its architecture with the Python,
    numpy and runtime wheels its real board installs, run through qemu-user. Then
    `dass-edge bench MODEL --device NAME --board NAME-emulated` reaches it over SSH; its timings are
    marked emulated and never gate, become baselines or reach Pareto reports."""
    emit(_summary(name, emulate.build(name, mirror, rebuild)), as_json, _human)


@boards_app.command("list")
def list_boards(as_json: JsonFlag = False) -> None:
    """The emulated boards built in the cache ($DASS_EDGE_BOARDS or ~/.cache/dass-edge/boards)."""
    rows = [_summary(name, info) for name, info in emulate.built_boards().items()]
    emit(rows, as_json, lambda rs: [_human(r) for r in rs] or typer.echo(
        f"no emulated boards in {emulate.boards_dir()}; build one with dass-edge boards emulate NAME"))


@boards_app.command("stop")
def stop_board(name: Annotated[str, typer.Argument(help="An emulated board's name, e.g. jetson-tx2.")]) -> None:
    """Stop the board's sshd (it starts again on the next bench)."""
    stopped = stop(emulate.board_folder(name.removesuffix(emulate.SUFFIX)) / "ssh")
    typer.echo(f"{name}: sshd {'stopped' if stopped else 'was not running'}", err=True)


@boards_app.command("remove")
def remove_board(name: Annotated[str, typer.Argument(help="An emulated board's name, e.g. jetson-tx2.")]) -> None:
    """Stop and delete the emulated board."""
    removed = emulate.remove(name.removesuffix(emulate.SUFFIX))
    typer.echo(f"{name}: {'removed' if removed else 'was not built'}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(boards_app, name="boards")
