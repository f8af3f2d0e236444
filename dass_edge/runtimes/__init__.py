"""Run an exported model file in its runtime: one adapter per runtime behind one registry.

``load(path)`` picks the runtime from the file suffix (or takes it by name) and returns a Session with a
single ``run(x)``; export validation, benchmarking and predictor calibration all go through it. Runtimes
are optional packages imported only when used; a missing one raises MissingDependencyError naming the
extra to install.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from dass_edge.errors import InputError, MissingDependencyError


@dataclass(frozen=True)
class Session:
    """A loaded model. ``run`` takes one float32 batch in the model's own layout and returns its output.

    On a GPU, ``on_device`` is (stage, compute): ``stage(x)`` puts the input in device memory once and
    ``compute(staged)`` runs the model there, output left on the device, returning after the device has
    finished; the harness times it beside ``run`` (host to host, copies inside). ``providers`` are the
    execution providers that really ran (ONNX Runtime).
    """

    runtime: str
    version: str
    device: str
    input_shape: tuple[int, ...]
    input_layout: str
    _run: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    providers: tuple[str, ...] = ()
    on_device: tuple[Callable[[np.ndarray], Any], Callable[[Any], None]] | None = field(default=None, repr=False)

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if tuple(x.shape) != self.input_shape:
            raise InputError(f"{self.runtime} model expects input {self.input_shape}, got {tuple(x.shape)}")
        return np.asarray(self._run(x), dtype=np.float32)


@dataclass(frozen=True)
class Runtime:
    """Registry entry: where the adapter lives, which package it needs, which file suffix it reads."""

    name: str
    adapter: str  # module under dass_edge.runtimes with ``open_session(path, threads, device, fp32_hint)``
    distribution: str  # the pip package, for versions and error messages
    extra: str  # the dass-edge extra that installs it
    suffix: str

    @property
    def version(self) -> str:
        """The installed package version, as pip reports it (one spelling for every runtime)."""
        return metadata.version(self.distribution)


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("onnxruntime", "onnx_runtime", "onnxruntime", "onnx", ".onnx"),
    Runtime("openvino", "openvino_runtime", "openvino", "openvino", ".xml"),
    Runtime("litert", "tflite_runtime", "ai-edge-litert", "tflite", ".tflite"),
    Runtime("tflite-runtime", "tflite_runtime", "tflite-runtime", "tflite", ".tflite"),
    Runtime("torch", "torch_runtime", "torch", "all", ".pt"),
)}


def require(module: str, extra: str) -> ModuleType:
    """Import an optional package, or raise MissingDependencyError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module.split(".")[0], extra) from None


def runtime_for(path: str | os.PathLike) -> str:
    """The default runtime of a model file, from its suffix (the first registry entry that reads it)."""
    suffix = Path(path).suffix
    for runtime in RUNTIMES.values():
        if runtime.suffix == suffix:
            return runtime.name
    known = ", ".join(sorted({r.suffix for r in RUNTIMES.values()}))
    raise InputError(f"no runtime reads {Path(path).name}; known suffixes: {known}")


def available() -> dict[str, str]:
    """Installed runtimes and their versions (from package metadata, so nothing heavy is imported)."""
    found = {}
    for runtime in RUNTIMES.values():
        try:
            found[runtime.name] = runtime.version
        except metadata.PackageNotFoundError:
            continue
    return found


def load(path: str | os.PathLike, runtime: str | None = None, *, threads: int | None = None,
         device: str | None = None, fp32_hint: bool = True) -> Session:
    """Open ``path`` in ``runtime`` (default: by suffix). ``device`` defaults to the runtime's CPU (torch:
    CUDA when available); ``fp32_hint`` keeps OpenVINO from computing in bf16/fp16 on its own."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    name = runtime or runtime_for(path)
    if name not in RUNTIMES:
        raise InputError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    adapter = importlib.import_module(f"dass_edge.runtimes.{RUNTIMES[name].adapter}")
    return adapter.open_session(path, RUNTIMES[name], threads=threads, device=device, fp32_hint=fp32_hint)
