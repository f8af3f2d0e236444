"""The board exports load and match in the old runtimes the boards really have (side environments):
jetson-tx2 in onnxruntime 1.10 on Python 3.6, ncs2 in OpenVINO 2021.4.2 (the last with the Myriad plugin,
here on its CPU plugin), cortex-a7 in tflite-runtime 2.13 with NumPy 1.x; and the export's own parity check
runs there and says so in the manifest, or says "validated on host runtime only" where it could not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import side_python, without_c
from dass_edge import checkpoint, runtimes
from dass_edge.errors import ParityError
from dass_edge.export import get_exporter
from dass_edge.export.pipeline import export_checkpoint
from dass_edge.export.side_envs import SIDEENVS_ENV, find_python, side_session
from dass_edge.export.validate import check_inputs
from dass_edge.search import sparse
from dass_edge.targets import Target, get_target

# (target, side env, arch). Alive networks only (conftest.live_checkpoint: the smoke MobileNet-v2 answers
# every input alike, so it gets fresh BatchNorm statistics): matching a constant output would prove nothing.
CASES = [(target, env, arch)
         for target, env in (("jetson-tx2", "tx2"), ("ncs2", "ov2021"))
         for arch in ("dass", "darts-v2", "mobilenet-v2")]
CASES.append(("cortex-a7", "a7", "dass"))  # dass has every depthwise variant (dilated, strided)


def run_side(env: str, target: Target, model_file, inputs: list[np.ndarray]) -> np.ndarray:
    """Outputs of ``model_file`` in side environment ``env``, which must hold the target's board runtime."""
    python = side_python(env)
    [(runtime, version)] = target.runtimes_for(target.format)
    assert find_python(runtime, version) == python, f"{env} does not hold {runtime} {version}"
    return np.concatenate(side_session(runtime, version, python, model_file, "NCHW").run_all(inputs))


@pytest.mark.parametrize("target, env, arch", CASES)
def test_board_export_runs_in_the_boards_runtime(live_checkpoint, tmp_path, target, env, arch):
    spec = get_target(target)
    ckpt = checkpoint.load(live_checkpoint(arch))
    model = sparse.bake(ckpt.build()).eval()
    (tmp_path / "work").mkdir()
    artifact = get_exporter(spec.format)(model, ckpt.input_shape, spec, tmp_path, tmp_path / "work")
    inputs = check_inputs(ckpt.input_shape, None)
    with torch.no_grad():
        expected = model(torch.from_numpy(np.concatenate(inputs))).numpy()
    got = run_side(env, spec, artifact.model_file, inputs)
    np.testing.assert_allclose(got, expected, atol=spec.atol)
    assert np.ptp(expected, axis=0).max() > 1e-3  # the inputs really exercise the network


def test_newer_onnx_files_are_refused_by_the_old_runtime(tmp_path):
    """Why jetson-tx2 pins its opset: the default (opset 18) export does not load in onnxruntime 1.10."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)).eval()
    (tmp_path / "work").mkdir()
    modern = replace(get_target("intel-cpu"), extra_formats=())
    artifact = get_exporter("onnx")(model, (1, 1, 8, 8), modern, tmp_path, tmp_path / "work")
    with pytest.raises(ParityError, match="does not run in onnxruntime 1.10.0 .*(side environment tx2).*version"):
        run_side("tx2", get_target("jetson-tx2"), artifact.model_file, [np.zeros((1, 1, 8, 8), np.float32)])


@pytest.mark.parametrize("target, env", [("jetson-tx2", "tx2"), ("ncs2", "ov2021"), ("cortex-a7", "a7")])
def test_the_export_checks_parity_in_the_board_runtime_and_says_so(tiny_checkpoints, tmp_path, target, env):
    side_python(env)
    manifest = export_checkpoint(tiny_checkpoints["alive"], without_c(target), tmp_path).to_dict()
    [(runtime, version)] = get_target(target).runtimes_for(get_target(target).format)
    [check] = manifest["checks"]
    assert (check["runtime"], check["runtime_version"], check["required_runtime"]) == (runtime, version,
                                                                                      f"{runtime} {version}")
    assert check["ran_in"] == f"side environment {env}" and check["verdict"] == "pass" and check["passed"]
    assert manifest["validation"] == "pass" and manifest["tools"][runtime] == version
    assert check["max_abs_diff"] <= manifest["atol"] and check["reference_spread"] > 1e-3


def test_without_the_board_runtime_the_check_is_not_a_pass(tiny_checkpoints, tmp_path, monkeypatch):
    """No side environment here: the file is still checked, in the host's runtime, and the manifest says
    "validated on host runtime only" rather than "pass"."""
    monkeypatch.setenv(SIDEENVS_ENV, str(tmp_path / "no-side-environments"))
    manifest = export_checkpoint(tiny_checkpoints["alive"], without_c("jetson-tx2"), tmp_path).to_dict()
    [check] = manifest["checks"]
    assert (check["runtime"], check["runtime_version"]) == ("onnxruntime", runtimes.available()["onnxruntime"])
    assert check["required_runtime"] == "onnxruntime 1.10.0" and check["ran_in"] == "host"
    assert check["verdict"] == manifest["validation"] == "validated on host runtime only"
    assert check["passed"] is False and manifest["dead"] is False
    assert check["max_abs_diff"] <= manifest["atol"]
