"""The search space, the supernet, genotypes and the bilevel steps."""

import json

import pytest
import torch

from dass_edge.device import Precision
from dass_edge.errors import InputError
from dass_edge.search import algorithm, sparse
from dass_edge.search.genotype import DARTS_V2, Genotype, derive_cell
from dass_edge.search.models import ARCHS, ModelSpec, build_model
from dass_edge.search.network import VARIANTS
from dass_edge.search.ops import OPS, PRIMITIVES
from dass_edge.search.supernet import SearchNetwork


def test_primitives_are_derived_from_the_op_registry():
    assert PRIMITIVES == tuple(OPS)
    assert {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "max_pool_3x3", "avg_pool_3x3",
            "skip_connect"} <= set(PRIMITIVES)


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_scales_resolution_by_stride(name, stride):
    op = OPS[name](8, stride, True)
    out = op(torch.randn(2, 8, 16, 16))
    assert out.shape == (2, 8, 16 // stride, 16 // stride)


def test_parametric_ops_are_sparse():
    for name in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"):
        assert len(list(sparse.sparse_layers(OPS[name](4, 1, True)))) >= 2


@pytest.mark.parametrize("arch", sorted(set(ARCHS) - {"dass"}))
def test_every_registered_arch_builds_and_classifies(arch):
    model = build_model(ModelSpec(arch, num_classes=7, in_channels=1, cells=3, channels=4, width=0.125))
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert list(sparse.sparse_layers(model))


def test_variants_follow_table_2():
    assert VARIANTS == {"tiny": (16, 30), "small": (20, 36), "medium": (12, 86), "large": (14, 108)}
    spec = ModelSpec("darts-v2").with_variant("small")
    assert (spec.cells, spec.channels, spec.variant) == (20, 36, "small")
    with pytest.raises(InputError):
        ModelSpec("resnet-18").with_variant("tiny")


def test_derivation_keeps_two_strongest_inputs_and_never_none():
    n_edges = sum(i + 2 for i in range(4))
    weights = torch.full((n_edges, len(PRIMITIVES)), 0.01)
    weights[:, PRIMITIVES.index("none")] = 10.0  # 'none' dominates everywhere yet must never be picked
    strong = {0: ("sep_conv_5x5", 0.9), 1: ("max_pool_3x3", 0.5), 2: ("skip_connect", 0.8),
              4: ("dil_conv_3x3", 0.7)}  # node 0: edges 0,1; node 1: edges 2,3,4
    for edge, (op, value) in strong.items():
        weights[edge, PRIMITIVES.index(op)] = value
    cell = derive_cell(weights)
    assert cell[:2] == (("sep_conv_5x5", 0), ("max_pool_3x3", 1))
    assert cell[2:4] == (("skip_connect", 0), ("dil_conv_3x3", 2))
    assert all(op != "none" for op, _ in cell)
    for node in range(4):
        inputs = [j for _, j in cell[2 * node : 2 * node + 2]]
        assert len(set(inputs)) == 2 and all(j < node + 2 for j in inputs)


def test_genotype_json_round_trip():
    text = DARTS_V2.to_json()
    assert Genotype.from_json(text) == DARTS_V2
    assert json.loads(text)["normal"][0] == ["sep_conv_3x3", 0]
    with pytest.raises(InputError):
        Genotype.from_json('{"normal": [["conv_7x7", 0], ["skip_connect", 1]], "reduce": []}')
    with pytest.raises(InputError):
        Genotype.from_json("not json")


def test_supernet_genotype_is_valid():
    net = SearchNetwork(c=4, layers=3, num_classes=10, in_channels=1)
    genotype = net.genotype()
    assert len(genotype.normal) == 8 and len(genotype.reduce) == 8
    assert build_model(ModelSpec("dass", in_channels=1, cells=3, channels=4, genotype=genotype))


def _snapshot(tensors):
    return [t.detach().clone() for t in tensors]


def _changed(before, tensors):
    return [not torch.equal(b, t.detach()) for b, t in zip(before, tensors)]


def test_weight_step_changes_only_weights_and_alpha_step_only_alphas():
    torch.manual_seed(0)
    net = SearchNetwork(c=4, layers=3, num_classes=10, in_channels=1)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    cfg = algorithm.StepConfig(epochs=1, lr=0.1, batch_size=16, max_batches=1)
    weights, alphas = net.weight_parameters(), net.arch_parameters()
    w0, a0 = _snapshot(weights), _snapshot(alphas)
    algorithm.pretrain(net, (x, y), None, cfg)  # no validation split: weight steps only
    assert any(_changed(w0, weights)) and not any(_changed(a0, alphas))

    w1, a1 = _snapshot(weights), _snapshot(alphas)
    arch_opt = torch.optim.Adam(alphas, lr=0.1)
    precision = Precision(torch.device("cpu"))
    algorithm._arch_step(net, arch_opt, precision.scaler(), weights, (x, y, len(y)), precision)
    assert all(_changed(a1, alphas)) and not any(_changed(w1, weights))


def test_prune_step_changes_scores_and_alphas_but_not_weights():
    torch.manual_seed(0)
    net = SearchNetwork(c=4, layers=3, num_classes=10, in_channels=1)
    x, y = torch.randn(32, 1, 32, 32), torch.randint(0, 10, (32,))
    cfg = algorithm.StepConfig(epochs=1, lr=0.1, batch_size=16, max_batches=2)
    convs = [layer.weight for layer in sparse.sparse_layers(net)]
    w0, a0 = _snapshot(convs), _snapshot(net.arch_parameters())
    algorithm.prune(net, (x[:16], y[:16]), (x[16:], y[16:]), cfg, sparsity=0.9)
    assert all(_changed(a0, net.arch_parameters()))
    for layer, before in zip(sparse.sparse_layers(net), w0):
        assert layer.mode == "masked"
        torch.testing.assert_close(layer.weight.detach(), before * layer.mask)  # only masking, no update


def _source_op(supernet, cell_index, name, node, k):
    """The supernet op that edge ``k`` (input ``node``) of a derived cell inherits, as algorithm.inherit finds it."""
    edge_index = sum(i + 2 for i in range(k // 2)) + node
    return supernet.cells[cell_index].edges[edge_index].ops[PRIMITIVES.index(name)]


def _distinct_statistics(model):
    """BN statistics away from their defaults, so a copied one cannot pass for a fresh one."""
    generator = torch.Generator().manual_seed(1)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.copy_(torch.rand(bn.running_mean.shape, generator=generator) - 0.5)
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator) + 0.5)


@pytest.mark.parametrize("name", [p for p in PRIMITIVES if p != "none"])
def test_inheritance_copies_every_op_of_the_registry_exactly(name):
    """Every edge of a genotype made only of ``name`` gets its supernet op's weights, masks and BN statistics,
    and in eval mode computes exactly what that op computed (the derived BNs' affine 1 and 0 change nothing)."""
    torch.manual_seed(0)
    net = SearchNetwork(c=4, layers=3, num_classes=10, in_channels=1)
    sparse.magnitude_masks(net, 0.9)
    _distinct_statistics(net)
    genotype = Genotype(normal=((name, 0), (name, 1)) * 4, reduce=((name, 0), (name, 1)) * 4)
    child = algorithm.inherit(net.eval(), genotype).eval()
    for c, cell in enumerate(child.cells):
        for shared, value in net.cells[c].preprocess.state_dict().items():
            assert torch.equal(cell.preprocess.state_dict()[shared], value), shared
        for k, (op_name, node) in enumerate(genotype.reduce if cell.reduction else genotype.normal):
            source, op = _source_op(net, c, op_name, node, k), cell.ops[k]
            if "pool" in name:
                assert not op.state_dict()  # the supernet's pool BN is dropped, as in DARTS
                continue
            copied = op.state_dict()
            for key, value in source.state_dict().items():
                assert torch.equal(copied[key], value), (c, k, key)
            convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
            x = torch.randn(2, convs[0].in_channels if convs else 4, 8, 8)  # no conv: the identity
            with torch.no_grad():
                torch.testing.assert_close(op(x), source(x), rtol=0, atol=1e-6)


def test_inheritance_refuses_an_op_that_does_not_match():
    source, target = OPS["dil_conv_3x3"](4, 1, False), OPS["sep_conv_3x3"](4, 1, True)
    with pytest.raises(InputError, match="cannot inherit edge 0"):
        algorithm._load_inherited(target, source, "edge 0")
    wider = OPS["sep_conv_3x3"](8, 1, True)
    with pytest.raises(InputError, match="cannot inherit edge 1"):
        algorithm._load_inherited(wider, OPS["sep_conv_3x3"](4, 1, False), "edge 1")


def test_inherited_network_carries_the_supernet_masks():
    torch.manual_seed(0)
    net = SearchNetwork(c=4, layers=3, num_classes=10, in_channels=1)
    sparse.magnitude_masks(net, 0.9)
    genotype = net.genotype()
    child = algorithm.inherit(net, genotype)
    normal = next(c for c in child.cells if not c.reduction)
    search_cell = net.cells[list(child.cells).index(normal)]
    op_name, node = genotype.normal[0]
    source = search_cell.edges[node].ops[PRIMITIVES.index(op_name)]
    for a, b in zip(sparse.sparse_layers(normal.ops[0]), sparse.sparse_layers(source)):
        assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    total, nonzero = sparse.count_params(child)
    assert nonzero < 0.2 * total
