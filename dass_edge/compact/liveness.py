"""Which channels of every tensor the compact network keeps.

Three per-channel facts, each a boolean vector per fx node:

- *varying*: the channel depends on the input (forward: a dense layer's output channel varies when one of
  its non-zero weights reads a varying channel). A channel that does not vary is a constant tensor, which
  the rebuild carries into biases instead of computing it.
- *needed*: some output depends on it (backward: read through a non-zero weight by a needed channel).
- *kept*: varying and needed, made consistent across ops that do not re-index channels. An add, a ReLU,
  a pool or a depthwise conv pairs channel k of its inputs with channel k of its output, so all of those
  tensors form one *group* that keeps one index set (otherwise the compact graph would need a gather).
  A concat's output keeps exactly the concatenation of its parts' kept sets. The input and output keep
  every channel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import fx, nn

from dass_edge.compact.trace import Kind, channels, tensor_inputs

Mask = torch.Tensor  # bool, one entry per channel


def links(module: nn.Module) -> torch.Tensor:
    """Bool connectivity of a layer: (out, in) for dense layers, (channels,) for depthwise convs."""
    weight = module.weight.detach()
    nonzero = weight != 0
    if isinstance(module, nn.Conv2d) and module.groups > 1:
        return nonzero.flatten(1).any(1)
    return nonzero.flatten(2).any(2) if nonzero.dim() > 2 else nonzero


def varying_channels(nodes: Sequence[fx.Node], kinds: dict[fx.Node, Kind],
                     modules: dict[str, nn.Module]) -> dict[fx.Node, Mask]:
    varying: dict[fx.Node, Mask] = {}
    for node in nodes:
        kind = kinds[node]
        inputs = tensor_inputs(node)
        if kind is Kind.OUTPUT:
            continue
        if kind is Kind.INPUT:
            varying[node] = torch.ones(channels(node), dtype=torch.bool)
        elif kind is Kind.DENSE:
            varying[node] = links(modules[node.target])[:, varying[inputs[0]]].any(1)
        elif kind is Kind.DEPTHWISE:
            varying[node] = varying[inputs[0]] & links(modules[node.target])
        elif kind is Kind.ADD:
            varying[node] = varying[inputs[0]] | varying[inputs[1]]
        elif kind is Kind.CAT:
            varying[node] = torch.cat([varying[part] for part in inputs])
        else:
            varying[node] = varying[inputs[0]].clone()
    return varying


def needed_channels(nodes: Sequence[fx.Node], kinds: dict[fx.Node, Kind],
                    modules: dict[str, nn.Module]) -> dict[fx.Node, Mask]:
    needed = {node: torch.zeros(channels(node), dtype=torch.bool) for node in nodes if kinds[node] is not Kind.OUTPUT}
    for node in reversed(nodes):
        kind = kinds[node]
        inputs = tensor_inputs(node)
        if kind is Kind.OUTPUT:
            needed[inputs[0]][:] = True
        elif kind is Kind.DENSE:
            needed[inputs[0]] |= links(modules[node.target])[needed[node]].any(0)
        elif kind is Kind.DEPTHWISE:
            needed[inputs[0]] |= needed[node] & links(modules[node.target])
        elif kind is Kind.CAT:
            for part, piece in zip(inputs, _split(needed[node], inputs)):
                needed[part] |= piece
        elif kind is not Kind.INPUT:
            for source in inputs:
                needed[source] |= needed[node]
    return needed


def kept_channels(nodes: Sequence[fx.Node], kinds: dict[fx.Node, Kind], varying: dict[fx.Node, Mask],
                  needed: dict[fx.Node, Mask], channel_multiple: int = 1) -> dict[fx.Node, Mask]:
    """Kept channels per node: consistent within groups and concats, counts rounded up to ``channel_multiple``.

    Rounding adds channels that do not vary where possible: the rebuild computes them as exact zeros.
    """
    group = _groups(nodes, kinds)
    keep: dict[fx.Node, Mask] = {}
    moving: dict[fx.Node, Mask] = {}
    for node, root in group.items():
        keep[root] = keep.get(root, torch.zeros_like(varying[node])) | (varying[node] & needed[node])
        moving[root] = moving.get(root, torch.zeros_like(varying[node])) | varying[node]
    fixed = {group[node] for node in nodes if kinds[node] is Kind.INPUT}
    fixed |= {group[tensor_inputs(node)[0]] for node in nodes if kinds[node] is Kind.OUTPUT}
    for root in fixed:
        keep[root][:] = True
    cats = [node for node in nodes if kinds[node] is Kind.CAT]
    while True:
        _close_over_concats(cats, group, keep)
        if not _round_up(keep, moving, fixed, channel_multiple):
            return {node: keep[root] for node, root in group.items()}


def _groups(nodes: Sequence[fx.Node], kinds: dict[fx.Node, Kind]) -> dict[fx.Node, fx.Node]:
    """Union-find: tensors tied channel-by-channel share a root."""
    parent: dict[fx.Node, fx.Node] = {}

    def find(node: fx.Node) -> fx.Node:
        while parent[node] is not node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for node in nodes:
        if kinds[node] is Kind.OUTPUT:
            continue
        parent[node] = node
        if kinds[node] in (Kind.DEPTHWISE, Kind.CLAMP, Kind.MAXPOOL, Kind.AFFINE, Kind.ADD):
            for source in tensor_inputs(node):
                parent[find(source)] = find(node)
    return {node: find(node) for node in parent}


def _split(mask: Mask, parts: Sequence[fx.Node]) -> list[Mask]:
    return list(torch.split(mask, [channels(part) for part in parts]))


def _close_over_concats(cats: Sequence[fx.Node], group: dict[fx.Node, fx.Node], keep: dict[fx.Node, Mask]) -> None:
    changed = True
    while changed:
        changed = False
        for cat in cats:
            parts = tensor_inputs(cat)
            joined = torch.cat([keep[group[part]] for part in parts]) | keep[group[cat]]
            for target, piece in [(group[cat], joined), *zip((group[p] for p in parts), _split(joined, parts))]:
                if not torch.equal(keep[target] | piece, keep[target]):
                    keep[target] |= piece
                    changed = True


def _round_up(keep: dict[fx.Node, Mask], moving: dict[fx.Node, Mask], fixed: set[fx.Node], multiple: int) -> bool:
    """Add channels so every free group keeps a multiple of ``multiple`` (at least one); True if any added."""
    changed = False
    for root, mask in keep.items():
        if root in fixed:
            continue
        count = int(mask.sum())
        target = min(mask.numel(), max(1, math.ceil(count / multiple) * multiple))
        if count >= target:
            continue
        spare = [i for i in range(mask.numel()) if not mask[i]]
        spare.sort(key=lambda i: (bool(moving[root][i]), i))
        mask[spare[: target - count]] = True
        changed = True
    return changed
