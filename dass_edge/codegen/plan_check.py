"""An independent check of a memory plan: replay the schedule over the memory and see what every read finds.

It shares no logic with storage.py or memory.py: it only takes the nodes in order and each tensor's Place,
and simulates memory element by element. Each address remembers which logical value was last stored
there, as (tensor, element). Reading a tensor must find its own elements (for a concatenation, its parts';
for a slice, its input's) at the addresses its Place gives; a node may overwrite one of its inputs only
elementwise (element i of the output exactly where element i of that input lies) and only if it is an op
that reads each element before it writes it. Anything else is reported, so a plan is trusted only after it
was checked, not because the planner meant well.
"""

from __future__ import annotations

import numpy as np

from dass_edge.codegen.ir import Add, AddConst, Clamp, Concat, Conv, Copy, Flatten, Graph, Node, Slice, Tensor
from dass_edge.codegen.storage import ARENA, INPUT, OUTPUT, Layout

_ELEMENTWISE = (Add, AddConst, Clamp, Copy)


def addresses(tensor: Tensor, layout: Layout) -> np.ndarray:
    """(C, H, W) array of the float index of each element in its space."""
    place = layout.of(tensor)
    c, h, w = (np.arange(n) for n in tensor.shape)
    cs, rs, xs = place.strides
    return place.offset + c[:, None, None] * cs + h[None, :, None] * rs + w[None, None, :] * xs


class _Replay:
    def __init__(self, graph: Graph, layout: Layout):
        self.graph, self.layout = graph, layout
        self.problems: list[str] = []
        self.index: dict[int, int] = {}
        sizes = {ARENA: layout.arena_floats, INPUT: graph.input.size, OUTPUT: graph.output.size}
        self.memory = {space: np.full(size, -1, dtype=np.int64) for space, size in sizes.items()}
        self.stride = max([t.size for n in graph.nodes for t in (*n.inputs, n.output)] + [graph.input.size]) + 1
        self.producers = {id(n.output): n for n in graph.nodes}

    def code(self, tensor: Tensor) -> np.ndarray:
        """The logical values a correct read of ``tensor`` finds, as codes tensor * stride + element."""
        node = self.producers.get(id(tensor))
        if isinstance(node, Concat):
            return np.concatenate([self.code(part) for part in node.inputs], axis=0)
        if isinstance(node, Flatten):
            return self.code(node.inputs[0]).reshape(tensor.shape)
        if isinstance(node, Slice):
            (y0, x0), (sy, sx) = node.start, node.step
            _, h, w = tensor.shape
            return self.code(node.inputs[0])[:, y0::sy, x0::sx][:, :h, :w]
        number = self.index.setdefault(id(tensor), len(self.index))
        return number * self.stride + np.arange(tensor.size).reshape(tensor.shape)

    def located(self, tensor: Tensor, what: str) -> np.ndarray | None:
        where = addresses(tensor, self.layout)
        space = self.layout.of(tensor).space
        if where.min() < 0 or where.max() >= len(self.memory[space]):
            self.problems.append(f"{what} {tensor.name} lies outside the {space} ({where.min()}..{where.max()})")
            return None
        return where

    def read(self, node: Node, tensor: Tensor) -> None:
        where = self.located(tensor, f"{node.name} reads")
        if where is not None and not np.array_equal(self.memory[self.layout.of(tensor).space][where],
                                                     self.code(tensor)):
            self.problems.append(f"{node.name} reads {tensor.name}, but its memory holds other values")

    def write(self, node: Node) -> None:
        out = node.output
        where = self.located(out, f"{node.name} writes")
        space = self.layout.of(out).space
        if where is None:
            return
        if space == INPUT:
            self.problems.append(f"{node.name} writes into the caller's input")
        if len(np.unique(where)) != where.size:
            self.problems.append(f"{node.name} writes two elements of {out.name} to one address")
        for k, tensor in enumerate(node.inputs):
            self._check_overlap(node, k, tensor, where, space)
        self.memory[space][where] = self.code(out)

    def scratch(self, node: Node, offset: int, floats: int) -> None:
        """A layer's workspace: inside the arena, clear of what the layer reads and writes; clobbered."""
        arena = self.memory[ARENA]
        if offset < 0 or offset + floats > len(arena):
            self.problems.append(f"{node.name}'s workspace lies outside the arena")
            return
        for tensor in (*node.inputs, node.output):
            if self.layout.of(tensor).space == ARENA:
                where = addresses(tensor, self.layout)
                if ((where >= offset) & (where < offset + floats)).any():
                    self.problems.append(f"{node.name}'s workspace overlaps {tensor.name}")
        arena[offset:offset + floats] = -2

    def _check_overlap(self, node: Node, k: int, tensor: Tensor, where: np.ndarray, space: str) -> None:
        if self.layout.of(tensor).space != space:
            return
        theirs = addresses(tensor, self.layout)
        if not np.intersect1d(theirs, where).size:
            return
        elementwise = isinstance(node, _ELEMENTWISE) or (isinstance(node, Conv) and k == 1)
        if not (elementwise and theirs.shape == where.shape and np.array_equal(theirs, where)):
            self.problems.append(f"{node.name} overwrites its input {tensor.name} while it still reads it")

    def run(self) -> list[str]:
        inp = self.graph.input
        where = self.located(inp, "the input")
        if where is not None:
            self.memory[self.layout.of(inp).space][where] = self.code(inp)
        for step, node in enumerate(self.graph.nodes):
            if isinstance(node, (Concat, Slice, Flatten)):
                continue  # views: their reads are checked where they are read
            for tensor in node.inputs:
                self.read(node, tensor)
            if step in self.layout.workspaces:
                self.scratch(node, *self.layout.workspaces[step])
            self.write(node)
        out = self.graph.output
        place = self.layout.of(out)
        if place.space != OUTPUT or place.offset != 0 or not place.contiguous(out):
            self.problems.append(f"the output {out.name} is not the caller's output buffer")
        else:
            self.read(Node(name="the caller", origin="", inputs=[], output=out), out)
        return self.problems


def check_plan(graph: Graph, layout: Layout) -> list[str]:
    """Every problem of ``layout`` for ``graph`` as one line each; empty when the plan is sound."""
    return _Replay(graph, layout).run()
