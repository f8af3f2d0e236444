"""Elementwise ops: add (two tensors, or a constant), clamp, copy. One loop over the output when every
operand is contiguous, else channel/row/column loops over the operands' strides (slices are views).

They may run in place (an input lying exactly where the output goes), so no pointer is ``restrict``.
"""

from __future__ import annotations

from collections.abc import Callable

from dass_edge.codegen.emit.context import Context, LayerCode
from dass_edge.codegen.emit.c import at, clamp, float_table, signature
from dass_edge.codegen.ir import Add, AddConst, Clamp, Copy, Node
from dass_edge.codegen.storage import Place

# The C expression of an output element from the inputs' elements and the element's dense CHW index.
Expression = Callable[[list[str], str], str]


def _elementwise(node: Node, ctx: Context, combine: Expression, tables: str = "",
                 per_channel: Callable[[], str] | None = None) -> str:
    """The layer's function. ``combine`` gets one element expression per input; ``per_channel``, when
    given, is a statement run at the start of each channel (e.g. loading a per-channel constant)."""
    c, h, w = node.output.shape
    operands = [*ctx.inputs, ctx.output]
    names = [f"x{k}" for k in range(len(ctx.inputs))]
    flat = all(o.place.contiguous(o.tensor) for o in operands) and per_channel is None
    if flat:
        element = combine([f"{n}[i]" for n in names], "i")
        loops = f"    for (int i = 0; i < {c * h * w}; ++i) y[i] = {element};\n"
    else:
        index = [at(o.place, "ch", "oy", "ox") for o in operands]
        dense = Place("", 0, (h * w, w, 1))
        element = combine([f"{n}[{i}]" for n, i in zip(names, index)], at(dense, "ch", "oy", "ox"))
        setup = f"        {per_channel()}\n" if per_channel else ""
        loops = (f"    for (int ch = 0; ch < {c}; ++ch) {{\n{setup}"
                 f"        for (int oy = 0; oy < {h}; ++oy)\n"
                 f"            for (int ox = 0; ox < {w}; ++ox) y[{index[-1]}] = {element};\n    }}\n")
    return f"{tables}{signature(ctx.name, names, restrict=False)} {{\n{loops}}}\n"


def _code(source: str, ctx: Context) -> LayerCode:
    return LayerCode(source, (*(o.pointer for o in ctx.inputs), ctx.output.pointer))


def emit_add(node: Add, ctx: Context) -> LayerCode:
    return _code(_elementwise(node, ctx, lambda v, _: clamp(f"{v[0]} + {v[1]}", node.out_clamp)), ctx)


def emit_add_const(node: AddConst, ctx: Context) -> LayerCode:
    name = f"{ctx.name}_k"
    tables = float_table(name, node.const)
    if node.const.shape[1:] == (1, 1):
        return _code(_elementwise(node, ctx, lambda v, _: clamp(f"{v[0]} + k", node.out_clamp), tables,
                                  lambda: f"const float k = {name}[ch];"), ctx)
    return _code(_elementwise(node, ctx, lambda v, i: clamp(f"{v[0]} + {name}[{i}]", node.out_clamp), tables), ctx)


def emit_clamp(node: Clamp, ctx: Context) -> LayerCode:
    return _code(_elementwise(node, ctx, lambda v, _: clamp(v[0], node.bounds)), ctx)


def emit_copy(node: Copy, ctx: Context) -> LayerCode:
    return _code(_elementwise(node, ctx, lambda v, _: v[0]), ctx)
