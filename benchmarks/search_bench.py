"""Training throughput on this CPU: seconds per batch and images per second of every DASS step.

    .venv/bin/python benchmarks/search_bench.py [--preset quick] [--sparsity 0.99] [--seeds 0 1]
        [--image-size 32] [--batches 10]

Prints, for the preset: time per batch of each search step (supernet pretrain and prune, each with its alpha
step) and of the fine-tune of the searched genotype and of DARTS-V2 at the same size (--variant), with their
test accuracy. ``--image-size`` and ``--batches`` size a before/after throughput run (the quick preset at
its own 16x16 against 32x32) without the whole schedule; the accuracy comparison with several seeds is
benchmarks/dass_vs_darts.py.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dass_edge import checkpoint
from dass_edge.search.presets import get_preset
from dass_edge.workflows import DataChoice, run_search, run_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--sparsity", type=float, default=0.99)
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variant", default=None, help="Table 2 size both genotypes are retrained at (default: "
                        "DASS fine-tuned from the supernet, DARTS-V2 at the preset's size)")
    parser.add_argument("--image-size", type=int, help="side of the images (default: the preset's)")
    parser.add_argument("--batches", type=int, help="time only this many batches of one epoch per step")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    if args.batches:
        preset = preset.with_overrides(epochs=(1, 1, 1), max_batches=args.batches)
    size = args.image_size or preset.image_size
    data = DataChoice(args.data, image_size=size)
    accuracy: dict[str, list[float]] = {"dass": [], "darts-v2": []}
    print(f"preset {preset.name}, sparsity {args.sparsity}, variant {args.variant}, {args.threads} threads, "
          f"data {args.data} at {size}x{size}")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            start = time.perf_counter()
            search = run_search(data, preset, args.sparsity, out, seed, resume=False)
            search_s = time.perf_counter() - start
            for step in checkpoint.load(search).results:
                cfg = dict(zip(("pretrain", "prune"), preset.search_steps()))[step["step"]]
                print(f"seed {seed} search {step['step']:>9}: {step['seconds'] / step['batches']:.3f} s/batch, "
                      f"{step['batches'] * cfg.batch_size / step['seconds']:.1f} images/s "
                      f"({step['batches']} batches of {cfg.batch_size}, alpha step included)")
            print(f"seed {seed} search total: {search_s:.1f} s")
            for arch in ("dass", "darts-v2"):
                name = f"dass:{search}" if arch == "dass" else arch
                model = checkpoint.load(run_train(name, data, preset, args.sparsity, out, args.variant, seed))
                finetune = model.results[-1]
                print(f"seed {seed} {arch:>8} fine-tune: {finetune['seconds'] / finetune['epochs']:.2f} s/epoch, "
                      f"{finetune['batches'] * preset.finetune.batch_size / finetune['seconds']:.1f} images/s, "
                      f"test accuracy {model.test_accuracy:.4f}")
                accuracy[arch].append(model.test_accuracy)
    for arch, values in accuracy.items():
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        print(f"{arch:>8}: mean test accuracy {statistics.mean(values):.4f}{spread} over {len(values)} seed(s)")


if __name__ == "__main__":
    main()
