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

fp32 files pass on that tolerance. An fp16 or int8 file is judged by what it predicts instead, since its logits
differ by design: it is run on the checkpoint's test split, and passes when its test accuracy is at most the
target's ``max_accuracy_drop`` below PyTorch's and its top-1 answers agree with PyTorch's on at least
``min_agreement`` of the images; its logit differences are still measured and recorded. Without a test
split here an fp16 file falls back to the logit tolerance (and an int8 export cannot be calibrated). Every
file, fp32 included, records its test accuracy and agreement on the split when there is one.

The file runs in the runtime the target's board has, at its board version (``Target.loads_in``): on the
host when the host has that version, else in a side environment that does (side_envs.py). Where neither
exists the check still runs, in the format's host runtime, and says so: its verdict is "validated on host
runtime only", never "pass" (a host runtime newer than the board's loads files the board refuses).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dass_edge import runtimes
from dass_edge.errors import ParityError
from dass_edge.export.side_envs import find_python, side_session
from dass_edge.health import Health, is_alive, output_spread, require_alive
from dass_edge.runtimes import Session
from dass_edge.runtimes.process import ProcessSession
from dass_edge.targets import HOST, RUNTIMES_OF_FORMAT, Target

log = logging.getLogger(__name__)

RANDOM_INPUTS = 4
MAX_REAL_IMAGES = 16
PASS = "pass"
HOST_ONLY = "validated on host runtime only"
CONSTANT = "not a pass: PyTorch's output is constant over the inputs"


@dataclass(frozen=True)
class LabelledImages:
    """The checkpoint's test images with their labels and PyTorch's top-1 answers for them."""

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray

    @property
    def reference_accuracy(self) -> float:
        return float(np.mean(self.reference == self.labels))


def labelled_images(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> LabelledImages:
    with torch.no_grad():
        answers = [model(torch.from_numpy(images[i:i + batch])).argmax(1).numpy()
                   for i in range(0, len(images), batch)]
    return LabelledImages(images, labels, np.concatenate(answers))


@dataclass(frozen=True)
class Parity:
    file: str
    runtime: str
    runtime_version: str
    max_abs_diff: float
    top1_agreement: float | None  # with PyTorch, over the test split (else the real images); None without
    inputs_checked: int
    reference_spread: float  # health.output_spread of PyTorch's outputs over the inputs
    required_runtime: str  # what the board runs, e.g. "tflite-runtime 2.13.0"
    ran_in: str  # "host" or "side environment <name>"
    verdict: str  # PASS, HOST_ONLY or CONSTANT
    passed: bool  # verdict == PASS: matched, on a non-constant reference, in the board's runtime version
    rule: str = "logits"  # what it passed on: "logits" (atol) or "predictions" (accuracy drop, agreement)
    test_images: int = 0  # images of the test split it ran; 0 without one
    test_accuracy: float | None = None
    pytorch_accuracy: float | None = None  # PyTorch's on the same images
    accuracy_drop: float | None = None


def check_inputs(input_shape: tuple[int, ...], images: np.ndarray | None, seed: int = 0) -> list[np.ndarray]:
    """Random N(0,1) inputs (the data is normalised) followed by up to MAX_REAL_IMAGES real ones, NCHW."""
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(input_shape).astype(np.float32) for _ in range(RANDOM_INPUTS)]
    if images is not None:
        inputs += [images[i:i + 1].astype(np.float32) for i in range(min(len(images), MAX_REAL_IMAGES))]
    return inputs


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def check_session(path: Path, fmt: str, layout: str, runtime: str, version: str,
                  target: Target | None = None) -> Session | ProcessSession:
    """Where ``path`` is checked: ``runtime`` here when the host has ``version`` of it (or ``version`` is
    'host'), else a side environment that has it, else the format's host runtime (verdict HOST_ONLY). A C
    export runs where ``target``'s build runs: its library here, or its ARM program under qemu-user."""
    if fmt == "c":
        from dass_edge.export.c import session_for
        return session_for(path, target)
    here = runtimes.available().get(runtime)
    if here is not None and version in (HOST, here):
        return runtimes.load(path, runtime, device="CPU")
    python = None if version == HOST else find_python(runtime, version)
    if python is not None:
        return side_session(runtime, version, python, path, layout)
    fallback = runtime if here else RUNTIMES_OF_FORMAT[fmt][0]
    log.warning("no %s %s here nor in a side environment (bash .ci/sideenvs.sh builds them): %s is checked "
                "in the host's %s only", runtime, version, path.name, fallback)
    return runtimes.load(path, fallback, device="CPU")


