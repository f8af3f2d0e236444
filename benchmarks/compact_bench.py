"""Does compaction make 99% sparsity pay? Masked-dense export vs compact export, same run, same machine.

For each network at 99% sparsity: MACs and ONNX file size before/after compaction, batch-1 median latency
in ONNX Runtime and OpenVINO (CPU, FP32 hint, 1 thread) of the masked-dense export and of compact exports
with every ``channel_multiple``, and the compact file's max abs error against the masked PyTorch model.

Masks: ``dass_edge.compact.masks.connected_masks`` on randomly initialised networks (training DASS-Tiny and
-Small here costs hours), or trained checkpoints' own (``--checkpoints``, e.g. the demo's four networks). It keeps magnitude pruning's per-layer budget but spends it only on weights that
read channels which still vary with the input, so paths from input to output stay alive as in a trained
network; latency depends on the kept structure, not on the weights' values.

Timing interleaves the variants round by round (the machine is shared) and reports medians over all rounds.

    .venv/bin/python benchmarks/compact_bench.py                      # all networks, multiples 1 4 8 16
    .venv/bin/python benchmarks/compact_bench.py --models darts-v2-tiny --rounds 3
    .venv/bin/python benchmarks/compact_bench.py --checkpoints runs/demo/models/*-99.pt --multiples 1 8 --litert
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dass_edge import checkpoint, runtimes
from dass_edge.runtimes import runner
from dass_edge.compact.masks import connected_masks
from dass_edge.export.compact import compact_model
from dass_edge.export.onnx import write_onnx
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.search.sparse import bake

log = logging.getLogger("compact_bench")
INPUT = (1, 3, 32, 32)
SPECS = {
    "darts-v2-tiny": ModelSpec("darts-v2").with_variant("tiny"),
    "darts-v2-small": ModelSpec("darts-v2").with_variant("small"),
    "mobilenet-v2": ModelSpec("mobilenet-v2"),
    "resnet-18": ModelSpec("resnet-18"),
}
RUNTIMES = ["onnxruntime", "openvino"]  # --litert appends "litert" (converted with litert-torch, slow)


@dataclass
class Variant:
    name: str            # "masked" or "compact/m" for channel multiple m
    path: str            # the ONNX file (ONNX Runtime and OpenVINO read it)
    macs: int
    size_bytes: int
    max_abs_diff: float  # ONNX Runtime output vs the masked PyTorch model
    samples_ms: dict[str, list[float]] = field(default_factory=dict)
    tflite_path: str | None = None

    def file_for(self, runtime: str) -> str:
        return self.tflite_path if runtime == "litert" and self.tflite_path else self.path

    def median_ms(self, runtime: str) -> float:
        return statistics.median(self.samples_ms[runtime])


def masked_network(name: str, sparsity: float) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """A network of SPECS with synthetic path-preserving masks, or a checkpoint's own (a path)."""
    if name.endswith(".pt"):
        ckpt = checkpoint.load(Path(name))
        return ckpt.build().eval(), tuple(ckpt.input_shape)
    torch.manual_seed(0)
    model = build_model(SPECS[name])
    connected_masks(model, sparsity, INPUT, seed=0)
    return model, INPUT


def build_variants(name: str, sparsity: float, multiples: list[int], work: Path) -> tuple[list[Variant], dict]:
    """Mask the network, export it masked-dense and compact at every multiple; check each file's outputs."""
    model, shape = masked_network(name, sparsity)
    x = runner.fixed_input(list(shape), np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    start = time.perf_counter()
    exports: list[tuple[str, torch.nn.Module, int]] = []
    compaction = {}
    for multiple in multiples:
        result = compact_model(model, shape, multiple)
        if not exports:
            exports.append(("masked", bake(model).eval(), result.macs_before))
        exports.append((f"compact/{multiple}", result.model, result.macs_after))
        compaction[multiple] = {"params_before": result.params_before, "params_after": result.params_after,
                                "nonzero_params": result.nonzero_params}
    variants = []
    for label, module, macs in exports:
        path = work / f"{Path(name).stem}-{label.replace('/', '')}.onnx"
        write_onnx(module, shape, path)
        diff = float(np.abs(runtimes.load(path, "onnxruntime", threads=1).run(x) - expected).max())
        variant = Variant(label, str(path), macs, path.stat().st_size, diff)
        if "litert" in RUNTIMES:
            variant.tflite_path = str(path.with_suffix(".tflite"))
            litert_torch = runtimes.require("litert_torch", "tflite")
            litert_torch.convert(module.eval(), (torch.zeros(shape),)).export(variant.tflite_path)
        variants.append(variant)
    log.info("%s: compacted and exported %d files in %.0f s", name, len(variants), time.perf_counter() - start)
    return variants, {"compaction": compaction}


def time_variants(variants: list[Variant], rounds: int, runs: int) -> None:
    """Round-robin timing: every variant and runtime gets one block of runs per round."""
    sessions = {(v.name, rt): runtimes.load(v.file_for(rt), rt, threads=1) for v in variants for rt in RUNTIMES}
    for _ in range(rounds):
        for variant in variants:
            for runtime in RUNTIMES:
                session = sessions[(variant.name, runtime)]
                x = runner.fixed_input(list(session.input_shape), np.float32)
                timing = runner.time_rounds(session._run, x, 10, runs, 0.0, 1)
                variant.samples_ms.setdefault(runtime, []).extend(ns / 1e6 for ns in timing["rounds_ns"][0])


def table(name: str, variants: list[Variant]) -> str:
    masked = variants[0]
    head = f"{'network':16} {'variant':11} {'MMACs':>8} {'size KB':>8} {'max|diff|':>9}"
    for runtime in RUNTIMES:
        head += f" {runtime + ' ms':>15} {'speed-up':>8}"
    lines = [head]
    for v in variants:
        line = f"{Path(name).stem[:16]:16} {v.name:11} {v.macs / 1e6:8.2f} {v.size_bytes / 1024:8.1f} {v.max_abs_diff:9.1e}"
        for runtime in RUNTIMES:
            line += f" {v.median_ms(runtime):15.3f} {masked.median_ms(runtime) / v.median_ms(runtime):7.2f}x"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--checkpoints", nargs="+", default=[], help="trained checkpoints instead of --models")
    parser.add_argument("--sparsity", type=float, default=0.99)
    parser.add_argument("--multiples", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument("--litert", action="store_true", help="also convert with litert-torch and time LiteRT")
    args = parser.parse_args()
    if args.litert:
        RUNTIMES.append("litert")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.checkpoints or args.models:
            variants, info = build_variants(name, args.sparsity, args.multiples, Path(tmp))
            time_variants(variants, args.rounds, args.runs)
            print(table(name, variants), flush=True)
            report[name] = {"variants": [asdict(v) for v in variants], **info}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
