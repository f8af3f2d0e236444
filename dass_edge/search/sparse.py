"""Masked ("sparse") convolution and linear layers, the building block of the DASS search space.

A sparse layer holds dense weights, real-valued pruning scores and a binary mask. Its mode decides which
of them shape the forward pass:

- ``dense``: plain weights (DASS step 1, pretraining);
- ``prune``: weights frozen in spirit, the mask is recomputed from the top-k of |scores| on every call and
  gradients reach the scores through a straight-through estimator (step 2, HYDRA-style score learning);
- ``magnitude``: the weights train and the mask is the top-k of |weight| on every call (gradual magnitude
  pruning, Zhu & Gupta 2017: the prune step's alternative to scores when frozen weights cannot be pruned);
- ``masked``: the stored mask is fixed and multiplies the weights (step 3, fine-tuning and inference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Mode = Literal["dense", "prune", "magnitude", "masked"]
MODES: tuple[Mode, ...] = ("dense", "prune", "magnitude", "masked")
Allocation = Literal["uniform", "erk", "global"]
ALLOCATIONS: tuple[Allocation, ...] = ("uniform", "erk", "global")


def kept_count(numel: int, sparsity: float) -> int:
    """Weights a layer keeps: (1 - sparsity) of them, at least one so no layer is cut off entirely."""
    return max(1, round((1.0 - sparsity) * numel))


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Binary mask with ones at the k largest entries of |scores| (ties broken by index)."""
    flat = scores.detach().abs().flatten()
    mask = torch.zeros_like(flat)
    mask[torch.topk(flat, k, sorted=False).indices] = 1.0
    return mask.view_as(scores)


class _StraightThroughTopK(torch.autograd.Function):
    """Forward: the top-k mask. Backward: the incoming gradient unchanged (straight-through)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        return topk_mask(scores, k)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


class SparseMixin:
    """Shared state of SparseConv2d and SparseLinear; the subclass provides ``weight`` and ``_apply_weight``."""

    weight: nn.Parameter
    scores: nn.Parameter
    mask: torch.Tensor

    def _init_sparse(self) -> None:
        self.scores = nn.Parameter(torch.zeros_like(self.weight), requires_grad=False)
        self.register_buffer("mask", torch.ones_like(self.weight))  # type: ignore[attr-defined]
        self.mode: Mode = "dense"
        self.sparsity = 0.0
        self.keep = self.weight.numel()  # weights the top-k keeps; set by allocate()

    @property
    def fan_in(self) -> int:
        return self.weight[0].numel()

    def init_scores(self) -> None:
        """Eq. 3 with HYDRA's scale: s = sqrt(6 / fan_in) * w / max|w|, so the first mask is magnitude pruning."""
        w = self.weight.detach()
        peak = w.abs().max().clamp_min(1e-12)
        self.scores.data.copy_(math.sqrt(6.0 / self.fan_in) * w / peak)

    def effective_weight(self) -> torch.Tensor:
        if self.mode == "dense":
            return self.weight
        if self.mode == "prune":
            mask = _StraightThroughTopK.apply(self.scores, self.keep)
            self.mask.copy_(mask.detach())
            return self.weight * mask
        if self.mode == "magnitude":
            self.mask.copy_(topk_mask(self.weight, self.keep))
        return self.weight * self.mask


class SparseConv2d(SparseMixin, nn.Conv2d):
    """nn.Conv2d whose weight is multiplied by a binary mask (Fig. 4 of the paper)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sparse()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class SparseLinear(SparseMixin, nn.Linear):
    """nn.Linear whose weight is multiplied by a binary mask."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sparse()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


def sparse_layers(model: nn.Module) -> Iterator[SparseMixin]:
    for module in model.modules():
        if isinstance(module, SparseMixin):
            yield module


def set_mode(model: nn.Module, mode: Mode, sparsity: float | None = None) -> None:
    """Switch every sparse layer of ``model``; ``prune`` and ``magnitude`` need the budgets of allocate().

    Only the tensors the mode trains have requires_grad: scores in prune, weights in the other modes.
    """
    if mode not in MODES:
        raise ValueError(f"unknown sparse mode {mode!r}; expected one of {MODES}")
    for layer in sparse_layers(model):
        if sparsity is not None:
            layer.sparsity = sparsity
        layer.mode = mode
        layer.weight.requires_grad_(mode != "prune")
        layer.scores.requires_grad_(mode == "prune")


