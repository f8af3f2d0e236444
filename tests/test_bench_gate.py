"""The regression gate: three-way verdicts on known round medians (paired and against a baseline), baseline
files and their bootstrap, JUnit reports, and end to end through the CLI on real models: the same model is
never a regression, a model with more cells fails with exit code 10 (against a baseline and --against), a
run too noisy to decide exits 11, and bad outputs and one-round gates are refused before measuring."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dass_edge.bench import gate
from dass_edge.errors import InputError


def _result(rounds: list[float], **extra) -> dict:
    return {"device": "intel-cpu", "model": "m.onnx", "model_key": "m", "runtime": "onnxruntime",
            "runtime_version": "1.0", "median_ms": sorted(rounds)[len(rounds) // 2], "p90_ms": max(rounds),
            "count": 100, "round_medians_ms": rounds, **extra}


BASE = _result([1.00, 1.02, 0.99, 1.01, 1.00])


def test_same_speed_passes():
    verdict = gate.compare(_result([1.01, 0.99, 1.00, 1.02, 1.00]), BASE, tolerance=0.10)
    assert verdict.decision == "pass" and verdict.ratio_ci_low < 1 < verdict.ratio_ci_high < 1.1
    assert verdict.method == "baseline" and set(verdict.noise) == {"candidate_spread", "baseline_spread"}


def test_twice_as_slow_fails():
    verdict = gate.compare(_result([2.0, 2.1, 1.98, 2.02, 2.05]), BASE, tolerance=0.10)
    assert verdict.regression and verdict.decision == "regression"
    assert verdict.ratio == pytest.approx(2.02, rel=0.02)
    assert verdict.to_dict()["baseline_median_ms"] == BASE["median_ms"]


def test_slowdown_within_tolerance_passes():
    assert gate.compare(_result([1.05, 1.06, 1.04, 1.05, 1.05]), BASE, tolerance=0.10).decision == "pass"
    assert gate.compare(_result([1.05, 1.06, 1.04, 1.05, 1.05]), BASE, tolerance=0.0).regression


def test_decide_has_three_outcomes():
    assert gate.decide(1.2, 1.5, 0.1) == "regression"
    assert gate.decide(0.9, 1.1, 0.1) == "pass"  # at the limit: confidently not slower than allowed
    assert gate.decide(0.95, 1.3, 0.1) == "inconclusive"


def test_noise_is_neither_a_pass_nor_a_regression():
    """The issue's case: a noisy run with a mean ratio well above the limit but an interval spanning it
    used to pass silently; now it is inconclusive, with the spread of the round medians reported."""
    verdict = gate.compare(_result([0.8, 2.2, 0.9, 1.9, 0.85]), BASE, tolerance=0.10)
    assert verdict.ratio > 1.1 and verdict.decision == "inconclusive" and not verdict.regression
    assert verdict.noise["candidate_spread"] == pytest.approx((2.2 - 0.8) / 0.9)
    assert "INCONCLUSIVE" in gate.describe({**_result([0.8, 2.2]), **verdict.to_dict()})


def test_paired_verdict_sees_through_load_the_baseline_cannot():
    """The same numbers judged two ways: rounds slowed by a neighbour, the candidate 1.5x its reference in
    each pair. Against the stored reference rounds the gate cannot tell; paired it flags the regression."""
    load = [1.0, 2.5, 1.1, 2.9, 1.2, 2.4]
    ref = [v * f for v, f in zip(load, [1.0, 1.01, 0.99, 1.0, 1.02, 1.0])]
    cand = [1.5 * v for v in load]
    paired = gate.compare_paired(cand, ref, reference_median_ms=1.8, tolerance=0.10)
    assert paired.decision == "regression" and paired.method == "paired"
    assert paired.to_dict()["reference_median_ms"] == 1.8 and paired.noise["pair_spread"] < 0.05
    unpaired = gate.compare(_result(cand), _result(ref), tolerance=0.10)
    assert unpaired.decision == "inconclusive"
    with pytest.raises(InputError, match="at least 3"):
        gate.compare_paired([1.0, 1.0], [1.0, 1.0], 1.0)


def test_single_rounds_are_refused_and_predictions_compare_as_points():
    with pytest.raises(InputError, match="at least 2 rounds"):
        gate.compare(_result([1.2]), BASE)
    with pytest.raises(InputError, match="at least 2 rounds"):
        gate.compare(BASE, _result([1.0]))
    predicted = {"latency_source": "predicted", "median_ms": 2.4, "round_medians_ms": [2.4]}
    point = gate.compare(predicted, {**predicted, "median_ms": 2.0}, tolerance=0.1)
    assert point.method == "point" and point.regression and point.ratio_ci_low is None
    assert "no noise interval" in gate.describe({**predicted, **point.to_dict()})
    with pytest.raises(InputError, match="prediction against a measurement"):
        gate.compare(predicted, BASE)
    with pytest.raises(InputError, match="--rounds 1"):
        gate.check_before_measuring(Path("b.json"), False, 1, "local")
    gate.check_before_measuring(Path("b.json"), False, 1, "predicted")  # a prediction is one number anyway


def test_bootstrap_writes_a_missing_baseline_once(tmp_path):
    path = tmp_path / "baselines" / "jetson-tx2.json"
    with pytest.raises(InputError, match="does not exist"):
        gate.gate_on_baseline(BASE, path, "m", 0.1)
    first = gate.gate_on_baseline(BASE, path, "m", 0.1, bootstrap=True)
    assert first["decision"] == "bootstrapped" and "commit" in first["bootstrap_message"]
    assert gate.read_baseline(path, "m")["round_medians_ms"] == BASE["round_medians_ms"]
    second = gate.gate_on_baseline(_result([2.0, 2.1, 2.05]), path, "m", 0.1, bootstrap=True)
    assert second["decision"] == "regression"  # from then on it gates
    with pytest.raises(InputError, match="at least 2 rounds"):
        gate.write_baseline(path, "one", _result([1.0]))


def test_baseline_file_roundtrip_keeps_other_entries(tmp_path):
    path = tmp_path / "baselines" / "intel-cpu.json"
    gate.write_baseline(path, "a", BASE)
    gate.write_baseline(path, "b", _result([3.0, 3.1]))
    data = json.loads(path.read_text())
    assert data["schema"] == gate.SCHEMA and set(data["entries"]) == {"a", "b"}
    assert gate.read_baseline(path, "a")["round_medians_ms"] == BASE["round_medians_ms"]
    with pytest.raises(InputError, match="has no entry 'c'"):
        gate.read_baseline(path, "c")
    with pytest.raises(InputError, match="does not exist"):
        gate.read_baseline(tmp_path / "none.json", "a")
    (tmp_path / "bad.json").write_text('{"entries": 3}')
    with pytest.raises(InputError, match="not a dass-edge baseline"):
        gate.read_baseline(tmp_path / "bad.json", "a")


def test_junit_report_marks_a_regression_as_failure(tmp_path):
    slow = _result([2.0, 2.1, 2.0])
    slow.update(gate.compare(slow, BASE).to_dict())
    gate.write_junit(tmp_path / "slow.xml", slow, 3.5)
    suite = ET.parse(tmp_path / "slow.xml").getroot()
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    failure = suite.find("testcase/failure")
    assert failure is not None and "baseline" in failure.get("message")
    gate.write_junit(tmp_path / "ok.xml", {**BASE, **gate.compare(BASE, BASE).to_dict()}, 1.0)
    ok = ET.parse(tmp_path / "ok.xml").getroot()
    assert ok.get("failures") == "0" and ok.find("testcase/failure") is None
    assert {p.get("name") for p in ok.iter("property")} >= {"median_ms", "ratio", "baseline_median_ms", "decision"}
    gate.write_junit(tmp_path / "err.xml", {"device": "jetson-tx2", "model": "m"}, 0.1, "cannot reach board")
    assert ET.parse(tmp_path / "err.xml").getroot().find("testcase/error").get("message") == "cannot reach board"
    noisy = _result([0.8, 2.2, 0.9, 1.9, 0.85])
    noisy.update(gate.compare(noisy, BASE).to_dict())
    gate.write_junit(tmp_path / "noisy.xml", noisy, 1.0)
    error = ET.parse(tmp_path / "noisy.xml").getroot().find("testcase/error")
    assert error.get("type") == "InconclusiveMeasurement" and "INCONCLUSIVE" in error.get("message")
    first = {**BASE, **gate.gate_on_baseline(BASE, tmp_path / "new.json", "m", 0.1, bootstrap=True)}
    gate.write_junit(tmp_path / "first.xml", first, 1.0)
    suite = ET.parse(tmp_path / "first.xml").getroot()
    assert suite.get("skipped") == "1" and "no baseline" in suite.find("testcase/skipped").get("message")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["err.xml", "first.xml", "new.json", "noisy.xml",
                                                          "ok.xml", "slow.xml"]  # no temporary files left


def test_results_file_appends_one_line_per_result(tmp_path):
    from dass_edge.bench.results import append_result, read_results

    path = tmp_path / "r" / "latency.jsonl"
    append_result(path, BASE)
    append_result(path, {**BASE, "model_key": "n"})
    rows = list(read_results(path))
    assert [r["model_key"] for r in rows] == ["m", "n"] and all("timestamp" in r for r in rows)
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(InputError, match=":3 is not a JSON line"):
        list(read_results(path))


# ---- end to end through the CLI, real models on intel-cpu ---------------------------------------------

def _bench(args: list[str]):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app
    return CliRunner().invoke(app, ["bench", *args])


@pytest.fixture(scope="module")
def models(tmp_path_factory, trained_checkpoint) -> dict[str, Path]:
    """The smoke DASS checkpoint and its ONNX export for intel-cpu; and a version of the same model with
    twice the cells and four times the channels, saved and exported under the SAME name elsewhere: a new version of
    the model that got slower, as a CI gate should catch."""
    from dataclasses import replace

    from dass_edge import checkpoint
    from dass_edge.export.pipeline import export_checkpoint
    from dass_edge.search.models import build_model
    from dass_edge.targets import get_target

    onnx_only = replace(get_target("intel-cpu"), extra_formats=())
    fast = trained_checkpoint("dass")
    ckpt = checkpoint.load(fast)
    spec = replace(ckpt.spec, cells=ckpt.spec.cells * 2, channels=ckpt.spec.channels * 4)
    slow = tmp_path_factory.mktemp("slow") / fast.name
    checkpoint.save(checkpoint.from_model(build_model(spec), spec, ckpt.sparsity, "pretrain"), slow)
    out = {"fast": fast, "export_dir": tmp_path_factory.mktemp("exported")}
    for name, path, folder in (("fast", fast, out["export_dir"]), ("slow", slow, tmp_path_factory.mktemp("e2"))):
        manifest = export_checkpoint(path, onnx_only, folder)
        out[f"{name}_onnx"] = Path(manifest.path) / manifest.files[0]
    return out


QUICK_GATE = ["--device", "intel-cpu", "--threads", "1", "--warmup", "20", "--runs", "50", "--min-seconds", "0.2",
              "--rounds", "5"]


def test_gate_through_cli_passes_same_model_and_fails_slower_one(models, tmp_path):
    baseline = tmp_path / "baselines" / "intel-cpu.json"
    # From the checkpoint: the bench finds the current export (newer than the checkpoint) and reuses it.
    made = _bench([str(models["fast"]), *QUICK_GATE, "--export-dir", str(models["export_dir"]), "--update-baseline",
                   "--baseline", str(baseline), "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["model"] == str(models["fast_onnx"])
    assert models["fast"].stem in json.loads(baseline.read_text())["entries"]

    junit = tmp_path / "same.xml"
    same = _bench([str(models["fast_onnx"]), *QUICK_GATE, "--baseline", str(baseline), "--junit-xml", str(junit),
                   "--tolerance", "0.5", "--json"])
    # Against rounds stored minutes ago, a busy machine can leave the gate unable to decide (11, see
    # test_too_noisy_to_decide_exits_11); what it must never do is call the same model a regression.
    assert same.exit_code in (0, 11), same.output
    result = json.loads(same.stdout)
    assert result["regression"] is False and result["baseline_median_ms"] > 0
    assert result["decision"] == ("pass" if same.exit_code == 0 else "inconclusive")
    assert result["model_key"] == models["fast"].stem  # from the manifest beside model.onnx
    assert result["latency_source"] == "local" and result["test_accuracy"] is not None
    assert ET.parse(junit).getroot().get("failures") == "0"

    junit = tmp_path / "slow.xml"
    # The slow model takes 1.7-2x the time once compacted; at a 20% tolerance the gate must call that
    # a regression even when its five rounds leave the ratio's interval as wide as 1.3-2.3.
    slower = _bench([str(models["slow_onnx"]), *QUICK_GATE, "--baseline", str(baseline), "--junit-xml", str(junit),
                     "--tolerance", "0.2", "--json"])
    assert slower.exit_code == 10, slower.output
    assert json.loads(slower.stdout)["regression"] is True and json.loads(slower.stdout)["ratio"] > 1.2
    assert "error:" in slower.stderr and "baseline" in slower.stderr
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_cli_errors_have_their_exit_codes(tmp_path, models):
    missing = _bench([str(tmp_path / "nope.onnx"), "--device", "intel-cpu"])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    unknown = _bench([str(models["fast_onnx"]), "--device", "no-such-board"])
    assert unknown.exit_code == 2 and "unknown target" in unknown.stderr
    no_entry = tmp_path / "b.json"
    gate.write_baseline(no_entry, "other", BASE)
    absent = _bench([str(models["fast_onnx"]), *QUICK_GATE, "--baseline", str(no_entry)])
    assert absent.exit_code == 2 and "has no entry" in absent.stderr


def test_cli_other_runtime_and_device(models, tmp_path):
    """--runtime picks another runtime for the same file (OpenVINO reads ONNX); --runtime-device is checked."""
    quick = ["--device", "intel-cpu", "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--json"]
    got = _bench([str(models["fast_onnx"]), *quick, "--runtime", "openvino", "--update-baseline", "--baseline",
                  str(tmp_path / "b.json")])
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["runtime"] == "openvino"
    assert json.loads(got.stdout)["model_key"] == f"{models['fast'].stem}@openvino"
    missing = _bench([str(models["fast_onnx"]), *quick, "--runtime", "openvino", "--runtime-device", "NO_SUCH_DEV"])
    assert missing.exit_code == 2 and "no NO_SUCH_DEV device" in missing.stderr


PAIRED = ["--device", "intel-cpu", "--warmup", "20", "--runs", "30", "--min-seconds", "0.1", "--rounds", "6"]


def test_against_a_reference_in_the_same_run(models, tmp_path):
    """--against: the same model against itself passes, the slower version against the fast one fails (10);
    threads are pinned, and the stored baseline is reported beside the paired verdict."""
    baseline = tmp_path / "b.json"
    made = _bench([str(models["fast_onnx"]), *QUICK_GATE, "--update-baseline", "--baseline", str(baseline)])
    assert made.exit_code == 0, made.output
    fast = str(models["fast_onnx"])
    same = _bench([fast, *PAIRED, "--against", fast, "--tolerance", "0.5", "--baseline", str(baseline), "--json"])
    assert same.exit_code == 0, same.output
    result = json.loads(same.stdout)
    assert result["method"] == "paired" and result["decision"] == "pass" and result["threads"] == 1
    assert result["against"]["model"] == fast and len(result["against"]["round_medians_ms"]) == 6
    assert set(result["noise"]) == {"candidate_spread", "reference_spread", "pair_spread"}
    assert result["baseline"]["candidate"]["method"] == "baseline" and result["baseline"]["reference"]["ratio"] > 0

    junit = tmp_path / "slow.xml"
    slower = _bench([str(models["slow_onnx"]), *PAIRED, "--against", fast, "--tolerance", "0.2",  # it is 1.7-2x
                     "--junit-xml", str(junit)])
    assert slower.exit_code == 10, slower.output
    assert "reference" in slower.stdout and "REGRESSION" in slower.stdout
    assert slower.stderr.startswith("error:") and slower.stderr.count("\n") == 1
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_too_noisy_to_decide_exits_11(models, tmp_path):
    """A baseline whose rounds spread 100-fold (a run beside a very busy neighbour) cannot decide anything:
    exit 11 with the spread in the message, and an <error> in the JUnit report, never a silent pass."""
    baseline = tmp_path / "noisy.json"
    gate.write_baseline(baseline, models["fast"].stem, {**BASE, "median_ms": 1.0, "round_medians_ms": [0.05, 5.0]})
    junit = tmp_path / "noisy.xml"
    # The entry is made up (runtime version "1.0"): compared only because the change is allowed.
    got = _bench([str(models["fast_onnx"]), *QUICK_GATE, "--baseline", str(baseline), "--junit-xml", str(junit),
                  "--allow-env-change"])
    assert got.exit_code == 11, got.output
    last = got.stderr.strip().splitlines()[-1]  # after the log's warning that the stored runtime differs
    assert last.startswith("error: ") and "too noisy to decide" in last and "spread" in last
    assert ET.parse(junit).getroot().find("testcase/error").get("type") == "InconclusiveMeasurement"


@pytest.mark.parametrize("option", ["--results", "--junit-xml", "--update-baseline"])
def test_unwritable_outputs_fail_before_measuring(option, models, tmp_path):
    """Rounds of a minute each would take minutes: the one-line error comes at once, and nothing is written."""
    where = "/proc/dass-edge/out.json"
    slow = [str(models["fast_onnx"]), "--device", "intel-cpu", "--rounds", "3", "--min-seconds", "60"]
    args = [*slow, "--update-baseline", "--baseline", where] if option == "--update-baseline" else [*slow, option, where]
    start = time.monotonic()
    got = _bench(args)
    assert got.exit_code == 2 and time.monotonic() - start < 30, got.output
    assert got.stderr == f"error: {option} {where} cannot be written (/proc: No such file or directory)\n"
    folder = _bench([*slow, "--junit-xml", str(tmp_path)])
    assert folder.exit_code == 2 and "is a folder" in folder.stderr
    assert list(tmp_path.iterdir()) == []


def test_gate_refusals_before_measuring(models, tmp_path):
    fast = str(models["fast_onnx"])
    one = _bench([fast, "--device", "intel-cpu", "--baseline", str(tmp_path / "b.json"), "--rounds", "1"])
    assert one.exit_code == 2 and "at least 2 rounds" in one.stderr
    predicted = _bench([fast, "--device", "adreno640", "--against", fast])
    assert predicted.exit_code == 2 and "by prediction" in predicted.stderr
    lone = _bench([fast, "--device", "intel-cpu", "--bootstrap-baseline"])
    assert lone.exit_code == 2 and "needs --baseline" in lone.stderr
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    bad = _bench([fast, "--device", "intel-cpu", "--baseline", str(corrupt), "--min-seconds", "60"])
    assert bad.exit_code == 2 and "not readable JSON" in bad.stderr
