"""Small rewrites of an ONNX graph that help a converter keep the ops a device wants.

onnx2tf maps a dilated depthwise Conv with "same" padding onto a TensorFlow op that the TFLite converter
lowers to a grouped CONV_2D, which GPU delegates run slowly or not at all. With the padding moved into an
explicit Pad node (the conv itself "valid") the same conv stays a DEPTHWISE_CONV_2D. The result is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_padded_dilated_depthwise(node: Any, weights: dict[str, Any]) -> bool:
    if node.op_type != "Conv" or node.input[1] not in weights:
        return False
    attrs = _attrs(node)
    group, dims = attrs.get("group", 1), list(weights[node.input[1]].dims)
    return (group > 1 and len(dims) == 4 and dims[1] == 1 and dims[0] == group
            and any(d > 1 for d in attrs.get("dilations", [1])) and any(p > 0 for p in attrs.get("pads", [0])))


def explicit_pad_dilated_depthwise(model: Any) -> int:
    """Move the padding of every padded, dilated depthwise Conv into a Pad node; returns how many moved."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes = []
    moved = 0
    for node in graph.node:
        if _is_padded_dilated_depthwise(node, weights):
            pads = _attrs(node)["pads"]
            half = len(pads) // 2
            name = f"{node.name or node.output[0]}_explicit_pad"
            full = np.array([0, 0, *pads[:half], 0, 0, *pads[half:]], dtype=np.int64)
            graph.initializer.append(numpy_helper.from_array(full, f"{name}_amounts"))
            nodes.append(helper.make_node("Pad", [node.input[0], f"{name}_amounts"], [f"{name}_out"], name=name))
            node.input[0] = f"{name}_out"
            for attr in node.attribute:
                if attr.name == "pads":
                    attr.ints[:] = [0] * len(pads)
            moved += 1
        nodes.append(node)
    graph.ClearField("node")
    graph.node.extend(nodes)
    return moved
