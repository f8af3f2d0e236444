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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dass_edge import checkpoint as ckpt_io
from dass_edge.errors import DassEdgeError
from dass_edge.search.presets import Preset
from dass_edge.workflows import DataChoice, run_search, run_train

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".onnx", ".xml", ".tflite", ".pt", ".so")  # .bin files are the IR's weights, not models


@dataclass(frozen=True)
class DemoModel:
    label: str
    arch: str  # "dass" means the genotype this demo's search found
    variant: str | None


def demo_models(preset: Preset) -> tuple[DemoModel, ...]:
    """DASS at the preset's sizes (demo_variants), sparse DARTS at the first, and the two baselines."""
    variants = preset.demo_variants or (None,)
    dass = tuple(DemoModel(f"dass-{v or 'search'}", "dass", v) for v in variants)
    return dass + (DemoModel(f"sparse-darts-{variants[0] or 'custom'}", "darts-v2", variants[0]),
                   DemoModel("sparse-mobilenet-v2", "mobilenet-v2", None),
                   DemoModel("sparse-resnet-18", "resnet-18", None))


@dataclass
class _Run:
    """Where one demo writes, and what went wrong so far (a failed model or target is recorded, not fatal)."""

    out: Path
    on_stage: Callable[[str], None]
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def results(self) -> Path:
        return self.out / "results.jsonl"

    def attempt(self, stage: str, what: str, action: Callable[[], Any]) -> Any:
        self.on_stage(f"{stage}: {what}")
        try:
            return action()
        except DassEdgeError as exc:
            self.failures.append({"stage": stage, "what": what, "error": str(exc)})
            log.warning("%s %s failed: %s", stage, what, exc)
            return None

    def record(self, entry: dict[str, Any] | None, **fields: Any) -> None:
        if entry is not None:
            with open(self.results, "a") as f:
                f.write(json.dumps({**entry, **fields}, default=str) + "\n")


def run_demo(out: Path, preset: Preset, data: DataChoice = DataChoice("mnist5k"), sparsity: float = 0.99,
             seed: int = 0, calibration_samples: int = 60, on_stage: Callable[[str], None] = log.info
             ) -> dict[str, Any]:
    """Run every stage into ``out``; returns the summary (also written to ``out/summary.json``)."""
    from dass_edge.export.table import time_rows
    from dass_edge.report.build import write_report
    from dass_edge.report.points import load_results
    from dass_edge.targets import load_targets

    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, on_stage)
    run.results.unlink(missing_ok=True)
    targets = load_targets()
    checkpoints = _train(run, preset, data, sparsity, seed)
    manifests, table = _export(run, checkpoints, targets)
    _measure(run, checkpoints, manifests, targets)
    table = run.attempt("export", "timing the export table", lambda: time_rows(table, list(targets.values())))
    predicted = _predict(run, checkpoints, targets, calibration_samples, seed)
    report = run.attempt("report", "Pareto fronts", lambda: write_report(load_results([run.results]), out / "report"))
    summary = {
        "out": str(out),
        "preset": preset.name,
        "sparsity": sparsity,
        "models": [_model_row(label, path, run.results) for label, path in checkpoints.items()],
        "exports": [{"model": label, "target": m.target, "precision": m.precision, "format": m.format,
                     "max_abs_diff": m.max_abs_diff, "compacted": m.compacted}
                    for label, by_folder in manifests.items() for m in by_folder.values()],
        "export_table": [row.to_dict() for row in table or []],
        "predicted_devices": predicted,
        "skipped_devices": sorted(t.name for t in targets.values()
                                  if t.latency_source == "predicted" and t.name not in predicted),
        "report": report and report["html"],
        "failures": run.failures,
    }
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, out / "summary.json")
    return summary


def _train(run: _Run, preset: Preset, data: DataChoice, sparsity: float, seed: int) -> dict[str, Path]:
    run.on_stage(f"search: DASS on {data.name} ({preset.name} preset, {sparsity:.1%} sparsity)")
    search = run_search(data, preset, sparsity, run.out / "search", seed)
    checkpoints = {}
    for model in demo_models(preset):
        run.on_stage(f"train: {model.label}")
        arch = f"dass:{search}" if model.arch == "dass" else model.arch
        checkpoints[model.label] = run_train(arch, data, preset, sparsity, run.out / "models", model.variant, seed)
    return checkpoints


def _precisions(target: Any, table: bool) -> tuple[str, ...]:
    """Every precision of the target for the network whose table the demo prints; for the others int8 only
    where it is timed here (their int8 points in the report), their default precision elsewhere."""
    return target.precisions if table or target.latency_source == "local" else (target.precision,)


