"""The board lock, host side: start the keeper (bench/keeper.py) on the board and keep its lease alive.

Why a lease and not a lock that is simply held: a CI job that is cancelled or killed with SIGKILL
cannot release anything. Here its SSH connection closes with it, the keeper reads end-of-file and exits,
and the kernel drops the keeper's ``flock``: the board is free at once. Where the connection does not
close (a host frozen or cut off the network), the heartbeats stop and the keeper gives up after
``lease_s``. Either way no dead job holds the board past its lease (tests/test_board_lock.py measures
how long a takeover takes).

The keeper runs over the SSH client the bench measures through, so the lock and the measurement share
one login, host-key check included. ``hold`` is a context manager around everything a bench does on the
board (copying too: copying a model beside a running measurement disturbs it). A lease that ends early
(``Lease.lost``) means the measurement may have overlapped another: the caller refuses its result.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dass_edge.errors import BoardBusyError, InputError, RemoteError

if TYPE_CHECKING:
    from dass_edge.bench.board import Board

log = logging.getLogger(__name__)

KEEPER = Path(__file__).with_name("keeper.py")
SENT_PREFIX = ".dass-edge-keeper-"  # keeper.py removes a copy named so once it runs
LOCK_FILE = ".dass-edge-board.lock"  # in the board's workdir: hosts sharing a board must share the workdir
DEFAULT_WAIT_S = 900.0  # one bench of run_timeout_s (600 s) ahead, plus its copying, and some queue
DEFAULT_LEASE_S = 30.0
HEARTBEATS_PER_LEASE = 6  # a heartbeat every 5 s by default: one lost line does not end a lease
_POLL_S = 0.05
_RELEASE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LockSettings:
    """How long to wait for a busy board, and the lease its keeper holds it under."""

    wait_s: float = DEFAULT_WAIT_S
    lease_s: float = DEFAULT_LEASE_S
    job: str | None = None  # the CI job, shown to those who wait; default: read from the CI's variables

    def __post_init__(self) -> None:
        if self.wait_s < 0:
            raise InputError(f"--wait-board must be >= 0, not {self.wait_s:g} s")
        if self.lease_s <= 0:
            raise InputError(f"the board lease must be > 0 s, not {self.lease_s:g}")

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / HEARTBEATS_PER_LEASE


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str = "--wait-board") -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``1.5h`` or ``500ms``."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(f"{option} {text!r} is not a duration: use e.g. 90s, 15m or 1h")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def ci_job(environ: Mapping[str, str] = os.environ) -> str | None:
    """The CI job this process runs in, from the CI's own variables (GitHub Actions, GitLab, Jenkins)."""
    if environ.get("DASS_EDGE_JOB"):
        return environ["DASS_EDGE_JOB"]
    if environ.get("GITHUB_RUN_ID"):
        return (f"{environ.get('GITHUB_REPOSITORY', '')} run {environ['GITHUB_RUN_ID']}"
                f" job {environ.get('GITHUB_JOB', '?')}").strip()
    return environ.get("CI_JOB_URL") or environ.get("CI_JOB_ID") or environ.get("BUILD_TAG")


