"""int8 weights in the generated C (one float scale per output channel, float sums) against PyTorch run with
the same weights quantised per channel in torch and dequantised; zeros stay zeros (the int8
tables hold exactly the quantised weights' non-zeros); fp32 sources are untouched by the precision option."""

from __future__ import annotations

import json
import re
from copy import deepcopy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dass_edge import runtimes
from dass_edge.codegen import forms
from dass_edge.codegen.build import Toolchain, build
from dass_edge.codegen.emit.conv import FORMS
from dass_edge.codegen.generate import generate, save
from dass_edge.codegen.quantise import per_channel
from dass_edge.errors import InputError
from dass_edge.export import c as c_export
from dass_edge.targets import get_target

SHAPE = (1, 3, 12, 12)
TOLERANCE = 1e-4
TABLE = re.compile(r"static const (\w+) (\w+)_([vw])\[\d+\] = \{(.*?)\};", re.DOTALL)  # the weight tables


class Net(nn.Module):
    """A dense stem, a sparse strided conv, a sparse conv with a residual (the scale must come before the
    residual is added), a sparse depthwise conv and a linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.body = nn.Conv2d(12, 12, 3, padding=1)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False)
        self.pool = nn.Sequential(nn.AvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(12 * 3 * 3, 5)

    def forward(self, x):
        x = F.relu(self.down(F.relu(self.stem(x))))
        x = F.relu(self.body(x) + x)
        return self.head(self.pool(F.relu(self.depthwise(x))))


def layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def sparse_net() -> nn.Module:
    """Every layer but the stem at ~75% sparsity, each output channel keeping its largest weight (so no
    channel turns constant and the generator's weights are the module's), kept weights x3 (so that the
    outputs depend on the input well above the tolerance), and a few kept weights far below their
    channel's largest: non-zero in fp32, 0 in int8."""
    torch.manual_seed(0)
    model = Net().eval()
    with torch.no_grad():
        for layer in layers(model)[1:]:
            flat = layer.weight.view(layer.weight.shape[0], -1)
            rows, largest = torch.arange(len(flat)), flat.abs().argmax(1)
            keep = torch.rand(flat.shape) < 0.25
            keep[rows, largest] = True
            tiny = keep & (torch.rand(flat.shape) < 0.1)
            tiny[rows, largest] = False
            flat.copy_(torch.where(tiny, 1e-4 * flat.abs().amax(1, keepdim=True), 3 * flat * keep))
    return model


def quantised(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale): symmetric int8 per output channel, scale = max|w| / 127 (no channel here is all zero)."""
    scale = (weight.abs().flatten(1).amax(1) / 127).view(-1, *(1,) * (weight.dim() - 1))
    return torch.round(weight / scale), scale


def dequantised(model: nn.Module) -> nn.Module:
    copy = deepcopy(model)
    with torch.no_grad():
        for layer in layers(copy):
            q, scale = quantised(layer.weight)
            layer.weight.copy_(q * scale)
    return copy


def weight_tables(source: str) -> list[tuple[str, list[float]]]:
    """(C type, values) of every weight table of a generated source."""
    def value(text: str) -> float:
        text = text.strip().rstrip("f")
        return float.fromhex(text) if "0x" in text else float(text)

    return [(ctype, [value(v) for v in body.split(",")]) for ctype, _, _, body in TABLE.findall(source)]


def run_c(source_folder: Path, generated, x: np.ndarray) -> np.ndarray:
    save(generated, source_folder)
    built = build(source_folder, Toolchain(), library="model.so", strict=True, defines=("DASS_EDGE_NAN_ARENA",))
    session = runtimes.load(built.library, "c")
    return np.stack([session.run(row[None])[0] for row in x])


@pytest.mark.parametrize("form", list(FORMS))
def test_int8_matches_pytorch_with_dequantised_weights(form, tmp_path):
    model = sparse_net()
    x = torch.randn(3, *SHAPE[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = dequantised(model)(x).numpy()
        float_output = model(x).numpy()
    got = run_c(tmp_path, generate(model, SHAPE, form, precision="int8"), x.numpy())
    atol = TOLERANCE * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=atol)
    assert np.abs(float_output - expected).max() > 10 * atol, "quantisation changed nothing: a weak test"
    assert np.ptp(expected, axis=0).min() > 100 * atol, "the outputs hardly depend on the input: a weak test"


@pytest.mark.parametrize("form", ["sparse", "dense"])
def test_int8_tables_hold_exactly_the_quantised_non_zeros(form):
    model = sparse_net()
    int8 = weight_tables(generate(model, SHAPE, form, precision="int8").source.source)
    fp32 = weight_tables(generate(model, SHAPE, form).source.source)
    assert {ctype for ctype, _ in int8} == {"int8_t"} and {ctype for ctype, _ in fp32} == {"float"}
    values = [v for _, table in int8 for v in table]
    assert all(v == int(v) and abs(v) <= 127 for v in values)
    quantised_nonzeros = sum(int(torch.count_nonzero(quantised(m.weight)[0])) for m in layers(model))
    float_nonzeros = sum(int(torch.count_nonzero(m.weight)) for m in layers(model))
    assert np.count_nonzero(values) == quantised_nonzeros < float_nonzeros  # the planted tiny weights are 0
    if form == "sparse":  # the lists executed: every entry non-zero, one per non-zero int8 weight
        assert len(values) == quantised_nonzeros
        assert len([v for _, table in fp32 for v in table]) == float_nonzeros


def test_per_channel_keeps_zeros_and_gives_an_empty_channel_scale_0():
    weight = np.array([[[[0.0, 0.5, -1.0]]], [[[0.0, 0.0, 0.0]]], [[[1e-5, 0.0, 2.0]]]], np.float32)
    q, scale = per_channel(weight)
    np.testing.assert_array_equal(scale, np.float32([1 / 127, 0, 2 / 127]))
    np.testing.assert_array_equal(q.reshape(3, 3), [[0, 64, -127], [0, 0, 0], [0, 0, 127]])


def test_fp32_source_is_unchanged_by_the_precision_option():
    model = sparse_net()
    default = generate(model, SHAPE, forms.RULE).source
    explicit = generate(model, SHAPE, forms.RULE, precision="fp32").source
    assert default.source == explicit.source and default.version == explicit.version
    assert "int8" not in default.source.split("#include")[0]
    int8 = generate(model, SHAPE, forms.RULE, precision="int8").source
    assert "Weights: int8, one float scale per output channel" in int8.source.split("#include")[0]
    assert int8.version != default.version  # the weights' digest covers the integers and their scales
    with pytest.raises(ValueError, match="fp16"):
        generate(model, SHAPE, forms.RULE, precision="fp16")


def test_c_export_of_an_int8_target(tmp_path):
    target = replace(get_target("intel-cpu"), format="c", runtime="c", extra_formats=(), loads_in=(),
                     precision="int8")
    artifact = c_export.export(sparse_net(), SHAPE, target, tmp_path, tmp_path)
    assert artifact.tools["weights"].startswith("int8, one float scale per output channel")
    assert json.loads((tmp_path / "build.json").read_text())["weights"] == artifact.tools["weights"]
    with pytest.raises(InputError, match="fp16"):
        c_export.export(sparse_net(), SHAPE, replace(target, precision="fp16"), tmp_path, tmp_path)
