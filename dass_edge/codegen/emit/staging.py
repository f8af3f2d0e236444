"""Staging a window op's input into its workspace so that every kernel tap becomes one unclipped loop.

Clipping loop ranges at the borders costs a bound per (weight, row), and on 16x16 maps most rows are short:
the vector loop then spends its time in remainders. Instead, the input channels a layer reads are copied
once into padded planes (the fused ReLU of the input applied on the way; padding reads as 0, or -inf for a
max pool), split by stride phase ((y mod s, x mod s)), so that output (oy, ox) of tap (ky, kx) reads plane
element ``(oy + ky*d // s, ox + kx*d // s)`` of phase ``(ky*d mod s, kx*d mod s)``: a stride-1 window with
no bounds to test. A block of ``rows_per_block`` whole output rows (at most BLOCK_MAX floats) then lives
in vector registers while every weight adds its shifted rows to it, and is stored once, contiguously.

A 1x1 stride-1 unpadded conv reading whole contiguous planes needs no copy: it reads its input directly.
``blocks`` and ``window_loop`` are the loop skeleton shared by convolutions and pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

from dass_edge.codegen.emit.c import VECTOR_LOOP, clamp, int_table
from dass_edge.codegen.ir import Bounds, Conv, Pair, Pool
from dass_edge.codegen.memory import align_up
from dass_edge.codegen.storage import Place

BLOCK_MAX = 64  # output floats per accumulator block: eight AVX registers, sixteen NEON ones
WIDE = 16  # output rows at least this wide (and a multiple of 8) get exactly one accumulator per output


@dataclass(frozen=True)
class Staging:
    in_hw: Pair
    out_hw: Pair
    kernel: Pair
    stride: Pair
    dilation: Pair
    padding: Pair
    channels: tuple[int, ...]  # input channels copied, in workspace order
    phases: tuple[Pair, ...]  # stride phases copied, in workspace order
    direct: bool  # no copy: the input's own contiguous planes are read
    fill: str = "0.0f"  # what padding reads as (-INFINITY for a max pool)
    exact_rows: bool = True  # wide rows get one accumulator per output (not for pools: gcc left the
    # 2-D max loops half scalar)

    @classmethod
    def of(cls, node: Conv | Pool, rows_contiguous: bool, channels: tuple[int, ...], taps: list[Pair],
           fill: str = "0.0f", exact_rows: bool = True) -> Staging:
        """``rows_contiguous``: the input's rows are whole and back to back (it is no slice view)."""
        (h, w), (sy, sx), (dy, dx) = node.inputs[0].shape[1:], node.stride, node.dilation
        direct = not channels or (node.kernel == (1, 1) and node.stride == (1, 1) and node.padding == (0, 0)
                                  and rows_contiguous)  # no channel read (every weight pruned): nothing to copy
        phases = tuple(sorted({((ky * dy) % sy, (kx * dx) % sx) for ky, kx in taps})) or ((0, 0),)
        return cls((h, w), node.output.shape[1:], node.kernel, node.stride, node.dilation, node.padding,
                   channels, phases, direct, fill, exact_rows)

    @property
    def rows(self) -> int:
        return self.in_hw[0] if self.direct else self.out_hw[0] + (self.kernel[0] - 1) * self.dilation[0] // self.stride[0]

    @property
    def cols(self) -> int:
        return self.in_hw[1] if self.direct else self.out_hw[1] + (self.kernel[1] - 1) * self.dilation[1] // self.stride[1]

    @property
    def plane(self) -> int:
        return align_up(self.rows * self.cols, 8)

    @property
    def width(self) -> int:
        """Accumulators per output row. Rows a multiple of 8 wide get exactly one per output (whole vectors,
        stored contiguously); narrower ones take the planes' full width, so that a block is one flat run
        of vectors (the extra columns are computed and never stored)."""
        wide = self.exact_rows and self.out_hw[1] % 8 == 0 and self.out_hw[1] >= WIDE
        return self.out_hw[1] if wide else self.cols

    @property
    def rows_per_block(self) -> int:
        """Output rows per block: as many as fit, dividing the output's height (a last, shorter block needs a
        test that stops gcc from vectorising)."""
        fit = max(1, min(self.out_hw[0], BLOCK_MAX // self.width))
        return max(r for r in range(1, fit + 1) if self.out_hw[0] % r == 0)

    @property
    def block(self) -> int:
        """Floats per accumulator block."""
        return self.rows_per_block * self.width

    @property
    def floats(self) -> int:
        """Workspace size: the staged planes (none when the input is read directly)."""
        return 0 if self.direct else len(self.channels) * len(self.phases) * self.plane

    def offset(self, slot: int, ky: int, kx: int) -> int:
        """Where tap (ky, kx) of the ``slot``-th staged channel starts reading, for output (0, 0)."""
        (dy, dx), (sy, sx) = self.dilation, self.stride
        phase = self.phases.index(((ky * dy) % sy, (kx * dx) % sx))
        return (slot * len(self.phases) + phase) * self.plane + (ky * dy // sy) * self.cols + (kx * dx // sx)


def stage(staging: Staging, name: str, place: Place, in_clamp: Bounds | None) -> tuple[str, str]:
    """(tables, statements) copying the staged channels of ``x`` into the workspace ``ws``."""
    if staging.direct:
        return "", ""
    cs, rs, xs = place.strides
    contiguous = staging.channels == tuple(range(len(staging.channels)))
    tables = "" if contiguous else int_table(f"{name}_ch", staging.channels)
    source = "n" if contiguous else f"{name}_ch[n]"
    lines = [f"    for (int n = 0; n < {len(staging.channels)}; ++n) {{\n"
             f"        const float *src = x + {source} * {cs};\n"
             f"        float *planes = ws + n * {len(staging.phases) * staging.plane};\n"]
    for index, phase in enumerate(staging.phases):
        lines.append(_phase_copy(staging, index, phase, rs, xs, in_clamp))
    lines.append("    }\n")
    return tables, "".join(lines)


def _phase_copy(staging: Staging, index: int, phase: Pair, rs: int, xs: int, in_clamp: Bounds | None) -> str:
    (h, w), (sy, sx), (pad_y, pad_x) = staging.in_hw, staging.stride, staging.padding
    col_low = min(staging.cols, max(0, -(-(pad_x - phase[1]) // sx)))
    col_high = max(col_low, min(staging.cols, (w - 1 + pad_x - phase[1]) // sx + 1))
    shift = (phase[1] - pad_x) * xs
    fill = staging.fill
    element = clamp(f"s[t * {sx * xs} + {shift}]" if shift else f"s[t * {sx * xs}]", in_clamp)
    return f"""\
        for (int r = 0; r < {staging.rows}; ++r) {{  /* phase {phase} */
            float *d = planes + {index * staging.plane} + r * {staging.cols};
            const int iy = r * {sy} + {phase[0] - pad_y};
            if (iy < 0 || iy >= {h}) {{
                for (int t = 0; t < {staging.cols}; ++t) d[t] = {fill};
                continue;
            }}
            const float *s = src + iy * {rs};
            for (int t = 0; t < {col_low}; ++t) d[t] = {fill};
            {VECTOR_LOOP}for (int t = {col_low}; t < {col_high}; ++t) d[t] = {element};
            for (int t = {col_high}; t < {staging.cols}; ++t) d[t] = {fill};
        }}
"""


@dataclass(frozen=True)
class Epilogue:
    """How a block's accumulators start and end. ``init``: their start (the bias); ``add``: an expression
    of INDEX (an output element's index) added where an output element lies (a residual); ``finish``: an
    expression of ACC (an accumulator) applied to the whole block (a clamp); ``store``: the value stored from
    ACC and POS (the element's position in the output plane), e.g. a division for averages. ``scale``: an
    expression of ACC applied once after the accumulation (an int8 conv's channel scale and its bias, so
    that the inner loops do no extra multiply); with it, ``add`` comes after it, not before."""

    init: str
    add: str = ""
    finish: str = ""
    store: str = "ACC"
    scale: str = ""


def window_loop(staged: Staging, source: str, update: str) -> str:
    """The accumulators of the block updated from one shifted window: ``update`` is an expression of ACC
    (the accumulator) and SRC (its input element), for input ``source`` at the block's first output."""
    rows, width, step = staged.rows_per_block, staged.width, staged.cols
    if width == step:  # one flat run: a 2-D nest of short rows would be unrolled into scalar code
        loop = f"for (int j = 0; j < {staged.block}; ++j) acc[j] = {update.replace('ACC', 'acc[j]').replace('SRC', 's[j]')};"
    else:
        value = update.replace("ACC", f"acc[rr * {width} + ox]").replace("SRC", f"s[rr * {step} + ox]")
        loop = (f"for (int rr = 0; rr < {rows}; ++rr)\n"
                f"                      for (int ox = 0; ox < {width}; ++ox) acc[rr * {width} + ox] = {value};")
    return f"                {{ const float *s = {source};\n                  {loop} }}\n"


def blocks(staged: Staging, channels: int, setup: str, accumulate: str, epilogue: Epilogue) -> str:
    """The loop skeleton of a window op: per output channel ``o`` (after ``setup``) and block of whole
    output rows starting at row ``oy0``, the accumulators ``acc`` set up, ``accumulate``d and stored."""
    (oh, ow), rows, width, block = staged.out_hw, staged.rows_per_block, staged.width, staged.block

    def each(statement: str) -> str:
        return f"            for (int j = 0; j < {block}; ++j) {statement.replace('ACC', 'acc[j]')};\n"

    def per_output(statement: str) -> str:
        """``statement`` for every output element of the block (ACC, INDEX, POS substituted)."""
        if width == ow:
            return each(statement.replace("INDEX", f"o * {oh * ow} + oy0 * {ow} + j").replace("POS", f"oy0 * {ow} + j"))
        position = f"(oy0 + rr) * {ow} + ox"
        text = (statement.replace("ACC", f"acc[rr * {width} + ox]").replace("INDEX", f"o * {oh * ow} + {position}")
                .replace("POS", position))
        return (f"            for (int rr = 0; rr < {rows}; ++rr)\n"
                f"                for (int ox = 0; ox < {ow}; ++ox) {text};\n")

    add = per_output(f"ACC += {epilogue.add}") if epilogue.add else ""
    before, after = ("", each(f"ACC = {epilogue.scale}") + add) if epilogue.scale else (add, "")
    finish = each(f"ACC = {epilogue.finish}") if epilogue.finish else ""
    return (f"    for (int o = 0; o < {channels}; ++o) {{\n{setup}"
            f"        for (int oy0 = 0; oy0 < {oh}; oy0 += {rows}) {{\n"
            f"            float acc[{block}];\n"
            f"{each(f'ACC = {epilogue.init}')}{before}{accumulate}{after}{finish}{per_output(f'y[INDEX] = {epilogue.store}')}"
            f"        }}\n    }}\n")
