"""Own predictors from calibrate, loaded through nn-Meter's predictor class, predicting a DASS network."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from predict_helpers import export_tiny_dass

from dass_edge.errors import InputError
from dass_edge.predict import calibrate, integrity, nnmeter


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory):
    """A real, small calibration on this CPU (a few samples per kernel type: seconds)."""
    return calibrate.calibrate("intel-cpu", tmp_path_factory.mktemp("pred") / "intel-cpu", samples=6,
                               progress=False)


@pytest.fixture(scope="module")
def dass_onnx(tmp_path_factory):
    """The DARTS-V2 cell network (a DASS search result) at a tiny size, exported as the exporters do."""
    return export_tiny_dass(tmp_path_factory.mktemp("onnx") / "darts.onnx")


def test_calibrated_dir_has_nn_meter_layout_and_metadata(predictor_dir):
    assert (predictor_dir / "fusion_rules.json").is_file()
    assert {p.stem for p in predictor_dir.glob("*.pkl")} == set(calibrate.sampling.KERNEL_TYPES)
    meta = json.loads((predictor_dir / "metadata.json").read_text())
    assert meta["device"] == "intel-cpu" and meta["runtime"] == "onnxruntime" and meta["runtime_version"]
    assert meta["held_out"]["conv-bn-relu"]["samples"] == 6 * calibrate.SAMPLE_WEIGHT["conv-bn-relu"]
    assert "ranges" in meta and meta["base_ms"] > 0
    convs = [json.loads(line) for line in (predictor_dir / "samples" / "conv-bn-relu.jsonl").read_text().splitlines()]
    assert all(r["ms"] > 0 and r["alone_ms"] > 0 for r in convs)  # timed alone and after a lead conv


def test_nn_meter_class_predicts_a_dass_network_with_our_predictors(predictor_dir, dass_onnx):
    predictors = nnmeter.load_predictors(predictor_dir)
    theirs = predictors.nn_meter.predict(str(dass_onnx), model_type="onnx")  # nn-Meter's own code path
    assert theirs > 0
    kernels = nnmeter.detect_kernels(dass_onnx, predictors.fusion_rules)
    plain = [dataclasses.replace(k, extra=()) for k in kernels]  # what nn-Meter hands the predictors
    ours_plain = nnmeter.predict_kernels(plain, predictors).latency_ms - predictors.base_ms
    assert ours_plain == pytest.approx(theirs, rel=1e-9)
    # our path also sees what nn-Meter drops: DARTS-V2 has a dilated depthwise conv
    assert any(k.kernel_type == "dwconv-bn-relu" and k.extra[0] == 2 for k in kernels)
    full = nnmeter.predict_onnx(dass_onnx, predictors)
    assert full.complete and full.coverage_macs == 1.0 and full.latency_ms > 0


def test_coverage_when_a_kernel_type_is_missing(predictor_dir, dass_onnx, tmp_path):
    complete = nnmeter.predict_onnx(dass_onnx, nnmeter.load_predictors(predictor_dir))
    partial_dir = tmp_path / "no-add"
    shutil.copytree(predictor_dir, partial_dir)
    (partial_dir / "add.pkl").unlink()
    integrity.seal(partial_dir, {})  # a predictor made without an add model, not a damaged one
    partial = nnmeter.predict_onnx(dass_onnx, nnmeter.load_predictors(partial_dir))
    adds = complete.by_type["add"]
    assert adds["found"] > 0
    assert partial.by_type["add"] == {**adds, "predicted": 0, "ms": 0.0, "macs_predicted": 0.0}
    assert partial.kernels_found == complete.kernels_found
    assert partial.kernels_predicted == complete.kernels_found - adds["found"]
    total = sum(v["macs"] for v in complete.by_type.values())
    assert partial.coverage_macs == pytest.approx(1 - adds["macs"] / total)
    assert partial.latency_ms == pytest.approx(complete.latency_ms - adds["ms"])
    assert partial.missing_types == ["add"] and not partial.complete
    with pytest.raises(InputError, match=r"add \(\d+\)"):
        nnmeter.predict_onnx(dass_onnx, nnmeter.load_predictors(partial_dir), strict=True)


def test_calibrate_resumes_and_refuses_mixed_settings(tmp_path):
    out = tmp_path / "cal"
    calibrate.calibrate("intel-cpu", out, samples=3, kernel_types=("relu", "add"), progress=False)
    first = (out / "samples" / "relu.jsonl").read_text().splitlines()
    calibrate.calibrate("intel-cpu", out, samples=5, kernel_types=("relu", "add"), progress=False)
    second = (out / "samples" / "relu.jsonl").read_text().splitlines()
    assert len(first) == 3 and len(second) == 5 and second[:3] == first
    with pytest.raises(InputError, match="other settings"):
        calibrate.calibrate("intel-cpu", out, samples=5, seed=1, kernel_types=("relu",), progress=False)


def test_calibrate_refuses_a_predicted_device(tmp_path):
    with pytest.raises(InputError, match="adreno640"):
        calibrate.calibrate("adreno640", tmp_path, samples=1, progress=False)
