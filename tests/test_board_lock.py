"""The board lock against a real OpenSSH server on 127.0.0.1, its keeper run by the tx2 board's Python 3.6.

Each "host" is its own process (tests/lock_holder.py) with its own SSH connection, as two CI jobs are. The
tests kill, freeze and cut them off, and time how long the board stays locked afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest

from conftest import side_python
from dass_edge.bench import emulate, lock
from dass_edge.bench.board import Board
from dass_edge.bench.remote import connect
from dass_edge.errors import BoardBusyError, InputError
from test_bench_remote import SSHD, onnx_model, sshd  # noqa: F401  (the real sshd, a tiny ONNX model)

pytestmark = pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
HERE = Path(__file__).resolve().parent
LEASE_S = 2.0


@pytest.fixture
def board(sshd, tmp_path) -> Board:  # noqa: F811
    port, key, known = sshd
    workdir = tmp_path / "board"
    workdir.mkdir()
    return Board(name="shared-board", host="127.0.0.1", port=port, user="root", key=key,
                 python=str(side_python("tx2")), known_hosts=known, workdir=str(workdir))


class Holder:
    """A lock_holder.py process; ``line(prefix)`` waits for its next line starting with ``prefix``."""

    def __init__(self, board: Board, hold_s: float, wait_s: float = 30.0) -> None:
        values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(board).items()}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "lock_holder.py"), json.dumps(values), str(hold_s),
                                      str(LEASE_S), str(wait_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONPATH": str(HERE)})

    def line(self, prefix: str, timeout_s: float = 30.0) -> tuple[str, float]:
        """The rest of the line and the host's time when it was read."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.proc.stdout.readline()
            if text.startswith(prefix):
                return text[len(prefix):].strip(), time.time()
            if not text and self.proc.poll() is not None:
                break
        self.proc.kill()
        pytest.fail(f"no {prefix!r} line: {self.proc.stderr.read()[-800:]}")

    def finish(self) -> int:
        return self.proc.wait(timeout=30)


def test_two_hosts_never_overlap_and_the_second_waits(board):
    first = Holder(board, hold_s=1.5)
    first.line("locked")
    second = Holder(board, hold_s=0.5)
    first_window = [float(t) for t in first.line("window")[0].split()]
    second_window = [float(t) for t in second.line("window")[0].split()]
    assert first.finish() == 0 and second.finish() == 0
    assert first_window[1] <= second_window[0], (first_window, second_window)  # board clock: one after the other
    assert not list(Path(board.workdir).glob(".dass-edge-keeper-*"))  # the keepers removed themselves


def test_a_busy_board_fails_in_one_line_naming_the_holder(board):
    first = Holder(board, hold_s=10)
    first.line("locked")
    client = connect(board)
    try:
        held = lock.who(client, board)
        assert held["held"] and held["holder"]["pid"] == first.proc.pid and held["holder"]["job"] == "test-job"
        start = time.monotonic()
        with pytest.raises(BoardBusyError) as info:
            lock.acquire(client, board, lock.LockSettings(wait_s=1.0, lease_s=LEASE_S))
        assert 0.9 < time.monotonic() - start < 6
        message = str(info.value)
        assert "\n" not in message and f"pid {first.proc.pid}" in message and "job test-job" in message
        assert info.value.exit_code == 12
    finally:
        first.proc.kill()
        first.proc.wait()
        client.close()


def test_a_killed_holder_frees_the_board_at_once(board):
    """SIGKILL closes the holder's SSH connection: the keeper reads end-of-file and the lock goes with it."""
    first = Holder(board, hold_s=60)
    first.line("locked")
    second = Holder(board, hold_s=0.1)
    time.sleep(0.5)  # the second is queued behind the first
    killed_at = time.time()
    first.proc.send_signal(signal.SIGKILL)
    _, locked_at = second.line("locked")
    takeover_s = locked_at - killed_at
    print(f"takeover after SIGKILL: {takeover_s:.2f} s (lease {LEASE_S} s)")
    assert takeover_s < LEASE_S
    assert second.finish() == 0


