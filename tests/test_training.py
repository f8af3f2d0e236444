"""Training at high sparsity: BatchNorm statistics that match the pruned network, per-step overrides."""

import copy

import pytest
import torch
from typer.testing import CliRunner

from dass_edge import checkpoint
from dass_edge.cli.app import app
from dass_edge.data.datasets import load_dataset
from dass_edge.search import algorithm, sparse
from dass_edge.search.algorithm import StepConfig
from dass_edge.search.batchnorm import recalibrate_bn
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.search.presets import get_preset

runner = CliRunner()


@torch.no_grad()
def _accuracy(model, x, y, train_mode: bool) -> float:
    model = copy.deepcopy(model).train(train_mode)  # train mode: batch statistics, the ones pruning saw
    return float((model(x).argmax(1) == y).float().mean())


def test_a_freshly_pruned_network_scores_in_eval_mode_what_it_scores_in_train_mode():
    data = load_dataset("mnist5k").subset(768, 0)
    x, y = data.x_train, data.y_train
    torch.manual_seed(0)
    model = build_model(ModelSpec("darts-v2", 10, 1, 32, "custom", 3, 8))
    algorithm.pretrain(model, (x, y), None, StepConfig(2, 0.05, batch_size=64))
    algorithm.prune(model, (x, y), None, StepConfig(1, 0.1, batch_size=64, ramp=0.5), 0.9, allocation="erk")
    train_mode = _accuracy(model, x[:512], y[:512], True)
    assert train_mode > 0.15  # the pruned network does classify (chance is 0.1)
    assert abs(_accuracy(model, x[:512], y[:512], False) - train_mode) < 0.08
    # the statistics are an exact average over the pruned network, not the pretrained ones
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.momentum == 0.1 and bn.num_batches_tracked > 0


def test_a_magnitude_prune_step_keeps_a_network_that_classifies_where_frozen_scores_do_not():
    """At high sparsity and a short budget HYDRA's scores barely move from the pretrained magnitudes and the
    frozen weights cannot carry the cut network; weights that keep training while the mask tightens can."""
    data = load_dataset("mnist5k", image_size=16).subset(1024, 0)
    x, y = data.x_train, data.y_train
    torch.manual_seed(0)
    model = build_model(ModelSpec("darts-v2", 10, 1, 16, "custom", 3, 8))
    algorithm.pretrain(model, (x, y), None, StepConfig(2, 0.05, batch_size=64))
    accuracy = {}
    for rank in ("scores", "magnitude"):
        pruned = copy.deepcopy(model)
        algorithm.prune(pruned, (x, y), None, StepConfig(3, 0.05, batch_size=64, ramp=0.5, rank=rank), 0.95,
                        allocation="erk")
        accuracy[rank] = algorithm.evaluate(pruned, x[:512], y[:512])
        layers = list(sparse.sparse_layers(pruned))
        assert sum(int(layer.mask.sum()) for layer in layers) == sum(layer.keep for layer in layers)
        trained = any(not torch.equal(layer.weight * layer.mask, pre.weight * layer.mask)
                      for layer, pre in zip(layers, sparse.sparse_layers(model)))
        assert trained == (rank == "magnitude")
    assert accuracy["magnitude"] > accuracy["scores"] + 0.05, accuracy


def test_recalibration_gives_constant_channels_a_safe_variance():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1, bias=False), torch.nn.BatchNorm2d(2))
    model[0].weight.data[1] = 0.0  # channel 1 is pruned away: exactly zero for every input
    recalibrate_bn(model, torch.randn(64, 1, 4, 4), batch_size=16)
    var = model[1].running_var
    assert var[0] > 0.01 and var[1] == 1.0
    model.eval()
    assert torch.all(model(torch.randn(3, 1, 4, 4))[:, 1] == model[1].bias[1])


def test_cli_step_overrides_are_recorded_in_the_checkpoint(tmp_path):
    result = runner.invoke(app, ["train", "--arch", "darts-v2", "--preset", "smoke", "--sparsity", "0.9",
                                 "--epochs", "1,1,2", "--batch-size", "64,128,64", "--allocation", "erk",
                                 "--prune-by", "magnitude",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    saved = checkpoint.load(tmp_path / "darts-v2-custom-90.pt")
    preset = saved.settings["preset"]
    assert [preset[s]["epochs"] for s in ("pretrain", "prune", "finetune")] == [1, 1, 2]
    assert [preset[s]["batch_size"] for s in ("pretrain", "prune", "finetune")] == [64, 128, 64]
    assert preset["allocation"] == "erk" and preset["finetune"]["max_batches"] is None
    assert preset["prune"]["rank"] == "magnitude" and preset["pretrain"]["rank"] == "scores"
    assert [r["batches"] for r in saved.results] == [4, 2, 8]  # whole epochs of the 256 smoke images


@pytest.mark.parametrize("args, message", [
    (["--epochs", "1,2"], "--epochs must be one positive integer or three"),
    (["--batch-size", "0"], "--batch-size must be one positive integer or three"),
    (["--allocation", "random"], "unknown allocation 'random'"),
    (["--prune-by", "luck"], "unknown prune rank 'luck'"),
])
def test_bad_overrides_fail_in_one_line(args, message):
    result = runner.invoke(app, ["train", "--arch", "darts-v2", "--preset", "smoke", *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {result.stderr.strip()[7:]}" and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_batch_cap_survives_an_epoch_override():
    """search_bench times a few batches per step: whole epochs (the override's default) unless capped."""
    quick = get_preset("quick")
    capped = quick.with_overrides(epochs=(1, 1, 1), max_batches=10)
    steps = (capped.pretrain, capped.prune, capped.finetune, *capped.search_steps())
    assert all((cfg.epochs, cfg.max_batches) == (1, 10) for cfg in steps)
    assert quick.with_overrides(epochs=(1, 1, 1)).search_steps()[0].max_batches is None
    assert (capped.finetune.lr, capped.prune.ramp, capped.image_size) == (quick.finetune.lr, quick.prune.ramp, 16)
