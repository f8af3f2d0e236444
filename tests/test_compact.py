"""Compaction: the compact network equals the masked one (FP32, 1e-5) and is smaller, on every architecture."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from dass_edge import checkpoint
from dass_edge.compact import UnsupportedGraphError
from dass_edge.compact.constants import encode
from dass_edge.compact.masks import connected_masks
from dass_edge.data.datasets import load_dataset
from dass_edge.export.compact import compact_model
from dass_edge.search.baselines import conv_bn
from dass_edge.search.genotype import Genotype
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.search.sparse import SparseConv2d, count_params, kept_count, set_mode, sparse_layers

ARCHS = ("dass", "darts-v2", "mobilenet-v2", "resnet-18")
SPARSITIES = (0.9, 0.99, 0.995)
ATOL = 1e-5
INPUT = (1, 1, 32, 32)
GATHERS = {"Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements"}
# A DASS-like genotype using every primitive (the smoke search's own genotype is used on its trained
# checkpoint below; building it costs a search, so the sparsity matrix uses this one).
EVERY_OP = Genotype(
    normal=(("dil_conv_5x5", 0), ("skip_connect", 1), ("avg_pool_3x3", 0), ("sep_conv_5x5", 2),
            ("dil_conv_3x3", 1), ("skip_connect", 3), ("sep_conv_3x3", 0), ("avg_pool_3x3", 4)),
    reduce=(("max_pool_3x3", 0), ("skip_connect", 1), ("avg_pool_3x3", 1), ("dil_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 3), ("skip_connect", 2), ("dil_conv_3x3", 4)),
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared by many processes: intra-op threads only spin against each other here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_dataset("mnist5k").x_test[:16]


def small_model(arch: str, genotype: Genotype = EVERY_OP) -> nn.Module:
    """The smallest network that still has every structure of ``arch`` (cells with reductions, all stages)."""
    spec = ModelSpec(arch, in_channels=1, cells=3, channels=8, width=0.125,
                     genotype=genotype if arch == "dass" else None)
    return build_model(spec)


def assert_compact_equals_masked(masked: nn.Module, compact: nn.Module, inputs: torch.Tensor,
                                 input_dependent: bool = True) -> None:
    with torch.no_grad():
        expected, actual = masked(inputs), compact(inputs)
    if input_dependent:
        assert (expected - expected[:1]).abs().max() > 1e-4, "test model is degenerate: output ignores the input"
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= ATOL


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("arch", ARCHS)
def test_compact_equals_masked_on_connected_masks(arch, sparsity, images):
    torch.manual_seed(0)
    model = small_model(arch)
    connected_masks(model, sparsity, INPUT)
    total, nonzero = count_params(model)
    assert nonzero <= sum(kept_count(layer.weight.numel(), sparsity) for layer in sparse_layers(model))

    result = compact_model(model, INPUT)

    assert_compact_equals_masked(model, result.model, torch.randn(4, *INPUT[1:]))
    assert_compact_equals_masked(model, result.model, images)
    assert result.nonzero_params == nonzero
    assert result.macs_after <= result.macs_before
    if sparsity >= 0.99:
        assert result.macs_after < result.macs_before and result.params_after < result.params_before


@pytest.mark.parametrize("arch", ARCHS)
def test_compact_equals_masked_on_trained_checkpoints(arch, trained_checkpoint, images):
    """At 90%: the smoke schedule's checkpoints at 99% and 99.5% ignore their input (paths cut), so those
    sparsities are covered by the connected masks above. Its MobileNet-v2 (width 0.125) ignores the input
    even at 90%: compaction must then reproduce the constant output exactly, which is still checked."""
    ckpt = checkpoint.load(trained_checkpoint(arch, 0.9))
    model = ckpt.build()
    input_dependent = arch != "mobilenet-v2"

    result = compact_model(model, ckpt.input_shape)

    assert_compact_equals_masked(model, result.model, images, input_dependent)
    assert_compact_equals_masked(model, result.model, torch.randn(4, *ckpt.input_shape[1:]), input_dependent)
    assert result.macs_after <= result.macs_before


@pytest.mark.parametrize("arch", ARCHS)
def test_dense_model_compacts_to_itself(arch, images):
    torch.manual_seed(0)
    model = small_model(arch)
    connected_masks(model, 0.0, INPUT)  # keeps every weight; calibrates BN so the output follows the input

    result = compact_model(model, INPUT)

    assert_compact_equals_masked(model, result.model, images)
    assert (result.macs_after, result.params_after) == (result.macs_before, result.params_before)
    layers = [m for m in result.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [tuple(m.weight.shape) for m in layers] == [tuple(m.weight.shape) for m in model.modules()
                                                       if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_channel_multiple_rounds_every_free_channel_count(images):
    torch.manual_seed(0)
    model = small_model("darts-v2")
    connected_masks(model, 0.99, INPUT)
    original = {tuple(m.weight.shape[:1]) for m in model.modules() if isinstance(m, nn.Conv2d)}

    tight, aligned = compact_model(model, INPUT, 1), compact_model(model, INPUT, 8)

    assert_compact_equals_masked(model, aligned.model, images)
    convs = [m for m in aligned.model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 or (c.out_channels,) in original for c in convs)
    assert any(c.out_channels % 8 != 0 for c in tight.model.modules() if isinstance(c, nn.Conv2d))
    assert tight.macs_after < aligned.macs_after < aligned.macs_before


def test_border_constants_become_per_position_biases():
    """A dead channel's BN shift, through ReLU and a zero-padded 3x3 conv, varies at the borders."""
    torch.manual_seed(0)
    model = nn.Sequential(conv_bn(1, 4, 3), conv_bn(4, 4, 3, act=None))
    set_mode(model, "masked")
    first = model[0][0]
    assert isinstance(first, SparseConv2d)
    first.mask[0] = 0.0  # channel 0 of the first conv dies: its output is relu(BN shift), a constant
    model[0][1].bias.data[0] = 1.5
    model.eval()

    result = compact_model(model, INPUT)

    assert result.model.get_submodule("0_0").out_channels == 3
    assert any(node.op == "get_attr" for node in result.model.graph.nodes)
    assert_compact_equals_masked(model, result.model, torch.randn(4, *INPUT[1:]))


