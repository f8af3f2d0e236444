"""Which exact form of the network each format ships: masked (the pruned weights as dense zeros), compact
(pruned channels removed) or compact with channel counts padded to a multiple (``compact/8``).

Compaction removes most of a 99%-sparse network's MACs, yet it can cost latency: on the demo's 16x16
networks ONNX Runtime ran compact DASS at 0.74x the speed of the masked one (odd channel counts miss its
blocked kernels), while compaction made larger networks 2-30x faster. For a target timed on this machine,
the rule (RULE_MULTIPLE, from the figures in docs/compaction.md) picks each format's compact form, channels
padded to 8 for ONNX Runtime and OpenVINO, whose x86 kernels work on blocks of 8 channels, unpadded for
LiteRT and the C generator; the masked form is exported too and both are timed here in the format's own
runtime, rounds interleaved, so that no export ships slower than its masked form; the manifest records the
timings. A board's or a predicted device's target cannot be timed here: it ships the compact form at its
``channel_multiple``, and the manifest says that this was a rule, not a measurement.
"""

from __future__ import annotations

import logging
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from dass_edge import runtimes
from dass_edge.export import Artifact
from dass_edge.runtimes import runner
from dass_edge.targets import RUNTIMES_OF_FORMAT, Target

log = logging.getLogger(__name__)
RULE_MULTIPLE = {"onnx": 8, "openvino": 8}  # other formats: 1 (no padding)
ROUNDS, RUNS = 5, 20  # interleaved rounds of at least RUNS runs each, per form
UNTIMED = ("c",)  # the code generator removes unread channels itself: its form is always compact/1


@dataclass(frozen=True)
class Form:
    """A candidate form of the network: its name and the plain torch module an exporter converts."""

    name: str
    model: nn.Module


def deployable(model: nn.Module, input_shape: tuple[int, ...], channel_multiple: int, compact: bool = True
               ) -> tuple[nn.Module, dict[str, int] | None]:
    """The network as it is deployed: compacted (pruned channels removed exactly, counts rounded up to
    ``channel_multiple``) by default, else the masks baked into plain layers; plus the compaction figures
    for the manifest. Exports and latency predictions both start from it."""
    from dass_edge.export.compact import compact_model
    from dass_edge.search import sparse

    if not compact:
        return sparse.bake(model), None

    result = compact_model(model, input_shape, channel_multiple)
    return result.model, {"channel_multiple": channel_multiple, "params_before": result.params_before,
                          "params_after": result.params_after, "macs_before": result.macs_before,
                          "macs_after": result.macs_after}


class Forms:
    """The forms of one masked network, each built once, when first asked for (compaction traces the
    network: seconds for a cell network), and shared by the formats of an export."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        self.model, self.input_shape = model, input_shape
        self._built: dict[str, Form] = {}
        self.compaction: dict[str, dict[str, int]] = {}  # figures of each compact form built

    def get(self, name: str) -> Form:
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str) -> Form:
        if name == "masked":
            return Form(name, deployable(self.model, self.input_shape, 1, compact=False)[0].eval())
        model, figures = deployable(self.model, self.input_shape, int(name.split("/")[1]))
        self.compaction[name] = figures
        return Form(name, model.eval())


def candidates(fmt: str, target: Target, compact: bool) -> list[str]:
    """The forms ``fmt`` may ship for ``target``, the rule's first: only "masked" without compaction; for a
    target timed on this machine the compact form at the format's rule multiple and the masked form beside
    it; for any other, the compact form at the target's ``channel_multiple`` (the padding rule comes from
    this machine's x86 kernels, which say nothing of a board's)."""
    if not compact:
        return ["masked"]
    if target.precision == "int8":  # masked, its all-zero channels lose their biases (export/quantize.py)
        return [f"compact/{max(target.channel_multiple, RULE_MULTIPLE.get(fmt, 1))}"]
    if fmt in UNTIMED:
        return ["compact/1"]
    if target.latency_source != "local":
        return [f"compact/{target.channel_multiple}"]
    multiple = target.channel_multiple if target.channel_multiple > 1 else RULE_MULTIPLE.get(fmt, 1)
    return [f"compact/{multiple}", "masked"]


def why_untimed(name: str, target: Target, fmt: str) -> str:
    if name == "masked":
        return "compaction turned off (--no-compact)"
    if target.precision == "int8" and fmt not in UNTIMED:
        return "int8 quantizes the compact form: a masked network's pruned channels lose their biases (quantize.py)"
    if fmt in UNTIMED:
        return "the C generator drops unread channels itself; its loop forms follow a rule (docs/codegen.md)"
    return f"not timed: {target.name}'s device is not this machine ({target.latency_source})"


Export = Callable[[nn.Module, tuple[int, ...], Target, Path, Path], Artifact]


def choose(forms: list[Form], export: Export, shape: tuple[int, ...], target: Target, out: Path,
           work: Path) -> tuple[Artifact, dict[str, Any]]:
    """Export every form, time each in the format's host runtime, keep the fastest in ``out``."""
    runtime = target.runtime if target.format in RUNTIMES_OF_FORMAT and target.runtime in \
        RUNTIMES_OF_FORMAT[target.format] else RUNTIMES_OF_FORMAT[target.format][0]
    made = []
    for form in forms:
        folder = work / f"form-{form.name}"
        (folder / ".work").mkdir(parents=True)
        made.append(export(form.model, shape, target, folder, folder / ".work"))
    medians = time_interleaved([runtimes.load(a.model_file, runtime, threads=1) for a in made])
    best = min(range(len(forms)), key=medians.__getitem__)
    record = {"chosen": forms[best].name, "how": f"measured here in {runtime}, 1 thread, {ROUNDS} interleaved "
              "rounds", "median_ms": {f.name: round(m, 5) for f, m in zip(forms, medians)}}
    log.info("%s %s: %s is fastest (%s)", target.name, target.format, forms[best].name,
             ", ".join(f"{f.name} {m:.4f} ms" for f, m in zip(forms, medians)))
    return _move(made[best], out), record


def time_interleaved(sessions: list[runtimes.Session], rounds: int = ROUNDS) -> list[float]:
    """Median ms of each session over rounds that visit every session in turn (the machine's drift then
    favours none); each session first gets its first call and a warm-up."""
    inputs = [runner.fixed_input(list(s.input_shape), np.float32) for s in sessions]
    samples: list[list[int]] = [[] for _ in sessions]
    for session, x in zip(sessions, inputs):
        runner.time_rounds(session._run, x, 5, 1, 0.0)
    for _ in range(rounds):
        for i, (session, x) in enumerate(zip(sessions, inputs)):
            samples[i] += runner.time_rounds(session._run, x, 1, RUNS, 0.0)["rounds_ns"][0]
    return [statistics.median(s) / 1e6 for s in samples]


def _move(artifact: Artifact, out: Path) -> Artifact:
    for path in artifact.files:
        shutil.move(str(path), str(out / path.name))
    return replace(artifact, model_file=out / artifact.model_file.name,
                   files=tuple(out / f.name for f in artifact.files))
