"""Bench and predict results -> plot points, with the facts a reader looks for when hovering one.

A result names its device, runtime, latency and usually its accuracy; what it does not carry (variant,
non-zero weights, MACs after compaction, file size, data set) is looked up in the export manifest beside
the timed file and in the checkpoint it came from, each read once. Timings marked ``emulated`` are
dropped here, before anything is plotted or compared, so no report can show one.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dass_edge.errors import InputError

log = logging.getLogger(__name__)

SOURCES = ("measured", "predicted")
CHECKPOINT_SUFFIXES = (".pt", ".pth")  # a dass-edge checkpoint, or a TorchScript export (no facts from it)


@dataclass(frozen=True)
class Details:
    """What the hover and the tables say about a point; None where the results did not record it."""

    arch: str | None = None
    variant: str | None = None
    sparsity: float | None = None
    nonzero_params: int | None = None
    macs: int | None = None  # of the network as deployed (after compaction)
    macs_channel_multiple: int | None = None  # the channel rounding compaction applied (a target's setting)
    size_bytes: int | None = None  # the timed file (an OpenVINO IR: .xml + .bin)
    spread_low_ms: float | None = None  # lower end of the latency bar: p10 where recorded, else the minimum
    spread_low_name: str = "p10"
    p90_ms: float | None = None
    runtime_version: str | None = None
    method: str = ""  # how the latency was obtained, in words
    dataset: str | None = None
    dead: bool = False  # the network's output ignores its input (timed only because it was allowed)
    precision: str | None = None  # of the timed file (fp32, fp16, int8), from its export's manifest
    checkpoint: str | None = None


@dataclass(frozen=True)
class Point:
    label: str
    device: str
    latency_ms: float
    accuracy: float
    source: str = "measured"  # or "predicted"
    runtime: str = ""
    details: Details = Details()

    @property
    def panel(self) -> str:
        """One panel per device and runtime: a model's speed depends on both."""
        return f"{self.device}/{self.runtime}" if self.runtime else self.device

    @property
    def family(self) -> str:
        """'dass' for DASS networks, else the baseline architecture (the label when it is not recorded)."""
        arch = self.details.arch
        if arch is None:
            return "dass" if self.label.lower().startswith("dass") else self.label
        return arch

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "details"}
        return {**row, "panel": self.panel, "family": self.family, **asdict(self.details)}


@dataclass(frozen=True)
class Results:
    """The points of some result files, and how many entries were left out and why."""

    points: list[Point]
    emulated: int = 0  # timings marked emulated: never plotted
    incomplete: int = 0  # without a device, a latency or an accuracy
    files: list[str] = field(default_factory=list)


def _number(entry: dict[str, Any], *keys: str) -> float | None:
    """The first of ``keys`` holding a finite number (JSON true/false are not numbers)."""
    for key in keys:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _typed(kind: type | tuple[type, ...], *values: Any) -> Any:
    """The first value of the expected JSON type: a result file's text is data, never trusted to fit."""
    return next((v for v in values if isinstance(v, kind) and not isinstance(v, bool)), None)


class _Lookup:
    """Manifests and checkpoint summaries, each read once per report (a checkpoint builds its network)."""

    def __init__(self, source: Path):
        self.source = source  # the results file, named in errors
        self.base = source.parent
        self._summaries: dict[Path, dict[str, Any]] = {}

    def path(self, value: Any) -> Path | None:
        """An existing file named by a result: as written, else relative to the results file."""
        if not value:
            return None
        for candidate in (Path(str(value)), self.base / str(value)):
            if candidate.is_file():
                return candidate
        return None

    def manifest(self, model: Path | None) -> dict[str, Any]:
        from dass_edge.bench.service import manifest_of

        return manifest_of(model) if model is not None and model.suffix not in CHECKPOINT_SUFFIXES else {}

    def summary(self, path: Path | None) -> dict[str, Any]:
        if path is None or path.suffix not in CHECKPOINT_SUFFIXES:
            return {}
        if path not in self._summaries:
            from dass_edge import checkpoint

            try:
                self._summaries[path] = checkpoint.summary(checkpoint.load(path), path)
            except InputError as exc:  # a TorchScript file or a damaged checkpoint: no facts from it
                log.warning("no model facts from %s: %s", path, exc)
                self._summaries[path] = {}
        return self._summaries[path]


