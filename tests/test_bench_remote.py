"""The SSH path end to end against a real OpenSSH server on 127.0.0.1, boards played by the side envs.

sshd runs from the test with throwaway host and user keys; the agent runs under Python 3.6 +
onnxruntime 1.10 (tx2) and Python 3.9 + tflite-runtime 2.13 (a7). Failure cases must give one-line
RemoteErrors quickly: wrong key, unknown host key, closed port, agent killed mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import side_python
from dass_edge.bench.board import Board
from dass_edge.bench.inventory import load_inventory, resolve_board
from dass_edge.bench.lock import LOCK_FILE
from dass_edge.bench.remote import measure_remote
from dass_edge.errors import InputError, RemoteError

SSHD = Path("/usr/sbin/sshd")
pytestmark = pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on a free port; yields (port, user key, known_hosts file)."""
    d = tmp_path_factory.mktemp("sshd")
    host_key, user_key = _keygen(d / "host_key"), _keygen(d / "user_key")
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nLogLevel ERROR\n"
        "Subsystem sftp internal-sftp\n")
    kind, blob = (d / "host_key.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {kind} {blob}\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory (Debian makes it at boot)
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    yield port, user_key, d / "known_hosts"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """A small CNN in ONNX opset 13 (ONNX Runtime 1.10, the TX2's, reads opset <= 15)."""
    import torch
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False, opset_version=13)
    return path


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory) -> Path:
    """A small CNN as .tflite (NHWC), converted by TensorFlow's own converter."""
    import tensorflow as tf

    conv = tf.Variable(tf.random.normal([3, 3, 1, 8], seed=0))

    @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 1], tf.float32)])
    def net(x):
        return tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, conv, 1, "SAME")), axis=[1, 2])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    path.write_bytes(converter.convert())
    return path


def _board(sshd, tmp_path, python: Path, **changes) -> Board:
    port, key, known = sshd
    workdir = tmp_path / "board-tmp"
    workdir.mkdir(exist_ok=True)
    values = dict(name="test-board", host="127.0.0.1", port=port, user="root", key=key, python=str(python),
                  known_hosts=known, connect_timeout_s=10, run_timeout_s=120, workdir=str(workdir))
    values.update(changes)
    return Board(**values)


QUICK = ["--warmup", "2", "--runs", "5", "--min-seconds", "0.05", "--rounds", "2"]


@pytest.mark.parametrize("env, model_fixture, runtime, python_version",
                         [("tx2", "onnx_model", "onnxruntime", "3.6"), ("a7", "tflite_model", "tflite-runtime", "3.9")])
def test_agent_measures_on_board_and_cleans_up(sshd, tmp_path, request, env, model_fixture, runtime, python_version):
    board = _board(sshd, tmp_path, side_python(env))
    result = measure_remote(board, request.getfixturevalue(model_fixture), QUICK)
    assert result["runtime"] == runtime
    assert result["env"]["python"].startswith(python_version)
    assert len(result["rounds_ns"]) == 2 and all(len(r) >= 5 for r in result["rounds_ns"])
    assert all(ns > 0 for r in result["rounds_ns"] for ns in r) and result["first_ns"] > 0
    # the temporary folder is gone; the board's lock file stays (bench/lock.py: removing it would race its next holder)
    assert [p.name for p in Path(board.workdir).iterdir()] == [LOCK_FILE]


def _one_line_error(board: Board, model: Path, args=QUICK, limit_s: float = 30) -> str:
    start = time.monotonic()
    with pytest.raises(RemoteError) as info:
        measure_remote(board, model, args)
    assert time.monotonic() - start < limit_s
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_wrong_key_is_refused(sshd, tmp_path, onnx_model):
    other = _keygen(tmp_path / "other_key")
    message = _one_line_error(_board(sshd, tmp_path, side_python("tx2"), key=other), onnx_model)
    assert "refused the SSH key" in message and str(other) in message


def test_unknown_host_key_is_rejected(sshd, tmp_path, onnx_model):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    message = _one_line_error(_board(sshd, tmp_path, side_python("tx2"), known_hosts=empty), onnx_model)
    assert "not in" in message and "ssh-keyscan" in message


def test_closed_port_is_unreachable(sshd, tmp_path, onnx_model):
    message = _one_line_error(_board(sshd, tmp_path, side_python("tx2"), port=_free_port()), onnx_model)
    assert message.startswith("cannot reach root@127.0.0.1:")


