"""Named schedules. ``paper`` is Section 6.1; the others shrink data, networks and epochs to fit 2 CPU cores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from dass_edge.errors import InputError
from dass_edge.search.algorithm import StepConfig
from dass_edge.search.sparse import ALLOCATIONS

STEPS = ("pretrain", "prune", "finetune")


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
    train_samples: int | None = None  # None: the whole training set
    test_samples: int | None = None
    demo_variants: tuple[str, ...] = ("tiny", "small")  # DASS sizes `dass-edge demo` trains; () = train_cells/channels
    allocation: str = "uniform"  # how the kept weights are spread over layers (search.sparse.allocate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, epochs: tuple[int, int, int] | None = None,
                       batch_sizes: tuple[int, int, int] | None = None, allocation: str | None = None) -> Preset:
        """The same schedule with per-step epochs / batch sizes (pretrain, prune, fine-tune) or allocation replaced.

        An override of the epochs lifts the preset's cap on batches per epoch: the user asked for whole epochs.
        """
        steps = {name: getattr(self, name) for name in STEPS}
        if epochs is not None:
            steps = {name: replace(cfg, epochs=n, max_batches=None) for (name, cfg), n in zip(steps.items(), epochs)}
        if batch_sizes is not None:
            steps = {name: replace(cfg, batch_size=n) for (name, cfg), n in zip(steps.items(), batch_sizes)}
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
            "paper", "the published schedule: 50/20/200 epochs, LRs 0.025/0.1/0.01, batch 64 (GPU-days)",
            StepConfig(50, 0.025), StepConfig(20, 0.1), StepConfig(200, 0.01),
        ),
        Preset(
            "quick", "the demo's, under 10 minutes for the whole demo on 2 CPU cores: 2,000 images, a few dozen "
            "batches per step, DASS at Tiny size; accuracy is far from converged",
            StepConfig(1, 0.05, batch_size=32, max_batches=12), StepConfig(1, 0.1, batch_size=32, max_batches=6),
            StepConfig(2, 0.05, batch_size=32, max_batches=8),
            search_channels=8, search_cells=4, train_channels=12, train_cells=5, baseline_width=0.25,
            train_samples=2000, test_samples=500, demo_variants=("tiny",),
        ),
        Preset(
            "smoke", "seconds, for tests and scripts: a few batches of tiny networks",
            StepConfig(1, 0.05, batch_size=32, max_batches=3), StepConfig(1, 0.1, batch_size=32, max_batches=3),
            StepConfig(1, 0.02, batch_size=32, max_batches=3),
            search_channels=4, search_cells=3, train_channels=4, train_cells=3, baseline_width=0.125,
            train_samples=256, test_samples=128, demo_variants=(),
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
