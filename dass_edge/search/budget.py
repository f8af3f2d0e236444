"""How long a training run will take, said early: the default schedule for the hardware, and an estimate
from the first timed batches that is logged (as a warning past an hour) before the run commits to it.

The paper's schedule is GPU-days; on a CPU one paper-size supernet batch takes about 26 s, so a run started
without thought would silently last days. Pure functions plus one observer for ``algorithm.observe``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dass_edge.search.algorithm import StepConfig

log = logging.getLogger(__name__)

LONG_RUN_S = 3600.0  # past this, a run says how long it will take as a warning, not only in the log
TIMED_BATCHES = 3  # batches timed (after the first, which carries one-off start-up costs) for the estimate


@dataclass(frozen=True)
class PlannedStep:
    """One step as it will run: its name (as algorithm reports it), batches in all, and images per batch."""

    name: str
    batches: int
    batch_size: int

    @classmethod
    def of(cls, name: str, cfg: StepConfig, n_train: int) -> PlannedStep:
        return cls(name, cfg.epochs * cfg.batches_per_epoch(n_train), cfg.batch_size)


def default_preset(device: str) -> str:
    """The schedule used without --preset: the published one where training runs on a GPU, else ``quick``."""
    return "paper" if device == "cuda" else "quick"


def estimate_seconds(plan: Sequence[PlannedStep], step: str, batches: int, seconds: float) -> float:
    """Seconds the whole plan takes if every image costs what ``batches`` batches of ``step`` took.

    Per image rather than per batch, because the steps can use different batch sizes; the steps of one run
    train the same network, so their cost per image is alike (the supernet's steps both add an alpha step).
    """
    size = next(s.batch_size for s in plan if s.name == step)
    per_image = seconds / max(1, batches * size)
    return per_image * sum(s.batches * s.batch_size for s in plan)


def describe(seconds: float) -> str:
    """``"about 11.2 h"`` / ``"about 14 min"`` / ``"about 40 s"``."""
    if seconds >= 3600:
        return f"about {seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds:.0f} s"


class RunEstimate:
    """Observer for ``algorithm.observe``: times batches 2..1+TIMED_BATCHES of the plan's first step and logs
    the run's expected duration once; a warning when it passes ``limit_s``. ``seconds`` keeps the estimate."""

    def __init__(self, plan: Sequence[PlannedStep], limit_s: float = LONG_RUN_S, timed: int = TIMED_BATCHES):
        self.plan = tuple(plan)
        self.limit_s = limit_s
        self.timed = timed
        self.seconds: float | None = None
        self._first: float | None = None

    def __call__(self, step: str, done: int, total: int, elapsed: float) -> None:
        if self.seconds is not None or not self.plan or step != self.plan[0].name:
            return
        if done == 1:
            self._first = elapsed
            return
        if self._first is None or done < min(1 + self.timed, total):
            return
        timed = done - 1
        self.seconds = estimate_seconds(self.plan, step, timed, elapsed - self._first)
        per_batch = (elapsed - self._first) / timed
        batches = sum(s.batches for s in self.plan)
        message = (f"this run is expected to take {describe(self.seconds)} here ({timed} batches of {step} "
                   f"timed at {per_batch:.2f} s each; {batches:,} batches in all)")
        if self.seconds > self.limit_s:
            log.warning("%s; stop it now (Ctrl-C) and choose a shorter preset if that is too long", message)
        else:
            log.info("%s", message)
