"""Parity of an exported file with PyTorch: the same inputs through both, every mismatch collected.

Inputs are several random tensors (any input must match, not only natural images) plus, when the
checkpoint's test set is at hand, real images, on which top-1 agreement is also counted. An output whose
max abs difference exceeds the target's ``atol`` times its scale (the largest |logit| PyTorch gives for that
input, at least 1) fails the export with one ParityError listing them all. The scale matters because a
random input can drive a network far outside what it saw: the demo's DASS network gives logits up to
2e4 on N(0,1) noise, where float32 alone differs from float64 by 6e-3, a relative 3e-7; an absolute
1e-4 there would reject a perfect conversion, while on real digits (logits near 10) it stays absolute.

Matching a constant proves nothing: when PyTorch's own outputs over these different inputs are constant
(``dass_edge.health``'s criterion), the check does not pass. It raises DeadModelError, or, when the caller
allows dead networks, returns a Parity with ``passed`` False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dass_edge.errors import ParityError
from dass_edge.health import Health, is_alive, output_spread, require_alive
from dass_edge.runtimes import Session

RANDOM_INPUTS = 4
MAX_REAL_IMAGES = 16


@dataclass(frozen=True)
class Parity:
    file: str
    runtime: str
    runtime_version: str
    max_abs_diff: float
    top1_agreement: float | None  # over the real images; None without a test set
    inputs_checked: int
    reference_spread: float  # health.output_spread of PyTorch's outputs over the inputs
    passed: bool  # False when the reference is constant: agreement on a constant is no evidence


def check_inputs(input_shape: tuple[int, ...], images: np.ndarray | None, seed: int = 0) -> list[np.ndarray]:
    """Random N(0,1) inputs (the data is normalised) followed by up to MAX_REAL_IMAGES real ones, NCHW."""
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(input_shape).astype(np.float32) for _ in range(RANDOM_INPUTS)]
    if images is not None:
        inputs += [images[i:i + 1].astype(np.float32) for i in range(min(len(images), MAX_REAL_IMAGES))]
    return inputs


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def check_parity(model: nn.Module, session: Session, file: str, atol: float, inputs: list[np.ndarray],
                 real_images: int, allow_dead: bool = False) -> Parity:
    """Run ``inputs`` (NCHW) through ``model`` and ``session``; the last ``real_images`` are real images."""
    with torch.no_grad():
        references = [model(torch.from_numpy(x)).numpy() for x in inputs]
    spread = output_spread(np.concatenate(references))
    if not is_alive(spread):
        require_alive(Health(False, spread), f"the network checked against {file}", allow_dead)
    problems: list[str] = []
    worst, agree = 0.0, 0
    for i, (x, expected) in enumerate(zip(inputs, references)):
        got = session.run(to_layout(x, session.input_layout))
        if got.shape != expected.shape:
            problems.append(f"input {i}: output shape {got.shape}, PyTorch {expected.shape}")
            continue
        diff = float(np.max(np.abs(got - expected)))
        scale = max(1.0, float(np.max(np.abs(expected))))
        worst = max(worst, diff)
        if not diff <= atol * scale:  # also catches NaN
            problems.append(f"input {i}: max abs diff {diff:.3g} at output scale {scale:.3g}")
        if i >= len(inputs) - real_images:
            agree += int(np.argmax(got) == np.argmax(expected))
    top1 = agree / real_images if real_images else None
    if problems:
        raise ParityError(f"{file} in {session.runtime} {session.version} differs from PyTorch by up to "
                          f"{worst:.3g} (tolerance {atol:g} x output scale) on {len(problems)} of {len(inputs)} inputs: "
                          + "; ".join(problems[:4]))
    return Parity(file, session.runtime, session.version, worst, top1, len(inputs), spread, is_alive(spread))
