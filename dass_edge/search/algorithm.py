"""The three steps of DASS (Algorithm 1): pretrain, prune, fine-tune. Pure training code: no file I/O.

Each step alternates first-order gradient steps. When the model has architecture weights (the supernet),
pretrain and prune also take an alpha step on the validation split after every weight/score step; on a
fixed architecture the same functions are plain HYDRA training (dense -> score pruning -> fine-tuning).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dass_edge import distributed
from dass_edge.device import Precision, model_device
from dass_edge.errors import InputError
from dass_edge.search import sparse
from dass_edge.search.batchnorm import recalibrate_bn
from dass_edge.search.genotype import Genotype
from dass_edge.search.network import Network
from dass_edge.search.ops import PRIMITIVES
from dass_edge.search.supernet import SearchNetwork

log = logging.getLogger(__name__)

Split = tuple[torch.Tensor, torch.Tensor]
PRUNE_RANKS = ("scores", "magnitude")
CONNECT_IMAGES = 256  # enough for every channel that varies with the input to vary in the batch

# Told after every batch: (step, batches done, batches planned, seconds since the step began). A context
# variable, so the steps keep their signatures and an observer (search/budget.py) is local to its run.
Progress = Callable[[str, int, int, float], None]
_progress: ContextVar[Progress | None] = ContextVar("progress", default=None)


@contextlib.contextmanager
def observe(callback: Progress) -> Iterator[None]:
    """Call ``callback`` after every training batch of the steps run inside this block."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


@dataclass(frozen=True)
class StepConfig:
    """Hyper-parameters of one step (Section 6.1 defaults). ``max_batches`` caps an epoch for small presets."""

    epochs: int
    lr: float
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    max_batches: int | None = None
    ramp: float = 0.0  # prune only: share of the step over which sparsity rises from 0 to its target
    connected: bool = False  # prune only: final masks among weights that read live channels (sparse.freeze_masks)
    dense_input: bool = False  # prune only: the stem kept whole within the same total (sparse.allocate)

    # prune only: what picks the masks. "scores": HYDRA scores learned on frozen weights (the paper's);
    # "magnitude": the weights keep training (at ``lr``) and each mask is the top-k of |w| (see prune()).
    rank: str = "scores"

    def __post_init__(self) -> None:
        if self.rank not in PRUNE_RANKS:
            raise InputError(f"unknown prune rank {self.rank!r}; known: {', '.join(PRUNE_RANKS)}")

    def batches_per_epoch(self, n: int) -> int:
        full = math.ceil(n / self.batch_size)
        return min(full, self.max_batches) if self.max_batches else full


@dataclass
class StepResult:
    step: str
    epochs: int
    seconds: float
    batches: int
    loss: float
    train_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_batch(self) -> float:
        return self.seconds / max(1, self.batches)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Split]:
    """Shuffled mini-batches, repeated forever (the caller decides how many make an epoch)."""
    while True:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]



def _arch_params(model: nn.Module) -> list[nn.Parameter]:
    return model.arch_parameters() if isinstance(model, SearchNetwork) else []


def _sgd(params: list[nn.Parameter], cfg: StepConfig, lr: float) -> tuple[torch.optim.Optimizer, object]:
    opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))


def _run(step: str, model: nn.Module, params: list[nn.Parameter], train: Split, val: Split | None,
         cfg: StepConfig, seed: int, before_batch: Callable[[float], None] | None = None,
         amp: bool = False) -> StepResult:
    """The loop every step shares: a step on ``params`` with L_train, then (supernet) one on alpha with L_val.

    ``before_batch`` is told how far through the step the next batch is, in [0, 1). Under torchrun each
    rank trains on its shard of every global batch with gradients and BN statistics of the whole batch
    (dass_edge.distributed); ``amp`` computes in mixed precision (off by default).
    """
    with distributed.data_parallel(model):
        return _loop(step, model, params, train, val, cfg, seed, before_batch, Precision(model_device(model), amp))


