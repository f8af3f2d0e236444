"""Environment fingerprints and readiness: a baseline recorded with another thread count or runtime version is
refused in one line naming the fields (exit 13) unless --allow-env-change; the runner's environment on the
host and on the SSH test board (Python 3.6); `dass-edge boards doctor` here and on that board."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import side_python
from dass_edge.bench.fingerprint import FIELDS
from dass_edge.errors import EnvironmentMismatchError
from dass_edge.runtimes import runner
from test_bench_remote import SSHD, _inventory, onnx_model, sshd  # noqa: F401 (fixtures)

QUICK = ["--device", "intel-cpu", "--runs", "10", "--warmup", "2", "--min-seconds", "0", "--rounds", "2",
         "--no-profile", "--no-memory"]


def _cli(args: list[str]):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, args)


def test_baseline_from_another_environment_is_refused(onnx_model, tmp_path):  # noqa: F811
    baseline = tmp_path / "intel-cpu.json"
    made = _cli(["bench", str(onnx_model), *QUICK, "--threads", "2", "--update-baseline", "--baseline",
                 str(baseline), "--json"])
    assert made.exit_code == 0, made.output
    entry = json.loads(baseline.read_text())["entries"]["tiny"]
    assert set(entry["fingerprint"]) == set(FIELDS) and entry["fingerprint"]["threads"] == 2
    assert entry["env"]["kernel"] and entry["fingerprint"]["toolkit_version"]

    fewer = _cli(["bench", str(onnx_model), *QUICK, "--baseline", str(baseline)])  # gating pins 1 thread
    assert fewer.exit_code == EnvironmentMismatchError.exit_code == 13, fewer.output
    assert fewer.stderr.count("\n") == 1 and "threads 2 -> 1" in fewer.stderr and "--allow-env-change" in fewer.stderr

    data = json.loads(baseline.read_text())  # as if ONNX Runtime 1.10 (the TX2's) had recorded it
    data["entries"]["tiny"]["fingerprint"]["runtime_version"] = "1.10.0"
    baseline.write_text(json.dumps(data))
    other = _cli(["bench", str(onnx_model), *QUICK, "--threads", "2", "--baseline", str(baseline)])
    assert other.exit_code == 13, other.output
    assert f"runtime_version '1.10.0' -> '{entry['runtime_version']}'" in other.stderr and "threads" not in other.stderr

    allowed = _cli(["bench", str(onnx_model), *QUICK, "--threads", "2", "--baseline", str(baseline),
                    "--allow-env-change", "--tolerance", "5", "--json"])
    assert allowed.exit_code in (0, 11), allowed.output  # compared: the same model, within a 6x limit
    result = json.loads(allowed.stdout)
    assert result["method"] == "baseline"
    changed = {"field": "runtime_version", "baseline": "1.10.0", "now": entry["runtime_version"]}
    assert result["env_changes"] == [changed]


def test_paired_gate_shows_a_foreign_baseline_as_refused(onnx_model, tmp_path):  # noqa: F811
    """--against decides on its own pairs; a stored baseline from another environment is not compared beside it."""
    baseline = tmp_path / "b.json"
    made = _cli(["bench", str(onnx_model), *QUICK, "--threads", "2", "--update-baseline", "--baseline", str(baseline)])
    assert made.exit_code == 0, made.output
    paired = _cli(["bench", str(onnx_model), *QUICK, "--rounds", "3", "--against", str(onnx_model), "--baseline",
                   str(baseline), "--tolerance", "5", "--json"])
    assert paired.exit_code in (0, 11), paired.output
    assert "threads 2 -> 1" in json.loads(paired.stdout)["baseline"]["refused"]


def _env_of(python: Path) -> dict:
    done = subprocess.run([str(python), "-I", runner.__file__, "env", "--runtime", "onnxruntime", "--device", "CPU"],
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)


def test_runner_reports_the_environment_here_and_under_python_36():
    for python in (Path(sys.executable), side_python("tx2")):
        report = _env_of(python)
        env = report["env"]
        assert env["kernel"] and env["cores"] >= 1 and env["load_1m"] is not None and env["runnable"] >= 1
        for key in ("governor", "freq_cur_mhz", "freq_max_mhz", "cpu_clocks_locked", "throttle_count",
                    "nvpmodel_mode", "gpu_clocks_locked"):
            assert key in env  # None where this machine has no cpufreq, throttle counters or Jetson files
        governors = list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor"))
        assert (env["governor"] is None) == (not governors)
        check = report["runtime_check"]
        assert check["ok"] and check["device"] == "CPUExecutionProvider"
        assert check["version"] == ("1.10.0" if python != Path(sys.executable) else check["version"])


def test_doctor_here():
    ready = _cli(["boards", "doctor", "--device", "intel-cpu", "--json"])
    assert ready.exit_code == 0, ready.output
    result = json.loads(ready.stdout)
    assert result["ready"] and result["where"] == "this machine"
    levels = {f["level"] for f in result["findings"]}
    assert levels <= {"ok", "info", "warn"}
    assert any(f["level"] == "ok" and f["what"].startswith("onnxruntime ") for f in result["findings"])
    human = _cli(["boards", "doctor", "--device", "intel-cpu"])
    assert human.stdout.startswith("this machine: ready\n")
    assert all(line.startswith("  ") for line in human.stdout.splitlines()[1:])
    gpu = _cli(["boards", "doctor", "--device", "intel-cpu", "--runtime-device", "CUDA"])
    assert gpu.exit_code == 13 and gpu.stderr.count("\n") == 1 and "CUDAExecutionProvider" in gpu.stderr
    assert "FAIL onnxruntime" in gpu.stdout


@pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
def test_doctor_on_the_board(sshd, tmp_path):  # noqa: F811
    """The TX2 side environment has ONNX Runtime 1.10 without CUDA: jetson-tx2's default GPU is a failed check;
    its CPU is ready; the findings come from the board's own runner (Python 3.6)."""
    inventory = str(_inventory(sshd, tmp_path, "jetson-tx2", "tx2"))
    gpu = _cli(["boards", "doctor", "jetson-tx2", "--inventory", inventory, "--json"])
    assert gpu.exit_code == 13, gpu.output
    result = json.loads(gpu.stdout)
    assert not result["ready"] and result["env"]["python"].startswith("3.6")
    failed = [f for f in result["findings"] if f["level"] == "fail"]
    assert len(failed) == 1 and "onnxruntime 1.10.0 here has no CUDAExecutionProvider" in failed[0]["what"]
    cpu = _cli(["boards", "doctor", "jetson-tx2", "--inventory", inventory, "--runtime-device", "CPU", "--json"])
    assert cpu.exit_code == 0 and json.loads(cpu.stdout)["ready"], cpu.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("dass-edge-")]  # the runner's folder removed
