"""Checkpoints: the one place that knows their file layout. Written atomically, read without unpickling code.

A checkpoint is a torch file holding only tensors and plain values (``torch.load(weights_only=True)``):
the model spec (architecture, variant, genotype, input shape), the state dict including masks, sparsity,
the last completed step, data-set facts (classes, normalisation), settings and results, and the
network's health (``dass_edge.health.Health.to_dict()``: does its output depend on its input), which
checkpoints written before it existed lack (None). Tensors are stored on the CPU and read back onto it, so a
checkpoint trained on a GPU loads on a machine without one.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dass_edge import distributed
from dass_edge.errors import InputError
from dass_edge.search import sparse
from dass_edge.search.models import ModelSpec, build_model

FORMAT_VERSION = 1
STEPS = ("pretrain", "prune", "finetune")


@dataclass
class Checkpoint:
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    sparsity: float
    step: str
    classes: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    test_accuracy: float | None = None
    health: dict[str, Any] | None = None  # Health.to_dict() of the trained network; None: not assessed

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.spec.in_channels, self.spec.image_size, self.spec.image_size)

    @property
    def masked(self) -> bool:
        return self.step in ("prune", "finetune")

    def build(self) -> nn.Module:
        """The network with its weights and masks, in eval mode, its sparse layers in the right mode."""
        model = build_model(self.spec)
        if self.masked:
            sparse.set_mode(model, "masked", self.sparsity)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise InputError(f"checkpoint weights do not fit its architecture: {str(exc).splitlines()[0]}") from exc
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "state_dict": self.state_dict,
            "sparsity": self.sparsity,
            "step": self.step,
            "classes": list(self.classes),
            "data": self.data,
            "settings": self.settings,
            "results": self.results,
            "test_accuracy": self.test_accuracy,
            "health": self.health,
        }


def from_model(model: nn.Module, spec: ModelSpec, sparsity: float, step: str, **fields: Any) -> Checkpoint:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(spec=spec, state_dict=state, sparsity=sparsity, step=step, **fields)


def save(checkpoint: Checkpoint, path: str | os.PathLike) -> Path:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a checkpoint.

    Under torchrun only rank 0 writes (every rank holds the same network); the others return the path.
    """
    path = Path(path)
    if not distributed.is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(checkpoint.to_dict(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a file it is about to refuse
            warnings.simplefilter("ignore", UserWarning)
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise InputError(f"{path} is not a readable dass-edge checkpoint ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path} is not a dass-edge checkpoint (format {FORMAT_VERSION})")
    try:
        ckpt = Checkpoint(
            spec=ModelSpec.from_dict(raw["spec"]),
            state_dict=raw["state_dict"],
            sparsity=float(raw["sparsity"]),
            step=str(raw["step"]),
            classes=tuple(raw.get("classes", ())),
            data=dict(raw.get("data", {})),
            settings=dict(raw.get("settings", {})),
            results=list(raw.get("results", [])),
            test_accuracy=raw.get("test_accuracy"),
            health=None if raw.get("health") is None else dict(raw["health"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is a damaged dass-edge checkpoint: {exc}") from None
    if ckpt.step not in STEPS:
        raise InputError(f"{path}: unknown step {ckpt.step!r}")
    return ckpt


def summary(checkpoint: Checkpoint, path: str | os.PathLike) -> dict[str, Any]:
    """The JSON the CLI prints for a checkpoint (the search/train contract), counted from the tensors."""
    params, nonzero = sparse.count_params(checkpoint.build())
    out: dict[str, Any] = {
        "checkpoint": str(path),
        "arch": checkpoint.spec.arch,
        "variant": checkpoint.spec.variant,
        "sparsity": checkpoint.sparsity,
        "step": checkpoint.step,
        "params": params,
        "nonzero_params": nonzero,
        "test_accuracy": checkpoint.test_accuracy,
        "input_shape": list(checkpoint.input_shape),
        "data": checkpoint.data.get("name"),
        "health": checkpoint.health,
    }
    if checkpoint.spec.genotype is not None:
        out["genotype"] = checkpoint.spec.genotype.to_dict()
    return out
