"""Shared fixtures: trained smoke checkpoints (real training on bundled MNIST), the same made alive where
training left them dead, tiny alive and dead checkpoints, and the side environments."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from dass_edge import checkpoint
from dass_edge.compact.masks import connected_masks
from dass_edge.search.models import ModelSpec, build_model
from dass_edge.search.presets import PRESETS
from dass_edge.workflows import DataChoice, run_search, run_train

ROOT = Path(__file__).resolve().parent.parent

# One intra-op thread: with two, torch's OpenMP workers spin against every other process on a 2-core
# machine and small-model training slowed down tenfold when anything else ran beside the tests.
torch.set_num_threads(int(os.environ.get("DASS_EDGE_TEST_THREADS", "1")))


def without_c(name: str):
    """A shipped target minus the generated C beside its main file: for tests about the other formats, which
    then skip the C build and its qemu check (the C export has tests of its own)."""
    from dass_edge.targets import get_target

    target = get_target(name)
    return replace(target, extra_formats=tuple(f for f in target.extra_formats if f != "c"))


def side_python(name: str) -> Path:
    """The interpreter of a side environment built by .ci/sideenvs.sh; CI fails where one is missing."""
    python = ROOT / ".sideenvs" / name / "bin" / "python"
    if not python.exists():
        message = f"side environment {name} missing: run bash .ci/sideenvs.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def smoke_search(tmp_path_factory) -> Path:
    """A DASS search checkpoint (supernet pruned to 90%) from the smoke preset on mnist5k."""
    return run_search(DataChoice("mnist5k"), PRESETS["smoke"], 0.9, tmp_path_factory.mktemp("search"), seed=0)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, smoke_search):
    """Factory: ``trained_checkpoint(arch, sparsity=0.9)`` -> a fine-tuned smoke checkpoint (cached)."""
    cache: dict[tuple[str, float], Path] = {}

    def make(arch: str, sparsity: float = 0.9) -> Path:
        key = (arch, sparsity)
        if key not in cache:
            name = f"dass:{smoke_search}" if arch == "dass" and sparsity == 0.9 else arch
            if arch == "dass" and sparsity != 0.9:
                raise ValueError("the smoke search is pruned at 0.9")
            cache[key] = run_train(name, DataChoice("mnist5k"), PRESETS["smoke"], sparsity,
                                   tmp_path_factory.mktemp("train"))
        return cache[key]

    return make


@pytest.fixture(scope="session")
def learned_checkpoint(tmp_path_factory) -> Path:
    """A network that has learned (sparse ResNet-18 at 90%, about 95% on 256 test digits, 15 s of training):
    tests that judge an export by its predictions need answers that are not chance."""
    from dass_edge.search.presets import StepConfig

    preset = replace(PRESETS["smoke"], name="learned", pretrain=StepConfig(2, 0.05, batch_size=32),
                         prune=StepConfig(1, 0.05, batch_size=32, ramp=0.7),
                         finetune=StepConfig(2, 0.05, batch_size=32), train_samples=2000, test_samples=256,
                         image_size=16)
    path = run_train("resnet-18", DataChoice("mnist5k"), preset, 0.9, tmp_path_factory.mktemp("learned"))
    assert checkpoint.load(path).test_accuracy > 0.8
    return path


def recalibrated(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """The same weights and masks with BatchNorm statistics re-estimated on random data, in eval mode.

    A smoke-trained network can answer every input alike (activations fade through many blocks): a dead
    network, which export and bench rightly refuse. Fresh statistics restore outputs that move with the
    input, so comparisons with it mean something.
    """
    from dass_edge.search.batchnorm import recalibrate_bn

    generator = torch.Generator().manual_seed(0)
    recalibrate_bn(model, torch.randn((64, *input_shape[1:]), generator=generator), batch_size=16)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        # Near-dead channels (variance 1e-8..1e-3) folded into convs as 1/sqrt(var + eps) make FP16 rounding
        # errors above the targets' tolerance; trained statistics show the same (see FP16_TINY_VARIANCE).
        bn.running_var.clamp_(min=1e-2)
    return model.eval()


@pytest.fixture(scope="session")
def live_checkpoint(tmp_path_factory, trained_checkpoint):
    """Factory: ``live_checkpoint(arch)`` -> the smoke checkpoint at 90% if its output depends on its input,
    else the same weights and masks with recalibrated BatchNorm (saved under the same file name elsewhere,
    its health re-assessed; asserted alive). For tests whose subject is an alive network's export."""
    from dass_edge.export.pipeline import checkpoint_health

    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            path = trained_checkpoint(arch)
            ckpt = checkpoint.load(path)
            if not checkpoint_health(ckpt).input_dependent:
                model = recalibrated(ckpt.build(), ckpt.input_shape)
                ckpt = checkpoint.from_model(model, ckpt.spec, ckpt.sparsity, ckpt.step, classes=ckpt.classes,
                                             data=ckpt.data, settings=ckpt.settings, results=ckpt.results,
                                             test_accuracy=ckpt.test_accuracy)
                health = checkpoint_health(ckpt, model)
                assert health.input_dependent, health
                path = checkpoint.save(replace(ckpt, health=health.to_dict()),
                                       tmp_path_factory.mktemp("live") / path.name)
            cache[arch] = path
        return cache[arch]

    return make


def tiny_network(dead: bool) -> tuple[nn.Module, ModelSpec]:
    """A 3-cell DARTS-V2 for 1x32x32 digits, masked at 90% with connected masks (alive). ``dead``: the stem's
    mask is all zeros, the only path from the input cut; its BatchNorm shift is all the cells ever see."""
    spec = ModelSpec("darts-v2", num_classes=10, in_channels=1, cells=3, channels=4)
    torch.manual_seed(0)
    model = build_model(spec)
    connected_masks(model, 0.9, (1, 1, 32, 32))
    if dead:
        stem = model.stem[0]
        stem.mask.zero_()
        stem.weight.data.zero_()
    return model.eval(), spec


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """{"alive": path, "dead": path}: tiny_network checkpoints on mnist5k (the export's parity check then
    also runs real digits), without a stored health record, so it is assessed where it is needed."""
    folder = tmp_path_factory.mktemp("tiny")
    paths = {}
    for state in ("alive", "dead"):
        model, spec = tiny_network(state == "dead")
        ckpt = checkpoint.from_model(model, spec, 0.9, "finetune", classes=tuple("0123456789"),
                                     data={"name": "mnist5k"})
        paths[state] = checkpoint.save(ckpt, folder / f"tiny-{state}.pt")
    return paths


# Scheduling on two pytest-xdist workers (README: -n 2): tests are dealt out one at a time, the longest files
# first, so that neither worker ends with one of them alone. Module fixtures then run once per worker. (With
# --dist loadfile the paired-gate tests shared their core with a whole export file for minutes, and the gate
# called the same model against itself inconclusive once; pytest-xdist 3.8 ignores xdist_group under pytest 9.)
LONGEST = ("test_demo.py", "test_end_to_end.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST)))  # stable: the rest keep their order
