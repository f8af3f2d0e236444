"""`dass-edge boards`: who holds each board (its bench lock), and emulated ARM boards (a Debian userland under
qemu-user, reached over SSH like a board)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dass_edge.bench import emulate
from dass_edge.bench.emulated_sshd import running_port, stop
from dass_edge.cli.options import JsonFlag, emit
from dass_edge.errors import InputError

boards_app = typer.Typer(help="Boards: who holds them, whether they are ready to measure on (doctor), and "
                         "emulated ARM boards (build once, then bench with --board NAME-emulated).",
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


def _who_row(board: Any) -> dict[str, Any]:
    """Who holds ``board``: its bench lock (asked on the board, not taken) or, for a labgrid place, the place."""
    from dass_edge.bench import labgrid_place, lock
    from dass_edge.bench.remote import connect

    row = {"board": board.name, "where": board.destination}
    if board.place:
        return {**row, **labgrid_place.place_holder(board.place, board.coordinator)}
    client = connect(board)
    try:
        return {**row, **lock.who(client, board)}
    finally:
        client.close()


def _who_human(rows: list[dict[str, Any]]) -> None:
    from dass_edge.bench.lock import describe_holder

    for row in rows:
        if "error" in row:
            state = f"unknown: {row['error']}"
        elif not row["held"]:
            state = "free"
        elif isinstance(row["holder"], dict):
            state = f"held by {describe_holder(row['holder'])}, lease {row['holder'].get('lease_s', '?')} s"
        else:
            state = f"held by {row['holder']} (labgrid)"
        typer.echo(f"{row['board']} ({row['where']}): {state}")


@boards_app.command("who")
def who(
    name: Annotated[str | None, typer.Argument(help="A board (default: every board in the inventory).")] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", help="Boards file (default "
                                                   "~/.config/dass-edge/boards.toml or $DASS_EDGE_INVENTORY).")
                         ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Who holds each board: the bench that has its lock (host, user, pid, CI job, since) or, for a board in a
    labgrid place, the place's holder. Asks without taking the lock. With NAME, a board that cannot be asked
    is an error (exit 5); in the list it is a row that says why."""
    from dass_edge.bench.inventory import load_inventory, resolve_board
    from dass_edge.errors import DassEdgeError

    if name is not None:
        rows = [_who_row(resolve_board(name, inventory))]
    else:
        if inventory is not None and not inventory.is_file():
            raise InputError(f"inventory {inventory} does not exist")
        rows = []
        for board in load_inventory(inventory).values():
            try:
                rows.append(_who_row(board))
            except DassEdgeError as exc:
                rows.append({"board": board.name, "where": board.destination, "error": str(exc)})
    emit(rows, as_json, _who_human)


def _doctor_report(name: str | None, target: Any, runtime_device: str | None, inventory: Path | None
                   ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(where, the runner's env report, who holds the board) for this machine or a board."""
    from dass_edge.runtimes import runner

    device = runtime_device or target.runtime_device
    if name is None and target.latency_source == "local":
        report = {"env": runner.environment(), "runtime_check": runner.runtime_check(target.runtime, device)}
        return "this machine", report, None
    from dass_edge.bench import lock
    from dass_edge.bench.inventory import resolve_board
    from dass_edge.bench.remote import connect, run_runner

    board = resolve_board(name or target.name, inventory)
    report = run_runner(board, ["env", "--runtime", target.runtime, "--device", board.runtime_device or device])
    client = connect(board)
    try:
        holder = lock.who(client, board)
    finally:
        client.close()
    return f"{board.name} ({board.destination})", report, holder


@boards_app.command("doctor")
def doctor(
    name: Annotated[str | None, typer.Argument(help="A board of the inventory (default: --device's board, or "
                                               "this machine for a local target such as intel-cpu).")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="The target whose runtime and device to "
                                               "check (default: the board's name).")] = None,
    runtime_device: Annotated[str | None, typer.Option("--runtime-device", help="Device inside the runtime "
                                                       "(default: the board's, else the target's).")] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", help="Boards file (default "
                                                   "~/.config/dass-edge/boards.toml or $DASS_EDGE_INVENTORY).")
                         ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings (governor, load, clocks) make it not "
                                         "ready too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check a board (or this machine: --device intel-cpu) before measuring on it: CPU governor and clocks, other
    load, thermal throttling, on a Jetson nvpmodel and jetson_clocks, the target's runtime and device (provider,
    plugin, CUDA), and who holds the board. One line per finding with what to do; exit 13 when not ready."""
    from dass_edge.bench.doctor import findings, summary
    from dass_edge.errors import EnvironmentMismatchError
    from dass_edge.targets import get_target

    if name is None and device is None:
        raise InputError("name a board (dass-edge boards doctor jetson-tx2) or a target (--device intel-cpu)")
    target = get_target(device or name)
    if target.latency_source == "predicted":
        raise InputError(f"{target.name} is timed by prediction: there is no machine to check")
    where, report, holder = _doctor_report(name, target, runtime_device, inventory)
    found = findings(report, holder)
    result = summary(where, report, found, strict)
    emit(result, as_json, lambda r: typer.echo("\n".join([f"{where}: {'ready' if r['ready'] else 'NOT READY'}"]
                                                        + [f"  {f.line()}" for f in found])))
    if not result["ready"]:
        failed = [f.what for f in found if f.level == "fail" or (strict and f.level == "warn")]
        raise EnvironmentMismatchError(f"{where} is not ready to measure on: {'; '.join(failed)}")


def register(app: typer.Typer) -> None:
    app.add_typer(boards_app, name="boards")
