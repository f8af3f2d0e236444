"""Pareto fronts on hand-made points, and the files of the report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.report.pareto import Point, by_device, front, load_results, write_report


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


def test_single_point_and_devices_kept_apart():
    assert front([P("only", 3.0, 0.5)]) == [P("only", 3.0, 0.5)]
    # b (cpu) would dominate a on the vpu, but devices never compete
    pts = [P("b", 1.0, 0.99, "cpu"), P("a", 9.0, 0.97, "vpu", "predicted"), P("c", 5.0, 0.95, "vpu", "predicted"),
           P("d", 6.0, 0.90, "vpu", "predicted")]
    groups = by_device(pts)
    assert [p.label for p in front(groups["cpu"])] == ["b"]
    assert [p.label for p in front(groups["vpu"])] == ["c", "a"]


def test_report_files_written_and_offline(tmp_path):
    pts = [P("dass-tiny", 0.4, 0.91), P("mbv2", 0.9, 0.89), P("dass-tiny", 3.0, 0.91, "adreno640", "predicted"),
           P("resnet", 5.0, 0.93, "adreno640", "predicted")]
    report = write_report(pts, tmp_path)
    for device in ("cpu", "adreno640"):
        for path in report["devices"][device]:
            with open(path, "rb") as f:
                assert len(f.read()) > 1000
    for path in report["grid"]:
        with open(path, "rb") as f:
            head = f.read()
            assert len(head) > 1000
    assert open(report["grid"][0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    page = open(report["html"]).read()
    assert page.count("<svg") == 2 and "dass-tiny" in page and "predicted" in page
    assert "src=\"http" not in page and "href=\"http" not in page  # nothing fetched: works offline
    assert json.loads((tmp_path / "fronts.json").read_text())["cpu"][0]["label"] == "dass-tiny"


def test_cli_reads_bench_and_predict_results(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([
        {"device": "intel-cpu", "model": "runs/a.onnx", "median_ms": 0.5, "test_accuracy": 0.9,
         "latency_source": "local"},
        {"device": "intel-cpu", "model": "runs/b.onnx", "median_ms": 0.7, "test_accuracy": 0.8,
         "latency_source": "local"},
        {"device": "adreno640", "model": "runs/a.pt", "median_ms": 2.0, "test_accuracy": 0.9,
         "latency_source": "predicted"},
        {"device": "adreno640", "model": "runs/no-accuracy.onnx", "median_ms": 1.0},
    ]))
    assert {p.source for p in load_results([results])} == {"measured", "predicted"}
    result = CliRunner().invoke(app, ["pareto", str(results), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    fronts = json.loads(result.output)["fronts"]
    assert [p["label"] for p in fronts["intel-cpu"]] == ["a"]
    assert [p["label"] for p in fronts["adreno640"]] == ["a"]
    assert (tmp_path / "out" / "report.html").is_file()