def test_agent_killed_mid_run(sshd, tmp_path, onnx_model):
    board = _board(sshd, tmp_path, side_python("tx2"))
    killed = []

    def kill_agent():  # the board's agent is the process whose working folder is under our workdir
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            for proc in psutil.process_iter(["pid", "cwd"]):
                if (proc.info["cwd"] or "").startswith(board.workdir) and proc.pid != os.getpid():
                    time.sleep(0.5)
                    proc.send_signal(signal.SIGKILL)
                    killed.append(proc.pid)
                    break
            time.sleep(0.1)

    killer = threading.Thread(target=kill_agent)
    killer.start()
    message = _one_line_error(board, onnx_model, ["--runs", "5", "--min-seconds", "60"], limit_s=45)
    killer.join()
    assert killed, "the agent process was never seen"
    assert "killed or crashed" in message


def test_agent_error_is_one_line(sshd, tmp_path, onnx_model):
    """The a7 board has no ONNX Runtime: the agent reports that instead of a traceback."""
    message = _one_line_error(_board(sshd, tmp_path, side_python("a7")), onnx_model)
    assert "onnxruntime is not installed" in message or "runtime onnxruntime is not installed" in message


def test_inventory_file_and_overrides(tmp_path):
    inventory = tmp_path / "boards.toml"
    inventory.write_text('[boards.tx2]\nhost = "10.0.0.5"\nuser = "nvidia"\nkey = "~/.ssh/id_tx2"\n'
                         'python = "/usr/bin/python3"\nrun_timeout_s = 300\n')
    board = load_inventory(inventory)["tx2"]
    assert (board.host, board.user, board.port, board.python) == ("10.0.0.5", "nvidia", 22, "/usr/bin/python3")
    assert board.key == Path("~/.ssh/id_tx2").expanduser() and board.run_timeout_s == 300.0
    assert resolve_board("tx2", inventory, port=2222, host=None).port == 2222
    assert resolve_board("other", inventory, host="h", user="u").destination == "u@h:22"
    with pytest.raises(InputError, match="no board 'nano'"):
        resolve_board("nano", inventory)
    inventory.write_text('[boards.tx2]\nhost = "h"\npasword = "x"\n')
    with pytest.raises(InputError, match="unknown field"):
        load_inventory(inventory)
    shutil.rmtree(tmp_path)


def _cli(args: list[str]):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, ["bench", *args])


def _inventory(sshd, tmp_path, device: str, env: str) -> Path:
    port, key, known = sshd
    inventory = tmp_path / "boards.toml"
    inventory.write_text(f'[boards.{device}]\nhost = "127.0.0.1"\nport = {port}\nuser = "root"\nkey = "{key}"\n'
                         f'python = "{side_python(env)}"\nknown_hosts = "{known}"\nworkdir = "{tmp_path}"\n')
    return inventory


# The tx2 side environment is JetPack 4.6's Python 3.6 + onnxruntime 1.10 without a GPU: it stands in for
# the board's CPU, which jetson-tx2 (measured on the GPU by default) reaches with --runtime-device CPU.
@pytest.mark.parametrize("device, env, model_fixture, version, extra",
                         [("jetson-tx2", "tx2", "onnx_model", "1.10.0", ["--runtime-device", "CPU"]),
                          ("cortex-a7", "a7", "tflite_model", "2.13.0", [])])
def test_cli_benches_on_board_from_inventory(sshd, tmp_path, request, device, env, model_fixture, version, extra):
    port = sshd[0]
    got = _cli([str(request.getfixturevalue(model_fixture)), "--device", device, "--inventory",
                str(_inventory(sshd, tmp_path, device, env)), "--runs", "5", "--warmup", "2", "--min-seconds", "0.05",
                "--json", *extra])
    assert got.exit_code == 0, got.output
    result = json.loads(got.stdout)
    assert result["latency_source"] == "ssh" and result["device"] == device
    assert result["runtime_version"] == version and result["count"] >= 5 and result["median_ms"] > 0
    assert result["host"] == f"root@127.0.0.1:{port}" and result["timed_region"] == "host-to-host"
    if device == "jetson-tx2":
        assert result["providers"] == ["CPUExecutionProvider"] and "device_compute" not in result


