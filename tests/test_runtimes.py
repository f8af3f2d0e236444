"""The runtime registry: suffix lookup, versions, the Session contract in every runtime, clear errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from dass_edge import runtimes
from dass_edge.errors import InputError, MissingDependencyError
from dass_edge.export import get_exporter
from dass_edge.targets import get_target

SHAPE = (1, 3, 16, 16)
# One file per runtime, from the target whose settings produce it.
CASES = {"onnxruntime": ("intel-cpu", "onnx"), "openvino": ("ncs2", "openvino"),
         "litert": ("cortex-a76", "tflite"), "torch": ("cuda-gpu", "torch")}


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),
                         nn.MaxPool2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runtimes")
    made = {}
    for runtime, (target, fmt) in CASES.items():
        folder = out / runtime
        (folder / "work").mkdir(parents=True)
        made[runtime] = get_exporter(fmt)(tiny(), SHAPE, replace(get_target(target), format=fmt), folder,
                                          folder / "work").model_file
    return made


@pytest.mark.parametrize("runtime", sorted(CASES))
def test_session_contract_and_outputs(files, runtime):
    session = runtimes.load(files[runtime], device="CPU")
    assert runtimes.runtime_for(files[runtime]) == runtime == session.runtime
    assert session.version == runtimes.available()[runtime]
    assert session.input_shape == SHAPE and session.input_layout == "NCHW"
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        expected = tiny()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(x), expected, atol=5e-3 if runtime == "openvino" else 1e-4)
    with pytest.raises(InputError, match="expects input"):
        session.run(x[:, :1])


def test_litert_keeps_its_delegate_line_off_the_terminal(files):
    """LiteRT's C++ prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on stderr once per
    process; the adapter sends it to the log. A fresh process each, since the line comes only once."""
    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, str(files["litert"])], capture_output=True, text=True,
                              check=True, timeout=120)

    raw = run("import sys; from ai_edge_litert.interpreter import Interpreter; "
              "Interpreter(model_path=sys.argv[1]).allocate_tensors()")
    assert "XNNPACK" in raw.stderr  # the line the adapter must hide exists
    ours = run("import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stdout); "
               "from dass_edge import runtimes; runtimes.load(sys.argv[1], device='CPU')")
    assert "XNNPACK" not in ours.stderr and "XNNPACK" in ours.stdout  # in the log, not on the terminal


def test_torch_defaults_to_cuda_only_when_available(files):
    assert runtimes.load(files["torch"]).device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_suffix_runtime_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no runtime reads model.bin"):
        runtimes.runtime_for(tmp_path / "model.bin")
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError, match="unknown runtime 'tvm'"):
        runtimes.load(tmp_path / "m.onnx", "tvm")
    with pytest.raises(InputError, match="onnxruntime cannot load"):
        runtimes.load(tmp_path / "m.onnx")
    with pytest.raises(InputError, match="does not exist"):
        runtimes.load(tmp_path / "gone.onnx")


def test_missing_runtime_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    (tmp_path / "m.xml").write_text("<net/>")
    with pytest.raises(MissingDependencyError, match=r"dass-edge\[openvino\]"):
        runtimes.load(tmp_path / "m.xml")


def test_available_lists_installed_runtimes():
    found = runtimes.available()
    assert {"onnxruntime", "openvino", "litert", "torch"} <= set(found)
    assert "tflite-runtime" not in found  # NumPy 1.x only: lives on boards, not in this environment


def _gpu_providers() -> set[str]:
    import onnxruntime as ort
    return {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers())


@pytest.mark.parametrize("device, provider", [("CUDA", "CUDAExecutionProvider"), ("gpu", "CUDAExecutionProvider"),
                                              ("TensorRT", "TensorrtExecutionProvider")])
def test_onnxruntime_refuses_a_missing_gpu_provider(files, device, provider):
    """No silent CPU run: a provider asked for and absent is a one-line InputError naming what there is."""
    if provider in _gpu_providers():
        pytest.skip(f"this onnxruntime has {provider}")
    with pytest.raises(InputError) as info:
        runtimes.load(files["onnxruntime"], device=device)
    message = str(info.value)
    assert f"has no {provider}" in message and "CPUExecutionProvider" in message and "\n" not in message
    with pytest.raises(InputError, match="unknown onnxruntime device NPU"):
        runtimes.load(files["onnxruntime"], device="NPU")


def test_cpu_sessions_report_providers_and_no_device_timing(files):
    session = runtimes.load(files["onnxruntime"], device="CPU")
    assert session.providers == ("CPUExecutionProvider",) and session.on_device is None
    assert runtimes.load(files["torch"], device="cpu").on_device is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_torch_cuda_without_a_gpu_is_an_error(files):
    with pytest.raises(InputError, match="has no CUDA device; pass --runtime-device cpu"):
        runtimes.load(files["torch"], device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_gpu_sessions_time_device_compute(files, runtime):
    """Only where a GPU is (the suite never depends on one): both timings, the device one no slower."""
    from dass_edge.bench.measure import Settings, time_session

    if runtime == "onnxruntime" and "CUDAExecutionProvider" not in _gpu_providers():
        pytest.skip("onnxruntime here has no CUDA provider")
    raw = time_session(runtimes.load(files[runtime], device="cuda"), Settings(warmup=5, runs=20, min_seconds=0))
    assert raw["timed_region"] == "host-to-host" and len(raw["device_rounds_ns"][0]) >= 20
