"""What BatchNorm re-estimation costs, and whether fewer images change its result.

    .venv/bin/python benchmarks/recalibration_bench.py [--preset quick] [--repeats 3] [--threads 2]

For the preset's supernet and its DARTS-V2 network (pruned with random scores at 99%, as the prune step
leaves them), times ``recalibrate_bn`` with the settings it had before (statistics and constant-channel
passes on 2,048 images) and with today's defaults, as the median of ``--repeats`` runs, and prints the
ratio and how far the two settings' eval-mode logits on 256 test digits are apart (relative to their scale).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dass_edge.data.datasets import load_dataset
from dass_edge.search import sparse
from dass_edge.search.batchnorm import recalibrate_bn
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.search.presets import get_preset

BEFORE = {"max_images": 2048, "settle_images": 2048}


def _pruned(spec: ModelSpec, sparsity: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(spec)
    sparse.init_scores(model)
    sparse.allocate(model, sparsity, "erk")
    sparse.set_mode(model, "prune", sparsity)
    sparse.freeze_masks(model)
    return model


def _time(model: torch.nn.Module, x: torch.Tensor, repeats: int, **settings: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        recalibrate_bn(model, x, **settings)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--sparsity", type=float, default=0.99)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    data = load_dataset("mnist5k")
    x, probe = data.x_train[:4000], data.x_test[:256]
    c, h, _ = data.input_shape
    specs = {
        f"supernet {preset.search_cells}x{preset.search_channels}":
            ModelSpec("supernet", 10, c, h, "search", preset.search_cells, preset.search_channels),
        f"darts-v2 {preset.train_cells}x{preset.train_channels}":
            ModelSpec("darts-v2", 10, c, h, "custom", preset.train_cells, preset.train_channels),
    }
    print(f"preset {preset.name}, {args.threads} threads, median of {args.repeats}")
    for name, spec in specs.items():
        model = _pruned(spec, args.sparsity)
        logits = {}
        times = {}
        for label, settings in (("before", BEFORE), ("now", {})):
            times[label] = _time(model, x, args.repeats, **settings)
            with torch.no_grad():
                logits[label] = model.eval()(probe)
        scale = logits["before"].abs().max().clamp_min(1.0)
        apart = float((logits["now"] - logits["before"]).abs().max() / scale)
        print(f"{name}: before {times['before']:.1f} s, now {times['now']:.1f} s "
              f"({times['before'] / times['now']:.1f}x faster); logits apart by {apart:.2e} of their scale")


if __name__ == "__main__":
    main()
