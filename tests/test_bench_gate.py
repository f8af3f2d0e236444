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
