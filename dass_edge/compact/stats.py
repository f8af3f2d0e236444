"""Size and cost counts of a network: parameters and multiply-accumulates of its convs and linears."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass at ``input_shape``, counted from the layers' actual output sizes."""
    total = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # in/groups * kernel area for a conv, in_features for a linear
        total += per_output * output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_stored(model: nn.Module) -> int:
    """Numbers a dense export stores: parameters plus constant buffers (per-position biases). Call it on
    BN-folded graphs (``trace.prepare``'s or the compact one) so both sides count what an exporter writes."""
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    return params + buffers


def count_nonzero_weights(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(m.weight)) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
