"""One bench call end to end: admit the model (refused once, at the door, if its output does not depend on
its input: bench/alive.py), resolve it (exporting a checkpoint first), measure where the target says (here, on a board over SSH,
or predicted), then gate against a baseline. Returns the contract's dict.

Kept out of the CLI so scripts (benchmarks/, CI helpers) get the same behaviour as ``dass-edge bench``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dass_edge.atomic import sha256_file
from dass_edge.bench import gate
from dass_edge.bench.alive import checkpoint_alive, file_alive
from dass_edge.bench.remote import is_program
from dass_edge.bench.measure import Settings, measure_file, result_from_timing
from dass_edge.bench.lock import DEFAULT_WAIT_S, LockSettings
from dass_edge.bench.results import EMULATED, emulated_error
from dass_edge.errors import DassEdgeError, InputError
from dass_edge.health import Health

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODEL_EXTENSIONS = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite", ".pt": "torch", ".pth": "torch",
                    ".so": "c"}


@dataclass(frozen=True)
class BenchRequest:
    model: Path
    device: str
    settings: Settings = field(default_factory=Settings)
    runtime: str | None = None
    runtime_device: str | None = None  # default: the target's (e.g. OpenVINO GPU, torch cuda)
    export_dir: Path = Path("exported")
    board: dict[str, Any] = field(default_factory=dict)  # --board/--inventory/--host... (None = not given)
    baseline: Path | None = None
    baseline_key: str | None = None
    tolerance: float = gate.DEFAULT_TOLERANCE
    update_baseline: bool = False
    bootstrap_baseline: bool = False  # a missing baseline entry is written from this run instead of an error
    allow_dead: bool = False  # measure a network whose output does not depend on its input (else refused)
    against: Path | None = None  # a reference model measured in the same run (bench/paired.py)
    board_wait_s: float = DEFAULT_WAIT_S  # how long a board another bench holds is waited for (bench/lock.py)
    memory_tolerance: float | None = None  # gate peak memory too, with this tolerance (bench/memory.py)
    allow_env_change: bool = False  # compare with a baseline from another environment (bench/fingerprint.py)


@dataclass(frozen=True)
class ResolvedModel:
    path: Path  # the file to run
    key: str  # its name in baseline files
    test_accuracy: float | None
    checkpoint: Path | None
    dead: bool = False  # only with BenchRequest.allow_dead


def _load_checkpoint(path: Path):  # -> Checkpoint | None
    """A dass-edge checkpoint, or None when ``path`` is some other .pt file (e.g. TorchScript)."""
    from dass_edge import checkpoint
    try:
        return checkpoint.load(path)
    except InputError:
        return None


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("files") else {}


def manifest_of(model: Path) -> dict[str, Any]:
    """The export manifest beside an exported file ({} when there is none): its model name and accuracy."""
    manifest = _read_manifest(model.parent)
    return manifest if model.name in manifest.get("files", ()) else {}


def _current_export(checkpoint: Path, target, export_dir: Path, allow_dead: bool  # noqa: ANN001
                    ) -> tuple[Path, dict[str, Any]] | None:
    """An export of this checkpoint's content for this target, compacted as bench exports, and its manifest,
    if there is one whose files are intact (one marked dead only when dead networks are allowed). Keyed by
    content (export.pipeline.export_key), so a --no-compact export, an export of an older checkpoint at the
    same path or one by another toolkit version is never measured as the current one."""
    from dass_edge.export.pipeline import export_key

    folder = export_dir / checkpoint.stem / target.name
    manifest = _read_manifest(folder)
    if manifest.get("reuse_key") != export_key(checkpoint, target, compact=True):
        return None
    if "dead" not in manifest or (manifest["dead"] and not allow_dead):
        return None
    main = folder / manifest["files"][0]
    if main.is_file() and sha256_file(main) == manifest.get("sha256", {}).get(main.name):
        return main, manifest
    return None


@dataclass(frozen=True)
class Admitted:
    """A bench request's model as it entered: a checkpoint or a model file, and its health, checked once."""

    path: Path
    checkpoint: Any  # Checkpoint | None
    manifest: dict[str, Any]
    health: Health | None  # None: a bare file with no runtime here to assess it

    @property
    def dead(self) -> bool:
        return self.health is not None and not self.health.input_dependent