def test_a_frozen_holder_loses_the_board_after_its_lease(board):
    """SIGSTOP keeps the connection open but stops the heartbeats: the lease runs out on the board."""
    first = Holder(board, hold_s=3)
    first.line("locked")
    time.sleep(0.3)
    second = Holder(board, hold_s=0.1)
    stopped_at = time.time()
    first.proc.send_signal(signal.SIGSTOP)
    try:
        _, locked_at = second.line("locked")
    finally:
        first.proc.send_signal(signal.SIGCONT)
    takeover_s = locked_at - stopped_at
    print(f"takeover after SIGSTOP: {takeover_s:.2f} s (lease {LEASE_S} s)")
    assert LEASE_S - LEASE_S / lock.HEARTBEATS_PER_LEASE - 0.1 <= takeover_s <= LEASE_S + 2.0
    assert "ended" in first.line("lost")[0]  # the frozen host learns it lost the board: its timings are refused
    first.finish()
    assert second.finish() == 0


def _keeper_of(board: Board) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        if lock.lock_path(board) in (proc.info["cmdline"] or []) and "--holder" in proc.info["cmdline"]:
            return proc
    raise AssertionError("no keeper process on the board")


def test_a_lost_ssh_connection_releases_the_board(board):
    """The board's sshd session dies (a cut cable, a restarted sshd): the keeper's stdin closes and it lets go;
    the host's lease says it was lost."""
    client = connect(board)
    try:
        lease = lock.acquire(client, board, lock.LockSettings(wait_s=5, lease_s=LEASE_S))
        session = _keeper_of(board).parent()
        assert "sshd" in session.name()
        cut_at = time.monotonic()
        session.send_signal(signal.SIGKILL)
        other = connect(board)
        try:
            with lock.hold(other, board, lock.LockSettings(wait_s=10, lease_s=LEASE_S)):
                takeover_s = time.monotonic() - cut_at
        finally:
            other.close()
        print(f"takeover after the SSH session was killed: {takeover_s:.2f} s")
        assert takeover_s < LEASE_S
        deadline = time.monotonic() + 2 * lease.settings.heartbeat_s + 1
        while lease.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.lost is not None
        lease.release()  # nothing left to release: must not raise
    finally:
        client.close()


def test_who_reports_free_after_release(board):
    client = connect(board)
    try:
        assert lock.who(client, board) == {"held": False, "holder": None}  # no lock file yet
        with lock.hold(client, board, lock.LockSettings(wait_s=0, lease_s=LEASE_S, job="job 7")) as lease:
            held = lock.who(client, board)
            assert held["held"] and held["holder"]["token"] == lease.holder["token"]
            assert held["holder"]["job"] == "job 7" and held["holder"]["lease_s"] == LEASE_S
        assert lock.who(client, board) == {"held": False, "holder": None}
        assert lease.lost is None
    finally:
        client.close()


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0),
                                           ("500ms", 0.5), ("0", 0.0)])
def test_durations(text, seconds):
    assert lock.parse_duration(text) == seconds


def test_bad_durations_and_settings():
    for text in ("", "fast", "-5s", "10 parsecs"):
        with pytest.raises(InputError, match="not a duration"):
            lock.parse_duration(text)
    with pytest.raises(InputError):
        lock.LockSettings(lease_s=0)


