"""SparseConv2d / SparseLinear: mask density, straight-through gradients, fixed masks, baking."""

import pytest
import torch
from torch import nn

from dass_edge.search import sparse
from dass_edge.search.sparse import SparseConv2d, SparseLinear


def _layers():
    torch.manual_seed(0)
    return [SparseConv2d(8, 16, 3, padding=1), SparseConv2d(8, 8, 5, padding=2, groups=8, bias=False),
            SparseLinear(40, 10)]


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99, 0.995])
def test_mask_density_matches_sparsity_within_one_weight(sparsity):
    model = nn.ModuleList(_layers())
    sparse.magnitude_masks(model, sparsity)
    for layer in sparse.sparse_layers(model):
        kept = int(layer.mask.sum())
        assert abs(kept - (1 - sparsity) * layer.weight.numel()) <= 1
        assert kept >= 1


def test_magnitude_masks_keep_the_largest_weights():
    layer = SparseLinear(10, 10)
    sparse.magnitude_masks(layer, 0.9)
    kept = layer.weight.detach().abs()[layer.mask.bool()]
    dropped = layer.weight.detach().abs()[~layer.mask.bool()]
    assert kept.min() >= dropped.max()


def test_scores_get_gradients_through_the_straight_through_mask():
    layer = SparseConv2d(4, 4, 3, padding=1)
    sparse.init_scores(layer)
    sparse.allocate(layer, 0.75)
    sparse.set_mode(layer, "prune")
    layer(torch.randn(2, 4, 8, 8)).square().sum().backward()
    assert layer.weight.grad is None
    assert layer.scores.grad is not None
    # straight-through: d loss / d score = d loss / d effective weight * weight, also for pruned weights
    assert int(torch.count_nonzero(layer.scores.grad * (1 - layer.mask))) > 0


def test_magnitude_mode_trains_the_kept_weights_and_masks_by_their_current_size():
    layer = SparseConv2d(4, 4, 3, padding=1)
    sparse.allocate(layer, 0.75)
    sparse.set_mode(layer, "magnitude")
    layer(torch.randn(2, 4, 8, 8)).square().sum().backward()
    assert layer.scores.grad is None and layer.weight.grad is not None
    assert torch.equal(layer.weight.grad != 0, layer.mask.bool())  # pruned weights get no gradient
    with torch.no_grad():
        smallest_kept = torch.where(layer.mask.bool(), layer.weight.abs(), torch.inf).argmin()
        dropped = torch.where(layer.mask.bool(), -torch.inf, layer.weight.abs()).argmax()
        layer.weight.view(-1)[dropped] = 10.0  # a dropped weight grows past every kept one
        layer(torch.randn(1, 4, 8, 8))
    assert layer.mask.view(-1)[dropped] == 1 and layer.mask.view(-1)[smallest_kept] == 0
    assert int(layer.mask.sum()) == layer.keep


def test_init_scores_follow_eq3_with_hydra_scale():
    layer = SparseConv2d(3, 5, 3)
    sparse.init_scores(layer)
    w = layer.weight.detach()
    expected = (6.0 / (3 * 9)) ** 0.5 * w / w.abs().max()
    torch.testing.assert_close(layer.scores.detach(), expected)


def test_masked_weights_stay_zero_through_sgd_with_momentum_and_weight_decay():
    layer = SparseLinear(20, 5)
    sparse.magnitude_masks(layer, 0.8)
    opt = torch.optim.SGD([layer.weight, layer.bias], lr=0.1, momentum=0.9, weight_decay=3e-4)
    for _ in range(5):
        opt.zero_grad()
        layer(torch.randn(4, 20)).square().sum().backward()
        opt.step()
    assert torch.all(layer.weight.detach()[layer.mask == 0] == 0)
    assert int(torch.count_nonzero(layer.weight.detach())) == int(layer.mask.sum())


def test_bake_gives_plain_layers_with_identical_outputs():
    model = nn.Sequential(SparseConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), SparseLinear(8 * 36, 4))
    sparse.magnitude_masks(model, 0.7)
    baked = sparse.bake(model)
    assert not list(sparse.sparse_layers(baked))
    assert type(baked[0]) is nn.Conv2d and type(baked[3]) is nn.Linear
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(baked(x), model(x))
    assert sparse.count_params(model) == (8 * 27 + 4 * 288, int(sum(l.mask.sum() for l in sparse.sparse_layers(model))))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        sparse.set_mode(SparseLinear(2, 2), "half")


def _small_network():
    from dass_edge.search.models import ModelSpec, build_model

    torch.manual_seed(0)
    return build_model(ModelSpec("darts-v2", 10, 1, 16, "custom", 3, 8))


