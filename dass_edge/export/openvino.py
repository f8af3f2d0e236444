"""OpenVINO IR exporter: the ONNX export read by OpenVINO's ONNX frontend, saved as FP32 or FP16 IR, or
quantized to INT8 by NNCF (export/quantize.py).

Targets with ``ir_version = 10`` (the NCS2, whose last runtime is OpenVINO 2021.4) get IR v10 written by the
Serialize pass, with every op rewritten into opset1 first (ov_opset1.py); others get the current IR.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from dass_edge.errors import InputError
from dass_edge.export import Artifact
from dass_edge.export.onnx import write_onnx
from dass_edge.export.ov_opset1 import to_opset1
from dass_edge.runtimes import require
from dass_edge.targets import Target

if TYPE_CHECKING:
    from dass_edge.export.quantize import Calibration


def export(model: nn.Module, input_shape: tuple[int, ...], target: Target, out: Path, work: Path,
           calibration: Calibration | None = None) -> Artifact:
    ov = require("openvino", "openvino")
    onnx_path = work / "openvino-source.onnx"
    tools = write_onnx(model, input_shape, onnx_path)
    converted = ov.convert_model(str(onnx_path))
    xml, bin_ = out / "model.xml", out / "model.bin"
    fp16 = target.precision == "fp16"
    legacy = target.ir_version == 10 or target.opset == 1
    if target.precision == "int8":
        if legacy:
            raise InputError(f"target {target.name}: int8 needs the current IR; OpenVINO 2021.4's IR v10 "
                             "plugins (Myriad) run fp16")
        from dass_edge.export.quantize import needed, openvino_nncf

        converted, quantizer = openvino_nncf(converted, needed(calibration))
        tools.update(quantizer)
    if legacy:
        from openvino import passes
        from openvino._offline_transformations import compress_model_transformation

        to_opset1(converted)
        if fp16:
            compress_model_transformation(converted)
        manager = passes.Manager()
        manager.register_pass(passes.Serialize(str(xml), str(bin_), passes.Version.IR_V10))
        manager.run_passes(converted)
    elif target.ir_version in (None, 11):
        ov.save_model(converted, str(xml), compress_to_fp16=fp16)
    else:
        raise InputError(f"target {target.name}: OpenVINO IR version {target.ir_version} is not 10 or 11")
    return Artifact("openvino", xml, (xml, bin_), "NCHW", {**tools, "openvino": metadata.version("openvino")})
