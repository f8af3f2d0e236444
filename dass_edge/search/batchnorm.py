"""BatchNorm statistics that match the network as it is, re-estimated after its masks change.

Kept apart from the training steps (search/algorithm.py) because it is a pure function of a model and a
batch of training images: the prune and fine-tune steps call it, and so does inheriting a search
checkpoint's masks (workflows.py).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 64, seed: int = 0,
                   max_images: int = 1024, settle_images: int = 256) -> int:
    """Re-estimate every BatchNorm's running statistics as an exact average over training images.

    After pruning, the network computes something else than the one whose statistics BN kept, and a few
    dozen batches at momentum 0.1 do not replace them: eval mode then normalises with the wrong mean and
    variance and a network that learned sits at chance. Resetting the statistics and forwarding in train
    mode with ``momentum=None`` (a cumulative average) makes eval mode match the network as it is.
    1,024 images pin a channel's mean and variance far below what training noise moves them by, and the
    constant-channel passes need far fewer: with 2,048 and every pass on all of them, re-estimation cost
    more than the quick preset's prune step (five forward passes of the supernet over 2,048 images).
    Returns how many images were used (0 when the model has no BatchNorm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_images]
    chunks = [x[order[start : start + batch_size]] for start in range(0, len(order), batch_size)]
    was_training = model.training
    model.train()
    for chunk in chunks:
        model(chunk)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    settle = x[order[:settle_images]]
    _settle_constant_channels(model, norms, [settle[i : i + batch_size] for i in range(0, len(settle), batch_size)])
    model.train(was_training)
    return len(order)


def _settle_constant_channels(model: nn.Module, norms: list[nn.Module], batches: list[torch.Tensor],
                              passes: int = 4) -> None:
    """Give channels that reach a BatchNorm constant (up to rounding) their exact value and variance 1.

    Pruning leaves channels that carry only a BN shift: constant in exact arithmetic, with a rounding-noise
    variance of 1e-14..1e-8 in float32. Eval mode would divide that noise by sqrt(var + eps), up to x316 per
    BN, and through a few cells the logits of two runtimes that round differently part by 1e-2 (FP16 by
    whole units) although the network is the same. Mean := the constant, variance := 1 normalises it to the
    same shift with no amplification. Eval-mode passes repeat, because settling one layer removes the noise
    it fed to the next. A channel counts as constant when its std < 1e-4 |mean| + 1e-6: below what FP16 can
    represent, so no deployed network could use it anyway.
    """
    model.eval()
    settled = {id(m): torch.zeros_like(m.running_var, dtype=torch.bool) for m in norms}
    for _ in range(passes):
        sums: dict[int, list[torch.Tensor]] = {}

        def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].double().transpose(0, 1).flatten(1)
            acc = sums.setdefault(id(module), [torch.zeros(len(x), dtype=torch.double, device=x.device)] * 2 + [0])
            acc[0], acc[1], acc[2] = acc[0] + x.sum(1), acc[1] + x.square().sum(1), acc[2] + x.shape[1]

        hooks = [m.register_forward_pre_hook(record) for m in norms]
        for batch in batches:
            model(batch)
        for hook in hooks:
            hook.remove()
        changed = False
        for m in norms:
            total, squares, n = sums[id(m)]
            mean = total / n
            std = (squares / n - mean.square()).clamp_min(0).sqrt()
            new = (std < 1e-4 * mean.abs() + 1e-6) & ~settled[id(m)]
            if new.any():
                m.running_mean[new] = mean[new].to(m.running_mean.dtype)
                m.running_var[new] = 1.0
                settled[id(m)] |= new
                changed = True
        if not changed:
            return
