"""Shared by the predict tests: a tiny DASS network (the DARTS-V2 genotype) exported as the exporter does."""

from __future__ import annotations

from pathlib import Path

import torch

from dass_edge.export.onnx import write_onnx
from dass_edge.search import sparse
from dass_edge.search.models import ModelSpec, build_model


def export_tiny_dass(path: Path) -> Path:
    model = build_model(ModelSpec("darts-v2", cells=3, channels=8)).eval()
    torch.manual_seed(0)
    write_onnx(sparse.bake(model).eval(), (1, 3, 32, 32), path)
    return path
