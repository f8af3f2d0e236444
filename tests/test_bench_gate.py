"""The regression gate: verdicts on known round medians, baseline files, JUnit reports, and end to end
through the CLI on real models (same model passes, a model with more cells fails with exit code 10)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dass_edge.bench import gate
from dass_edge.errors import InputError


def _result(rounds: list[float], **extra) -> dict:
    return {"device": "intel-cpu", "model": "m.onnx", "model_key": "m", "runtime": "onnxruntime",
            "runtime_version": "1.0", "median_ms": sorted(rounds)[len(rounds) // 2], "p90_ms": max(rounds),
            "count": 100, "round_medians_ms": rounds, **extra}


BASE = _result([1.00, 1.02, 0.99, 1.01, 1.00])


def test_same_speed_passes():
    verdict = gate.compare(_result([1.01, 0.99, 1.00, 1.02, 1.00]), BASE, tolerance=0.10)
    assert not verdict.regression and verdict.ratio_ci_low < 1 < verdict.ratio_ci_high


def test_twice_as_slow_fails():
    verdict = gate.compare(_result([2.0, 2.1, 1.98, 2.02, 2.05]), BASE, tolerance=0.10)
    assert verdict.regression and verdict.ratio == pytest.approx(2.02, rel=0.02)
    assert verdict.baseline_median_ms == BASE["median_ms"]


def test_slowdown_within_tolerance_passes():
    assert not gate.compare(_result([1.05, 1.06, 1.04, 1.05, 1.05]), BASE, tolerance=0.10).regression
    assert gate.compare(_result([1.05, 1.06, 1.04, 1.05, 1.05]), BASE, tolerance=0.0).regression


def test_noise_is_not_a_regression():
    """A mean ratio of 1.3 from wildly varying rounds is not confident evidence of a 10% slowdown."""
    verdict = gate.compare(_result([0.8, 2.2, 0.9, 1.9, 0.85]), BASE, tolerance=0.10)
    assert verdict.ratio > 1.1 and not verdict.regression


def test_baseline_file_roundtrip_keeps_other_entries(tmp_path):
    path = tmp_path / "baselines" / "intel-cpu.json"
    gate.write_baseline(path, "a", BASE)
    gate.write_baseline(path, "b", _result([3.0, 3.1]))
    data = json.loads(path.read_text())
    assert data["schema"] == gate.SCHEMA and set(data["entries"]) == {"a", "b"}
    assert gate.read_baseline(path, "a")["round_medians_ms"] == BASE["round_medians_ms"]
    with pytest.raises(InputError, match="has no entry 'c'"):
        gate.read_baseline(path, "c")
    with pytest.raises(InputError, match="does not exist"):
        gate.read_baseline(tmp_path / "none.json", "a")
    (tmp_path / "bad.json").write_text('{"entries": 3}')
    with pytest.raises(InputError, match="not a dass-edge baseline"):
        gate.read_baseline(tmp_path / "bad.json", "a")


def test_junit_report_marks_a_regression_as_failure(tmp_path):
    slow = _result([2.0, 2.1, 2.0])
    slow.update(gate.compare(slow, BASE).to_dict())
    gate.write_junit(tmp_path / "slow.xml", slow, 3.5)
    suite = ET.parse(tmp_path / "slow.xml").getroot()
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    failure = suite.find("testcase/failure")
    assert failure is not None and "baseline" in failure.get("message")
    gate.write_junit(tmp_path / "ok.xml", {**BASE, **gate.compare(BASE, BASE).to_dict()}, 1.0)
    ok = ET.parse(tmp_path / "ok.xml").getroot()
    assert ok.get("failures") == "0" and ok.find("testcase/failure") is None
    assert {p.get("name") for p in ok.iter("property")} >= {"median_ms", "ratio", "baseline_median_ms"}
    gate.write_junit(tmp_path / "err.xml", {"device": "jetson-tx2", "model": "m"}, 0.1, "cannot reach board")
    assert ET.parse(tmp_path / "err.xml").getroot().find("testcase/error").get("message") == "cannot reach board"


def test_results_file_appends_one_line_per_result(tmp_path):
    from dass_edge.bench.results import append_result, read_results

    path = tmp_path / "r" / "latency.jsonl"
    append_result(path, BASE)
    append_result(path, {**BASE, "model_key": "n"})
    rows = list(read_results(path))
    assert [r["model_key"] for r in rows] == ["m", "n"] and all("timestamp" in r for r in rows)
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(InputError, match=":3 is not a JSON line"):
        list(read_results(path))


# ---- end to end through the CLI, real models on intel-cpu ---------------------------------------------

def _bench(args: list[str]):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, ["bench", *args])


@pytest.fixture(scope="module")
def models(tmp_path_factory, trained_checkpoint) -> dict[str, Path]:
    """The smoke DASS checkpoint and its ONNX export for intel-cpu; and a version of the same model with
    twice the cells and four times the channels, saved and exported under the SAME name elsewhere: a new version of
    the model that got slower, as a CI gate should catch."""
    from dataclasses import replace

    from dass_edge import checkpoint
    from dass_edge.export.pipeline import export_checkpoint
    from dass_edge.search.models import build_model
    from dass_edge.targets import get_target

    onnx_only = replace(get_target("intel-cpu"), extra_formats=())
    fast = trained_checkpoint("dass")
    ckpt = checkpoint.load(fast)
    spec = replace(ckpt.spec, cells=ckpt.spec.cells * 2, channels=ckpt.spec.channels * 4)
    slow = tmp_path_factory.mktemp("slow") / fast.name
    checkpoint.save(checkpoint.from_model(build_model(spec), spec, ckpt.sparsity, "pretrain"), slow)
    out = {"fast": fast, "export_dir": tmp_path_factory.mktemp("exported")}
    for name, path, folder in (("fast", fast, out["export_dir"]), ("slow", slow, tmp_path_factory.mktemp("e2"))):
        manifest = export_checkpoint(path, onnx_only, folder)
        out[f"{name}_onnx"] = Path(manifest.path) / manifest.files[0]
    return out


QUICK_GATE = ["--device", "intel-cpu", "--threads", "1", "--warmup", "20", "--runs", "50", "--min-seconds", "0.2",
              "--rounds", "5"]


def test_gate_through_cli_passes_same_model_and_fails_slower_one(models, tmp_path):
    baseline = tmp_path / "baselines" / "intel-cpu.json"
    # From the checkpoint: the bench finds the current export (newer than the checkpoint) and reuses it.
    made = _bench([str(models["fast"]), *QUICK_GATE, "--export-dir", str(models["export_dir"]), "--update-baseline",
                   "--baseline", str(baseline), "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["model"] == str(models["fast_onnx"])
    assert models["fast"].stem in json.loads(baseline.read_text())["entries"]

    junit = tmp_path / "same.xml"
    same = _bench([str(models["fast_onnx"]), *QUICK_GATE, "--baseline", str(baseline), "--junit-xml", str(junit),
                   "--tolerance", "0.5", "--json"])
    assert same.exit_code == 0, same.output
    result = json.loads(same.stdout)
    assert result["regression"] is False and result["baseline_median_ms"] > 0
    assert result["model_key"] == models["fast"].stem  # from the manifest beside model.onnx
    assert result["latency_source"] == "local" and result["test_accuracy"] is not None
    assert ET.parse(junit).getroot().get("failures") == "0"

    junit = tmp_path / "slow.xml"
    slower = _bench([str(models["slow_onnx"]), *QUICK_GATE, "--baseline", str(baseline), "--junit-xml", str(junit),
                     "--tolerance", "0.5", "--json"])
    assert slower.exit_code == 10, slower.output
    assert json.loads(slower.stdout)["regression"] is True and json.loads(slower.stdout)["ratio"] > 1.5
    assert "error:" in slower.stderr and "baseline" in slower.stderr
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_cli_errors_have_their_exit_codes(tmp_path, models):
    missing = _bench([str(tmp_path / "nope.onnx"), "--device", "intel-cpu"])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    unknown = _bench([str(models["fast_onnx"]), "--device", "no-such-board"])
    assert unknown.exit_code == 2 and "unknown target" in unknown.stderr
    no_entry = tmp_path / "b.json"
    gate.write_baseline(no_entry, "other", BASE)
    absent = _bench([str(models["fast_onnx"]), *QUICK_GATE, "--baseline", str(no_entry)])
    assert absent.exit_code == 2 and "has no entry" in absent.stderr


def test_cli_other_runtime_and_device(models, tmp_path):
    """--runtime picks another runtime for the same file (OpenVINO reads ONNX); --runtime-device is checked."""
    quick = ["--device", "intel-cpu", "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--json"]
    got = _bench([str(models["fast_onnx"]), *quick, "--runtime", "openvino", "--update-baseline", "--baseline",
                  str(tmp_path / "b.json")])
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["runtime"] == "openvino"
    assert json.loads(got.stdout)["model_key"] == f"{models['fast'].stem}@openvino"
    missing = _bench([str(models["fast_onnx"]), *quick, "--runtime", "openvino", "--runtime-device", "NO_SUCH_DEV"])
    assert missing.exit_code == 2 and "no NO_SUCH_DEV device" in missing.stderr
