"""Per-operator profiles and the verdict that names the cause: the tiny DASS network and a copy with one conv made
slower (a dense 15x15 kernel where a 3x3 depthwise one was, same output shape), both exported by the project's
ONNX exporter. `bench --against` must flag the copy and name that conv first, here and on the SSH test board
(a real sshd, the tx2 side environment's Python 3.6 and ONNX Runtime 1.10 as the board). Every profiler the
runner has (ONNX Runtime, OpenVINO new and legacy, torch) times the network, and TFLite says what it lacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import side_python, tiny_network
from dass_edge.bench.layers import describe_layer, layer_of, read_graph, scope_in_name
from dass_edge.runtimes import runner
from test_bench_remote import SSHD, _inventory, sshd, tflite_model  # noqa: F401 (fixtures)

SLOW_CONV = "cells.0.ops.0.0.1"  # cell 0, edge 0 (a sep_conv_3x3): its first depthwise conv
SHAPE = (1, 1, 32, 32)
QUICK = ["--runs", "30", "--warmup", "5", "--min-seconds", "0.05", "--rounds", "4", "--profile-runs", "10"]


def _bench(args: list[str]):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, ["bench", *args])


def _candidate_module() -> nn.Module:
    """tiny_network with its cell-0 depthwise 3x3 conv replaced by a dense 15x15 one (same output shape)."""
    model, _ = tiny_network(dead=False)
    torch.manual_seed(1)
    model.cells[0].ops[0][0][1] = nn.Conv2d(4, 4, 15, padding=7, bias=False)
    return model.eval()


@pytest.fixture(scope="module")
def convs(tmp_path_factory) -> dict[str, Path]:
    """{"reference", "candidate"}: model.onnx (opset 13, which the TX2's ONNX Runtime 1.10 reads) of each, in
    folders of their own, as two builds of one model are."""
    from dass_edge.export.onnx import write_onnx

    reference, _ = tiny_network(dead=False)
    candidate = _candidate_module()
    with torch.no_grad():
        x = torch.randn(SHAPE)
        assert candidate(x).shape == reference(x).shape
    made = {}
    for name, model in (("reference", reference), ("candidate", candidate)):
        folder = tmp_path_factory.mktemp(name)
        write_onnx(model.eval(), SHAPE, folder / "model.onnx", opset=13)
        made[name] = folder / "model.onnx"
    return made


def _check_gate(got, junit: Path | None = None) -> dict:
    assert got.exit_code == 10, got.output
    result = json.loads(got.stdout)
    first = result["grown_operators"][0]
    assert first["op"] == SLOW_CONV and first["after_ms"] > 3 * first["before_ms"], result["grown_operators"]
    assert SLOW_CONV in got.stderr.strip().splitlines()[-1]  # the one-line error names it too
    if junit is not None:
        assert SLOW_CONV in ET.parse(junit).getroot().find("testcase/failure").get("message")
    from dass_edge.history.summary import grown_operators  # the CI job summary reads the same fields
    assert grown_operators(result, 0.1)[0][0] == SLOW_CONV
    assert result["peak_memory_bytes"] > 0 and result["against"]["peak_memory_bytes"] > 0
    assert result["model_size_bytes"] > result["against"]["model_size_bytes"]  # 15x15x4x4 weights, not 3x3x4
    memory = result["memory"]
    assert memory["process_peak_rss_bytes"] == memory["baseline_rss_bytes"] + memory["model_peak_rss_bytes"]
    assert result["count"] >= 100 and result["percentiles"]["p99"]["measured"]
    assert result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    return result


def test_against_names_the_slower_conv_first_here(convs, tmp_path):
    junit = tmp_path / "latency.xml"
    got = _bench([str(convs["candidate"]), "--against", str(convs["reference"]), "--device", "intel-cpu", *QUICK,
                  "--junit-xml", str(junit), "--json"])
    result = _check_gate(got, junit)
    profile = result["profile"]
    assert profile["profiler"] == "onnxruntime session profiling" and profile["runs"] == 10
    assert profile["sum_ms"] > 0 and profile["gap_ms"] == pytest.approx(profile["end_to_end_ms"] - profile["sum_ms"])
    assert max(result["op_profile_ms"], key=result["op_profile_ms"].get) == SLOW_CONV


def test_a_stored_baseline_with_a_profile_names_the_conv_too(convs, tmp_path):
    """A baseline written by a gated run keeps its per-layer profile; gating against it names what grew."""
    baseline = tmp_path / "intel-cpu.json"
    made = _bench([str(convs["reference"]), "--device", "intel-cpu", *QUICK, "--update-baseline", "--baseline",
                   str(baseline)])
    assert made.exit_code == 0, made.output
    assert json.loads(baseline.read_text())["entries"]["model"]["op_profile_ms"][SLOW_CONV] > 0
    got = _bench([str(convs["candidate"]), "--device", "intel-cpu", *QUICK, "--baseline", str(baseline), "--json"])
    assert got.exit_code in (10, 11), got.output  # a stored baseline may leave it undecided on a busy machine
    result = json.loads(got.stdout)
    assert result["method"] == "baseline" and result["grown_operators"][0]["op"] == SLOW_CONV
    assert SLOW_CONV in got.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
def test_against_on_the_board_names_the_slower_conv_first(sshd, tmp_path, convs):  # noqa: F811
    """The same gate on the SSH test board: the runner profiles both models and measures their memory there."""
    inventory = _inventory(sshd, tmp_path, "jetson-tx2", "tx2")
    got = _bench([str(convs["candidate"]), "--against", str(convs["reference"]), "--device", "jetson-tx2",
                  "--inventory", str(inventory), "--runtime-device", "CPU", *QUICK, "--json"])
    result = _check_gate(got)
    assert result["host"] == f"root@127.0.0.1:{sshd[0]}" and result["env"]["python"].startswith("3.6")
    assert result["runtime_version"] == "1.10.0" and result["memory"]["runtime"] == "onnxruntime"
    assert result["against"]["peak_memory_bytes"] > 0


def test_each_profiler_finds_the_slow_conv(convs, tmp_path):
    """ONNX Runtime and OpenVINO name operators after the ONNX nodes, so the slow conv maps to its layer; torch's
    saved TorchScript keeps no module names, so its operators are numbered calls, the slowest a convolution."""
    import openvino as ov

    xml = tmp_path / "model.xml"
    ov.save_model(ov.convert_model(str(convs["candidate"])), str(xml))
    script = tmp_path / "model.pt"
    traced = torch.jit.trace(_candidate_module().eval(), torch.zeros(SHAPE), check_trace=False)
    torch.jit.save(traced, str(script), _extra_files={runner.TORCH_SHAPE_FILE: json.dumps(list(SHAPE))})
    for path, runtime in ((convs["candidate"], "onnxruntime"), (xml, "openvino"), (script, "torch")):
        got = _bench([str(path), "--device", "intel-cpu", "--runtime", runtime, "--threads", "1", "--runs", "5",
                      "--min-seconds", "0", "--profile", "--profile-runs", "5", "--no-memory", "--json"])
        assert got.exit_code == 0, got.output
        result = json.loads(got.stdout)
        profile = result["profile"]
        assert profile["available"] and profile["runs"] == 5 and profile["sum_ms"] > 0, (runtime, profile)
        slowest = max(profile["ops"], key=lambda op: op["ms"])
        if runtime == "torch":
            assert slowest["type"] == "aten::_convolution" and slowest["layer"] is None
        else:
            assert slowest["layer"] == SLOW_CONV and slowest["share"] > 0.3, (runtime, slowest)
            assert slowest["where"] == "cell 0, node 2 (edge 0), layer 0.1"


def test_human_output_shows_the_profile_and_its_gap(convs):
    got = _bench([str(convs["candidate"]), "--device", "intel-cpu", "--threads", "1", "--runs", "20",
                  "--min-seconds", "0", "--profile", "--profile-runs", "5"])
    assert got.exit_code == 0, got.output
    assert "slowest operators (onnxruntime session profiling, median of 5 profiled runs)" in got.stdout
    assert "cell 0, node 2 (edge 0), layer 0.1" in got.stdout and "end to end: gap" in got.stdout
    assert SLOW_CONV in got.stdout
    assert "p99 not measured (needs 100 runs, has 20)" in got.stdout and "peak memory: the model adds" in got.stdout


def test_legacy_openvino_and_tflite_runtime_by_path(tmp_path, convs, tflite_model):  # noqa: F811
    """The runner copied alone into a folder, as on a board: OpenVINO 2021.4's get_perf_counts profiles the NCS2
    target's IR (no ONNX file beside it: the slow conv is found by its weight's name); tflite-runtime 2.13 (and
    LiteRT here) say that their Python API has no profiler, and still measure memory."""
    from dass_edge.export import get_exporter
    from dass_edge.targets import get_target

    copy_ = tmp_path / "runner.py"
    shutil.copy(runner.__file__, copy_)
    work = tmp_path / "ncs2"
    (work / "tmp").mkdir(parents=True)
    spec = get_target("ncs2")
    ir = get_exporter(spec.format)(_candidate_module().eval(), SHAPE, spec, work, work / "tmp").model_file
    cases = [(side_python("ov2021"), ir, "openvino"), (side_python("a7"), tflite_model, "tflite-runtime"),
             (Path(sys.executable), tflite_model, "litert")]
    for python, model, runtime in cases:
        done = subprocess.run([str(python), "-I", str(copy_), "time", str(model), "--runtime", runtime, "--runs",
                               "3", "--min-seconds", "0", "--threads", "1", "--profile", "3", "--memory"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert "error" not in result, result
        assert result["memory"]["model_peak_rss_bytes"] > 0 and result["memory"]["files_bytes"]
        if runtime == "openvino":
            assert result["profile"]["available"] and result["runtime_version"].startswith("2021.4")
            slowest = max(result["profile"]["ops"], key=lambda op: op["ms"])  # mapped by the IR's weight names
            assert layer_of(slowest["name"], slowest["type"], read_graph(ir)) == SLOW_CONV, result["profile"]
        else:
            assert not result["profile"]["available"]
            assert "exposes no per-operator profiler" in result["profile"]["reason"]


def test_layer_names():
    assert scope_in_name("/cells.0/ops.1/ops.1.0/ops.1.0.1/Conv") == "cells.0.ops.1.0.1"
    assert scope_in_name("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert scope_in_name("node_conv2d_4") is None
    assert describe_layer("cells.3.ops.5.1") == "cell 3, node 4 (edge 5), layer 1"
    assert describe_layer("cells.1.preprocess.0.1") == "cell 1, input 0 preprocessing, layer 1"
