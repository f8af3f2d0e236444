"""Exporters: one module per format behind one interface, looked up in EXPORTERS by format name.

An exporter takes the baked (plain torch) model, its input shape, the target and two folders: ``out``,
whose contents ship, and ``work``, scratch space the pipeline deletes. It returns an Artifact naming the
file a runtime loads and every file it wrote. Heavy converters are imported inside each exporter. Every
exporter's file is then checked, op by op, against what the target's board runtimes load (known_ops.py).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from dass_edge.export.conversions import ConversionCache
    from dass_edge.export.quantize import Calibration
    from dass_edge.targets import Target


@dataclass(frozen=True)
class Artifact:
    format: str
    model_file: Path  # the file a runtime loads (``.xml`` for OpenVINO, whose weights sit in ``.bin``)
    files: tuple[Path, ...]
    input_layout: str
    tools: dict[str, str] = field(default_factory=dict)


Exporter = Callable[["nn.Module", tuple[int, ...], "Target", Path, Path], Artifact]

# format -> "module:function" under dass_edge.export, imported on first use.
EXPORTERS: dict[str, str] = {
    "onnx": "onnx:export",
    "openvino": "openvino:export",
    "tflite": "tflite:export",
    "torch": "torchscript:export",
    "c": "c:export",
}


# format -> the precisions its exporter writes (int8: post-training quantization, dass_edge.export.quantize).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "fp16", "int8"),
    "tflite": ("fp32", "fp16", "int8"),
    "torch": ("fp32",),
    "c": ("fp32", "int8"),
}


def formats_at(target: Target) -> list[str]:
    """The formats an export for ``target`` writes at its precision: the main one and the extra ones whose
    exporter writes that precision."""
    return [fmt for fmt in (target.format, *target.extra_formats) if target.precision in PRECISIONS[fmt]]


def get_exporter(fmt: str, conversions: ConversionCache | None = None,
                 calibration: Calibration | None = None) -> Exporter:
    """The exporter of ``fmt``, followed by the check that its file holds only ops the target's runtime
    versions know (UnknownOpError naming the first that is not). With ``conversions``, a conversion already
    made in this run is copied instead of repeated (dass_edge.export.conversions). An int8 export is
    calibrated on ``calibration``'s images, which then also key the conversion."""
    module, function = EXPORTERS[fmt].split(":")
    raw = getattr(importlib.import_module(f"dass_edge.export.{module}"), function)

    def checked(model: nn.Module, input_shape: tuple[int, ...], target: Target, out: Path, work: Path) -> Artifact:
        from dass_edge.export.known_ops import check_loadable

        export = functools.partial(raw, calibration=calibration) if target.precision == "int8" else raw
        artifact = (export(model, input_shape, target, out, work) if conversions is None
                    else conversions.convert(export, model, input_shape, target, out, work, calibration))
        check_loadable(fmt, artifact.model_file, target)
        return artifact

    return checked
