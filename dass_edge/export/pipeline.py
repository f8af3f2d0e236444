"""Checkpoint -> device files: health -> prepare (bake masks) -> export each format -> parity -> manifest.

A network whose output does not depend on its input is refused before anything is written (DeadModelError,
see dass_edge.health), unless ``allow_dead`` asks for it explicitly; its manifest then says ``"dead": true``.
Everything is written into a temporary folder beside the destination and renamed to
``<out>/<model>/<target>/`` only once every file has passed its parity check, so a failure at any stage
leaves nothing behind and an earlier good export stays in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dass_edge import checkpoint as ckpt_io
from dass_edge.atomic import sha256_file, swap_dir
from dass_edge.checkpoint import Checkpoint
from dass_edge.errors import DassEdgeError, InputError
from dass_edge.export import PRECISIONS, Artifact, formats_at, get_exporter
from dass_edge.export.choice import Forms, candidates, choose, why_untimed
from dass_edge.export.conversions import ConversionCache
from dass_edge.export.quantize import Calibration, calibration_set, int8_weights
from dass_edge.export.validate import (CONSTANT, HOST_ONLY, MAX_REAL_IMAGES, PASS, LabelledImages, Parity,
                                      check_inputs, check_parity, check_session, labelled_images)
from dass_edge.health import Health, assess, require_alive
from dass_edge.outputs import ensure_writable
from dass_edge.search import sparse
from dass_edge.targets import Target, get_target

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What was exported and how well it matches PyTorch; written as ``manifest.json`` beside the files."""

    model: str
    checkpoint: str
    target: str
    device: str
    format: str
    precision: str
    runtime: str
    runtime_device: str
    latency_source: str
    predictor: str | None
    files: list[str]
    model_files: dict[str, str]  # per format, the file its runtime loads (the rest: weights, sources, tools)
    format_files: dict[str, list[str]]  # per format, every file it wrote
    sha256: dict[str, str]
    size_bytes: dict[str, int]
    input_shape: list[int]
    input_layout: str
    params: int
    nonzero_params: int
    sparsity: float
    max_abs_diff: float
    atol: float
    top1_agreement: float | None
    checks: list[dict[str, Any]]  # one validate.Parity per file and board runtime version
    validation: str  # validation_summary of the checks: "pass" only if each ran in its board runtime version
    tools: dict[str, str]
    test_accuracy: float | None
    compacted: bool
    compaction: dict[str, int] | None  # the main format's compact form (whether or not it shipped: ``forms``):
    # params and MACs before/after, channel multiple; None without compaction
    forms: dict[str, dict[str, Any]]  # per format: the form it ships (masked, compact/N) and why (choice.py)
    export_seconds: float
    calibration: dict[str, Any] | None = None  # int8: which training images calibrated it (quantize.py)
    weights: dict[str, dict[str, int]] = field(default_factory=dict)  # per format: non-zero weights in the file
    left_out: dict[str, str] = field(default_factory=dict)  # extra formats not written at this precision, why
    health: dict[str, Any] | None = None  # Health.to_dict(): the checkpoint's record, or assessed on export
    dead: bool = False  # the output does not depend on the input; exported only because allow_dead said so
    reuse_key: dict[str, Any] | None = None  # export_key(): what must match for bench to reuse these files
    path: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Data:
    """What an export takes from the checkpoint's data set: test images (a few check the logits, all of them
    the predictions) with their labels, and training images to calibrate int8 from."""

    x_test: np.ndarray
    y_test: np.ndarray
    x_train: np.ndarray
    name: str


def _data(checkpoint: Checkpoint) -> Data | None:
    """The checkpoint's data set as it was trained and tested on, or None when it is not available here."""
    name = checkpoint.data.get("name")
    return _load_data(name, checkpoint.data.get("data_dir"), checkpoint.spec.image_size,
                      checkpoint.data.get("test_samples")) if name else None


