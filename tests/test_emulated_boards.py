"""Emulated ARM boards (dass-edge boards emulate): the board's own ARM runtime builds under qemu-user.

The board tests use the aarch64 board that setup.sh builds (Debian bullseye arm64, Python 3.9, numpy 1.26.4,
onnxruntime 1.10.0, tflite-runtime 2.13.0) and skip, saying so, only when it was not built. jetson-tx2
(ONNX) and cortex-a7 (TFLite) exports of a smoke DASS network must give the host's outputs within the
target's atol there, and bench must reach the board through its sshd, host key checked, with its timings
marked emulated and refused by the gate. The rest (mirror detection, a failed build leaving nothing, the
inventory field, the Pareto report) needs no board.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dass_edge import checkpoint
from dass_edge.bench import emulate
from dass_edge.bench.inventory import load_inventory, resolve_board
from dass_edge.bench.remote import measure_remote
from dass_edge.bench.results import read_results
from dass_edge.cli.app import app
from dass_edge.errors import InputError, RemoteError
from dass_edge.report.points import load_results
from dass_edge.search import sparse
from dass_edge.targets import get_target

BOARD = "jetson-tx2"
QUICK = ["--runs", "3", "--warmup", "1", "--min-seconds", "0.05", "--threads", "1"]  # spinning workers crawl under qemu
needs_board = pytest.mark.skipif(emulate.read_info(BOARD) is None,
                                 reason=f"emulated board {BOARD} not built in {emulate.boards_dir()}: run "
                                        f"dass-edge boards emulate {BOARD} (setup.sh does)")


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def arm_exports(live_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """{target: exported file} of the smoke DASS network for the two ARM targets."""
    from dass_edge.export.pipeline import export_checkpoint
    path, folder = live_checkpoint("dass"), tmp_path_factory.mktemp("arm-exports")
    files = {}
    for target in ("jetson-tx2", "cortex-a7"):
        manifest = export_checkpoint(path, target, folder)
        files[target] = Path(manifest.path) / manifest.files[0]
    return files


@pytest.fixture(scope="module")
def board_sshd():
    """The board's sshd for this module; stopped afterwards unless it was running before."""
    from dass_edge.bench.emulated_sshd import running_port, stop
    folder = emulate.board_folder(BOARD) / "ssh"
    was_running = running_port(folder) is not None
    yield resolve_board(BOARD + emulate.SUFFIX)
    if not was_running:
        stop(folder)