def _device_and_runtime(entry: dict[str, Any]) -> tuple[str, str]:
    """The demo writes 'intel-cpu/onnxruntime' and 'intel-cpu/predicted' as devices; bench writes the
    device and the runtime apart. Both give ('intel-cpu', 'onnxruntime')."""
    device, _, suffix = str(entry["device"]).partition("/")
    runtime = str(entry.get("runtime") or ("" if suffix == "predicted" else suffix))
    return device, runtime


def _method(entry: dict[str, Any]) -> str:
    source = entry.get("latency_source")
    if source == "predicted":
        coverage = _number(entry, "coverage_macs")
        covered = f", {coverage:.0%} of MACs covered" if coverage is not None else ""
        return f"predicted ({entry.get('predictor') or 'nn-Meter'} predictor{covered})"
    runs = f"{entry['count']} runs" if entry.get("count") else "runs not recorded"
    if source == "ssh":
        return f"measured on {entry.get('host', 'the board')} over SSH ({runs})"
    if source == "local":
        return f"measured on this machine ({entry.get('cpu') or entry.get('runtime_device') or 'host'}, {runs})"
    return str(source or "not recorded")


def _size(model: Path | None, manifest: dict[str, Any]) -> int | None:
    """Bytes of the timed file as the manifest counted them, else on disk; None for a checkpoint."""
    if model is None or model.suffix in CHECKPOINT_SUFFIXES:
        return None
    sizes = _typed(dict, manifest.get("size_bytes")) or {}
    names = [model.name] + ([model.with_suffix(".bin").name] if model.suffix == ".xml" else [])
    if all(isinstance(sizes.get(n), int) for n in names):
        return sum(sizes[n] for n in names)
    return sum(p.stat().st_size for p in map(model.with_name, names) if p.is_file()) or None


def _details(entry: dict[str, Any], model: Path | None, manifest: dict[str, Any], checkpoint: Path | None,
             facts: dict[str, Any]) -> Details:
    def fact(key: str, kind: type | tuple[type, ...]) -> Any:  # the export's record, else the checkpoint's, else the result's
        return _typed(kind, manifest.get(key), facts.get(key), entry.get(key))

    compaction = _typed(dict, manifest.get("compaction"), entry.get("compaction")) or {}
    low = _number(entry, "p10_ms")
    health = _typed(dict, facts.get("health")) or {}
    return Details(
        arch=fact("arch", str),
        variant=fact("variant", str),
        sparsity=fact("sparsity", (int, float)),
        nonzero_params=fact("nonzero_params", int),
        macs=_typed(int, compaction.get("macs_after")),
        macs_channel_multiple=_typed(int, compaction.get("channel_multiple")),
        size_bytes=_size(model, manifest),
        spread_low_ms=low if low is not None else _number(entry, "min_ms"),
        spread_low_name="p10" if low is not None else "min",
        p90_ms=_number(entry, "p90_ms"),
        runtime_version=_typed(str, entry.get("runtime_version")),
        method=_method(entry),
        dataset=fact("data", str),
        dead=bool(entry.get("dead") or manifest.get("dead") or health.get("input_dependent") is False),
        precision=_typed(str, manifest.get("precision")),
        checkpoint=str(checkpoint) if checkpoint is not None else None,
    )


def _skip_reason(entry: dict[str, Any]) -> str | None:
    if entry.get("emulated") not in (None, False):
        return "emulated"
    if "device" not in entry or _number(entry, "median_ms", "latency_ms") is None:
        return "incomplete"
    return None


def file_accuracy(manifest: dict[str, Any], model: Path | None) -> float | None:
    """The test accuracy the export measured for this very file (an int8 file's own, not PyTorch's)."""
    checks = _typed(list, manifest.get("checks")) or []
    return next((c["test_accuracy"] for c in checks if isinstance(c, dict) and model is not None
                 and c.get("file") == model.name and isinstance(c.get("test_accuracy"), (int, float))), None)


