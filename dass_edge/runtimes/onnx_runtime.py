"""ONNX Runtime adapter (CPU execution provider; CUDA when asked for and installed)."""

from __future__ import annotations

from pathlib import Path

from dass_edge.errors import InputError
from dass_edge.runtimes import Runtime, Session, require

PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider"}


def open_session(path: Path, spec: Runtime, *, threads: int | None, device: str | None,
                 fp32_hint: bool) -> Session:
    ort = require("onnxruntime", spec.extra)
    device = (device or "CPU").upper()
    if device not in PROVIDERS or PROVIDERS[device] not in ort.get_available_providers():
        raise InputError(f"onnxruntime here has no {device} provider; it has {ort.get_available_providers()}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=[PROVIDERS[device]])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise InputError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
    first = session.get_inputs()[0]
    name = first.name
    return Session("onnxruntime", spec.version, device, tuple(first.shape), "NCHW",
                   lambda x: session.run(None, {name: x})[0])
