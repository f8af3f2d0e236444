"""`dass-edge export` and `dass-edge targets` through Typer's runner: contract JSON, the status table, and
one-line errors with nothing left behind for every kind of bad input, a dead network included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.targets import DEFAULT_DIR, TARGETS_ENV

runner = CliRunner()


@pytest.fixture
def ckpt(live_checkpoint) -> Path:
    return live_checkpoint("mobilenet-v2")


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_line_error(result, pattern: str, code: int) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], result.stderr
    assert "Traceback" not in result.output


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*")] if folder.exists() else []


def test_targets_json_contract():
    result = invoke("targets", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {"name", "format", "precision", "latency_source"} <= rows[0].keys()
    assert "ncs2" in {r["name"] for r in rows}
    assert invoke("targets").exit_code == 0


def test_export_json_prints_the_manifest(ckpt, tmp_path):
    result = invoke("export", ckpt, "--target", "jetson-tx2", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["target"] == "jetson-tx2" and manifest["model_files"] == {"onnx": "model.onnx",
                                                                         "c": "model-bench-aarch64"}
    assert {"model.onnx", "model.c", "model-bench-aarch64"} <= set(manifest["files"])
    assert manifest["dead"] is False and manifest["health"]["input_dependent"] is True
    assert manifest == json.loads((tmp_path / ckpt.stem / "jetson-tx2" / "manifest.json").read_text())
    again = invoke("export", ckpt, "--target", "jetson-tx2", "--out", tmp_path)  # replaces the old export
    assert again.exit_code == 0 and "jetson-tx2" in again.stdout
    assert sorted(p.name for p in (tmp_path / ckpt.stem).iterdir()) == ["jetson-tx2"]


def test_export_all_prints_a_status_table_and_fails_if_one_target_fails(ckpt, tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "cuda-gpu.toml").write_text((DEFAULT_DIR / "cuda-gpu.toml").read_text())
    strict = (DEFAULT_DIR / "jetson-tx2.toml").read_text().replace('"jetson-tx2"', '"strict"')
    (targets / "strict.toml").write_text(strict.replace("atol = 1e-4", "atol = 1e-30"))
    result = invoke("export", ckpt, "--target", "all", "--out", tmp_path / "out", env={TARGETS_ENV: str(targets)})
    assert result.exit_code == 4  # the failure's own code: parity (README)
    assert "cuda-gpu" in result.stdout and "ok" in result.stdout and "differs from PyTorch" in result.stdout
    assert result.stderr.strip() == "error: 1 of 2 exports failed"
    assert [p.name for p in (tmp_path / "out" / ckpt.stem).iterdir()] == ["cuda-gpu"]


def test_parity_failure_names_the_difference_and_leaves_nothing(ckpt, tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "jetson-tx2.toml").write_text((DEFAULT_DIR / "jetson-tx2.toml").read_text()
                                             .replace("atol = 1e-4", "atol = 1e-30"))
    result = invoke("export", ckpt, "-t", "jetson-tx2", "--out", tmp_path / "out", env={TARGETS_ENV: str(targets)})
    one_line_error(result, "differs from PyTorch by up to", 4)
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("case, pattern, code", [
    ("missing", "does not exist", 2),
    ("corrupt", "not a readable dass-edge checkpoint", 2),
    ("unknown-target", "unknown target 'mars'; known: ", 2),
    ("bad-target-file", "field 'precision'", 2),
    ("unwritable", "cannot write to output folder", 8),
    ("missing-runtime", "dass-edge[onnx]", 3),
])
def test_bad_input_gives_one_line_and_writes_nothing(ckpt, tmp_path, monkeypatch, case, pattern, code):
    path, target, out, env = ckpt, "jetson-tx2", tmp_path / "out", None
    if case == "missing":
        path = tmp_path / "nope.pt"
    elif case == "corrupt":
        path = tmp_path / "bad.pt"
        path.write_bytes(b"garbage")
    elif case == "unknown-target":
        target = "mars"
    elif case == "bad-target-file":
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "x.toml").write_text((DEFAULT_DIR / "cuda-gpu.toml").read_text()
                                               .replace('"cuda-gpu"', '"x"').replace('"fp32"', '"fp8"'))
        env = {TARGETS_ENV: str(tmp_path / "t")}
    elif case == "unwritable":
        if os.geteuid() == 0:
            out = Path("/proc/dass-edge-out")  # root may write anywhere else
        else:
            out.mkdir()
            out.chmod(0o500)
    elif case == "missing-runtime":
        monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    result = invoke("export", path, "--target", target, "--out", out, env=env)
    one_line_error(result, pattern, code)
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("target", ["jetson-tx2", "all"])
def test_a_dead_network_is_refused_before_anything_is_written(tiny_checkpoints, tmp_path, target):
    result = invoke("export", tiny_checkpoints["dead"], "--target", target, "--out", tmp_path / "out")
    one_line_error(result, "tiny-dead's output does not depend on its input (output spread 0, alive MACs ", 7)
    assert "--allow-dead" in result.stderr
    assert files_under(tmp_path / "out") == []


def test_allow_dead_exports_it_marked_dead(tiny_checkpoints, tmp_path):
    result = invoke("export", tiny_checkpoints["dead"], "-t", "jetson-tx2", "--out", tmp_path, "--allow-dead",
                    "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest == json.loads((tmp_path / "tiny-dead" / "jetson-tx2" / "manifest.json").read_text())
    assert manifest["dead"] is True and manifest["health"]["input_dependent"] is False
    assert manifest["max_abs_diff"] <= 1e-6  # a constant is easy to match: why this cannot count as a pass
    assert [check["passed"] for check in manifest["checks"]] == [False, False]  # ONNX Runtime and the C program
    human = invoke("export", tiny_checkpoints["dead"], "-t", "jetson-tx2", "--out", tmp_path, "--allow-dead")
    assert human.exit_code == 0 and "DEAD" in human.stdout


def test_an_alive_tiny_network_exports_with_passed_checks(tiny_checkpoints, tmp_path):
    result = invoke("export", tiny_checkpoints["alive"], "-t", "jetson-tx2", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["dead"] is False and manifest["health"]["input_dependent"] is True
    assert 0 < manifest["health"]["alive_mac_share"] <= 1
    assert all(check["passed"] and check["reference_spread"] > 1e-3 for check in manifest["checks"])
