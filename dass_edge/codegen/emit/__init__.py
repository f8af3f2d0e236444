"""Op emitters: one function per op type that prints the C of one layer, looked up in EMITTERS.

An emitter gets the node and a Context (context.py: the C function name to define, for each input and the
output the pointer expression the call passes and the tensor's Place, and its workspace in the arena) and
returns the layer's C text (its constant tables and one static function) and the call's arguments.
Convolutions have several loop forms (conv.FORMS); ``Conv.form`` says which one a layer gets.
"""

from __future__ import annotations

from collections.abc import Callable

from dass_edge.codegen.emit import conv, eltwise, pool
from dass_edge.codegen.emit.context import Context, LayerCode
from dass_edge.codegen.ir import Add, AddConst, Clamp, Conv, Copy, Node, Pool

Emitter = Callable[[Node, Context], LayerCode]

EMITTERS: dict[type[Node], Emitter] = {
    Conv: conv.emit, Pool: pool.emit, Add: eltwise.emit_add, AddConst: eltwise.emit_add_const,
    Clamp: eltwise.emit_clamp, Copy: eltwise.emit_copy,
}