def identity(settings: LockSettings) -> dict[str, Any]:
    """Who asks for the board: shown to whoever waits for it (names and numbers, nothing secret)."""
    return {"host": socket.gethostname(), "user": getpass.getuser(), "pid": os.getpid(),
            "job": settings.job or ci_job(), "token": uuid.uuid4().hex,
            "asked": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def describe_holder(holder: Mapping[str, Any] | None) -> str:
    """One phrase naming a holder, e.g. ``ci-2 (user runner, pid 4242, job 17) since 2026-...Z``."""
    if not holder:
        return "another bench (its holder record is missing)"
    details = [f"user {holder.get('user')}", f"pid {holder.get('pid')}"]
    if holder.get("job"):
        details.append(f"job {holder['job']}")
    return f"{holder.get('host', '?')} ({', '.join(details)}) since {holder.get('since', '?')}"


def lock_path(board: Board) -> str:
    return f"{board.workdir.rstrip('/')}/{LOCK_FILE}"


def _send_keeper(client, board: Board) -> str:  # noqa: ANN001
    """Copy the keeper into the board's workdir (it removes itself once started); its path there."""
    path = f"{board.workdir.rstrip('/')}/{SENT_PREFIX}{uuid.uuid4().hex[:12]}.py"
    try:
        sftp = client.open_sftp()
        try:
            sftp.get_channel().settimeout(board.connect_timeout_s)
            sftp.put(str(KEEPER), path)
        finally:
            sftp.close()
    except Exception as exc:  # paramiko raises SSHException, EOFError, IOError here
        raise RemoteError(f"cannot copy the lock keeper to {board.destination}:{board.workdir}: "
                          f"{str(exc).strip() or type(exc).__name__}") from None
    return path


def _start(client, board: Board, args: list[str]):  # noqa: ANN001, ANN202
    """The keeper's channel, running ``args`` after the script; stdout carries its JSON events."""
    command = " ".join(shlex.quote(a) for a in [board.python, _send_keeper(client, board), *args])
    try:
        channel = client.get_transport().open_session(timeout=board.connect_timeout_s)
        channel.exec_command(command)
    except Exception as exc:
        raise RemoteError(f"cannot start the lock keeper on {board.destination}: "
                          f"{str(exc).strip() or type(exc).__name__}") from None
    return channel


class _Events:
    """The keeper's JSON lines, read with a deadline (a board can die between two lines)."""

    def __init__(self, channel, board: Board) -> None:  # noqa: ANN001
        self.channel, self.board = channel, board
        self.buffer, self.errors = bytearray(), bytearray()

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next event; None when the keeper ended (or ``deadline`` passed) without one."""
        while True:
            line, sep, rest = bytes(self.buffer).partition(b"\n")
            if sep:
                self.buffer = bytearray(rest)
                if line.startswith(b"{"):
                    try:
                        return json.loads(line)
                    except ValueError:
                        pass
                continue
            if self.channel.recv_ready():
                self.buffer += self.channel.recv(65536)
            elif self.channel.recv_stderr_ready():
                self.errors += self.channel.recv_stderr(65536)
            elif self.channel.exit_status_ready() or time.monotonic() > deadline:
                return None
            else:
                time.sleep(_POLL_S)

    def why_not(self) -> str:
        """The keeper's last words on stderr (e.g. no such Python), for an error message."""
        lines = [ln.strip() for ln in self.errors.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else "no output"


class Lease:
    """A held board lock: a thread sends the keeper's heartbeats; ``lost`` says why it ended early."""

    def __init__(self, channel, events: _Events, holder: dict[str, Any],  # noqa: ANN001
                 settings: LockSettings) -> None:
        self.channel, self.events, self.holder, self.settings = channel, events, holder, settings
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="board-lease", daemon=True)

    @property
    def waited_s(self) -> float:
        return float(self.holder.get("waited_s") or 0.0)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            if self.channel.exit_status_ready() or self.channel.closed:
                self.lost = "the keeper on the board ended (lease expired or killed)"
            elif not self.channel.get_transport().is_active():
                self.lost = "the SSH connection to the board was lost"
            else:
                try:
                    self.channel.sendall(b"hb\n")
                    continue
                except Exception as exc:  # socket.error or paramiko's SSHException on a dead channel
                    self.lost = f"the SSH connection to the board was lost ({str(exc).strip() or type(exc).__name__})"
            log.warning("board lock lost: %s", self.lost)
            return

    def release(self) -> None:
        """Stop the heartbeats and tell the keeper to let go; a dead connection has let go already."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.channel.sendall(b"release\n")
            self.channel.shutdown_write()
            deadline = time.monotonic() + _RELEASE_TIMEOUT_S
            while not self.channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(_POLL_S)
        except Exception:  # noqa: BLE001 - a closed channel or dead connection: the keeper has let go
            pass
        finally:
            self.channel.close()


def acquire(client, board: Board, settings: LockSettings) -> Lease:  # noqa: ANN001
    """Take ``board``'s lock through ``client`` (waiting up to ``settings.wait_s``) and return its Lease,
    already beating. A board still held after the wait raises BoardBusyError naming the holder."""
    holder = identity(settings)
    channel = _start(client, board, [lock_path(board), "--holder", json.dumps(holder), "--wait",
                                     f"{settings.wait_s:g}", "--lease", f"{settings.lease_s:g}"])
    events = _Events(channel, board)
    lease = Lease(channel, events, holder, settings)
    lease.start()  # heartbeats while waiting too: a host that dies in the queue must not get the lock later
    deadline = time.monotonic() + settings.wait_s + board.connect_timeout_s + 10
    try:
        while True:
            event = events.next(deadline)
            kind = (event or {}).get("event")
            if kind == "locked":
                lease.holder = event["holder"]
                log.info("locked %s (lease %g s)", board.destination, settings.lease_s)
                return lease
            if kind == "waiting":
                log.warning("%s is in use by %s; waiting up to %g s for it", board.destination,
                            describe_holder(event.get("holder")), settings.wait_s)
            elif kind == "busy":
                raise BoardBusyError(f"{board.name} ({board.destination}) is still in use by "
                                     f"{describe_holder(event.get('holder'))} after waiting "
                                     f"{settings.wait_s:g} s; retry later or raise --wait-board")
            elif kind in ("error", "released", None):
                why = (event or {}).get("error") or (event or {}).get("reason") or events.why_not()
                raise RemoteError(f"cannot lock {board.destination}: the lock keeper stopped ({why})")
    except BaseException:
        lease.release()
        raise


@contextlib.contextmanager
def hold(client, board: Board, settings: LockSettings) -> Iterator[Lease]:  # noqa: ANN001
    """The board's lock for the duration of the block, released on the way out (also on errors)."""
    lease = acquire(client, board, settings)
    try:
        yield lease
    finally:
        lease.release()


def check_kept(lease: Lease, board: Board) -> None:
    """After measuring: a lease that ended early means another bench may have run beside this one."""
    if lease.lost is not None:
        raise RemoteError(f"the lock on {board.destination} ended during the measurement ({lease.lost}); "
                          "its timings may overlap another bench's and are not reported")


def who(client, board: Board) -> dict[str, Any]:  # noqa: ANN001
    """Who holds ``board``'s lock: ``{"held": bool, "holder": {...} | None}`` (the lock is not taken)."""
    channel = _start(client, board, [lock_path(board), "--who"])
    events = _Events(channel, board)
    try:
        event = events.next(time.monotonic() + board.connect_timeout_s + 10)
    finally:
        channel.close()
    if not event or event.get("event") != "who":
        why = (event or {}).get("error") or events.why_not()
        raise RemoteError(f"cannot ask {board.destination} who holds it: {why}")
    return {"held": bool(event.get("held")), "holder": event.get("holder")}
