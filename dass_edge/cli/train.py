"""`dass-edge search` (DASS steps 1-2) and `dass-edge train` (step 3, or HYDRA pruning of a baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from dass_edge.cli.options import (Allocation, Amp, BatchSize, Data, DataDir, Device, Epochs, Fresh, JsonFlag,
                                   OutDir, Preset, PruneBy, Seed, Sparsity, emit)

if TYPE_CHECKING:
    from dass_edge.search.presets import Preset as Schedule

# torch and the training code are imported inside the commands so that `dass-edge --help` stays fast.


def _print_summary(result: dict[str, Any]) -> None:
    console = Console()
    accuracy = result["test_accuracy"]
    shown = "unknown" if accuracy is None else f"{accuracy:.2%}"
    console.print(f"[bold]{result['arch']}[/] ({result['variant']}) at sparsity {result['sparsity']:g}: "
                  f"{result['nonzero_params']:,}/{result['params']:,} weights non-zero, test accuracy {shown}")
    if "genotype" in result:
        console.print(f"genotype: {result['genotype']}")
    console.print(f"checkpoint: {result['checkpoint']}")


def _report(path: Path, as_json: bool) -> None:
    """The checkpoint's summary on stdout, once: under torchrun from rank 0 (the rank that wrote it)."""
    from dass_edge import checkpoint, distributed

    if distributed.is_main():
        emit(checkpoint.summary(checkpoint.load(path), path), as_json, _print_summary)


def _schedule(preset: str | None, epochs: str | None, batch_size: str | None, allocation: str | None,
              prune_by: str | None, device: str) -> tuple[Schedule, str | None]:
    """The schedule to run, and a note to print when it was chosen for this machine (no --preset)."""
    from dass_edge.device import resolve_device
    from dass_edge.search.budget import default_preset
    from dass_edge.search.presets import PRESETS, get_preset, parse_per_step

    note = None
    if preset is None:
        device = resolve_device(device).type
        preset = default_preset(device)
        others = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values() if p.name != preset)
        note = (f"no --preset given, training on the {device}: using --preset {preset} "
                f"({PRESETS[preset].description}). Other presets: {others}")
    schedule = get_preset(preset).with_overrides(
        parse_per_step(epochs, "--epochs") if epochs else None,
        parse_per_step(batch_size, "--batch-size") if batch_size else None,
        allocation,
        prune_by=prune_by,
    )
    return schedule, note


def _announce(note: str | None):  # noqa: ANN202
    """Printed once the inputs are valid, so that a bad input still gives one line: the error."""
    return None if note is None else (lambda: typer.echo(note, err=True))


def search(
    data: Data = "mnist5k",
    data_dir: DataDir = None,
    preset: Preset = None,
    sparsity: Sparsity = 0.99,
    out: OutDir = Path("runs/search"),
    seed: Seed = 0,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    allocation: Allocation = None,
    prune_by: PruneBy = None,
    fresh: Fresh = False,
    device: Device = "auto",
    amp: Amp = False,
    as_json: JsonFlag = False,
) -> None:
    """Search a sparse architecture with DASS: pretrain the supernet, then learn the pruning masks and alphas.

    Writes OUT/search.pt (pruned supernet + genotype); a finished pretrain step (OUT/search-pretrain.pt) with
    the same settings is reused unless --fresh. Fine-tune the result with `dass-edge train --arch dass:OUT/search.pt`.
    A run expected to take over an hour says so after its first batches.
    Data-parallel on several processes or machines: `torchrun --nproc_per_node N -m dass_edge search ...`.
    """
    from dass_edge.workflows import DataChoice, run_search

    schedule, note = _schedule(preset, epochs, batch_size, allocation, prune_by, device)
    path = run_search(DataChoice(data, str(data_dir) if data_dir else None), schedule, sparsity, out, seed,
                      resume=not fresh, on_start=_announce(note), device=device, amp=amp)
    _report(path, as_json)


def train(
    arch: Annotated[str, typer.Option("--arch", help="dass:GENOTYPE_JSON or dass:SEARCH_CHECKPOINT, darts-v2 "
                                      "(sparse DARTS), mobilenet-v2 or resnet-18.")],
    variant: Annotated[str | None, typer.Option("--variant", help="Size of a cell network: tiny, small, medium "
                                                "or large (Table 2), or custom (the preset's size); a search "
                                                "checkpoint is then retrained from scratch at that size. Default: "
                                                "the preset's size, or for a search checkpoint its supernet's "
                                                "weights and masks fine-tuned at the supernet's size.")] = None,
    sparsity: Sparsity = 0.99,
    data: Data = "mnist5k",
    data_dir: DataDir = None,
    preset: Preset = None,
    out: OutDir = Path("runs/train"),
    seed: Seed = 0,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    allocation: Allocation = None,
    prune_by: PruneBy = None,
    fresh: Fresh = False,
    device: Device = "auto",
    amp: Amp = False,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune a sparse network (DASS step 3), or train and prune a baseline with HYDRA.

    A search checkpoint without --variant fine-tunes the genotype with the supernet's inherited weights and
    masks. Anything else is built at its size and trained dense, pruned (--prune-by), then fine-tuned,
    with a checkpoint after each step (OUT/NAME-pretrain.pt, OUT/NAME-prune.pt) that a rerun with the same
    settings resumes from unless --fresh. A run expected to take over an hour says so after its first batches.
    Data-parallel on several processes or machines: `torchrun --nproc_per_node N -m dass_edge train ...`.
    """
    from dass_edge.workflows import DataChoice, run_train

    schedule, note = _schedule(preset, epochs, batch_size, allocation, prune_by, device)
    path = run_train(arch, DataChoice(data, str(data_dir) if data_dir else None), schedule, sparsity, out,
                     variant, seed, resume=not fresh, on_start=_announce(note), device=device, amp=amp)
    _report(path, as_json)


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(train)
