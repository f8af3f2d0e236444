"""Peak memory: measured in a fresh process, it grows with the weights a model loads (a 16 MB layer adds at least
that much), reports the files' sizes, and can be gated with its own tolerance against a stored baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dass_edge.bench.memory import MIN_GROWTH_BYTES, compare_memory

MIB = 1 << 20


def _bench(args: list[str]):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, ["bench", *args])


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory) -> dict[str, Path]:
    """The same conv with a 4096 -> 10 or a 4096 -> 1024 classifier (160 KB or 16 MB of weights)."""
    made = {}
    for name, width in (("small", 10), ("large", 1024)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4096, width)).eval()
        path = tmp_path_factory.mktemp(name) / "model.onnx"
        torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False, opset_version=13)
        made[name] = path
    return made


QUICK = ["--device", "intel-cpu", "--threads", "1", "--runs", "5", "--min-seconds", "0", "--no-profile"]


def test_peak_memory_follows_the_weights(two_sizes):
    results = {}
    for name, path in two_sizes.items():
        got = _bench([str(path), *QUICK, "--json"])
        assert got.exit_code == 0, got.output
        results[name] = json.loads(got.stdout)
    small, large = results["small"], results["large"]
    assert large["model_size_bytes"] - small["model_size_bytes"] == pytest.approx(4096 * 1014 * 4, rel=0.01)
    assert large["peak_memory_bytes"] - small["peak_memory_bytes"] >= 16 * MIB  # the weights, at least once
    for result in (small, large):
        memory = result["memory"]
        assert memory["runtime"] == "onnxruntime" and memory["runs"] > 0
        assert memory["process_peak_rss_bytes"] == memory["baseline_rss_bytes"] + result["peak_memory_bytes"]
        # the fresh process's baseline: Python, numpy and onnxruntime, far below this test process (torch etc.)
        assert 10 * MIB < memory["baseline_rss_bytes"] < 200 * MIB


def test_memory_gate_against_a_baseline(two_sizes, tmp_path):
    baseline = tmp_path / "b.json"
    gate = [*QUICK, "--rounds", "2", "--baseline", str(baseline), "--baseline-key", "m"]
    made = _bench([str(two_sizes["small"]), *gate, "--update-baseline"])
    assert made.exit_code == 0, made.output
    assert json.loads(baseline.read_text())["entries"]["m"]["peak_memory_bytes"] > 0
    # latency allowed to grow 100x: what fails is memory, by its own tolerance
    grown = _bench([str(two_sizes["large"]), *gate, "--tolerance", "100", "--memory-tolerance", "0.2", "--json"])
    assert grown.exit_code == 10, grown.output
    result = json.loads(grown.stdout)
    assert result["decision"] in ("pass", "inconclusive") and result["memory_decision"] == "regression"
    assert result["memory_ratio"] > 1.2 and "peak memory" in grown.stderr and grown.stderr.count("\n") == 1
    same = _bench([str(two_sizes["small"]), *gate, "--tolerance", "100", "--memory-tolerance", "0.2", "--json"])
    assert same.exit_code in (0, 11) and json.loads(same.stdout)["memory_decision"] == "pass", same.output


def test_memory_verdict_rules():
    base = {"peak_memory_bytes": 20 * MIB}
    assert compare_memory({"peak_memory_bytes": 30 * MIB}, base, 0.2)["memory_decision"] == "regression"
    assert compare_memory({"peak_memory_bytes": 23 * MIB}, base, 0.2)["memory_decision"] == "pass"
    tiny = {"peak_memory_bytes": MIN_GROWTH_BYTES // 2}  # doubled, but by less than the noise floor
    assert compare_memory({"peak_memory_bytes": MIN_GROWTH_BYTES}, tiny, 0.2)["memory_decision"] == "pass"
    assert compare_memory({}, base, 0.2)["memory_decision"] == "not measured"
