"""The board exports load and match in the old runtimes the boards really have (side environments):
jetson-tx2 in onnxruntime 1.10 on Python 3.6, ncs2 in OpenVINO 2021.4.2 (the last with the Myriad plugin,
here on its CPU plugin), cortex-a7 in tflite-runtime 2.14 with NumPy 1.x."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import side_python
from dass_edge import checkpoint
from dass_edge.export import get_exporter
from dass_edge.export.validate import check_inputs
from dass_edge.search import sparse
from dass_edge.targets import get_target

# Python 3.6-compatible: read inputs.npy (N, ...), run each as a batch of one, write outputs.npy.
RUNNERS = {
    "tx2": """
import onnxruntime as ort
session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
run = lambda x: session.run(None, {name: x})[0]
""",
    "ov2021": """
from openvino.inference_engine import IECore
core = IECore()
network = core.read_network(MODEL, MODEL[:-4] + ".bin")
executable = core.load_network(network, "CPU", {"ENFORCE_BF16": "NO"})  # bf16 on AMX CPUs otherwise
name = next(iter(network.input_info))
run = lambda x: next(iter(executable.infer({name: x}).values()))
""",
    "a7": """
from tflite_runtime.interpreter import Interpreter
interpreter = Interpreter(model_path=MODEL)
interpreter.allocate_tensors()
def run(x):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
""",
}
MAIN = """
import sys
import numpy as np
MODEL, INPUTS, OUTPUTS = sys.argv[1:4]
{runner}
np.save(OUTPUTS, np.concatenate([run(x[None]) for x in np.load(INPUTS)]))
"""
# (target, side env, arch). Alive networks only (conftest.live_checkpoint: the smoke MobileNet-v2 answers
# every input alike, so it gets fresh BatchNorm statistics): matching a constant output would prove nothing.
CASES = [(target, env, arch)
         for target, env in (("jetson-tx2", "tx2"), ("ncs2", "ov2021"))
         for arch in ("dass", "darts-v2", "mobilenet-v2")]
CASES.append(("cortex-a7", "a7", "dass"))  # dass has every depthwise variant (dilated, strided)


def run_side(env: str, model_file, inputs: np.ndarray, tmp_path) -> np.ndarray:
    np.save(tmp_path / "inputs.npy", inputs)
    script = MAIN.format(runner=RUNNERS[env])
    done = subprocess.run([str(side_python(env)), "-c", script, str(model_file), str(tmp_path / "inputs.npy"),
                           str(tmp_path / "outputs.npy")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(tmp_path / "outputs.npy")


@pytest.mark.parametrize("target, env, arch", CASES)
def test_board_export_runs_in_the_boards_runtime(live_checkpoint, tmp_path, target, env, arch):
    spec = get_target(target)
    ckpt = checkpoint.load(live_checkpoint(arch))
    model = sparse.bake(ckpt.build()).eval()
    (tmp_path / "work").mkdir()
    artifact = get_exporter(spec.format)(model, ckpt.input_shape, spec, tmp_path, tmp_path / "work")
    inputs = np.concatenate(check_inputs(ckpt.input_shape, None))
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    got = run_side(env, artifact.model_file, inputs, tmp_path)
    np.testing.assert_allclose(got, expected, atol=spec.atol)
    assert np.ptp(expected, axis=0).max() > 1e-3  # the inputs really exercise the network


def test_newer_onnx_files_are_refused_by_the_old_runtime(tmp_path):
    """Why jetson-tx2 pins its opset: the default (opset 18) export does not load in onnxruntime 1.10."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)).eval()
    (tmp_path / "work").mkdir()
    modern = replace(get_target("intel-cpu"), extra_formats=())
    artifact = get_exporter("onnx")(model, (1, 1, 8, 8), modern, tmp_path, tmp_path / "work")
    done = subprocess.run([str(side_python("tx2")), "-c", MAIN.format(runner=RUNNERS["tx2"]),
                           str(artifact.model_file), str(tmp_path / "i.npy"), str(tmp_path / "o.npy")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "version" in done.stderr.lower()
