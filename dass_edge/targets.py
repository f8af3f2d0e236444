"""Device targets as data: one TOML file per device in ``targets/``, validated on load.

A target says what to export (format, precision, opset, layout), which runtime runs the file and how its
latency is obtained. Adding a device means adding a file, not code. The folder is the repository's
``targets/`` unless ``DASS_EDGE_TARGETS`` (or an explicit ``directory``) points elsewhere.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from dass_edge.errors import InputError

TARGETS_ENV = "DASS_EDGE_TARGETS"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "targets"

# Allowed values per field; the runtimes a format can run in (the first is its default runtime).
CHOICES: dict[str, tuple[str, ...]] = {
    "format": ("onnx", "openvino", "tflite", "torch", "c"),
    "precision": ("fp32", "fp16", "int8"),
    "input_layout": ("NCHW", "NHWC"),
    "runtime": ("onnxruntime", "openvino", "litert", "tflite-runtime", "torch", "c"),
    "latency_source": ("local", "ssh", "predicted"),
}
RUNTIMES_OF_FORMAT: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime",),
    "openvino": ("openvino",),
    "tflite": ("litert", "tflite-runtime"),
    "torch": ("torch",),
    "c": ("c",),
}
HOST = "host"  # a ``loads_in`` version: whatever version of the runtime is installed on this machine
VERSION = re.compile(r"\d+(\.\d+)*")


@dataclass(frozen=True)
class Target:
    """One device: what to export for it and how to run and time the result.

    ``opset`` is the operator set the device's runtime reads (ONNX opset for ONNX; 1 for OpenVINO means
    opset1 ops only, as the 2021.4 Myriad plugin needs). ``ir_version`` is the ONNX IR version or the
    OpenVINO IR version (10 or 11). ``extra_formats`` are exported beside the main file with the same
    precision and run in each format's default runtime (intel-cpu: OpenVINO and LiteRT next to ONNX).
    ``channel_multiple`` is the channel count that compaction should round kept channels up to.
    ``loads_in`` maps each runtime the exported files must load in to its version on the device, e.g.
    ``{"tflite-runtime": "2.13.0"}`` (the newest wheel a 32-bit Arm board's Python 3.9 can install), or
    ``"host"`` for targets that run here; exports are checked against what that version knows and their
    parity is checked in it. Without the field, each format's runtime on the host. ``c_compiler`` and
    ``c_flags`` build the C export (dass_edge.codegen): the host's gcc or the board's Debian cross compiler,
    and the flags that pick its CPU (``-mcpu``/``-mfpu``/``-march``), recorded so a build can be repeated.
    ``extra_precisions`` are the other precisions the device runs (``--precision``). An fp16 or int8 file
    passes on what it predicts, not on its logits: at most ``max_accuracy_drop`` (a fraction: 0.03 is three
    points) below PyTorch's test accuracy and at least ``min_agreement`` of PyTorch's top-1 answers
    (docs/precision.md says why these defaults).
    """

    name: str
    device: str
    format: str
    precision: str
    input_layout: str
    runtime: str
    runtime_device: str
    latency_source: str
    atol: float
    predictor: str | None = None
    opset: int | None = None
    ir_version: int | None = None
    channel_multiple: int = 1
    extra_formats: tuple[str, ...] = ()
    notes: str = ""
    loads_in: tuple[tuple[str, str], ...] = ()
    c_compiler: str = "gcc"
    c_flags: tuple[str, ...] = ()
    extra_precisions: tuple[str, ...] = ()
    max_accuracy_drop: float = 0.03
    min_agreement: float = 0.85

    @property
    def precisions(self) -> tuple[str, ...]:
        return (self.precision, *self.extra_precisions)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}
        return {**out, "loads_in": dict(self.loads_in)}

    def runtimes_for(self, fmt: str) -> list[tuple[str, str]]:
        """(runtime, version) pairs a file of format ``fmt`` must load in; the format's host runtime when
        ``loads_in`` names none (the main format's is the target's ``runtime``)."""
        named = [(runtime, version) for runtime, version in self.loads_in if runtime in RUNTIMES_OF_FORMAT[fmt]]
        return named or [(self.runtime if fmt == self.format else RUNTIMES_OF_FORMAT[fmt][0], HOST)]


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "device": str, "format": str, "precision": str, "input_layout": str, "runtime": str,
    "runtime_device": str, "latency_source": str, "atol": (int, float), "predictor": str, "opset": int,
    "ir_version": int, "channel_multiple": int, "extra_formats": list, "notes": str,
    "loads_in": dict, "c_compiler": str, "c_flags": list, "extra_precisions": list,
    "max_accuracy_drop": (int, float), "min_agreement": (int, float),
}
REQUIRED = tuple(f.name for f in fields(Target) if f.default is MISSING)


def _check(source: Path, raw: dict[str, Any]) -> Target:
    """Raw TOML table -> Target; every problem names the file and the field."""
    def bad(field: str, why: str) -> InputError:
        return InputError(f"target file {source}: field {field!r} {why}")

    for key in raw:
        if key not in FIELD_TYPES:
            raise bad(key, f"is unknown; known fields: {', '.join(FIELD_TYPES)}")
    for key in REQUIRED:
        if key not in raw:
            raise bad(key, "is missing")
    for key, value in raw.items():
        expected = FIELD_TYPES[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise bad(key, f"has the wrong type ({type(value).__name__})")
        if key in CHOICES and value not in CHOICES[key]:
            raise bad(key, f"is {value!r}; expected one of {', '.join(CHOICES[key])}")
    for extra in raw.get("extra_formats", []):
        if extra not in CHOICES["format"] or extra == raw["format"]:
            raise bad("extra_formats", f"has {extra!r}; expected other formats of {', '.join(CHOICES['format'])}")
    if raw["runtime"] not in RUNTIMES_OF_FORMAT[raw["format"]]:
        raise bad("runtime", f"{raw['runtime']!r} cannot run format {raw['format']!r}")
    if raw["latency_source"] == "predicted" and not raw.get("predictor"):
        raise bad("predictor", "is missing (latency_source is 'predicted')")
    if not raw["atol"] > 0:
        raise bad("atol", "must be positive")
    for extra in raw.get("extra_precisions", []):
        if extra not in CHOICES["precision"] or extra == raw["precision"]:
            raise bad("extra_precisions", f"has {extra!r}; expected other precisions of "
                      f"{', '.join(CHOICES['precision'])}")
    for key in ("max_accuracy_drop", "min_agreement"):
        if not 0 <= raw.get(key, 0) <= 1:
            raise bad(key, "must be a fraction between 0 and 1")
    if raw.get("channel_multiple", 1) < 1:
        raise bad("channel_multiple", "must be at least 1")
    _check_loads_in(raw, bad)
    _check_c_build(raw, bad)
    if raw["name"] != source.stem:
        raise bad("name", f"is {raw['name']!r} but the file is named {source.name}")
    return Target(**{**raw, "atol": float(raw["atol"]), "extra_formats": tuple(raw.get("extra_formats", ())),
                     "loads_in": tuple(raw.get("loads_in", {}).items()), "c_flags": tuple(raw.get("c_flags", ())),
                     "extra_precisions": tuple(raw.get("extra_precisions", ())),
                     **{k: float(raw[k]) for k in ("max_accuracy_drop", "min_agreement") if k in raw}})


def _check_c_build(raw: dict[str, Any], bad: Callable[[str, str], InputError]) -> None:
    """A compiler is one command name; flags are single options (each starting with '-')."""
    compiler = raw.get("c_compiler", "gcc")
    if not compiler or any(c.isspace() for c in compiler) or "/" in compiler:
        raise bad("c_compiler", f"is {compiler!r}; expected a command name such as \"arm-linux-gnueabihf-gcc\"")
    for flag in raw.get("c_flags", []):
        if not isinstance(flag, str) or not flag.startswith("-") or any(c.isspace() for c in flag):
            raise bad("c_flags", f"has {flag!r}; expected single options such as \"-mcpu=cortex-a7\"")


def _check_loads_in(raw: dict[str, Any], bad: Callable[[str, str], InputError]) -> None:
    """Each runtime known and able to read one of the target's formats, each version a release number or
    'host', and every format covered once the field is there."""
    loads_in = raw.get("loads_in")
    if loads_in is None:
        return
    formats = (raw["format"], *raw.get("extra_formats", ()))
    for runtime, version in loads_in.items():
        if not any(runtime in RUNTIMES_OF_FORMAT[fmt] for fmt in formats):
            raise bad("loads_in", f"names {runtime!r}, which reads none of {', '.join(formats)}")
        if not isinstance(version, str) or not (version == HOST or VERSION.fullmatch(version)):
            raise bad("loads_in", f"gives {runtime!r} version {version!r}; expected e.g. \"2.13.0\" or \"host\"")
    for fmt in formats:
        if not any(runtime in RUNTIMES_OF_FORMAT[fmt] for runtime in loads_in):
            raise bad("loads_in", f"names no runtime for the {fmt} files")


def load_target_file(path: Path) -> Target:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"target file {path} cannot be read: {exc}") from None
    return _check(path, raw)


def targets_dir(directory: str | os.PathLike | None = None) -> Path:
    return Path(directory or os.environ.get(TARGETS_ENV) or DEFAULT_DIR)


def load_targets(directory: str | os.PathLike | None = None) -> dict[str, Target]:
    """Every ``*.toml`` of the targets folder, by name (sorted)."""
    folder = targets_dir(directory)
    if not folder.is_dir():
        raise InputError(f"targets folder {folder} does not exist")
    targets = [load_target_file(path) for path in sorted(folder.glob("*.toml"))]
    return {t.name: t for t in targets}


def get_target(name: str, directory: str | os.PathLike | None = None) -> Target:
    targets = load_targets(directory)
    try:
        return targets[name]
    except KeyError:
        raise InputError(f"unknown target {name!r}; known: {', '.join(targets) or '(none)'}") from None
