"""The one runner (dass_edge/runtimes/runner.py), run by path as it runs everywhere: the same checks for every
runtime it knows, in each place it runs: the host's Python, the side environments that hold the boards'
runtime versions, and the emulated aarch64 board under qemu-user. Each place runs a copy of the single file
with its own interpreter, as the bench agent on a board and the export's parity check do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import side_python
from dass_edge.bench import emulate
from dass_edge.export import get_exporter
from dass_edge.runtimes import runner
from dass_edge.runtimes.process import ProcessSession
from dass_edge.targets import get_target

SHAPE = (1, 3, 16, 16)
# (place, runtime, target whose export that runtime loads there)
CASES = [("host", "onnxruntime", "jetson-tx2"), ("host", "openvino", "ncs2"), ("host", "litert", "cortex-a7"),
         ("host", "torch", "cuda-gpu"),
         ("tx2", "onnxruntime", "jetson-tx2"), ("ov2021", "openvino", "ncs2"), ("a7", "tflite-runtime", "cortex-a7"),
         ("emulated", "onnxruntime", "jetson-tx2"), ("emulated", "tflite-runtime", "cortex-a7")]


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),
                         nn.AvgPool2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """{target: its main file} of the tiny network, written by the target's own exporter."""
    out, made = tmp_path_factory.mktemp("runner"), {}
    for target in sorted({t for _, _, t in CASES}):
        spec = replace(get_target(target), extra_formats=())
        folder = out / target
        (folder / "work").mkdir(parents=True)
        made[target] = get_exporter(spec.format)(tiny(), SHAPE, spec, folder, folder / "work").model_file
    return made


def interpreter(place: str, tmp_path: Path) -> tuple[str, ...]:
    """The command that starts the place's Python."""
    if place == "host":
        return (sys.executable, "-I")
    if place == "emulated":
        if emulate.read_info("jetson-tx2") is None:
            pytest.skip("emulated board jetson-tx2 not built: dass-edge boards emulate jetson-tx2 (setup.sh does)")
        return (str(emulate.board_folder("jetson-tx2") / "python"),)
    return (str(side_python(place)), "-I")


@pytest.mark.parametrize("place, runtime, target", CASES)
def test_run_gives_pytorchs_outputs(files, tmp_path, place, runtime, target):
    inputs = np.random.default_rng(1).standard_normal((3, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        expected = np.stack([tiny()(torch.from_numpy(x)).numpy() for x in inputs])
    session = ProcessSession(runtime, "?", interpreter(place, tmp_path), files[target], "NCHW", place, 1800)
    got = np.stack(session.run_all(list(inputs)))
    scale = max(1.0, float(np.abs(expected).max()))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= get_target(target).atol * scale
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # the outputs move with the input: a real comparison


@pytest.mark.parametrize("place, runtime, target", CASES)
def test_time_reports_one_json_line(files, tmp_path, place, runtime, target):
    copy = tmp_path / "runner.py"  # a copy alone in a folder, as the bench sends it to a board
    shutil.copy(runner.__file__, copy)
    command = [*interpreter(place, tmp_path), str(copy), "time", str(files[target]), "--runtime", runtime,
               "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--rounds", "2", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 1, done.stdout + done.stderr
    result = json.loads(lines[0])
    assert result["runtime"] == runtime and result["input_shape"] == list(SHAPE)
    assert [len(r) for r in result["rounds_ns"]] == [3, 3] and result["first_ns"] > 0
    assert result["env"]["machine"] == ("aarch64" if place == "emulated" else "x86_64")


def test_errors_are_one_json_line(files, tmp_path):
    done = subprocess.run([sys.executable, "-I", runner.__file__, "time", str(tmp_path / "gone.onnx")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "does not exist" in json.loads(done.stdout)["error"]
    done = subprocess.run([str(side_python("a7")), "-I", runner.__file__, "time", str(files["jetson-tx2"])],
                          capture_output=True, text=True, timeout=60)  # the A7 has no ONNX Runtime
    assert done.returncode == 1 and "not installed" in json.loads(done.stdout)["error"]
