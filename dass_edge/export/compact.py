"""Compaction before export: the public entry point. See docs/compaction.md for how and why it is exact."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import fx, nn

from dass_edge.compact.liveness import kept_channels, needed_channels, varying_channels
from dass_edge.compact.rebuild import Rebuilder
from dass_edge.compact.stats import count_macs, count_nonzero_weights, count_stored
from dass_edge.compact.trace import classify, prepare
from dass_edge.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactResult:
    """The compact network and what compaction saved (counts on BN-folded graphs, MACs at batch 1)."""

    model: fx.GraphModule
    params_before: int
    params_after: int
    nonzero_params: int
    macs_before: int
    macs_after: int


def compact_model(model: nn.Module, input_shape: tuple[int, ...], channel_multiple: int = 1) -> CompactResult:
    """Remove channels that never vary or are never read, exactly (same outputs within float32 rounding).

    ``model`` is a masked model in eval mode (sparse layers in "masked" mode) or a baked one.
    ``channel_multiple`` rounds every free channel count up to a multiple (zero channels fill the gap),
    for runtimes whose kernels prefer aligned channel counts. The input and output keep their shapes.
    """
    if channel_multiple < 1:
        raise InputError(f"channel_multiple must be at least 1, got {channel_multiple}")
    if model.training:
        raise InputError("compaction needs a model in eval mode (BatchNorm uses its running statistics)")
    shape = (1, *input_shape[1:])
    traced = prepare(model, shape)
    modules = dict(traced.named_modules())
    nodes = list(traced.graph.nodes)
    kinds = {node: classify(node, modules) for node in nodes}
    varying = varying_channels(nodes, kinds, modules)
    needed = needed_channels(nodes, kinds, modules)
    kept = kept_channels(nodes, kinds, varying, needed, channel_multiple)
    with torch.no_grad():
        compact = Rebuilder(traced, kinds, varying, kept).build().eval()
    result = CompactResult(
        model=compact,
        params_before=count_stored(traced),
        params_after=count_stored(compact),
        nonzero_params=count_nonzero_weights(traced),
        macs_before=count_macs(traced, shape),
        macs_after=count_macs(compact, shape),
    )
    log.info("compacted: params %d -> %d, MACs %d -> %d (channel multiple %d)", result.params_before,
             result.params_after, result.macs_before, result.macs_after, channel_multiple)
    return result
