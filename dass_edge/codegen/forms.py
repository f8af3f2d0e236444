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
import statistics
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
    timings = measure(graph, lay_out(graph, workspaces(graph, every_form=True)), toolchain or Toolchain())
    for index, node in convs.items():
        node.form = min(timings[index], key=timings[index].get)
    return timings


def measure(graph: Graph, layout: Layout, toolchain: Toolchain) -> dict[int, dict[str, float]]:
    """Median ns of every conv layer in every form, each timed where it runs: whole inferences in one form
    per round (rounds interleaved), the clock read around every layer. A layer timed alone in a loop
    looks faster than it is in a network (its branches learned, its data hot) and misleads the choice.
    ``layout`` must give each conv the workspace of its most demanding form."""
    if not toolchain.native:
        toolchain = Toolchain()  # the host's compiler stands in for the board's
    source = write(graph, layout, tuning=True)
    entry = {key: i for i, key in enumerate(source.entries)}
    layers = sorted({index for index, _ in source.entries})
    runs = {form: [entry.get((i, form), entry.get((i, ""))) for i in layers] for form in FORMS}
    with tempfile.TemporaryDirectory(prefix="dass-edge-tune-") as tmp:
        folder = Path(tmp)
        (folder / "model.c").write_text(source.source)
        (folder / "model.h").write_text(header(graph, layout))
        built = build(folder, toolchain, library="tune.so")
        log.info("tuning library (%d layers, %d entries) built in %.1f s", len(layers), len(entry), built.seconds)
        samples = _time_runs(ctypes.CDLL(str(built.library)), graph, runs)
    return {index: {form: statistics.median(samples[form][:, k]) for form in FORMS}
            for k, index in enumerate(layers) if isinstance(graph.nodes[index], Conv)}


def _time_runs(library: ctypes.CDLL, graph: Graph, runs: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Per form, (rounds, layers) mean ns per inference."""
    library.dass_edge_tune_run.restype = None
    library.dass_edge_tune_run.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    x = np.random.default_rng(0).standard_normal(graph.input.size).astype(np.float32)
    out = np.empty(graph.output.size, np.float32)
    library.dass_edge_run(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
    entries = {form: np.asarray(e, dtype=np.int32) for form, e in runs.items()}

    def once(form: str, repeats: int) -> np.ndarray:
        ns = np.zeros(len(entries[form]), dtype=np.int64)
        for _ in range(repeats):
            library.dass_edge_tune_run(entries[form].ctypes.data, len(ns), ns.ctypes.data)
        return ns / repeats

    repeats = {form: max(1, int(TARGET_NS // max(1.0, once(form, 3).sum()))) for form in FORMS}
    samples: dict[str, list[np.ndarray]] = {form: [] for form in FORMS}
    for _ in range(ROUNDS):
        for form in FORMS:
            samples[form].append(once(form, repeats[form]))
    return {form: np.stack(values) for form, values in samples.items()}
