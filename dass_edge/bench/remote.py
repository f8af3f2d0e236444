"""Measure on an attached board over SSH: copy the model and the runner, time it there, parse its JSON, clean up.

Why paramiko and not the ssh binary: errors arrive as typed exceptions (refused key, unknown host key,
refused port) that map to one-line RemoteErrors, and every wait has a timeout, so a board that dies
mid-run cannot hang a CI job. Host keys are checked against known_hosts and unknown ones are rejected:
a benchmark is no reason to trust a new machine. Keys are passed as paths; nothing secret is logged.
"""

from __future__ import annotations

import json
import logging
import shlex
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dass_edge.bench import lock as board_lock
from dass_edge.bench.board import Board
from dass_edge.bench.labgrid_place import reachable
from dass_edge.bench.lock import LockSettings
from dass_edge.runtimes import runner
from dass_edge.errors import InputError, MissingDependencyError, RemoteError

log = logging.getLogger(__name__)

_POLL_S = 0.05
AGENT = "runner.py"  # the board agent: dass_edge/runtimes/runner.py's ``time`` command
PROGRAM_FLAGS = ("--warmup", "--runs", "--min-seconds", "--rounds")  # what the C export's program takes


def is_program(path: Path) -> bool:
    """The C export's stand-alone timing program (an ELF executable, no suffix): it times itself on a
    board, with no Python there, and prints the runner's JSON line."""
    if path.suffix or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def remote_command(board: Board, folder: str, model: Path, args: Sequence[str]) -> str:
    """The shell command that times ``model`` in ``folder`` on ``board``: the runner under the board's
    Python, or the C export's program itself, given only the timing flags it knows."""
    if not is_program(model):
        return "cd {} && exec {} {} time {} {}".format(shlex.quote(folder), shlex.quote(board.python), AGENT,
                                                       shlex.quote(model.name), " ".join(map(shlex.quote, args)))
    pairs = zip(args[::2], args[1::2])
    kept = [item for flag, value in pairs if flag in PROGRAM_FLAGS for item in (flag, value)]
    prefix = f"{shlex.quote(board.exec_prefix)} " if board.exec_prefix else ""
    return "cd {} && exec {}./{} {}".format(shlex.quote(folder), prefix, shlex.quote(model.name),
                                           " ".join(map(shlex.quote, kept)))


def model_files(model: Path) -> list[Path]:
    """The model and the files it needs beside it: OpenVINO's .bin, ONNX external weights (.onnx.data)."""
    sidecars = [model.with_suffix(".bin"), Path(f"{model}.data")]
    return [model] + [p for p in sidecars if p.is_file() and p != model]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class _UnknownHostKey(Exception):
    """Raised by our host-key policy: the board's key is not in known_hosts."""


def connect(board: Board):  # -> paramiko.SSHClient
    """An SSH client logged in to ``board``; any failure is one RemoteError naming what to fix."""
    try:
        import paramiko
    except ImportError:
        raise MissingDependencyError("paramiko", "ssh") from None

    class _Reject(paramiko.MissingHostKeyPolicy):
        """Like paramiko.RejectPolicy, but tells us *why* the connection was refused."""

        def missing_host_key(self, client, hostname, key):  # type: ignore[no-untyped-def]
            raise _UnknownHostKey(hostname)

    if board.key is not None and not board.key.is_file():
        raise InputError(f"SSH key {board.key} does not exist")
    client = paramiko.SSHClient()
    known = board.known_hosts or Path.home() / ".ssh" / "known_hosts"
    if known.is_file():
        client.load_host_keys(str(known))
    client.set_missing_host_key_policy(_Reject())
    timeout = board.connect_timeout_s
    try:
        client.connect(board.host, port=board.port, username=board.user,
                       key_filename=str(board.key) if board.key else None,
                       look_for_keys=board.key is None, allow_agent=board.key is None,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout)
    except _UnknownHostKey:
        client.close()
        raise RemoteError(f"host key of {board.destination} is not in {known}; check it and add it "
                          f"(ssh-keyscan -p {board.port} {board.host} >> {known})") from None
    except paramiko.BadHostKeyException:
        client.close()
        raise RemoteError(f"host key of {board.destination} does not match {known}: a different machine "
                          "or a reinstalled board; verify before updating known_hosts") from None
    except paramiko.PasswordRequiredException:
        client.close()
        raise RemoteError(f"SSH key {board.key} is encrypted; load it into ssh-agent and omit --key") from None
    except paramiko.AuthenticationException:
        client.close()
        raise RemoteError(f"{board.destination} refused the SSH key "
                          f"{board.key or '(agent/default keys)'} for user {board.user or '(default)'}") from None
    except (socket.timeout, TimeoutError):
        client.close()
        raise RemoteError(f"cannot reach {board.destination}: no answer within {timeout:g} s") from None
    except OSError as exc:  # includes paramiko's NoValidConnectionsError (connection refused)
        client.close()
        reason = exc.strerror or _one_line(str(exc)) or type(exc).__name__
        raise RemoteError(f"cannot reach {board.destination}: {reason}") from None
    except paramiko.SSHException as exc:
        client.close()
        raise RemoteError(f"SSH to {board.destination} failed: {_one_line(str(exc))}") from None
    return client


