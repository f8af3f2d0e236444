"""The CI regression gate: a candidate's latency against a reference, with a verdict that allows for noise.

Why rounds and an interval: two medians of the same model differ by a few percent from run to run
(~2% median, 6-7% at p90 on a quiet machine, far more beside a busy neighbour), so "median > baseline"
would fail CI at random. The bench repeats the measurement in rounds; each round's median is one
observation; the ratio candidate/reference gets a 95% confidence interval, and the verdict has three
outcomes (``decide``):

- ``regression`` when the whole interval is above 1 + tolerance (confidently slower than allowed),
- ``pass`` when the whole interval is at or below it (confidently within the tolerance),
- ``inconclusive`` when the interval spans the limit: the run was too noisy to tell, and the CLI exits
  with its own code rather than passing silently.

Two ways to get the reference (``method``): ``paired`` (``bench --against``: both models measured in
alternating rounds of one run, so load that lasts longer than a round cancels in each pair's ratio;
stats.paired_ratio_interval) and ``baseline`` (round medians stored by an earlier run, Welch t on the
logs, stats.ratio_interval: only as good as the machine's quiet then and now). Predictions are one
deterministic number each: ``point`` compares them with no interval and says so.

A baseline file (``benchmarks/baselines/<device>.json``) holds one entry per model key, so one device's
file can gate several models; an entry keeps the round medians it was judged from, the environment it was
measured in (a baseline from another one is refused: bench/fingerprint.py), and where recorded its
per-operator profile and peak memory, so that a regression names the layers that grew (bench/profile.py)
and memory can be gated with its own tolerance (bench/memory.py).
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dass_edge.atomic import write_text
from dass_edge.bench import fingerprint
from dass_edge.bench.memory import compare_memory, describe_memory
from dass_edge.bench.profile import describe_grown, grown_operators
from dass_edge.bench.stats import RatioInterval, paired_ratio_interval, ratio_interval, relative_spread
from dass_edge.errors import InputError

log = logging.getLogger(__name__)

SCHEMA = 1
DEFAULT_TOLERANCE = 0.10
CONFIDENCE = 0.95
# Fields of a measurement kept in a baseline entry (the rest is per-run detail).
ENTRY_FIELDS = ("model", "device", "runtime", "runtime_version", "runtime_device", "latency_source", "threads",
                "count", "median_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "std_ms", "cv", "round_medians_ms",
                "cpu", "settings", "fingerprint", "env", "op_profile_ms", "peak_memory_bytes", "model_size_bytes")
PREDICTED = "predicted"


@dataclass(frozen=True)
class Verdict:
    """A comparison's outcome. ``ratio_ci_*`` are None for ``point`` (predictions have no noise)."""

    method: str  # paired | baseline | point
    ratio: float
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    tolerance: float
    decision: str  # pass | regression | inconclusive
    reference_median_ms: float
    noise: dict[str, float]  # relative spread (max - min) / median of the round medians, per side

    @property
    def regression(self) -> bool:
        return self.decision == "regression"

    def to_dict(self) -> dict[str, Any]:
        """The bench JSON's fields; the reference's median is named after where it came from."""
        out = asdict(self)
        reference = out.pop("reference_median_ms")
        out["reference_median_ms" if self.method == "paired" else "baseline_median_ms"] = reference
        out["regression"] = self.regression
        return out


def decide(low: float, high: float, tolerance: float) -> str:
    """Three-way verdict on an interval of the ratio against the limit 1 + tolerance."""
    limit = 1 + tolerance
    if low > limit:
        return "regression"
    if high <= limit:
        return "pass"
    return "inconclusive"


def _checked_tolerance(tolerance: float) -> float:
    if tolerance < 0:
        raise InputError(f"--tolerance must be >= 0, not {tolerance}")
    return tolerance


def _noise(**rounds: Sequence[float]) -> dict[str, float]:
    return {f"{side}_spread": relative_spread(values) for side, values in rounds.items()}


def _verdict(method: str, interval: RatioInterval, tolerance: float, reference_median_ms: float,
             noise: dict[str, float]) -> Verdict:
    return Verdict(method, interval.ratio, interval.low, interval.high, tolerance,
                   decide(interval.low, interval.high, tolerance), reference_median_ms, noise)


def compare_paired(candidate_rounds: Sequence[float], reference_rounds: Sequence[float],
                   reference_median_ms: float, tolerance: float = DEFAULT_TOLERANCE) -> Verdict:
    """Judge paired round medians (round i of each measured back to back, ``bench --against``)."""
    _checked_tolerance(tolerance)
    try:
        interval = paired_ratio_interval(candidate_rounds, reference_rounds, CONFIDENCE)
    except ValueError as exc:
        raise InputError(f"--against: {exc}") from None
    pairs = [c / r for c, r in zip(candidate_rounds, reference_rounds)]
    return _verdict("paired", interval, tolerance, reference_median_ms,
                    _noise(candidate=candidate_rounds, reference=reference_rounds, pair=pairs))


