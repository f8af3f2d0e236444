"""Boards in a labgrid farm, against a real labgrid coordinator and exporter started on 127.0.0.1 here.

The exporter publishes a NetworkService for the test sshd (the "board"); a place matches it, as a lab's
admin sets one up with labgrid-client. Another labgrid user is played by labgrid-client itself.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import side_python
from dass_edge.bench.labgrid_place import acquired_place, place_holder
from dass_edge.errors import BoardBusyError, RemoteError
from test_bench_remote import SSHD, onnx_model, sshd  # noqa: F401  (the real sshd, a tiny ONNX model)

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'dass-edge[ci]')")
pytestmark = pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
BIN = Path(sys.executable).parent
PLACE = "test-board"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{what} did not start: {proc.communicate()[0][-800:]}")
            time.sleep(0.1)


class Lab:
    """A coordinator and an exporter on 127.0.0.1; ``client(...)`` runs labgrid-client against them."""

    def __init__(self, folder: Path, sshd_port: int) -> None:
        self.address = f"127.0.0.1:{_free_port()}"
        self.folder = folder
        self.procs = []
        coordinator = self._start([BIN / "labgrid-coordinator", "-l", self.address], "coordinator")
        _wait_port(int(self.address.split(":")[1]), coordinator, "labgrid-coordinator")
        (folder / "exporter.yaml").write_text(f"board:\n  NetworkService:\n    address: 127.0.0.1\n"
                                              f"    username: root\n    port: {sshd_port}\n")
        self._start([BIN / "labgrid-exporter", "-c", self.address, "-n", "rack1", "--hostname", "127.0.0.1",
                     str(folder / "exporter.yaml")], "exporter")

    def _start(self, command: list, name: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([str(c) for c in command], cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        self.procs.append(proc)
        return proc

    def client(self, *args: str, user: str = "lab-admin", check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "LG_USERNAME": user, "LG_HOSTNAME": "lab-host"}
        done = subprocess.run([str(BIN / "labgrid-client"), "-x", self.address, *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert not check or done.returncode == 0, done.stdout + done.stderr
        return done

    def wait_for_resource(self) -> None:
        deadline = time.monotonic() + 30
        while "rack1/board/NetworkService" not in self.client("resources").stdout:
            assert time.monotonic() < deadline, (self.folder / "exporter.log").read_text()[-800:]
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def lab(sshd, tmp_path_factory):  # noqa: F811
    lab = Lab(tmp_path_factory.mktemp("lab"), sshd[0])
    try:
        lab.wait_for_resource()
        lab.client("-p", PLACE, "create")
        lab.client("-p", PLACE, "add-match", "rack1/board/NetworkService")
        yield lab
    finally:
        lab.stop()


def test_a_place_gives_the_boards_ssh_address_and_is_released(lab, sshd):  # noqa: F811
    with acquired_place(PLACE, lab.address, wait_s=10) as address:
        assert (address.host, address.user, address.port) == ("127.0.0.1", "root", sshd[0])
        shown = lab.client("-p", PLACE, "show").stdout  # what another labgrid user sees meanwhile
        assert f"acquired: {socket.gethostname()}/{getpass.getuser()}" in shown and "reservation:" in shown
    assert place_holder(PLACE, lab.address) == {"held": False, "holder": None}
    assert "token" not in lab.client("reservations").stdout  # the reservation is cancelled too


def test_the_place_is_released_when_the_bench_fails(lab):
    with pytest.raises(RuntimeError, match="measurement failed"):
        with acquired_place(PLACE, lab.address, wait_s=10):
            raise RuntimeError("measurement failed")
    assert not place_holder(PLACE, lab.address)["held"]


def test_a_place_in_use_waits_then_fails_naming_its_holder(lab):
    lab.client("-p", PLACE, "acquire", user="alice")
    try:
        start = time.monotonic()
        with pytest.raises(BoardBusyError) as info:
            with acquired_place(PLACE, lab.address, wait_s=1.5):
                pytest.fail("acquired a place someone else holds")
        assert 1.5 <= time.monotonic() - start < 10
        assert "lab-host/alice" in str(info.value) and "\n" not in str(info.value)
    finally:
        lab.client("-p", PLACE, "release", user="alice")
    with acquired_place(PLACE, lab.address, wait_s=5):  # free again, and no reservation of ours left behind
        pass


def test_unknown_place_and_unreachable_coordinator(lab):
    with pytest.raises(RemoteError, match="has no place 'nope'"):
        with acquired_place("nope", lab.address, wait_s=1):
            pass
    with pytest.raises(RemoteError, match="cannot reach the labgrid coordinator"):
        with acquired_place(PLACE, f"127.0.0.1:{_free_port()}", wait_s=1):
            pass


def _inventory(lab, sshd, tmp_path, env: str) -> Path:  # noqa: F811
    _, key, known = sshd
    inventory = tmp_path / "boards.toml"
    inventory.write_text(f'[boards.jetson-tx2]\nplace = "{PLACE}"\ncoordinator = "{lab.address}"\nkey = "{key}"\n'
                         f'python = "{side_python(env)}"\nknown_hosts = "{known}"\nworkdir = "{tmp_path}"\n')
    return inventory


def _cli(*args):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, [str(a) for a in args])


def _bench(lab, sshd, tmp_path, model, env: str):  # noqa: F811
    return _cli("bench", model, "--device", "jetson-tx2", "--inventory", _inventory(lab, sshd, tmp_path, env),
                "--runtime-device", "CPU", "--warmup", "2", "--runs", "5", "--min-seconds", "0.05", "--json")


def test_bench_through_a_place(lab, sshd, tmp_path, onnx_model):  # noqa: F811
    got = _bench(lab, sshd, tmp_path, onnx_model, "tx2")
    assert got.exit_code == 0, got.output
    result = json.loads(got.stdout)
    assert result["host"] == f"root@127.0.0.1:{sshd[0]}" and result["count"] >= 5  # the NetworkService's address
    assert place_holder(PLACE, lab.address) == {"held": False, "holder": None}


def test_a_failed_bench_releases_the_place(lab, sshd, tmp_path, onnx_model):  # noqa: F811
    got = _bench(lab, sshd, tmp_path, onnx_model, "a7")  # the a7 board has no ONNX Runtime: the runner fails there
    assert got.exit_code == 5 and "onnxruntime" in got.stderr, got.output
    assert place_holder(PLACE, lab.address) == {"held": False, "holder": None}


def test_boards_who_names_the_places_holder(lab, sshd, tmp_path):  # noqa: F811
    inventory = _inventory(lab, sshd, tmp_path, "tx2")
    lab.client("-p", PLACE, "acquire", user="alice")
    try:
        got = _cli("boards", "who", "jetson-tx2", "--inventory", inventory, "--json")
        assert got.exit_code == 0, got.output
        assert json.loads(got.stdout) == [{"board": "jetson-tx2", "where": f"labgrid place {PLACE}", "held": True,
                                           "holder": "lab-host/alice"}]
    finally:
        lab.client("-p", PLACE, "release", user="alice")
    got = _cli("boards", "who", "--inventory", inventory)
    assert got.exit_code == 0 and got.stdout == f"jetson-tx2 (labgrid place {PLACE}): free\n", got.output
