"""OpenVINO adapter. ``fp32_hint`` compiles with INFERENCE_PRECISION_HINT=f32: on CPUs with AMX or
AVX512-BF16 OpenVINO otherwise infers in bf16 and an FP32 IR drifts by ~1e-3 from PyTorch."""

from __future__ import annotations

from pathlib import Path

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
    config: dict[str, str] = {}
    if fp32_hint:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    try:
        compiled = core.compile_model(str(path), device, config)
    except RuntimeError as exc:
        raise InputError(f"OpenVINO cannot load {path}: {str(exc).splitlines()[0]}") from None
    request = compiled.create_infer_request()
    shape = tuple(compiled.input(0).get_shape())
    return Session("openvino", spec.version, device, shape, "NCHW",
                   lambda x: request.infer({0: x})[compiled.output(0)].copy())
