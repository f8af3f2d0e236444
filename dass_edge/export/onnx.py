"""ONNX exporter: one self-contained file (no external data), static batch-1 input, the target's opset.

torch's dynamo exporter writes opset 18+ whatever it is asked; boards with old runtimes (ONNX Runtime 1.10
on a Jetson TX2 reads opset <= 15) get the TorchScript-based exporter, which writes the opset it is given.
A target's ``ir_version`` lowers the file's IR version field for runtimes that refuse newer ones; the file
is then re-checked so a feature the old IR lacks cannot slip through.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dass_edge.errors import InputError
from dass_edge.export import Artifact
from dass_edge.runtimes import require
from dass_edge.targets import Target

if TYPE_CHECKING:
    from dass_edge.export.quantize import Calibration

log = logging.getLogger(__name__)
DYNAMO_MIN_OPSET = 18
INPUT, OUTPUT = "input", "logits"


def write_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path, opset: int | None = None,
               ir_version: int | None = None) -> dict[str, str]:
    """Export ``model`` to ``path``; returns the tool versions used."""
    onnx = require("onnx", "onnx")
    opset = opset or DYNAMO_MIN_OPSET
    example = (torch.zeros(input_shape),)
    names = dict(input_names=[INPUT], output_names=[OUTPUT], opset_version=opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notes of the TorchScript exporter, tracer warnings
        if opset >= DYNAMO_MIN_OPSET:
            require("onnxscript", "onnx")
            torch.onnx.export(model, example, str(path), dynamo=True, external_data=False, verbose=False, **names)
        else:
            torch.onnx.export(model, example, str(path), dynamo=False, **names)
    proto = onnx.load(str(path))
    if ir_version is not None and proto.ir_version != ir_version:
        log.info("lowering ONNX IR version %d -> %d", proto.ir_version, ir_version)
        proto.ir_version = ir_version
        onnx.save(proto, str(path))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise InputError(f"the ONNX file for opset {opset}, IR {proto.ir_version} is invalid: "
                         f"{str(exc).splitlines()[0]}") from None
    return {"torch": torch.__version__, "onnx": onnx.__version__}


def export(model: nn.Module, input_shape: tuple[int, ...], target: Target, out: Path, work: Path,
           calibration: Calibration | None = None) -> Artifact:
    """fp32, or int8 as ONNX Runtime's QDQ quantization of the fp32 file (export/quantize.py)."""
    if target.precision not in ("fp32", "int8"):
        raise InputError(f"target {target.name}: the ONNX exporter writes fp32 or int8, not {target.precision}")
    path = out / "model.onnx"
    if target.precision == "int8":
        from dass_edge.export.quantize import needed, onnx_qdq

        source = work / "fp32.onnx"
        tools = write_onnx(model, input_shape, source, target.opset, target.ir_version)
        tools.update(onnx_qdq(source, path, needed(calibration), work))
    else:
        tools = write_onnx(model, input_shape, path, target.opset, target.ir_version)
    return Artifact("onnx", path, (path,), "NCHW", tools)