def compare(result: dict[str, Any], entry: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE,
            allow_env_change: bool = False, where: str = "entry") -> Verdict:
    """Judge ``result`` (a bench result dict with ``round_medians_ms``) against a baseline ``entry``.

    A measured entry from another environment is refused (EnvironmentMismatchError) unless
    ``allow_env_change``. Measured rounds need at least two on each side (one round has no spread, so its
    "interval" would be a point passed off as evidence); two predictions compare as points, stated as such.
    """
    _checked_tolerance(tolerance)
    predicted = [source == PREDICTED for source in (result.get("latency_source"), entry.get("latency_source"))]
    if not any(predicted):
        fingerprint.check(entry, result, where, allow_env_change)
    if any(predicted) and not all(predicted):
        raise InputError("cannot gate a prediction against a measurement (or the other way round): make the "
                         "baseline with the same latency source")
    if all(predicted):
        ratio = result["median_ms"] / entry["median_ms"]
        limit = 1 + tolerance
        return Verdict("point", ratio, None, None, tolerance, "regression" if ratio > limit else "pass",
                       entry["median_ms"], {})
    rounds, stored = result["round_medians_ms"], entry["round_medians_ms"]
    if len(rounds) < 2 or len(stored) < 2:
        raise InputError(f"the gate needs at least 2 rounds on each side (this run {len(rounds)}, the baseline "
                         f"{len(stored)}): one round has no spread, so no interval; use --rounds 5 (and "
                         "remake a one-round baseline with --update-baseline)")
    interval = ratio_interval(rounds, stored, CONFIDENCE)
    return _verdict("baseline", interval, tolerance, entry["median_ms"], _noise(candidate=rounds, baseline=stored))


def describe(result: dict[str, Any]) -> str:
    """One line for people (CLI output, JUnit messages) about a result's verdict."""
    against = "the reference (same run, paired rounds)" if result["method"] == "paired" else "the baseline"
    reference = result.get("reference_median_ms", result.get("baseline_median_ms"))
    text = f"median {result['median_ms']:.4f} ms is {result['ratio']:.3f}x {against} {reference:.4f} ms"
    if result["method"] == "point":
        text += " (two predictions: single numbers, no noise interval)"
    else:
        text += f" (95% CI {result['ratio_ci_low']:.3f}-{result['ratio_ci_high']:.3f}x"
        spreads = ", ".join(f"{side.removesuffix('_spread')} {value:.0%}" for side, value in result["noise"].items())
        text += f"; round medians spread {spreads})"
    text = f"{text}, limit {1 + result['tolerance']:.2f}x: {result['decision'].upper()}"
    grown = describe_grown(result.get("grown_operators")) if result["decision"] != "pass" else ""
    text += f"; operators that grew most: {grown}" if grown else ""
    if result.get("memory_decision") == "regression":
        text += f"; {describe_memory(result)}"
    return text


def cause(result: dict[str, Any], reference: dict[str, Any], memory_tolerance: float | None) -> dict[str, Any]:
    """What a verdict adds beside the ratio: the layers that grew most (where both sides hold a per-operator
    profile) and, with ``memory_tolerance``, the memory verdict."""
    out: dict[str, Any] = {}
    grown = grown_operators(result.get("op_profile_ms"), reference.get("op_profile_ms"))
    if grown is not None:
        out["grown_operators"] = grown
    if memory_tolerance is not None:
        if memory_tolerance < 0:
            raise InputError(f"--memory-tolerance must be >= 0, not {memory_tolerance}")
        out.update(compare_memory(result, reference, memory_tolerance))
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"baseline {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("entries"), dict):
        raise InputError(f"{path} is not a dass-edge baseline file (schema {SCHEMA})")
    return data


def check_baseline_file(path: Path) -> None:
    """Before measuring: a baseline file that exists must parse (a missing one may be bootstrapped)."""
    if path.exists():
        _read(path)


def find_entry(path: Path, key: str) -> dict[str, Any] | None:
    """``key``'s entry, or None when the file or the entry does not exist yet; a corrupt file raises."""
    if not path.is_file():
        return None
    entry = _read(path)["entries"].get(key)
    if entry is not None and not entry.get("round_medians_ms"):
        raise InputError(f"baseline {path} entry {key!r} has no round medians")
    return entry


def read_baseline(path: Path, key: str) -> dict[str, Any]:
    """The entry for ``key``; a clear error says how to create it when it is missing."""
    if not path.is_file():
        raise InputError(f"baseline {path} does not exist; create it with --update-baseline (or let the first "
                         "run write it with --bootstrap-baseline)")
    entry = find_entry(path, key)
    if entry is None:
        known = ", ".join(sorted(_read(path)["entries"])) or "(none)"
        raise InputError(f"baseline {path} has no entry {key!r} (has: {known}); pass --baseline-key or "
                         "create it with --update-baseline")
    return entry


