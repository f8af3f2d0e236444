"""The code generator's intermediate representation: tensors (shape only) and nodes (one op each).

Why an IR of our own rather than the fx graph: the generator reasons about things fx does not hold, such as
activations fused into a convolution's loads or stores, a residual added in place, and concatenations or
slices that are views into another tensor's storage. Every tensor is batch 1 in CHW layout; a vector (a
linear's input or output) is (C, 1, 1). Nodes list their tensor inputs in a fixed order per op; weights and
constants are float32 numpy arrays. Passes (passes.py) rewrite a Graph in place, ``Graph.nodes`` always
being an executable order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Bounds = tuple[float, float]  # a clamp: (low, high), either may be infinite (ReLU is (0, inf))
Pair = tuple[int, int]  # (y, x)


@dataclass(eq=False)
class Tensor:
    name: str
    shape: tuple[int, int, int]  # (channels, height, width)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def __repr__(self) -> str:
        return f"Tensor({self.name}, {self.shape})"


@dataclass(eq=False, kw_only=True)
class Node:
    """One op. ``origin`` names what it came from (the module path and type) for the comment in C."""

    name: str
    origin: str
    inputs: list[Tensor]
    output: Tensor


@dataclass(eq=False, kw_only=True)
class Conv(Node):
    """Conv2d or Linear (a 1x1 conv on a (C, 1, 1) tensor). ``inputs`` is [x] or [x, residual]: with a
    residual the op computes ``clamp(conv(in_clamp(x)) + bias + residual)`` (an Add fused into the conv).
    With int8 weights (quantise.py) ``weight`` holds the integers q and ``scale`` each output channel's
    scale: the op computes ``clamp(scale * conv(in_clamp(x), q) + bias + residual)``."""

    weight: np.ndarray  # (out, in / groups, kh, kw) float32, zeros included
    bias: np.ndarray  # (out,) float32
    scale: np.ndarray | None = None  # (out,) float32 for int8 weights, None for fp32
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    in_clamp: Bounds | None = None
    out_clamp: Bounds | None = None
    form: str = ""  # the loop form chosen for it (forms.py); empty until chosen

    @property
    def kernel(self) -> Pair:
        return self.weight.shape[2], self.weight.shape[3]

    @property
    def residual(self) -> Tensor | None:
        return self.inputs[1] if len(self.inputs) > 1 else None

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.weight))

    def macs(self, nonzero_only: bool = True) -> int:
        """Multiply-accumulates of one run: per output position, one per (non-zero) weight it reads;
        positions a zero-padded border cuts off are counted too (what a dense kernel does)."""
        per_channel = self.output.shape[1] * self.output.shape[2]
        weights = self.nonzeros if nonzero_only else self.weight.size
        return weights * per_channel


@dataclass(eq=False, kw_only=True)
class Pool(Node):
    """MaxPool2d / AvgPool2d / AdaptiveAvgPool2d(1) (a window over the whole input) with PyTorch semantics."""

    kind: str  # "max" or "avg"
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True


@dataclass(eq=False, kw_only=True)
class Add(Node):
    """inputs[0] + inputs[1], same shape."""

    out_clamp: Bounds | None = None


@dataclass(eq=False, kw_only=True)
class AddConst(Node):
    """inputs[0] + a constant (compaction's per-position biases): ``const`` is (C, H, W) or (C, 1, 1)."""

    const: np.ndarray
    out_clamp: Bounds | None = None


@dataclass(eq=False, kw_only=True)
class Clamp(Node):
    """ReLU, ReLU6 or Hardtanh that no pass could fuse into a neighbour."""

    bounds: Bounds


@dataclass(eq=False, kw_only=True)
class Copy(Node):
    """A copy where a view cannot be used (e.g. one tensor in two concatenations, the input as output)."""


@dataclass(eq=False, kw_only=True)
class Concat(Node):
    """Channel concatenation. No code: the parts are written straight into their slices of its storage."""


@dataclass(eq=False, kw_only=True)
class Slice(Node):
    """``x[:, :, y0::sy, x0::sx]`` cut to the output's shape. No code: a strided view of its input."""

    start: Pair
    step: Pair = (1, 1)


@dataclass(eq=False, kw_only=True)
class Flatten(Node):
    """``x.flatten(1)`` of a (C, H, W) map: the same contiguous floats read as a (C*H*W, 1, 1) vector."""


VIEWS = (Concat, Slice, Flatten)


@dataclass(eq=False)
class Graph:
    input: Tensor
    output: Tensor
    nodes: list[Node] = field(default_factory=list)

    def consumers(self, tensor: Tensor) -> list[Node]:
        return [node for node in self.nodes if any(t is tensor for t in node.inputs)]

    def producer(self, tensor: Tensor) -> Node | None:
        return next((node for node in self.nodes if node.output is tensor), None)

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        """Every read of ``old`` (and the graph output, if it is ``old``) reads ``new`` instead."""
        for node in self.nodes:
            node.inputs = [new if t is old else t for t in node.inputs]
        if self.output is old:
            self.output = new

    def convs(self) -> list[Conv]:
        return [node for node in self.nodes if isinstance(node, Conv)]


def is_identity(bounds: Bounds | None) -> bool:
    return bounds is None or (bounds[0] == -math.inf and bounds[1] == math.inf)
