"""Kernel features: nn-Meter's feature rows, the extras nn-Meter drops, MACs, and our regressor wrapper.

nn-Meter hands every kernel predictor one row per kernel (see nn_meter/predictor/prediction/
extract_feature.py), e.g. ``[h, cin, cout, k, stride, MFLOPs, Mparams]`` for a conv. Those rows lack
dilation and groups, and read the global-pool size as 1. Our own predictors accept nn-Meter's rows (so
``nnMeterPredictor`` can use them unchanged) and, appended to them, the extras that our own prediction
path reads from the graph: ``[dilation, groups]`` for convs, ``[true input size]`` for global pools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# nn-Meter's predictor names (get_kernel_name) and the length of nn-Meter's own feature row for each.
BASE_LENGTH: dict[str, int] = {
    "conv-bn-relu": 7, "dwconv-bn-relu": 7, "fc": 4, "maxpool": 5, "avgpool": 5, "global-avgpool": 2,
    "relu": 2, "bn": 2, "add": 3, "concat": 6, "split": 2,
}
# Kernel ops that cost nothing worth predicting (views, no data movement on any runtime we target).
NEGLIGIBLE_OPS = frozenset({"reshape", "flatten", "squeeze", "unsqueeze"})


def _aligned(c: float, block: int) -> float:
    return float(int(c) % block == 0)


def _log(x: float) -> float:
    return math.log(max(x, 1.0))


def _out_size(h: float, stride: float) -> float:
    return math.ceil(h / max(stride, 1))


def derive(kernel_type: str, row: Sequence[float]) -> list[float]:
    """The regressor's inputs for one nn-Meter row (+ optional extras).

    Trees split on thresholds, so we give them products (MACs, element counts) they cannot form
    themselves, and channel alignment flags: ONNX Runtime's CPU kernels work in channel blocks (4, 8, 16),
    and a misaligned channel count costs up to several times more per MAC.
    """
    r = [float(v) for v in row]
    if kernel_type == "conv-bn-relu":
        h, cin, cout, k, s = r[:5]
        dil, groups = (r[7], r[8]) if len(r) >= 9 else (1.0, 1.0)
        ho = _out_size(h, s)
        macs = ho * ho * cout * (cin / groups) * k * k
        return [h, cin, cout, k, s, dil, groups, _log(macs), _log(h * h * cin), _log(ho * ho * cout),
                *(_aligned(c, b) for c in (cin, cout) for b in (4, 8, 16))]
    if kernel_type == "dwconv-bn-relu":
        h, c, _, k, s = r[:5]
        dil = r[7] if len(r) >= 8 else 1.0
        ho = _out_size(h, s)
        return [h, c, k, s, dil, _log(ho * ho * c * k * k), _log(h * h * c), _log(ho * ho * c),
                *(_aligned(c, b) for b in (4, 8, 16))]
    if kernel_type == "fc":
        cin, cout = r[:2]
        return [cin, cout, _log(cin * cout), _aligned(cin, 4), _aligned(cout, 4)]
    if kernel_type in ("maxpool", "avgpool"):
        h, c, _, k, s = r[:5]
        ho = _out_size(h, s)
        return [h, c, k, s, _log(ho * ho * c * k * k), _log(h * h * c), *(_aligned(c, b) for b in (4, 8, 16))]
    if kernel_type == "global-avgpool":
        h = r[2] if len(r) >= 3 else r[0]
        c = r[1]
        return [h, c, _log(h * h * c), _aligned(c, 4), _aligned(c, 16)]
    if kernel_type == "concat":
        h, n, *cs = r[:6]
        return [h, n, *cs, _log(h * h * sum(cs)), float(all(int(c) % 4 == 0 for c in cs if c))]
    # relu, bn, split: [h, c]; add: [h, c1, c2]
    h, c = r[:2]
    return [h, c, _log(h * h * c), *(_aligned(c, b) for b in (4, 8, 16))]


def extras(kernel_type: str, attr: dict[str, Any], input_shape: list[list[int]]) -> list[float]:
    """What nn-Meter's row leaves out, read from the kernel's first graph node (NHWC shapes)."""
    if kernel_type == "conv-bn-relu":
        return [float(attr.get("dilations", [1, 1])[0]), float(attr.get("group", 1))]
    if kernel_type == "dwconv-bn-relu":
        return [float(attr.get("dilations", [1, 1])[0]), float(attr.get("group", 1))]
    if kernel_type == "global-avgpool" and input_shape and len(input_shape[0]) == 4:
        return [float(input_shape[0][1])]
    return []


def macs(kernel_type: str, row: Sequence[float]) -> float:
    """Multiply-accumulates of a kernel; element-wise ops, pools and copies count one per element touched.

    Used to weigh coverage: a missing add predictor matters less than a missing conv one, but not zero.
    """
    r = [float(v) for v in row]
    if kernel_type == "conv-bn-relu":
        h, cin, cout, k, s = r[:5]
        groups = r[8] if len(r) >= 9 else 1.0
        return _out_size(h, s) ** 2 * cout * (cin / groups) * k * k
    if kernel_type == "dwconv-bn-relu":
        h, c, _, k, s = r[:5]
        return _out_size(h, s) ** 2 * c * k * k
    if kernel_type == "fc":
        return r[0] * r[1]
    if kernel_type in ("maxpool", "avgpool"):
        h, c, _, k, s = r[:5]
        return _out_size(h, s) ** 2 * c * k * k
    if kernel_type == "global-avgpool":
        h = r[2] if len(r) >= 3 else r[0]
        return h * h * r[1]
    if kernel_type == "concat":
        return r[0] * r[0] * sum(r[2:6])
    return r[0] * r[0] * r[1]


class KernelRegressor:
    """One kernel type's latency model: derived features in, milliseconds out (fitted on log latency).

    Pickled as ``<kernel>.pkl`` in nn-Meter's layout; ``nnMeterPredictor`` calls ``predict(rows)`` with its
    own rows, our path with the extras appended. ``base_ms`` is not added here: the per-run overhead of the
    runtime is added once per model, by our path, from metadata.json.
    """

    def __init__(self, kernel_type: str, model: Any):
        self.kernel_type = kernel_type
        self.model = model

    def predict(self, rows: Sequence[Sequence[float]]) -> Any:
        import numpy as np

        if len(rows) == 0:
            return np.zeros(0)
        x = np.array([derive(self.kernel_type, row) for row in rows])
        return np.exp(self.model.predict(x))
