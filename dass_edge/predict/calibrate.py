"""Build our own kernel predictors for a device we can measure, saved in nn-Meter's layout.

nn-Meter's method (sample kernels, time each alone, fit one regressor per kernel type), with the sampler
kept to the sizes our networks use (sampling.py), dilation/groups/channel-alignment features and a log
target (features.py). A run works in ``.<name>.calibrating`` next to its output folder: measurements are
appended to its ``samples/<kernel>.jsonl`` as they are taken, the regressors are fitted from all samples
at the end, and only the complete folder is swapped onto the output (atomic.swap_dir). An interrupted run
leaves the previous predictor as it was, and the next run resumes from the samples already taken.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import platform
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dass_edge.atomic import swap_dir
from dass_edge.errors import InputError, MissingDependencyError
from dass_edge.predict import features, integrity, nnmeter, ortclock, sampling

log = logging.getLogger(__name__)

# ONNX Runtime's CPU provider fuses Conv+Relu (FusedConv) for plain and depthwise convs.
FUSION_RULES = {"BF_conv_relu": {"obey": True}, "BF_dwconv_relu": {"obey": True}}
SETTINGS_FILE = "calibration.json"
# Convs carry most of a network's latency and have the most varied cost: they get more samples.
SAMPLE_WEIGHT = {"conv-bn-relu": 3, "dwconv-bn-relu": 2}


@dataclass(frozen=True)
class KernelFit:
    kernel_type: str
    samples: int
    held_out: int
    median_error: float  # median |predicted - measured| / measured on held-out samples
    within_10pct: float


def _check_device(device: str) -> None:
    """Only devices whose latency we measure locally with ONNX Runtime can be calibrated here."""
    from dass_edge.targets import get_target

    target = get_target(device)
    if target.latency_source != "local" or target.runtime != "onnxruntime":
        raise InputError(f"calibrate measures with ONNX Runtime on this machine; target {device} is "
                         f"{target.latency_source} ({target.runtime})")


def _settings(device: str, seed: int, threads: int) -> dict[str, Any]:
    import onnxruntime

    return {"device": device, "runtime": "onnxruntime", "runtime_version": onnxruntime.__version__,
            "threads": threads, "seed": seed, "cpu": _cpu_name()}


def _cpu_name() -> str:
    """The CPU model: predictors are only valid on the CPU they were measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _check_settings(folder: Path, settings: dict[str, Any]) -> None:
    path = folder / SETTINGS_FILE
    if path.is_file() and json.loads(path.read_text()) != settings:
        raise InputError(f"{folder} holds samples taken with other settings ({path.read_text().strip()}); "
                         "use another --out or --fresh to discard them")


def _drop_partial_lines(samples: Path) -> None:
    """A run killed mid-write can leave a sample line without its newline: drop it, it is re-measured."""
    for path in samples.glob("*.jsonl"):
        text = path.read_text()
        if text and not text.endswith("\n"):
            path.write_text(text[:text.rfind("\n") + 1])


def _work_dir(out: Path, settings: dict[str, Any], fresh: bool) -> Path:
    """Where a run measures and fits: ``.<name>.calibrating`` beside ``out``, swapped onto ``out`` when
    complete. It outlives an interrupted run (its samples are where the next run resumes); a run that
    extends a finished predictor starts from a copy of it, so the finished one stays usable meanwhile."""
    if out.exists() and not (out / SETTINGS_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not a predictor made by calibrate; choose another --out")
    work = out.parent / f".{out.name}.calibrating"
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    else:
        _check_settings(work if work.is_dir() else out, settings)
    if not work.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        copy = Path(tempfile.mkdtemp(prefix=f".{out.name}.copy.", dir=out.parent))
        if out.is_dir() and not fresh:
            shutil.copytree(out, copy, dirs_exist_ok=True)
        os.replace(copy, work)
    (work / "samples").mkdir(exist_ok=True)
    _drop_partial_lines(work / "samples")
    (work / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))
    (work / "fusion_rules.json").write_text(json.dumps(FUSION_RULES, indent=2))
    return work


