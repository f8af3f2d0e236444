"""The discrete network of a genotype, at the sizes of Table 2 (DASS-Tiny/Small/Medium/Large)."""

from __future__ import annotations

import torch
from torch import nn

from dass_edge.search.cells import Classifier, cell_channels, preprocess, stem
from dass_edge.search.genotype import Genotype
from dass_edge.search.ops import OPS

# Table 2, CIFAR-10 column: (cells stacked, channels of the first SparseConv).
VARIANTS: dict[str, tuple[int, int]] = {
    "tiny": (16, 30),
    "small": (20, 36),
    "medium": (12, 86),
    "large": (14, 108),
}


class Cell(nn.Module):
    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        edges = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.inputs = [node for _, node in edges]
        self.preprocess = preprocess(c_prev_prev, c_prev, c, reduction_prev, affine=True)
        self.ops = nn.ModuleList(
            OPS[name](c, 2 if reduction and node < 2 else 1, True) for name, node in edges
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess[0](s0), self.preprocess[1](s1)]
        for i in range(0, len(self.ops), 2):
            states.append(self.ops[i](states[self.inputs[i]]) + self.ops[i + 1](states[self.inputs[i + 1]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class Network(nn.Module):
    """CIFAR-style network: a stem, ``layers`` cells (reductions at 1/3 and 2/3), global pool, classifier."""

    def __init__(self, genotype: Genotype, c: int, layers: int, num_classes: int = 10, in_channels: int = 3,
                 stem_multiplier: int = 3):
        super().__init__()
        self.stem = stem(in_channels, stem_multiplier * c)
        self.cells = nn.ModuleList()
        c_prev = stem_multiplier * c
        for _, reduction, reduction_prev, cpp, cp, cc in cell_channels(c, layers, stem_multiplier, 4):
            cell = Cell(genotype, cpp, cp, cc, reduction, reduction_prev)
            self.cells.append(cell)
            c_prev = len(cell.concat) * cc
        self.classifier = Classifier(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1)
