"""Does 99% sparsity pay at run time? The sparse C export against ONNX Runtime, OpenVINO and LiteRT.

For each network: the C export (dass_edge.codegen, loop forms measured on this machine, built for the
intel-cpu target) and the masked and compact exports of the three runtimes (compact padded to 8
channels too for ONNX Runtime and OpenVINO, as exported for them here), all on 1 thread, timed in one
interleaved run (each round times every variant in turn, the order rotating by round; a variant's figure is
the median of its round medians). Printed per network: dense, compact and non-zero MACs, the medians, the
speed-up over the fastest runtime variant, the achieved non-zero GMAC/s (from the C median, a Python call
included, and from the export's stand-alone program), the GMAC/s of a dense conv of the network's busiest
sparse conv shape generated the same way and timed by its program (the distance to the floor), compile time
and library size, and the C output's max abs difference from the masked PyTorch model.

``--precisions fp32 int8`` also builds the C export with int8 weights (one float scale per output channel,
dass_edge.codegen.quantise), timed in the same interleaved run as ``c int8``; for each C build it prints the
source and library sizes, its max abs difference and, for the demo's checkpoints, its top-1 accuracy on the
checkpoint's test split next to PyTorch's.

Networks: the demo's four 99% checkpoints (runs/demo/models, written by ``dass-edge demo``; trained masks)
and ``dass-tiny``: the demo's DASS genotype at DASS-Tiny size (16 cells, 30 channels), 3x32x32 inputs, with
path-preserving synthetic masks (dass_edge.compact.masks.connected_masks, 99% per layer), since training it
costs hours here. Exports are cached under --work.

    nice -n 10 .venv/bin/python benchmarks/sparse_codegen.py
    nice -n 10 .venv/bin/python benchmarks/sparse_codegen.py --models dass-custom-99 --rounds 5
    nice -n 10 .venv/bin/python benchmarks/sparse_codegen.py --models dass-custom-99 --precisions fp32 int8
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dass_edge import checkpoint as ckpt_io
from dass_edge import runtimes
from dass_edge.checkpoint import Checkpoint
from dass_edge.codegen.ir import Conv
from dass_edge.codegen.quantise import PRECISIONS
from dass_edge.data.datasets import load_dataset
from dass_edge.export import get_exporter
from dass_edge.export.choice import deployable
from dass_edge.runtimes import runner
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.targets import RUNTIMES_OF_FORMAT, get_target

log = logging.getLogger("sparse_codegen")
DEMO = Path("runs/demo/models")
DEMO_MODELS = ("dass-custom-99", "darts-v2-custom-99", "mobilenet-v2-custom-99", "resnet-18-custom-99")
TINY = "dass-tiny"
FORMATS = ("onnx", "openvino", "tflite")


@dataclass
class Variant:
    name: str  # "c" (fp32), "c int8", or "<runtime> <form>" (masked, compact/1, compact/8)
    path: Path
    runtime: str
    round_medians_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.round_medians_ms)


@dataclass
class Network:
    name: str
    model: nn.Module  # the masked model, the reference
    shape: tuple[int, ...]
    info: dict = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    checkpoint: Checkpoint | None = None  # the demo's (its data set gives the accuracies); None for dass-tiny

    def c_builds(self) -> list[Variant]:
        return [v for v in self.variants if v.runtime == "c"]


def load_network(name: str) -> Network:
    if name != TINY:
        checkpoint = ckpt_io.load(DEMO / f"{name}.pt")
        return Network(name, checkpoint.build().eval(), tuple(checkpoint.input_shape), checkpoint=checkpoint)
    from dass_edge.compact.masks import connected_masks

    genotype = ckpt_io.load(DEMO / "dass-custom-99.pt").spec.genotype
    torch.manual_seed(0)
    model = build_model(ModelSpec("dass", genotype=genotype, image_size=32).with_variant("tiny")).eval()
    connected_masks(model, 0.99, (1, 3, 32, 32))
    return Network(name, model, (1, 3, 32, 32), {"masks": "connected_masks (synthetic, path-preserving)"})


# The forms each runtime is timed in: masked, compact, and compact with channel counts padded to 8, the form
# export/choice.py ships for ONNX Runtime and OpenVINO here (LiteRT ships compact/1). The C export is built
# from compact/1: it drops unread channels itself.
FORMS = {"masked": (1, False), "compact/1": (1, True), "compact/8": (8, True)}
TIMED = {"onnx": ("masked", "compact/1", "compact/8"), "openvino": ("masked", "compact/1", "compact/8"),
         "tflite": ("masked", "compact/1"), "c": ("compact/1",)}


def export_all(network: Network, work: Path, precisions: tuple[str, ...] = ("fp32",)) -> None:
    """Every format in every form it is timed in (the C export in each of ``precisions``), each made once
    and cached in ``work`` (``work`` is keyed by network name only: delete it after retraining)."""
    target = get_target("intel-cpu")
    for form, (multiple, compact) in FORMS.items():
        deployed, counts = deployable(network.model, network.shape, multiple, compact)
        if form == "compact/1":
            network.info.update(dense_macs=counts["macs_before"], compact_macs=counts["macs_after"])
        for fmt in (f for f in (*FORMATS, "c") if form in TIMED[f]):
            for precision in precisions if fmt == "c" else ("fp32",):
                suffix = "" if precision == "fp32" else f"-{precision}"
                out = work / network.name / f"{fmt}{suffix}-{form.replace('/', '')}"
                runtime = RUNTIMES_OF_FORMAT[fmt][0]
                files = sorted(out.glob("model.so" if fmt == "c" else f"model.{'xml' if fmt == 'openvino' else fmt}"))
                if not files:
                    out.mkdir(parents=True, exist_ok=True)
                    started = time.perf_counter()
                    spec = replace(target, format=fmt, runtime=runtime, extra_formats=(), precision=precision)
                    files = [exporter(fmt, precision)(deployed, network.shape, spec, out, out).model_file]
                    log.info("%s: %s%s %s exported in %.0f s", network.name, fmt, suffix, form,
                             time.perf_counter() - started)
                name = f"c{suffix.replace('-', ' ')}" if fmt == "c" else f"{runtime} {form}"
                network.variants.append(Variant(name, files[0], runtime))


def exporter(fmt: str, precision: str):
    """``get_exporter``'s, but the C exporter itself for int8: its int8 is weights only and needs none of the
    calibration images ``get_exporter`` asks every int8 export for."""
    if fmt == "c" and precision != "fp32":
        from dass_edge.export.c import export
        return export
    return get_exporter(fmt)


def time_interleaved(network: Network, rounds: int, runs: int, min_seconds: float) -> None:
    x = runner.fixed_input(list(network.shape), np.float32)
    sessions = [runtimes.load(v.path, v.runtime, threads=1) for v in network.variants]
    for session in sessions:
        runner.time_rounds(session._run, x, 20, 1, 0.0)  # first inference and warm-up, outside the rounds
    for r in range(rounds):
        order = list(range(len(sessions)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            timing = runner.time_rounds(sessions[i]._run, x, 2, runs, min_seconds)
            network.variants[i].round_medians_ms.append(statistics.median(timing["rounds_ns"][0]) / 1e6)
    with torch.no_grad():
        expected = network.model(torch.from_numpy(x)).numpy()
    for variant, session in zip(network.variants, sessions):
        if variant.runtime == "c":
            diff = float(np.abs(session.run(x).reshape(expected.shape) - expected).max())
            network.info["builds"][variant.name]["max_abs_diff"] = diff
    network.info["max_abs_diff"] = network.info["builds"]["c"]["max_abs_diff"]


def c_details(network: Network) -> None:
    """Non-zero MACs, compile time, source and library size of each C build, from its build record (the
    table's columns are the fp32 build's)."""
    builds = network.info.setdefault("builds", {})
    for c in network.c_builds():
        record = json.loads((c.path.parent / "build.json").read_text())
        builds[c.name] = {"nonzero_macs": record["nonzero_macs"], "compile_s": record["compile_seconds"],
                          "source_kb": (c.path.parent / "model.c").stat().st_size / 1024,
                          "library_kb": c.path.stat().st_size / 1024, "forms": record["layer_forms"]}
    network.info.update({key: builds["c"][key] for key in ("nonzero_macs", "compile_s", "library_kb", "forms")})


def accuracies(network: Network) -> None:
    """Top-1 of PyTorch (the masked model) and of each C build on the checkpoint's test split, one image per
    call as the builds run (int8 weights cost what accuracy they cost)."""
    if network.checkpoint is None:
        return
    data = network.checkpoint.data
    split = load_dataset(data["name"], data.get("data_dir"), network.checkpoint.spec.image_size).subset(
        None, data["test_samples"])
    images, labels = split.x_test.numpy(), split.y_test.numpy()
    with torch.no_grad():
        network.info["pytorch_accuracy"] = float((network.model(split.x_test).argmax(1).numpy() == labels).mean())
    for c in network.c_builds():
        session = runtimes.load(c.path, "c", threads=1)
        answers = np.array([int(np.argmax(session.run(image[None]))) for image in images])
        network.info["builds"][c.name]["test_accuracy"] = float((answers == labels).mean())
    network.info["test_images"] = len(labels)


def busiest_conv(network: Network) -> Conv:
    """The sparse conv (under half its weights non-zero: a dense stem is no sparse layer's shape) with the
    most non-zero MACs in the network, as the C generator sees it."""
    from dass_edge.codegen.lower import lower
    from dass_edge.codegen.passes import optimise

    deployed, _ = deployable(network.model, network.shape, 1, True)
    convs = optimise(lower(deployed, network.shape)).convs()
    return max((c for c in convs if c.nonzeros < c.weight.size / 2), key=lambda conv: conv.macs())


def program_seconds(program: Path, rounds: int, runs: int) -> float:
    """Median of round medians of the export's stand-alone program (the kernel alone: no Python call)."""
    done = subprocess.run([str(program), "--warmup", "20", "--runs", str(runs), "--min-seconds", "0.05",
                           "--rounds", str(rounds)], capture_output=True, text=True, check=True)
    return statistics.median(statistics.median(r) for r in json.loads(done.stdout)["rounds_ns"]) / 1e9


def dense_floor(network: Network, work: Path, rounds: int, runs: int) -> None:
    """GMAC/s of a dense conv of the busiest conv's shape, generated, built and timed the same way, and
    (both from the stand-alone programs, so that a Python call does not hide the kernels) the network's."""
    conv = busiest_conv(network)
    out, (c_in, h, w) = conv.weight.shape[0], conv.inputs[0].shape
    layer = nn.Sequential(nn.Conv2d(c_in, out, conv.kernel, conv.stride, conv.padding, conv.dilation, conv.groups)).eval()
    folder = work / network.name / "dense-floor"
    if not (folder / "model.so").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        spec = replace(get_target("intel-cpu"), format="c", runtime="c", extra_formats=())
        get_exporter("c")(layer, (1, c_in, h, w), spec, folder, folder)
    macs = layer[0].weight.numel() * conv.output.shape[1] * conv.output.shape[2]
    c = next(v for v in network.variants if v.name == "c")
    network.info.update(floor_shape=f"{c_in}->{out} k{conv.kernel[0]} s{conv.stride[0]} g{conv.groups} {h}x{w}",
                        floor_gmacs=macs / program_seconds(folder / "model-bench", rounds, runs) / 1e9,
                        program_gmacs=network.info["nonzero_macs"] / program_seconds(
                            c.path.parent / "model-bench", rounds, runs) / 1e9)


def table(networks: list[Network]) -> str:
    head = (f"{'network':24} {'MMACs dense/compact/nz':>24} " + " ".join(f"{v.name:>20}" for v in networks[0].variants)
            + f" {'best runtime':>12} {'speed-up':>8} {'nz GMAC/s':>9} {'program':>7} {'dense conv':>10} {'compile s':>9}"
            f" {'lib KB':>7} {'max|diff|':>9}")
    lines = [head, "(ms: medians of round medians)"]
    for n in networks:
        others = [v for v in n.variants if v.runtime != "c"]
        best = min(others, key=lambda v: v.median_ms)
        c = next(v for v in n.variants if v.name == "c")
        macs = f"{n.info['dense_macs'] / 1e6:.2f}/{n.info['compact_macs'] / 1e6:.2f}/{n.info['nonzero_macs'] / 1e6:.3f}"
        lines.append(f"{n.name:24} {macs:>24} " + " ".join(f"{v.median_ms:20.4f}" for v in n.variants)
                     + f" {best.name:>12} {best.median_ms / c.median_ms:7.1f}x"
                     f" {n.info['nonzero_macs'] / c.median_ms / 1e6:9.2f} {n.info['program_gmacs']:7.2f}"
                     f" {n.info['floor_gmacs']:10.2f}"
                     f" {n.info['compile_s']:9.1f} {n.info['library_kb']:7.0f} {n.info['max_abs_diff']:9.1e}")
    return "\n".join(lines)


def builds_table(network: Network) -> str:
    """One line per C build: latency, sizes, parity and, with a data set, test accuracy."""
    info = network.info
    reference = (f"  (PyTorch {info['pytorch_accuracy']:.2%} on {info['test_images']} test images)"
                 if "pytorch_accuracy" in info else "")
    lines = [f"  {'C build':8} {'ms':>8} {'source KB':>9} {'library KB':>10} {'nz MACs':>8} {'max|diff|':>9}"
             f" {'top-1':>6}{reference}"]
    for c in network.c_builds():
        b = network.info["builds"][c.name]
        top1 = f"{b['test_accuracy']:6.2%}" if "test_accuracy" in b else f"{'-':>6}"
        lines.append(f"  {c.name:8} {c.median_ms:8.4f} {b['source_kb']:9.0f} {b['library_kb']:10.0f}"
                     f" {b['nonzero_macs']:8d} {b['max_abs_diff']:9.1e} {top1}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[*DEMO_MODELS, TINY], choices=[*DEMO_MODELS, TINY])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=0.05, help="per variant and round")
    parser.add_argument("--work", type=Path, default=Path("runs/sparse_codegen"), help="exports are cached here")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=PRECISIONS,
                        help="the C export's weights: fp32 (the table's C column), and int8 timed next to it")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                        help="the core everything runs on (the run is pinned: less noise between variants)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    networks = []
    for name in args.models:
        network = load_network(name)
        export_all(network, args.work, tuple(dict.fromkeys(["fp32", *args.precisions])))
        c_details(network)
        time_interleaved(network, args.rounds, args.runs, args.min_seconds)
        dense_floor(network, args.work, args.rounds, args.runs)
        accuracies(network)
        networks.append(network)
        log.info("%s: %s", name, {v.name: round(v.median_ms, 4) for v in network.variants})
    print(table(networks), flush=True)
    for n in networks:
        print(f"{n.name}: C loop forms {n.info['forms']}; dense floor conv {n.info['floor_shape']}"
              + (f"; masks {n.info['masks']}" if "masks" in n.info else ""))
        print(builds_table(n))
    if args.json:
        args.json.write_text(json.dumps([{"name": n.name, "info": n.info, "variants": {
            v.name: v.round_medians_ms for v in n.variants}} for n in networks], indent=1))


if __name__ == "__main__":
    main()
