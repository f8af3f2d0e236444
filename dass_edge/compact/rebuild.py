"""Build the compact graph: smaller dense layers for the kept channels, constants folded into biases.

Every tensor ``t`` of the original graph is represented exactly as ``t = scatter(kept, t_c) + const`` where
``t_c`` is the compact tensor (kept channels only) and ``const`` is an input-independent tensor (batch 1,
float64) covering every channel:

- on channels that do not vary it is the channel's value (BN shifts of zero filters, after ReLUs, pools and
  zero-padded convs, which make it vary across positions); the compact tensor holds exact zeros there;
- on kept varying channels it is a *pending* bias that affine consumers absorb for free.

Affine ops (convs, linears, average pools, slices, adds, concats) map ``const`` through themselves, so a
consumer conv gets ``conv(t) = conv_kept(t_c) + conv(const)`` with the full original weights: the second
term becomes its bias, per channel where it is spatially uniform, and stays pending where zero padding
makes it vary at the borders. A ReLU needs the pending bias on its varying channels to be zero and a
max-pool needs it uniform per channel; before those the bias is *materialised* into the producing layer's
bias or as one Add of a constant tensor (the per-position bias).
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from dass_edge.compact import UnsupportedGraphError
from dass_edge.compact.constants import encode, uniform_channels
from dass_edge.compact.trace import Kind, tensor_inputs



@dataclass
class _Value:
    node: fx.Node        # compact node holding the kept channels
    const: torch.Tensor  # float64, batch 1, all channels


def apply_to_constant(node: fx.Node, module: nn.Module | None, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The original op evaluated in float64 on input-independent tensors (biases included)."""
    if isinstance(module, nn.Conv2d):
        return F.conv2d(inputs[0], module.weight.double(), _bias(module), module.stride, module.padding,
                        module.dilation, module.groups)
    if isinstance(module, nn.Linear):
        return F.linear(inputs[0], module.weight.double(), _bias(module))
    if module is not None:
        return module(inputs[0])
    if node.target is torch.cat:
        return torch.cat(inputs, dim=1)
    if node.target in (operator.add, torch.add):
        return inputs[0] + inputs[1]
    return node.target(inputs[0], *node.args[1:], **node.kwargs)


def _first_position(tensor: torch.Tensor) -> torch.Tensor:
    """Per channel, the value at the first spatial position (the value, for uniform channels)."""
    return tensor[0].reshape(tensor.shape[1], -1)[:, 0]


def _bias(module: nn.Module) -> torch.Tensor | None:
    return module.bias.double() if module.bias is not None else None


