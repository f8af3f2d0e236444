"""Targets are data files: the shipped ones load, and every kind of bad file is refused naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dass_edge.errors import InputError
from dass_edge.targets import DEFAULT_DIR, TARGETS_ENV, Target, get_target, load_targets

SHIPPED = ("intel-cpu", "ncs2", "adreno640", "myriad-vpu", "cortex-a76", "cortex-a7", "jetson-tx2", "cuda-gpu")
GOOD = """name = "board"
device = "a test board"
format = "onnx"
precision = "fp32"
input_layout = "NCHW"
runtime = "onnxruntime"
runtime_device = "CPU"
latency_source = "local"
atol = 1e-4
"""


def write(folder: Path, text: str, name: str = "board") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_shipped_targets_load_with_the_issue_settings():
    targets = load_targets()
    assert set(SHIPPED) <= set(targets)
    assert targets["adreno640"].predictor == "adreno640gpu_tflite21"
    assert targets["cortex-a76"].predictor == "cortexA76cpu_tflite21"
    assert targets["myriad-vpu"].predictor == "myriadvpu_openvino2019r2"
    assert (targets["ncs2"].format, targets["ncs2"].precision, targets["ncs2"].ir_version) == ("openvino", "fp16", 10)
    assert targets["jetson-tx2"].opset <= 15
    assert targets["cuda-gpu"].runtime_device == "cuda"
    assert set(targets["intel-cpu"].extra_formats) == {"openvino", "tflite"}
    assert {t.latency_source for t in targets.values()} == {"local", "ssh", "predicted"}


def test_a_new_file_adds_a_target(tmp_path, monkeypatch):
    write(tmp_path, GOOD)
    monkeypatch.setenv(TARGETS_ENV, str(tmp_path))
    target = get_target("board")
    assert isinstance(target, Target) and target.channel_multiple == 1 and target.predictor is None
    assert load_targets(DEFAULT_DIR).keys() >= set(SHIPPED)  # an explicit folder wins over the variable


def test_unknown_target_lists_known_ones():
    with pytest.raises(InputError, match="unknown target 'nope'; known: .*ncs2"):
        get_target("nope")


@pytest.mark.parametrize("edit, field", [
    (lambda t: t + 'colour = "red"\n', "colour"),
    (lambda t: t.replace('runtime_device = "CPU"\n', ""), "runtime_device"),
    (lambda t: t.replace('"fp32"', '"int4"'), "precision"),
    (lambda t: t.replace('format = "onnx"', 'format = "tflite"'), "runtime"),
    (lambda t: t.replace("atol = 1e-4", 'atol = "small"'), "atol"),
    (lambda t: t.replace("atol = 1e-4", "atol = -1.0"), "atol"),
    (lambda t: t.replace('"local"', '"predicted"'), "predictor"),
    (lambda t: t + "opset = true\n", "opset"),
    (lambda t: t + 'extra_formats = ["onnx"]\n', "extra_formats"),
    (lambda t: t.replace('name = "board"', 'name = "other"'), "name"),
])
def test_bad_fields_name_file_and_field(tmp_path, edit, field):
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(InputError, match=rf"{path}.*'{field}'"):
        load_targets(tmp_path)


def test_broken_toml_and_missing_folder(tmp_path):
    path = write(tmp_path, "name = \n")
    with pytest.raises(InputError, match=f"{path} cannot be read"):
        load_targets(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_targets(tmp_path / "missing")
