"""Pieces shared by the search network and the derived network: stems, preprocessing, the classifier."""

from __future__ import annotations

import torch
from torch import nn

from dass_edge.search.ops import FactorizedReduce, ReLUConvBN
from dass_edge.search.sparse import SparseConv2d, SparseLinear


def stem(in_channels: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(SparseConv2d(in_channels, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


def preprocess(c_prev_prev: int, c_prev: int, c: int, reduction_prev: bool, affine: bool) -> nn.ModuleList:
    """Bring the two cell inputs to ``c`` channels (and to one resolution after a reduction cell)."""
    first = FactorizedReduce(c_prev_prev, c, affine) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0, affine)
    return nn.ModuleList([first, ReLUConvBN(c_prev, c, 1, 1, 0, affine)])


class Classifier(nn.Module):
    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = SparseLinear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def reduction_layers(layers: int) -> set[int]:
    """Reduction cells at 1/3 and 2/3 of the depth, as in DARTS."""
    return {layers // 3, 2 * layers // 3}


def cell_channels(c: int, layers: int, stem_multiplier: int, multiplier: int):
    """Yield (index, reduction, reduction_prev, c_prev_prev, c_prev, c_cell) for each cell, DARTS-style."""
    c_prev_prev, c_prev, c_cell = stem_multiplier * c, stem_multiplier * c, c
    reduction_prev = False
    reductions = reduction_layers(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c_cell *= 2
        yield i, reduction, reduction_prev, c_prev_prev, c_prev, c_cell
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, multiplier * c_cell
