"""Where every tensor lives: views, in-place reuse and the arena plan turned into one Place per tensor.

Storage is decided in three steps. (1) Views: a concatenation's parts are placed inside its storage at their
channel offsets (so their producers write there and no copy is made), a slice is a strided view of its
input, and a flattened map is computed straight into its vector's storage. (2) In place: an elementwise op (add, clamp, constant add, copy) or a conv's residual may write over
an input whose storage is read by nobody after it; this is how ``a + conv(b)`` accumulates where ``a`` lies,
possibly already inside a concatenation. (3) Every storage root that is neither the caller's input nor
output becomes one arena buffer live from the first write to the last read of anything placed in it, and the
planner (memory.py) gives it an offset, as it does to each layer's workspace (live for that layer only).
plan_check.py checks the result independently.
"""

from __future__ import annotations

from dataclasses import dataclass

from dass_edge.codegen.ir import Add, AddConst, Clamp, Concat, Conv, Copy, Flatten, Graph, Node, Slice, Tensor
from dass_edge.codegen.memory import first_fit

ALIGN_FLOATS = 16  # 64-byte aligned buffers: a cache line, and any SIMD width up to AVX-512
INPUT, OUTPUT, ARENA = "input", "output", "arena"


@dataclass(frozen=True)
class Place:
    """Element (c, y, x) of a tensor is at ``offset + c * strides[0] + y * strides[1] + x * strides[2]``
    floats from the start of ``space``."""

    space: str
    offset: int
    strides: tuple[int, int, int]

    def contiguous(self, tensor: Tensor) -> bool:
        _, h, w = tensor.shape
        return self.strides == (h * w, w, 1)


@dataclass(frozen=True)
class _View:
    """A tensor placed inside ``parent``'s storage: from channel ``channel``, spatially sliced, or (with
    ``reshaped``) the same contiguous floats under another shape."""

    parent: Tensor
    channel: int = 0
    start: tuple[int, int] = (0, 0)
    step: tuple[int, int] = (1, 1)
    reshaped: bool = False

    @property
    def whole(self) -> bool:
        return self.channel == 0 and self.start == (0, 0) and self.step == (1, 1) and not self.reshaped


@dataclass(frozen=True)
class Layout:
    places: dict[int, Place]  # id(tensor) -> Place
    arena_floats: int
    buffers: int  # arena buffers planned (before sharing)
    workspaces: dict[int, tuple[int, int]]  # node index -> (arena offset, floats) of its scratch

    def of(self, tensor: Tensor) -> Place:
        return self.places[id(tensor)]


