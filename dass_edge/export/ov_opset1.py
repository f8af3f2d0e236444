"""Rewrite an OpenVINO model into opset1 ops only, so IR v10 loads in OpenVINO 2021.4 (the NCS2's last runtime).

Importing ONNX in current OpenVINO yields opset1 ops plus two newer ones: MaxPool-8 (which adds a dilation
and an index output) and Slice-8. Both have exact opset1 equivalents when the dilation is 1 and the
indices are unused; anything else left outside opset1 is reported rather than written as a file the old
runtime would refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from dass_edge.errors import InputError

log = logging.getLogger(__name__)


def _const(node: Any, index: int) -> np.ndarray:
    source = node.input_value(index).get_node()
    if source.get_type_name() != "Constant":
        raise InputError(f"{node.get_friendly_name()}: input {index} is not constant; cannot express it in opset1")
    return np.asarray(source.get_data())


def _max_pool(node: Any) -> Any:
    from openvino import opset1

    attrs = node.get_attributes()
    if any(d != 1 for d in attrs["dilations"]) or node.output(1).get_target_inputs():
        raise InputError(f"{node.get_friendly_name()}: dilated MaxPool or its indices have no opset1 form")
    return opset1.max_pool(node.input_value(0), attrs["strides"], attrs["pads_begin"], attrs["pads_end"],
                           attrs["kernel"], attrs["rounding_type"], attrs["auto_pad"])


def _slice(node: Any) -> Any:
    """Slice-8 (start, stop, step, axes) -> StridedSlice-1 over every axis, masks on the untouched ones."""
    from openvino import opset1

    rank = node.input_value(0).get_partial_shape().rank.get_length()
    start, stop, step = (_const(node, i).astype(np.int64) for i in (1, 2, 3))
    axes = _const(node, 4).astype(np.int64) % rank if node.get_input_size() > 4 else np.arange(len(start))
    begin, end, strides = np.zeros(rank, np.int64), np.zeros(rank, np.int64), np.ones(rank, np.int64)
    untouched = np.ones(rank, np.int64)  # mask 1: ignore begin/end on this axis, take all of it
    begin[axes], end[axes], strides[axes], untouched[axes] = start, stop, step, 0
    return opset1.strided_slice(node.input_value(0), opset1.constant(begin), opset1.constant(end),
                                opset1.constant(strides), untouched.tolist(), untouched.tolist())


REWRITES: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("MaxPool", "opset8"): _max_pool,
    ("Slice", "opset8"): _slice,
}


def to_opset1(model: Any) -> Any:
    """Replace every rewritable newer op in place; raise InputError naming any op still outside opset1."""
    for node in model.get_ordered_ops():
        key = (node.get_type_name(), node.get_type_info().version_id)
        if key in REWRITES:
            new = REWRITES[key](node)
            new.set_friendly_name(node.get_friendly_name())
            node.output(0).replace(new.output(0))
            log.debug("rewrote %s-%s %s", *key, node.get_friendly_name())
    model.validate_nodes_and_infer_types()
    left = sorted({f"{n.get_type_name()}-{n.get_type_info().version_id}" for n in model.get_ordered_ops()
                   if n.get_type_info().version_id != "opset1"})
    if left:
        raise InputError(f"ops outside opset1 that OpenVINO 2021.4 cannot read: {', '.join(left)}")
    return model
