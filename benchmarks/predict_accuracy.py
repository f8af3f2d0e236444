"""How well do our calibrated predictors predict whole networks on this CPU (ONNX Runtime, batch 1)?

For >= 20 held-out networks (DASS cell networks of several sizes and genotypes, MobileNet-v2 and
ResNet-18 at several widths, dense and magnitude-pruned at 90%/99% then compacted as the exporter
deploys them) this prints measured vs predicted latency, the share within +-10% and Spearman's rank
correlation. None of these networks is used by calibration (it samples single kernels).

    .venv/bin/python benchmarks/predict_accuracy.py                 # calibrates first (~1 min)
    .venv/bin/python benchmarks/predict_accuracy.py --predictor DIR # an existing predictor folder

Measured latency comes from the bench harness (dass_edge.bench.measure, median of >= 200 runs, 1 thread,
the predictor's thread count). Exported ONNX files are cached in --work, so a rerun skips exporting.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from dass_edge.predict import calibrate, nnmeter
from dass_edge.search import sparse
from dass_edge.search.genotype import Genotype
from dass_edge.search.models import ModelSpec, build_model

# Two more cells of the DASS space, standing in for other search results.
SEP_HEAVY = Genotype(normal=(("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("skip_connect", 1),
                             ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1)),
                     reduce=(("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
                             ("avg_pool_3x3", 0), ("sep_conv_3x3", 2), ("max_pool_3x3", 1), ("skip_connect", 3)))
DIL_POOL = Genotype(normal=(("dil_conv_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_5x5", 1), ("skip_connect", 0),
                            ("max_pool_3x3", 2), ("dil_conv_3x3", 0), ("skip_connect", 3), ("sep_conv_3x3", 1)),
                    reduce=(("dil_conv_5x5", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("dil_conv_3x3", 1),
                            ("avg_pool_3x3", 0), ("sep_conv_5x5", 2), ("skip_connect", 2), ("max_pool_3x3", 3)))


def models() -> list[tuple[str, ModelSpec, float]]:
    """(name, spec, sparsity): 24 networks."""
    out: list[tuple[str, ModelSpec, float]] = []
    for cells, ch in ((3, 8), (5, 12), (8, 16), (6, 24)):
        out.append((f"darts-v2-{cells}c{ch}", ModelSpec("darts-v2", cells=cells, channels=ch), 0.0))
    out.append(("darts-v2-5c12-mnist", ModelSpec("darts-v2", in_channels=1, cells=5, channels=12), 0.0))
    for name, g in (("sep", SEP_HEAVY), ("dil", DIL_POOL)):
        for cells, ch in ((4, 10), (6, 16)):
            out.append((f"dass-{name}-{cells}c{ch}", ModelSpec("dass", cells=cells, channels=ch, genotype=g), 0.0))
    for sparsity in (0.9, 0.99):
        out.append((f"darts-v2-8c16-s{sparsity}", ModelSpec("darts-v2", cells=8, channels=16), sparsity))
        out.append((f"dass-dil-6c16-s{sparsity}", ModelSpec("dass", cells=6, channels=16, genotype=DIL_POOL), sparsity))
    for width in (0.25, 0.5, 1.0):
        out.append((f"mobilenet-v2-w{width}", ModelSpec("mobilenet-v2", width=width), 0.0))
    for width in (0.125, 0.25, 0.5):
        out.append((f"resnet-18-w{width}", ModelSpec("resnet-18", width=width), 0.0))
    out.append(("mobilenet-v2-w0.5-s0.9", ModelSpec("mobilenet-v2", width=0.5), 0.9))
    out.append(("resnet-18-w0.25-s0.9", ModelSpec("resnet-18", width=0.25), 0.9))
    return out


def export(name: str, spec: ModelSpec, sparsity: float, work: Path) -> Path:
    """Build, prune by magnitude, bake, compact and export as the deploy path does (cached)."""
    from dass_edge.export.compact import compact_model
    from dass_edge.export.onnx import write_onnx

    path = work / f"{name}.onnx"
    if path.is_file():
        return path
    torch.manual_seed(0)
    model = build_model(spec).eval()
    if sparsity:
        sparse.magnitude_masks(model, sparsity)
    baked = sparse.bake(model).eval()
    shape = (1, spec.in_channels, spec.image_size, spec.image_size)
    if sparsity:
        baked = compact_model(baked, shape).model
    write_onnx(baked, shape, path)
    return path


def measure(path: Path, threads: int) -> tuple[float, float]:
    """(median, min) latency from the bench harness. On a shared machine the minimum is the better
    estimate of the latency itself: other processes only ever add time."""
    from dass_edge.bench.measure import Settings, measure_file, result_from_timing

    settings = Settings(warmup=20, runs=200, min_seconds=0.5, threads=threads)
    raw = measure_file(path, settings, "onnxruntime")
    result = result_from_timing(raw, device="intel-cpu", latency_source="local", settings=settings, model=str(path))
    return result["median_ms"], result["min_ms"]


def summary(label: str, measured: list[float], predicted: list[float]) -> str:
    errors = [abs(p / m - 1) for m, p in zip(measured, predicted)]
    within = sum(e <= 0.10 for e in errors) / len(errors)
    return (f"vs {label:6s}: {within:.0%} within ±10%, {sum(e <= 0.2 for e in errors) / len(errors):.0%} within "
            f"±20%, median |error| {statistics.median(errors):.1%}, max {max(errors):.1%}, Spearman rho "
            f"{spearman(measured, predicted):.3f}")


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", type=Path, help="predictor folder (default: calibrate into --work)")
    parser.add_argument("--samples", type=int, default=300, help="calibration samples per kernel type")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dass-edge-predict-bench"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    folder = args.predictor or calibrate.calibrate("intel-cpu", args.work / "predictor", samples=args.samples,
                                                   threads=args.threads, progress=False)
    print(f"predictor {folder} ready after {time.monotonic() - started:.0f} s", flush=True)
    predictors = nnmeter.load_predictors(folder)
    rows = []
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'model':28s} {'median':>8s} {'min':>8s} {'predicted':>9s} {'err/min':>8s}  kernels")
    for name, spec, sparsity in models():
        path = export(name, spec, sparsity, args.work)
        median, fastest = measure(path, args.threads)
        p = nnmeter.predict_onnx(path, predictors)
        rows.append((median, fastest, p.latency_ms))
        print(f"{name:28s} {median:8.4f} {fastest:8.4f} {p.latency_ms:9.4f} {p.latency_ms / fastest - 1:+8.1%}  "
              f"{p.kernels_predicted}/{p.kernels_found}", flush=True)
    print(f"\n{len(rows)} models, load average at end {os.getloadavg()[0]:.1f}, {time.monotonic() - started:.0f} s")
    print(summary("min", [r[1] for r in rows], [r[2] for r in rows]))
    print(summary("median", [r[0] for r in rows], [r[2] for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
