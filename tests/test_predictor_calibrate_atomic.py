"""An interrupted calibration leaves the previous predictor intact and loadable, and the next run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dass_edge.errors import InputError
from dass_edge.predict import calibrate, nnmeter

KERNELS = ("relu", "add")  # two cheap kernel types: a real predictor folder in seconds
ROOT = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def finished(tmp_path):
    """A complete calibration (3 samples per kernel type) and what its folder held."""
    out = tmp_path / "store" / "intel-cpu"
    calibrate.calibrate("intel-cpu", out, samples=3, kernel_types=KERNELS, progress=False)
    return out, _snapshot(out)


def test_a_kernel_failing_while_the_predictor_is_written_leaves_the_old_one(finished, monkeypatch):
    out, before = finished
    real_fit = calibrate._fit

    def fit_then_fail_on_add(kernel_type, records, seed):
        if kernel_type == "add":  # relu's new .pkl is already written when this raises
            raise RuntimeError("kernel add failed")
        return real_fit(kernel_type, records, seed)

    monkeypatch.setattr(calibrate, "_fit", fit_then_fail_on_add)
    with pytest.raises(RuntimeError, match="kernel add failed"):
        calibrate.calibrate("intel-cpu", out, samples=5, kernel_types=KERNELS, progress=False)
    assert _snapshot(out) == before
    assert set(nnmeter.load_predictors(out, require_checksums=True).models) == set(KERNELS)
    work = out.parent / ".intel-cpu.calibrating"
    assert len((work / "samples" / "relu.jsonl").read_text().splitlines()) == 5  # the resume point

    monkeypatch.setattr(calibrate, "_fit", real_fit)
    with open(work / "samples" / "add.jsonl", "a") as f:
        f.write('{"config": {"h": 4')  # what a kill in the middle of a write leaves
    calibrate.calibrate("intel-cpu", out, samples=5, kernel_types=KERNELS, progress=False)
    assert not work.exists()
    assert [p.name for p in out.parent.iterdir()] == ["intel-cpu"]
    meta = json.loads((out / "metadata.json").read_text())
    assert {k: v["samples"] for k, v in meta["held_out"].items()} == {"relu": 5, "add": 5}
    assert (out / "samples" / "relu.jsonl").read_text().splitlines()[:3] == \
        before["samples/relu.jsonl"].decode().splitlines()
    nnmeter.load_predictors(out, require_checksums=True)


def test_a_calibration_killed_mid_run_leaves_the_old_predictor(finished, tmp_path):
    """A real interruption: the CLI in its own process, killed once it is measuring (the import of
    scikit-learn and nn-Meter in a fresh interpreter makes this the slowest test here: 88 s niced at load 12)."""
    out, before = finished
    conv = out.parent / ".intel-cpu.calibrating" / "samples" / "conv-bn-relu.jsonl"  # the first type measured
    log = tmp_path / "calibrate.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", "from dass_edge.cli.app import main; main()", "calibrate", "--out", str(out),
             "--samples", "400"], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
            stderr=stderr)
    try:
        deadline = time.monotonic() + 600  # generous: the suite may share a busy machine
        while not (conv.is_file() and conv.read_text().count("\n") >= 1):
            assert process.poll() is None, f"calibrate ended before it could be interrupted: {log.read_text()}"
            assert time.monotonic() < deadline, "calibrate measured nothing in 600 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert _snapshot(out) == before
    assert set(nnmeter.load_predictors(out, require_checksums=True).models) == set(KERNELS)


def test_calibrate_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep-me.txt").write_text("not a predictor")
    with pytest.raises(InputError, match="not a predictor made by calibrate"):
        calibrate.calibrate("intel-cpu", out, samples=1, kernel_types=KERNELS, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep-me.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
