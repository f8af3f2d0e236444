"""Connectivity-preserving masks for tests and benchmarks of compaction.

Magnitude pruning of *random* weights at 99% per layer cuts every path from input to output (the output
stops depending on the input), which a trained network never does. These masks keep the per-layer budget
of magnitude pruning but spend it only on weights that read input channels which still vary with the input:
layers are visited in execution order and each one's live inputs are measured on a random batch with the
earlier layers already masked. Output channels that get no weight die, as they do in trained sparse nets.

Liveness is measured with BatchNorm on batch statistics, because the running statistics of an untrained
network let activations blow up and saturate ReLU6 deep down (every channel would look constant). At the
end the running statistics are re-estimated on random inputs for the same reason, and BN shifts are drawn
non-zero so dead channels carry constants, as in trained networks (compaction must propagate them).
"""

from __future__ import annotations

import torch
from torch import nn

from dass_edge.search import sparse
from dass_edge.search.sparse import kept_count


def connected_masks(model: nn.Module, sparsity: float, input_shape: tuple[int, ...], seed: int = 0) -> None:
    """Set every sparse layer's mask (and zero its pruned weights), keeping paths from input to output alive:
    the per-layer budget of magnitude pruning, spent on weights that read live inputs (sparse.connected_masks)."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randn((8, *input_shape[1:]), generator=generator)
    sparse.set_mode(model, "masked", sparsity)
    sparse.connected_masks(model, batch, lambda layer: layer.weight.detach().abs(),
                           lambda layer: kept_count(layer.weight.numel(), sparsity))
    _calibrate(model, [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)], batch, generator)


def _calibrate(model: nn.Module, norms: list[nn.BatchNorm2d], batch: torch.Tensor, generator: torch.Generator) -> None:
    with torch.no_grad():
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration batches
            norm.weight.copy_(1.0 + 0.2 * torch.randn(norm.weight.shape, generator=generator))
            norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=generator))
        model.train()
        for _ in range(4):
            model(torch.randn(batch.shape, generator=generator))
        for norm in norms:
            norm.momentum = 0.1
    model.eval()