class _Storage:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.step = {id(n): i for i, n in enumerate(graph.nodes)}
        self.views: dict[int, _View] = {}
        self.tensors = {id(t): t for n in graph.nodes for t in (*n.inputs, n.output)}
        self.tensors[id(graph.input)] = graph.input
        self.last_read: dict[int, int] = {}
        for i, node in enumerate(graph.nodes):
            for t in node.inputs:
                self.last_read[id(t)] = i
        self.last_read[id(graph.output)] = len(graph.nodes)
        self.written = {id(n.output): i for i, n in enumerate(graph.nodes)}
        self.written[id(graph.input)] = -1

    def root(self, tensor: Tensor) -> Tensor:
        while id(tensor) in self.views:
            tensor = self.views[id(tensor)].parent
        return tensor

    def whole_alias(self, tensor: Tensor) -> bool:
        """Is ``tensor`` its root's whole storage (reached through in-place aliases only)?"""
        while id(tensor) in self.views:
            if not self.views[id(tensor)].whole:
                return False
            tensor = self.views[id(tensor)].parent
        return True

    def members(self, root: Tensor) -> list[Tensor]:
        return [t for t in self.tensors.values() if self.root(t) is root]

    def add_views(self) -> None:
        for node in self.graph.nodes:  # a flattened map is computed where its vector goes
            if isinstance(node, Flatten):
                source = node.inputs[0]
                if source is self.graph.input:
                    self.views[id(node.output)] = _View(source, reshaped=True)
                else:
                    self.views[id(source)] = _View(node.output, reshaped=True)
        for node in self.graph.nodes:
            if isinstance(node, Concat):
                channel = 0
                for part in node.inputs:
                    self.views[id(part)] = _View(node.output, channel)
                    channel += part.shape[0]
            elif isinstance(node, Slice):
                self.views[id(node.output)] = _View(node.inputs[0], 0, node.start, node.step)

    def in_place(self) -> None:
        for node in self.graph.nodes:
            for k in _in_place_candidates(node):
                if self._try_alias(node, k):
                    break

    def _try_alias(self, node: Node, k: int) -> bool:
        """Let ``node`` write over its input ``k``, if nothing reads that storage afterwards and no other
        input of the node lies in it."""
        source, out = node.inputs[k], node.output
        root = self.root(source)
        others = [t for i, t in enumerate(node.inputs) if i != k]
        if (root is self.graph.input or not self.whole_alias(source) or root.size != out.size
                or any(self.root(t) is root for t in others)
                or any(t is self.graph.output or self.last_read.get(id(t), -1) > self.step[id(node)]
                       for t in self.members(root))):
            return False
        if id(out) not in self.views:
            self.views[id(out)] = _View(source)
        elif self.root(out) is not root:
            self.views[id(root)] = _View(out)  # the source is computed straight into out's slot
        else:
            return False
        return True

    def place(self, workspace: dict[int, int]) -> Layout:
        """Plan the arena: one buffer per storage root, plus each layer's workspace, live at its step."""
        roots = {id(self.root(t)): self.root(t) for t in self.tensors.values()}
        spaces = {id(self.root(self.graph.input)): INPUT, id(self.root(self.graph.output)): OUTPUT}
        buffers = [r for key, r in roots.items() if key not in spaces]
        scratch = sorted((step, floats) for step, floats in workspace.items() if floats > 0)
        sizes = [r.size for r in buffers] + [floats for _, floats in scratch]
        ranges = [self._live_range(r) for r in buffers] + [(step, step) for step, _ in scratch]
        offsets, arena = first_fit(sizes, ranges, ALIGN_FLOATS)
        base = {id(r): Place(ARENA, offset, _dense_strides(r)) for r, offset in zip(buffers, offsets)}
        for key, space in spaces.items():
            base[key] = Place(space, 0, _dense_strides(roots[key]))
        workspaces = {step: (offset, floats) for (step, floats), offset in zip(scratch, offsets[len(buffers):])}
        return Layout({key: self._resolve(t, base) for key, t in self.tensors.items()}, arena, len(buffers),
                      workspaces)

    def _live_range(self, root: Tensor) -> tuple[int, int]:
        members = self.members(root)
        return (min(self.written.get(id(t), 0) for t in members),
                max(self.last_read.get(id(t), self.written.get(id(t), 0)) for t in members))

    def _resolve(self, tensor: Tensor, base: dict[int, Place]) -> Place:
        if id(tensor) not in self.views:
            return base[id(tensor)]
        view = self.views[id(tensor)]
        parent = self._resolve(view.parent, base)
        if view.reshaped:
            return Place(parent.space, parent.offset, _dense_strides(tensor))
        cs, rs, xs = parent.strides
        offset = parent.offset + view.channel * cs + view.start[0] * rs + view.start[1] * xs
        return Place(parent.space, offset, (cs, rs * view.step[0], xs * view.step[1]))


def _dense_strides(tensor: Tensor) -> tuple[int, int, int]:
    _, h, w = tensor.shape
    return (h * w, w, 1)


def _in_place_candidates(node: Node) -> tuple[int, ...]:
    """Inputs a node may overwrite as it goes: each output element depends on that input's element at the
    same position only."""
    if isinstance(node, Conv):
        return (1,) if node.residual is not None else ()
    if isinstance(node, Add):
        return (0, 1)
    if isinstance(node, (AddConst, Clamp, Copy)):
        return (0,)
    return ()


def lay_out(graph: Graph, workspace: dict[int, int] | None = None) -> Layout:
    """Places for every tensor of ``graph`` (whose nodes are in their final order); ``workspace`` gives the
    scratch floats a layer needs (node index -> floats), planned into the arena for that step only."""
    storage = _Storage(graph)
    storage.add_views()
    storage.in_place()
    return storage.place(workspace or {})
