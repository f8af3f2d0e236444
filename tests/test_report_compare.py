"""The paper's comparisons on a small hand-made results set whose answer is worked out by hand below."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.report.compare import compare
from dass_edge.report.points import load_results


def result(label, arch, ms, acc, device="board/onnxruntime", source="local", **extra):
    return {"label": label, "arch": arch, "device": device, "runtime": device.split("/")[1], "median_ms": ms,
            "test_accuracy": acc, "latency_source": source, **extra}


RESULTS = [
    # board/onnxruntime, measured
    result("dass-tiny", "dass", 1.0, 0.90),
    result("dass-small", "dass", 2.0, 0.95),
    result("mbv2-a", "mobilenet-v2", 4.0, 0.90),
    result("mbv2-b", "mobilenet-v2", 1.5, 0.80),
    result("resnet", "resnet-18", 0.5, 0.97),  # faster AND more accurate than every DASS model
    result("darts-dead", "darts-v2", 9.0, 0.10, dead=True),  # never compared: its accuracy is chance
    # an emulated timing that would win every comparison if it were counted
    result("dass-emulated", "dass", 0.01, 0.99, emulated=True),
    # the same panel, predicted: compared only with predictions
    result("dass-tiny", "dass", 3.0, 0.90, source="predicted"),
    result("mbv2-a", "mobilenet-v2", 1.0, 0.90, source="predicted"),
    # a device with baselines only
    result("mbv2-a", "mobilenet-v2", 7.0, 0.90, device="vpu/openvino"),
]


@pytest.fixture()
def results_file(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RESULTS))
    return path


def test_ratios_and_gaps_known_by_hand(results_file):
    loaded = load_results([results_file])
    assert loaded.emulated == 1 and "dass-emulated" not in {p.label for p in loaded.points}
    rows = {(c.panel, c.source, c.baseline): c for c in compare(loaded.points)}
    board = "board/onnxruntime"
    assert set(rows) == {(board, "measured", "darts-v2"), (board, "measured", "mobilenet-v2"),
                         (board, "measured", "resnet-18"), (board, "predicted", "mobilenet-v2"),
                         ("vpu/openvino", "measured", "mobilenet-v2")}

    mbv2 = rows["board/onnxruntime", "measured", "mobilenet-v2"]
    # pairs with DASS at least as accurate: tiny/a 4.0/1.0, tiny/b 1.5/1.0, small/a 4.0/2.0 (small/b too): best 4x
    assert (mbv2.faster.dass.label, mbv2.faster.baseline.label) == ("dass-tiny", "mbv2-a")
    assert mbv2.faster.latency_ratio == pytest.approx(4.0)
    # pairs with DASS at least as fast: tiny/a +0, tiny/b +10 pp, small/a +5 pp (2.0 ms > 1.5 ms: not small/b)
    assert (mbv2.more_accurate.dass.label, mbv2.more_accurate.baseline.label) == ("dass-tiny", "mbv2-b")
    assert mbv2.more_accurate.accuracy_gap_pp == pytest.approx(10.0)
    assert mbv2.latency_text.startswith("4.00x lower latency: dass-tiny 1 ms at 90.0% vs mbv2-a 4 ms at 90.0%")

    resnet = rows["board/onnxruntime", "measured", "resnet-18"]
    assert resnet.faster is None and resnet.more_accurate is None
    assert resnet.latency_text == "none exists: no DASS model is as accurate as any resnet-18 model"
    assert resnet.accuracy_text == "none exists: no DASS model is as fast as any resnet-18 model"

    dead = rows["board/onnxruntime", "measured", "darts-v2"]
    assert dead.faster is None and "every darts-v2 model measured here is dead" in dead.latency_text

    predicted = rows["board/onnxruntime", "predicted", "mobilenet-v2"]
    assert predicted.faster.latency_ratio == pytest.approx(1 / 3)  # as accurate, three times slower: said so
    assert predicted.latency_text.startswith("3.00x higher latency")
    assert predicted.more_accurate is None

    vpu = rows["vpu/openvino", "measured", "mobilenet-v2"]
    assert vpu.latency_text == vpu.accuracy_text == "none exists: no DASS model measured here"


def test_comparisons_in_json_and_on_the_page(results_file, tmp_path):
    out = tmp_path / "report"
    run = CliRunner().invoke(app, ["pareto", str(results_file), "--out", str(out), "--json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["left_out"]["emulated"] == 1
    by_key = {(c["panel"], c["source"], c["baseline"]): c for c in report["comparisons"]}
    mbv2 = by_key["board/onnxruntime", "measured", "mobilenet-v2"]
    assert mbv2["latency_ratio"] == pytest.approx(4.0) and mbv2["accuracy_gap_pp"] == pytest.approx(10.0)
    assert mbv2["latency_ratio_pair"] == {"dass": "dass-tiny", "dass_ms": 1.0, "dass_accuracy": 0.9,
                                          "baseline": "mbv2-a", "baseline_ms": 4.0, "baseline_accuracy": 0.9}
    assert by_key["vpu/openvino", "measured", "mobilenet-v2"]["latency_ratio"] is None
    assert json.loads((out / "comparisons.json").read_text()) == report["comparisons"]
    page = (out / "report.html").read_text()
    assert "4.00x lower latency" in page and "+10.0 pp accuracy" in page and "none exists" in page
    assert "dass-emulated" not in page and "1 timings marked emulated" in page

    human = CliRunner().invoke(app, ["pareto", str(results_file), "--out", str(out)])
    assert human.exit_code == 0 and "4.00x lower" in human.stdout and "emulated timings left out" in human.stderr