@functools.lru_cache(maxsize=4)
def _load_data(name: str, data_dir: str | None, image_size: int, test_samples: int | None) -> Data | None:
    """Cached: exporting one checkpoint for every target reads its data set once, not per target."""
    from dass_edge.data.datasets import load_dataset

    try:
        data = load_dataset(name, data_dir, image_size).subset(None, test_samples)
    except (DassEdgeError, OSError) as exc:
        log.warning("no test images for the parity check (%s)", exc)
        return None
    return Data(data.x_test.numpy(), data.y_test.numpy(), data.x_train.numpy(), name)


def _test_images(checkpoint: Checkpoint) -> np.ndarray | None:
    """Real test images for the logit check, or None when the data set is not available here."""
    data = _data(checkpoint)
    return None if data is None else data.x_test[:MAX_REAL_IMAGES]


def checkpoint_health(checkpoint: Checkpoint, model: nn.Module | None = None) -> Health:
    """The checkpoint's stored health, else assessed now on its real test images (the parity check's) and
    random inputs; ``model`` is ``checkpoint.build()`` when the caller already has it."""
    if checkpoint.health is not None:
        return Health.from_dict(checkpoint.health)
    images = _test_images(checkpoint)
    real = torch.empty((0, *checkpoint.input_shape[1:])) if images is None else torch.from_numpy(images)
    return assess(model if model is not None else checkpoint.build(), real)


def admit(checkpoint_path: Path, allow_dead: bool) -> Health:
    """The one health check of an export request that covers several targets: DeadModelError for a dead
    network (a fact about the network, the same for every target) unless ``allow_dead``; the Health to
    pass to each export_checkpoint call."""
    health = checkpoint_health(ckpt_io.load(checkpoint_path))
    require_alive(health, Path(checkpoint_path).stem, allow_dead)
    return health


def validation_summary(checks: list[Parity]) -> str:
    """One word for the manifest: the worst verdict of the checks (a constant output, then a check that
    ran in another runtime than the board's, then pass)."""
    verdicts = {p.verdict for p in checks}
    return next(v for v in (CONSTANT, HOST_ONLY, PASS) if v in verdicts)


@dataclass(frozen=True)
class Checks:
    """What every file of one export is checked on."""

    inputs: list[np.ndarray]
    real: int  # the last ``real`` inputs are real test images
    split: LabelledImages | None  # the test split, for accuracy and agreement
    allow_dead: bool