def _point(entry: dict[str, Any], lookup: _Lookup) -> Point | None:
    """A bench/predict result -> Point; None (logged) when it lacks an accuracy everywhere."""
    model = lookup.path(entry.get("model"))
    manifest = lookup.manifest(model)
    checkpoint = lookup.path(entry.get("checkpoint") or manifest.get("checkpoint")) or (
        model if model is not None and model.suffix in CHECKPOINT_SUFFIXES else None)
    facts = lookup.summary(checkpoint)
    accuracy = next((a for a in (_number(entry, "test_accuracy"), file_accuracy(manifest, model),
                                 _number(manifest, "test_accuracy"), _number(facts, "test_accuracy"))
                     if a is not None), None)
    if accuracy is None:
        log.warning("skipping %s on %s: no test accuracy recorded", entry.get("model"), entry.get("device"))
        return None
    latency = float(_number(entry, "median_ms", "latency_ms"))  # present: _skip_reason checked it
    what = f"{lookup.source}: the result for {entry.get('model')} on {entry.get('device')}"
    if not 0 <= accuracy <= 1:
        raise InputError(f"{what} has test accuracy {accuracy}; expected a fraction in 0..1")
    if latency <= 0:
        raise InputError(f"{what} has latency {latency} ms; expected more than 0")
    key = str(entry.get("model_key") or "").split("@")[0]
    label = entry.get("label") or manifest.get("model") or key or Path(str(entry.get("model", "?"))).stem
    device, runtime = _device_and_runtime(entry)
    source = "predicted" if entry.get("latency_source") == "predicted" else "measured"
    return Point(str(label), device, latency, accuracy, source, runtime,
                 _details(entry, model, manifest, checkpoint, facts))


def _entries(path: Path) -> list[dict[str, Any]]:
    """One result, a list, {"results": [...]}, or JSON lines; anything else is an InputError."""
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise InputError(f"{path} is neither JSON nor JSON lines") from None
    if isinstance(data, dict):
        data = data.get("results", [data])
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise InputError(f"{path} holds no result objects")
    return data


def _channel_multiple(device: str) -> int | None:
    from dass_edge.targets import get_target

    try:
        return get_target(device).channel_multiple
    except InputError:  # a device without a target file: its compaction is unknown
        return None


def _borrow_macs(points: list[Point]) -> list[Point]:
    """A prediction from a checkpoint has no manifest: it takes the MACs of an export of the same
    checkpoint in these results compacted with the same channel rounding as the predicted target."""
    known = {(p.details.checkpoint, p.details.macs_channel_multiple): p.details.macs for p in points
             if p.details.checkpoint and p.details.macs is not None}
    out = []
    for p in points:
        if p.details.macs is None and p.details.checkpoint:
            key = (p.details.checkpoint, _channel_multiple(p.device))
            if key in known:
                p = replace(p, details=replace(p.details, macs=known[key], macs_channel_multiple=key[1]))
        out.append(p)
    return out


def load_results(paths: list[str | os.PathLike]) -> Results:
    """Points from result files; emulated timings and entries without device/latency/accuracy are counted
    and left out. No point at all is an InputError."""
    points: list[Point] = []
    skipped = {"emulated": 0, "incomplete": 0}
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"result file {path} does not exist")
        lookup = _Lookup(path)
        for entry in _entries(path):
            reason = _skip_reason(entry)
            point = None if reason else _point(entry, lookup)
            if point is None:
                skipped[reason or "incomplete"] += 1
            else:
                points.append(point)
    if skipped["emulated"]:
        log.info("left out %d emulated timings", skipped["emulated"])
    if not points:
        hidden = f" ({skipped['emulated']} emulated timings are never plotted)" if skipped["emulated"] else ""
        raise InputError(f"no result with a device, a latency and an accuracy in the given files{hidden}")
    return Results(_borrow_macs(points), skipped["emulated"], skipped["incomplete"], [str(p) for p in paths])
