"""Genotypes: the discrete cells a search produces, their JSON form and their derivation from alphas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from dass_edge.errors import InputError
from dass_edge.search.ops import PRIMITIVES

Edge = tuple[str, int]  # (op name, input node); nodes 0 and 1 are the two previous cells


@dataclass(frozen=True)
class Genotype:
    """Two ops per intermediate node for the normal and the reduction cell, and which nodes are concatenated."""

    normal: tuple[Edge, ...]
    reduce: tuple[Edge, ...]
    normal_concat: tuple[int, ...] = (2, 3, 4, 5)
    reduce_concat: tuple[int, ...] = (2, 3, 4, 5)

    def __post_init__(self) -> None:
        for cell in (self.normal, self.reduce):
            if len(cell) % 2:
                raise InputError("a genotype cell needs two (op, input) pairs per node")
            for index, (op, node) in enumerate(cell):
                if op not in PRIMITIVES or op == "none":
                    raise InputError(f"unknown op {op!r} in genotype (known: {', '.join(PRIMITIVES[1:])})")
                if not 0 <= node < index // 2 + 2:
                    raise InputError(f"edge {index} of a genotype reads node {node}, which does not precede it")

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genotype:
        try:
            return cls(
                normal=tuple((str(op), int(node)) for op, node in data["normal"]),
                reduce=tuple((str(op), int(node)) for op, node in data["reduce"]),
                normal_concat=tuple(int(n) for n in data.get("normal_concat", (2, 3, 4, 5))),
                reduce_concat=tuple(int(n) for n in data.get("reduce_concat", (2, 3, 4, 5))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a genotype: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(f"genotype is not valid JSON: {exc}") from exc


def derive_cell(weights: torch.Tensor, steps: int = 4) -> tuple[Edge, ...]:
    """Keep, for every intermediate node, the two incoming edges whose best non-'none' op is strongest.

    ``weights`` is softmax(alpha) with one row per edge, rows ordered node by node as in the supernet.
    """
    none = PRIMITIVES.index("none")
    edges: list[Edge] = []
    start = 0
    for node in range(steps):
        rows = weights[start : start + node + 2].detach().clone()
        rows[:, none] = -1.0
        best_value, best_op = rows.max(dim=1)
        for j in sorted(best_value.argsort(descending=True)[:2].tolist()):
            edges.append((PRIMITIVES[int(best_op[j])], j))
        start += node + 2
    return tuple(edges)


def derive(alpha_normal: torch.Tensor, alpha_reduce: torch.Tensor, steps: int = 4) -> Genotype:
    concat = tuple(range(2, steps + 2))
    return Genotype(
        normal=derive_cell(torch.softmax(alpha_normal, dim=-1), steps),
        reduce=derive_cell(torch.softmax(alpha_reduce, dim=-1), steps),
        normal_concat=concat,
        reduce_concat=concat,
    )


DARTS_V2 = Genotype(
    normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
)
