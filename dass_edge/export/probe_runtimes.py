"""Ask each board runtime in its side environment what it loads; write known_ops.json (run once per version).

    python -m dass_edge.export.probe_runtimes [RUNTIME==VERSION ...]   # default: those targets/*.toml name

Nothing is copied from release notes: the host writes one tiny file per thing to ask about, and the side
environment's runtime tries to load each:
- tflite-runtime: a model whose operator-code table holds one builtin op at one version (codes 0..the
  schema's highest, versions 1..MAX_TFLITE_OP_VERSION); constructing the Interpreter resolves that table,
  which is where "Didn't find op for builtin opcode" and "builtin_code out of range" come from.
- onnxruntime: one Relu at opsets 7..the host's onnx maximum (IR 7), and at IR 3..the host's maximum
  (opset 13); the highest that loads is recorded.
- openvino: one Relu as IR v10 and v11; the opsets are the ``ngraph.opsetN`` modules the release ships.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dass_edge.export.known_ops import DATA, builtin_names
from dass_edge.export.side_envs import find_python
from dass_edge.targets import HOST, load_targets

MAX_TFLITE_OP_VERSION = 16

# Python 3.6-compatible scripts run in the side environment: argv[1] is the folder of probe files; each
# prints one JSON object.
LOAD_ALL = """
import json, os, sys
folder = sys.argv[1]
loaded = []
for name in sorted(os.listdir(folder)):
    try:
        {load}
        loaded.append(name)
    except Exception:
        pass
print(json.dumps({{"loaded": loaded, "python": sys.version.split()[0]}}))
"""
SIDE_LOADERS = {
    "tflite-runtime": "import tflite_runtime.interpreter as t; t.Interpreter(model_path=os.path.join(folder, name))",
    "onnxruntime": "import onnxruntime as o; o.InferenceSession(os.path.join(folder, name), "
                   "providers=['CPUExecutionProvider'])",
    "openvino": "from openvino.inference_engine import IECore; IECore().read_network(os.path.join(folder, name)) "
                "if name.endswith('.xml') else None",
}
OPENVINO_OPSETS = ("import json, ngraph, sys; print(json.dumps({'opsets': sorted((m for m in dir(ngraph) "
                   "if m.startswith('opset') and m[5:].isdigit()), key=lambda m: int(m[5:]))}))")


def _tflite_files(folder: Path) -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    for code in builtin_names():
        for version in range(1, MAX_TFLITE_OP_VERSION + 1):
            model = schema.ModelT()
            model.version, model.buffers = 3, [schema.BufferT()]
            entry = schema.OperatorCodeT()
            entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), version
            graph = schema.SubGraphT()
            graph.tensors, graph.inputs, graph.outputs, graph.operators = [], [], [], []
            model.operatorCodes, model.subgraphs = [entry], [graph]
            builder = flatbuffers.Builder(256)
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            (folder / f"{code}_{version}.tflite").write_bytes(builder.Output())


def _tflite_result(loaded: list[str]) -> dict[str, Any]:
    names, ops = builtin_names(), {}
    for file in loaded:
        code, version = (int(part) for part in file.removesuffix(".tflite").split("_"))
        ops.setdefault(names[code], []).append(version)
    return {"tflite_builtin_ops": {name: sorted(versions) for name, versions in sorted(ops.items())}}


def _relu_onnx(path: Path, opset: int, ir_version: int) -> None:
    import onnx
    from onnx import TensorProto, helper

    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", value[:1], value[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version),
              str(path))


def _onnx_files(folder: Path) -> None:
    import onnx

    for opset in range(7, onnx.defs.onnx_opset_version() + 1):
        _relu_onnx(folder / f"opset_{opset}.onnx", opset, 7)
    for ir_version in range(3, onnx.IR_VERSION + 1):
        _relu_onnx(folder / f"ir_{ir_version}.onnx", 13, ir_version)


def _onnx_result(loaded: list[str]) -> dict[str, Any]:
    def highest(kind: str) -> int:
        return max(int(f.split("_")[1].split(".")[0]) for f in loaded if f.startswith(kind))
    return {"onnx_max_opset": highest("opset"), "onnx_max_ir_version": highest("ir")}


def _openvino_files(folder: Path) -> None:
    import openvino as ov
    from openvino import opset1, passes

    for ir in (10, 11):
        x = opset1.parameter([1, 2], name="x")
        model = ov.Model([opset1.relu(x)], [x], "probe")
        manager = passes.Manager()
        version = passes.Version.IR_V10 if ir == 10 else passes.Version.IR_V11
        manager.register_pass(passes.Serialize(str(folder / f"ir_{ir}.xml"), str(folder / f"ir_{ir}.bin"),
                                               version))
        manager.run_passes(model)


def _openvino_result(loaded: list[str]) -> dict[str, Any]:
    return {"ir_versions": sorted(int(f[3:-4]) for f in loaded if f.endswith(".xml"))}


# runtime -> (write probe files, turn the loaded file names into its record)
PROBES: dict[str, tuple[Callable[[Path], None], Callable[[list[str]], dict[str, Any]]]] = {
    "tflite-runtime": (_tflite_files, _tflite_result),
    "onnxruntime": (_onnx_files, _onnx_result),
    "openvino": (_openvino_files, _openvino_result),
}


def _side(python: Path, script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{python}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe(runtime: str, python: Path) -> dict[str, Any]:
    """The record of the runtime that ``python`` imports, asked of it file by file."""
    write, read = PROBES[runtime]
    with tempfile.TemporaryDirectory(prefix="dass-edge-probe-") as tmp:
        write(Path(tmp))
        reply = _side(python, LOAD_ALL.format(load=SIDE_LOADERS[runtime]), tmp)
    record = {"python": reply["python"], **read(reply["loaded"])}
    if runtime == "openvino":
        record.update(_side(python, OPENVINO_OPSETS))
    return record


def main(argv: list[str]) -> int:
    wanted = [tuple(arg.split("==")) for arg in argv] or sorted(
        {pair for target in load_targets().values() for pair in target.loads_in if pair[1] != HOST})
    data = json.loads(DATA.read_text()) if DATA.exists() else {}
    for runtime, version in wanted:
        python = find_python(runtime, version)
        if python is None:
            print(f"no side environment has {runtime} {version}; skipped", file=sys.stderr)
            continue
        data[f"{runtime} {version}"] = {**probe(runtime, python),
                                        "made": f"python -m dass_edge.export.probe_runtimes {runtime}=={version}"
                                                f" on {datetime.date.today()}, {python.parent.parent.name}"}
        print(f"probed {runtime} {version} in {python}", file=sys.stderr)
    tmp = DATA.with_suffix(".tmp")
    text = json.dumps(dict(sorted(data.items())), indent=1)
    tmp.write_text(re.sub(r"\[[\d,\s]*\]", lambda m: json.dumps(json.loads(m.group())), text) + "\n")
    os.replace(tmp, DATA)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
