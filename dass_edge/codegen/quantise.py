"""int8 weights: every conv's and linear's weights as int8 with one float scale per output channel.

Symmetric, so a pruned weight stays exactly 0 and the sparse forms keep skipping it (a small non-zero
weight that rounds to 0 is skipped too): scale = max|w| / 127 over the output channel, q = round(w / scale);
an all-zero channel gets scale 0. Weights only: activations stay float and the kernels accumulate
``q * x`` in float, multiplying each output channel's sum by its scale once, before the bias, the residual
and the clamp, so the inner loops do no more work than in fp32 (emit/conv.py). It runs after the passes,
on the weights as they execute (BatchNorm folded in, unread channels dropped).
"""

from __future__ import annotations

import numpy as np

from dass_edge.codegen.ir import Graph

# precision -> how the generated C stores the weights (the source's header and build.json say it)
WEIGHTS = {"fp32": "fp32",
           "int8": "int8, one float scale per output channel (symmetric); activations and sums in float"}
PRECISIONS = tuple(WEIGHTS)
LEVELS = 127  # symmetric int8: -127..127 (no -128, so that q and -q both exist)


def per_channel(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q, scale): ``weight`` (out, ...) as integers in -127..127 (float32 holding them) and the float32
    scale of each output channel, ``weight ~= q * scale``."""
    peak = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1, initial=0.0)
    scale = (peak / LEVELS).astype(np.float32)
    divisor = np.where(scale > 0, scale, 1.0).reshape(-1, *(1,) * (weight.ndim - 1))
    q = np.clip(np.rint(weight / divisor), -LEVELS, LEVELS).astype(np.float32)
    return q, scale


def precision_of(graph: Graph) -> str:
    return "int8" if any(conv.scale is not None for conv in graph.convs()) else "fp32"


def quantise(graph: Graph, precision: str) -> None:
    """Give every conv of ``graph`` int8 weights (``Conv.scale`` set, ``weight`` holding q) for "int8";
    nothing for "fp32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; the C generator writes {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    for conv in graph.convs():
        conv.weight, conv.scale = per_channel(conv.weight)
