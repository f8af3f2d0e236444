"""Op emitters: one function per op type that prints the C of one layer, looked up in EMITTERS.

An emitter gets the node and a Context (the C function name to define, for each input and the output the
pointer expression the call passes and the tensor's Place, and its workspace in the arena) and returns the layer's C text (its constant
tables and one static function) and the call's arguments. Convolutions have several loop forms
(conv.FORMS); ``Conv.form`` says which one a layer gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dass_edge.codegen.ir import Add, AddConst, Clamp, Conv, Copy, Node, Pool, Tensor
from dass_edge.codegen.storage import Place


@dataclass(frozen=True)
class Operand:
    pointer: str  # the C expression the call passes, e.g. "dass_edge_arena + 1024"
    place: Place
    tensor: Tensor


@dataclass(frozen=True)
class Context:
    name: str  # the static function to define (tables are prefixed with it too)
    inputs: tuple[Operand, ...]
    output: Operand
    workspace: str | None = None  # pointer to the layer's scratch floats in the arena, if it has any

    def require_workspace(self) -> str:
        if self.workspace is None:
            raise ValueError(f"{self.name}: the layout gave this layer no workspace")
        return self.workspace

    def aliases_output(self, k: int) -> bool:
        """Does input ``k`` lie exactly where the output goes (an op computed in place)?"""
        return self.inputs[k].place == self.output.place


@dataclass(frozen=True)
class LayerCode:
    source: str  # tables and the function definition
    args: tuple[str, ...]  # pointer expressions, in the function's parameter order


Emitter = Callable[[Node, Context], LayerCode]


def _registry() -> dict[type[Node], Emitter]:
    from dass_edge.codegen.emit import conv, eltwise, pool

    return {Conv: conv.emit, Pool: pool.emit, Add: eltwise.emit_add, AddConst: eltwise.emit_add_const,
            Clamp: eltwise.emit_clamp, Copy: eltwise.emit_copy}


EMITTERS: dict[type[Node], Emitter] = {}


def emitter(node: Node) -> Emitter:
    if not EMITTERS:
        EMITTERS.update(_registry())
    return EMITTERS[type(node)]
