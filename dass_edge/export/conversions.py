"""Converted files shared between the targets of one export run.

Several targets ask for the same conversion of the same network: cortex-a7, cortex-a76 and intel-cpu's
extra file are one fp32 TFLite flatbuffer, ncs2 and myriad-vpu one FP16 IR 10. A TFLite conversion of a
cell network takes 5-15 s here, so exporting a checkpoint for every target converted it three times. A
ConversionCache given to each export of one run converts once and copies the files; every target still
checks the ops and the parity of its own copy in its own runtimes. Only what decides the file's bytes
makes the key (the network's structure and weights, the input shape, format, precision, opset, IR version),
so a target that differs in any of them converts anew.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from dass_edge.export import Artifact
    from dass_edge.export.quantize import Calibration
    from dass_edge.targets import Target

log = logging.getLogger(__name__)
RawExporter = Callable[["nn.Module", tuple[int, ...], "Target", Path, Path], "Artifact"]


# The Target fields each exporter's output depends on (the exporters in this package read no others, the
# target's name aside, which only appears in their error messages). A format not listed keys on them all.
READS: dict[str, tuple[str, ...]] = {
    "tflite": ("precision",),
    "torch": ("precision",),
    "onnx": ("precision", "opset", "ir_version"),
    "openvino": ("precision", "opset", "ir_version"),
}


def conversion_key(model: nn.Module, input_shape: tuple[int, ...], target: Target,
                   calibration: Calibration | None = None) -> str:
    """Equal exactly when two exports of ``model`` for these targets would write the same files."""
    settings = target.to_dict()
    read = READS.get(target.format, tuple(sorted(settings)))
    digest = hashlib.sha256(repr((target.format, [settings[name] for name in read], tuple(input_shape),
                                  str(model))).encode())
    if calibration is not None and target.precision == "int8":
        digest.update(calibration.images.tobytes())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class ConversionCache:
    """The files of each conversion made in this run, by conversion_key; ``max_bytes`` bounds the memory."""

    max_bytes: int = 256 * 2**20
    _entries: dict[str, tuple[Artifact, dict[str, bytes]]] = field(default_factory=dict)
    hits: int = 0

    def convert(self, export: RawExporter, model: nn.Module, input_shape: tuple[int, ...], target: Target,
                out: Path, work: Path, calibration: Calibration | None = None) -> Artifact:
        key = conversion_key(model, input_shape, target, calibration)
        if key in self._entries:
            self.hits += 1
            log.info("%s: %s file copied from the same conversion for an earlier target", target.name,
                     target.format)
            artifact, contents = self._entries[key]
            for name, data in contents.items():
                (out / name).write_bytes(data)
            return replace(artifact, model_file=out / artifact.model_file.name,
                           files=tuple(out / f.name for f in artifact.files))
        artifact = export(model, input_shape, target, out, work)
        contents = {f.name: f.read_bytes() for f in artifact.files}
        if sum(map(len, contents.values())) + self._stored() <= self.max_bytes:
            self._entries[key] = (artifact, contents)
        return artifact

    def _stored(self) -> int:
        return sum(len(data) for _, contents in self._entries.values() for data in contents.values())
