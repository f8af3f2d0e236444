"""The HTML report in a real browser: Debian's chromium, headless, driven by playwright, with the network
cut three ways (offline context, an unresolvable host map, a dead proxy) and every request recorded."""

from __future__ import annotations

import json
import shutil

import pytest

from dass_edge.report.build import write_report
from dass_edge.report.points import load_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (setup.sh installs Debian's "
                                "chromium package as root)")


def entry(label, arch, device, ms, acc, source="local", **extra):
    return {"label": label, "arch": arch, "variant": "tiny", "data": "mnist5k", "nonzero_params": 1301,
            "sparsity": 0.99, "device": device, "runtime": device.split("/")[1], "runtime_version": "1.2.3",
            "median_ms": ms, "test_accuracy": acc, "latency_source": source, "compaction": {"macs_after": 477626},
            **extra}


RESULTS = [
    entry("dass-tiny", "dass", "intel-cpu/onnxruntime", 0.40, 0.91, p90_ms=0.45, p10_ms=0.38, count=500, cpu="EPYC"),
    entry("sparse-mobilenet-v2", "mobilenet-v2", "intel-cpu/onnxruntime", 0.90, 0.89, p90_ms=1.0, p10_ms=0.85),
    entry("dass-tiny", "dass", "intel-cpu/onnxruntime", 0.50, 0.91, source="predicted", predictor="intel-cpu"),
    entry("sparse-resnet-18", "resnet-18", "intel-cpu/openvino", 50.0, 0.93, p90_ms=60.0, min_ms=45.0),
    entry("dass-tiny", "dass", "intel-cpu/openvino", 0.3, 0.91, p90_ms=0.35, min_ms=0.29),
    entry("dass-tiny", "dass", "adreno640/litert", 3.0, 0.91, source="predicted", predictor="adreno640"),
    entry("emulated-only-model", "dass", "adreno640/litert", 0.01, 0.99, emulated=True),
]
SHOWN = [r for r in RESULTS if not r.get("emulated")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    results = folder / "results.json"
    results.write_text(json.dumps(RESULTS))
    return write_report(load_results([results]), folder / "out")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"])
        yield chromium
        chromium.close()


def test_report_renders_offline_with_hover_and_log_switch(report, browser):
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 1000})
    requests, problems = [], []
    context.on("request", lambda r: requests.append(r.url))
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    url = f"file://{report['html']}"
    page.goto(url)
    page.wait_for_selector("#pareto .scatterlayer .points path", state="attached", timeout=60_000)

    # one subplot per device/runtime, titled, each with its points drawn (non-empty SVG paths)
    titles = page.eval_on_selector_all("#pareto .annotation-text", "els => els.map(e => e.textContent)")
    assert set(titles) >= {"adreno640/litert", "intel-cpu/onnxruntime", "intel-cpu/openvino"}
    drawn = page.eval_on_selector_all("#pareto .scatterlayer .points path", "els => els.map(e => e.getAttribute('d'))")
    assert len(drawn) == len(SHOWN) and all(d and len(d) > 5 for d in drawn)
    assert page.locator("#pareto .errorbars path").count() >= 3  # p10-p90 / min-p90 bars of the timings

    # hover the one point of the adreno640 panel (subplot 1): its details, and nothing of the emulated entry
    point = page.locator("#pareto .cartesianlayer .subplot.xy .scatterlayer .points path").first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#pareto .hoverlayer .hovertext", timeout=30_000)
    hover = page.locator("#pareto .hoverlayer").text_content()
    for fact in ("dass-tiny", "architecture dass, variant tiny", "sparsity 99.0%", "non-zero weights 1,301",
                 "MACs after compaction 477,626", "file size", "median 3 ms", "runtime litert 1.2.3",
                 "predicted (adreno640 predictor)", "test accuracy 91.0% on mnist5k"):
        assert fact in hover, (fact, hover)

    # the log-scale switch acts on every panel
    page.locator("#pareto .updatemenu-button", has_text="log latency axis").click()
    types = page.evaluate("(() => { const l = document.getElementById('pareto').layout;"
                          " return [l.xaxis.type, l.xaxis2.type, l.xaxis3.type]; })()")
    assert types == ["log", "log", "log"]

    table = page.locator("#comparisons").text_content()
    assert "2.25x lower latency" in table and "none exists" in table  # 0.90 / 0.40 at 91% >= 89%
    assert "emulated-only-model" not in page.content()
    assert not problems, problems
    assert requests == [url], requests  # the page itself, nothing else
    context.close()
