"""Data-parallel search and training with torch.distributed, one process per device, launched by torchrun.

``torchrun --standalone --nproc_per_node N -m dass_edge search ...`` starts N copies of the command and
gives each its RANK, WORLD_SIZE and LOCAL_RANK; ``init`` joins them into one process group (gloo on CPUs,
NCCL on GPUs) with a timeout, so a rank that dies or stops answering ends the job with an error, not a hang.
The training loop (search/algorithm.py) then takes a step that equals one process's step on the global
batch:

- every rank draws the same shuffled global batches (same seed) and keeps every N-th image (``shard``),
  as torch's DistributedSampler does, so the ranks see disjoint shards of the train and validation splits;
- each rank's loss is its share of the global mean (summed cross-entropy / global batch size) and the
  gradients of weights, scores and alphas are summed across ranks (``sum_gradients``);
- BatchNorm in training mode normalises with the statistics of the global batch (``data_parallel``), so
  the forward pass and the running statistics do not depend on how the batch was split;
- rank 0's parameters and buffers are broadcast when a step starts, as DistributedDataParallel does.

Everything after a step (top-k masks, BN re-estimation, the genotype) is computed by every rank from the
same tensors and the same full training split, so all ranks hold the same network. Only rank 0 writes
(checkpoint.save, the CLI's output); other ranks log warnings only. Without torchrun every function here is
a no-op and training runs in one process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from dass_edge.device import resolve_device
from dass_edge.errors import DistributedError

log = logging.getLogger(__name__)

TIMEOUT_ENV = "DASS_EDGE_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0  # the longest a rank waits for its peers in one collective
T = TypeVar("T")


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one process that writes files and prints results (True without torchrun)."""
    return rank() == 0


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if value <= 0:
        from dass_edge.errors import InputError
        raise InputError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def init(device: str = "auto") -> torch.device:
    """This process's training device; under torchrun, join the process group first (once per process).

    Returns cuda:LOCAL_RANK or the CPU. The backend follows the device: NCCL for GPUs, gloo for CPUs.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if launched() else None
    target = resolve_device(device, local_rank)
    if not launched() or dist.is_initialized():
        return target
    if target.type == "cuda":
        torch.cuda.set_device(target)
    backend = "nccl" if target.type == "cuda" else "gloo"
    with _collective("joining the process group"):
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()),
                                device_id=target if target.type == "cuda" else None)
    atexit.register(_shutdown)
    if not is_main():  # progress and results come from rank 0 only
        logging.getLogger("dass_edge").setLevel(logging.WARNING)
    log.info("rank %d of %d on %s (%s, timeout %.0f s)", rank(), world_size(), target, backend, timeout_s())
    return target


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """A failed collective (peer crashed, network gone, timeout) -> one DistributedError line."""
    try:
        yield
    except (RuntimeError, dist.DistError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DistributedError(f"rank {rank()} of {world_size()}: {what} failed (a peer crashed, hung past "
                               f"the {timeout_s():.0f} s timeout or is unreachable): {first}") from None


def shard(batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """This rank's share of every global batch, with the global batch's size: (x, y, global_n)."""
    r, n = rank(), world_size()
    for x, y in batches:
        yield (x, y, len(y)) if n == 1 else (x[r::n], y[r::n], len(y))


def _coalesced(tensors: Sequence[torch.Tensor], op: Callable[[torch.Tensor], None]) -> None:
    """Apply a collective to one flat buffer per dtype and copy the result back: one call, not hundreds."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        op(flat)
        offset = 0
        for t in group:
            t.data.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def sum_gradients(params: Sequence[nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over ranks (each rank's loss already carries its share of the mean)."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        with _collective("summing gradients"):
            _coalesced(grads, dist.all_reduce)


def all_sum(values: Sequence[float]) -> list[float]:
    """Sums over ranks of a few numbers (epoch loss, correct predictions, images seen)."""
    if not active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    with _collective("summing statistics"):
        dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_module(model: nn.Module) -> None:
    """Rank 0's parameters and buffers to every rank (DistributedDataParallel does the same at the start)."""
    if not active():
        return
    with _collective("broadcasting the model"):
        _coalesced([*model.parameters(), *model.buffers()], lambda flat: dist.broadcast(flat, 0))


def from_main(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0 and its result on every rank (e.g. whether to resume from a file only rank 0 sees)."""
    if not active():
        return compute()
    box: list[Any] = [compute() if is_main() else None]
    with _collective("sharing rank 0's decision"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _comm_device() -> torch.device:
    """NCCL moves CUDA tensors only; gloo takes CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@contextlib.contextmanager
def data_parallel(model: nn.Module) -> Iterator[None]:
    """For one training step: broadcast rank 0's model, then let every BatchNorm normalise with global-batch
    statistics until the step ends (the modules are put back as they were, with their updated buffers)."""
    if not active():
        yield
        return
    broadcast_module(model)
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, GlobalBatchNorm(child))
                swapped.append((parent, name, child))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


class GlobalBatchNorm(nn.Module):
    """A BatchNorm whose training-mode statistics are those of the global batch over all ranks.

    torch.nn.SyncBatchNorm does this on GPUs only (its kernels reject CPU tensors), so this one is written
    with plain tensor ops and all-reduces, for gloo and NCCL alike: one tested path on every device. In eval
    mode it is the wrapped BatchNorm unchanged.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        if not bn.training:
            return bn(x)
        out, mean, var, count = _GlobalBatchNormFn.apply(x, bn.weight, bn.bias, bn.eps)
        if bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
                unbiased = var * (count / (count - 1.0).clamp_min(1.0))
                bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
                bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.dtype), alpha=factor)
        return out


def _reduced(tensor: torch.Tensor) -> torch.Tensor:
    with _collective("synchronising BatchNorm statistics"):
        dist.all_reduce(tensor)
    return tensor


class _GlobalBatchNormFn(torch.autograd.Function):
    """Batch normalisation over the union of every rank's batch, in fp32; one all-reduce forward (the
    statistics) and one backward (the two per-channel sums the input gradient needs). Weight and bias gradients stay local (sum_gradients adds
    them up with every other parameter's)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):  # type: ignore[no-untyped-def, override]
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        # one all-reduce of (sum, sum of squares, count), in float64 so that E[x^2] - E[x]^2 loses nothing
        xd = xf.double()
        local = torch.cat([xd.sum(dims), xd.square().sum(dims), xd.new_tensor([xd.numel() / max(1, xd.shape[1])])])
        total = _reduced(local)
        channels = xf.shape[1]
        count = total[-1:]
        mean_d = total[:channels] / count
        var_d = (total[channels:-1] / count - mean_d.square()).clamp_min(0)
        mean, var, count = mean_d.float(), var_d.float(), count.float()
        invstd = torch.rsqrt(var + eps)
        xhat = (xf - mean.view(shape)) * invstd.view(shape)
        out = xhat if weight is None else xhat * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.count, ctx.dims, ctx.shape, ctx.dtype = float(count), dims, shape, x.dtype
        ctx.mark_non_differentiable(mean, var, count)
        return out.to(x.dtype), mean, var, count

    @staticmethod
    def backward(ctx, grad_out, _mean, _var, _count):  # type: ignore[no-untyped-def, override]
        xhat, invstd, weight = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        g = grad_out.float()
        grad_weight = grad_bias = grad_x = None
        if weight is not None:
            grad_weight, grad_bias = (g * xhat).sum(dims), g.sum(dims)
            g = g * weight.view(shape)
        if ctx.needs_input_grad[0]:
            sums = _reduced(torch.cat([g.sum(dims), (g * xhat).sum(dims)])) / ctx.count
            mean_g, mean_gx = sums.chunk(2)
            grad_x = ((g - mean_g.view(shape) - xhat * mean_gx.view(shape)) * invstd.view(shape)).to(ctx.dtype)
        return grad_x, grad_weight, grad_bias, None
