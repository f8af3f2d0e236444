"""Convolutions (and linears: 1x1 convs on 1x1 maps) in three loop forms, chosen per layer (forms.py).

- ``sparse``: XNNPACK's sparse layout on a staged input (staging.py). Per output channel, its non-zero
  weights as (value, workspace offset) lists; per block of output rows a local accumulator starts from the
  bias, takes one constant-length, unclipped loop per non-zero weight and is stored once, with the residual
  and the clamp. Only non-zero weights are visited.
- ``rows``: the same lists on the unstaged input: per output row, each weight's input row is checked and
  its valid columns come from its tap. No copy, but a bound per (weight, row).
- ``dense``: every weight, zeros included, on the staged input, taps unrolled with constant offsets: the
  fallback for dense layers (a stem on 3 input channels), where index lists cost more than the zeros
  they skip.

All three handle stride, dilation, groups (depthwise and grouped), zero padding, a clamp on the loads (a
fused ReLU of the input), a residual (possibly in place) and a clamp on the stores, and int8 weights
(quantise.py): the same loops over ``int8_t`` tables, the accumulators starting from 0 and scaled by their
output channel's scale once, before the bias, the residual and the clamp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dass_edge.codegen.emit.context import Context, LayerCode
from dass_edge.codegen.emit.c import clamp, float_table, int_table, signature, weight_table
from dass_edge.codegen.emit.staging import Epilogue, Staging, blocks, stage, window_loop
from dass_edge.codegen.emit.window import Window
from dass_edge.codegen.ir import Conv


def nonzero_entries(node: Conv) -> np.ndarray:
    """Non-zero weights as rows (out, in channel of the whole input, ky, kx), by output channel."""
    weight = node.weight
    o, i, ky, kx = np.nonzero(weight)
    absolute = (o // (weight.shape[0] // node.groups)) * weight.shape[1] + i
    return np.stack([o, absolute, ky, kx], axis=1).reshape(-1, 4)


def nonzero_values(node: Conv, entries: np.ndarray) -> np.ndarray:
    """The weights at ``entries`` (nonzero_entries' rows), in that order."""
    return node.weight[entries[:, 0], entries[:, 1] % node.weight.shape[1], entries[:, 2], entries[:, 3]]


def staging(node: Conv, form: str, rows_contiguous: bool) -> Staging | None:
    """How ``form`` stages the input of ``node`` (None: it reads the input as it lies)."""
    if form == "rows":
        return None
    kh, kw = node.kernel
    if form == "dense":
        channels = tuple(range(node.inputs[0].shape[0]))
        taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
    else:
        entries = nonzero_entries(node)
        channels = tuple(sorted({int(c) for c in entries[:, 1]}))
        taps = sorted({(int(ky), int(kx)) for ky, kx in entries[:, 2:]})
    return Staging.of(node, rows_contiguous, channels, taps)


def workspace_floats(node: Conv, form: str, rows_contiguous: bool) -> int:
    found = staging(node, form, rows_contiguous)
    return found.floats if found else 0


@dataclass(frozen=True)
class _Layer:
    """What every form needs to know about one conv in its context."""

    node: Conv
    ctx: Context

    @property
    def name(self) -> str:
        return self.ctx.name

    @property
    def strides(self) -> tuple[int, int, int]:
        return self.ctx.inputs[0].place.strides

    @property
    def in_place(self) -> bool:
        return self.node.residual is not None and self.ctx.aliases_output(1)

    @property
    def has_bias(self) -> bool:
        return bool(np.any(self.node.bias))

    def staging(self, form: str) -> Staging | None:
        _, h, w = self.node.inputs[0].shape
        return staging(self.node, form, self.strides[1:] == (w, 1))

    @property
    def quantised(self) -> bool:
        return self.node.scale is not None

    def bias(self, channel: str) -> str:
        return f"{self.name}_b[{channel}]" if self.has_bias else "0.0f"

    def scaled(self, acc: str, channel: str) -> str:
        """An int8 layer's accumulator ``acc`` of output channel ``channel`` scaled, plus the bias."""
        product = f"{acc} * {self.name}_s[{channel}]"
        return f"{product} + {self.bias(channel)}" if self.has_bias else product

    @property
    def weight_type(self) -> str:
        return "int8_t" if self.quantised else "float"

    def weights(self, name: str, values: np.ndarray) -> str:
        return weight_table(name, values, self.quantised)

    def residual(self, index: str) -> str:
        """The residual's element at output element ``index`` (in place: the output's own element)."""
        if self.node.residual is None:
            return ""
        return f"{'y' if self.in_place else 'r'}[{index}]"

    def tables(self) -> str:
        scales = float_table(f"{self.name}_s", self.node.scale) if self.quantised else ""
        return (float_table(f"{self.name}_b", self.node.bias) if self.has_bias else "") + scales

    def function(self, body: str, workspace: bool) -> str:
        inputs = ["x"] if self.node.residual is None or self.in_place else ["x", "r"]
        return f"{signature(self.name, inputs, workspace=workspace)} {{\n{body}}}\n"

    def code(self, source: str, workspace: bool) -> LayerCode:
        pointers = [self.ctx.inputs[0].pointer]
        if self.node.residual is not None and not self.in_place:
            pointers.append(self.ctx.inputs[1].pointer)
        pointers.append(self.ctx.output.pointer)
        if workspace:
            pointers.append(self.ctx.require_workspace())
        return LayerCode(source, tuple(pointers))


def emit(node: Conv, ctx: Context) -> LayerCode:
    return FORMS[node.form](_Layer(node, ctx))


def _blocks(layer: _Layer, staged: Staging, setup: str, accumulate: str) -> str:
    """Per output channel and block of output rows: init from the bias and residual, ``accumulate``, clamp,
    store (int8: init from 0, ``accumulate``, scale, add the bias and residual, clamp, store)."""
    finish = "" if layer.node.out_clamp is None else clamp("ACC", layer.node.out_clamp)
    if layer.quantised:
        epilogue = Epilogue("0.0f", layer.residual("INDEX"), finish, scale=layer.scaled("ACC", "o"))
    else:
        epilogue = Epilogue(layer.bias("o"), layer.residual("INDEX"), finish)
    return blocks(staged, layer.node.weight.shape[0], setup, accumulate, epilogue)


def sparse(layer: _Layer) -> LayerCode:
    node, name = layer.node, layer.name
    staged = layer.staging("sparse")
    entries = nonzero_entries(node)
    slots = {c: k for k, c in enumerate(staged.channels)}
    if staged.direct:
        offsets = [int(c) * layer.strides[0] for c in entries[:, 1]]
    else:
        offsets = [staged.offset(slots[int(c)], int(ky), int(kx)) for _, c, ky, kx in entries]
    values = nonzero_values(node, entries)
    starts = np.searchsorted(entries[:, 0], np.arange(node.weight.shape[0] + 1))
    stage_tables, staging_code = stage(staged, name, layer.ctx.inputs[0].place, node.in_clamp)
    load = (lambda v: clamp(v, node.in_clamp)) if staged.direct else (lambda v: v)
    base = "x" if staged.direct else "ws"
    accumulate = (f"            for (int k = {name}_start[o]; k < {name}_start[o + 1]; ++k) {{\n"
                  f"                const float v = {name}_v[k];\n"
                  + window_loop(staged, f"{base} + {name}_off[k] + oy0 * {staged.cols}", f"ACC + v * {load('SRC')}")
                  + "            }\n")
    tables = (layer.tables() + stage_tables + layer.weights(f"{name}_v", values) + int_table(f"{name}_start", starts)
              + int_table(f"{name}_off", offsets))
    body = staging_code + _blocks(layer, staged, "", accumulate)
    return layer.code(tables + layer.function(body, not staged.direct), not staged.direct)


def dense(layer: _Layer) -> LayerCode:
    node, name = layer.node, layer.name
    staged = layer.staging("dense")
    out, group_in, kh, kw = node.weight.shape
    load = (lambda v: clamp(v, node.in_clamp)) if staged.direct else (lambda v: v)
    per_slot = layer.strides[0] if staged.direct else len(staged.phases) * staged.plane
    taps = []
    for ky in range(kh):
        for kx in range(kw):
            offset = 0 if staged.direct else staged.offset(0, ky, kx)
            taps.append(f"                {{ const float v = wi[{ky * kw + kx}];\n"
                        + window_loop(staged, f"p + {offset}", f"ACC + v * {load('SRC')}") + "                }\n")
    setup = (f"        const float *slots = {'x' if staged.direct else 'ws'} + (o / {out // node.groups}) * {group_in * per_slot};\n"
             f"        const {layer.weight_type} *wo = {name}_w + o * {group_in * kh * kw};\n")
    accumulate = (f"            for (int i = 0; i < {group_in}; ++i) {{\n"
                  f"                const float *p = slots + i * {per_slot} + oy0 * {staged.cols};\n"
                  f"                const {layer.weight_type} *wi = wo + i * {kh * kw};\n"
                  + "".join(taps) + "            }\n")
    stage_tables, staging_code = stage(staged, name, layer.ctx.inputs[0].place, node.in_clamp)
    tables = layer.tables() + stage_tables + layer.weights(f"{name}_w", node.weight)
    body = staging_code + _blocks(layer, staged, setup, accumulate)
    return layer.code(tables + layer.function(body, not staged.direct), not staged.direct)


def rows(layer: _Layer) -> LayerCode:
    """Per output row of each output channel; a weight's input row is checked once, its valid columns come
    from its tap's tables."""
    node, name = layer.node, layer.name
    window = Window.of(node)
    entries = nonzero_entries(node)
    (oh, ow), (sy, sx), kw = window.out_hw, window.stride, node.kernel[1]
    cs, rs, xs = layer.strides
    taps = [(ky, kx) for ky in range(node.kernel[0]) for kx in range(kw)]
    columns = [window.columns(kx) for _, kx in taps]
    values = nonzero_values(node, entries)
    tables = (layer.tables() + layer.weights(f"{name}_v", values)
              + int_table(f"{name}_start", np.searchsorted(entries[:, 0], np.arange(node.weight.shape[0] + 1)))
              + int_table(f"{name}_in", entries[:, 1] * cs) + int_table(f"{name}_tap", entries[:, 2] * kw + entries[:, 3])
              + int_table(f"{name}_dy", [window.row_shift(ky) for ky, _ in taps])
              + int_table(f"{name}_dx", [window.column_shift(kx) * xs for _, kx in taps])
              + int_table(f"{name}_lo", [c[0] for c in columns]) + int_table(f"{name}_hi", [c[1] for c in columns]))
    index = f"o * {oh * ow} + oy * {ow} + ox"
    residual = f"acc[ox] += {layer.residual(index)};" if node.residual is not None else ""
    finish = f"acc[ox] = {clamp('acc[ox]', node.out_clamp)};" if node.out_clamp is not None else ""
    if layer.quantised:  # start from 0; the scale, then the bias and residual, after the weights
        init, rescale = "acc[ox] = 0.0f;", f"acc[ox] = {layer.scaled('acc[ox]', 'o')}; {residual} "
    else:
        init, rescale = f"acc[ox] = {layer.bias('o')}; {residual}", ""
    body = f"""\
    for (int o = 0; o < {node.weight.shape[0]}; ++o) {{
        for (int oy = 0; oy < {oh}; ++oy) {{
            float acc[{ow}];
            for (int ox = 0; ox < {ow}; ++ox) {{ {init} }}
            for (int k = {name}_start[o]; k < {name}_start[o + 1]; ++k) {{
                const int t = {name}_tap[k];
                const int iy = oy * {sy} + {name}_dy[t];
                if (iy < 0 || iy >= {window.in_hw[0]}) continue;
                const float v = {name}_v[k];
                const float *row = x + {name}_in[k] + iy * {rs};
                const int shift = {name}_dx[t];
                for (int ox = {name}_lo[t]; ox < {name}_hi[t]; ++ox)
                    acc[ox] += v * {clamp(f"row[ox * {sx * xs} + shift]", node.in_clamp)};
            }}
            for (int ox = 0; ox < {ow}; ++ox) {{ {rescale}{finish} }}
            for (int ox = 0; ox < {ow}; ++ox) y[{index}] = acc[ox];
        }}
    }}
"""
    return layer.code(tables + layer.function(body, False), False)


FORMS: dict[str, Callable[[_Layer], LayerCode]] = {"sparse": sparse, "rows": rows, "dense": dense}
