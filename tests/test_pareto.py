"""Pareto fronts on hand-made points; results read from real bench/predict JSON, manifests and checkpoints."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dass_edge import checkpoint
from dass_edge.cli.app import app
from dass_edge.report.interactive import hover_text
from dass_edge.report.pareto import by_panel, front, fronts_by_source
from dass_edge.report.points import Point, load_results
from dass_edge.search.models import ModelSpec, build_model


def P(label, ms, acc, device="cpu", source="measured"):  # noqa: N802
    return Point(label, device, ms, acc, source)


def test_front_drops_dominated_points():
    pts = [P("a", 1.0, 0.80), P("b", 2.0, 0.90), P("c", 2.5, 0.85), P("d", 3.0, 0.95), P("e", 0.5, 0.70)]
    assert [p.label for p in front(pts)] == ["e", "a", "b", "d"]


def test_ties_and_duplicates():
    # same latency, lower accuracy -> dominated; same accuracy, slower -> dominated
    pts = [P("a", 1.0, 0.9), P("b", 1.0, 0.8), P("c", 2.0, 0.9)]
    assert [p.label for p in front(pts)] == ["a"]
    # two models at identical coordinates are both kept; a repeated entry counts once
    twins = [P("x", 1.0, 0.9), P("y", 1.0, 0.9), P("x", 1.0, 0.9)]
    assert [p.label for p in front(twins)] == ["x", "y"]


def test_panels_and_sources_kept_apart():
    assert front([P("only", 3.0, 0.5)]) == [P("only", 3.0, 0.5)]
    # b (cpu) would dominate a on the vpu, but devices never compete
    pts = [P("b", 1.0, 0.99, "cpu"), P("a", 9.0, 0.97, "vpu", "predicted"), P("c", 5.0, 0.95, "vpu", "predicted"),
           P("d", 6.0, 0.90, "vpu", "predicted"), P("e", 0.1, 0.99, "vpu", "measured")]
    groups = by_panel(pts)
    assert [p.label for p in front(groups["cpu"])] == ["b"]
    # e (measured) would dominate every prediction: a timing and an estimate never compete
    vpu = fronts_by_source(groups["vpu"])
    assert [p.label for p in vpu["predicted"]] == ["c", "a"] and [p.label for p in vpu["measured"]] == ["e"]


def test_demo_devices_and_bench_devices_land_in_the_same_panel(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(json.dumps(e) for e in [
        {"device": "intel-cpu/onnxruntime", "runtime": "onnxruntime", "median_ms": 1.0, "test_accuracy": 0.5,
         "label": "from-demo", "latency_source": "local"},
        {"device": "intel-cpu", "runtime": "onnxruntime", "median_ms": 2.0, "test_accuracy": 0.6,
         "label": "from-bench", "latency_source": "local"},
        {"device": "intel-cpu/predicted", "runtime": "onnxruntime", "median_ms": 1.5, "test_accuracy": 0.5,
         "label": "predicted", "latency_source": "predicted"},
    ]))
    points = load_results([results]).points
    assert {p.panel for p in points} == {"intel-cpu/onnxruntime"}
    assert [p.source for p in points] == ["measured", "measured", "predicted"]


def test_details_come_from_the_manifest_and_the_checkpoint(tmp_path):
    """A timing names its file; the export manifest beside it and the checkpoint it names give the rest."""
    spec = ModelSpec("darts-v2", num_classes=10, in_channels=1, cells=2, channels=4)
    ckpt_path = checkpoint.save(checkpoint.from_model(
        build_model(spec), spec, 0.9, "finetune", data={"name": "mnist5k"}, test_accuracy=0.42,
        health={"input_dependent": False}), tmp_path / "net.pt")
    folder = tmp_path / "exported" / "net" / "intel-cpu"
    folder.mkdir(parents=True)
    (folder / "model.xml").write_bytes(b"x" * 100)
    (folder / "model.bin").write_bytes(b"x" * 23)
    (folder / "manifest.json").write_text(json.dumps({
        "model": "net", "checkpoint": str(ckpt_path), "files": ["model.xml", "model.bin"],
        "size_bytes": {"model.xml": 1000, "model.bin": 234}, "nonzero_params": 77, "sparsity": 0.9,
        "compaction": {"channel_multiple": 1, "macs_after": 12345}}))
    results = tmp_path / "results.json"
    results.write_text(json.dumps([
        {"device": "intel-cpu", "model": str(folder / "model.xml"), "runtime": "openvino", "runtime_version": "9.9",
         "latency_source": "local", "median_ms": 1.0, "p90_ms": 1.2, "min_ms": 0.8, "count": 50, "cpu": "EPYC"},
        {"device": "intel-cpu", "model": str(ckpt_path), "runtime": "onnxruntime", "latency_source": "predicted",
         "median_ms": 0.9, "predictor": "intel-cpu", "coverage_macs": 1.0},
        # adreno640 compacts to multiples of 4 channels: the intel-cpu export's MACs are not its MACs
        {"device": "adreno640", "model": str(ckpt_path), "runtime": "litert", "latency_source": "predicted",
         "median_ms": 2.0},
    ]))
    measured, predicted, other_target = load_results([results]).points
    assert measured.label == "net" and measured.accuracy == 0.42  # from the manifest's model, the checkpoint
    d = measured.details
    assert (d.arch, d.variant, d.dataset, d.nonzero_params, d.macs) == ("darts-v2", spec.variant, "mnist5k", 77, 12345)
    assert d.size_bytes == 1234  # the IR is its .xml and its .bin, as the manifest counted them
    assert (d.spread_low_name, d.spread_low_ms, d.p90_ms) == ("min", 0.8, 1.2)
    assert d.dead  # the checkpoint's health says its output ignores its input
    assert "50 runs" in d.method and d.runtime_version == "9.9"
    # the prediction names the checkpoint only: no file, MACs borrowed from the export of the same checkpoint
    assert predicted.details.size_bytes is None and predicted.details.macs == 12345
    assert other_target.details.macs is None
    counted = checkpoint.summary(checkpoint.load(ckpt_path), ckpt_path)["nonzero_params"]
    assert predicted.details.nonzero_params == counted  # no manifest: counted from the checkpoint
    assert "intel-cpu predictor, 100% of MACs covered" in predicted.details.method
    # what the hover says of them
    hover = hover_text(measured, on_front=True)
    for fact in ("<b>net</b> (dead: output ignores input)", "non-zero weights 77", "MACs after compaction 12,345",
                 "file size 1.2 KiB", "median 1 ms (min 0.8 ms, p90 1.2 ms)", "runtime openvino 9.9",
                 "test accuracy 42.0% on mnist5k", "on the Pareto front"):
        assert fact in hover, (fact, hover)
    assert "file size none (predicted from the checkpoint)" in hover_text(predicted, on_front=False)


def test_cli_reads_bench_and_predict_results(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([
        {"device": "intel-cpu", "model": "runs/a.onnx", "median_ms": 0.5, "test_accuracy": 0.9,
         "latency_source": "local", "runtime": "onnxruntime"},
        {"device": "intel-cpu", "model": "runs/b.onnx", "median_ms": 0.7, "test_accuracy": 0.8,
         "latency_source": "local", "runtime": "onnxruntime"},
        {"device": "adreno640", "model": "runs/a.pt", "median_ms": 2.0, "test_accuracy": 0.9,
         "latency_source": "predicted", "runtime": "litert"},
        {"device": "adreno640", "model": "runs/no-accuracy.onnx", "median_ms": 1.0},
    ]))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["pareto", str(results), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [p["label"] for p in report["fronts"]["intel-cpu/onnxruntime"]["measured"]] == ["a"]
    assert [p["label"] for p in report["fronts"]["adreno640/litert"]["predicted"]] == ["a"]
    assert report["left_out"] == {"emulated": 0, "incomplete": 1}
    assert json.loads((out / "fronts.json").read_text()) == report["fronts"]
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "grid.png", "grid.svg", "fronts.json", "comparisons.json",
            "pareto-intel-cpu_onnxruntime.png", "pareto-adreno640_litert.svg"} <= names
    assert not [n for n in names if n.startswith(".")]  # the temporary folder is gone


def test_cli_errors_are_one_line(tmp_path):
    missing = CliRunner().invoke(app, ["pareto", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    broken = CliRunner().invoke(app, ["pareto", str(bad), "--out", str(tmp_path / "out")])
    assert broken.exit_code == 2 and "neither JSON nor JSON lines" in broken.output
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[1, 2]")
    wrong = CliRunner().invoke(app, ["pareto", str(numbers), "--out", str(tmp_path / "out")])
    assert wrong.exit_code == 2 and "holds no result objects" in wrong.output
    percent = tmp_path / "percent.json"
    percent.write_text(json.dumps({"device": "x", "model": "m.onnx", "median_ms": 1.0, "test_accuracy": 91}))
    out_of_range = CliRunner().invoke(app, ["pareto", str(percent), "--out", str(tmp_path / "out")])
    assert out_of_range.exit_code == 2 and "test accuracy 91.0; expected a fraction in 0..1" in out_of_range.output
    # a field of the wrong type is not shown rather than crashing the hover's formatting
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"device": "x", "median_ms": 1.0, "test_accuracy": 0.9, "nonzero_params": "many",
                                "compaction": [1], "runtime_version": 3}))
    (point,) = load_results([typo]).points
    assert (point.details.nonzero_params, point.details.macs, point.details.runtime_version) == (None, None, None)
    only_emulated = tmp_path / "emulated.json"
    only_emulated.write_text(json.dumps({"device": "x", "median_ms": 1.0, "test_accuracy": 0.9, "emulated": True}))
    refused = CliRunner().invoke(app, ["pareto", str(only_emulated), "--out", str(tmp_path / "out")])
    assert refused.exit_code == 2 and "1 emulated timings are never plotted" in refused.output
    assert not (tmp_path / "out").exists()
