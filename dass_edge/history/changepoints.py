"""Change points in a latency series: where did it get slower (or faster), and at which commit?

How (ruptures): PELT, which finds the segmentation minimising the summed segment costs plus a penalty per
change exactly, on the logarithm of each run's median (a 1.3x slowdown is the same shift whatever the
model's speed, and the noise of a median is roughly proportional to it). The cost is ``l1`` (absolute
deviations from each segment's median) rather than ``l2``: CI runs on shared boards have outliers (a run
beside a busy neighbour), and ``l2`` splits a series around any large one. ruptures' user guide gives
``log(n) * dim * sigma**2`` as the penalty for ``l2`` (BIC); the ``l1`` analogue used here is
``BETA * sigma * log(n)``, with ``sigma`` the noise estimated from successive differences (median absolute
deviation, so a step does not inflate it). ``BETA = 3`` was picked by simulating 100-run series (450 flat
ones with Gaussian, Student-t(3) and 5%-spike noise of 4%, and the same with a step at a random run):
no false change point at 3, some at 2 (6 of 150 spiky series); a 1.3x step found at its exact run in
100% of Gaussian and t(3) series and 85% of spiky ones; a 1.1x step found within 3 runs in 59 of 60.
``MIN_RUNS`` keeps a level that lasts fewer than 3 runs from being a segment (a one-off outlier), and a
change of less than ``MIN_CHANGE`` (2%: about the run-to-run spread of medians on a quiet machine) is not
reported. PELT with ``l1`` costs O(n^2) median computations: only the last ``WINDOW`` runs are analysed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dass_edge.errors import MissingDependencyError
from dass_edge.history.store import Run

BETA = 3.0
MIN_RUNS = 3
MIN_CHANGE = 0.02
WINDOW = 500
_MAD_TO_SIGMA = 1 / (0.6745 * math.sqrt(2))  # a Gaussian's sigma from the MAD of its successive differences


@dataclass(frozen=True)
class ChangePoint:
    """The run where a new level starts: its commit, and the levels (medians of the segments) around it."""

    index: int  # position in the series, oldest run = 0
    run_id: int
    commit: str | None
    time: str
    before_ms: float
    after_ms: float

    @property
    def ratio(self) -> float:
        return self.after_ms / self.before_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def noise_sigma(log_values: np.ndarray) -> float:
    """The run-to-run noise of a series from its successive differences (robust to steps and outliers)."""
    diffs = np.diff(log_values)
    if len(diffs) == 0:
        return 0.0
    return float(np.median(np.abs(diffs - np.median(diffs))) * _MAD_TO_SIGMA)


def _segments(log_values: np.ndarray) -> list[int]:
    """ruptures' PELT end indices of each segment (the last is len(values))."""
    try:
        import ruptures
    except ImportError:
        raise MissingDependencyError("ruptures", "ci") from None
    n = len(log_values)
    sigma = max(noise_sigma(log_values), 1e-4)  # a perfectly quiet series still needs a positive penalty
    algo = ruptures.Pelt(model="l1", min_size=MIN_RUNS, jump=1).fit(log_values.reshape(-1, 1))
    return algo.predict(pen=BETA * sigma * math.log(n))


def _merge_small(values: np.ndarray, ends: list[int], min_change: float) -> list[int]:
    """Drop the change between two segments whose medians differ by less than ``min_change`` (repeatedly,
    smallest first, since merging changes the neighbours' medians)."""
    ends = list(ends)
    while len(ends) > 1:
        starts = [0, *ends[:-1]]
        levels = [float(np.median(values[a:b])) for a, b in zip(starts, ends)]
        changes = [abs(math.log(levels[i + 1] / levels[i])) for i in range(len(levels) - 1)]
        smallest = int(np.argmin(changes))
        if changes[smallest] >= math.log1p(min_change):
            break
        del ends[smallest]
    return ends


def find(runs: list[Run], min_change: float = MIN_CHANGE) -> list[ChangePoint]:
    """Change points of one series (oldest run first), each at the first run of its new level."""
    offset = max(0, len(runs) - WINDOW)
    runs = runs[offset:]
    if len(runs) < 2 * MIN_RUNS:
        return []
    values = np.array([r.median_ms for r in runs], dtype=float)
    ends = _merge_small(values, _segments(np.log(values)), min_change)
    starts = [0, *ends[:-1]]
    points = []
    for (a, b), c in zip(zip(starts, ends), ends[1:]):
        first = runs[b]
        points.append(ChangePoint(index=offset + b, run_id=first.id, commit=first.commit, time=first.time,
                                  before_ms=float(np.median(values[a:b])), after_ms=float(np.median(values[b:c]))))
    return points
