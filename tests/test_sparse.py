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
    sparse.set_mode(layer, "prune", 0.75)
    layer(torch.randn(2, 4, 8, 8)).square().sum().backward()
    assert layer.weight.grad is None
    assert layer.scores.grad is not None
    # straight-through: d loss / d score = d loss / d effective weight * weight, also for pruned weights
    assert int(torch.count_nonzero(layer.scores.grad * (1 - layer.mask))) > 0


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