def admit(request: BenchRequest, target) -> Admitted:  # noqa: ANN001
    """The door of ``bench``: the path checked, a checkpoint loaded, and the one health check, which raises
    DeadModelError for a network whose output does not depend on its input unless the request allows it.
    Everything after it (export, measurement, prediction) carries the result instead of checking again."""
    path = _checked_path(request.model)
    ckpt = _load_checkpoint(path) if path.suffix.lower() in (".pt", ".pth") else None
    if ckpt is not None:
        return Admitted(path, ckpt, {}, checkpoint_alive(ckpt, path.stem, request.allow_dead))
    manifest = manifest_of(path)
    runtime = None if target.latency_source == "predicted" else runtime_for(request, target, path)
    return Admitted(path, None, manifest, file_alive(path, manifest, runtime, request.allow_dead))


def resolve_model(request: BenchRequest, target, admitted: Admitted) -> ResolvedModel:  # noqa: ANN001
    """A model file as given, or a checkpoint exported first in the target's format.

    Only the target's main format is exported (extra formats such as intel-cpu's TFLite take minutes and
    are not measured), and an export of the same checkpoint content and settings is reused.
    """
    path, ckpt = admitted.path, admitted.checkpoint
    if ckpt is None:
        manifest = admitted.manifest
        return ResolvedModel(path, manifest.get("model") or path.stem, manifest.get("test_accuracy"), None,
                             dead=admitted.dead)
    current = _current_export(path, target, request.export_dir, request.allow_dead)
    if current is None:
        from dass_edge.export.pipeline import export_checkpoint
        log.info("exporting %s for %s (%s)", path.name, target.name, target.format)
        made = export_checkpoint(path, replace(target, extra_formats=()), request.export_dir,
                                 allow_dead=request.allow_dead, health=admitted.health)
        exported, dead = Path(made.path) / made.files[0], made.dead  # the target's main format comes first
    else:
        exported, dead = current[0], bool(current[1]["dead"])
        log.info("using the current export %s", exported)
    return ResolvedModel(exported, path.stem, ckpt.test_accuracy, path, dead)


def file_format(path: Path) -> str | None:
    """The export format of a model file: by its suffix, or "c" for the C export's stand-alone program."""
    if path.suffix.lower() in MODEL_EXTENSIONS:
        return MODEL_EXTENSIONS[path.suffix.lower()]
    return "c" if is_program(path) else None