def test_ci_job_from_the_ci_variables():
    assert lock.ci_job({"GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "o/r", "GITHUB_JOB": "latency"}) == \
        "o/r run 42 job latency"
    assert lock.ci_job({"CI_JOB_URL": "https://gitlab/x/-/jobs/9"}) == "https://gitlab/x/-/jobs/9"
    assert lock.ci_job({}) is None


def _inventory(board: Board, tmp_path: Path, python: Path) -> Path:
    inventory = tmp_path / "boards.toml"
    inventory.write_text(f'[boards.jetson-tx2]\nhost = "127.0.0.1"\nport = {board.port}\nuser = "root"\n'
                         f'key = "{board.key}"\npython = "{python}"\nknown_hosts = "{board.known_hosts}"\n'
                         f'workdir = "{board.workdir}"\n')
    return inventory


def _logging_python(tmp_path: Path, log: Path) -> Path:
    """The tx2 board's Python behind a script that logs, on the board's clock, when each runner process starts
    and ends: a runner's lifetime holds its timed windows, so disjoint lifetimes mean disjoint timings."""
    real = side_python("tx2")
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nif [ "$1" = runner.py ]; then\n  echo "start $(date +%s.%N) $$" >> {log}\n'
                      f'  "{real}" "$@"; status=$?\n  echo "end $(date +%s.%N) $$" >> {log}\n  exit $status\nfi\n'
                      f'exec "{real}" "$@"\n')
    script.chmod(0o755)
    return script


def test_two_benches_on_one_board_never_overlap(board, tmp_path, onnx_model):  # noqa: F811 (the fixture)
    """Two `dass-edge bench` processes started together on one board: one waits for the other."""
    log = tmp_path / "windows.log"
    inventory = _inventory(board, tmp_path, _logging_python(tmp_path, log))
    command = [str(Path(sys.executable).parent / "dass-edge"), "bench", str(onnx_model), "--device", "jetson-tx2",
               "--inventory", str(inventory), "--runtime-device", "CPU", "--warmup", "2", "--runs", "5",
               "--min-seconds", "1", "--rounds", "2", "--json"]
    benches = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [bench.communicate(timeout=120) for bench in benches]
    assert [bench.returncode for bench in benches] == [0, 0], [err[-600:] for _, err in outputs]
    assert all(json.loads(out)["count"] >= 10 for out, _ in outputs)
    windows: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        kind, when, pid = line.split()
        windows.setdefault(pid, []).append(float(when))
    (a_start, a_end), (b_start, b_end) = sorted(windows.values())
    assert a_end <= b_start, windows  # the second runner started after the first had ended
    assert b_start - a_start >= 2.0  # the first timed 2 rounds of >= 1 s before the second began
    assert sum("waiting up to" in err for _, err in outputs) == 1  # the one that waited said for whom


def test_boards_who_lists_the_holder(board, tmp_path):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app

    inventory = _inventory(board, tmp_path, side_python("tx2"))
    holder = Holder(board, hold_s=20)
    holder.line("locked")
    try:
        got = CliRunner().invoke(app, ["boards", "who", "jetson-tx2", "--inventory", str(inventory), "--json"])
        assert got.exit_code == 0, got.output
        [row] = json.loads(got.stdout)
        assert row["board"] == "jetson-tx2" and row["held"] and row["holder"]["pid"] == holder.proc.pid
        got = CliRunner().invoke(app, ["boards", "who", "--inventory", str(inventory)])
        assert got.exit_code == 0 and f"pid {holder.proc.pid}" in got.stdout and "job test-job" in got.stdout
    finally:
        holder.proc.kill()
        holder.proc.wait()
    got = CliRunner().invoke(app, ["boards", "who", "jetson-tx2", "--inventory", str(inventory)])
    assert got.exit_code == 0 and "free" in got.stdout, got.output


@pytest.mark.skipif(emulate.read_info("jetson-tx2") is None, reason="emulated board jetson-tx2 not built: run "
                    "dass-edge boards emulate jetson-tx2 (setup.sh does)")
def test_an_emulated_board_is_locked_too():
    """The keeper runs with the emulated board's ARM Python under qemu, reached over the board's loopback sshd."""
    from dass_edge.bench.inventory import resolve_board

    board = resolve_board("jetson-tx2" + emulate.SUFFIX)
    first, second = connect(board), connect(board)
    try:
        with lock.hold(first, board, lock.LockSettings(wait_s=0, lease_s=30)) as lease:
            held = lock.who(second, board)
            assert held["held"] and held["holder"]["token"] == lease.holder["token"]
            with pytest.raises(BoardBusyError):
                lock.acquire(second, board, lock.LockSettings(wait_s=0, lease_s=30))
        assert not lock.who(second, board)["held"]
    finally:
        first.close()
        second.close()
