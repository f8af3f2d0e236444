"""TorchScript exporter for GPU targets measured in PyTorch: the baked model traced at batch 1 and saved
with its input shape as an extra file (read back by runtimes/torch_runtime.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from dass_edge.errors import InputError
from dass_edge.export import Artifact
from dass_edge.runtimes.runner import TORCH_SHAPE_FILE
from dass_edge.targets import Target


def export(model: nn.Module, input_shape: tuple[int, ...], target: Target, out: Path, work: Path) -> Artifact:
    if target.precision != "fp32":
        raise InputError(f"target {target.name}: the torch exporter writes fp32 only, not {target.precision}")
    path = out / "model.pt"
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), torch.zeros(input_shape), check_trace=False)  # parity is checked later
    torch.jit.save(traced, str(path), _extra_files={TORCH_SHAPE_FILE: json.dumps(list(input_shape))})
    return Artifact("torch", path, (path,), "NCHW", {"torch": torch.__version__})
