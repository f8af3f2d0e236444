"""Turn a (masked or baked) model into a BatchNorm-free torch.fx graph whose nodes have known channel semantics.

Compaction reasons per channel, so every node must say how its output channels relate to its inputs'. This
module decides that once (``classify``) so the liveness analysis and the rebuild never look at module types.
"""

from __future__ import annotations

import operator
from enum import Enum

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from dass_edge.compact import UnsupportedGraphError
from dass_edge.search.sparse import bake


class Kind(Enum):
    INPUT = "input"
    OUTPUT = "output"
    DENSE = "dense"          # Conv2d with groups=1 or Linear: mixes channels, the only re-indexing op
    DEPTHWISE = "depthwise"  # Conv2d with groups == in == out: channel k reads channel k only
    CLAMP = "clamp"          # ReLU/ReLU6: non-linear, constants on kept live channels must be zero
    MAXPOOL = "maxpool"      # commutes with a per-channel uniform constant only
    AFFINE = "affine"        # channel-preserving and affine (avg pools, slices, flatten, identity)
    ADD = "add"
    CAT = "cat"
    CONST = "const"          # get_attr: not produced by this module's own traces


_CLAMPS = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_AFFINE_MODULES = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Dropout)


def prepare(model: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """Baked (masks multiplied in), traced, BatchNorm folded, shapes recorded in ``node.meta``."""
    plain = bake(model).eval()
    graph_module = fx.symbolic_trace(plain)
    fold_batchnorms(graph_module)
    ShapeProp(graph_module).propagate(torch.zeros(input_shape))
    return graph_module


def fold_batchnorms(gm: fx.GraphModule) -> None:
    """Fold every eval-mode BatchNorm2d into the conv(s) feeding it, so BN shifts become conv biases.

    A BN after a concat of convs (FactorizedReduce) folds slice-wise into each conv. Folding is done in
    float64 so it adds no more than one float32 rounding per weight.
    """
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        bn = modules[node.target]
        source = node.args[0]
        if _is_single_use_conv(source, modules):
            _fold_into_conv(modules[source.target], bn, slice(None))
        elif _is_cat_of_convs(source, modules):
            offset = 0
            for part in source.args[0]:
                conv = modules[part.target]
                _fold_into_conv(conv, bn, slice(offset, offset + conv.out_channels))
                offset += conv.out_channels
        else:
            raise UnsupportedGraphError(f"BatchNorm {node.target} does not follow a convolution")
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def _is_single_use_conv(node, modules) -> bool:
    return (isinstance(node, fx.Node) and node.op == "call_module"
            and isinstance(modules.get(node.target), nn.Conv2d) and len(node.users) == 1)


def _is_cat_of_convs(node, modules) -> bool:
    return (isinstance(node, fx.Node) and node.op == "call_function" and node.target is torch.cat
            and len(node.users) == 1 and _cat_dim(node) == 1
            and all(_is_single_use_conv(part, modules) for part in node.args[0]))


def _fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d, channels: slice) -> None:
    scale = bn.weight.double()[channels] / torch.sqrt(bn.running_var.double()[channels] + bn.eps)
    shift = bn.bias.double()[channels] - bn.running_mean.double()[channels] * scale
    old_bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).float())
        conv.bias = nn.Parameter((old_bias * scale + shift).float())


def _cat_dim(node: fx.Node) -> int:
    return node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)


def classify(node: fx.Node, modules: dict[str, nn.Module]) -> Kind:
    """The channel semantics of one node; anything unknown is refused rather than guessed."""
    if node.op == "placeholder":
        return Kind.INPUT
    if node.op == "output":
        return Kind.OUTPUT
    if node.op == "get_attr":
        return Kind.CONST
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.Linear):
            return Kind.DENSE
        if isinstance(module, nn.Conv2d):
            if module.groups == 1:
                return Kind.DENSE
            if module.groups == module.in_channels == module.out_channels:
                return Kind.DEPTHWISE
        if isinstance(module, _CLAMPS):
            return Kind.CLAMP
        if isinstance(module, nn.MaxPool2d):
            return Kind.MAXPOOL
        if isinstance(module, _AFFINE_MODULES):
            return Kind.AFFINE
    if node.op == "call_function":
        if node.target in (operator.add, torch.add) and _two_tensors(node):
            return Kind.ADD
        if node.target is torch.cat and _cat_dim(node) == 1:
            return Kind.CAT
        if node.target is torch.flatten and _flattens_only_unit_spatial(node):
            return Kind.AFFINE
        if node.target is operator.getitem and _keeps_channels(node):
            return Kind.AFFINE
        if node.target is torch.nn.functional.relu:
            return Kind.CLAMP
    what = type(modules[node.target]).__name__ if node.op == "call_module" else str(node.target)
    raise UnsupportedGraphError(f"compaction does not know the channel semantics of {what} ({node.name})")


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The tensor operands whose channels this node reads, in channel order for a concat."""
    if node.op == "output":
        return [node.args[0]]
    if node.op == "call_function" and node.target is torch.cat:
        return list(node.args[0])
    if node.op == "call_function" and node.target in (operator.add, torch.add):
        return list(node.args[:2])
    return [node.args[0]] if node.args and isinstance(node.args[0], fx.Node) else []


def channels(node: fx.Node) -> int:
    return int(node.meta["tensor_meta"].shape[1])


def _two_tensors(node: fx.Node) -> bool:
    return len(node.args) == 2 and all(isinstance(a, fx.Node) for a in node.args) and not node.kwargs


def _flattens_only_unit_spatial(node: fx.Node) -> bool:
    shape = node.args[0].meta["tensor_meta"].shape
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    return start == 1 and all(size == 1 for size in shape[2:])


def _keeps_channels(node: fx.Node) -> bool:
    """x[:, :, a:b, c:d] style slices: the batch and channel dims untouched."""
    index = node.args[1]
    if not isinstance(index, tuple) or len(index) < 2:
        return False
    return all(isinstance(i, slice) and i == slice(None) for i in index[:2]) and all(
        isinstance(i, slice) for i in index[2:])