def _run_all(session: Session | ProcessSession, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """All inputs at once where the session runs elsewhere (another process, an emulator), else one by one."""
    layout = [to_layout(x, session.input_layout) for x in inputs]
    return session.run_all(layout) if hasattr(session, "run_all") else [session.run(x) for x in layout]


def _verdict(session: Session | ProcessSession, required: tuple[str, str], alive: bool) -> str:
    if not alive:
        return CONSTANT
    return PASS if required == (session.runtime, session.version) else HOST_ONLY


def check_parity(model: nn.Module, session: Session | ProcessSession, file: str, atol: float,
                 inputs: list[np.ndarray], real_images: int, allow_dead: bool = False,
                 required: tuple[str, str] | None = None, split: LabelledImages | None = None,
                 by_prediction: tuple[float, float] | None = None) -> Parity:
    """Run ``inputs`` (NCHW) through ``model`` and ``session``; the last ``real_images`` are real images.
    ``required`` is the (runtime, version) the board runs; default: the session's own. With ``split`` the
    file also runs the test split; with ``by_prediction`` = (max accuracy drop, min agreement) as well, it
    passes on those instead of ``atol``."""
    required = required or (session.runtime, session.version)
    if required == (session.runtime, HOST):
        required = (session.runtime, session.version)
    with torch.no_grad():
        references = [model(torch.from_numpy(x)).numpy() for x in inputs]
    spread = output_spread(np.concatenate(references))
    if not is_alive(spread):
        require_alive(Health(False, spread), f"the network checked against {file}", allow_dead)
    problems: list[str] = []
    worst, agree = 0.0, 0
    for i, (got, expected) in enumerate(zip(_run_all(session, inputs), references)):
        if got.shape != expected.shape:
            raise ParityError(f"{file} in {session.runtime} {session.version}: output shape {got.shape}, "
                              f"PyTorch {expected.shape}")
        diff = float(np.max(np.abs(got - expected)))
        scale = max(1.0, float(np.max(np.abs(expected))))
        worst = max(worst, diff)
        if not diff <= atol * scale:  # also catches NaN
            problems.append(f"input {i}: max abs diff {diff:.3g} at output scale {scale:.3g}")
        if i >= len(inputs) - real_images:
            agree += int(np.argmax(got) == np.argmax(expected))
    top1 = agree / real_images if real_images else None
    accuracy: dict[str, float | int | None] = {}
    if split is not None:
        answers = np.array([int(np.argmax(y)) for y in _run_all(session, list(split.images[:, None]))])
        top1 = float(np.mean(answers == split.reference))
        accuracy = {"test_images": len(answers), "test_accuracy": float(np.mean(answers == split.labels)),
                    "pytorch_accuracy": split.reference_accuracy}
        accuracy["accuracy_drop"] = accuracy["pytorch_accuracy"] - accuracy["test_accuracy"]
    where = f"{file} in {session.runtime} {session.version}"
    rule = "predictions" if by_prediction is not None and split is not None else "logits"
    if rule == "predictions":
        max_drop, min_agree = by_prediction
        if accuracy["accuracy_drop"] > max_drop + 1e-12 or top1 < min_agree:
            raise ParityError(f"{where} predicts differently from PyTorch: test accuracy "
                              f"{accuracy['test_accuracy']:.1%} against PyTorch's {accuracy['pytorch_accuracy']:.1%} "
                              f"(a drop of at most {max_drop * 100:g} points allowed), top-1 agreement {top1:.1%} "
                              f"(at least {min_agree:.0%}) on {len(split.images)} test images; max logit diff "
                              f"{worst:.3g}")
    elif problems:
        raise ParityError(f"{where} differs from PyTorch by up to {worst:.3g} (tolerance {atol:g} x output "
                          f"scale) on {len(problems)} of {len(inputs)} inputs: " + "; ".join(problems[:4]))
    verdict = _verdict(session, required, is_alive(spread))
    ran_in = getattr(session, "place", "host")
    return Parity(file, session.runtime, session.version, worst, top1, len(inputs), spread,
                  " ".join(required), ran_in, verdict, verdict == PASS, rule, **accuracy)
