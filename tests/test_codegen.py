"""The C code generator against PyTorch: every op of the search space and of the baselines, compiled with
gcc -Wall -Wextra -Werror, the arena filled with NaN before each run, its memory plan replayed by the
independent checker, outputs compared at fp32 tolerance on several random inputs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dass_edge import runtimes
from dass_edge.codegen import forms
from dass_edge.codegen.build import Toolchain, build
from dass_edge.codegen.emit.conv import FORMS
from dass_edge.codegen.ir import AddConst, Concat, Conv, Copy, Pool, Slice
from dass_edge.codegen.lower import lower
from dass_edge.codegen.passes import optimise
from dass_edge.codegen.plan_check import check_plan
from dass_edge.codegen.storage import lay_out
from dass_edge.codegen.writer import write
from dass_edge.compact.masks import connected_masks
from dass_edge.export.compact import compact_model
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.search.ops import OPS, PRIMITIVES

ATOL = 1e-4
INPUTS = 3


def load_library(path: Path):
    """The library in the toolkit's runtime for it: (N, C, H, W) float32 inputs -> (N, outputs)."""
    session = runtimes.load(path, "c")
    return lambda batch: np.stack([session.run(x[None])[0] for x in batch])


def compile_graph(graph, folder: Path, form_of=None):
    """Lay out, check the plan, write, build strictly with the NaN arena; the ctypes runner."""
    for index, conv in enumerate(graph.convs()):
        conv.form = form_of(index) if form_of else "sparse"
    layout = lay_out(graph, forms.workspaces(graph))
    assert check_plan(graph, layout) == []
    source = write(graph, layout)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.c").write_text(source.source)
    (folder / "model.h").write_text(source.header)
    built = build(folder, Toolchain(), library="model.so", strict=True, defines=("DASS_EDGE_NAN_ARENA",))
    return load_library(built.library)


def assert_matches(model: nn.Module, deployed: nn.Module, shape: tuple[int, ...], folder: Path, form_of=None,
                   graph_check=None) -> None:
    graph = optimise(lower(deployed, shape))
    if graph_check:
        graph_check(graph)
    run = compile_graph(graph, folder, form_of)
    x = torch.randn(INPUTS, *shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = torch.cat([model(x[i:i + 1]) for i in range(INPUTS)]).reshape(INPUTS, -1).numpy()
    got = run(x.numpy())
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=ATOL)
    assert np.ptp(expected, axis=0).max() > 0, "the outputs do not depend on the input: a weak test"


def cycle(offset: int):
    """Layer i gets form (i + offset) mod 3: every form of every primitive across the parametrisation."""
    names = list(FORMS)
    return lambda index: names[(index + offset) % len(names)]


@pytest.mark.parametrize("primitive,stride", list(itertools.product([p for p in PRIMITIVES if p != "none"], [1, 2])))
def test_every_primitive(primitive, stride, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), OPS[primitive](8, stride, True))
    connected_masks(model, 0.5, (1, 3, 12, 12))
    assert_matches(model, model, (1, 3, 12, 12), tmp_path, cycle(stride))


