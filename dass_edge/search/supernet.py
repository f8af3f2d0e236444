"""The DARTS supernet over the sparse search space: mixed ops, search cells, architecture weights (alphas)."""

from __future__ import annotations

import torch
from torch import nn

from dass_edge.search.cells import Classifier, cell_channels, preprocess, stem
from dass_edge.search.genotype import Genotype, derive
from dass_edge.search.ops import OPS, PRIMITIVES


class MixedOp(nn.Module):
    """Eq. 1: the softmax(alpha)-weighted sum of every primitive on one edge."""

    def __init__(self, c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList()
        for name in PRIMITIVES:
            op = OPS[name](c, stride, False)
            if "pool" in name:  # as in DARTS: pools get a BN so their scale matches the convs'
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
    def __init__(self, steps: int, multiplier: int, c_prev_prev: int, c_prev: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        self.preprocess = preprocess(c_prev_prev, c_prev, c, reduction_prev, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and j < 2 else 1) for i in range(steps) for j in range(i + 2)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess[0](s0), self.preprocess[1](s1)]
        offset = 0
        for _ in range(self.steps):
            states.append(sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[-self.multiplier :], dim=1)


class SearchNetwork(nn.Module):
    """Supernet with ``layers`` cells of ``c`` initial channels; alphas are separate parameters."""

    def __init__(self, c: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3,
                 steps: int = 4, multiplier: int = 4, stem_multiplier: int = 3):
        super().__init__()
        self.config = dict(c=c, layers=layers, num_classes=num_classes, in_channels=in_channels,
                           steps=steps, multiplier=multiplier, stem_multiplier=stem_multiplier)
        self.steps = steps
        self.stem = stem(in_channels, stem_multiplier * c)
        self.cells = nn.ModuleList()
        c_prev = stem_multiplier * c
        for _, reduction, reduction_prev, cpp, cp, cc in cell_channels(c, layers, stem_multiplier, multiplier):
            self.cells.append(SearchCell(steps, multiplier, cpp, cp, cc, reduction, reduction_prev))
            c_prev = multiplier * cc
        self.classifier = Classifier(c_prev, num_classes)
        n_edges = sum(i + 2 for i in range(steps))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(PRIMITIVES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        w_normal = torch.softmax(self.alpha_normal, dim=-1)
        w_reduce = torch.softmax(self.alpha_reduce, dim=-1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.classifier(s1)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for name, p in self.named_parameters() if id(p) not in arch and not name.endswith("scores")]

    def score_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.endswith("scores")]

    def genotype(self) -> Genotype:
        return derive(self.alpha_normal, self.alpha_reduce, self.steps)
