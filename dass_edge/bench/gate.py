"""The CI regression gate: compare a measurement with a stored baseline, allowing for noise.

Why rounds and an interval: two medians of the same model differ by a few percent from run to run
(~2% median, 6-7% at p90 on these machines), so "median > baseline" would fail CI at random. The bench
repeats the measurement in rounds; each round's median is one observation; the ratio candidate/baseline
gets a 95% confidence interval (Welch t on log latencies, stats.ratio_interval). It is a regression only
when the *lower* end of that interval is above 1 + tolerance: we are confident it got slower by more
than the tolerance.

A baseline file (``benchmarks/baselines/<device>.json``) holds one entry per model key, so one device's
file can gate several models; an entry keeps the round medians it was judged from.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dass_edge.bench.stats import ratio_interval
from dass_edge.errors import InputError

log = logging.getLogger(__name__)

SCHEMA = 1
DEFAULT_TOLERANCE = 0.10
CONFIDENCE = 0.95
# Fields of a measurement kept in a baseline entry (the rest is per-run detail).
ENTRY_FIELDS = ("model", "device", "runtime", "runtime_version", "runtime_device", "latency_source", "threads",
                "count", "median_ms", "mean_ms", "p90_ms", "std_ms", "round_medians_ms", "cpu", "settings")


@dataclass(frozen=True)
class Verdict:
    baseline_median_ms: float
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    tolerance: float
    regression: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(result: dict[str, Any], entry: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> Verdict:
    """Judge ``result`` (a bench result dict with ``round_medians_ms``) against a baseline ``entry``."""
    if tolerance < 0:
        raise InputError(f"--tolerance must be >= 0, not {tolerance}")
    for key in ("runtime", "runtime_version", "cpu", "threads"):
        if key in entry and entry.get(key) != result.get(key):
            log.warning("baseline %s was %r, now %r: the comparison may not mean much", key, entry.get(key),
                        result.get(key))
    interval = ratio_interval(result["round_medians_ms"], entry["round_medians_ms"], CONFIDENCE)
    return Verdict(baseline_median_ms=entry["median_ms"], ratio=interval.ratio, ratio_ci_low=interval.low,
                   ratio_ci_high=interval.high, tolerance=tolerance, regression=interval.low > 1 + tolerance)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"baseline {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("entries"), dict):
        raise InputError(f"{path} is not a dass-edge baseline file (schema {SCHEMA})")
    return data


def read_baseline(path: Path, key: str) -> dict[str, Any]:
    """The entry for ``key``; a clear error says how to create it when it is missing."""
    if not path.is_file():
        raise InputError(f"baseline {path} does not exist; create it with --update-baseline")
    entries = _read(path)["entries"]
    if key not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise InputError(f"baseline {path} has no entry {key!r} (has: {known}); pass --baseline-key or "
                         "create it with --update-baseline")
    entry = entries[key]
    if not entry.get("round_medians_ms"):
        raise InputError(f"baseline {path} entry {key!r} has no round medians")
    return entry


def write_baseline(path: Path, key: str, result: dict[str, Any]) -> dict[str, Any]:
    """Add or replace ``key``'s entry, keeping the others; written atomically (CI may be interrupted)."""
    data = _read(path) if path.is_file() else {"schema": SCHEMA, "device": result.get("device"), "entries": {}}
    entry = {k: result[k] for k in ENTRY_FIELDS if k in result}
    entry["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data["entries"][key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return entry


def write_junit(path: Path, result: dict[str, Any], elapsed_s: float, error: str | None = None) -> None:
    """One JUnit test case per bench call, so CI systems list latency checks next to unit tests.

    A regression is a <failure>, an error (board unreachable, ...) an <error>; the figures are properties.
    """
    name = str(result.get("model_key") or result.get("model") or "model")
    failed = bool(result.get("regression"))
    suite = ET.Element("testsuite", name="dass-edge bench", tests="1", failures=str(int(failed)),
                       errors=str(int(error is not None)), time=f"{elapsed_s:.3f}")
    case = ET.SubElement(suite, "testcase", classname=f"latency.{result.get('device', 'unknown')}", name=name,
                         time=f"{elapsed_s:.3f}")
    props = ET.SubElement(case, "properties")
    for key in ("runtime", "runtime_version", "median_ms", "p90_ms", "count", "baseline_median_ms", "ratio",
                "ratio_ci_low", "ratio_ci_high", "tolerance"):
        if result.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=str(result[key]))
    if error is not None:
        ET.SubElement(case, "error", message=error, type="DassEdgeError").text = error
    elif failed:
        message = (f"median {result['median_ms']:.4f} ms is {result['ratio']:.3f}x the baseline "
                   f"{result['baseline_median_ms']:.4f} ms (95% CI {result['ratio_ci_low']:.3f}-"
                   f"{result['ratio_ci_high']:.3f}x, tolerance {result['tolerance']:.0%})")
        ET.SubElement(case, "failure", message=message, type="LatencyRegression").text = message
    ET.SubElement(case, "system-out").text = json.dumps(result, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
