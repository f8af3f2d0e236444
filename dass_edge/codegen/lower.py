"""torch.fx graph -> IR: one IR node per op that computes, constants evaluated once, aliases dropped.

The input is what the export pipeline deploys: compact_model's GraphModule (BatchNorm folded, constants
as buffers, sometimes a factored constant rebuilt by matmul + reshape) or a baked model with BatchNorm
still in. Both go through ``compact.trace.prepare`` (bake, trace, fold BatchNorm, propagate shapes), so
this module sees one kind of graph. Anything it does not know is refused by name rather than guessed.
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from dass_edge.codegen.ir import Add, AddConst, Clamp, Concat, Conv, Flatten, Graph, Node, Pool, Slice, Tensor
from dass_edge.compact import UnsupportedGraphError
from dass_edge.compact.trace import prepare

_IDENTITIES = (nn.Identity, nn.Dropout)
_RELUS = (F.relu, torch.relu)
_ADDS = (operator.add, torch.add)
_CELL = re.compile(r"cells[._](\d+)[._](ops|preprocess)[._](\d+)")


def lower(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """The IR of ``model`` at batch 1 (``input_shape`` is NCHW)."""
    shape = (1, *input_shape[1:])
    traced = prepare(model.eval(), shape)
    return _Lowering(traced).run(shape)


def flush_denormals(array: np.ndarray) -> np.ndarray:
    """Float32 with subnormal values set to zero: they cost a slow path on many FPUs and change nothing."""
    array = np.asarray(array, dtype=np.float32)
    return np.where(np.abs(array) < np.finfo(np.float32).tiny, np.float32(0), array).astype(np.float32)


def describe(node: fx.Node, module: nn.Module | None) -> str:
    """The comment naming what a node came from: module path, its type, and cell/node/op where known."""
    if module is not None:
        what = f"{node.target} ({type(module).__name__})"
    else:
        what = f"{node.name} ({getattr(node.target, '__name__', node.target)})"
    match = _CELL.search(str(node.target))
    if match:
        cell, kind, index = match.groups()
        where = (f"cell {cell}, node {int(index) // 2 + 2}, op {index}" if kind == "ops"
                 else f"cell {cell}, preprocess {index}")
        what += f"; {where}"
    return what


def _shape(node: fx.Node) -> tuple[int, int, int]:
    dims = tuple(int(d) for d in node.meta["tensor_meta"].shape[1:])
    if len(dims) == 1:
        return (dims[0], 1, 1)
    if len(dims) != 3:
        raise UnsupportedGraphError(f"{node.name} has shape {dims}; the C generator handles CHW and vectors")
    return dims  # type: ignore[return-value]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _Lowering:
    """One pass over the traced nodes in order; ``values`` maps each fx node to a Tensor or a constant."""

    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.values: dict[fx.Node, Tensor | torch.Tensor] = {}
        self.nodes: list[Node] = []

    def run(self, shape: tuple[int, ...]) -> Graph:
        graph_input = None
        output = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                graph_input = self.values[node] = Tensor(node.name, tuple(shape[1:]))  # type: ignore[arg-type]
            elif node.op == "get_attr":
                self.values[node] = _attribute(self.gm, node.target).detach()
            elif node.op == "output":
                output = self.values[node.args[0]]
            elif self._constant(node):
                self.values[node] = self._evaluate(node)
            else:
                self.values[node] = self._lower(node)
        if not isinstance(output, Tensor) or graph_input is None:
            raise UnsupportedGraphError("the network's output does not depend on its input")
        return Graph(graph_input, output, self.nodes)

    def _constant(self, node: fx.Node) -> bool:
        inputs = node.all_input_nodes
        return bool(inputs) and all(isinstance(self.values[n], torch.Tensor) for n in inputs)

    def _evaluate(self, node: fx.Node) -> torch.Tensor:
        args = fx.node.map_arg(node.args, lambda n: self.values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self.values[n])
        with torch.no_grad():
            if node.op == "call_module":
                return self.modules[node.target](*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            return node.target(*args, **kwargs)

    def _emit(self, node: fx.Node, cls: type[Node], inputs: list[Tensor], module: nn.Module | None = None,
              **fields) -> Tensor:
        output = Tensor(node.name, _shape(node))
        self.nodes.append(cls(name=node.name, origin=describe(node, module), inputs=inputs, output=output,
                              **fields))
        return output

    def _tensor(self, arg) -> Tensor:
        value = self.values[arg]
        if not isinstance(value, Tensor):
            raise UnsupportedGraphError(f"{arg.name} was expected to depend on the input")
        return value

    def _lower(self, node: fx.Node) -> Tensor:
        if node.op == "call_module":
            return self._module(node, self.modules[node.target])
        if node.op == "call_function":
            return self._function(node)
        if node.op == "call_method" and node.target == "flatten":
            return self._flatten(node)
        raise UnsupportedGraphError(f"the C generator does not handle {node.op} {node.target} ({node.name})")

    def _module(self, node: fx.Node, module: nn.Module) -> Tensor:
        x = self._tensor(node.args[0])
        if isinstance(module, _IDENTITIES):
            return x
        if isinstance(module, nn.Conv2d):
            return self._conv(node, module, x)
        if isinstance(module, nn.Linear):
            return self._emit(node, Conv, [x], module, weight=flush_denormals(module.weight.detach()[:, :, None, None]),
                              bias=_bias(module, module.out_features))
        if isinstance(module, nn.ReLU):
            return self._emit(node, Clamp, [x], module, bounds=(0.0, math.inf))
        if isinstance(module, nn.Hardtanh):  # ReLU6 too
            return self._emit(node, Clamp, [x], module, bounds=(float(module.min_val), float(module.max_val)))
        if isinstance(module, nn.Flatten):
            return self._flatten(node, (module.start_dim, module.end_dim))
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self._emit(node, Pool, [x], module, **_pool_fields(module, x))
        raise UnsupportedGraphError(f"the C generator does not handle {type(module).__name__} ({node.name})")

    def _conv(self, node: fx.Node, module: nn.Conv2d, x: Tensor) -> Tensor:
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise UnsupportedGraphError(f"{node.name}: only explicit zero padding is supported")
        return self._emit(node, Conv, [x], module, weight=flush_denormals(module.weight.detach()),
                          bias=_bias(module, module.out_channels), stride=_pair(module.stride),
                          padding=_pair(module.padding), dilation=_pair(module.dilation), groups=module.groups)

    def _function(self, node: fx.Node) -> Tensor:
        target = node.target
        if target in _RELUS and not node.kwargs.get("inplace", False):
            return self._emit(node, Clamp, [self._tensor(node.args[0])], bounds=(0.0, math.inf))
        if target in _ADDS and len(node.args) == 2 and not node.kwargs:
            return self._add(node)
        if target is torch.cat:
            return self._cat(node)
        if target is operator.getitem:
            return self._slice(node)
        if target is torch.flatten:
            return self._flatten(node)
        raise UnsupportedGraphError(f"the C generator does not handle {target} ({node.name})")

    def _flatten(self, node: fx.Node, dims: tuple[int, int] | None = None) -> Tensor:
        x = self._tensor(node.args[0])
        start, end = dims or (node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0),
                              node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1))
        if (start, end) not in ((1, -1), (1, 3)):
            raise UnsupportedGraphError(f"{node.name}: flatten({start}, {end}) (only flatten(1), batch kept)")
        return x if x.shape[1:] == (1, 1) else self._emit(node, Flatten, [x])

    def _add(self, node: fx.Node) -> Tensor:
        a, b = (self.values[arg] for arg in node.args)
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            return self._emit(node, Add, [a, b])
        tensor, const = (a, b) if isinstance(a, Tensor) else (b, a)
        full = torch.broadcast_to(torch.as_tensor(const, dtype=torch.float32), (1, *tensor.shape))[0]
        uniform = bool((full.flatten(1).amax(1) == full.flatten(1).amin(1)).all())
        value = full[:, :1, :1] if uniform else full
        return self._emit(node, AddConst, [tensor], const=flush_denormals(value.numpy()))

    def _cat(self, node: fx.Node) -> Tensor:
        parts = [self._tensor(p) for p in node.args[0]]
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim not in (1, -3):
            raise UnsupportedGraphError(f"{node.name}: concatenation along dim {dim} (only channels)")
        return self._emit(node, Concat, parts)

    def _slice(self, node: fx.Node) -> Tensor:
        x = self._tensor(node.args[0])
        index = node.args[1]
        if (not isinstance(index, tuple) or len(index) != 4 or not all(isinstance(i, slice) for i in index)
                or index[0] != slice(None) or index[1] != slice(None)):
            raise UnsupportedGraphError(f"{node.name}: only spatial slices x[:, :, a:b, c:d] are supported")
        starts, steps = [], []
        for axis, part in zip((1, 2), index[2:]):
            start, _, step = part.indices(x.shape[axis])
            if step < 1:
                raise UnsupportedGraphError(f"{node.name}: negative slice steps are not supported")
            starts.append(start)
            steps.append(step)
        return self._emit(node, Slice, [x], start=tuple(starts), step=tuple(steps))


def _attribute(gm: fx.GraphModule, target: str) -> torch.Tensor:
    value = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _bias(module: nn.Module, channels: int) -> np.ndarray:
    if module.bias is None:
        return np.zeros(channels, dtype=np.float32)
    return flush_denormals(module.bias.detach())


def _pool_fields(module: nn.Module, x: Tensor) -> dict:
    if isinstance(module, nn.AdaptiveAvgPool2d):
        if _pair(module.output_size) != (1, 1):
            raise UnsupportedGraphError(f"AdaptiveAvgPool2d({module.output_size}): only output size 1")
        return dict(kind="avg", kernel=x.shape[1:], stride=x.shape[1:])
    if isinstance(module, nn.MaxPool2d):
        if module.return_indices:
            raise UnsupportedGraphError("MaxPool2d with return_indices is not supported")
        return dict(kind="max", kernel=_pair(module.kernel_size), stride=_pair(module.stride or module.kernel_size),
                    padding=_pair(module.padding), dilation=_pair(module.dilation), ceil_mode=module.ceil_mode)
    if module.divisor_override is not None:
        raise UnsupportedGraphError("AvgPool2d with divisor_override is not supported")
    return dict(kind="avg", kernel=_pair(module.kernel_size), stride=_pair(module.stride or module.kernel_size),
                padding=_pair(module.padding), ceil_mode=module.ceil_mode,
                count_include_pad=module.count_include_pad)