@needs_board
@pytest.mark.parametrize("target, runtime", [("jetson-tx2", "onnxruntime"), ("cortex-a7", "tflite-runtime")])
def test_dass_exports_run_on_the_arm_build_and_agree_with_the_host(live_checkpoint, arm_exports, target, runtime):
    ckpt = checkpoint.load(live_checkpoint("dass"))
    model = sparse.bake(ckpt.build()).eval()
    inputs = np.random.default_rng(0).standard_normal((3, *ckpt.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = np.stack([model(torch.from_numpy(x)).numpy() for x in inputs])
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # outputs move with the input: a real comparison
    got = emulate.run_model(BOARD, arm_exports[target], runtime, inputs)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= get_target(target).atol


@needs_board
@pytest.mark.parametrize("device, runtime, version", [("jetson-tx2", "onnxruntime", "1.10.0"),
                                                      ("cortex-a7", "tflite-runtime", "2.13.0")])
def test_bench_reaches_the_emulated_board_over_ssh(arm_exports, board_sshd, tmp_path, device, runtime, version):
    results = tmp_path / "results.jsonl"
    got = cli("bench", arm_exports[device], "--device", device, "--board", board_sshd.name, *QUICK, "--json",
              "--results", results)
    assert got.exit_code == 0, got.output
    result = json.loads(got.stdout)
    assert result["emulated"] is True and result["latency_source"] == "ssh"
    assert result["host"] == f"{board_sshd.user}@127.0.0.1:{board_sshd.port}"
    assert (result["runtime"], result["runtime_version"]) == (runtime, version)
    assert result["env"]["machine"] == "aarch64" and result["env"]["python"] == "3.9.2"
    assert result["count"] >= 3 and result["median_ms"] > 0
    assert [line["emulated"] for line in read_results(results)] == [True]  # stored marked, for reports to skip


@needs_board
def test_the_aarch64_c_program_times_itself_on_the_emulated_board(board_sshd, tmp_path):
    """The board's qemu-user runs the program (exec_prefix), as the board's CPU would run it natively."""
    from test_bench_remote import c_program

    program = c_program(tmp_path, "aarch64-linux-gnu-gcc", ("-mcpu=cortex-a57",))
    result = measure_remote(board_sshd, program, QUICK)
    assert result["runtime"] == "c" and result["env"]["machine"] == "aarch64"
    assert result["runtime_version"].startswith("aarch64-linux-gnu-gcc") and result["first_ns"] > 0


@needs_board
def test_emulated_timings_never_become_baselines_or_gate(arm_exports, board_sshd, tmp_path):
    baseline = tmp_path / "baseline.json"
    for option in (["--update-baseline", "--baseline", baseline], ["--baseline", baseline]):
        got = cli("bench", arm_exports["jetson-tx2"], "--device", "jetson-tx2", "--board", board_sshd.name,
                  *QUICK, *option)
        assert got.exit_code == 2 and got.stderr.count("\n") == 1, got.output
        assert got.stderr.startswith("error: timings on ") and "under emulation" in got.stderr
        assert not baseline.exists()


@needs_board
def test_the_board_host_key_is_checked(arm_exports, board_sshd, tmp_path):
    known = board_sshd.known_hosts.read_text().split()
    host_pub = (emulate.board_folder(BOARD) / "ssh" / "host_ed25519_key.pub").read_text().split()
    assert known == [f"[127.0.0.1]:{board_sshd.port}", *host_pub[:2]]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    other = tmp_path / "known_hosts"  # the board's address with another machine's key
    other.write_text(f"[127.0.0.1]:{board_sshd.port} " + " ".join((tmp_path / "impostor.pub").read_text().split()[:2]))
    with pytest.raises(RemoteError, match="does not match"):
        measure_remote(replace(board_sshd, known_hosts=other), arm_exports["jetson-tx2"], QUICK)
    other.write_text("")
    with pytest.raises(RemoteError, match="not in"):
        measure_remote(replace(board_sshd, known_hosts=other), arm_exports["jetson-tx2"], QUICK)


def test_the_mirror_is_the_machines_debian_archive():
    deb822 = ("Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
              "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
              "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n")
    assert emulate.debian_mirror({"debian.sources": deb822}) == "http://mirror.example/debian"
    one_line = ("# deb http://commented.example/debian bookworm main\n"
                "deb https://packages.cloud.google.com/apt cloud-sdk main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://ftp.de.debian.org/debian bookworm main\n")
    assert emulate.debian_mirror({"sources.list": one_line}) == "http://ftp.de.debian.org/debian"
    assert emulate.debian_mirror({"x.list": "deb http://security.debian.org/debian-security bookworm main\n"}) is None


def test_a_failed_build_leaves_nothing_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv(emulate.BOARDS_ENV, str(tmp_path / "boards"))
    got = cli("boards", "emulate", BOARD, "--mirror", "http://127.0.0.1:9/debian")  # nothing listens on port 9
    assert got.exit_code == 1 and got.stderr.startswith("error: mmdebstrap") and got.stderr.count("\n") == 1
    assert list((tmp_path / "boards").iterdir()) == []
    got = cli("boards", "emulate", "nano")
    assert got.exit_code == 2 and "known: jetson-tx2, cortex-a7" in got.stderr
    got = cli("boards", "emulate", "cortex-a7")
    assert got.exit_code == 1 and "numpy >= 1.21.2" in got.stderr and "docs/boards.md" in got.stderr


def test_an_unbuilt_board_names_the_command_that_builds_it(tmp_path, monkeypatch):
    monkeypatch.setenv(emulate.BOARDS_ENV, str(tmp_path))
    monkeypatch.setenv("DASS_EDGE_INVENTORY", str(tmp_path / "none.toml"))
    with pytest.raises(InputError, match="dass-edge boards emulate jetson-tx2"):
        resolve_board("jetson-tx2-emulated")
    got = cli("boards", "list")
    assert got.exit_code == 0 and "no emulated boards" in got.stdout


def test_inventory_emulated_field_and_pareto(tmp_path):
    inventory = tmp_path / "boards.toml"
    inventory.write_text('[boards.pi]\nhost = "10.0.0.7"\nemulated = true\n')
    assert load_inventory(inventory)["pi"].emulated is True
    inventory.write_text('[boards.pi]\nhost = "10.0.0.7"\nemulated = "yes"\n')
    with pytest.raises(InputError, match="emulated must be true or false"):
        load_inventory(inventory)
    entry = {"device": "jetson-tx2", "model": "m.onnx", "median_ms": 3.0, "test_accuracy": 0.5}
    results = tmp_path / "results.json"
    results.write_text(json.dumps([entry, {**entry, "model": "e.onnx", "emulated": True}]))
    loaded = load_results([results])
    assert [p.label for p in loaded.points] == ["m"] and loaded.emulated == 1
