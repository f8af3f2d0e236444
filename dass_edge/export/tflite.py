"""TFLite exporter: litert-torch converts the baked model straight to a .tflite (FP32); for FP16 the
AI Edge Quantizer stores conv and fully connected weights as float16 behind DEQUANTIZE ops, for INT8 it
quantizes the whole file to integers (export/quantize.py).

Why litert-torch and not onnx2tf: onnx2tf loses track of the layout after some concats and then turns
dilated depthwise convolutions (DASS's dil_conv) into grouped CONV_2D, which GPU delegates handle badly;
litert-torch keeps every one as DEPTHWISE_CONV_2D. Its input stays NCHW (one TRANSPOSE inside). Nothing is
downloaded at convert time. The exporter counts op types in the flatbuffer and fails if a depthwise
convolution of the model did not become a DEPTHWISE_CONV_2D.

Average pooling that excludes padding from its divisor (the search space's avg_pool_3x3) has no TFLite
builtin: litert-torch lowers it to STABLEHLO_REDUCE_WINDOW, which tflite-runtime 2.13/2.14 on the boards
refuse. Before converting, each such pool becomes explicit zero padding, a builtin AVERAGE_POOL_2D without
padding, and a constant per-position divisor correction (PAD, AVERAGE_POOL_2D, MUL): the same values.
Every file is then checked against the builtin ops of the target's tflite-runtime version (known_ops.py).
"""

from __future__ import annotations

import copy
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from dass_edge import native_output
from dass_edge.errors import DassEdgeError
from dass_edge.export import Artifact
from dass_edge.export.known_ops import TFLITE_WEIGHT_OPS, tflite_op_counts
from dass_edge.runtimes import require
from dass_edge.targets import Target

if TYPE_CHECKING:
    from dass_edge.export.quantize import Calibration



def op_types(path: Path) -> Counter[str]:
    """Operators per op name of a .tflite file as stored, read with LiteRT's schema (no delegate rewrites
    the graph before we look)."""
    return tflite_op_counts(path)


def depthwise_count(model: nn.Module) -> int:
    """Depthwise convs the file must keep as DEPTHWISE_CONV_2D; an all-zero one (zero channels a compacted
    model pads to a channel multiple) is constant-folded by the converter, rightly."""
    return sum(1 for m in model.modules()
               if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels and bool(m.weight.any()))


class PaddedAvgPool(nn.Module):
    """AvgPool2d(count_include_pad=False) for a fixed input size as PAD -> AVERAGE_POOL_2D -> MUL."""

    def __init__(self, pool: nn.AvgPool2d, height: int, width: int):
        super().__init__()
        self.kernel, self.stride, self.pad = pool.kernel_size, pool.stride, _pair(pool.padding)
        ones = torch.ones(1, 1, height, width)
        counted = F.avg_pool2d(self._padded(ones), self.kernel, self.stride, ceil_mode=pool.ceil_mode)
        self.ceil_mode = pool.ceil_mode
        self.register_buffer("divisor_fix", 1.0 / counted)  # kernel area / cells that were not padding

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.pad[1], self.pad[1], self.pad[0], self.pad[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self._padded(x), self.kernel, self.stride, ceil_mode=self.ceil_mode) * self.divisor_fix


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def with_builtin_pools(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """A copy of ``model`` whose padding-excluding average pools are PaddedAvgPool (same outputs)."""
    model = copy.deepcopy(model).eval()
    pools = {name: m for name, m in model.named_modules()
             if isinstance(m, nn.AvgPool2d) and not m.count_include_pad and _pair(m.padding) != (0, 0)}
    if not pools:
        return model
    shapes: dict[str, tuple[int, ...]] = {}

    def remember(name: str):  # a pre-hook that returns something would replace the module's inputs
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    hooks = [m.register_forward_pre_hook(remember(name)) for name, m in pools.items()]
    with torch.no_grad():
        model(torch.zeros(input_shape))
    for hook in hooks:
        hook.remove()
    for name, pool in pools.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, PaddedAvgPool(pool, *shapes[name][-2:]))
    return model


def _convert(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    with native_output.to_log("litert-torch"):  # importing it imports TensorFlow, which logs from C++ at once
        litert_torch = require("litert_torch", "tflite")
        litert_torch.convert(with_builtin_pools(model, input_shape), (torch.zeros(input_shape),)).export(str(path))


def _to_fp16(source: Path, path: Path) -> None:
    with native_output.to_log("ai-edge-quantizer"):
        aeq = require("ai_edge_quantizer.quantizer", "tflite")
        from ai_edge_quantizer import qtyping

        quantizer = aeq.Quantizer(str(source))
    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True)
    for op in TFLITE_WEIGHT_OPS:
        quantizer.update_quantization_recipe(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                             algorithm_key=aeq.AlgorithmName.FLOAT_CASTING,
                                             op_config=config)
    with native_output.to_log("ai-edge-quantizer"):
        path.write_bytes(inline_buffers(bytes(quantizer.quantize().quantized_model)))


def inline_buffers(data: bytes) -> bytes:
    """The same model with every buffer inside the flatbuffer.

    The AI Edge Quantizer stores some weight buffers after the flatbuffer, referenced by offset and size (a
    schema addition for models over 2 GB); tflite-runtime 2.13 on the boards does not know those fields and
    fails with "Input tensor N lacks data". Copying each such buffer back into its ``data`` field gives a
    file every runtime version reads.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    external = [b for b in model.buffers if getattr(b, "offset", 0) > 1]
    if not external:
        return data
    for buffer in external:
        buffer.data = list(data[buffer.offset : buffer.offset + buffer.size])
        buffer.offset, buffer.size = 0, 0
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export(model: nn.Module, input_shape: tuple[int, ...], target: Target, out: Path, work: Path,
           calibration: Calibration | None = None) -> Artifact:
    path = out / "model.tflite"
    tools = {"torch": torch.__version__, "litert-torch": metadata.version("litert-torch")}
    if target.precision == "fp16":
        _convert(model, input_shape, work / "fp32.tflite")
        _to_fp16(work / "fp32.tflite", path)
        tools["ai-edge-quantizer"] = metadata.version("ai-edge-quantizer")
    elif target.precision == "int8":
        from dass_edge.export.quantize import needed, tflite_full_integer

        _convert(model, input_shape, work / "fp32.tflite")
        quantized, quantizer = tflite_full_integer(work / "fp32.tflite", needed(calibration))
        path.write_bytes(inline_buffers(quantized))
        tools.update(quantizer)
    else:
        _convert(model, input_shape, path)
    expected, found = depthwise_count(model), op_types(path)["DEPTHWISE_CONV_2D"]
    if found < expected:
        raise DassEdgeError(f"the TFLite file has {found} DEPTHWISE_CONV_2D ops for {expected} depthwise "
                            "convolutions; the converter turned some into other ops")
    return Artifact("tflite", path, (path,), "NCHW", tools)