def _export_format(forms: Forms, compact: bool, reference: nn.Module, shape: tuple[int, ...], target: Target,
                   fmt: str, out: Path, work: Path, checks: Checks, conversions: ConversionCache | None,
                   calibration: Calibration | None) -> tuple[Artifact, list[Parity], dict[str, Any]]:
    """Export the form of the network this format ships and compare the file with ``reference``, the
    masked checkpoint model, in each runtime version the target's board has: parity then vouches for
    compaction, conversion and quantization together."""
    spec = replace(target, format=fmt)
    try:
        exporter = get_exporter(fmt, conversions, calibration)
        names = candidates(fmt, target, compact)
        if len(names) > 1:
            artifact, chosen = choose([forms.get(n) for n in names], exporter, shape, spec, out, work / fmt)
        else:
            artifact = exporter(forms.get(names[0]).model, shape, spec, out, work)
            chosen = {"chosen": names[0], "how": "rule", "why": why_untimed(names[0], target, fmt)}
    except DassEdgeError:
        raise
    except Exception as exc:  # converters raise anything; the user gets one line, the log the rest
        log.debug("%s export failed", fmt, exc_info=True)
        raise DassEdgeError(f"{fmt} {target.precision} export for {target.name} failed: {type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    by_prediction = None if target.precision == "fp32" else (target.max_accuracy_drop, target.min_agreement)
    parities = []
    for runtime, version in target.runtimes_for(fmt):
        session = check_session(artifact.model_file, fmt, artifact.input_layout, runtime, version, target)
        parities.append(check_parity(reference, session, artifact.model_file.name, target.atol, checks.inputs,
                                     checks.real, checks.allow_dead, required=(runtime, version),
                                     split=checks.split, by_prediction=by_prediction))
        done = parities[-1]
        log.info("%s: %s in %s %s (%s): max abs diff %.3g, test accuracy %s, %s", target.name,
                 artifact.model_file.name, session.runtime, session.version, done.ran_in, done.max_abs_diff,
                 "n/a" if done.test_accuracy is None else f"{done.test_accuracy:.3f}", done.verdict)
    return artifact, parities, chosen


def _weights(artifact: Artifact, precision: str, model: nn.Module) -> dict[str, int]:
    """Non-zero weights the file holds: read back from an int8 file (zeros checked there), else those of the
    exported form's convolutions and linear layers (fp32 and fp16 store each weight as it is; the C
    generator skips zeros but stores every non-zero)."""
    if precision == "int8" and artifact.format != "c":
        return int8_weights(artifact.model_file, artifact.format).to_dict()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return {"nonzero_weights": sum(int(torch.count_nonzero(m.weight)) for m in layers)}


def _write_files(checkpoint: Checkpoint, forms: Forms, compact: bool, reference: nn.Module, target: Target,
                 out: Path, work: Path, health: Health, allow_dead: bool,
                 names: dict[str, Any], conversions: ConversionCache | None) -> Manifest:
    started = time.perf_counter()
    shape = checkpoint.input_shape
    data = _data(checkpoint)
    images = None if data is None else data.x_test[:MAX_REAL_IMAGES]
    checks = Checks(check_inputs(shape, images), 0 if images is None else len(images),
                    None if data is None else labelled_images(reference, data.x_test, data.y_test), allow_dead)
    calibration = None
    if target.precision == "int8" and data is not None:
        calibration = calibration_set(data.x_train, data.name)
    formats = formats_at(target)
    left_out = {fmt: f"the {fmt} exporter writes {', '.join(PRECISIONS[fmt])}, not {target.precision}"
                for fmt in target.extra_formats if fmt not in formats}
    results = [_export_format(forms, compact, reference, shape, target, fmt, out, work, checks, conversions,
                              calibration) for fmt in formats]
    main = results[0][0]
    chosen = {artifact.format: record for artifact, _, record in results}
    compaction = forms.compaction.get(candidates(target.format, target, compact)[0])
    if main.input_layout != target.input_layout:
        raise InputError(f"target {target.name} asks for {target.input_layout} input, the {main.format} "
                         f"exporter writes {main.input_layout}")
    files = [f for artifact, _, _ in results for f in artifact.files]
    parities = [parity for _, found, _ in results for parity in found]
    tools: dict[str, str] = {}
    for artifact, _, _ in results:
        tools.update(artifact.tools)
    tools.update({parity.runtime: parity.runtime_version for parity in parities})
    agreements = [p.top1_agreement for p in parities if p.top1_agreement is not None]
    return Manifest(
        target=target.name, device=target.device, format=target.format, precision=target.precision,
        runtime=target.runtime, runtime_device=target.runtime_device, latency_source=target.latency_source,
        predictor=target.predictor, files=[f.name for f in files],
        model_files={artifact.format: artifact.model_file.name for artifact, _, _ in results},
        format_files={artifact.format: [f.name for f in artifact.files] for artifact, _, _ in results},
        sha256={f.name: sha256_file(f) for f in files}, size_bytes={f.name: f.stat().st_size for f in files},
        input_shape=list(shape), input_layout=main.input_layout, sparsity=checkpoint.sparsity,
        max_abs_diff=max(p.max_abs_diff for p in parities), atol=target.atol,
        top1_agreement=min(agreements) if agreements else None, checks=[asdict(p) for p in parities],
        validation=validation_summary(parities),
        tools=tools, test_accuracy=checkpoint.test_accuracy,
        compacted=compact, compaction=compaction, forms=chosen,
        export_seconds=round(time.perf_counter() - started, 3),
        calibration=None if calibration is None else calibration.record,
        weights={artifact.format: _weights(artifact, target.precision, forms.get(record["chosen"]).model)
                 for artifact, _, record in results},
        left_out=left_out, health=health.to_dict(),
        dead=not health.input_dependent or any(p.verdict == CONSTANT for p in parities), **names)


def toolkit_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dass-edge")
    except metadata.PackageNotFoundError:
        return "unknown"


def export_key(checkpoint_path: Path, target: Target, compact: bool) -> dict[str, Any]:
    """What an export depends on, by content: the checkpoint's bytes, the target's settings (its extra
    formats aside: they add files beside the main one, never change it), compaction and the toolkit's
    version. An export whose manifest records another key is stale, whatever its path or timestamps say."""
    settings = {k: v for k, v in target.to_dict().items() if k not in ("extra_formats", "notes")}
    return {"checkpoint_sha256": sha256_file(checkpoint_path), "target": target.name,
            "target_sha256": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest(),
            "compacted": compact, "toolkit_version": toolkit_version()}


def at_precision(target: Target, precision: str | None) -> Target:
    """``target`` exporting at ``precision``, one of the precisions it names (None: its default)."""
    if precision is None or precision == target.precision:
        return target
    if precision not in target.precisions:
        raise InputError(f"target {target.name} runs {', '.join(target.precisions)}, not {precision} (its "
                         "precision and extra_precisions)")
    return replace(target, precision=precision)


def export_folder(out_dir: Path, model: str, target: Target, precision: str | None = None) -> Path:
    """``<out>/<model>/<target>/`` at the target's default precision, ``<target>-<precision>/`` at another."""
    other = precision is not None and precision != target.precision
    return Path(out_dir) / model / (f"{target.name}-{precision}" if other else target.name)


def export_checkpoint(checkpoint_path: str | os.PathLike, target: str | Target, out_dir: Path = Path("exported"),
                      *, compact: bool = True, allow_dead: bool = False, precision: str | None = None,
                      conversions: ConversionCache | None = None, health: Health | None = None) -> Manifest:
    """Export one checkpoint for one target into ``out_dir/<model>/<target>/`` (``<target>-<precision>/``
    for another of the target's precisions than its default); returns its manifest.

    A dead network (output independent of the input) raises DeadModelError before anything is written;
    ``allow_dead`` exports it anyway, marked ``dead`` in the manifest, its parity checks not passed. Exports
    of one checkpoint for several targets share ``conversions`` to convert each distinct file once. A caller
    that has already checked the checkpoint's ``health`` (bench, at its door) passes it on."""
    base = get_target(target) if isinstance(target, str) else target
    target = at_precision(base, precision)
    checkpoint_path = Path(checkpoint_path)
    checkpoint = ckpt_io.load(checkpoint_path)
    model = checkpoint.build()
    name = checkpoint_path.stem
    if health is None:
        health = checkpoint_health(checkpoint, model)
        require_alive(health, name, allow_dead)
    params, nonzero = sparse.count_params(model)
    forms = Forms(model, checkpoint.input_shape)
    dest = export_folder(out_dir, name, base, precision)
    created = ensure_writable(dest.parent)  # the folders made, removed again if the export fails
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=dest.parent))
    try:
        work = tmp / ".work"
        work.mkdir()
        manifest = _write_files(checkpoint, forms, compact, model, target, tmp, work, health, allow_dead,
                                dict(model=name, checkpoint=str(checkpoint_path), params=params,
                                     nonzero_params=nonzero), conversions)
        shutil.rmtree(work)
        manifest = replace(manifest, path=str(dest), reuse_key=export_key(checkpoint_path, target, compact))
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        swap_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(created):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    log.info("exported %s for %s to %s", name, target.name, dest)
    return manifest
