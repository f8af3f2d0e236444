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
    assert set(targets["intel-cpu"].extra_formats) == {"openvino", "tflite", "c"}
    assert {name for name, t in targets.items() if "c" in t.extra_formats} == {"intel-cpu", "cortex-a7", "cortex-a76",
                                                                               "jetson-tx2"}
    assert {t.latency_source for t in targets.values()} == {"local", "ssh", "predicted"}


# the generated C of a board target is built and checked here (cross compiler, qemu-user), so it names "c host"
BOARD_RUNTIMES = {"cortex-a7": {"tflite-runtime 2.13.0", "c host"}, "cortex-a76": {"tflite-runtime 2.13.0", "c host"},
                  "adreno640": {"tflite-runtime 2.13.0"}, "jetson-tx2": {"onnxruntime 1.10.0", "c host"},
                  "ncs2": {"openvino 2021.4.2"}, "myriad-vpu": {"openvino 2021.4.2"}}


def test_shipped_targets_name_the_runtime_versions_their_files_must_load_in():
    for target in load_targets().values():
        assert target.loads_in, target.name  # every shipped file says it, none relies on the default
        named = {" ".join(pair) for fmt in (target.format, *target.extra_formats) for pair in target.runtimes_for(fmt)}
        assert named == (BOARD_RUNTIMES[target.name] if target.name in BOARD_RUNTIMES else
                         {f"{runtime} host" for runtime, _ in target.loads_in}), target.name
    assert load_targets()["intel-cpu"].runtimes_for("tflite") == [("litert", "host")]
    assert load_targets()["ncs2"].to_dict()["loads_in"] == {"openvino": "2021.4.2"}


def test_without_loads_in_each_format_runs_in_its_host_runtime(tmp_path):
    write(tmp_path, GOOD.replace('format = "onnx"', 'format = "tflite"').replace('"onnxruntime"', '"tflite-runtime"')
          + 'extra_formats = ["onnx"]\n')
    target = load_targets(tmp_path)["board"]
    assert target.runtimes_for("tflite") == [("tflite-runtime", "host")]
    assert target.runtimes_for("onnx") == [("onnxruntime", "host")]


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
    (lambda t: t + 'loads_in = "onnxruntime 1.10"\n', "loads_in"),
    (lambda t: t + 'loads_in = { litert = "2.3.0" }\n', "loads_in"),
    (lambda t: t + 'loads_in = { onnxruntime = "newest" }\n', "loads_in"),
    (lambda t: t + 'loads_in = { onnxruntime = 1.1 }\n', "loads_in"),
    (lambda t: t + 'extra_formats = ["openvino"]\nloads_in = { onnxruntime = "1.10.0" }\n', "loads_in"),
    (lambda t: t + 'extra_precisions = ["int4"]\n', "extra_precisions"),
    (lambda t: t + 'extra_precisions = ["fp32"]\n', "extra_precisions"),
    (lambda t: t + "max_accuracy_drop = 3\n", "max_accuracy_drop"),
    (lambda t: t + 'min_agreement = "most"\n', "min_agreement"),
])
def test_bad_fields_name_file_and_field(tmp_path, edit, field):
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(InputError, match=rf"{path}.*'{field}'"):
        load_targets(tmp_path)


def test_extra_precisions_and_the_prediction_thresholds_load(tmp_path):
    target = load_targets(write(tmp_path, GOOD + 'extra_precisions = ["int8", "fp16"]\nmin_agreement = 0.99\n').parent)["board"]
    assert target.precisions == ("fp32", "int8", "fp16")
    assert (target.max_accuracy_drop, target.min_agreement) == (0.03, 0.99)


def test_broken_toml_and_missing_folder(tmp_path):
    path = write(tmp_path, "name = \n")
    with pytest.raises(InputError, match=f"{path} cannot be read"):
        load_targets(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_targets(tmp_path / "missing")