def _base_ms(threads: int) -> float:
    """The runtime's per-run cost for a trivial model: subtracted from each kernel, added once per model."""
    s = sampling.Sample("relu", {"h": 1, "c": 1})
    model, inputs = sampling.build(s)
    return ortclock.median_ms(ortclock.session(model, threads), inputs, warmup=20, runs=200, budget_s=0.5)


def _measure_one(s: sampling.Sample, rules: Path, threads: int, base_ms: float) -> dict[str, Any]:
    model, inputs = sampling.build(s)
    if s.kernel_type == "reorder":  # not an nn-Meter kernel: ortgraph.py finds reorders, by (h, c)
        row, extra = [s.config["h"], s.config["c"]], []
    else:
        kernels = [k for k in nnmeter.detect_kernels(sampling.detection_view(model), rules)
                   if k.kernel_type == s.kernel_type]
        if len(kernels) != 1:
            raise RuntimeError(f"kernel detection found {len(kernels)} {s.kernel_type} kernels in its own sample")
        row, extra = list(kernels[0].row), list(kernels[0].extra)
    ms = ortclock.median_ms(ortclock.session(model, threads), inputs)
    record = {"config": s.config, "row": row, "extra": extra,
              "ms": max(ms - base_ms, 1e-4), "raw_ms": ms}
    if s.kernel_type in sampling.LEAD_TYPES:  # cost in context: (lead + conv) - lead
        led, led_inputs = sampling.build(s, lead=True)
        lead, lead_inputs = sampling.lead_only(s)
        with_lead = ortclock.median_ms(ortclock.session(led, threads), led_inputs)
        lead_ms = ortclock.median_ms(ortclock.session(lead, threads), lead_inputs)
        record.update(ms=max(with_lead - lead_ms, 1e-4), alone_ms=record["ms"])
    return record


def target_ms(record: dict[str, Any]) -> float:
    """The latency a regressor learns. A conv timed alone pays the layout reorders ONNX Runtime wraps
    around a lone blocked conv; inside a network most of those are absent, and the ones that remain are
    added by ortgraph.py. So convs learn their cost after a lead conv (``ms``); ``alone_ms`` is kept for
    comparison (learning it, or the geometric mean of both, was worse on the benchmark: docs/predict.md)."""
    return record["ms"]


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _fit(kernel_type: str, records: list[dict[str, Any]], seed: int) -> tuple[Any, KernelFit]:
    import numpy as np
    from sklearn.ensemble import ExtraTreesRegressor

    x = np.array([features.derive(kernel_type, r["row"] + r["extra"]) for r in records])
    y = np.log(np.array([target_ms(r) for r in records]))
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_test = max(1, len(order) // 5) if len(order) >= 5 else 0

    def forest() -> Any:
        # Extra-trees beat a random forest and gradient boosting on held-out conv kernels here (12% vs 16%
        # and 11% median error at 1,000 samples) and are smooth enough between sampled channel counts.
        return ExtraTreesRegressor(n_estimators=120, random_state=seed, n_jobs=1)

    median_error, within = float("nan"), float("nan")
    if n_test:
        test, train = order[:n_test], order[n_test:]
        held = forest().fit(x[train], y[train])
        rel = np.abs(np.exp(held.predict(x[test]) - y[test]) - 1)
        median_error, within = float(np.median(rel)), float(np.mean(rel <= 0.10))
    model = forest().fit(x, y)
    return features.KernelRegressor(kernel_type, model), KernelFit(kernel_type, len(records), n_test,
                                                                   median_error, within)


def calibrate(device: str, out_dir: str | os.PathLike, samples: int = 200, seed: int = 0, threads: int = 1,
              kernel_types: tuple[str, ...] = sampling.KERNEL_TYPES, fresh: bool = False,
              progress: bool = True) -> Path:
    """Measure ``samples`` kernels per type (x SAMPLE_WEIGHT) on ``device``, fit, write a predictor dir.

    ``samples=60`` (the demo's) took 48 s and ``samples=300`` 268 s on 2 shared cores (docs/predict.md).
    Re-running with the same arguments resumes; more samples extend the existing ones.
    """
    try:
        import onnxruntime  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "onnxruntime", "predict") from None
    unknown = set(kernel_types) - set(sampling.KERNEL_TYPES)
    if unknown:
        raise InputError(f"unknown kernel types {sorted(unknown)}; known: {', '.join(sampling.KERNEL_TYPES)}")
    if samples < 1:
        raise InputError("--samples must be at least 1")
    _check_device(device)
    out = Path(out_dir)
    settings = _settings(device, seed, threads)
    work = _work_dir(out, settings, fresh)
    started = time.monotonic()
    base_ms = _base_ms(threads)
    wanted = {t: samples * SAMPLE_WEIGHT.get(t, 1) for t in kernel_types}
    todo = {t: range(len(_read(work / "samples" / f"{t}.jsonl")), n) for t, n in wanted.items()}
    _measure_all(work, todo, seed, threads, base_ms, progress)
    fits = []
    for t in kernel_types:
        regressor, fit = _fit(t, _read(work / "samples" / f"{t}.jsonl")[:wanted[t]], seed)
        with open(work / f"{t}.pkl", "wb") as f:
            pickle.dump(regressor, f)
        fits.append(fit)
        log.info("%s: %d samples, held-out median error %.1f%%", t, fit.samples, 100 * fit.median_error)
    _write_metadata(work, out.name, settings, base_ms, fits, time.monotonic() - started)
    swap_dir(work, out)
    return out