def test_unknown_ops_are_refused():
    model = nn.Sequential(SparseConv2d(1, 4, 3, padding=1), nn.Sigmoid()).eval()
    with pytest.raises(UnsupportedGraphError, match="Sigmoid|sigmoid"):
        compact_model(model, INPUT)


@pytest.mark.parametrize("arch", ["darts-v2", "mobilenet-v2"])
def test_compact_onnx_has_no_gathers_and_matches_in_onnx_runtime(arch, images, tmp_path):
    torch.manual_seed(0)
    model = small_model(arch)
    connected_masks(model, 0.99, INPUT)
    compact = compact_model(model, INPUT, channel_multiple=4).model
    path = tmp_path / "compact.onnx"

    torch.onnx.export(compact, (images[:1],), path, dynamo=True, external_data=False)

    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert "Conv" in ops and not ops & GATHERS
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with torch.no_grad():
        expected = model(images[:4]).numpy()
    for i in range(4):
        actual = session.run(None, {name: images[i : i + 1].numpy()})[0]
        assert abs(actual - expected[i : i + 1]).max() <= ATOL


def test_border_maps_factor_exactly_into_low_rank():
    """A uniform field through a zero-padded 3x3 conv varies only at the borders: rank <= 9, stored small."""
    torch.manual_seed(0)
    field = torch.full((1, 5, 16, 16), 0.7, dtype=torch.float64)
    border_map = torch.nn.functional.conv2d(field, torch.randn(24, 5, 3, 3, dtype=torch.float64), padding=1)

    encoded = encode(border_map)

    assert encoded.factored
    left, right = encoded.tensors
    assert left.shape[1] <= 9 and left.numel() + right.numel() < border_map.numel()
    assert (left.double() @ right.double() - border_map[0].reshape(24, -1)).abs().max() <= 1e-6
    assert encode(border_map[:, :, 4:8, 4:8]).tensors[0].shape == (1, 24, 1, 1)  # the interior is uniform
