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


def _export_onnx(checkpoint_path: Path, out_dir: Path) -> Path:
    """ONNX of a checkpoint, through the export pipeline when present, else torch's dynamo exporter."""
    from dass_edge import checkpoint

    ckpt = checkpoint.load(checkpoint_path)
    try:
        from dass_edge.export.onnx import export_onnx  # the export engineer's exporter
    except ImportError:
        export_onnx = None
    path = out_dir / f"{checkpoint_path.stem}.onnx"
    if export_onnx is not None:
        try:
            return Path(export_onnx(ckpt, path))
        except TypeError:
            log.debug("export.onnx.export_onnx has another signature; using torch.onnx directly")
    import torch

    from dass_edge.search import sparse

    model = sparse.bake(ckpt.build())
    torch.onnx.export(model, (torch.zeros(ckpt.input_shape),), str(path), dynamo=True, external_data=False,
                      verbose=False)
    return path


def _onnx_for(model: str | os.PathLike, work_dir: Path) -> tuple[Path, float | None]:
    """(ONNX path, test accuracy if known) for an ONNX file, a checkpoint, or a file with an ONNX twin."""
    path = Path(model)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return path, None
    if suffix in (".pt", ".pth"):
        from dass_edge import checkpoint

        return _export_onnx(path, work_dir), checkpoint.load(path).test_accuracy
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
    predictors = nnmeter.load_predictors(folder)
    with tempfile.TemporaryDirectory(prefix="dass-edge-predict-") as tmp:
        onnx_path, accuracy = _onnx_for(model, Path(tmp))
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
