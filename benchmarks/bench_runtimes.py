"""Batch-1 latency on intel-cpu: DASS-Tiny vs sparse MobileNet-v2 vs sparse DARTS, per runtime.

Each checkpoint is exported for the intel-cpu target (ONNX, plus its OpenVINO and TFLite extra formats)
and timed with the bench harness in every runtime, next to PyTorch eager on the same network (masks baked
into plain layers). Prints a table of median (p90) latency and each runtime's speed-up over PyTorch eager.

    .venv/bin/python benchmarks/bench_runtimes.py [--threads 1] [--seconds 2] [--models dass-tiny,darts-v2]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from dass_edge import checkpoint
from dass_edge.bench.measure import Settings, measure_file, result_from_timing, time_session
from dass_edge.search import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import MODELS, checkpoints, exported_files  # noqa: E402

RUNTIME_OF_FORMAT = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


class EagerSession:
    """PyTorch eager as a runtime session: the baseline every exported runtime is compared with."""

    runtime = "torch-eager"
    version = torch.__version__
    device = "cpu"

    def __init__(self, path: Path, threads: int | None) -> None:
        ckpt = checkpoint.load(path)
        self.model = sparse.bake(ckpt.build()).eval()
        self.input_shape = ckpt.input_shape
        if threads:
            torch.set_num_threads(threads)

    def run(self, x):  # noqa: ANN001, ANN201
        with torch.inference_mode():
            return self.model(torch.from_numpy(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per measurement")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings(warmup=20, runs=100, min_seconds=args.seconds, rounds=1, threads=args.threads)
    names = tuple(args.models.split(","))
    rows = []
    for name in names:  # one model at a time, each row printed as soon as it is measured
        path = checkpoints(args.work, (name,))[name]
        eager = result_from_timing(time_session(EagerSession(path, args.threads), settings), device="intel-cpu",
                                   latency_source="local", settings=settings, model=path.name)
        rows.append((name, "torch-eager", eager["median_ms"], eager["p90_ms"], 1.0))
        print("row", *rows[-1], flush=True)
        for fmt, file in sorted(exported_files(path, "intel-cpu", args.work).items()):
            raw = measure_file(file, settings, RUNTIME_OF_FORMAT[fmt], "CPU")
            got = result_from_timing(raw, device="intel-cpu", latency_source="local", settings=settings,
                                     model=file.name)
            rows.append((name, f"{got['runtime']} {got['runtime_version']}", got["median_ms"], got["p90_ms"],
                         eager["median_ms"] / got["median_ms"]))
            print("row", *rows[-1], flush=True)
    print(f"\nbatch 1, 1x{checkpoint.load(path).input_shape[1]}x32x32, {args.threads} thread(s), "
          f">= {args.seconds:g} s per measurement")
    print(f"{'model':<14} {'runtime':<26} {'median ms':>10} {'p90 ms':>9} {'vs eager':>9}")
    for name, runtime, median, p90, speedup in rows:
        print(f"{name:<14} {runtime:<26} {median:>10.4f} {p90:>9.4f} {speedup:>8.2f}x")


if __name__ == "__main__":
    main()
