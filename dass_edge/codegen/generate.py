"""The generator's stages in order: lower (fx -> IR) -> optimise (passes) -> quantise (int8 weights, if
asked) -> lay out (views, in place, arena plan) -> choose each conv's loop form -> write C. ``generate``
runs them; ``save`` writes the files."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from dass_edge.codegen import forms
from dass_edge.codegen.build import Toolchain
from dass_edge.codegen.ir import Conv, Graph
from dass_edge.codegen.lower import lower
from dass_edge.codegen.passes import optimise
from dass_edge.codegen.quantise import quantise
from dass_edge.codegen.storage import Layout, lay_out
from dass_edge.codegen.writer import Source, write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generated:
    """The C of one network and what it took: layer forms, their timings when measured, the work."""

    source: Source
    graph: Graph
    layout: Layout
    timings: dict[int, dict[str, float]] = field(default_factory=dict)  # node index -> form -> median ns

    @property
    def arena_bytes(self) -> int:
        return self.source.arena_bytes

    @property
    def forms(self) -> dict[str, int]:
        """How many conv layers got each loop form."""
        counts: dict[str, int] = {}
        for node in self.graph.convs():
            counts[node.form] = counts.get(node.form, 0) + 1
        return counts

    def macs(self, nonzero_only: bool = True) -> int:
        return sum(node.macs(nonzero_only) for node in self.graph.nodes if isinstance(node, Conv))


def generate(model: nn.Module, input_shape: tuple[int, ...], how: str = forms.MEASURE,
             toolchain: Toolchain | None = None, precision: str = "fp32") -> Generated:
    """C for ``model`` (a compact GraphModule or a baked model) at batch 1. ``how`` chooses the conv loop
    forms: "measure" (time every form here, with ``toolchain``'s flags when it builds for this machine),
    "rule", or one form name for every layer. ``precision``: the weights' type, "fp32" or "int8" (one
    float scale per output channel, quantise.py)."""
    graph = optimise(lower(model, input_shape))
    quantise(graph, precision)
    timings = forms.assign(graph, how, toolchain)
    layout = lay_out(graph, forms.workspaces(graph))
    source = write(graph, layout)
    generated = Generated(source, graph, layout, timings)
    log.info("generated C: %d layers, forms %s, arena %d bytes, %d non-zero MACs", len(source.functions),
             generated.forms, source.arena_bytes, generated.macs())
    return generated


def save(generated: Generated, folder: Path) -> tuple[Path, Path]:
    """Write ``model.c`` and ``model.h`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    source, header = folder / "model.c", folder / "model.h"
    source.write_text(generated.source.source)
    header.write_text(generated.source.header)
    return source, header
