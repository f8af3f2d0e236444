"""What ONNX Runtime does between kernels, read from its own optimised graph (our ORT predictors only).

Kernels timed one by one cannot see two effects that decide a network's latency on the CPU provider:
layout reorders (NCHW <-> blocked NCHWc) where a blocked conv meets an op that is not blocked, and adds
folded into the preceding conv (FusedConv "Sum"). Misaligned channel counts cause many reorders (36 in
a 12-channel DARTS-V2 network, 5 in a 16-channel one), each ~2.7x slower per element than an aligned
one; aligned networks fold most adds away. Rather than re-implementing ONNX Runtime's rules, we let it
optimise the model (session creation only, nothing is run) and count what it produced.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RuntimeGraph:
    reorders: tuple[tuple[int, int], ...]  # (height, channels) of each reordered tensor
    adds_left: int  # Add nodes not folded into a conv


def inspect(onnx_path: str | os.PathLike, threads: int = 1) -> RuntimeGraph:
    import onnx
    import onnxruntime as ort

    original = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*original.graph.value_info, *original.graph.input, *original.graph.output)}
    with tempfile.TemporaryDirectory(prefix="dass-edge-ort-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    reorders = []
    for node in optimized.graph.node:
        if node.op_type in ("ReorderInput", "ReorderOutput"):
            shape = shapes.get(node.input[0] if node.op_type == "ReorderInput" else node.output[0])
            if shape and len(shape) == 4:
                reorders.append((shape[2], shape[1]))
    adds = sum(1 for node in optimized.graph.node if node.op_type in ("Add", "Sum"))
    return RuntimeGraph(tuple(reorders), adds)
