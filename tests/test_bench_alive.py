"""`dass-edge bench` refuses a dead network (exit 7, one line) wherever its evidence comes from: a
checkpoint, an export whose manifest says dead, or a bare file run here on random inputs; --allow-dead
measures it anyway and says so in the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import tiny_network
from dass_edge.cli.app import app
from dass_edge.export.onnx import write_onnx
from dass_edge.search import sparse

QUICK = ["--device", "intel-cpu", "--threads", "1", "--warmup", "0", "--runs", "3", "--min-seconds", "0", "--json"]


def bench(*args) -> object:
    return CliRunner().invoke(app, ["bench", *[str(a) for a in args], *QUICK])


def refused(result, what: str) -> None:
    assert result.exit_code == 7, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {what}'s output does not depend on its input"), lines
    assert lines[0].endswith("pass --allow-dead to bench it anyway")


def measured(result, dead: bool) -> dict:
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["median_ms"] > 0 and data.get("dead", False) is dead
    return data


@pytest.fixture(scope="module")
def bare_files(tmp_path_factory) -> dict[str, Path]:
    """The tiny networks as plain ONNX files, alone in a folder (no manifest to say anything)."""
    folder = tmp_path_factory.mktemp("bare")
    files = {}
    for state in ("alive", "dead"):
        model, _ = tiny_network(state == "dead")
        files[state] = folder / f"{state}.onnx"
        write_onnx(sparse.bake(model).eval(), (1, 1, 32, 32), files[state], opset=13)
    return files


def test_a_dead_checkpoint_is_refused_before_it_is_exported(tiny_checkpoints, tmp_path):
    refused(bench(tiny_checkpoints["dead"], "--export-dir", tmp_path / "exported"), "tiny-dead")
    assert not (tmp_path / "exported").exists()


def test_allow_dead_exports_and_measures_a_dead_checkpoint(tiny_checkpoints, tmp_path):
    data = measured(bench(tiny_checkpoints["dead"], "--export-dir", tmp_path, "--allow-dead"), dead=True)
    manifest = json.loads((tmp_path / "tiny-dead" / "intel-cpu" / "manifest.json").read_text())
    assert manifest["dead"] is True and data["model"] == str(tmp_path / "tiny-dead" / "intel-cpu" / "model.onnx")


def test_an_export_marked_dead_is_refused(tiny_checkpoints, tmp_path):
    exported = CliRunner().invoke(app, ["export", str(tiny_checkpoints["dead"]), "-t", "jetson-tx2", "--out",
                                        str(tmp_path), "--allow-dead"])
    assert exported.exit_code == 0, exported.output
    onnx = tmp_path / "tiny-dead" / "jetson-tx2" / "model.onnx"
    refused(bench(onnx), "tiny-dead")
    measured(bench(onnx, "--allow-dead"), dead=True)


def test_a_bare_file_is_checked_in_its_runtime(bare_files):
    refused(bench(bare_files["dead"]), "dead.onnx")
    measured(bench(bare_files["dead"], "--allow-dead"), dead=True)
    measured(bench(bare_files["alive"]), dead=False)
