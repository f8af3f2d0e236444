"""TorchScript adapter: the ``.pt`` files of the torch exporter (a traced, baked model whose input shape is
stored as an extra file). Runs on CUDA when available unless another device is asked for."""

from __future__ import annotations

import json
from pathlib import Path

from dass_edge.errors import InputError
from dass_edge.runtimes import Runtime, Session, require

SHAPE_FILE = "input_shape.json"


def open_session(path: Path, spec: Runtime, *, threads: int | None, device: str | None,
                 fp32_hint: bool) -> Session:
    torch = require("torch", spec.extra)
    device = (device or ("cuda" if torch.cuda.is_available() else "cpu")).lower()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("torch here has no CUDA device")
    if threads:
        torch.set_num_threads(threads)  # process-wide in PyTorch
    extra = {SHAPE_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        shape = tuple(json.loads(extra[SHAPE_FILE]))
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"torch cannot load {path} as a dass-edge TorchScript file: "
                         f"{str(exc).splitlines()[0]}") from None

    def run(x):  # type: ignore[no-untyped-def]
        with torch.inference_mode():
            return module(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return Session("torch", spec.version, device, shape, "NCHW", run)
