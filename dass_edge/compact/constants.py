"""Cheap exact encodings of the constant tensors the compact graph adds (per-position biases).

A constant that zero padding made vary at the borders is a sum of a few separable patterns (one per kernel
tap that falls off the edge), so as a (channels x positions) matrix it has low rank. Storing the two factors
instead of the map makes the file small; runtimes fold the MatMul into a constant when they load the model,
so it costs nothing per inference. Per-channel uniform constants are stored as (1, C, 1, 1) and broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

UNIFORM_ATOL = 1e-10  # float64 constants: border effects are O(weight), never this small
FACTOR_ATOL = 1e-7  # worst-case reconstruction error allowed per entry, relative to max(1, |constant|)


@dataclass(frozen=True)
class Encoded:
    """``tensors``: float32 buffers; the constant is ``tensors[0]`` (broadcast or full) or their product."""

    tensors: tuple[torch.Tensor, ...]
    shape: tuple[int, ...]

    @property
    def factored(self) -> bool:
        return len(self.tensors) == 2


def uniform_channels(tensor: torch.Tensor) -> torch.Tensor:
    """Per channel of a batch-1 tensor: is it the same at every spatial position?"""
    flat = tensor[0].flatten(1) if tensor.dim() > 2 else tensor[0].unsqueeze(1)
    return (flat.max(1).values - flat.min(1).values) <= UNIFORM_ATOL


def encode(constant: torch.Tensor) -> Encoded:
    """The smallest exact encoding of a batch-1 float64 constant."""
    shape = tuple(constant.shape)
    if constant.dim() <= 2:
        return Encoded((constant.float(),), shape)
    if bool(uniform_channels(constant).all()):
        return Encoded((constant[:, :, :1, :1].float().contiguous(),), shape)
    factors = low_rank(constant[0].reshape(shape[1], -1))
    if factors is None:
        return Encoded((constant.float(),), shape)
    return Encoded(factors, shape)


def low_rank(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Float32 factors (left, right) with left @ right == matrix within FACTOR_ATOL, if smaller than it."""
    rows, cols = matrix.shape
    left, singular, right = torch.linalg.svd(matrix, full_matrices=False)
    tolerance = FACTOR_ATOL * max(1.0, float(matrix.abs().max()))
    for rank in range(1, min(rows, cols) + 1):
        if rank * (rows + cols) >= rows * cols:
            return None
        a = (left[:, :rank] * singular[:rank]).float()
        b = right[:rank].float()
        if float((a.double() @ b.double() - matrix).abs().max()) <= tolerance:
            return a.contiguous(), b.contiguous()
    return None
