"""Predict a model's latency on a device: the entry points for the CLI, the bench command and the demo.

A model is an ONNX file or a dass-edge checkpoint (exported to ONNX first: nn-Meter reads ONNX). The
predictor is the target's nn-Meter predictor for devices we cannot measure (``predictor`` in
targets/*.toml) or, for a device we measure, our own calibrated one stored under the device's name.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from dass_edge.errors import InputError
from dass_edge.predict import nnmeter, store

log = logging.getLogger(__name__)


def predictor_name(target: Any) -> str:
    """Which predictor serves a target: its nn-Meter predictor, else ours named after the device."""
    return target.predictor or target.name


def has_predictor(device: str) -> bool:
    """Whether ``predict(model, device)`` would find a predictor (for the demo: skip devices without one)."""
    from dass_edge.targets import get_target

    try:
        store.resolve(predictor_name(get_target(device)))
    except InputError:
        return False
    return True


def _export_onnx(checkpoint_path: Path, out_dir: Path, channel_multiple: int = 1) -> Path:
    """ONNX of a checkpoint as it is deployed (export.choice.deployable), written by the ONNX exporter
    (export/onnx.py). Compaction that fails falls back to the baked network."""
    from dass_edge import checkpoint
    from dass_edge.export.onnx import write_onnx
    from dass_edge.export.choice import deployable

    ckpt = checkpoint.load(checkpoint_path)
    masked = ckpt.build()
    try:
        model, _ = deployable(masked, ckpt.input_shape, channel_multiple)
    except Exception as exc:  # a network compaction cannot trace is still predictable uncompacted
        log.warning("compaction failed (%s); predicting the uncompacted network", exc)
        model, _ = deployable(masked, ckpt.input_shape, channel_multiple, compact=False)
    path = out_dir / f"{checkpoint_path.stem}.onnx"
    write_onnx(model, ckpt.input_shape, path)
    return path


def _onnx_for(model: str | os.PathLike, work_dir: Path, channel_multiple: int = 1) -> tuple[Path, float | None]:
    """(ONNX path, test accuracy if known) for an ONNX file, a checkpoint, or a file with an ONNX twin."""
    path = Path(model)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return path, None
    if suffix in (".pt", ".pth"):
        from dass_edge import checkpoint

        return _export_onnx(path, work_dir, channel_multiple), checkpoint.load(path).test_accuracy
    twin = path.with_suffix(".onnx")
    if twin.is_file():  # an export folder holds the ONNX file beside the .tflite/.xml
        return twin, None
    raise InputError(f"cannot predict from {path.name}: nn-Meter reads ONNX; give the checkpoint (.pt) or "
                     "its ONNX export")


def predict(model: str | os.PathLike, device: str, strict: bool = False, predictor: str | None = None,
            use_nn_meter_cache: bool = False) -> dict[str, Any]:
    """Predicted batch-1 latency of ``model`` on ``device`` with its coverage (see nnmeter.Prediction)."""
    from dass_edge.targets import get_target

    target = get_target(device)
    folder = store.resolve(predictor or predictor_name(target), use_nn_meter_cache)
    predictors = store.load(folder)
    with tempfile.TemporaryDirectory(prefix="dass-edge-predict-") as tmp:
        onnx_path, accuracy = _onnx_for(model, Path(tmp), target.channel_multiple)
        prediction = nnmeter.predict_onnx(onnx_path, predictors, strict)
    result = {"model": str(model), "device": target.name, "runtime": target.runtime,
              "latency_source": "predicted", "median_ms": prediction.latency_ms, **prediction.to_dict()}
    result["predictor"] = predictors.name
    if accuracy is not None:
        result["test_accuracy"] = accuracy
    if not prediction.complete:
        log.warning("%s: %d of %d kernels have no predictor (%s); they count as 0 ms", predictors.name,
                    prediction.kernels_found - prediction.kernels_predicted, prediction.kernels_found,
                    ", ".join(prediction.missing_types))
    return result


def predict_for_bench(model: str | os.PathLike, target: Any) -> dict[str, Any]:
    """The bench contract's fields for a target whose latency source is 'predicted'."""
    result = predict(model, target.name)
    result.pop("latency_ms", None)
    return result