def _run(client, command: str, timeout_s: float, board: Board) -> tuple[int, str, str]:  # noqa: ANN001
    """Run ``command``; read stdout and stderr together (a full stderr pipe must not stall the agent)."""
    transport = client.get_transport()
    try:
        channel = transport.open_session(timeout=board.connect_timeout_s)
        channel.exec_command(command)
    except Exception as exc:  # paramiko raises SSHException, EOFError or socket errors here
        raise RemoteError(f"cannot start the agent on {board.destination}: {_one_line(str(exc)) or exc!r}") from None
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if channel.recv_ready():
                out += channel.recv(65536)
            elif channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            elif channel.exit_status_ready():
                break
            elif time.monotonic() > deadline:
                raise RemoteError(f"the agent on {board.destination} gave no result within {timeout_s:g} s")
            elif not transport.is_active():
                raise RemoteError(f"lost the connection to {board.destination} during the measurement")
            else:
                time.sleep(_POLL_S)
        status = channel.recv_exit_status()
    finally:
        channel.close()
    return status, out.decode(errors="replace"), err.decode(errors="replace")


def parse_agent_output(stdout: str, stderr: str, status: int, destination: str) -> dict[str, Any]:
    """The agent's one JSON line (the last line starting with '{'), or one RemoteError saying why not."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        how = "was killed or crashed" if status < 0 or status > 128 else f"exited with status {status}"
        detail = _one_line(stderr)
        raise RemoteError(f"the agent on {destination} {how} before printing a result"
                          + (f": {detail}" if detail else ""))
    try:
        result = json.loads(line)
    except json.JSONDecodeError:
        raise RemoteError(f"the agent on {destination} printed a damaged result (exit status {status})") from None
    if "error" in result:
        raise RemoteError(f"the agent on {destination} failed: {result['error']}")
    return result


def _cleanup(client, sftp, folder: str, names: Sequence[str], subfolders: Sequence[str] = ()) -> None:  # noqa: ANN001
    """Remove what we copied; a dead connection only logs (the board's /tmp is cleaned on reboot)."""
    try:
        for name in names:
            try:
                sftp.remove(f"{folder}/{name}")
            except OSError:
                pass
        for sub in subfolders:
            try:
                sftp.rmdir(f"{folder}/{sub}")
            except OSError:
                pass
        sftp.rmdir(folder)
    except Exception as exc:  # best effort by design
        log.warning("could not remove %s on the board: %s", folder, _one_line(str(exc)) or type(exc).__name__)


def run_runner(board: Board, args: Sequence[str], timeout_s: float = 120.0) -> dict[str, Any]:
    """One of the runner's commands that needs no model (``env``, for ``boards doctor``) on ``board``: the runner
    copied into a fresh folder, run, its JSON line parsed, the folder removed. Read-only, so no board lock."""
    if board.place and not board.host:
        raise InputError(f"{board.name} is a labgrid place: give its host (--host) to check it without acquiring it")
    client = connect(board)
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(board.connect_timeout_s)
        folder = f"{board.workdir.rstrip('/')}/dass-edge-{uuid.uuid4().hex[:12]}"
        sftp.mkdir(folder, 0o700)
        try:
            sftp.put(runner.__file__, f"{folder}/{AGENT}")
            command = "cd {} && exec {} {} {}".format(shlex.quote(folder), shlex.quote(board.python), AGENT,
                                                     " ".join(shlex.quote(a) for a in args))
            status, stdout, stderr = _run(client, command, timeout_s, board)
        finally:
            _cleanup(client, sftp, folder, [AGENT])
    except (OSError, EOFError) as exc:
        raise RemoteError(f"running the runner on {board.destination} failed: "
                          f"{_one_line(str(exc)) or type(exc).__name__}") from None
    finally:
        client.close()
    return parse_agent_output(stdout, stderr, status, board.destination)


def measure_remote(board: Board, model: Path, agent_args: Sequence[str], against: Path | None = None,
                   lock: LockSettings | None = None) -> dict[str, Any]:
    """Copy ``model`` (+ sidecars) and the runner to a fresh folder on ``board``, run it, return its dict.

    The board's lock (bench/lock.py) is held from before the copy until the folder is removed, waiting up to
    ``lock.wait_s`` for another bench; a board that names a labgrid place is acquired first and reached at the
    place's address (bench/labgrid_place.py). ``host`` in the dict says where it ran.

    With ``against`` (``bench --against`` on a board), that reference model goes to a ``ref/`` sub-folder,
    since two exports usually share a file name (model.onnx), and the agent times both in alternating rounds;
    the reference's dict is then under "against".
    """
    settings = lock or LockSettings()
    started = time.monotonic()
    with reachable(board, settings.wait_s) as reached:
        left = replace(settings, wait_s=max(0.0, settings.wait_s - (time.monotonic() - started)))
        return _measure_locked(reached, model, agent_args, against, left)


def _measure_locked(board: Board, model: Path, agent_args: Sequence[str], against: Path | None,
                    lock: LockSettings) -> dict[str, Any]:
    if against is not None and (is_program(model) or is_program(against)):
        raise InputError("--against on a board times two files in one runner: pass the C export's library "
                         "(.so) for the board's architecture, not its program")
    files = [(p, p.name) for p in model_files(model)]
    subfolders = []
    if against is not None:
        files += [(p, f"ref/{p.name}") for p in model_files(against)]
        subfolders.append("ref")
    client = connect(board)
    lease = None
    try:
        lease = board_lock.acquire(client, board, lock)
        try:
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(board.connect_timeout_s)
            folder = f"{board.workdir.rstrip('/')}/dass-edge-{uuid.uuid4().hex[:12]}"
            sftp.mkdir(folder, 0o700)
            for sub in subfolders:
                sftp.mkdir(f"{folder}/{sub}", 0o700)
        except Exception as exc:
            raise RemoteError(f"cannot create a work folder on {board.destination} under {board.workdir}: "
                              f"{_one_line(str(exc)) or type(exc).__name__}") from None
        names = [name for _, name in files] + [AGENT]
        try:
            log.info("copying %s to %s:%s", ", ".join(name for _, name in files), board.destination, folder)
            for path, name in files:
                sftp.put(str(path), f"{folder}/{name}")
                sftp.chmod(f"{folder}/{name}", path.stat().st_mode & 0o700)  # a program stays executable
            sftp.put(runner.__file__, f"{folder}/{AGENT}")
            args = list(agent_args) + (["--against", f"ref/{against.name}"] if against is not None else [])
            command = remote_command(board, folder, model, args)
            log.info("running on %s: %s", board.destination, command)
            status, stdout, stderr = _run(client, command, board.run_timeout_s, board)
        except (OSError, EOFError) as exc:
            raise RemoteError(f"copying to {board.destination} failed: {_one_line(str(exc)) or type(exc).__name__}"
                              ) from None
        finally:
            _cleanup(client, sftp, folder, names, subfolders)
        result = parse_agent_output(stdout, stderr, status, board.destination)
    finally:
        if lease is not None:
            lease.release()
        client.close()
    board_lock.check_kept(lease, board)
    return {**result, "host": board.destination}
