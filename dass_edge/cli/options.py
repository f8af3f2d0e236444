"""Option types shared by the commands, and the one place that writes results (JSON or human) to stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed repeats a run exactly.")]
Preset = Annotated[str | None, typer.Option("--preset", help="Schedule: paper (published, GPU-days), quick "
                                            "(minutes on a CPU, the demo's), cpu (about an hour per model on a "
                                            "CPU) or smoke (seconds, for tests). Default: paper when training "
                                            "runs on a GPU, else quick (a note on stderr says so).")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Start from scratch: ignore finished step checkpoints in --out.")]
Sparsity = Annotated[float, typer.Option("--sparsity", help="Fraction of the prunable weights removed, in (0, 1); "
                                         "0.99 is the paper's headline.")]
Epochs = Annotated[str | None, typer.Option("--epochs", help="Epochs per step, overriding the preset: PRETRAIN,PRUNE,"
                                            "FINETUNE (e.g. 3,2,6) or one number for all; whole epochs, no batch cap.")]
BatchSize = Annotated[str | None, typer.Option("--batch-size", help="Batch size per step, overriding the preset: "
                                               "PRETRAIN,PRUNE,FINETUNE or one number for all.")]
Allocation = Annotated[str | None, typer.Option("--allocation", help="How the kept weights are spread over layers: "
                                                "uniform (the paper: every layer at --sparsity), erk (Erdos-Renyi "
                                                "kernel) or global (one ranking of all scores). Default: the preset's.")]
PruneBy = Annotated[str | None, typer.Option("--prune-by", help="What picks the masks in the prune step: scores "
                                             "(HYDRA's learned scores on frozen weights, the paper) or magnitude "
                                             "(the weights keep training, each mask the top-k of |w|). Default: "
                                             "the preset's.")]
Data = Annotated[str, typer.Option("--data", help="Data set: mnist5k (bundled), fashion-mnist (Debian package), "
                                   "cifar10 (needs --data-dir) or folder (one sub-folder per class).")]
AllowDead = Annotated[bool, typer.Option("--allow-dead", help="Go on with a network whose output does not depend "
                                          "on its input (refused otherwise, exit 7); an export is then marked "
                                          "dead in its manifest.")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Where the data set lives (cifar10, folder, or "
                                              "another copy of fashion-mnist).")]

Device = Annotated[str, typer.Option("--device", help="Where to train: cuda, cpu or auto (CUDA when torch sees a "
                                     "GPU). Under torchrun each process takes the GPU of its LOCAL_RANK.")]
Amp = Annotated[bool, typer.Option("--amp", help="Mixed precision (fp16 with loss scaling on CUDA, bf16 on CPU); "
                                   "off by default.")]


def table_console() -> Console:
    """Where tables print: the terminal's width, or 140 columns into a pipe or a log file, where rich would
    otherwise cut a wide table to 80 and its cells to a few letters."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def emit(result: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Results go to stdout: JSON for machines, ``human(result)`` otherwise."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        human(result)