def _loop(step: str, model: nn.Module, params: list[nn.Parameter], train: Split, val: Split | None,
          cfg: StepConfig, seed: int, before_batch: Callable[[float], None] | None, precision: Precision
          ) -> StepResult:
    gen = torch.Generator().manual_seed(seed)
    opt, sched = _sgd(params, cfg, cfg.lr)
    scaler, arch_scaler = precision.scaler(), precision.scaler()
    alphas = _arch_params(model) if val is not None else []
    arch_opt = (torch.optim.Adam(alphas, lr=cfg.arch_lr, betas=(0.5, 0.999), weight_decay=cfg.arch_weight_decay)
                if alphas else None)
    train_iter = distributed.shard(batches(*train, cfg.batch_size, gen))
    val_iter = distributed.shard(batches(*val, cfg.batch_size, gen)) if arch_opt else itertools.repeat(None)
    n_batches = cfg.batches_per_epoch(len(train[0]))
    result = StepResult(step, cfg.epochs, 0.0, 0, float("nan"), float("nan"))
    progress = _progress.get()
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.epochs), desc=step, unit="epoch", leave=False,
               disable=None if distributed.is_main() else True)  # no bar off a terminal or off rank 0
    for epoch in bar:
        loss_sum = correct = seen = 0.0
        for _ in range(n_batches):
            if before_batch is not None:
                before_batch(result.batches / (cfg.epochs * n_batches))
            x, y, n_global = next(train_iter)
            for p in alphas:
                p.requires_grad_(False)
            with precision.autocast():
                logits = model(x)
                loss = _share_of_mean_loss(logits, y, n_global)
            opt.zero_grad(set_to_none=True)
            _step(opt, scaler, loss, params, cfg.grad_clip)
            for p in alphas:
                p.requires_grad_(True)
            batch_val = next(val_iter)
            if arch_opt is not None:
                _arch_step(model, arch_opt, arch_scaler, params, batch_val, precision)
            loss_sum += loss.item() * n_global
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
            result.batches += 1
            if progress is not None:
                progress(step, result.batches, cfg.epochs * n_batches, time.perf_counter() - start)
        sched.step()
        loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen])
        result.loss, result.train_accuracy = loss_sum / seen, correct / seen
        result.history.append({"epoch": epoch + 1, "loss": result.loss, "train_accuracy": result.train_accuracy})
        bar.set_postfix(loss=f"{result.loss:.3f}", acc=f"{result.train_accuracy:.3f}")
        log.info("%s epoch %d/%d: loss %.4f, train accuracy %.4f", step, epoch + 1, cfg.epochs,
                 result.loss, result.train_accuracy)
    result.seconds = time.perf_counter() - start
    return result


def _share_of_mean_loss(logits: torch.Tensor, y: torch.Tensor, n_global: int) -> torch.Tensor:
    """This rank's part of the global batch's mean cross-entropy; the parts sum to the mean (one process:
    the mean itself), so summed gradients are the global batch's, however unevenly the batch was split."""
    return F.cross_entropy(logits.float(), y, reduction="sum") / n_global


def _step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
          params: list[nn.Parameter], grad_clip: float | None) -> None:
    """Backward, sum gradients over ranks, clip the global gradient, step (loss-scaled under fp16)."""
    scaler.scale(loss).backward()
    distributed.sum_gradients(params)
    scaler.unscale_(opt)
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()


def _arch_step(model: nn.Module, arch_opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               frozen: list[nn.Parameter], batch: tuple[torch.Tensor, torch.Tensor, int], precision: Precision
               ) -> None:
    """First-order alpha step on L_val; the weights/scores just trained stay fixed."""
    for p in frozen:
        p.requires_grad_(False)
    x, y, n_global = batch
    arch_opt.zero_grad(set_to_none=True)
    with precision.autocast():
        loss = _share_of_mean_loss(model(x), y, n_global)
    _step(arch_opt, scaler, loss, [p for group in arch_opt.param_groups for p in group["params"]], None)
    for p in frozen:
        p.requires_grad_(True)


def _weights(model: nn.Module) -> list[nn.Parameter]:
    arch = {id(p) for p in _arch_params(model)}
    return [p for name, p in model.named_parameters() if id(p) not in arch and not name.endswith("scores")]


def pretrain(model: nn.Module, train: Split, val: Split | None, cfg: StepConfig, seed: int = 0,
             amp: bool = False) -> StepResult:
    """Step 1 (Eq. 6): dense weights on L_train, alternating with alpha on L_val when searching."""
    sparse.set_mode(model, "dense")
    return _run("pretrain", model, _weights(model), train, val, cfg, seed, amp=amp)


def prune(model: nn.Module, train: Split, val: Split | None, cfg: StepConfig, sparsity: float,
          seed: int = 0, allocation: sparse.Allocation = "uniform", amp: bool = False) -> StepResult:
    """Step 2 (Eq. 7): learn pruning scores (weights frozen) through the top-k mask, alternating with alpha
    on L_val of the masked network; ends with every mask fixed at the top-k of its scores (with
    ``cfg.connected``, among weights that read live channels, judged on CONNECT_IMAGES training images) and
    BatchNorm statistics re-estimated for the pruned network.

    With ``cfg.rank == "magnitude"`` the weights train instead of the scores and every mask is the top-k of
    |w| (gradual magnitude pruning when ``cfg.ramp`` is set). In a short budget HYDRA's scores barely move
    from their magnitude initialisation, so the prune step is magnitude pruning of frozen weights: at
    99% the cell networks of the quick preset fall to chance by the ramp's end and fine-tuning starts from
    there. Weights that keep training while the mask tightens adapt to it (docs/training.md).
    """
    by_magnitude = cfg.rank == "magnitude"
    sparse.init_scores(model)
    sparse.allocate(model, sparsity, allocation, cfg.dense_input)
    sparse.set_mode(model, "magnitude" if by_magnitude else "prune", sparsity)
    layers = list(sparse.sparse_layers(model))
    targets = [layer.keep for layer in layers]
    trained = _weights(model) if by_magnitude else [layer.scores for layer in layers]
    frozen = [] if by_magnitude else _weights(model)
    for p in frozen:
        p.requires_grad_(False)

    def ramp(progress: float) -> None:
        for layer, keep in zip(layers, targets):
            layer.keep = ramped_keep(layer.weight.numel(), keep, progress, cfg.ramp)

    try:
        result = _run("prune", model, trained, train, val, cfg, seed, ramp if cfg.ramp > 0 else None, amp)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for layer, keep in zip(layers, targets):
            layer.keep = keep
    if by_magnitude:
        sparse.init_scores(model)  # within a layer they rank as |w| does: the masks fixed below are |w|'s
    sparse.freeze_masks(model, train[0][:CONNECT_IMAGES] if cfg.connected else None)
    recalibrate_bn(model, train[0], cfg.batch_size, seed)
    return result


