"""A runtime's operator names -> the network's layers (module paths, and for DASS cells: cell, node, edge).

Why from the model file on the host: a profiler names what the runtime ran, not the PyTorch modules. ONNX Runtime
names the nodes of its optimised graph (a fused conv keeps its ONNX node's name; one moved to the NCHWc layout
is named after its output tensor plus ``_nchwc``), OpenVINO names IR layers after the ONNX nodes they came from
(``node_conv2d_4/WithoutBiases``) or after their output tensor (``logits``). The ONNX file says which module
each node belongs to: torch's dynamo exporter records the module scopes of every node (``pkg.torch.onnx.name_scopes``), the TorchScript exporter
writes them into the node name (``/cells.0/ops.1/ops.1.2/Conv``); failing both, a weight's name says it
(``cells_0_ops_1_2.weight``), also in an IR without its ONNX file (the NCS2's). The host has the file (it sent
the copy a board measured), so boards need nothing for this. Names that map to nothing (layout reorders, a
top-level add, a conv whose masked weight is computed) stay as the runtime gave them.
"""

from __future__ import annotations

import ast
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Module names of the DASS networks, flattened with "_" by torch.fx (cells_3_ops_2_1_1 is cells.3.ops.2.1.1).
_FLAT = re.compile(r"^(stem|cells|classifier)_(?=\w)")
_CELL_OP = re.compile(r"^cells\.(\d+)\.ops\.(\d+)(?:\.(.+))?$")
_CELL_PRE = re.compile(r"^cells\.(\d+)\.preprocess\.(\d+)(?:\.(.+))?$")
_PARAM = re.compile(r"^(?:p_)?(.+?)[._](?:weight|bias)(?:_compressed)?$")  # cells.0.ops.1.2.weight, p_stem_0_weight
_ORT_NCHWC = "_nchwc"
_WALK_BACK = 3  # a fused node named after a later activation: walk back this far for the op the profiler names


@dataclass(frozen=True)
class Graph:
    """The ONNX graph's names: each node's module path, op type and inputs, each tensor's producer."""

    scope: dict[str, str] = field(default_factory=dict)
    op_type: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)


def canonical(path: str) -> str:
    """A module path with dots (the fx-flattened ``cells_0_ops_1_2`` of a compacted DASS network included)."""
    return path.replace("_", ".") if "." not in path and _FLAT.match(path) else path


def scope_in_name(name: str) -> str | None:
    """The module path written into a TorchScript-exported node name: ``/cells.0/ops.1/ops.1.2/Conv`` ->
    ``cells.0.ops.1.2`` (each segment is either a deeper name of the previous one or a child of it)."""
    parts = [p for p in name.split("/") if p]
    if not name.startswith("/") or len(parts) < 2:
        return None
    base, local = "", ""
    for part in parts[:-1]:
        if local and part.startswith(local + "."):
            local = part
        else:
            base, local = ".".join(p for p in (base, local) if p), part
    return canonical(".".join(p for p in (base, local) if p))


def _dynamo_scope(node) -> str | None:  # noqa: ANN001
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return canonical(scopes[-2]) if len(scopes) >= 3 and scopes[-2] else None
    return None


def param_path(name: str) -> str | None:
    """The module path of a weight's name (``cells_0_ops_1_2.weight`` -> ``cells.0.ops.1.2``), else None."""
    match = _PARAM.match(name)
    return canonical(match[1]) if match else None


def _ir_graph(path: Path) -> Graph | None:
    """An OpenVINO IR without its ONNX source: a layer's module from the name of the weight it reads (a Const,
    possibly through a Convert); layers whose weights were computed (a masked weight) stay unmapped."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    names = {layer.get("id"): (layer.get("name"), layer.get("type")) for layer in root.iter("layer")}
    feeds: dict[str, list[str]] = {}
    for edge in root.iter("edge"):
        feeds.setdefault(edge.get("to-layer"), []).append(edge.get("from-layer"))
    graph = Graph()
    for lid, (name, kind) in names.items():
        graph.op_type[name] = kind
        sources = feeds.get(lid, [])
        sources += [up for src in sources if names.get(src, ("", ""))[1] == "Convert" for up in feeds.get(src, [])]
        found = [param_path(names[src][0]) for src in sources if names.get(src, ("", ""))[1] == "Const"]
        if any(found):
            graph.scope[name] = next(p for p in found if p)
    return graph


def _onnx_graph(path: Path) -> Graph | None:
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a file the runtime ran but onnx cannot parse: names stay unmapped
        log.warning("cannot read %s to map operators to layers: %s", path.name, exc)
        return None
    graph = Graph()
    weights = {init.name for init in model.graph.initializer}
    for node in model.graph.node:
        params = [param_path(t) for t in node.input if t in weights]
        scope = _dynamo_scope(node) or scope_in_name(node.name) or next((p for p in params if p), None)
        if scope:
            graph.scope[node.name] = scope
        graph.op_type[node.name] = node.op_type
        graph.inputs[node.name] = list(node.input)
        for tensor in node.output:
            graph.producer[tensor] = node.name
    return graph


def read_graph(model: Path) -> Graph | None:
    """The names of ``model``'s ONNX graph: the file itself, or for an OpenVINO IR the ONNX file it was converted
    from beside it (exports keep both); None for formats without one (TFLite, TorchScript, C)."""
    if model.suffix == ".onnx" and model.is_file():
        return _onnx_graph(model)
    if model.suffix == ".xml" and model.is_file():
        sources = sorted(model.parent.glob("*.onnx"))
        return _onnx_graph(sources[0]) if len(sources) == 1 else _ir_graph(model)
    return None


def _walk_back(node: str, kind: str, graph: Graph) -> str:
    """From ``node`` back along first inputs to the node of op type ``kind`` (ONNX Runtime names a conv fused with
    its activation after the activation's output)."""
    for _ in range(_WALK_BACK):
        if graph.op_type.get(node, "").lower() == kind.lower():
            return node
        before = next((graph.producer[t] for t in graph.inputs.get(node, []) if t in graph.producer), None)
        if before is None:
            break
        node = before
    return node if graph.op_type.get(node, "").lower() == kind.lower() else ""


def layer_of(name: str, kind: str, graph: Graph | None) -> str | None:
    """The module path of the operator a runtime reports as ``name`` (op type ``kind``), or None."""
    if graph is not None:
        if name in graph.scope:
            return graph.scope[name]
        stem = name.rsplit("/", 1)[0]  # OpenVINO: node_conv2d/WithoutBiases is node_conv2d's convolution
        if "/" in name and stem in graph.scope:
            return graph.scope[stem]
        tensor = name[:-len(_ORT_NCHWC)] if name.endswith(_ORT_NCHWC) else name  # or named after its output
        if tensor in graph.producer:
            node = graph.producer[tensor]
            return graph.scope.get(_walk_back(node, kind, graph) or node)
    return scope_in_name(name)


def describe_layer(path: str) -> str:
    """``cells.0.ops.3.1`` -> ``cell 0, node 3 (edge 3), layer 1``: a DASS cell's edge i feeds node 2 + i // 2
    (nodes 0 and 1 are the cell's inputs); other paths as they are."""
    match = _CELL_OP.match(path)
    if match:
        cell, edge, rest = int(match[1]), int(match[2]), match[3]
        return f"cell {cell}, node {2 + edge // 2} (edge {edge})" + (f", layer {rest}" if rest else "")
    match = _CELL_PRE.match(path)
    if match:
        return f"cell {match[1]}, input {match[2]} preprocessing" + (f", layer {match[3]}" if match[3] else "")
    return path
