"""Named schedules. ``paper`` is Section 6.1; the others shrink data, networks and epochs to fit 2 CPU cores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from dass_edge.errors import InputError
from dass_edge.search.algorithm import StepConfig
from dass_edge.search.sparse import ALLOCATIONS



@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    pretrain: StepConfig
    prune: StepConfig
    finetune: StepConfig
    search_channels: int = 16
    search_cells: int = 8
    train_channels: int = 16  # size of a DASS/DARTS network trained without --variant
    train_cells: int = 8
    baseline_width: float = 1.0
    baseline_widths: tuple[tuple[str, float], ...] = ()  # per-baseline widths where one differs from baseline_width
    train_samples: int | None = None  # None: the whole training set
    test_samples: int | None = None
    image_size: int = 32  # side images are padded or scaled to; 16 costs a cell network a quarter of 32's work
    # Sizes `dass-edge demo` retrains DASS (and sparse DARTS, at the first) at: Table 2 names or "custom" (the
    # preset's train_cells/train_channels); () fine-tunes the supernet's own network (Algorithm 1 as is).
    demo_variants: tuple[str, ...] = ("tiny", "small")
    allocation: str = "uniform"  # how the kept weights are spread over layers (search.sparse.allocate)
    # The supernet costs many times a derived network per image, so short presets give its steps their own
    # budget; None: the same as pretrain / prune.
    search_pretrain: StepConfig | None = None
    search_prune: StepConfig | None = None

    def width_of(self, arch: str) -> float:
        return dict(self.baseline_widths).get(arch, self.baseline_width)

    def search_steps(self) -> tuple[StepConfig, StepConfig]:
        return self.search_pretrain or self.pretrain, self.search_prune or self.prune

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, epochs: tuple[int, int, int] | None = None,
                       batch_sizes: tuple[int, int, int] | None = None, allocation: str | None = None,
                       max_batches: int | None = None, prune_by: str | None = None) -> Preset:
        """The same schedule with per-step epochs / batch sizes (pretrain, prune, fine-tune), the allocation or
        what ranks the prune step's masks (StepConfig.rank, on the search's prune step too) replaced.

        An override of the epochs lifts the preset's cap on batches per epoch (the user asked for whole epochs)
        unless ``max_batches`` sets a new one (a throughput benchmark that times a few batches per step).
        """
        search_pretrain, search_prune = self.search_steps()
        steps = {"pretrain": self.pretrain, "prune": self.prune, "finetune": self.finetune,
                 "search_pretrain": search_pretrain, "search_prune": search_prune}
        position = {"pretrain": 0, "prune": 1, "finetune": 2, "search_pretrain": 0, "search_prune": 1}
        if epochs is not None:
            steps = {name: replace(cfg, epochs=epochs[position[name]], max_batches=None) for name, cfg in steps.items()}
        if max_batches is not None:
            steps = {name: replace(cfg, max_batches=max_batches) for name, cfg in steps.items()}
        if batch_sizes is not None:
            steps = {name: replace(cfg, batch_size=batch_sizes[position[name]]) for name, cfg in steps.items()}
        if prune_by is not None:
            steps |= {name: replace(steps[name], rank=prune_by) for name in ("prune", "search_prune")}
        if allocation is not None and allocation not in ALLOCATIONS:
            raise InputError(f"unknown allocation {allocation!r}; known: {', '.join(ALLOCATIONS)}")
        return replace(self, **steps, allocation=allocation or self.allocation)


def parse_per_step(text: str, what: str) -> tuple[int, int, int]:
    """``"3,2,6"`` (pretrain, prune, fine-tune) or ``"64"`` (all three) -> three positive integers."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        parts *= 3
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise InputError(f"{what} must be one positive integer or three (pretrain,prune,finetune), got {text!r}")
    return values  # type: ignore[return-value]


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "paper", "the published schedule: 50/20/200 epochs, LRs 0.025/0.1/0.01, batch 64, uniform per-layer "
            "sparsity, no ramp (GPU-days)",
            StepConfig(50, 0.025), StepConfig(20, 0.1), StepConfig(200, 0.01),
        ),
        Preset(
            "quick", "the demo's, 11-15 minutes for the whole demo on 2 CPU cores: all 4,000 training digits "
            "scaled to 16x16, 5-cell 16-channel cell networks, 3/2/8 epochs, ERK allocation, a pruning ramp, "
            "connected masks, a dense stem and (retraining) magnitude pruning of weights that keep training, so "
            "that 99% learns",
            StepConfig(3, 0.05, batch_size=64),
            StepConfig(2, 0.05, batch_size=64, ramp=0.7, connected=True, dense_input=True, rank="magnitude"),
            StepConfig(8, 0.05, batch_size=64),  # 0.05: +4 points over 0.1 on the DASS network (docs/training.md)
            search_channels=8, search_cells=4, train_channels=16, train_cells=5, baseline_width=0.25,
            baseline_widths=(("resnet-18", 0.125),),  # non-zero counts near the cell networks' (Table 5)
            train_samples=4000, test_samples=1000, image_size=16, demo_variants=("custom",), allocation="erk",
            search_pretrain=StepConfig(1, 0.05, batch_size=32, max_batches=40),
            search_prune=StepConfig(1, 0.1, batch_size=32, max_batches=25, ramp=0.7, connected=True, dense_input=True),
        ),
        Preset(
            "cpu", "for a machine without a GPU: about an hour per model on 2 cores (its measured seconds per "
            "batch times its batches): all training images, 8-cell 24-channel cell networks, 5/3/15 epochs",
            StepConfig(5, 0.05), StepConfig(3, 0.05, ramp=0.7, connected=True, dense_input=True, rank="magnitude"),
            StepConfig(15, 0.1),
            search_channels=8, search_cells=5, train_channels=24, train_cells=8, baseline_width=0.5,
            baseline_widths=(("resnet-18", 0.25),), demo_variants=("custom",), allocation="erk",
            search_pretrain=StepConfig(6, 0.05, batch_size=32),
            search_prune=StepConfig(4, 0.1, batch_size=32, ramp=0.7, connected=True, dense_input=True),
        ),
        Preset(
            "smoke", "seconds, for tests and scripts: a few batches of tiny networks",
            StepConfig(1, 0.05, batch_size=32, max_batches=3), StepConfig(1, 0.1, batch_size=32, max_batches=3,
                                                                          ramp=0.7),
            StepConfig(1, 0.05, batch_size=32, max_batches=4),
            search_channels=4, search_cells=3, train_channels=4, train_cells=3, baseline_width=0.125,
            train_samples=256, test_samples=128, demo_variants=("custom",), allocation="erk",
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
