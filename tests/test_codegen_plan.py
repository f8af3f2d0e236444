"""The memory planner (a pure function of sizes and live ranges), the storage decisions built on it, and the
independent plan checker: sound plans pass, planted faults are each reported."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
import torch
from torch import nn

from dass_edge.codegen import forms
from dass_edge.codegen.ir import Concat, Conv
from dass_edge.codegen.lower import lower
from dass_edge.codegen.memory import first_fit, overlaps
from dass_edge.codegen.passes import optimise
from dass_edge.codegen.plan_check import check_plan
from dass_edge.codegen.storage import ARENA, Layout, lay_out
from dass_edge.compact.masks import connected_masks
from dass_edge.export.compact import compact_model
from dass_edge.search.models import ModelSpec, build_model


def test_first_fit_never_overlaps_live_buffers():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 12)
        sizes = [rng.randint(1, 300) for _ in range(n)]
        starts = [rng.randint(0, 20) for _ in range(n)]
        ranges = [(s, s + rng.randint(0, 6)) for s in starts]
        offsets, arena = first_fit(sizes, ranges, 16)
        assert all(o % 16 == 0 and o + s <= arena for o, s in zip(offsets, sizes))
        for i, j in itertools.combinations(range(n), 2):
            if overlaps(ranges[i], ranges[j]):
                assert offsets[i] + sizes[i] <= offsets[j] or offsets[j] + sizes[j] <= offsets[i]


def test_first_fit_reuses_dead_memory():
    offsets, arena = first_fit([100, 100, 100], [(0, 1), (1, 2), (2, 3)], 4)
    assert offsets[0] == offsets[2] and arena == 200  # the first buffer is dead when the third is born


@pytest.fixture(scope="module")
def darts():
    torch.manual_seed(0)
    model = build_model(ModelSpec("darts-v2", cells=3, channels=8)).eval()
    connected_masks(model, 0.9, (1, 3, 12, 12))
    graph = optimise(lower(compact_model(model, (1, 3, 12, 12)).model, (1, 3, 12, 12)))
    forms.assign(graph, forms.RULE)
    return graph, lay_out(graph, forms.workspaces(graph))


def test_real_plan_is_sound_and_shares_memory(darts):
    graph, layout = darts
    assert check_plan(graph, layout) == []
    total = sum(t.size for n in graph.nodes if not isinstance(n, Concat) for t in [n.output])
    assert layout.arena_floats < total  # liveness reuse: far less than one buffer per tensor
    concat = next(n for n in graph.nodes if isinstance(n, Concat))
    base = layout.of(concat.output)
    offset = 0
    for part in concat.inputs:  # the parts lie in the concat's storage, back to back
        assert layout.of(part).space == base.space and layout.of(part).offset == base.offset + offset
        offset += part.size


def _moved(layout: Layout, tensor, offset: int) -> Layout:
    places = dict(layout.places)
    places[id(tensor)] = replace(places[id(tensor)], offset=offset)
    return replace(layout, places=places)


def test_checker_reports_overlapping_live_tensors(darts):
    graph, layout = darts
    convs = [n for n in graph.nodes if isinstance(n, Conv) and layout.of(n.output).space == ARENA]
    first, later = convs[1], convs[2]
    broken = _moved(layout, later.output, layout.of(first.output).offset)  # over a tensor still to be read
    assert any("holds other values" in p or "overwrites" in p for p in check_plan(graph, broken))


def test_checker_reports_a_misplaced_concat_part(darts):
    graph, layout = darts
    concat = next(n for n in graph.nodes if isinstance(n, Concat))
    part = concat.inputs[1]
    broken = _moved(layout, part, layout.of(part).offset + 16)
    assert check_plan(graph, broken)


def test_checker_reports_a_workspace_on_live_data(darts):
    graph, layout = darts
    step, (offset, floats) = next((s, w) for s, w in layout.workspaces.items()
                                  if layout.of(graph.nodes[s].inputs[0]).space == ARENA)
    node = graph.nodes[step]
    broken = replace(layout, workspaces={**layout.workspaces, step: (layout.of(node.inputs[0]).offset, floats)})
    assert any("workspace" in p for p in check_plan(graph, broken))


def test_residual_add_accumulates_in_place():
    """relu(conv(x) + y): the Add and the ReLU disappear into the conv, which starts from y."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.a(x))
            return torch.relu(self.b(y) + y)

    graph = optimise(lower(Block().eval(), (1, 3, 8, 8)))
    convs = graph.convs()
    assert len(graph.nodes) == 2 and convs[1].residual is convs[0].output and convs[1].out_clamp == (0.0, float("inf"))
    forms.assign(graph, forms.RULE)
    assert check_plan(graph, lay_out(graph, forms.workspaces(graph))) == []
