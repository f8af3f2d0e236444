"""Where a measurement was made, as the fields a comparison must agree on, and the refusal when they differ.

Why: a latency is a property of the model *and* the machine, its clocks and its runtime. A stored baseline
from a runner whose governor, kernel or ONNX Runtime version has changed since is another experiment, and the
gate would blame the model for it. So each result and baseline records a fingerprint, and gating against a
baseline whose fingerprint differs is refused in one line naming the fields (EnvironmentMismatchError, exit
13) unless the caller says the change is intended (``--allow-env-change``). What varies from run to run on a
healthy machine (current frequency, load, throttle counters) is recorded in ``env`` but not compared.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

from dass_edge.errors import EnvironmentMismatchError

log = logging.getLogger(__name__)

ENV_FIELDS = ("cpu", "cores", "kernel", "governor", "freq_max_mhz", "freq_hw_max_mhz", "cpu_clocks_locked",
              "nvpmodel_mode", "gpu_clocks_locked")
RESULT_FIELDS = ("runtime", "runtime_version", "runtime_device", "threads")
FIELDS = ENV_FIELDS + RESULT_FIELDS + ("toolkit_version",)


def toolkit_version() -> str:
    try:
        return metadata.version("dass-edge")
    except metadata.PackageNotFoundError:
        return "unknown"


def fingerprint(result: dict[str, Any]) -> dict[str, Any]:
    """The compared fields of a measured result (its ``env`` from the runner, its runtime and threads)."""
    env = result.get("env") or {}
    return {**{k: env.get(k) for k in ENV_FIELDS}, **{k: result.get(k) for k in RESULT_FIELDS},
            "toolkit_version": toolkit_version()}


def _stored(entry: dict[str, Any]) -> dict[str, Any]:
    """A baseline entry's fingerprint; entries written before fingerprints keep runtime, version, threads and
    CPU at the top level, and only those can be compared."""
    if isinstance(entry.get("fingerprint"), dict):
        return entry["fingerprint"]
    return {k: entry[k] for k in ("cpu",) + RESULT_FIELDS if k in entry}


def differences(entry: dict[str, Any], result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, stored, now) for each compared field the baseline ``entry`` recorded that ``result`` differs in."""
    stored, now = _stored(entry), result.get("fingerprint") or fingerprint(result)
    return [(k, stored[k], now.get(k)) for k in FIELDS if k in stored and stored[k] != now.get(k)]


def check(entry: dict[str, Any], result: dict[str, Any], where: str, allow_change: bool = False) -> None:
    """Refuse (EnvironmentMismatchError) to compare ``result`` with a baseline ``entry`` from another
    environment; with ``allow_change`` log the differences and go on."""
    if "fingerprint" not in entry:
        log.warning("baseline %s records no environment fingerprint (written before fingerprints); only %s can "
                    "be checked: re-record it with --update-baseline", where, ", ".join(sorted(_stored(entry))))
    changed = differences(entry, result)
    if not changed:
        return
    text = "; ".join(f"{field} {before!r} -> {after!r}" for field, before, after in changed)
    if allow_change:
        log.warning("baseline %s was measured in another environment (%s): compared anyway (--allow-env-change)",
                    where, text)
        return
    raise EnvironmentMismatchError(f"baseline {where} was measured in another environment ({text}); re-record it "
                                   "here with --update-baseline, or pass --allow-env-change if the change is "
                                   "intended")
