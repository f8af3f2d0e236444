"""INT8 exports and validation by prediction, on a network that learned and real quantizers and runtimes.

One `export --target all --precision all` run (intel-cpu and cortex-a7 only) feeds most tests: ONNX
Runtime's QDQ, NNCF and the LiteRT quantizer's full-integer file each read back from disk with their
zero points, the board's tflite-runtime 2.13 (side environment) and the emulated aarch64 board running
the int8 TFLite file, and the table the command prints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dass_edge.bench import emulate
from dass_edge.cli.app import app
from dass_edge.errors import DassEdgeError, InputError, ParityError
from dass_edge.export.pipeline import export_checkpoint
from dass_edge.export.quantize import int8_weights
from dass_edge.targets import DEFAULT_DIR, TARGETS_ENV

TARGETS = ("intel-cpu", "cortex-a7")


@pytest.fixture(scope="module")
def targets_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("targets")
    for name in TARGETS:
        shutil.copy(DEFAULT_DIR / f"{name}.toml", folder)
    return folder


@pytest.fixture(scope="module")
def table_run(learned_checkpoint, targets_dir, tmp_path_factory):
    """(rows of the JSON table, output folder, checkpoint) of one run over both targets and precisions."""
    out = tmp_path_factory.mktemp("int8-exports")
    path = learned_checkpoint
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TARGETS_ENV, str(targets_dir))
        result = CliRunner().invoke(app, ["export", str(path), "--target", "all", "--precision", "all",
                                          "--out", str(out), "--json"])
    assert result.exit_code in (0, 4), result.output
    return json.loads(result.stdout), out, path


def _row(rows, target, fmt, precision):
    (row,) = [r for r in rows if (r["target"], r["format"], r["precision"]) == (target, fmt, precision)]
    return row


def _manifest(out: Path, path: Path, folder: str) -> dict:
    return json.loads((out / path.stem / folder / "manifest.json").read_text())


def test_the_table_has_a_row_per_target_format_and_precision(table_run):
    rows, _, _ = table_run
    expected = {("intel-cpu", f, p) for f in ("onnx", "openvino", "tflite", "c") for p in ("fp32", "int8")}
    expected |= {("cortex-a7", f, p) for f in ("tflite", "c") for p in ("fp32", "int8")}
    assert {(r["target"], r["format"], r["precision"]) for r in rows} == expected
    for row in rows:
        if row["status"].startswith("refused"):
            continue  # a refusal is one line, nothing else
        assert row["size_bytes"] > 0 and row["nonzero_weights"] > 0
        assert 0 <= row["test_accuracy"] <= 1 and 0 <= row["agreement"] <= 1
        # intel-cpu is this machine: timed in the same interleaved run; a board's file is not timed here
        assert (row["latency_ms"] is not None and row["latency_ms"] > 0) == (row["target"] == "intel-cpu")


def test_fp32_rows_pass_on_logits_and_agree_with_pytorch(table_run):
    rows, out, path = table_run
    for target in TARGETS:
        manifest = _manifest(out, path, target)
        assert manifest["precision"] == "fp32" and manifest["calibration"] is None
        assert {c["rule"] for c in manifest["checks"]} == {"logits"}
        for check in manifest["checks"]:
            assert check["top1_agreement"] == 1.0  # fp32: the same answers as PyTorch on the whole split
            assert check["test_accuracy"] == pytest.approx(check["pytorch_accuracy"])
            assert check["test_images"] == 256  # the checkpoint's test split


def test_int8_files_are_quantized_with_zeros_kept_and_judged_on_predictions(table_run):
    rows, out, path = table_run
    fp32 = _manifest(out, path, "intel-cpu")
    manifest = _manifest(out, path, "intel-cpu-int8")
    assert manifest["precision"] == "int8"
    assert manifest["calibration"] == {"data_set": "mnist5k", "split": "train", "images": 300, "seed": 0}
    for check in manifest["checks"]:
        assert check["rule"] == "predictions" and check["test_images"] == 256
        assert check["accuracy_drop"] == pytest.approx(check["pytorch_accuracy"] - check["test_accuracy"])
    for fmt in ("onnx", "openvino", "tflite"):
        file = out / path.stem / "intel-cpu-int8" / manifest["model_files"][fmt]
        found = int8_weights(file, fmt)  # re-read from disk; raises on a non-zero zero point
        assert found.nonzero == manifest["weights"][fmt]["nonzero_weights"]
        # symmetric int8 cannot create a non-zero where the float file of the same form had a zero
        assert 0 < found.nonzero <= fp32["weights"][fmt]["nonzero_weights"] < found.values
        assert _row(rows, "intel-cpu", fmt, "int8")["nonzero_weights"] == found.nonzero
    assert manifest["forms"]["onnx"]["chosen"].startswith("compact/")  # never the masked form (quantize.py)


def test_the_full_integer_tflite_loads_in_tflite_runtime_2_13_and_on_the_emulated_board(table_run):
    rows, out, path = table_run
    manifest = _manifest(out, path, "cortex-a7-int8")
    file = out / path.stem / "cortex-a7-int8" / manifest["model_files"]["tflite"]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(file))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8  # full integer: input and output too
    output = interpreter.get_output_details()[0]
    assert output["dtype"] == np.int8
    step = output["quantization"][0]
    (check,) = [c for c in manifest["checks"] if c["file"] == file.name]
    assert (check["runtime"], check["runtime_version"], check["verdict"]) == ("tflite-runtime", "2.13.0", "pass")
    if emulate.read_info("jetson-tx2") is None:
        pytest.skip("emulated aarch64 board not built (setup.sh builds it)")
    from dass_edge import runtimes

    shape = tuple(manifest["input_shape"])
    inputs = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(3)]
    board = emulate.run_model("jetson-tx2", file, "tflite-runtime", inputs)
    host = runtimes.load(file, "litert", threads=1)
    for x, got in zip(inputs, board):  # tflite-runtime 2.13's int8 kernels round like LiteRT's, to one step
        expected = host.run(x)
        assert np.max(np.abs(np.asarray(got).reshape(expected.shape) - expected)) <= step * 1.001


def test_fp16_passes_on_predictions_where_fp32_logits_would_not(learned_checkpoint, tmp_path, monkeypatch):
    """An atol no float file can meet: fp32 fails on it, fp16 is judged on its answers instead."""
    folder = tmp_path / "targets"
    folder.mkdir()
    base = (DEFAULT_DIR / "cortex-a76.toml").read_text()
    for precision in ("fp32", "fp16"):
        name = f"tight-{precision}"
        text = (base.replace('name = "cortex-a76"', f'name = "{name}"')
                .replace('precision = "fp32"', f'precision = "{precision}"')
                .replace("atol = 1e-4", "atol = 1e-12").replace('extra_formats = ["c"]', "extra_formats = []")
                .replace('extra_precisions = ["int8"]', "extra_precisions = []")
                .replace('tflite-runtime = "2.13.0", c = "host"', 'tflite-runtime = "2.13.0"'))
        (folder / f"{name}.toml").write_text(text)
    monkeypatch.setenv(TARGETS_ENV, str(folder))
    path = learned_checkpoint
    with pytest.raises(ParityError, match="tolerance"):
        export_checkpoint(path, "tight-fp32", tmp_path / "out")
    manifest = export_checkpoint(path, "tight-fp16", tmp_path / "out")
    (check,) = manifest.checks
    assert check["rule"] == "predictions" and check["max_abs_diff"] > 1e-12 and check["passed"]
    assert check["top1_agreement"] >= 0.85
    shown = CliRunner().invoke(app, ["export", str(path), "--target", "tight-fp16", "--out", str(tmp_path / "cli")])
    assert shown.exit_code == 0, shown.output  # says what it passed on: its answers, not a logit bound it missed
    assert "test accuracy" in shown.stdout and "agreement" in shown.stdout and "x output scale" not in shown.stdout


def test_a_precision_the_target_does_not_name_is_refused(learned_checkpoint, tmp_path):
    with pytest.raises(InputError, match="ncs2 runs fp16, not int8"):
        export_checkpoint(learned_checkpoint, "ncs2", tmp_path, precision="int8")
    assert not any(tmp_path.iterdir())


def test_weights_with_a_zero_point_are_refused(tmp_path):
    """ONNX Runtime's asymmetric weights would turn a pruned 0 into a non-zero int8 value: refused."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from dass_edge.export.onnx import write_onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 3)).eval()
    with torch.no_grad():
        net[0].weight[:, :, 0] = 0.0  # pruned
        net[0].weight.abs_()  # all of one sign: an asymmetric range moves 0 away from the zero point
    write_onnx(net, (1, 1, 8, 8), tmp_path / "f.onnx")

    class Images(CalibrationDataReader):
        def __init__(self):
            self.left = iter([np.random.default_rng(i).standard_normal((1, 1, 8, 8)).astype(np.float32)
                              for i in range(4)])

        def get_next(self):
            x = next(self.left, None)
            return None if x is None else {"input": x}

    for symmetric, name in ((True, "sym.onnx"), (False, "asym.onnx")):
        quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / name), Images(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"WeightSymmetric": symmetric})
    assert int8_weights(tmp_path / "sym.onnx", "onnx").nonzero > 0
    with pytest.raises(DassEdgeError, match="non-zero zero point"):
        int8_weights(tmp_path / "asym.onnx", "onnx")