def test_tx2_asks_for_the_gpu_and_refuses_a_board_without_it(sshd, tmp_path, onnx_model):
    """By default jetson-tx2 runs ONNX Runtime's CUDA provider; a board without it fails in one line (no
    silent CPU run), and so does TensorRT."""
    inventory = _inventory(sshd, tmp_path, "jetson-tx2", "tx2")
    for extra, provider in (([], "CUDAExecutionProvider"), (["--runtime-device", "TensorRT"],
                                                             "TensorrtExecutionProvider")):
        got = _cli([str(onnx_model), "--device", "jetson-tx2", "--inventory", str(inventory), "--runs", "2",
                    "--min-seconds", "0", *extra])
        assert got.exit_code == 5 and got.stderr.count("\n") == 1, got.output
        assert f"onnxruntime 1.10.0 here has no {provider}" in got.stderr and "CPUExecutionProvider" in got.stderr


def test_cli_board_error_exit_code(sshd, tmp_path, onnx_model):
    port, key, known = sshd
    got = _cli([str(onnx_model), "--device", "jetson-tx2", "--inventory", str(tmp_path / "none.toml"),
                "--host", "127.0.0.1", "--port", str(_free_port()), "--key", str(key)])
    assert got.exit_code == 2 and "does not exist" in got.stderr  # an explicit inventory must exist
    got = _cli([str(onnx_model), "--device", "jetson-tx2", "--host", "127.0.0.1", "--port", str(_free_port()),
                "--user", "root", "--key", str(key), "--known-hosts", str(known)])
    assert got.exit_code == 5 and got.stderr.startswith("error: cannot reach") and got.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def heavier_onnx(tmp_path_factory) -> Path:
    """onnx_model's network with a 64-channel conv added (hundreds of times the MACs), saved under the SAME
    file name elsewhere, as the next build of a model would be."""
    import torch
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    path = tmp_path_factory.mktemp("onnx-heavier") / "tiny.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False, opset_version=13)
    return path


def test_against_on_a_board_alternates_there_and_gates(sshd, tmp_path, onnx_model, heavier_onnx):
    """`bench --against` to a board: both models timed by the board's agent in alternating rounds."""
    common = ["--device", "jetson-tx2", "--inventory", str(_inventory(sshd, tmp_path, "jetson-tx2", "tx2")),
              "--runtime-device", "CPU", "--runs", "5", "--warmup", "2", "--min-seconds", "0.05", "--rounds", "4",
              "--json"]
    slower = _cli([str(heavier_onnx), "--against", str(onnx_model), *common])
    assert slower.exit_code == 10, slower.output
    result = json.loads(slower.stdout)
    assert result["method"] == "paired" and result["regression"] is True and result["ratio"] > 2
    assert result["latency_source"] == "ssh" and result["host"] == f"root@127.0.0.1:{sshd[0]}"
    assert result["runtime_version"] == "1.10.0" and result["against"]["runtime_version"] == "1.10.0"
    assert len(result["round_medians_ms"]) == len(result["against"]["round_medians_ms"]) == 4
    assert result["against"]["median_ms"] < result["median_ms"]
    same = _cli([str(onnx_model), "--against", str(onnx_model), *common])
    assert same.exit_code in (0, 11), same.output  # never a regression; a busy machine may leave it undecided
    assert json.loads(same.stdout)["regression"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("dass-edge-")]  # both copies removed


def c_program(folder: Path, compiler: str = "gcc", flags: tuple[str, ...] = ()) -> Path:
    """The C export's stand-alone program for a small CNN, built for ``compiler``'s architecture."""
    import torch

    from dass_edge.codegen import forms
    from dass_edge.codegen.build import Toolchain, build
    from dass_edge.codegen.generate import generate, save

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    toolchain = Toolchain(compiler, flags)
    save(generate(model, (1, 1, 16, 16), forms.RULE, toolchain), folder)
    return build(folder, toolchain, program="model-bench").program


def test_the_c_programs_times_itself_on_the_board(sshd, tmp_path):
    """No runtime on the board (its Python only keeps the board's lock): the program is copied, stays
    executable, gets only the timing flags it knows (the runtime, device and thread flags meant for the
    runner are left out) and prints the runner's line."""
    board = _board(sshd, tmp_path, side_python("tx2"))
    program = c_program(tmp_path / "c")
    result = measure_remote(board, program, QUICK + ["--threads", "1", "--device", "CPU", "--runtime", "c"])
    assert result["runtime"] == "c" and result["runtime_version"].startswith("gcc")
    assert result["input_shape"] == [1, 1, 16, 16] and [len(r) >= 5 for r in result["rounds_ns"]] == [True, True]
    assert [p.name for p in Path(board.workdir).iterdir()] == [LOCK_FILE]
    with pytest.raises(InputError, match="--against on a board"):
        measure_remote(board, program, QUICK, against=program)
