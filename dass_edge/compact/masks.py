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

from dass_edge.search.sparse import SparseConv2d, SparseMixin, kept_count, set_mode, sparse_layers

VARIES_ATOL = 1e-6


def connected_masks(model: nn.Module, sparsity: float, input_shape: tuple[int, ...], seed: int = 0) -> None:
    """Set every sparse layer's mask (and zero its pruned weights), keeping paths from input to output alive.

    One forward pass: a pre-hook masks each layer from the input it actually receives, which earlier layers
    (called before it) have already been masked to produce.
    """
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randn((8, *input_shape[1:]), generator=generator)
    set_mode(model, "masked", sparsity)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.momentum = 0.0  # batch statistics in the forward pass, running statistics untouched

    def mask_from_input(layer: SparseMixin, inputs: tuple[torch.Tensor, ...]) -> None:
        layer.mask.copy_(_budgeted_mask(layer, _varies(inputs[0]), sparsity))
        layer.weight.data.mul_(layer.mask)

    handles = [layer.register_forward_pre_hook(mask_from_input)  # type: ignore[attr-defined]
               for layer in sparse_layers(model)]
    try:
        model.train()
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    _calibrate(model, norms, batch, generator)


def _varies(x: torch.Tensor) -> torch.Tensor:
    """Bool per channel of a batch: does the channel differ between samples anywhere?"""
    spread = (x.amax(0) - x.amin(0)).reshape(x.shape[1], -1).amax(1)
    return spread > VARIES_ATOL


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


def _budgeted_mask(layer: SparseMixin, live: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Top-k |weight| among weights that read live inputs, k as magnitude pruning would keep."""
    weight = layer.weight.detach()
    if isinstance(layer, SparseConv2d) and layer.groups > 1:
        allowed = live.view(-1, 1, 1, 1).expand_as(weight)
    else:
        allowed = live.view(1, -1, *[1] * (weight.dim() - 2)).expand_as(weight)
    scores = torch.where(allowed, weight.abs(), torch.full_like(weight, -1.0)).flatten()
    k = min(kept_count(weight.numel(), sparsity), int(allowed.sum()) or 1)
    mask = torch.zeros_like(scores)
    mask[torch.topk(scores, k).indices] = 1.0
    return mask.view_as(weight)
