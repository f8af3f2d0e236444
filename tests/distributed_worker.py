"""A few DASS search steps on a tiny supernet; every rank saves the network it ends with.

Run by tests/test_distributed.py under torchrun (``python -m torch.distributed.run ... distributed_worker.py
OUT``) and, as the reference, in the test's own process with one rank.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from dass_edge import distributed
from dass_edge.search import algorithm
from dass_edge.search.algorithm import StepConfig
from dass_edge.search.supernet import SearchNetwork

# 25 images per global batch: split 13 + 12 over two ranks, so the uneven-share arithmetic is exercised too
PRETRAIN = StepConfig(1, 0.05, batch_size=25, max_batches=2)
PRUNE = StepConfig(1, 0.1, batch_size=25, max_batches=2, ramp=0.5)


def run(out: Path) -> Path:
    """Pretrain and prune (weights, scores and alphas all trained); -> OUT/rank<R>.pt."""
    distributed.init("cpu")
    torch.manual_seed(0)
    # random images with a learnable label (the sign of their mean): the arithmetic is under test, not the
    # data, and loading a real set would cost each rank seconds
    x = torch.randn(100, 1, 32, 32)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, :, :16].mean(dim=(1, 2, 3)) > 0).long()
    train, val = (x[:50], y[:50]), (x[50:], y[50:])
    net = SearchNetwork(2, 3, 10, 1, steps=2, multiplier=2)  # a normal and two reduction cells, 2 nodes each
    algorithm.pretrain(net, train, val, PRETRAIN)
    algorithm.prune(net, train, val, PRUNE, 0.9, allocation="erk")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"rank{distributed.rank()}.pt"
    torch.save({"state": net.state_dict(), "genotype": net.genotype().to_json(),
                "world_size": distributed.world_size()}, path)
    return path


if __name__ == "__main__":
    run(Path(sys.argv[1]))