def _measure_all(work: Path, todo: dict[str, range], seed: int, threads: int, base_ms: float,
                 progress: bool) -> None:
    from tqdm import tqdm

    rules = work / "fusion_rules.json"
    with tqdm(total=sum(len(r) for r in todo.values()), desc="calibrating kernels", unit="kernel",
              disable=None if progress else True, leave=False) as bar:  # None: no bar off a terminal
        for kernel_type, indices in todo.items():
            with open(work / "samples" / f"{kernel_type}.jsonl", "a") as f:
                for i in indices:
                    record = _measure_one(sampling.sample(kernel_type, seed, i), rules, threads, base_ms)
                    f.write(json.dumps(record) + "\n")
                    f.flush()  # a crash loses at most the kernel being measured
                    bar.set_postfix_str(kernel_type)
                    bar.update()


def _write_metadata(work: Path, name: str, settings: dict[str, Any], base_ms: float, fits: list[KernelFit],
                    seconds: float) -> None:
    def clean(v: float) -> float | None:
        return None if math.isnan(v) else round(v, 4)

    metadata = {
        "name": name, **settings, "base_ms": base_ms, "made_by": "dass-edge calibrate",
        "ranges": {"sizes": list(sampling.SIZES), "max_macs": sampling.MAX_MACS,
                   "max_elements": sampling.MAX_ELEMENTS, "kernels": [1, 3, 5], "strides": [1, 2],
                   "dilations": [1, 2], "conv_channels": [2, 512], "dwconv_channels": [4, 1536]},
        "held_out": {f.kernel_type: {"samples": f.samples, "held_out": f.held_out,
                                     "median_error": clean(f.median_error), "within_10pct": clean(f.within_10pct)}
                     for f in fits},
        "conv_target": "conv timed after a 1x1 lead conv (calibrate.target_ms); reorders from ortgraph.py",
        "seconds": round(seconds, 1),
        "sha256": integrity.digests(work),
    }
    (work / integrity.METADATA).write_text(json.dumps(metadata, indent=2))