def check_before_measuring(baseline: Path | None, update: bool, rounds: int, latency_source: str) -> None:
    """What can be refused before minutes of measuring: a corrupt baseline file, a gate on one round."""
    if baseline is not None and baseline.exists():
        _read(baseline)
    if (baseline is not None or update) and latency_source != PREDICTED and rounds < 2:
        raise InputError(f"the gate needs at least 2 rounds, not --rounds {rounds}: one round has no spread, "
                         "so a comparison would be two points with no interval; use --rounds 5")


def gate_on_baseline(result: dict[str, Any], path: Path, key: str, tolerance: float, bootstrap: bool = False,
                     allow_env_change: bool = False, memory_tolerance: float | None = None) -> dict[str, Any]:
    """The fields a baseline comparison adds to ``result``. With ``bootstrap``, a file or entry that does not
    exist yet (a device's first CI run) is written from this result and the decision is ``bootstrapped``:
    nothing compared, said so, rather than failing the first run."""
    entry = find_entry(path, key)
    if entry is not None:
        verdict = compare(result, entry, tolerance, allow_env_change, f"{path} [{key}]").to_dict()
        changes = [{"field": k, "baseline": a, "now": b} for k, a, b in fingerprint.differences(entry, result)]
        return {**verdict, **cause(result, entry, memory_tolerance), **({"env_changes": changes} if changes else {})}
    if not bootstrap:
        read_baseline(path, key)  # raises the error that says how to create it
    write_baseline(path, key, result)
    message = (f"no baseline for {key!r} on {result.get('device')} yet: this run wrote it to {path}; commit that "
               "file (the CI job keeps it as an artifact) so that later runs are gated; nothing was compared")
    log.warning(message)
    return {"decision": "bootstrapped", "regression": False, "baseline_written": str(path),
            "bootstrap_message": message}


def write_baseline(path: Path, key: str, result: dict[str, Any]) -> dict[str, Any]:
    """Add or replace ``key``'s entry, keeping the others; written atomically (CI may be interrupted).

    A measured entry needs at least 2 rounds, since the gate cannot judge noise from one."""
    if result.get("latency_source") != PREDICTED and len(result.get("round_medians_ms") or ()) < 2:
        raise InputError("a baseline needs at least 2 rounds (--rounds 5): the gate cannot judge noise from one")
    data = _read(path) if path.is_file() else {"schema": SCHEMA, "device": result.get("device"), "entries": {}}
    entry = {k: result[k] for k in ENTRY_FIELDS if k in result}
    entry["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data["entries"][key] = entry
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry


JUNIT_PROPERTIES = ("runtime", "runtime_version", "median_ms", "p90_ms", "p99_ms", "cv", "count", "method",
                    "decision", "baseline_median_ms", "reference_median_ms", "ratio", "ratio_ci_low",
                    "ratio_ci_high", "tolerance", "peak_memory_bytes", "memory_decision", "memory_ratio")


def write_junit(path: Path, result: dict[str, Any], elapsed_s: float, error: str | None = None) -> None:
    """One JUnit test case per bench call, so CI systems list latency checks next to unit tests.

    A regression is a <failure>; an error (board unreachable, ...) and an inconclusive verdict (too noisy
    to decide) are <error>s; a bootstrapped baseline is <skipped> (nothing was compared); the figures
    are properties.
    """
    name = str(result.get("model_key") or result.get("model") or "model")
    decision = result.get("decision")
    if error is None and decision == "inconclusive":
        error = describe(result)
    failed = error is None and (decision == "regression" or result.get("memory_decision") == "regression")
    suite = ET.Element("testsuite", name="dass-edge bench", tests="1", failures=str(int(failed)),
                       errors=str(int(error is not None)), skipped=str(int(decision == "bootstrapped")),
                       time=f"{elapsed_s:.3f}")
    case = ET.SubElement(suite, "testcase", classname=f"latency.{result.get('device', 'unknown')}", name=name,
                         time=f"{elapsed_s:.3f}")
    props = ET.SubElement(case, "properties")
    for key in JUNIT_PROPERTIES:
        if result.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=str(result[key]))
    if error is not None:
        kind = "InconclusiveMeasurement" if decision == "inconclusive" else "DassEdgeError"
        ET.SubElement(case, "error", message=error, type=kind).text = error
    elif failed:
        message = describe(result)
        ET.SubElement(case, "failure", message=message, type="LatencyRegression").text = message
    elif decision == "bootstrapped":
        ET.SubElement(case, "skipped", message=result["bootstrap_message"])
    ET.SubElement(case, "system-out").text = json.dumps(result, default=str)
    write_text(path, ET.tostring(suite, encoding="unicode", xml_declaration=True))
