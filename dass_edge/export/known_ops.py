"""What a board's runtime version can load, and the check of an exported file against it.

A converter that is newer than the board's runtime can write ops the runtime has never heard of: litert-torch
lowers some pools to STABLEHLO_REDUCE_WINDOW (builtin code 198), which tflite-runtime 2.13 refuses with
"Op builtin_code out of range", while the host's LiteRT loads it and a host-side parity check passes. So
every exported file is read back (the TFLite operator-code table with LiteRT's schema reader, the ONNX
opset imports, the OpenVINO IR's layer opsets) and compared with ``known_ops.json``: per runtime version,
what that very runtime loaded when asked (dass_edge/export/probe_runtimes.py made it; rerun it to add a
version). Anything else fails the export with one line naming the op. ``host`` versions have no entry:
the file is loaded in the host's runtime by the parity check anyway; TFLite custom ops are refused always.
"""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dass_edge.errors import DassEdgeError, InputError
from dass_edge.runtimes import require
from dass_edge.targets import HOST, Target

DATA = Path(__file__).with_name("known_ops.json")
TFLITE_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the TFLite ops that hold weights
ONNX_DOMAINS = ("", "ai.onnx")


class UnknownOpError(DassEdgeError):
    """An exported file holds an op (or opset, IR version) that the target's board runtime cannot load."""


@functools.lru_cache(maxsize=1)
def known() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def limits(runtime: str, version: str) -> dict[str, Any]:
    """The recorded knowledge of ``runtime`` at ``version``; an InputError says how to record a new one."""
    key = f"{runtime} {version}"
    if key not in known():
        raise InputError(f"no record of what {key} loads in {DATA.name}; build a side environment with it "
                         "and run: python -m dass_edge.export.probe_runtimes")
    return known()[key]


def builtin_names() -> dict[int, str]:
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def tflite_operators(path: Path) -> list[tuple[str, int]]:
    """(op name, op version) of each entry of a .tflite file's operator-code table: what an interpreter
    resolves when it loads the file. Custom ops are named ``CUSTOM:<code>``."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    names = builtin_names()
    found = []
    for i in range(model.OperatorCodesLength()):
        entry = model.OperatorCodes(i)
        code = max(entry.BuiltinCode(), entry.DeprecatedBuiltinCode())  # how the schema says to read it
        name = names.get(code, f"builtin code {code}")
        if code == schema.BuiltinOperator.CUSTOM:
            name = f"CUSTOM:{(entry.CustomCode() or b'').decode()}"
        found.append((name, entry.Version()))
    return found


def tflite_op_counts(path: Path) -> Counter[str]:
    """How many operators of each op name the file's subgraphs hold."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    table = [name for name, _ in tflite_operators(path)]
    return Counter(table[graph.Operators(j).OpcodeIndex()]
                   for graph in (model.Subgraphs(i) for i in range(model.SubgraphsLength()))
                   for j in range(graph.OperatorsLength()))


def _unknown(path: Path, what: str, runtime: str, version: str) -> UnknownOpError:
    return UnknownOpError(f"{path.name} holds {what}, which {runtime} {version} cannot load")


def check_tflite(path: Path, runtime: str, version: str, target: Target) -> None:
    for name, op_version in tflite_operators(path):
        if name.startswith("CUSTOM:"):
            raise _unknown(path, f"the custom op {name[7:]!r} (builtin ops only)", runtime, version)
        if version != HOST and op_version not in limits(runtime, version)["tflite_builtin_ops"].get(name, ()):
            raise _unknown(path, f"{name} version {op_version}", runtime, version)


def check_onnx(path: Path, runtime: str, version: str, target: Target) -> None:
    onnx = require("onnx", "onnx")
    proto = onnx.load(str(path), load_external_data=False)
    for node in proto.graph.node:
        if node.domain not in ONNX_DOMAINS:
            raise _unknown(path, f"{node.op_type} of domain {node.domain!r} (standard ONNX ops only)", runtime,
                           version)
    if version == HOST:
        return
    known_here = limits(runtime, version)
    if proto.ir_version > known_here["onnx_max_ir_version"]:
        raise _unknown(path, f"ONNX IR version {proto.ir_version}", runtime, version)
    for entry in proto.opset_import:
        if entry.domain in ONNX_DOMAINS and entry.version > known_here["onnx_max_opset"]:
            raise _unknown(path, f"ONNX opset {entry.version}", runtime, version)


def check_openvino(path: Path, runtime: str, version: str, target: Target) -> None:
    """IR version and each layer's opset; a target ``opset`` caps it further (ncs2: opset1, Myriad)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"{path.name} is not an OpenVINO IR: {exc}") from None
    allowed = None if version == HOST else limits(runtime, version)
    if allowed is not None and int(root.get("version", 0)) not in allowed["ir_versions"]:
        raise _unknown(path, f"OpenVINO IR version {root.get('version')}", runtime, version)
    for layer in root.iter("layer"):
        opset = layer.get("version", "")
        number = int(opset[5:]) if opset.startswith("opset") and opset[5:].isdigit() else None
        too_new = target.opset is not None and (number is None or number > target.opset)
        if too_new or (allowed is not None and opset not in allowed["opsets"]):
            raise _unknown(path, f"{layer.get('type')}-{opset} (layer {layer.get('name')!r})", runtime, version)


CHECKS: dict[str, Callable[[Path, str, str, Target], None]] = {
    "tflite": check_tflite, "onnx": check_onnx, "openvino": check_openvino,
}


def check_loadable(fmt: str, path: Path, target: Target) -> None:
    """Raise UnknownOpError unless the file loads, op by op, in every runtime version the target names
    for its format (``Target.runtimes_for``)."""
    if fmt in CHECKS:
        for runtime, version in target.runtimes_for(fmt):
            CHECKS[fmt](path, runtime, version, target)