def _export(run: _Run, checkpoints: dict[str, Path], targets: dict[str, Any]
            ) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Every model to every target; label -> export folder name -> manifest of the exports that passed,
    and the export table of the first model (DASS): a row per file, refusals included."""
    from dass_edge.export.conversions import ConversionCache
    from dass_edge.export.pipeline import admit, export_checkpoint, export_folder
    from dass_edge.export.table import Row, refused, rows_of

    manifests: dict[str, dict[str, Any]] = {}
    table: list[Row] = []
    for i, (label, path) in enumerate(checkpoints.items()):
        health = run.attempt("export", f"{label} -> every target", lambda: admit(path, allow_dead=False))
        if health is None:
            continue  # one refusal for a dead network, not one per target
        conversions = ConversionCache()  # one checkpoint's: its files are not needed after its targets
        for target in targets.values():
            for precision in _precisions(target, table=i == 0):
                folder = export_folder(Path(), label, target, precision).name
                manifest = run.attempt("export", f"{label} -> {folder}",
                                       lambda: export_checkpoint(path, target, run.out / "exported",
                                                                 precision=precision, conversions=conversions,
                                                                 health=health))
                if manifest is not None:
                    manifests.setdefault(label, {})[folder] = manifest
                if i == 0:
                    table += rows_of(manifest.to_dict()) if manifest is not None else [
                        refused(target, precision, DassEdgeError(run.failures[-1]["error"]))]
    return manifests, table


def _measure(run: _Run, checkpoints: dict[str, Path], manifests: dict[str, dict[str, Any]],
             targets: dict[str, Any]) -> None:
    from dass_edge import runtimes
    from dass_edge.bench.measure import Settings
    from dass_edge.bench.service import BenchRequest, run_bench
    from dass_edge.report.points import file_accuracy

    settings = Settings(warmup=10, runs=50, min_seconds=0.5)
    for label, path in checkpoints.items():
        accuracy = ckpt_io.load(path).test_accuracy
        for target, model_file, manifest in _local_files(manifests.get(label, {}), targets):
            runtime = runtimes.runtime_for(model_file)
            request = BenchRequest(model=model_file, device=target, settings=settings)
            own = file_accuracy(manifest.to_dict(), model_file)  # an int8 file's, not PyTorch's
            run.record(run.attempt("measure", f"{label} on {target} with {runtime}", lambda: run_bench(request)),
                       label=label, device=f"{target}/{runtime}", test_accuracy=accuracy if own is None else own,
                       precision=manifest.precision)


def _predict(run: _Run, checkpoints: dict[str, Path], targets: dict[str, Any], samples: int, seed: int
             ) -> list[str]:
    """Own intel-cpu predictors for every model, nn-Meter's for the devices it has predictors installed for."""
    from dass_edge.predict.calibrate import calibrate
    from dass_edge.predict.service import has_predictor, predict

    own = run.attempt("calibrate", "own intel-cpu predictors",
                      lambda: calibrate("intel-cpu", run.out / "predictors" / "intel-cpu", samples=samples, seed=seed))
    devices = [t.name for t in targets.values() if t.latency_source == "predicted" and has_predictor(t.name)]
    for label, path in checkpoints.items():
        if own is not None:
            run.record(run.attempt("predict", f"{label} on intel-cpu (own predictor)",
                                   lambda: predict(path, "intel-cpu", predictor=str(own))),
                       label=label, device="intel-cpu/predicted")
        for device in devices:
            run.record(run.attempt("predict", f"{label} on {device} (nn-Meter)", lambda: predict(path, device)),
                       label=label)
    return devices


def _local_files(manifests: dict[str, Any], targets: dict[str, Any]) -> list[tuple[str, Path, Any]]:
    """(target, model file, its manifest) for every exported file this machine can time: one per runtime of
    each local target (intel-cpu: ONNX, OpenVINO IR, TFLite, C) at each precision; CUDA targets only where
    torch sees a GPU."""
    import torch

    found = []
    for manifest in manifests.values():
        target = targets[manifest.target]
        if target.latency_source != "local" or (target.runtime_device == "cuda" and not torch.cuda.is_available()):
            continue
        folder = Path(manifest.path)
        found += [(target.name, folder / f, manifest) for f in manifest.files if Path(f).suffix in MODEL_SUFFIXES]
    return found


def _model_row(label: str, path: Path, results: Path) -> dict[str, Any]:
    summary = ckpt_io.summary(ckpt_io.load(path), path)
    latencies = {}
    if results.is_file():
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("label") == label and entry.get("precision") != "int8":  # int8: the export table
                latencies[entry["device"]] = entry.get("median_ms")
    return {"label": label, "arch": summary["arch"], "variant": summary["variant"],
            "test_accuracy": summary["test_accuracy"], "params": summary["params"],
            "nonzero_params": summary["nonzero_params"], "checkpoint": str(path), "latency_ms": latencies,
            "input_dependent": (summary.get("health") or {}).get("input_dependent"),
            "alive_mac_share": (summary.get("health") or {}).get("alive_mac_share")}
