"""Where training runs: the torch device asked for (``--device cuda|cpu|auto``) and optional mixed precision.

Kept apart from the training loop so that the loop reads the same on a CPU and a GPU: it asks ``Precision``
for an autocast region and a gradient scaler, both of which do nothing when mixed precision is off (the
default), so the fp32 path is the plain one.
"""

from __future__ import annotations

import contextlib

import torch

from dass_edge.errors import InputError

DEVICES = ("auto", "cuda", "cpu")


def resolve_device(request: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else the CPU; ``cuda`` without one is a one-line InputError.

    Under torchrun each process of a node owns one GPU: ``local_rank`` picks ``cuda:LOCAL_RANK``.
    """
    name = request.lower()
    if name not in DEVICES:
        raise InputError(f"unknown device {request!r}; expected one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise InputError(f"--device cuda: torch {torch.__version__} ({build}) sees no CUDA device here; "
                         "use --device cpu or auto")
    index = local_rank or 0
    if index >= torch.cuda.device_count():
        raise InputError(f"local rank {index} has no GPU: torch sees {torch.cuda.device_count()} here; start at "
                         "most that many processes per node (torchrun --nproc_per_node)")
    return torch.device("cuda", index)


class Precision:
    """Mixed precision for one training loop: fp16 with loss scaling on CUDA, bf16 on the CPU (no scaling
    needed: bf16 has fp32's exponent range). Disabled, both are pass-throughs."""

    def __init__(self, device: torch.device, enabled: bool = False) -> None:
        self.device = device
        self.enabled = enabled
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.enabled)

    def scaler(self) -> torch.amp.GradScaler:
        """One per optimizer: scale(loss).backward(), unscale_(opt) before clipping, step(opt), update()."""
        return torch.amp.GradScaler(self.device.type, enabled=self.enabled and self.dtype == torch.float16)


def model_device(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
