"""The parity tolerance scales with the output: absolute on ordinary logits, relative on huge ones.

A real ONNX Runtime session of one exported network is compared with PyTorch references that differ from
it by a known amount, so the verdict of ``check_parity`` is known in advance in both regimes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dass_edge import runtimes
from dass_edge.errors import ParityError
from dass_edge.export.validate import check_parity, check_inputs

SHAPE = (1, 1, 4, 4)
ATOL = 1e-4


def _net(scale: float, shift: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        net[1].weight.mul_(scale)
        net[1].bias.mul_(scale).add_(shift)
    return net.eval()


def _session(net: nn.Module, tmp_path):
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, torch.zeros(SHAPE), str(path), dynamo=False)
    return runtimes.load(path, "onnxruntime", device="CPU")


def test_logits_near_one_are_held_to_the_absolute_tolerance(tmp_path):
    session = _session(_net(1.0), tmp_path)
    inputs = check_inputs(SHAPE, None)
    assert check_parity(_net(1.0), session, "net.onnx", ATOL, inputs, 0).passed
    with pytest.raises(ParityError, match="at output scale"):
        check_parity(_net(1.0, shift=5 * ATOL), session, "net.onnx", ATOL, inputs, 0)


def test_huge_logits_are_held_to_the_same_tolerance_relative_to_their_size(tmp_path):
    session = _session(_net(1e4), tmp_path)
    inputs = check_inputs(SHAPE, None)
    reference = _net(1e4, shift=5 * ATOL)  # 5 atol absolute, 5e-8 relative to logits near 1e4
    scale = max(float(np.abs(reference(torch.from_numpy(x)).detach().numpy()).max()) for x in inputs)
    assert scale > 1e3
    assert check_parity(reference, session, "net.onnx", ATOL, inputs, 0).max_abs_diff > ATOL
    with pytest.raises(ParityError):  # off by a relative 1e-3: a real mismatch at any scale
        check_parity(_net(1e4, shift=1e-3 * scale), session, "net.onnx", ATOL, inputs, 0)
