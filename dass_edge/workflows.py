"""Search and train as resumable jobs: the steps of search/algorithm.py with a checkpoint after each, the
output folder checked before the first and the run's expected duration said after its first batches.

This is the file-I/O edge above the pure training code; the CLI calls these functions and so can Python.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dass_edge import checkpoint as ckpt_io
from dass_edge import distributed
from dass_edge import health as health_check
from dass_edge.checkpoint import Checkpoint
from dass_edge.data.datasets import Dataset, load_dataset, search_split
from dass_edge.errors import InputError
from dass_edge.outputs import output_folder
from dass_edge.search import algorithm, sparse
from dass_edge.search.batchnorm import recalibrate_bn
from dass_edge.search.budget import PlannedStep, RunEstimate
from dass_edge.search.genotype import Genotype
from dass_edge.search.models import CELL_ARCHS, ModelSpec, build_model
from dass_edge.search.presets import Preset
from dass_edge.search.supernet import SearchNetwork

log = logging.getLogger(__name__)

CUSTOM = "custom"  # --variant: retrain a searched genotype at the preset's own size


@dataclass(frozen=True)
class DataChoice:
    name: str
    data_dir: str | None = None
    image_size: int | None = None  # None: the preset's

    def load(self, preset: Preset) -> Dataset:
        size = self.image_size or preset.image_size
        return load_dataset(self.name, self.data_dir, size).subset(preset.train_samples, preset.test_samples)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_sparsity(sparsity: float) -> float:
    if not 0.0 < sparsity < 1.0:
        raise InputError(f"sparsity must be in (0, 1), got {sparsity}")
    return sparsity


def _data_facts(data: Dataset, choice: DataChoice) -> dict[str, Any]:
    return {"name": data.name, "data_dir": choice.data_dir, "mean": list(data.mean), "std": list(data.std),
            "train_samples": len(data.x_train), "test_samples": len(data.x_test)}


def _settings(preset: Preset, seed: int, **extra: Any) -> dict[str, Any]:
    return {"preset": preset.to_dict(), "seed": seed, **extra}


def run_search(choice: DataChoice, preset: Preset, sparsity: float, out: Path, seed: int = 0,
               resume: bool = True, on_start: Callable[[], None] | None = None, device: str = "auto",
               amp: bool = False) -> Path:
    """DASS steps 1-2 on the supernet -> ``out/search.pt`` (genotype + pruned supernet).

    After each step a checkpoint is written (``search-pretrain.pt``, then ``search.pt``); with ``resume``
    a finished pretrain checkpoint for the same settings is picked up instead of being recomputed. ``out``
    is checked for writing before any training; ``on_start`` is called once the inputs are valid, just
    before the first step. Under torchrun every rank runs this (dass_edge.distributed); rank 0 decides on
    resuming and writes.
    """
    check_sparsity(sparsity)
    with output_folder(out):
        target = distributed.init(device)
        seed_everything(seed)
        data = choice.load(preset).to(target)
        c, h, _ = data.input_shape
        spec = ModelSpec("supernet", len(data.classes), c, h, "search", preset.search_cells, preset.search_channels)
        settings = _settings(preset, seed, sparsity=sparsity, amp=amp)
        train, val = search_split(data.x_train, data.y_train)
        pre_path = out / "search-pretrain.pt"
        common = dict(classes=data.classes, data=_data_facts(data, choice), settings=settings)
        pre_cfg, prune_cfg = preset.search_steps()

        pre = distributed.from_main(lambda: _resumable(pre_path, settings) if resume else None)
        plan = [PlannedStep.of("prune", prune_cfg, len(train[0]))]
        if pre is None:
            plan.insert(0, PlannedStep.of("pretrain", pre_cfg, len(train[0])))
        if on_start is not None:
            on_start()
        with algorithm.observe(RunEstimate(plan)):
            if pre is not None:
                log.info("resuming from %s", pre_path)
                net = pre.build().to(target)
                results = pre.results
            else:
                net = build_model(spec).to(target)
                assert isinstance(net, SearchNetwork)
                results = [asdict(algorithm.pretrain(net, train, val, pre_cfg, seed, amp))]
                ckpt_io.save(ckpt_io.from_model(net, _with_genotype(spec, net), 0.0, "pretrain", results=results,
                                                **common), pre_path)
            assert isinstance(net, SearchNetwork)
            results = results + [asdict(algorithm.prune(net, train, val, prune_cfg, sparsity, seed,
                                                         preset.allocation, amp))]
        accuracy = algorithm.evaluate(net, data.x_test, data.y_test)
        path = ckpt_io.save(ckpt_io.from_model(net, _with_genotype(spec, net), sparsity, "prune", results=results,
                                               test_accuracy=accuracy, **common), out / "search.pt")
    log.info("search done: genotype %s, supernet test accuracy %.4f", net.genotype().to_json(), accuracy)
    return path


def _resumable(path: Path, settings: dict[str, Any], spec: ModelSpec | None = None) -> Checkpoint | None:
    """The checkpoint at ``path`` if it was written by a run with these settings (and spec), else None."""
    if not path.is_file():
        return None
    found = ckpt_io.load(path)
    if found.settings != settings or (spec is not None and found.spec != spec):
        log.info("not resuming from %s: written with other settings", path)
        return None
    return found


def _with_genotype(spec: ModelSpec, net: SearchNetwork) -> ModelSpec:
    return replace(spec, genotype=net.genotype())


def resolve_arch(arch: str) -> tuple[str, Genotype | None, Checkpoint | None]:
    """``dass:PATH`` (genotype JSON or search checkpoint), or a baseline name -> (arch, genotype, search ckpt)."""
    if not arch.startswith("dass:"):
        if arch not in ("darts-v2", "mobilenet-v2", "resnet-18"):
            raise InputError(f"unknown architecture {arch!r}; use dass:GENOTYPE_JSON, darts-v2, mobilenet-v2 "
                             "or resnet-18")
        return arch, None, None
    source = Path(arch[len("dass:"):])
    if not source.is_file():
        raise InputError(f"genotype file {source} does not exist")
    if source.suffix == ".json":
        return "dass", Genotype.from_json(source.read_text()), None
    search = ckpt_io.load(source)
    if search.spec.arch != "supernet" or search.spec.genotype is None:
        raise InputError(f"{source} is not a search checkpoint")
    return "dass", search.spec.genotype, search


def run_train(arch: str, choice: DataChoice, preset: Preset, sparsity: float, out: Path,
              variant: str | None = None, seed: int = 0, resume: bool = True,
              on_start: Callable[[], None] | None = None, device: str = "auto", amp: bool = False) -> Path:
    """Step 3 for a DASS genotype or HYDRA pruning of a baseline -> ``out/<name>.pt``.

    Given a search checkpoint and no variant, the genotype's ops inherit the supernet's pruned weights and
    masks and are fine-tuned (Algorithm 1 exactly). Otherwise the network is built at the requested size and
    trained dense, pruned by scores and fine-tuned (the paper's retraining of transferred cells), with a
    checkpoint after pretrain (``<name>-pretrain.pt``) and after prune (``<name>-prune.pt``); with ``resume``
    the latest of them written with the same settings is picked up. ``out`` is checked before any training.
    """
    check_sparsity(sparsity)
    with output_folder(out):
        target = distributed.init(device)
        seed_everything(seed)
        name, genotype, search = resolve_arch(arch)
        data = choice.load(preset).to(target)
        spec = _train_spec(name, genotype, search, data, preset, variant, sparsity)
        inherited = spec.variant == "search"
        stem = f"{name}-{spec.variant}-{round(sparsity * 1000) / 10:g}"
        settings = _settings(preset, seed, sparsity=sparsity, arch=arch, amp=amp)
        common = dict(classes=data.classes, data=_data_facts(data, choice), settings=settings)
        train = (data.x_train, data.y_train)

        if inherited:
            model, results = _inherited(search, genotype, data, preset, seed, target), []
            plan = [PlannedStep.of("finetune", preset.finetune, len(train[0]))]
        else:
            model, results, plan = distributed.from_main(
                lambda: _resume_steps(out, stem, spec, settings, preset, len(train[0]), resume))
            model = model.to(target)
        if on_start is not None:
            on_start()
        with algorithm.observe(RunEstimate(plan)):
            for step in plan[:-1]:  # pretrain and prune, each followed by its checkpoint
                run = (algorithm.pretrain(model, train, None, preset.pretrain, seed, amp) if step.name == "pretrain"
                       else algorithm.prune(model, train, None, preset.prune, sparsity, seed, preset.allocation, amp))
                results.append(asdict(run))
                ckpt_io.save(ckpt_io.from_model(model, spec, sparsity if step.name == "prune" else 0.0, step.name,
                                                results=results, **common), out / f"{stem}-{step.name}.pt")
            results.append(asdict(algorithm.finetune(model, train, preset.finetune, seed, amp)))
        accuracy = algorithm.evaluate(model, data.x_test, data.y_test)
        health = _assess(model, data, stem)
        checkpoint = ckpt_io.from_model(model, spec, sparsity, "finetune", results=results, test_accuracy=accuracy,
                                        health=health.to_dict(), **common)
        log.info("%s: test accuracy %.4f, %d/%d non-zero", stem, accuracy, *reversed(sparse.count_params(model)))
        return ckpt_io.save(checkpoint, out / f"{stem}.pt")


def _train_spec(name: str, genotype: Genotype | None, search: Checkpoint | None, data: Dataset, preset: Preset,
                variant: str | None, sparsity: float) -> ModelSpec:
    """The network ``train`` builds: at the preset's size or --variant's, or (a search checkpoint without
    --variant) the supernet's own size, variant "search", whose weights and masks it then inherits."""
    c, h, _ = data.input_shape
    spec = ModelSpec(name, len(data.classes), c, h, "custom", preset.train_cells, preset.train_channels,
                     preset.width_of(name) if name not in CELL_ARCHS else 1.0, genotype)
    if variant not in (None, CUSTOM):
        return spec.with_variant(variant)
    if search is None or variant is not None:
        return spec
    if search.sparsity != sparsity:
        raise InputError(f"the search checkpoint was pruned at {search.sparsity}, not {sparsity}; "
                         "pass --variant to retrain at another sparsity")
    return replace(spec, variant="search", cells=search.spec.cells, channels=search.spec.channels)


def _inherited(search: Checkpoint, genotype: Genotype | None, data: Dataset, preset: Preset,
               seed: int, device: torch.device) -> torch.nn.Module:
    """The genotype's network with the supernet's pruned weights and masks, BN statistics re-estimated on
    ``device``, where the data already is."""
    supernet = search.build()
    assert isinstance(supernet, SearchNetwork) and genotype is not None
    model = algorithm.inherit(supernet, genotype).to(device)
    recalibrate_bn(model, data.x_train, preset.finetune.batch_size, seed)
    return model


def _resume_steps(out: Path, stem: str, spec: ModelSpec, settings: dict[str, Any], preset: Preset, n_train: int,
                  resume: bool) -> tuple[torch.nn.Module, list[dict[str, Any]], list[PlannedStep]]:
    """(model, results so far, steps still to run) for a network trained dense -> pruned -> fine-tuned: from
    the latest step checkpoint in ``out`` written with the same settings, else from a fresh network."""
    steps = [PlannedStep.of(step, getattr(preset, step), n_train) for step in ("pretrain", "prune", "finetune")]
    for done in (2, 1) if resume else ():
        found = _resumable(out / f"{stem}-{steps[done - 1].name}.pt", settings, spec)
        if found is not None:
            log.info("resuming after the %s step from %s", found.step, out)
            return found.build(), list(found.results), steps[done:]
    return build_model(spec), [], steps


def _assess(model: torch.nn.Module, data: Dataset, what: str) -> health_check.Health:
    """Whether the trained network's output depends on its input; a dead one is kept but loudly flagged."""
    health = health_check.assess(model, data.x_test[:32])
    if not health.input_dependent:
        log.warning("%s: the trained network's output does not depend on its input (alive MACs %s); export and "
                    "bench will refuse it", what, "unknown" if health.alive_mac_share is None
                    else f"{health.alive_mac_share:.1%}")
    return health
