"""`dass-edge bench` on a target whose latency source is 'predicted' goes through predict_for_bench."""

from __future__ import annotations

import json

from predict_helpers import export_tiny_dass
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.predict import calibrate, store

TARGET = """
name = "own-predicted"
device = "the host CPU, predicted by our own calibrated kernel predictors"
format = "onnx"
precision = "fp32"
input_layout = "NCHW"
runtime = "onnxruntime"
runtime_device = "CPU"
latency_source = "predicted"
predictor = "host-cpu-own"
atol = 1e-4
"""


def test_bench_of_a_predicted_target(tmp_path, monkeypatch):
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "own-predicted.toml").write_text(TARGET)
    (targets / "intel-cpu.toml").write_text(TARGET.replace('"own-predicted"', '"intel-cpu"')
                                            .replace('"predicted"', '"local"'))
    monkeypatch.setenv("DASS_EDGE_TARGETS", str(targets))
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    folder = calibrate.calibrate("intel-cpu", tmp_path / "cal", samples=4, progress=False)
    store.add(folder, "host-cpu-own")
    model = export_tiny_dass(tmp_path / "darts.onnx")
    result = CliRunner().invoke(app, ["bench", str(model), "--device", "own-predicted", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["latency_source"] == "predicted" and data["device"] == "own-predicted"
    assert data["predictor"] == "host-cpu-own" and data["median_ms"] > 0
    assert data["kernels_predicted"] == data["kernels_found"] > 10 and data["coverage_macs"] == 1.0
