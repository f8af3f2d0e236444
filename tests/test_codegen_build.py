"""Building generated C: the stand-alone program (both modes, its JSON line, its errors), ARM builds run
under qemu-user against PyTorch, the target files' C fields, and a missing compiler's one-line error."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dass_edge.codegen import forms
from dass_edge.codegen.build import Toolchain, build, run_program
from dass_edge.codegen.generate import generate, save
from dass_edge.errors import InputError, MissingToolError
from dass_edge.export import get_exporter
from dass_edge.targets import get_target, load_target_file

SHAPE = (1, 3, 10, 10)
AGENT_KEYS = {"agent_version", "model", "runtime", "runtime_version", "runtime_device", "threads", "input_shape",
              "env", "warmup", "first_ns", "rounds_ns", "timed_region"}


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 4)).eval()


def built(folder: Path, toolchain: Toolchain, **kinds):
    model = tiny()
    save(generate(model, SHAPE, forms.RULE, toolchain), folder)
    return model, build(folder, toolchain, strict=True, **kinds)


@pytest.fixture(scope="module")
def host_program(tmp_path_factory):
    return built(tmp_path_factory.mktemp("host"), Toolchain(), program="model-bench")


def test_program_timing_prints_the_agents_json_line(host_program):
    _, result = host_program
    done = subprocess.run([str(result.program), "--warmup", "2", "--runs", "5", "--min-seconds", "0",
                           "--rounds", "3"], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert AGENT_KEYS <= set(report)
    assert report["runtime"] == "c" and report["threads"] == 1 and report["input_shape"] == list(SHAPE)
    assert report["runtime_version"].startswith(result.version) and report["timed_region"] == "host-to-host"
    assert {"machine", "os", "hostname", "cpu", "cores"} <= set(report["env"])
    assert len(report["rounds_ns"]) == 3 and all(len(r) >= 5 and min(r) > 0 for r in report["rounds_ns"])


@pytest.mark.parametrize("arguments", [["--runs"], ["--runs", "many"], ["--bogus", "1"], ["--inputs", "x.f32"]])
def test_program_bad_arguments(host_program, arguments):
    _, result = host_program
    done = subprocess.run([str(result.program), *arguments], capture_output=True, text=True)
    assert done.returncode == 1 and "error" in json.loads(done.stdout)


def test_program_runs_stacked_inputs(host_program):
    model, result = host_program
    x = np.random.default_rng(0).standard_normal((3, *SHAPE[1:])).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_program(result.program, x, Toolchain()), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("target", ["cortex-a7", "jetson-tx2"])  # armhf (32-bit) and aarch64
def test_arm_build_under_qemu(target, tmp_path):
    spec = get_target(target)
    toolchain = Toolchain(spec.c_compiler, spec.c_flags)
    model, result = built(tmp_path, toolchain, program="model-bench")
    header = subprocess.run(["file", str(result.program)], capture_output=True, text=True).stdout
    assert ("ARM," if target == "cortex-a7" else "ARM aarch64") in header
    x = np.random.default_rng(1).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_program(result.program, x, toolchain), expected, atol=1e-4, rtol=1e-4)


def test_missing_compiler_is_one_line_and_exit_code_3(tmp_path):
    target = replace(get_target("cortex-a7"), format="c", runtime="c", c_compiler="no-such-gcc")
    with pytest.raises(MissingToolError) as caught:
        get_exporter("c")(tiny(), SHAPE, target, tmp_path, tmp_path)
    assert str(caught.value) == "no-such-gcc is not installed; install it with: apt-get install no-such-gcc"
    assert caught.value.exit_code == 3
    known = Toolchain("aarch64-linux-gnu-gcc").cross.package
    assert known == "gcc-aarch64-linux-gnu"


def test_target_files_name_the_boards_compilers():
    expected = {"intel-cpu": "gcc", "cortex-a7": "arm-linux-gnueabihf-gcc", "cortex-a76": "aarch64-linux-gnu-gcc",
                "jetson-tx2": "aarch64-linux-gnu-gcc"}
    for name, compiler in expected.items():
        target = get_target(name)
        assert target.c_compiler == compiler and target.c_flags
    assert "-mcpu=cortex-a57" in get_target("jetson-tx2").c_flags
    assert "-mfpu=neon-vfpv4" in get_target("cortex-a7").c_flags


@pytest.mark.parametrize("line,field", [('c_flags = ["-O2 -g"]', "c_flags"), ('c_flags = ["march=x"]', "c_flags"),
                                        ('c_compiler = "/usr/bin/gcc"', "c_compiler")])
def test_target_c_fields_are_validated(tmp_path, line, field):
    source = (Path(__file__).resolve().parent.parent / "targets" / "intel-cpu.toml").read_text()
    kept = [row for row in source.splitlines() if not row.startswith(("c_flags", "c_compiler"))]
    path = tmp_path / "intel-cpu.toml"
    path.write_text("\n".join(kept + [line]) + "\n")
    with pytest.raises(InputError, match=field):
        load_target_file(path)
