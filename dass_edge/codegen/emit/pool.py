"""Max and average pooling with PyTorch's rules, on the staged input skeleton shared with convolutions.

Padding is staged as -inf for a max (a padded position never wins) and as 0 for an average, which divides
by PyTorch's window size: clipped to the padded input (count_include_pad) or to the input itself; ceil_mode
shows up only as the output size. A stride-1 pool is computed separably (rows, then columns); otherwise
every kernel tap is one flat loop of maxima or sums over a block of output rows. One difference: a NaN input does not always win a max here (PyTorch tests for it; the test
made gcc branch per element). Global average pooling (AdaptiveAvgPool2d(1)) sums each plane in 8 lanes.
"""

from __future__ import annotations

import numpy as np

from dass_edge.codegen.emit.context import Context, LayerCode
from dass_edge.codegen.emit.c import VECTOR_LOOP, float_table, signature
from dass_edge.codegen.emit.staging import Epilogue, Staging, blocks, stage, window_loop
from dass_edge.codegen.ir import Pool

LANES = 8


def divisors(node: Pool, axis: int) -> list[float]:
    """Per output position along ``axis``, PyTorch's avg_pool2d window size (pooling is separable)."""
    size, out = node.inputs[0].shape[1 + axis], node.output.shape[1 + axis]
    kernel, stride, pad = node.kernel[axis], node.stride[axis], node.padding[axis]
    counts = []
    for o in range(out):
        start = o * stride - pad
        end = min(start + kernel, size + pad)
        if not node.count_include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(float(end - start))
    return counts


def is_global(node: Pool, rows_contiguous: bool) -> bool:
    """An average over each whole, contiguous plane."""
    return (node.kind == "avg" and node.kernel == node.inputs[0].shape[1:] and node.padding == (0, 0)
            and node.output.shape[1:] == (1, 1) and rows_contiguous)


def staging(node: Pool, rows_contiguous: bool) -> Staging | None:
    if is_global(node, rows_contiguous):
        return None
    taps = [(ky, kx) for ky in range(node.kernel[0]) for kx in range(node.kernel[1])]
    return Staging.of(node, rows_contiguous, tuple(range(node.inputs[0].shape[0])), taps,
                      "-INFINITY" if node.kind == "max" else "0.0f", exact_rows=False)


def workspace_floats(node: Pool, rows_contiguous: bool) -> int:
    found = staging(node, rows_contiguous)
    return found.floats if found else 0


def emit(node: Pool, ctx: Context) -> LayerCode:
    x = ctx.inputs[0].place
    _, h, w = node.inputs[0].shape
    staged = staging(node, x.strides[1:] == (w, 1))
    if staged is None:
        return _global(node, ctx)
    name = ctx.name
    tables, staging_code = stage(staged, name, x, None)
    if node.kind == "avg":
        sizes = np.outer(divisors(node, 0), divisors(node, 1))  # products of small integers: exact
        tables += float_table(f"{name}_div", sizes)
    if node.stride == (1, 1) and node.dilation == (1, 1):
        body = staging_code + _separable(node, staged, name)
    else:
        body = staging_code + _windows(node, staged, name)
    function = f"{signature(name, ['x'], workspace=True)} {{\n{body}}}\n"
    return LayerCode(tables + function, (ctx.inputs[0].pointer, ctx.output.pointer, ctx.require_workspace()))


def _combine(node: Pool, values: list[str]) -> str:
    """The max or the sum of ``values`` (a max as the helper: nested conditionals would repeat operands)."""
    result = values[0]
    for value in values[1:]:
        result = f"dass_edge_max({result}, {value})" if node.kind == "max" else f"{result} + {value}"
    return result


def _separable(node: Pool, staged: Staging, name: str) -> str:
    """Stride 1: a pool is separable; per channel, kernel columns reduced along each staged row first
    (unaligned loads from the workspace), then kernel rows along the output (aligned loads): 4 operations
    per output for 3x3 instead of 8."""
    (oh, ow), (kh, kw), cols = staged.out_hw, node.kernel, staged.cols
    across = _combine(node, [f"s[ox + {kx}]" if kx else "s[ox]" for kx in range(kw)])
    down = _combine(node, [f"s[{ky * ow} + ox]" if ky else "s[ox]" for ky in range(kh)])
    store = down if node.kind == "max" else f"({down}) / {name}_div[oy * {ow} + ox]"
    return f"""\
    for (int o = 0; o < {node.output.shape[0]}; ++o) {{
        const float *p = ws + o * {len(staged.phases) * staged.plane};
        float rows[{staged.rows * ow}];
        for (int r = 0; r < {staged.rows}; ++r) {{
            const float *s = p + r * {cols};
            {VECTOR_LOOP}for (int ox = 0; ox < {ow}; ++ox) rows[r * {ow} + ox] = {across};
        }}
        for (int oy = 0; oy < {oh}; ++oy) {{
            const float *s = rows + oy * {ow};
            {VECTOR_LOOP}for (int ox = 0; ox < {ow}; ++ox) y[o * {oh * ow} + oy * {ow} + ox] = {store};
        }}
    }}
"""


def _windows(node: Pool, staged: Staging, name: str) -> str:
    """Any stride and dilation: every kernel tap one loop of maxima or sums over a block of output rows."""
    update = "SRC > ACC ? SRC : ACC" if node.kind == "max" else "ACC + SRC"
    accumulate = "".join(window_loop(staged, f"p + {staged.offset(0, ky, kx)} + oy0 * {staged.cols}", update)
                         for ky in range(node.kernel[0]) for kx in range(node.kernel[1]))
    epilogue = Epilogue("-INFINITY") if node.kind == "max" else Epilogue("0.0f", store=f"ACC / {name}_div[POS]")
    setup = f"        const float *p = ws + o * {len(staged.phases) * staged.plane};\n"
    return blocks(staged, node.output.shape[0], setup, accumulate, epilogue)


def _global(node: Pool, ctx: Context) -> LayerCode:
    """Per channel: LANES partial sums over the plane (independent, so they vectorise without reordering
    any one sum), then their total divided by the plane size."""
    channels, h, w = node.inputs[0].shape
    plane, cs = h * w, ctx.inputs[0].place.strides[0]
    lanes = LANES if plane >= 2 * LANES else 1
    whole = plane - plane % lanes
    total = " + ".join(f"part[{j}]" for j in range(lanes))
    body = f"""\
    for (int c = 0; c < {channels}; ++c) {{
        const float *p = x + c * {cs};
        float part[{lanes}] = {{0.0f}};
        for (int i = 0; i < {whole}; i += {lanes})
            for (int j = 0; j < {lanes}; ++j) part[j] += p[i + j];
        for (int i = {whole}; i < {plane}; ++i) part[0] += p[i];
        y[c] = ({total}) / {float(plane)}f;
    }}
"""
    function = f"{signature(ctx.name, ['x'])} {{\n{body}}}\n"
    return LayerCode(function, (ctx.inputs[0].pointer, ctx.output.pointer))
