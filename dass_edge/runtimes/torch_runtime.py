"""TorchScript adapter: the ``.pt`` files of the torch exporter (a traced, baked model whose input shape is
stored as an extra file). Runs on CUDA when available unless another device is asked for; ``cuda`` asked for
on a machine without one is an error, not a CPU run."""

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
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise InputError(f"torch {torch.__version__} here has no CUDA device; pass --runtime-device cpu")
    if threads:
        torch.set_num_threads(threads)  # process-wide in PyTorch
    extra = {SHAPE_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        shape = tuple(json.loads(extra[SHAPE_FILE]))
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"torch cannot load {path} as a dass-edge TorchScript file: "
                         f"{str(exc).splitlines()[0]}") from None

    def run(x):  # type: ignore[no-untyped-def]  # host to host: the copies to and from the GPU inside
        with torch.inference_mode():
            return module(torch.from_numpy(x).to(device)).float().cpu().numpy()

    def stage(x):  # type: ignore[no-untyped-def]
        return torch.from_numpy(x).to(device)

    def compute(x_on_device) -> None:  # type: ignore[no-untyped-def]
        with torch.inference_mode():
            module(x_on_device)
        torch.cuda.synchronize()  # kernels run asynchronously: the clock is read after they finish

    return Session("torch", spec.version, device, shape, "NCHW", run, on_device=(stage, compute) if cuda else None)
