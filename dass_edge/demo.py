"""The whole pipeline on the bundled data: search -> train -> export -> measure -> predict -> Pareto report.

It only chains the library's own entry points (workflows, export pipeline, bench service, predictors,
Pareto report) and writes everything under one output folder, so each stage can be rerun by hand with the
matching CLI command. A stage that fails for one model or target is recorded in the summary, not fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dass_edge import checkpoint as ckpt_io
from dass_edge.errors import DassEdgeError
from dass_edge.search.presets import Preset
from dass_edge.workflows import DataChoice, run_search, run_train

log = logging.getLogger(__name__)

LOCAL_RUNTIMES = ("onnxruntime", "openvino", "litert", "torch")


@dataclass(frozen=True)
class DemoModel:
    label: str
    arch: str  # "dass" means the genotype this demo's search found
    variant: str | None


def demo_models(preset: Preset) -> tuple[DemoModel, ...]:
    """DASS at the preset's variants (Table 2 sizes), sparse DARTS at the first, and the two baselines."""
    variants = preset.demo_variants or (None,)
    dass = tuple(DemoModel(f"dass-{v or 'custom'}", "dass", v) for v in variants)
    return dass + (DemoModel(f"sparse-darts-{variants[0] or 'custom'}", "darts-v2", variants[0]),
                   DemoModel("sparse-mobilenet-v2", "mobilenet-v2", None),
                   DemoModel("sparse-resnet-18", "resnet-18", None))


def _append(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(entry, default=str) + "\n")


def run_demo(out: Path, preset: Preset, data: DataChoice = DataChoice("mnist5k"), sparsity: float = 0.99,
             seed: int = 0, calibration_samples: int = 60, on_stage: Callable[[str], None] = log.info
             ) -> dict[str, Any]:
    """Run every stage into ``out``; returns the summary (also written to ``out/summary.json``)."""
    from dass_edge.bench.measure import Settings
    from dass_edge.bench.service import BenchRequest, run_bench
    from dass_edge.export.pipeline import export_checkpoint
    from dass_edge.predict.calibrate import calibrate
    from dass_edge.predict.service import has_predictor, predict
    from dass_edge.report.pareto import load_results, write_report
    from dass_edge.targets import load_targets

    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)
    failures: list[dict[str, str]] = []

    def attempt(stage: str, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except DassEdgeError as exc:
            failures.append({"stage": stage, "what": what, "error": str(exc)})
            log.warning("%s %s failed: %s", stage, what, exc)
            return None

    on_stage(f"search: DASS on {data.name} ({preset.name} preset, {sparsity:.1%} sparsity)")
    search = run_search(data, preset, sparsity, out / "search", seed)

    checkpoints: dict[str, Path] = {}
    for model in demo_models(preset):
        on_stage(f"train: {model.label}")
        arch = f"dass:{search}" if model.arch == "dass" else model.arch
        checkpoints[model.label] = run_train(arch, data, preset, sparsity, out / "models", model.variant, seed)

    targets = load_targets()
    exports: list[dict[str, Any]] = []
    for label, path in checkpoints.items():
        for target in targets.values():
            on_stage(f"export: {label} -> {target.name}")
            manifest = attempt("export", f"{label}/{target.name}",
                               lambda: export_checkpoint(path, target, out / "exported"))
            if manifest is not None:
                exports.append({"model": label, "target": target.name, "format": manifest.format,
                                "max_abs_diff": manifest.max_abs_diff, "compacted": manifest.compacted})

    settings = Settings(warmup=10, runs=50, min_seconds=0.5)
    local = [t for t in targets.values() if t.latency_source == "local"]
    for label, path in checkpoints.items():
        accuracy = ckpt_io.load(path).test_accuracy
        for target in local:
            for runtime in _runtimes_of(target):
                on_stage(f"measure: {label} on {target.name} with {runtime}")
                request = BenchRequest(model=path, device=target.name, settings=settings, runtime=runtime,
                                       export_dir=out / "exported")
                result = attempt("measure", f"{label}/{target.name}/{runtime}", lambda: run_bench(request))
                if result is not None:
                    _append(results, {**result, "label": label, "device": f"{target.name}/{runtime}",
                                      "test_accuracy": accuracy})

    on_stage("predict: calibrating own intel-cpu predictors")
    own = attempt("calibrate", "intel-cpu",
                  lambda: calibrate("intel-cpu", out / "predictors" / "intel-cpu", samples=calibration_samples,
                                    seed=seed))
    predicted_devices = [t.name for t in targets.values() if t.latency_source == "predicted" and has_predictor(t.name)]
    for label, path in checkpoints.items():
        if own is not None:
            on_stage(f"predict: {label} on intel-cpu (own predictor)")
            result = attempt("predict", f"{label}/intel-cpu", lambda: predict(path, "intel-cpu", predictor=str(own)))
            if result is not None:
                _append(results, {**result, "label": label, "device": "intel-cpu/predicted"})
        for device in predicted_devices:
            on_stage(f"predict: {label} on {device} (nn-Meter)")
            result = attempt("predict", f"{label}/{device}", lambda: predict(path, device))
            if result is not None:
                _append(results, {**result, "label": label})

    on_stage("report: Pareto fronts")
    report = attempt("report", "pareto", lambda: write_report(load_results([results]), out / "report"))
    summary = {
        "out": str(out),
        "preset": preset.name,
        "sparsity": sparsity,
        "models": [_model_row(label, path, results) for label, path in checkpoints.items()],
        "exports": exports,
        "predicted_devices": predicted_devices,
        "skipped_devices": sorted(t.name for t in targets.values()
                                  if t.latency_source == "predicted" and t.name not in predicted_devices),
        "report": report and report["html"],
        "failures": failures,
    }
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, out / "summary.json")
    return summary


def _runtimes_of(target: Any) -> list[str]:
    """The runtimes a local target's exports run in: its own, then one per extra format."""
    from dass_edge.targets import RUNTIMES_OF_FORMAT

    runtimes = [target.runtime]
    for fmt in getattr(target, "extra_formats", ()):
        runtimes += [r for r in RUNTIMES_OF_FORMAT.get(fmt, ()) if r in LOCAL_RUNTIMES and r not in runtimes][:1]
    return runtimes


def _model_row(label: str, path: Path, results: Path) -> dict[str, Any]:
    summary = ckpt_io.summary(ckpt_io.load(path), path)
    latencies = {}
    if results.is_file():
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("label") == label:
                latencies[entry["device"]] = entry.get("median_ms")
    return {"label": label, "arch": summary["arch"], "variant": summary["variant"],
            "test_accuracy": summary["test_accuracy"], "params": summary["params"],
            "nonzero_params": summary["nonzero_params"], "checkpoint": str(path), "latency_ms": latencies}