def init_scores(model: nn.Module) -> None:
    for layer in sparse_layers(model):
        layer.init_scores()


def freeze_masks(model: nn.Module, x: torch.Tensor | None = None) -> None:
    """Fix every mask at the top-k of its scores (k from allocate()) and zero the pruned weights.

    Given a batch ``x``, the top-k is taken only among weights that read input channels which vary with the
    input (connected_topk): the per-layer top-k of the paper picks each layer's mask on its own, and at 99%
    about a third of the kept weights of the quick preset's DASS network read channels an earlier layer's
    mask had already cut (docs/training.md), so they could never carry signal.
    """
    if x is None:
        for layer in sparse_layers(model):
            layer.mask.copy_(topk_mask(layer.scores, layer.keep))
            layer.weight.data.mul_(layer.mask)
        set_mode(model, "masked")
        return
    connected_masks(model, x, lambda layer: layer.scores.detach().abs(), lambda layer: layer.keep)


def varying_channels(x: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """Bool per channel of a batch: does the channel differ between samples anywhere?"""
    spread = (x.amax(0) - x.amin(0)).reshape(x.shape[1], -1).amax(1)
    return spread > atol


def connected_topk(layer: SparseMixin, live: torch.Tensor, rank: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` highest-``rank`` weights among those that read ``live`` input channels (fewer if
    fewer weights read live channels; at least one, so no layer is cut off entirely)."""
    weight = layer.weight
    if isinstance(layer, SparseConv2d) and layer.groups > 1:
        allowed = live.view(-1, 1, 1, 1).expand_as(weight)
    else:
        allowed = live.view(1, -1, *[1] * (weight.dim() - 2)).expand_as(weight)
    ranked = torch.where(allowed, rank, torch.full_like(rank, -1.0)).flatten()
    mask = torch.zeros_like(ranked)
    mask[torch.topk(ranked, min(k, int(allowed.sum()) or 1)).indices] = 1.0
    return mask.view_as(weight)


@torch.no_grad()
def connected_masks(model: nn.Module, x: torch.Tensor, rank: Callable[[SparseMixin], torch.Tensor],
                    keep: Callable[[SparseMixin], int]) -> None:
    """Mask every sparse layer by connected_topk from the input it receives, and zero its pruned weights.

    One forward pass of ``x`` in train mode (BatchNorm on batch statistics; running statistics untouched):
    a pre-hook masks each layer before it runs, so the live channels it sees are those of the network
    already masked upstream.
    """
    for layer in sparse_layers(model):
        layer.mask.fill_(1.0)
    set_mode(model, "masked")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.momentum = 0.0

    def mask_from_input(layer: SparseMixin, inputs: tuple[torch.Tensor, ...]) -> None:
        layer.mask.copy_(connected_topk(layer, varying_channels(inputs[0]), rank(layer), keep(layer)))
        layer.weight.data.mul_(layer.mask)

    handles = [layer.register_forward_pre_hook(mask_from_input)  # type: ignore[attr-defined]
               for layer in sparse_layers(model)]
    was_training = model.training
    try:
        model.train()
        model(x)
    finally:
        for handle in handles:
            handle.remove()
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)


def magnitude_masks(model: nn.Module, sparsity: float, allocation: Allocation = "uniform") -> None:
    """Masks from |weight| alone (scores initialised from the weights, then frozen)."""
    init_scores(model)
    allocate(model, sparsity, allocation)
    freeze_masks(model)


def allocate(model: nn.Module, sparsity: float, allocation: Allocation = "uniform", dense_input: bool = False
             ) -> dict[str, int]:
    """Decide how many weights each sparse layer keeps, for ``sparsity`` of all prunable weights in total.

    ``uniform`` is the paper's rule (every layer pruned by the same ratio). In a narrow network at 99% it
    leaves many layers with one to three weights, which cuts every path through them. ``erk`` (Erdős-Rényi
    kernel, Evci et al. 2020, RigL) gives a layer a density proportional to (sum of its weight's dimensions)
    / (their product), so small layers (depthwise convs, 1x1 reductions, the classifier) stay denser.
    ``global`` ranks the initial scores (HYDRA-scaled magnitudes, see init_scores) of all layers together.
    All three keep the same total; returns layer name -> kept count.

    ``dense_input`` keeps the first sparse layer (the stem, in every network here) whole and spreads what is
    left of the same total over the others. At 99% ERK leaves the quick preset's 48-channel stem 14 weights:
    8 live channels of one or two pixel taps each, a bottleneck every later layer has to read through.
    """
    layers = dict(_named_sparse_layers(model))
    total_kept = kept_count(sum(layer.weight.numel() for layer in layers.values()), sparsity)
    first = next(iter(layers)) if dense_input else None
    kept = {first: layers[first].weight.numel()} if first is not None else {}
    spread = {name: layer for name, layer in layers.items() if name != first}
    sizes = {name: layer.weight.numel() for name, layer in spread.items()}
    budget = total_kept - sum(kept.values())
    if first is not None and budget < len(spread):
        raise ValueError(f"a dense input layer ({kept[first]} weights) leaves less than one weight per other "
                         f"layer of the {total_kept} kept at sparsity {sparsity}")
    if allocation == "uniform":
        ratio = sparsity if first is None else 1.0 - budget / sum(sizes.values())
        kept |= {name: kept_count(n, ratio) for name, n in sizes.items()}
    elif allocation == "erk":
        kept |= _erk(spread, sizes, budget)
    elif allocation == "global":
        kept |= _global(spread, budget)
    else:
        raise ValueError(f"unknown allocation {allocation!r}; expected one of {ALLOCATIONS}")
    for name, layer in layers.items():
        layer.sparsity = sparsity
        layer.keep = kept[name]
    return kept


def _named_sparse_layers(model: nn.Module) -> Iterator[tuple[str, SparseMixin]]:
    for name, module in model.named_modules():
        if isinstance(module, SparseMixin):
            yield name, module


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """ERK densities: d_l = min(1, c * sum(shape_l) / prod(shape_l)), with c chosen so that the layers keep
    ``density`` of all weights. Layers that would exceed 1 are made dense and c is solved again."""
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    budget = density * sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [name for name in shapes if name not in dense]
        raw = {name: sum(shapes[name]) / sizes[name] for name in free}
        remaining = budget - sum(sizes[name] for name in dense)
        scale = remaining / max(1e-12, sum(raw[name] * sizes[name] for name in free))
        over = {name for name in free if scale * raw[name] >= 1.0}
        if not over:
            return {name: 1.0 if name in dense else scale * raw[name] for name in shapes}
        dense |= over


def _erk(layers: dict[str, SparseMixin], sizes: dict[str, int], total_kept: int) -> dict[str, int]:
    shapes = {name: tuple(layer.weight.shape) for name, layer in layers.items()}
    densities = erk_densities(shapes, total_kept / sum(sizes.values()))
    return {name: min(sizes[name], max(1, round(densities[name] * sizes[name]))) for name in layers}


def _global(layers: dict[str, SparseMixin], total_kept: int) -> dict[str, int]:
    scores = torch.cat([layer.scores.detach().abs().flatten() for layer in layers.values()])
    owner = torch.cat([torch.full((layer.weight.numel(),), i, device=scores.device)
                       for i, layer in enumerate(layers.values())])
    counts = torch.bincount(owner[torch.topk(scores, total_kept).indices], minlength=len(layers))
    return {name: max(1, int(n)) for name, n in zip(layers, counts)}


def count_params(model: nn.Module) -> tuple[int, int]:
    """(weights of the prunable layers, how many of them are non-zero after masking)."""
    total = nonzero = 0
    for layer in sparse_layers(model):
        w = layer.effective_weight().detach()
        total += w.numel()
        nonzero += int(torch.count_nonzero(w))
    return total, nonzero


def bake(model: nn.Module) -> nn.Module:
    """Replace every sparse layer by the plain torch layer with the masked weight baked in.

    The result has no masks or scores, so exporters see ordinary Conv2d/Linear ops with zeros stored
    densely; the sparse layers of ``model`` itself are left untouched (the model is deep-copied).
    """
    import copy

    baked = copy.deepcopy(model)
    for parent in baked.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, SparseMixin):
                setattr(parent, name, _plain_copy(child))
    return baked


def _plain_copy(layer: SparseMixin) -> nn.Module:
    weight = layer.effective_weight().detach().clone()
    if isinstance(layer, SparseConv2d):
        plain: nn.Module = nn.Conv2d(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.dilation, layer.groups, bias=layer.bias is not None, padding_mode=layer.padding_mode,
        )
    else:
        assert isinstance(layer, SparseLinear)
        plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    plain.weight.data.copy_(weight)
    if layer.bias is not None:
        plain.bias.data.copy_(layer.bias.detach())
    return plain.to(weight.device)
