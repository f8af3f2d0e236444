"""The latency history: a real SQLite file written by store.append, change points by ruptures, the trend page
in headless Chromium (playwright, offline), the Markdown summary and the `dass-edge history` command."""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from dass_edge.errors import InputError
from dass_edge.history import changepoints, store, summary
from dass_edge.history.report import write_history_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
ENV = {"cpu": "Cortex-A57", "cores": 4, "machine": "aarch64", "os": "Linux-4.9", "python": "3.6.9"}


def result(median_ms: float, model: str = "darts-v2-90", device: str = "jetson-tx2", **extra) -> dict:
    """A bench result as `dass-edge bench --json` prints it (the fields the history reads)."""
    return {"device": device, "model": f"/nowhere/{model}.onnx", "model_key": model, "runtime": "onnxruntime",
            "runtime_version": "1.10.0", "runtime_device": "CPU", "latency_source": "ssh", "threads": 1,
            "host": "nvidia@10.0.0.5:22", "env": ENV, "median_ms": median_ms, "p90_ms": median_ms * 1.1,
            "p99_ms": median_ms * 1.2, "min_ms": median_ms * 0.95, "mean_ms": median_ms, "count": 500,
            "round_medians_ms": [median_ms] * 5, **extra}


def noisy_history(path: Path, seed: int, step_at: int | None, n: int = 100, step: float = 1.3,
                  model: str = "darts-v2-90") -> None:
    """``n`` runs an hour apart, 4% log-normal noise and two outlier runs (a busy neighbour: 1.5x), with a
    ``step`` slowdown from run ``step_at`` on; commit i is ``c{i:03d}``; gated runs marked as the gate would."""
    rng = np.random.default_rng(seed)
    medians = 4.0 * np.exp(rng.normal(0, 0.04, n))
    medians[[n // 6, n * 7 // 10]] *= 1.5
    if step_at is not None:
        medians[step_at:] *= step
    for i, ms in enumerate(medians):
        gated = {"decision": "regression" if step_at is not None and i == step_at else "pass", "method": "paired",
                 "ratio": 1.0, "ratio_ci_low": 0.97, "ratio_ci_high": 1.03, "tolerance": 0.1} if i % 2 else {}
        store.append(path, result(float(ms), model, **gated), commit=f"c{i:03d}", when=START + timedelta(hours=i))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_step_is_found_at_its_commit(tmp_path, seed):
    path = tmp_path / "history.sqlite"
    noisy_history(path, seed, step_at=60)
    runs = store.read(path)
    assert len(runs) == 100 and runs[0].commit == "c000" and runs[-1].commit == "c099"
    points = changepoints.find(runs)
    assert [p.commit for p in points] == ["c060"], [p.to_dict() for p in points]
    assert points[0].ratio == pytest.approx(1.3, rel=0.05) and points[0].before_ms == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_change_point_on_a_flat_noisy_history(tmp_path, seed):
    path = tmp_path / "history.sqlite"
    noisy_history(path, seed, step_at=None)
    assert changepoints.find(store.read(path)) == []


def test_small_steps_are_not_reported():
    """A 1% step on a very quiet series is real but below MIN_CHANGE: not reported."""
    runs = [store.Run(id=i, time=f"t{i:03d}", commit=f"c{i}", model="m", device="d",
                      median_ms=4.0 * (1.01 if i >= 30 else 1.0) * (1 + 0.0005 * math.sin(i)), decision=None)
            for i in range(60)]
    assert changepoints.find(runs) == []
    assert [p.index for p in changepoints.find(runs, min_change=0.005)] == [30]


def test_rows_keep_the_figures_and_the_result(tmp_path):
    path = tmp_path / "history.sqlite"
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx bytes")
    row_id = store.append(path, {**result(2.5, decision="pass", ratio=1.01, ratio_ci_low=0.99, ratio_ci_high=1.02,
                                           method="paired", reference_median_ms=2.47), "model": str(model)},
                          commit="abc123")
    [run] = store.read(path)
    assert run.id == row_id and run.commit == "abc123" and run.series == ("jetson-tx2", "darts-v2-90")
    c = run.columns
    assert (c["median_ms"], c["p90_ms"], c["p99_ms"], c["decision"], c["ratio_ci_high"]) == (2.5, 2.75, 3.0, "pass", 1.02)
    assert c["reference_median_ms"] == 2.47 and c["peak_memory_bytes"] is None  # no memory recorded by this run
    assert len(c["model_hash"]) == 16 and c["env_fingerprint"] == store.env_fingerprint(result(9.9))
    assert store.env_fingerprint({**result(1), "runtime_version": "1.11.0"}) != c["env_fingerprint"]
    assert run.result["round_medians_ms"] == [2.5] * 5
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION


def test_what_is_refused(tmp_path):
    path = tmp_path / "history.sqlite"
    with pytest.raises(InputError, match="emulation"):
        store.append(path, {**result(1.0), "emulated": True})
    with pytest.raises(InputError, match="does not exist"):
        store.read(tmp_path / "none.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(InputError, match="not a dass-edge latency history"):
        store.append(other, result(1.0))
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all " * 100)
    with pytest.raises(InputError, match="not a dass-edge history"):
        store.check_writable(junk)
    assert junk.read_text().startswith("not a database")  # refused, not altered


def test_summary_markdown(tmp_path):
    path = tmp_path / "history.sqlite"
    noisy_history(path, 0, step_at=60, n=70, model="net|<b>x</b>")
    profiles = {"op_profile_ms": {"Conv_0": 1.0, "Gemm": 0.2, "NewOp": 0.1},
                "against": {"op_profile_ms": {"Conv_0": 0.5, "Gemm": 0.2}}}
    store.append(path, result(5.2, "net|<b>x</b>", decision="regression", method="paired", ratio=1.31,
                              ratio_ci_low=1.25, ratio_ci_high=1.37, tolerance=0.1, reference_median_ms=4.0,
                              **profiles), commit="c070", when=START + timedelta(hours=70))
    out = tmp_path / "summary.md"
    report = write_history_report(path, tmp_path / "page", summary_path=out, page_url="https://ci/run/1#trend")
    text = out.read_text()
    assert "**REGRESSION** against the reference build" in text
    assert "1.310x (95% CI 1.250-1.370x), limit 1.10x" in text and "reference 4.0000 ms" in text
    assert "net\\|\\<b\\>x\\</b\\>" in text  # escaped: neither a table cell break nor markup
    assert "Conv\\_0 0.500 → 1.000 ms" in text and "NewOp 0.000 → 0.100 ms" in text and "Gemm" not in text
    assert re.search(r"the latest: 1\.(29|30|31)x from c060 \|", text) and "[Trend page](https://ci/run/1#trend)" in text
    assert report["summary"] == str(out)
    assert summary.grown_operators(result(1.0), 0.1) is None  # no profiles recorded: the hook says so


def test_cli_writes_page_and_json(tmp_path):
    from typer.testing import CliRunner

    from dass_edge.cli.app import app

    path = tmp_path / "history.sqlite"
    noisy_history(path, 3, step_at=40, n=60)
    got = CliRunner().invoke(app, ["history", str(path), "--out", str(tmp_path / "page"), "--json"])
    assert got.exit_code == 0, got.output
    report = json.loads(got.stdout)
    assert report["runs"] == 60 and Path(report["html"]).is_file()
    [series] = report["series"]
    assert [p["commit"] for p in series["change_points"]] == ["c040"]
    got = CliRunner().invoke(app, ["history", str(path), "--device", "nope"])
    assert got.exit_code == 2 and "has no runs for device nope" in got.stderr and got.stderr.count("\n") == 1


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (setup.sh installs Debian's chromium)")
def test_the_trend_page_in_a_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "history.sqlite"
    noisy_history(path, 0, step_at=60)
    hostile = "<img src=x onerror=alert(1)>"
    noisy_history(path, 1, step_at=None, n=20, model=hostile)
    report = write_history_report(path, tmp_path / "page")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--host-resolver-rules=MAP * ~NOTFOUND"])
        context = browser.new_context(offline=True, viewport={"width": 1200, "height": 1400})
        requests, dialogs, problems = [], [], []
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"file://{report['html']}")
        page.wait_for_selector("#trend .scatterlayer .points path", state="attached", timeout=60_000)
        titles = page.eval_on_selector_all("#trend .annotation-text", "els => els.map(e => e.textContent)")
        markers = page.locator("#trend .scatterlayer .points path").count()
        table = page.inner_text("#changepoints")
        browser.close()
    assert "jetson-tx2 / darts-v2-90" in titles and f"jetson-tx2 / {hostile}" in titles  # shown as text
    assert [t for t in titles if re.fullmatch(r"1\.(29|30|31)x from c060", t)]  # the change point's label
    assert markers == 120  # every run drawn as a marker
    assert "c060" in table and dialogs == [] and problems == []
    assert all(url.startswith("file:") for url in requests)
