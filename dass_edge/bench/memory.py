"""Peak memory of loading and running a model, in a bench result, and its gate.

Measured by the runner's ``memory`` command in a fresh process (here, or on the board by its ``time --memory``),
so that what the measuring process already holds (this toolkit imports torch: hundreds of MB) does not count.
That process reads its peak resident set (VmHWM) twice: once numpy and the runtime are imported, and after
loading the model and running it. The result reports both and their difference:

- ``peak_memory_bytes``: the difference, what loading and running the model added (weights, the runtime's
  session, arenas, thread pools, compiled kernels). It is the figure that changes with the model, so the
  gate compares it; the import part is the same for every model of one runtime version.
- ``memory.process_peak_rss_bytes``: the whole process (interpreter + numpy + runtime + model), what a board
  must have free to run it this way.
- ``model_size_bytes``: the model's file(s) on disk (OpenVINO's .bin included).

Fresh processes of the same model differ by ~0.3 MiB here (ONNX Runtime, OpenVINO; 5 runs each), so a growth
under ``MIN_GROWTH_BYTES`` is never called a memory regression, whatever the tolerance.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dass_edge.runtimes import runner

log = logging.getLogger(__name__)

MIN_GROWTH_BYTES = 1 << 20


def measure_here(path: Path, runtime: str, threads: int | None, device: str | None,
                 input_shape: tuple[int, ...] | list[int]) -> dict[str, Any]:
    """The runner's ``memory`` command in a fresh interpreter on this machine (its raw dict)."""
    return runner.measure_memory(str(path), runtime, threads or 0, device or "", list(input_shape))


def memory_fields(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The result's ``memory``, ``peak_memory_bytes`` and ``model_size_bytes``; {} when not measured."""
    if not raw:
        return {}
    if "error" in raw:
        log.warning("peak memory not measured: %s", raw["error"])
        return {"memory": {"error": raw["error"]}}
    return {"memory": raw, "peak_memory_bytes": raw["model_peak_rss_bytes"],
            "model_size_bytes": sum(raw.get("files_bytes", {}).values())}


def compare_memory(candidate: dict[str, Any], reference: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """The memory verdict of ``candidate`` against ``reference`` (results or baseline entries): a regression
    when its peak grew by more than ``tolerance`` and by at least MIN_GROWTH_BYTES; "not measured" when either
    side has no figure (nothing is compared then)."""
    after, before = candidate.get("peak_memory_bytes"), reference.get("peak_memory_bytes")
    out: dict[str, Any] = {"memory_tolerance": tolerance, "reference_peak_memory_bytes": before}
    if not after or not before:
        return {**out, "memory_decision": "not measured", "memory_ratio": None}
    ratio = after / before
    grew = ratio > 1 + tolerance and after - before >= MIN_GROWTH_BYTES
    return {**out, "memory_ratio": ratio, "memory_decision": "regression" if grew else "pass"}


def describe_memory(result: dict[str, Any]) -> str:
    """One line about the memory verdict (for the CLI, the JUnit message and the exit's error line)."""
    mib = 1 << 20
    before, after = result.get("reference_peak_memory_bytes"), result.get("peak_memory_bytes")
    if result.get("memory_decision") in (None, "not measured"):
        return "peak memory not compared (not measured on both sides)"
    return (f"peak memory {after / mib:.1f} MiB is {result['memory_ratio']:.2f}x the reference's {before / mib:.1f} "
            f"MiB, limit {1 + result['memory_tolerance']:.2f}x: {result['memory_decision'].upper()}")
