"""Run an exported model file in its runtime on this machine: the registry, and the host's Session.

The per-runtime code lives once, in runner.py, the self-contained file that also runs on boards, in side
environments and inside emulated boards. This module adds what only the host needs: a registry of the
pip packages behind each runtime (versions, and the extra that installs a missing one), typed errors
instead of the runner's one-line failures, and the runtimes' C++ chatter routed to the log. Export
validation, benchmarking and predictor calibration all go through ``load``.
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

from dass_edge import native_output
from dass_edge.errors import InputError, MissingDependencyError
from dass_edge.runtimes import runner


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
    """Registry entry: the package a runtime needs (None: nothing to install) and the file suffix it reads."""

    name: str
    distribution: str | None  # the pip package, for versions and error messages
    extra: str  # the dass-edge extra that installs it
    suffix: str

    @property
    def version(self) -> str:
        """The installed package version, as pip reports it (one spelling for every runtime)."""
        if self.distribution is None:
            raise metadata.PackageNotFoundError(self.name)
        return metadata.version(self.distribution)


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("onnxruntime", "onnxruntime", "onnx", ".onnx"),
    Runtime("openvino", "openvino", "openvino", ".xml"),
    Runtime("litert", "ai-edge-litert", "tflite", ".tflite"),
    Runtime("tflite-runtime", "tflite-runtime", "tflite", ".tflite"),
    Runtime("torch", "torch", "all", ".pt"),
    Runtime("c", None, "all", ".so"),  # a library of the C export: ctypes, nothing to install
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
         device: str | None = None, exact: bool = True) -> Session:
    """Open ``path`` in ``runtime`` (default: by suffix). ``device`` defaults to the runtime's CPU (torch:
    CUDA when available); ``exact`` asks for fp32 arithmetic (OpenVINO would pick bf16 on some CPUs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    name = runtime or runtime_for(path)
    if name not in RUNTIMES:
        raise InputError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    spec = RUNTIMES[name]
    try:
        with native_output.to_log(name):  # e.g. the XNNPACK delegate's INFO line
            loaded = runner.open_model(str(path), name, threads or 0, device or "", exact)
    except runner.MissingRuntime:
        raise MissingDependencyError(spec.distribution or name, spec.extra) from None
    except runner.RunnerError as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:  # runtimes raise their own untyped errors for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name} cannot load {path}: {first}") from None
    if loaded.shape is None:
        raise InputError(f"{name} cannot tell the input shape of {path}")
    version = spec.version if spec.distribution else loaded.version
    return Session(name, version, loaded.device, tuple(loaded.shape), loaded.layout, loaded.run,
                   providers=tuple(loaded.providers or ()), on_device=loaded.on_device)
