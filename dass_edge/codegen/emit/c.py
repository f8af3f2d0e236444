"""Small pieces of C text shared by the emitters: literals, constant tables, clamps, strided indexing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dass_edge.codegen.ir import Bounds, is_identity
from dass_edge.codegen.storage import Place

PER_LINE = 8


def literal(value: float) -> str:
    """A float32 as an exact C hex literal (decimal printing loses the low bits of small weights)."""
    value = float(np.float32(value))
    if math.isnan(value):
        raise ValueError("NaN in a weight or constant")
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    if value == 0.0:
        return "0.0f"
    mantissa, exponent = value.hex().split("p")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}p{exponent}f"


def index_type(values: Sequence[int]) -> str:
    """The smallest integer type that holds every value: index arrays are most of a sparse layer's bytes."""
    low, high = min(values, default=0), max(values, default=0)
    for bits in (8, 16, 32):
        if low >= 0 and high < 1 << bits:
            return f"uint{bits}_t"
        if -(1 << (bits - 1)) <= low and high < 1 << (bits - 1):
            return f"int{bits}_t"
    raise ValueError(f"index {low}..{high} does not fit 32 bits")


def table(name: str, ctype: str, values: Sequence, formatter=str) -> str:
    """``static const ctype name[n] = {...};`` (a one-element dummy for an empty table, which C forbids)."""
    items = [formatter(v) for v in values] or [formatter(0)]
    lines = [", ".join(items[i:i + PER_LINE]) for i in range(0, len(items), PER_LINE)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};\n"


def float_table(name: str, values: np.ndarray) -> str:
    return table(name, "float", [float(v) for v in np.asarray(values, dtype=np.float32).ravel()], literal)


def weight_table(name: str, values: np.ndarray, quantised: bool) -> str:
    """Weights as exact float literals, or as ``int8_t`` when ``quantised`` (quantise.py's integers; a
    kernel's ``const float v = q`` converts each exactly, once per weight, outside its pixel loop)."""
    if not quantised:
        return float_table(name, values)
    return table(name, "int8_t", [int(v) for v in np.asarray(values).ravel()])


def int_table(name: str, values: Sequence[int]) -> str:
    values = [int(v) for v in values]
    return table(name, index_type(values), values)


def clamp(expression: str, bounds: Bounds | None) -> str:
    """``expression`` clamped; NaN passes through, as in PyTorch (the comparisons are false for it)."""
    if is_identity(bounds):
        return expression
    low, high = bounds
    if high == math.inf:
        return f"dass_edge_max({expression}, {literal(low)})"
    if low == -math.inf:
        return f"dass_edge_min({expression}, {literal(high)})"
    return f"dass_edge_min(dass_edge_max({expression}, {literal(low)}), {literal(high)})"


# Put before a short constant-length loop over a row: gcc -O3 unrolls loops of up to 16 iterations completely
# before it vectorises, and then left row copies and stores scalar (2x their instructions on MobileNet's
# staging); not unrolled, the loop vectoriser takes them.
VECTOR_LOOP = "_Pragma(\"GCC unroll 1\") "

HELPERS = """\
static inline float dass_edge_max(float v, float low) { return v < low ? low : v; }
static inline float dass_edge_min(float v, float high) { return v > high ? high : v; }
"""


def at(place: Place, c: str, y: str, x: str) -> str:
    """The index of element (c, y, x) relative to the operand's pointer (its offset is in the pointer)."""
    terms = []
    for coordinate, stride in zip((c, y, x), place.strides):
        if coordinate == "0" or stride == 0:
            continue
        terms.append(coordinate if stride == 1 else f"({coordinate}) * {stride}")
    return " + ".join(terms) or "0"


def signature(name: str, inputs: Sequence[str], restrict: bool = True, workspace: bool = False) -> str:
    """``static void name(const float *x, ..., float *y[, float *ws])``; ``restrict`` only where no input
    aliases the output ``y``; ``ws`` is the layer's scratch in the arena."""
    qualifier = "restrict " if restrict else ""
    params = [f"const float *{qualifier}{p}" for p in inputs] + [f"float *{qualifier}y"]
    if workspace:
        params.append(f"float *{qualifier}ws")
    return f"static void {name}({', '.join(params)})"
