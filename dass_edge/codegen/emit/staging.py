"""Staging a convolution's input into its workspace so that every kernel tap becomes one flat loop.

Clipping loop ranges at the borders costs a bound per (weight, row), and on 16x16 maps most rows are short:
the vector loop then spends its time in remainders. Instead, the input channels a layer reads are copied
once into zero-padded planes (the fused ReLU of the input applied on the way), split by stride phase
((y mod s, x mod s)), so that output (oy, ox) of tap (ky, kx) reads plane element
``(oy + ky*d // s, ox + kx*d // s)`` of phase ``(ky*d mod s, kx*d mod s)``: a stride-1, unclipped window.
The output is computed over the planes' full width (``cols``), so rows of ``rows_per_block`` output rows
form one flat, constant-length loop per weight; the columns past the output's width are computed and never
stored. Reads past a plane's end land in the next plane or in a zeroed margin and only feed those
discarded columns.

A 1x1 stride-1 unpadded conv reading whole contiguous planes needs no copy: it reads its input directly.
``blocks`` is the loop skeleton shared by convolutions and pooling over such staged planes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dass_edge.codegen.emit.c import clamp, int_table
from dass_edge.codegen.ir import Bounds, Conv, Pair, Pool
from dass_edge.codegen.memory import align_up
from dass_edge.codegen.storage import Place

BLOCK_MAX = 64  # output floats per accumulator block: eight AVX registers, sixteen NEON ones


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

    @classmethod
    def of(cls, node: Conv | Pool, rows_contiguous: bool, channels: tuple[int, ...], taps: list[Pair],
           fill: str = "0.0f") -> Staging:
        """``rows_contiguous``: the input's rows are whole and back to back (it is no slice view)."""
        (h, w), (sy, sx), (dy, dx) = node.inputs[0].shape[1:], node.stride, node.dilation
        direct = (node.kernel == (1, 1) and node.stride == (1, 1) and node.padding == (0, 0) and rows_contiguous)
        phases = tuple(sorted({((ky * dy) % sy, (kx * dx) % sx) for ky, kx in taps})) or ((0, 0),)
        return cls((h, w), node.output.shape[1:], node.kernel, node.stride, node.dilation, node.padding,
                   channels, phases, direct, fill)

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
    def rows_per_block(self) -> int:
        """Output rows per block: as many as fit, dividing the output's height (a last, shorter block needs a
        test that stops gcc from vectorising the stores)."""
        fit = max(1, min(self.out_hw[0], BLOCK_MAX // self.cols))
        return max(r for r in range(1, fit + 1) if self.out_hw[0] % r == 0)

    @property
    def block(self) -> int:
        """Floats per accumulator block: whole plane rows; staged, rounded up to a multiple of 8 (read
        directly, the input must not be over-read: it may be the caller's buffer)."""
        size = self.rows_per_block * self.cols
        return size if self.direct else align_up(size, 8)

    @property
    def floats(self) -> int:
        """Workspace size: the planes and a margin for the last block's over-read."""
        if self.direct:
            return 0
        return len(self.channels) * len(self.phases) * self.plane + self.block + self.cols + 8

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
    margin_start = len(staging.channels) * len(staging.phases) * staging.plane
    lines.append(f"    for (int i = {margin_start}; i < {staging.floats}; ++i) ws[i] = 0.0f;\n")
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
            for (int t = {col_low}; t < {col_high}; ++t) d[t] = {element};
            for (int t = {col_high}; t < {staging.cols}; ++t) d[t] = {fill};
        }}
"""


def blocks(staged: Staging, channels: int, setup: str, init: str, accumulate: str, store: str) -> str:
    """The loop skeleton over a staged input: per output channel ``o`` (after ``setup``) and block of
    output rows starting at ``oy0``: ``acc`` set to ``init``, ``accumulate``, then each valid output
    element set to ``store``: an expression of ``ACC`` (the element's accumulator), ``INDEX`` (its index
    in the output), ``oy`` and ``ox``."""
    (oh, ow), rows = staged.out_hw, staged.rows_per_block
    value = store.replace("ACC", f"acc[rr * {staged.cols} + ox]").replace("INDEX", f"o * {oh * ow} + oy * {ow} + ox")
    return (f"    for (int o = 0; o < {channels}; ++o) {{\n{setup}"
            f"        for (int oy0 = 0; oy0 < {oh}; oy0 += {rows}) {{\n"
            f"            float acc[{staged.block}];\n"
            f"            for (int j = 0; j < {staged.block}; ++j) acc[j] = {init};\n"
            f"{accumulate}"
            f"            for (int rr = 0; rr < {rows}; ++rr) {{\n"
            f"                const int oy = oy0 + rr;\n"
            f"                for (int ox = 0; ox < {ow}; ++ox) y[o * {oh * ow} + oy * {ow} + ox] = {value};\n"
            f"            }}\n        }}\n    }}\n")