class Rebuilder:
    """One pass over the original nodes in topological order, emitting the compact graph."""

    def __init__(self, gm: fx.GraphModule, kinds: dict[fx.Node, Kind], varying: dict, kept: dict):
        self.modules = dict(gm.named_modules())
        self.kinds, self.varying, self.kept = kinds, varying, kept
        self.nodes = list(gm.graph.nodes)
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.values: dict[fx.Node, _Value] = {}
        self.origin: dict[fx.Node, list[fx.Node]] = {}  # compact node -> the original nodes it stands for
        self.handlers: dict[Kind, Callable[[fx.Node], None]] = {
            Kind.INPUT: self._input, Kind.DENSE: self._layer, Kind.DEPTHWISE: self._layer,
            Kind.CLAMP: self._nonlinear, Kind.MAXPOOL: self._nonlinear, Kind.AFFINE: self._affine,
            Kind.ADD: self._affine, Kind.CAT: self._affine, Kind.OUTPUT: self._output,
        }

    def build(self) -> fx.GraphModule:
        for node in self.nodes:
            handler = self.handlers.get(self.kinds[node])
            if handler is None:
                raise UnsupportedGraphError(f"cannot rebuild {node.format_node()}")
            handler(node)
        self.graph.lint()
        return fx.GraphModule(self.root, self.graph)

    def _input(self, node: fx.Node) -> None:
        shape = (1, *node.meta["tensor_meta"].shape[1:])
        self.values[node] = _Value(self.graph.placeholder(node.name), torch.zeros(shape, dtype=torch.float64))

    def _layer(self, node: fx.Node) -> None:
        """Conv/linear on kept channels; its constant contribution becomes its bias where uniform."""
        module = self.modules[node.target]
        source = self.values[tensor_inputs(node)[0]]
        keep_in, keep_out = self.kept[tensor_inputs(node)[0]], self.kept[node]
        const = apply_to_constant(node, module, [source.const])
        weight = module.weight.detach()[keep_out]
        if self.kinds[node] is Kind.DENSE:
            weight = weight[:, keep_in]
        live = self.varying[node][keep_out]
        weight = torch.where(live.view(-1, *[1] * (weight.dim() - 1)), weight, torch.zeros_like(weight))
        fold = live & uniform_channels(const[:, keep_out])
        bias = torch.zeros(int(keep_out.sum()), dtype=torch.float64)
        bias[fold] = _first_position(const[:, keep_out])[fold]
        const[:, keep_out.nonzero().flatten()[fold]] = 0
        layer = _resized(module, weight, bias.float())
        self._define(node, self._call(node, layer, [source.node]), const)

    def _nonlinear(self, node: fx.Node) -> None:
        source_node = tensor_inputs(node)[0]
        live = self.varying[source_node][self.kept[source_node]]
        self._materialise(source_node, live, uniform_ok=self.kinds[node] is Kind.MAXPOOL)
        self._affine(node)

    def _affine(self, node: fx.Node) -> None:
        """Ops that map constants through themselves and apply unchanged to the compact tensors."""
        sources = [self.values[n] for n in tensor_inputs(node)]
        module = self.modules.get(node.target) if node.op == "call_module" else None
        const = apply_to_constant(node, module, [s.const for s in sources]).clone()  # never alias a source
        if isinstance(module, (nn.Identity, nn.Dropout)):
            compact = sources[0].node
        elif module is not None:
            if getattr(module, "inplace", False):  # the compact tensor may be an alias read elsewhere
                module = copy.copy(module)
                module.inplace = False
            compact = self._call(node, module, [sources[0].node])
        elif node.target is torch.cat:
            compact = self.graph.call_function(torch.cat, ([s.node for s in sources],), {"dim": 1})
        else:
            args = (*[s.node for s in sources], *node.args[len(sources):])
            compact = self.graph.call_function(node.target, args, dict(node.kwargs))
        self._define(node, compact, const)

    def _define(self, node: fx.Node, compact: fx.Node, const: torch.Tensor) -> None:
        self.values[node] = _Value(compact, const)
        self.origin.setdefault(compact, []).append(node)  # several where an Identity aliases its input

    def _output(self, node: fx.Node) -> None:
        source_node = tensor_inputs(node)[0]
        self._materialise(source_node, torch.ones(int(self.kept[source_node].sum()), dtype=torch.bool), False)
        self.graph.output(self.values[source_node].node)

    def _materialise(self, node: fx.Node, channels: torch.Tensor, uniform_ok: bool) -> None:
        """Move the constant on ``channels`` (indices into the kept set) into the compact tensor."""
        value = self.values[node]
        index = self.kept[node].nonzero().flatten()[channels]
        pending = torch.zeros_like(value.const[:, self.kept[node]])
        pending[:, channels] = value.const[:, index]
        if not pending.any() or (uniform_ok and bool(uniform_channels(pending).all())):
            return
        producer = self._fresh_layer(value.node)
        if producer is not None and bool(uniform_channels(pending).all()):
            if producer.bias is None:
                producer.bias = nn.Parameter(torch.zeros(producer.weight.shape[0]))
            with torch.no_grad():
                producer.bias += _first_position(pending).float()
        else:
            value.node = self.graph.call_function(operator.add, (value.node, self._constant(pending)))
        value.const[:, index] = 0

    def _constant(self, constant: torch.Tensor) -> fx.Node:
        """Graph nodes yielding ``constant`` from its compact encoding (broadcast, full, or two factors)."""
        encoded = encode(constant)
        nodes = []
        for tensor in encoded.tensors:
            name = f"const_{len(list(self.root.buffers()))}"
            self.root.register_buffer(name, tensor)
            nodes.append(self.graph.get_attr(name))
        if not encoded.factored:
            return nodes[0]
        product = self.graph.call_function(torch.matmul, tuple(nodes))
        return self.graph.call_method("reshape", (product, encoded.shape))

    def _fresh_layer(self, compact: fx.Node) -> nn.Module | None:
        """A compact conv/linear whose bias may absorb a per-channel constant added to ``compact``.

        ``compact`` must be unread so far; the layer is its producer, or feeds it only through adds whose
        operands nothing else reads (the usual node sum of a DARTS cell: op_a(x) + op_b(y)).
        """
        if compact.users or len(self.origin.get(compact, [])) > 1:  # read, or aliased by an Identity
            return None
        return self._bias_holder(compact)

    def _bias_holder(self, compact: fx.Node) -> nn.Module | None:
        if compact.op == "call_module":
            layer = getattr(self.root, compact.target)
            return layer if isinstance(layer, (nn.Conv2d, nn.Linear)) else None
        if compact.op == "call_function" and compact.target is operator.add:
            for operand in compact.args:
                origins = self.origin.get(operand, [])
                if len(operand.users) == 1 and origins and all(len(o.users) == 1 for o in origins):
                    holder = self._bias_holder(operand)
                    if holder is not None:
                        return holder
        return None

    def _call(self, node: fx.Node, module: nn.Module, args: list[fx.Node]) -> fx.Node:
        name = node.target.replace(".", "_")
        self.root.add_module(name, module)
        return self.graph.call_module(name, tuple(args))


def _resized(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A plain layer like ``module`` holding ``weight`` (already cut to the kept channels) and ``bias``.

    A bias is kept only where the original had one or constants were folded in, so a dense network
    compacts to exactly its own parameter count.
    """
    has_bias = module.bias is not None or bool(bias.any())
    if isinstance(module, nn.Linear):
        layer: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
    else:
        if module.padding_mode != "zeros":
            raise UnsupportedGraphError(f"padding mode {module.padding_mode!r} is not supported")
        depthwise = module.groups > 1
        c_out = weight.shape[0]
        layer = nn.Conv2d(c_out if depthwise else weight.shape[1], c_out, module.kernel_size, module.stride,
                          module.padding, module.dilation, groups=c_out if depthwise else 1, bias=has_bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if has_bias:
            layer.bias.copy_(bias)
    return layer.eval()
