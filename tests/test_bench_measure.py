"""The timing harness: its stopping rule, the result it builds, paired rounds. The runner's ``time`` command
run by path in every place (host, side environments, emulated board) is tests/test_runner.py's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dass_edge.runtimes import runner
from dass_edge.bench.measure import Settings, result_from_timing
from dass_edge.errors import InputError

RUNNER = Path(runner.__file__)


class Counter:
    """A stand-in 'runtime' that records how often it is called and with what."""

    def __init__(self) -> None:
        self.calls = 0
        self.inputs: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.inputs.append(x)
        return x.sum()


def test_stops_at_min_runs_when_time_is_reached():
    run = Counter()
    x = runner.fixed_input([1, 1, 4, 4], np.float32)
    timing = runner.time_rounds(run, x, warmup=3, min_runs=7, min_seconds=0, rounds=2)
    assert [len(r) for r in timing["rounds_ns"]] == [7, 7]
    assert run.calls == 1 + 3 + 14  # first inference, warm-up, timed
    assert all(inp is x for inp in run.inputs)  # a fixed input, never regenerated


def test_keeps_running_until_min_seconds():
    run = Counter()
    timing = runner.time_rounds(run, np.zeros(3, np.float32), warmup=0, min_runs=1, min_seconds=0.05)
    samples = timing["rounds_ns"][0]
    assert sum(samples) >= 50_000_000 and len(samples) > 1
    assert timing["first_ns"] > 0


def test_fixed_input_is_repeatable():
    a = runner.fixed_input([1, 3, 8, 8], np.float32)
    assert a.dtype == np.float32 and a.shape == (1, 3, 8, 8)
    assert np.array_equal(a, runner.fixed_input([1, 3, 8, 8], np.float32))
    assert runner.fixed_input([2, 2], np.int8).dtype == np.int8


def test_result_pools_rounds_and_keeps_round_medians():
    raw = {"runtime": "onnxruntime", "runtime_version": "1.0", "first_ns": 5_000_000,
           "rounds_ns": [[1_000_000, 2_000_000, 3_000_000], [2_000_000, 4_000_000, 6_000_000]],
           "env": {"cpu": "Test CPU"}}
    result = result_from_timing(raw, device="intel-cpu", latency_source="local", settings=Settings(rounds=2),
                                model="m.onnx")
    assert result["count"] == 6 and result["median_ms"] == 2.5 and result["max_ms"] == 6.0
    assert result["round_medians_ms"] == [2.0, 4.0]
    assert result["first_ms"] == 5.0 and result["cpu"] == "Test CPU"
    for key in ("device", "runtime", "runtime_version", "latency_source", "count", "median_ms", "mean_ms",
                "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "first_ms", "model"):
        assert key in result


def test_settings_are_checked():
    with pytest.raises(InputError):
        Settings(runs=0)
    with pytest.raises(InputError):
        Settings(threads=0)
    assert Settings(threads=2).agent_args()[-2:] == ["--threads", "2"]


@pytest.fixture(scope="module")
def onnx13(tmp_path_factory) -> Path:
    import torch
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False, opset_version=13)
    return path


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_measure_file_times_each_runtime(runtime, onnx13, tmp_path):
    from dass_edge.bench.measure import measure_file

    path = onnx13
    if runtime == "openvino":
        import openvino as ov
        path = tmp_path / "m.xml"
        ov.save_model(ov.convert_model(str(onnx13)), str(path))
    settings = Settings(warmup=2, runs=5, min_seconds=0, rounds=3, threads=1)
    raw = measure_file(path, settings)
    result = result_from_timing(raw, device="intel-cpu", latency_source="local", settings=settings, model=path.name)
    assert result["runtime"] == runtime and result["runtime_version"]
    assert result["count"] == 15 and len(result["round_medians_ms"]) == 3 and result["threads"] == 1
    assert result["input_shape"] == [1, 3, 16, 16] and result["min_ms"] <= result["median_ms"] <= result["max_ms"]


class Named:
    """A stand-in session that writes its name into a shared log on every call (the runtime is not what is
    tested here; the order of the calls is)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.runtime, self.version, self.device, self.input_shape = name, "0", "CPU", (1, 2)
        self.name, self.log = name, log

    def run(self, x: np.ndarray) -> np.ndarray:
        self.log.append(self.name)
        return x


def test_paired_rounds_alternate_and_flip_order():
    from dass_edge.bench.measure import time_paired

    log: list[str] = []
    settings = Settings(warmup=2, runs=3, min_seconds=0, rounds=4)
    cand, ref = time_paired(Named("c", log), Named("r", log), settings)
    assert [len(r) for r in cand["rounds_ns"]] == [3] * 4 == [len(r) for r in ref["rounds_ns"]]
    warm = 1 + 2 + 1  # first inference, warm-up and one discarded run, each model, before any timed round
    assert log[:2 * warm] == ["c"] * warm + ["r"] * warm
    per_round = 1 + 3  # one re-warming call, then the timed runs
    blocks = [log[i] for i in range(2 * warm, len(log), per_round)]
    assert blocks == ["c", "r", "r", "c", "c", "r", "r", "c"]  # C R, R C, ...: drift favours neither


def test_measure_pair_times_two_real_files(onnx13, tmp_path):
    from dass_edge.bench.measure import measure_pair

    other = tmp_path / "other.onnx"
    shutil.copy(onnx13, other)
    settings = Settings(warmup=1, runs=5, min_seconds=0, rounds=3, threads=1)
    cand, ref = measure_pair(onnx13, other, settings, (None, "openvino"))
    assert (cand["runtime"], ref["runtime"]) == ("onnxruntime", "openvino")
    assert cand["model"] == "m.onnx" and ref["model"] == "other.onnx"
    assert [len(r) for r in ref["rounds_ns"]] == [5, 5, 5] and cand["first_ns"] > 0


def test_host_and_agent_compile_openvino_alike(onnx13, tmp_path, monkeypatch):
    """The host adapter and the board agent hand OpenVINO the same settings (one definition), and this
    OpenVINO applies them: latency mode, f32 inference precision, the thread count asked for."""
    import openvino as ov

    from dass_edge import runtimes

    seen: list[dict] = []
    real = ov.Core.compile_model

    def recording(self, model, device=None, config=None):  # noqa: ANN001
        seen.append(dict(config or {}))
        compiled = real(self, model, device, config)
        seen[-1]["applied"] = {k: str(compiled.get_property(k)) for k in ("PERFORMANCE_HINT",
                                                                          "INFERENCE_PRECISION_HINT",
                                                                          "INFERENCE_NUM_THREADS")}
        return compiled

    monkeypatch.setattr(ov.Core, "compile_model", recording)
    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(onnx13)), str(xml))
    runtimes.load(xml, threads=1)
    runner.measure(str(xml), "openvino", threads=1, warmup=0, runs=1, min_seconds=0)
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0]["applied"]["PERFORMANCE_HINT"].endswith("LATENCY")
    assert seen[0]["applied"]["INFERENCE_PRECISION_HINT"] in ("f32", "<Type: 'float32'>")
    assert seen[0]["applied"]["INFERENCE_NUM_THREADS"] == "1"