def _checked_path(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if file_format(path) is None:
        raise InputError(f"cannot bench {path.name}: expected a checkpoint (.pt), a model file "
                         f"({', '.join(MODEL_EXTENSIONS)}) or a C export's program")
    return path


def runtime_for(request: BenchRequest, target, model: Path) -> str | None:  # noqa: ANN001
    """--runtime, else the target's runtime when the file is in the target's format, else by extension."""
    if request.runtime:
        return request.runtime
    if file_format(model) == target.format:
        return target.runtime
    return "c" if is_program(model) else None


def board_for(request: BenchRequest, target, gated: bool):  # noqa: ANN001, ANN201
    """The board ``request`` measures ``target`` on (--board / --inventory / --host...). An emulated board
    is refused here, before any copying or timing, when its result would gate or become a baseline."""
    from dass_edge.bench.inventory import resolve_board
    options = dict(request.board)
    board = resolve_board(options.pop("board", None) or target.name, options.pop("inventory", None), **options)
    if board.emulated and gated:
        raise emulated_error(board.destination, "a baseline" if request.update_baseline else "gated")
    return board


def agent_args(request: BenchRequest, target, board) -> list[str]:  # noqa: ANN001
    """The agent's timing settings and runtime device: --runtime-device, else what the board has, else the
    target's default. No memory measurement on an emulated board: it would be qemu's, not the board's (and
    the runner cannot start a second emulated interpreter from inside qemu-user)."""
    device = request.runtime_device or board.runtime_device or target.runtime_device
    args = request.settings.agent_args()
    return [a for a in args if not (board.emulated and a == "--memory")] + ["--device", device]


def _measure(request: BenchRequest, target, model: ResolvedModel) -> dict[str, Any]:  # noqa: ANN001
    runtime = runtime_for(request, target, model.path)
    device = request.runtime_device or target.runtime_device
    if target.latency_source == "ssh":
        from dass_edge.bench.remote import measure_remote
        board = board_for(request, target, gated=request.update_baseline or request.baseline is not None)
        args = agent_args(request, target, board) + (["--runtime", runtime] if runtime else [])
        raw = measure_remote(board, model.path, args, lock=LockSettings(wait_s=request.board_wait_s))
        if board.emulated:
            raw[EMULATED] = True
    elif is_program(model.path):
        raise InputError(f"{model.path.name} is the C export's program for a board; here, bench its library "
                         "(model.so) instead")
    else:
        raw = measure_file(model.path, request.settings, runtime, device)
    result = result_from_timing(raw, device=target.name, latency_source=target.latency_source,
                                settings=request.settings, model=str(model.path))
    result.update({k: raw[k] for k in ("host", EMULATED) if k in raw})
    return result


def _predict(request: BenchRequest, target) -> dict[str, Any]:  # noqa: ANN001
    """Devices without a board: nn-Meter's estimate (written by the predict module)."""
    try:
        from dass_edge.predict.service import predict_for_bench
    except ImportError:
        raise DassEdgeError(f"prediction is not available: {target.name} has latency_source 'predicted' but "
                            "dass_edge.predict.service is missing") from None
    result = dict(predict_for_bench(request.model, target))
    result.setdefault("device", target.name)
    result.setdefault("model", str(request.model))
    result["latency_source"] = "predicted"
    if "round_medians_ms" not in result and "median_ms" in result:
        result["round_medians_ms"] = [result["median_ms"]]  # one deterministic estimate: no noise to allow for
    return result


def run_bench(request: BenchRequest) -> dict[str, Any]:
    """Measure (or predict) and gate; the result dict. A regression is reported in it, not raised."""
    from dass_edge.targets import get_target
    target = get_target(request.device)
    gate.check_before_measuring(request.baseline, request.update_baseline, request.settings.rounds,
                                target.latency_source)
    admitted = admit(request, target)
    if target.latency_source == "predicted":
        dead = admitted.dead
        result = _predict(request, target)
        key = request.baseline_key or request.model.stem
    else:
        model = resolve_model(request, target, admitted)
        dead = model.dead
        result = _measure(request, target, model)
        result["test_accuracy"] = model.test_accuracy
        if model.checkpoint is not None:
            result["checkpoint"] = str(model.checkpoint)
        key = model_key(request, target, model, result["runtime"])
    result["model_key"] = key
    if dead:
        result["dead"] = True  # measured only because allow_dead said so
    if request.update_baseline:
        path = request.baseline or default_baseline(target.name)
        gate.write_baseline(path, key, result)
        result["baseline_written"] = str(path)
    elif request.baseline is not None:
        result.update(gate.gate_on_baseline(result, request.baseline, key, request.tolerance,
                                            request.bootstrap_baseline, request.allow_env_change,
                                            request.memory_tolerance))
    return result


def model_key(request: BenchRequest, target, model: ResolvedModel, runtime: str) -> str:  # noqa: ANN001
    """The model's name in baseline files: --baseline-key, else its own key, suffixed with the runtime
    when that is not the target's (one device file can hold a model in ONNX Runtime, OpenVINO...)."""
    return request.baseline_key or (model.key if runtime == target.runtime else f"{model.key}@{runtime}")


def default_baseline(device: str) -> Path:
    return Path("benchmarks") / "baselines" / f"{device}.json"
