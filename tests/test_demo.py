"""`dass-edge demo --preset smoke` runs the whole pipeline end to end and names its output folder."""

import json

from typer.testing import CliRunner

from dass_edge.cli.app import app


def test_demo_smoke_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--preset", "smoke", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    labels = [row["label"] for row in summary["models"]]
    assert labels == ["dass-custom", "sparse-darts-custom", "sparse-mobilenet-v2", "sparse-resnet-18"]
    for row in summary["models"]:
        assert 0 <= row["test_accuracy"] <= 1
        assert row["nonzero_params"] <= 0.02 * row["params"]
        measured = {d: ms for d, ms in row["latency_ms"].items() if d.startswith("intel-cpu/") and "predicted" not in d}
        assert measured and all(ms > 0 for ms in measured.values()), row
        assert row["latency_ms"].get("intel-cpu/predicted", 0) > 0  # own calibrated predictor
    exported = {(e["model"], e["target"]) for e in summary["exports"]}
    assert ("dass-custom", "ncs2") in exported and ("dass-custom", "intel-cpu") in exported
    assert not [f for f in summary["failures"] if f["stage"] != "export"], summary["failures"]
    for name in ("report.html", "grid.png", "grid.svg"):
        assert (out / "report" / name).stat().st_size > 0
    assert "[demo] report" in result.stderr
