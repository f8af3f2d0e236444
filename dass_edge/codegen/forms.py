"""Which loop form each convolution gets: measured on this machine, or by a rule where nothing can run.

Measuring: every conv is emitted in every form into one tuning library (writer.py's timing entry points),
built with the target's compiler and flags; after one full inference (so the arena holds real activations)
whole inferences run with every conv in one form, rounds interleaved across forms, each layer timed where it
runs; per layer the form with the fastest median wins. For a board's compiler the
layers are timed on this machine with the host compiler (the board is not here; qemu timings mean nothing),
so the choice is a proxy there, which is why the rule exists and how it was set is documented in
docs/codegen.md.
"""

from __future__ import annotations

import ctypes
import logging
import tempfile
from pathlib import Path

import numpy as np

from dass_edge.codegen.build import Toolchain, build
from dass_edge.codegen.emit import pool
from dass_edge.codegen.emit.conv import FORMS, workspace_floats
from dass_edge.codegen.ir import Conv, Graph, Pool, Slice
from dass_edge.codegen.storage import Layout, lay_out
from dass_edge.codegen.writer import header, write

log = logging.getLogger(__name__)
MEASURE, RULE = "measure", "rule"
ROUNDS = 7
TARGET_NS = 5_000_000  # each round runs each form for at least this long
DENSE_ABOVE = 0.5  # the rule: weight density above which the dense form wins (docs/codegen.md)


def rule(node: Conv) -> str:
    """The form a layer gets without measurement."""
    density = node.nonzeros / max(1, node.weight.size)
    return "dense" if density > DENSE_ABOVE else "sparse"


def workspaces(graph: Graph, every_form: bool = False) -> dict[int, int]:
    """Scratch floats per layer (node index): a conv's for its form, or the most any form needs (the
    tuning build); a pool's for its staged input."""
    needs = {}
    for index, node in enumerate(graph.nodes):
        contiguous = not isinstance(graph.producer(node.inputs[0]), Slice) if node.inputs else True
        if isinstance(node, Conv):
            forms = FORMS if every_form else (node.form,)
            needs[index] = max(workspace_floats(node, form, contiguous) for form in forms)
        elif isinstance(node, Pool):
            needs[index] = pool.workspace_floats(node, contiguous)
    return needs


def assign(graph: Graph, how: str, toolchain: Toolchain | None = None) -> dict[int, dict[str, float]]:
    """Set ``form`` on every conv of ``graph``: ``how`` is "measure", "rule" or one form for all layers
    (tests). Returns the measured median ns per (node index, form), empty unless measured."""
    convs = {i: n for i, n in enumerate(graph.nodes) if isinstance(n, Conv)}
    if how in FORMS:
        for node in convs.values():
            node.form = how
        return {}
    if how not in (MEASURE, RULE):
        raise ValueError(f"unknown form choice {how!r}; expected measure, rule or one of {', '.join(FORMS)}")
    for node in convs.values():
        node.form = rule(node)
    if how == RULE or not convs:
        return {}
    chosen, timings = measure(graph, lay_out(graph, workspaces(graph, every_form=True)), toolchain or Toolchain())
    for index, node in convs.items():
        node.form = chosen[index]
    return timings


Assignment = dict[int, str]  # conv node index -> form


def measure(graph: Graph, layout: Layout, toolchain: Toolchain) -> tuple[Assignment, dict[int, dict[str, float]]]:
    """(the forms to use, median ns of every conv in every form), timed on this machine where each layer
    runs: whole inferences with every conv in one form, rounds interleaved across forms, the clock read
    around every layer (a layer timed alone in a loop looks faster than it is in a network: its branches
    learned, its data hot). The fastest form per layer makes one candidate; it is kept only if whole
    inferences confirm it against each single form and the rule, in a second interleaved run (layers
    affect each other through the caches). ``layout`` must give each conv its most demanding workspace."""
    if not toolchain.native:
        toolchain = Toolchain()  # the host's compiler stands in for the board's
    source = write(graph, layout, tuning=True)
    with tempfile.TemporaryDirectory(prefix="dass-edge-tune-") as tmp:
        folder = Path(tmp)
        (folder / "model.c").write_text(source.source)
        (folder / "model.h").write_text(header(graph, layout))
        built = build(folder, toolchain, library="tune.so")
        log.info("tuning library (%d entries) built in %.1f s", len(source.entries), built.seconds)
        tuner = _Tuner(ctypes.CDLL(str(built.library)), graph, source.entries)
        uniform = [{i: form for i in tuner.convs} for form in FORMS]
        per_layer = tuner.time(uniform)
        timings = {i: {form: float(np.median(per_layer[f][:, k])) for f, form in enumerate(FORMS)}
                   for k, i in enumerate(tuner.layers) if i in tuner.convs}
        fastest = {i: min(t, key=t.get) for i, t in timings.items()}
        candidates = [fastest, {i: rule(graph.nodes[i]) for i in tuner.convs}, *uniform]
        totals = [float(np.median(runs.sum(axis=1))) for runs in tuner.time(candidates)]
    best = int(np.argmin(totals))
    log.info("measured forms: per-layer fastest %.1f us, rule %.1f us, %s; kept %s", totals[0] / 1e3,
             totals[1] / 1e3, ", ".join(f"all {f} {t / 1e3:.1f} us" for f, t in zip(FORMS, totals[2:])),
             ["per-layer fastest", "rule", *(f"all {f}" for f in FORMS)][best])
    return candidates[best], timings


class _Tuner:
    """The tuning library: runs whole inferences with a given form per conv, timing every layer."""

    def __init__(self, library: ctypes.CDLL, graph: Graph, entries: tuple[tuple[int, str], ...]):
        self.library = library
        self.entry = {key: i for i, key in enumerate(entries)}
        self.layers = sorted({index for index, _ in entries})
        self.convs = {i for i in self.layers if isinstance(graph.nodes[i], Conv)}
        library.dass_edge_tune_run.restype = None
        library.dass_edge_tune_run.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        x = np.random.default_rng(0).standard_normal(graph.input.size).astype(np.float32)
        out = np.empty(graph.output.size, np.float32)  # one inference: the arena holds real activations
        library.dass_edge_run(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))

    def _entries(self, assignment: Assignment) -> np.ndarray:
        return np.asarray([self.entry[(i, assignment.get(i, ""))] for i in self.layers], dtype=np.int32)

    def _once(self, entries: np.ndarray, repeats: int) -> np.ndarray:
        ns = np.zeros(len(entries), dtype=np.int64)
        for _ in range(repeats):
            self.library.dass_edge_tune_run(entries.ctypes.data, len(ns), ns.ctypes.data)
        return ns / repeats

    def time(self, assignments: list[Assignment]) -> list[np.ndarray]:
        """Per assignment, (rounds, layers) mean ns per inference; rounds interleaved."""
        entries = [self._entries(a) for a in assignments]
        repeats = [max(1, int(TARGET_NS // max(1.0, self._once(e, 3).sum()))) for e in entries]
        samples: list[list[np.ndarray]] = [[] for _ in assignments]
        for _ in range(ROUNDS):
            for k, e in enumerate(entries):
                samples[k].append(self._once(e, repeats[k]))
        return [np.stack(values) for values in samples]
