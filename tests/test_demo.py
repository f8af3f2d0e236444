"""`dass-edge demo --preset smoke` runs the whole pipeline end to end and names its output folder."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from dass_edge import checkpoint
from dass_edge.cli.app import app
from dass_edge.data.datasets import load_dataset
from dass_edge.search.algorithm import evaluate
from dass_edge.search.presets import PRESETS
from dass_edge.targets import DEFAULT_DIR, TARGETS_ENV


def test_demo_smoke_end_to_end(tmp_path):
    """Two of the targets: intel-cpu (timed here: ONNX, OpenVINO, TFLite and the C library) and cortex-a7 (its
    board's tflite-runtime, and the C program for 32-bit Arm under qemu-arm); the others export alike."""
    targets = tmp_path / "targets"
    targets.mkdir()
    for name in ("intel-cpu", "cortex-a7"):
        shutil.copy(DEFAULT_DIR / f"{name}.toml", targets)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--preset", "smoke", "--out", str(out), "--json"],
                                env={TARGETS_ENV: str(targets)})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    labels = [row["label"] for row in summary["models"]]
    assert labels == ["dass-custom", "sparse-darts-custom", "sparse-mobilenet-v2", "sparse-resnet-18"]
    test = load_dataset("mnist5k").subset(0, PRESETS["smoke"].test_samples)
    for row in summary["models"]:
        ckpt = checkpoint.load(row["checkpoint"])
        # the reported accuracy is what an independent evaluation of the checkpoint on the test split gives
        assert row["test_accuracy"] == pytest.approx(evaluate(ckpt.build(), test.x_test, test.y_test), abs=1e-9)
        assert row["nonzero_params"] <= 0.02 * row["params"]
        assert row["input_dependent"] == ckpt.health["input_dependent"]
        measured = {d: ms for d, ms in row["latency_ms"].items() if d.startswith("intel-cpu/") and "predicted" not in d}
        refusals = [f for f in summary["failures"] if f["what"].startswith(f"{row['label']} -> ")]
        if row["input_dependent"]:
            assert measured and all(ms > 0 for ms in measured.values()), row
            # smoke networks answer near chance, so an int8 file may be refused on its predictions; nothing else
            assert all(f["what"].endswith("-int8") and "predicts differently" in f["error"] for f in refusals), refusals
        else:  # a dead network is reported, never exported or timed
            assert not measured and refusals
            assert all("does not depend on its input" in f["error"] for f in refusals)
        assert row["latency_ms"].get("intel-cpu/predicted", 0) > 0  # own calibrated predictor
    alive = {row["label"] for row in summary["models"] if row["input_dependent"]}
    assert alive, summary["models"]  # smoke training is too short to learn, but some networks stay alive
    exported = {(e["model"], e["target"]) for e in summary["exports"]}
    assert {m for m, _ in exported} == alive
    assert not [f for f in summary["failures"] if f["stage"] != "export"], summary["failures"]
    if "dass-custom" in alive:  # its table: every target, format and precision, refusals as rows
        table = {(r["target"], r["format"], r["precision"]): r for r in summary["export_table"]}
        assert {k for k in table if k[2] == "fp32"} == {("intel-cpu", f, "fp32") for f in ("onnx", "openvino", "tflite", "c")} | {
            ("cortex-a7", f, "fp32") for f in ("tflite", "c")}
        assert {(t, p) for t, _, p in table} == {(t, p) for t in ("intel-cpu", "cortex-a7") for p in ("fp32", "int8")}
        for (target, _, _), r in table.items():
            assert r["status"] == "ok" or r["status"].startswith("refused: ")
            assert (r["latency_ms"] is not None) == (target == "intel-cpu" and r["status"] == "ok")
    for name in ("report.html", "grid.png", "grid.svg"):
        assert (out / "report" / name).stat().st_size > 0
    assert "[demo] report" in result.stderr
