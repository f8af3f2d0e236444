"""The memory planner: buffer offsets in one arena from sizes and live ranges alone (TinyEngine style).

A pure function, so it can be tested and reasoned about apart from the graph: buffers whose live ranges
(first write step, last read step, both inclusive) meet must not overlap; the others may share memory.
Greedy first fit, largest buffer first (TFLite's "greedy by size" arena planner does the same): each
buffer goes to the lowest aligned offset that clears every already placed buffer it is live with.
"""

from __future__ import annotations

from collections.abc import Sequence

LiveRange = tuple[int, int]


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def overlaps(a: LiveRange, b: LiveRange) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def first_fit(sizes: Sequence[int], ranges: Sequence[LiveRange], alignment: int) -> tuple[list[int], int]:
    """(offset of each buffer, arena size), both in elements and multiples of ``alignment``."""
    if len(sizes) != len(ranges):
        raise ValueError("one live range per buffer")
    padded = [align_up(max(size, 1), alignment) for size in sizes]
    offsets = [0] * len(sizes)
    placed: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda i: (-padded[i], ranges[i][0], i)):
        candidate = 0
        busy = sorted((offsets[j], offsets[j] + padded[j]) for j in placed if overlaps(ranges[i], ranges[j]))
        for start, stop in busy:
            if candidate + padded[i] <= start:
                break
            candidate = max(candidate, stop)
        offsets[i] = candidate
        placed.append(i)
    arena = max((offsets[i] + padded[i] for i in placed), default=0)
    return offsets, max(arena, alignment)
