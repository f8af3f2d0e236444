"""OpenVINO adapter. Compiled with the agent's settings (``dass_edge.agent.openvino_config``: LATENCY hint,
and with ``fp32_hint`` INFERENCE_PRECISION_HINT=f32, since on CPUs with AMX or AVX512-BF16 OpenVINO otherwise
infers in bf16 and an FP32 IR drifts by ~1e-3 from PyTorch), so the host times what a board times."""

from __future__ import annotations

from pathlib import Path

from dass_edge.agent import openvino_config
from dass_edge.errors import InputError
from dass_edge.runtimes import Runtime, Session, require


def open_session(path: Path, spec: Runtime, *, threads: int | None, device: str | None,
                 fp32_hint: bool) -> Session:
    ov = require("openvino", spec.extra)
    core = ov.Core()
    device = (device or "CPU").upper()
    if device not in core.available_devices:
        raise InputError(f"OpenVINO {ov.__version__} here has no {device} device "
                         f"(it has {', '.join(core.available_devices)})")
    try:
        compiled = core.compile_model(str(path), device, openvino_config(threads, fp32=fp32_hint))
    except RuntimeError as exc:
        raise InputError(f"OpenVINO cannot load {path}: {str(exc).splitlines()[0]}") from None
    request = compiled.create_infer_request()
    shape = tuple(compiled.input(0).get_shape())
    return Session("openvino", spec.version, device, shape, "NCHW",
                   lambda x: request.infer({0: x})[compiled.output(0)].copy())
