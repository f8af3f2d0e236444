"""Kernel configurations in the range DASS and the baselines use, and a one-kernel ONNX model for each.

nn-Meter's own sampler draws up to 224x224 and 2,136 channels (ImageNet mobile nets): a CIFAR/MNIST-sized
network never sees most of that space, and samples spent there are wasted (450 conv samples took 21
minutes here). We draw sizes 4-32 px, channels up to what MobileNet-v2 and ResNet-18 reach, kernels 1/3/5
with dilation 1/2 where the DASS space has it, and half of the channel counts on 4/8/16 multiples, since
ONNX Runtime's CPU kernels work in channel blocks and alignment changes speed several-fold.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

SIZES = (4, 7, 8, 14, 16, 28, 32)
MAX_MACS = 40e6  # bigger kernels than this do not occur in the networks we predict
MAX_ELEMENTS = 600_000


@dataclass(frozen=True)
class Sample:
    """One kernel to measure: its type and the fields the builder needs (NCHW, batch 1)."""

    kernel_type: str
    config: dict[str, Any]


def _channels(rng: random.Random, low: int, high: int) -> int:
    c = int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))
    if rng.random() < 0.5:  # half on block multiples, as real networks mostly are
        block = rng.choice((4, 8, 16))
        c = max(block, int(round(c / block)) * block)
    return max(low, min(high, c))


def _conv(rng: random.Random) -> dict[str, Any]:
    while True:
        k = rng.choices((1, 3, 5), weights=(5, 4, 1))[0]
        cfg = {"h": rng.choice(SIZES), "cin": 3 if rng.random() < 0.05 else _channels(rng, 2, 512),
               "cout": _channels(rng, 4, 512), "k": k, "s": rng.choice((1, 1, 2)), "dil": 1, "groups": 1,
               "relu": rng.random() < 0.5}
        if (cfg["h"] / cfg["s"]) ** 2 * cfg["cin"] * cfg["cout"] * k * k <= MAX_MACS:
            return cfg


def _dwconv(rng: random.Random) -> dict[str, Any]:
    while True:
        c = _channels(rng, 4, 1536)
        cfg = {"h": rng.choice(SIZES), "cin": c, "cout": c, "k": rng.choice((3, 3, 5)), "s": rng.choice((1, 1, 2)),
               "dil": rng.choice((1, 2)), "groups": c, "relu": rng.random() < 0.5}
        if cfg["h"] ** 2 * c <= MAX_ELEMENTS:
            return cfg


def _tensor(rng: random.Random, high: int = 1536) -> dict[str, Any]:
    while True:
        cfg = {"h": rng.choice(SIZES), "c": _channels(rng, 4, high)}
        if cfg["h"] ** 2 * cfg["c"] <= MAX_ELEMENTS:
            return cfg


def _pool(rng: random.Random) -> dict[str, Any]:
    return {**_tensor(rng, 512), "k": 3, "s": rng.choice((1, 2))}


def _reorder(rng: random.Random) -> dict[str, Any]:
    cfg = _tensor(rng, 640)  # ONNX Runtime reorders only channel counts that are multiples of 4
    return {**cfg, "c": max(4, 4 * round(cfg["c"] / 4))}


def _concat(rng: random.Random) -> dict[str, Any]:
    h = rng.choice(SIZES)
    return {"h": h, "cs": [_channels(rng, 4, 256) for _ in range(rng.choice((2, 3, 4)))]}


def _fc(rng: random.Random) -> dict[str, Any]:
    return {"cin": _channels(rng, 8, 1280), "cout": rng.choice((2, 5, 10, 100)) if rng.random() < 0.7
            else _channels(rng, 8, 512)}


SAMPLERS = {
    "conv-bn-relu": _conv, "dwconv-bn-relu": _dwconv, "relu": _tensor, "bn": _tensor, "add": _tensor,
    "split": _tensor, "maxpool": _pool, "avgpool": _pool, "global-avgpool": _tensor, "concat": _concat,
    "fc": _fc, "reorder": _reorder,
}
KERNEL_TYPES: tuple[str, ...] = tuple(SAMPLERS)


def sample(kernel_type: str, seed: int, index: int) -> Sample:
    """The ``index``-th sample of a kernel type: a pure function of its arguments, so a resumed run
    draws exactly the samples an uninterrupted one would have."""
    rng = random.Random(f"{seed}:{kernel_type}:{index}")
    return Sample(kernel_type, SAMPLERS[kernel_type](rng))


LEAD_TYPES = ("conv-bn-relu", "dwconv-bn-relu")
NCHWC = "com.microsoft.nchwc"  # ONNX Runtime's blocked-layout ops


def build(s: Sample, lead: bool = False) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """A one-kernel ONNX model (opset 18) and its input shapes.

    ``lead`` puts a 1x1 conv in front of a conv sample. Alone, ONNX Runtime wraps a conv in layout
    reorders (NCHW -> NCHWc -> NCHW) that a conv inside a network mostly does without; timing
    lead+conv minus the lead alone (``lead_only``) gives the conv's cost in context.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    c = s.config
    nodes: list[Any] = []
    inits: list[Any] = []
    inputs: dict[str, tuple[int, ...]] = {}
    rng = np.random.default_rng(0)

    def const(name: str, array: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    t = s.kernel_type
    if t in ("conv-bn-relu", "dwconv-bn-relu"):
        inputs["x"] = (1, c["cin"], c["h"], c["h"])
        source = "x"
        if lead:
            nodes.append(_lead_conv(const, rng, c["cin"], "x", "xl"))
            source = "xl"
        w = const("w", rng.standard_normal((c["cout"], c["cin"] // c["groups"], c["k"], c["k"])).astype("float32"))
        b = const("b", np.zeros(c["cout"], "float32"))
        pad = c["dil"] * (c["k"] - 1) // 2
        nodes.append(helper.make_node("Conv", [source, w, b], ["y0" if c["relu"] else "y"], kernel_shape=[c["k"]] * 2,
                                      strides=[c["s"]] * 2, pads=[pad] * 4, dilations=[c["dil"]] * 2,
                                      group=c["groups"]))
        if c["relu"]:
            nodes.append(helper.make_node("Relu", ["y0"], ["y"]))
    elif t in ("relu", "add", "split", "bn", "global-avgpool"):
        shape = (1, c["c"], c["h"], c["h"])
        inputs["x"] = shape
        if t == "relu":
            nodes.append(helper.make_node("Relu", ["x"], ["y"]))
        elif t == "add":
            inputs["x2"] = shape
            nodes.append(helper.make_node("Add", ["x", "x2"], ["y"]))
        elif t == "split":  # what FactorizedReduce's x[:, :, 1:, 1:] exports to
            nodes.append(helper.make_node("Slice", ["x", const("st", [1, 1]), const("en", [2**31 - 1] * 2),
                                                    const("ax", [2, 3])], ["y"]))
        elif t == "bn":
            p = [const(n, np.full(c["c"], v, "float32")) for n, v in (("g", 1), ("be", 0), ("m", 0), ("v", 1))]
            nodes.append(helper.make_node("BatchNormalization", ["x", *p], ["y"]))
        else:
            nodes.append(helper.make_node("ReduceMean", ["x", const("axes", [2, 3])], ["y"], keepdims=1))
    elif t in ("maxpool", "avgpool"):
        inputs["x"] = (1, c["c"], c["h"], c["h"])
        extra = {"count_include_pad": 0} if t == "avgpool" else {}
        nodes.append(helper.make_node("MaxPool" if t == "maxpool" else "AveragePool", ["x"], ["y"],
                                      kernel_shape=[c["k"]] * 2, strides=[c["s"]] * 2, pads=[1] * 4, **extra))
    elif t == "concat":
        for i, ch in enumerate(c["cs"]):
            inputs[f"x{i}"] = (1, ch, c["h"], c["h"])
        nodes.append(helper.make_node("Concat", list(inputs), ["y"], axis=1))
    elif t == "fc":
        inputs["x"] = (1, c["cin"])
        w = const("w", rng.standard_normal((c["cout"], c["cin"])).astype("float32"))
        nodes.append(helper.make_node("Gemm", ["x", w, const("b", np.zeros(c["cout"], "float32"))], ["y"], transB=1))
    elif t == "reorder":  # NCHW -> NCHWc -> NCHW: two reorders, as ONNX Runtime inserts them
        inputs["x"] = (1, c["c"], c["h"], c["h"])
        nodes.append(helper.make_node("ReorderInput", ["x"], ["t"], domain=NCHWC))
        nodes.append(helper.make_node("ReorderOutput", ["t"], ["y"], domain=NCHWC, channels=c["c"]))
    elif t == "lead":
        inputs["x"] = (1, c["cin"], c["h"], c["h"])
        nodes.append(_lead_conv(const, rng, c["cin"], "x", "y"))
    else:
        raise ValueError(f"no builder for kernel type {t}")
    return _model(t, nodes, inits, inputs), inputs


def lead_only(s: Sample) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """The lead conv of ``build(s, lead=True)`` alone."""
    return build(Sample("lead", s.config))


def _lead_conv(const: Any, rng: Any, c: int, source: str, out: str) -> Any:
    import numpy as np
    from onnx import helper

    w = const("wl", rng.standard_normal((c, c, 1, 1)).astype("float32"))
    return helper.make_node("Conv", [source, w, const("bl", np.zeros(c, "float32"))], [out], kernel_shape=[1, 1])


def _model(name: str, nodes: list[Any], inits: list[Any], inputs: dict[str, tuple[int, ...]]) -> Any:
    from onnx import TensorProto, helper

    for i, node in enumerate(nodes):
        node.name = f"{node.op_type.lower()}_{i}"  # nn-Meter's IR keys nodes by name
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n, shape in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(NCHWC, 1)])
    model.ir_version = 8
    return model


def detection_view(model: Any) -> Any:
    """The model with a Flatten appended to its output, for nn-Meter's kernel detector only.

    nn-Meter builds its graph from edges, so a lone node (most one-kernel models) would vanish. Flatten
    becomes a "reshape" kernel, which nnmeter.detect_kernels drops as negligible. The model that is timed
    has no Flatten.
    """
    import copy

    from onnx import helper

    view = copy.deepcopy(model)
    out = view.graph.output[0]
    tail = helper.make_node("Flatten", [out.name], [out.name + "_tail"], name="tail_flatten")
    view.graph.node.append(tail)
    out.name = out.name + "_tail"
    return view