def finetune(model: nn.Module, train: Split, cfg: StepConfig, seed: int = 0, amp: bool = False) -> StepResult:
    """Step 3 (Eq. 8): SGD on the non-zero weights with every mask fixed; BN statistics re-estimated at the end."""
    sparse.set_mode(model, "masked")
    result = _run("finetune", model, _weights(model), train, None, cfg, seed, amp=amp)
    recalibrate_bn(model, train[0], cfg.batch_size, seed)
    return result


def ramped_keep(numel: int, keep: int, progress: float, ramp: float) -> int:
    """Weights kept at ``progress`` through a prune step whose sparsity rises over its first ``ramp`` share.

    The cubic schedule of Zhu & Gupta (2017): pruning fast while much is left and slowly near the target.
    Jumping straight to 99% cuts every path of a narrow network at once; its output then no longer depends
    on the input, no gradient reaches the scores and the step cannot recover (train accuracy stays at chance).
    """
    if ramp <= 0 or progress >= ramp:
        return keep
    done = 1.0 - (1.0 - progress / ramp) ** 3
    return max(keep, round(numel - (numel - keep) * done))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in [0, 1]."""
    model.eval()
    correct = sum(int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / max(1, len(x))


def inherit(supernet: SearchNetwork, genotype: Genotype) -> Network:
    """The discrete network of ``genotype`` at the supernet's size, with the chosen ops' pruned weights and
    masks copied from the supernet: step 3 starts from theta*_pre masked by m-hat, not from scratch."""
    cfg = supernet.config
    net = Network(genotype, cfg["c"], cfg["layers"], cfg["num_classes"], cfg["in_channels"], cfg["stem_multiplier"])
    net.stem.load_state_dict(supernet.stem.state_dict())
    net.classifier.load_state_dict(supernet.classifier.state_dict())
    for c, (cell, search_cell) in enumerate(zip(net.cells, supernet.cells)):
        _load_inherited(cell.preprocess, search_cell.preprocess, f"cell {c} preprocessing")
        edges = genotype.reduce if cell.reduction else genotype.normal
        for k, (name, node) in enumerate(edges):
            step = k // 2
            edge_index = sum(i + 2 for i in range(step)) + node
            source = search_cell.edges[edge_index].ops[PRIMITIVES.index(name)]
            if "pool" in name:
                continue  # no parameters (the supernet's extra BN on pools is dropped, as in DARTS)
            _load_inherited(cell.ops[k], source, f"cell {c} edge {k} ({name})")
    for layer in sparse.sparse_layers(net):
        layer.sparsity = next(sparse.sparse_layers(supernet)).sparsity
    sparse.set_mode(net, "masked")
    return net


def _load_inherited(target: nn.Module, source: nn.Module, what: str) -> None:
    """Copy ``source``'s weights, masks and BN statistics into ``target``, refusing any mismatch.

    The supernet's BatchNorms are affine-free (DARTS searches with affine=False) while the derived network's
    are affine: their weight and bias are the one thing allowed to be missing, and their initial 1 and 0 make
    the inherited op compute exactly what the supernet's did. Any other missing or unexpected key, or a
    shape that differs, means the op does not match and raises InputError naming it.
    """
    affine = {f"{name}.{param}".lstrip(".") for name, m in target.named_modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine for param in ("weight", "bias")}
    try:
        keys = target.load_state_dict(source.state_dict(), strict=False)
    except RuntimeError as exc:
        raise InputError(f"cannot inherit {what}: {str(exc).splitlines()[-1].strip()}") from None
    wrong = sorted(set(keys.missing_keys) - affine) + sorted(keys.unexpected_keys)
    if wrong:
        raise InputError(f"cannot inherit {what}: keys that do not match the supernet's op: {', '.join(wrong)}")