BASELINES = {
    "mobilenet-v2": ModelSpec("mobilenet-v2", width=0.25),
    "resnet-18": ModelSpec("resnet-18", width=0.125),
    "darts-v2": ModelSpec("darts-v2", cells=3, channels=8),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_compacted(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(BASELINES[name]).eval()
    connected_masks(model, 0.9, (1, 3, 16, 16))
    compact = compact_model(model, (1, 3, 16, 16)).model
    assert_matches(model, compact, (1, 3, 16, 16), tmp_path, cycle(0))


def test_baked_model_with_batchnorm(tmp_path):
    """compact=False deploys the baked model, BatchNorm still in: the generator folds it."""
    from dass_edge.search.sparse import bake

    torch.manual_seed(0)
    model = build_model(BASELINES["darts-v2"]).eval()
    connected_masks(model, 0.9, (1, 3, 16, 16))
    assert_matches(model, bake(model).eval(), (1, 3, 16, 16), tmp_path, cycle(1))


def test_compacted_constant_adds(tmp_path):
    """Compaction leaves Adds of constant tensors (BN shifts of pruned channels) in DARTS cells."""
    torch.manual_seed(1)
    model = build_model(ModelSpec("darts-v2", cells=3, channels=8)).eval()
    connected_masks(model, 0.9, (1, 3, 12, 12), seed=1)
    compact = compact_model(model, (1, 3, 12, 12)).model
    assert_matches(model, compact, (1, 3, 12, 12), tmp_path, cycle(2),
                   lambda graph: any(isinstance(n, AddConst) for n in graph.nodes) or pytest.fail("no constant add"))


class Geometry(nn.Module):
    """Conv variants side by side: stride, padding, dilation, groups, a rectangular kernel and input, and a
    conv whose every weight is pruned (its output is its bias: nothing to stage)."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(6, 4, 3, stride=2, padding=1), nn.Conv2d(6, 4, 5, padding=4, dilation=2),
            nn.Conv2d(6, 6, 3, padding=1, groups=2), nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False),
            nn.Conv2d(6, 4, 1, stride=2), nn.Conv2d(6, 4, 3), nn.Conv2d(6, 4, (3, 1), padding=(1, 0)),
            nn.Conv2d(6, 4, 3, padding=3, dilation=3), nn.Conv2d(6, 4, 3, stride=(2, 1), padding=2),
            nn.Conv2d(6, 4, 3, padding=1)])
        for conv in self.convs:
            with torch.no_grad():
                conv.weight.mul_((torch.rand_like(conv.weight) > 0.4).float())
        with torch.no_grad():
            self.convs[-1].weight.zero_()

    def forward(self, x):
        return torch.cat([torch.relu(conv(x)).flatten(1) for conv in self.convs], 1)


@pytest.mark.parametrize("form", list(FORMS))
def test_conv_geometry(form, tmp_path):
    torch.manual_seed(0)
    model = Geometry().eval()
    assert_matches(model, model, (1, 6, 11, 14), tmp_path, lambda _: form)


class Pools(nn.Module):
    def __init__(self):
        super().__init__()
        self.pools = nn.ModuleList([
            nn.AvgPool2d(3, 2, 1, count_include_pad=True), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(2, 2, ceil_mode=True),
            nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=True), nn.MaxPool2d(3, 1, 1, dilation=2),
            nn.AdaptiveAvgPool2d(1)])

    def forward(self, x):
        return torch.cat([pool(x).flatten(1) for pool in self.pools], 1)


def test_pooling_semantics(tmp_path):
    model = Pools().eval()
    assert_matches(model, model, (1, 3, 9, 11), tmp_path,
                   graph_check=lambda graph: len([n for n in graph.nodes if isinstance(n, Pool)]) == 7)


class SharedConcat(nn.Module):
    """A concat read by two convs and a pool, tensors in two concats, the input in one, a concat inside a
    concat, a slice of a concat read by a conv."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.c, self.d = nn.Conv2d(8, 5, 3, padding=1), nn.Conv2d(8, 5, 1)
        self.e = nn.Conv2d(11, 5, 2, padding=1)
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        both = torch.cat([a, b], 1)
        again = torch.cat([b, x, a], 1)
        mixed = self.c(torch.relu(both)) + self.d(both) + self.e(again[:, :, 1:, 1:])
        return torch.cat([mixed, self.pool(both), again], 1)


def test_concat_views(tmp_path):
    torch.manual_seed(0)
    model = SharedConcat().eval()

    def views_and_copies(graph):
        kinds = {type(n) for n in graph.nodes}
        assert {Concat, Slice, Copy} <= kinds  # a and b sit in two concats: one of each is a copy

    assert_matches(model, model, (1, 3, 8, 8), tmp_path, cycle(0), views_and_copies)


def test_measured_forms(tmp_path):
    """``measure`` times every form of every conv in a tuning build; the forms it keeps are the fastest of
    each layer, the rule's or one form throughout, whichever whole inferences confirmed."""
    torch.manual_seed(0)
    model = build_model(ModelSpec("darts-v2", cells=2, channels=8)).eval()
    connected_masks(model, 0.9, (1, 3, 12, 12))
    graph = optimise(lower(compact_model(model, (1, 3, 12, 12)).model, (1, 3, 12, 12)))
    timings = forms.assign(graph, forms.MEASURE)
    assert set(timings) == {i for i, n in enumerate(graph.nodes) if isinstance(n, Conv)}
    assert all(set(per_form) == set(FORMS) and min(per_form.values()) > 0 for per_form in timings.values())
    kept = {i: graph.nodes[i].form for i in timings}
    candidates = [{i: min(t, key=t.get) for i, t in timings.items()}, {i: forms.rule(graph.nodes[i]) for i in timings},
                  *({i: form for i in timings} for form in FORMS)]
    assert kept in candidates
    chosen = {id(n): n.form for n in graph.convs()}
    run = compile_graph(graph, tmp_path, lambda i: chosen[id(graph.convs()[i])])
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        np.testing.assert_allclose(run(x.numpy()), model(x).numpy(), atol=ATOL, rtol=ATOL)


def test_c_export_for_the_host(tmp_path):
    """The ``c`` format: sources, build record, library (measured forms) and program for intel-cpu."""
    import json
    from dataclasses import replace

    from dass_edge.export import get_exporter
    from dass_edge.targets import get_target

    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet-18", width=0.125)).eval()
    connected_masks(model, 0.9, (1, 3, 8, 8))
    compact = compact_model(model, (1, 3, 8, 8)).model
    target = replace(get_target("intel-cpu"), format="c", runtime="c", extra_formats=(), loads_in=())
    artifact = get_exporter("c")(compact, (1, 3, 8, 8), target, tmp_path, tmp_path)
    assert artifact.format == "c" and artifact.model_file == tmp_path / "model.so"
    assert {f.name for f in artifact.files} == {"model.c", "model.h", "bench_main.c", "Makefile", "build.json",
                                                "model.so", "model-bench"}
    record = json.loads((tmp_path / "build.json").read_text())
    assert record["flags"][-2:] == list(target.c_flags) and record["compiler_version"].startswith("gcc")
    assert 0 < record["nonzero_macs"] < record["dense_macs"] and record["arena_bytes"] > 0
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(load_library(artifact.model_file)(x.numpy()), model(x).numpy(),
                                   atol=ATOL, rtol=ATOL)