@pytest.mark.parametrize("allocation", sparse.ALLOCATIONS)
def test_every_allocation_keeps_the_same_total_budget(allocation):
    model = _small_network()
    sparse.init_scores(model)
    kept = sparse.allocate(model, 0.99, allocation)
    total = sum(layer.weight.numel() for layer in sparse.sparse_layers(model))
    budget = sparse.kept_count(total, 0.99)
    # uniform rounds per layer and keeps one weight even where 1% is less; the others spend the total
    slack = len(kept) if allocation == "uniform" else len(kept) // 2
    assert abs(sum(kept.values()) - budget) <= slack
    assert all(1 <= keep <= layer.weight.numel() for keep, layer in zip(kept.values(), sparse.sparse_layers(model)))


def test_erk_keeps_small_layers_denser_than_large_ones():
    shapes = {"depthwise": (16, 1, 3, 3), "pointwise": (16, 16, 1, 1), "wide": (64, 64, 3, 3)}
    densities = sparse.erk_densities(shapes, 0.01)
    assert densities["depthwise"] > densities["pointwise"] > densities["wide"]
    kept = sum(densities[n] * torch.Size(s).numel() for n, s in shapes.items())
    assert kept == pytest.approx(0.01 * sum(torch.Size(s).numel() for s in shapes.values()))
    assert sparse.erk_densities(shapes, 0.9)["depthwise"] == 1.0  # capped, the rest re-solved


def test_global_allocation_follows_the_scores_across_layers():
    big, small = SparseLinear(10, 10), SparseLinear(10, 10)
    model = nn.ModuleList([big, small])
    big.scores.data.fill_(1.0)
    small.scores.data.fill_(0.01)
    kept = sparse.allocate(model, 0.9, "global")
    assert kept == {"0": 20, "1": 1}  # 20 of 200 weights, all where the scores are; never a layer with none


def test_ramped_keep_falls_from_dense_to_the_target():
    from dass_edge.search.algorithm import ramped_keep

    path = [ramped_keep(1000, 10, p / 10, 0.5) for p in range(11)]
    assert path[0] == 1000 and path[5:] == [10] * 6
    assert all(a >= b for a, b in zip(path, path[1:]))
    assert ramped_keep(1000, 10, 0.0, 0.0) == 10  # no ramp: the paper's one jump


@pytest.mark.parametrize("allocation", sparse.ALLOCATIONS)
def test_dense_input_keeps_the_stem_whole_within_the_same_total(allocation):
    model = _small_network()
    sparse.init_scores(model)
    plain = sparse.allocate(model, 0.9, allocation)
    kept = sparse.allocate(model, 0.9, allocation, dense_input=True)
    stem = next(sparse.sparse_layers(model))
    assert kept[next(iter(kept))] == stem.weight.numel() == stem.keep
    assert abs(sum(kept.values()) - sum(plain.values())) <= len(kept) // 2 + 1
    with pytest.raises(ValueError, match="dense input layer"):
        sparse.allocate(model, 0.9999, allocation, dense_input=True)


def _chain() -> nn.Sequential:
    """conv (1 -> 4) keeping one weight, so three of its outputs are BN constants, then a 1x1 conv whose
    highest scores all read those dead channels: a per-layer top-k spends its budget on them."""
    torch.manual_seed(0)
    model = nn.Sequential(SparseConv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          SparseConv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), SparseLinear(4, 3))
    first, second, head = sparse.sparse_layers(model)
    first.scores.data = torch.zeros_like(first.scores)
    first.scores.data[0, 0, 1, 1] = 1.0  # only output channel 0 reads the image
    second.scores.data = torch.ones_like(second.scores)
    second.scores.data[:, 0] = 0.1  # reading live channel 0 ranks lowest
    head.scores.data = torch.rand_like(head.scores)
    first.keep, second.keep, head.keep = 1, 4, 6
    return model


def test_connected_freeze_spends_the_budget_on_weights_that_read_live_channels():
    x = torch.randn(32, 1, 8, 8)
    plain, connected = _chain(), _chain()
    sparse.freeze_masks(plain)
    sparse.freeze_masks(connected, x)
    second = list(sparse.sparse_layers(connected))[1]
    assert second.mask[:, 0].sum() == 4 and second.mask.sum() == 4  # all four read the live channel
    assert list(sparse.sparse_layers(plain))[1].mask[:, 0].sum() == 0
    for model in (plain, connected):
        model.eval()
    with torch.no_grad():
        assert plain(x).std(0).max() < 1e-6  # cut: the same output for every image
        assert connected(x).std(0).max() > 1e-3
    assert all(layer.mode == "masked" for layer in sparse.sparse_layers(connected))
    assert sum(int(layer.mask.sum()) for layer in sparse.sparse_layers(connected)) == 1 + 4 + 6
