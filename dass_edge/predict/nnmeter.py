"""ONNX -> nn-Meter IR -> kernels -> per-kernel predictors, with the coverage nn-Meter does not report.

nn-Meter sums the predictions of the kernels it has a predictor for and silently counts the rest as 0 ms.
Here every prediction carries its coverage (kernels found and predicted, by type, and the share of MACs
predicted), and ``strict`` refuses an incomplete one. Predictors are read from a directory in nn-Meter's
layout (``<kernel>.pkl`` + ``fusion_rules.json``, optionally our ``metadata.json``) and wrapped in
nn-Meter's own ``nnMeterPredictor`` class, so nothing under ``~/.nn_meter`` is read or written.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dass_edge.errors import InputError, MissingDependencyError
from dass_edge.predict import features

log = logging.getLogger(__name__)


def import_nn_meter() -> Any:
    """Import nn_meter quietly: it needs pkg_resources (setuptools<82) and logs to stdout by default."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import nn_meter
    except ImportError as exc:
        raise MissingDependencyError(f"nn-meter (import failed: {exc})", "predict") from None
    nn_log = logging.getLogger("nn-Meter")
    nn_log.handlers.clear()  # its handler prints to stdout, which would break --json output
    nn_log.propagate = True
    nn_log.setLevel(logging.ERROR)  # it warns on every call that our onnx version is "not well tested"
    return nn_meter


@dataclass
class PredictorDir:
    """A set of kernel predictors in nn-Meter's layout."""

    path: Path
    models: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name  # the store name: metadata's name is where it was calibrated

    @property
    def fusion_rules(self) -> Path:
        return self.path / "fusion_rules.json"

    @property
    def base_ms(self) -> float:
        """Per-inference overhead of the runtime (our predictors only), added once per model."""
        return float(self.metadata.get("base_ms", 0.0))

    @cached_property
    def nn_meter(self) -> Any:
        """nn-Meter's own predictor class over these models."""
        import_nn_meter()
        from nn_meter.predictor.nn_meter_predictor import nnMeterPredictor

        return nnMeterPredictor(self.models, str(self.fusion_rules))


def load_predictors(path: str | os.PathLike, require_checksums: bool = False) -> PredictorDir:
    """Read ``<kernel>.pkl`` files (through the restricted unpickler, old scikit-learn pickles upgraded),
    after checking them against the checksums in metadata.json where it has them (``require_checksums``:
    refuse a folder without)."""
    from dass_edge.predict import integrity, legacy_pickle

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"predictor directory {path} does not exist")
    if not (path / "fusion_rules.json").is_file():
        raise InputError(f"{path} is not an nn-Meter predictor directory: fusion_rules.json is missing")
    metadata = integrity.read_metadata(path)
    if "sha256" in metadata:
        integrity.verify(path, metadata["sha256"])
    elif require_checksums:
        raise InputError(f"predictor {path} has no checksums (sha256 in {integrity.METADATA}); add it again with "
                         "`dass-edge predictors add` to record them")
    models = {p.stem: legacy_pickle.load(p) for p in sorted(path.glob("*.pkl"))}
    if not models:
        raise InputError(f"{path} holds no kernel predictors (<kernel>.pkl)")
    for kernel, model in models.items():
        if not callable(getattr(model, "predict", None)):
            raise InputError(f"{path / kernel}.pkl holds a {type(model).__name__}, not a regressor")
    log.info("loaded %d kernel predictors from %s", len(models), path)
    return PredictorDir(path, models, metadata)


@dataclass(frozen=True)
class Kernel:
    """One detected kernel: nn-Meter's op name, its predictor name, nn-Meter's row, our extras, MACs."""

    name: str
    op: str
    kernel_type: str | None  # None: no nn-Meter feature extractor for this op
    row: tuple[float, ...]
    extra: tuple[float, ...]
    macs: float


def _graph(onnx_model: str | os.PathLike | Any) -> dict[str, Any]:
    import_nn_meter()
    import onnx
    from nn_meter.ir_converter.utils import onnx_model_to_graph

    if isinstance(onnx_model, (str, os.PathLike)):
        if not Path(onnx_model).is_file():
            raise InputError(f"ONNX file {onnx_model} does not exist")
        try:
            onnx_model = onnx.load(str(onnx_model))
        except Exception as exc:  # onnx raises DecodeError and others for a damaged file
            raise InputError(f"{onnx_model} is not a readable ONNX file ({type(exc).__name__})") from None
    return onnx_model_to_graph(onnx_model)


def detect_kernels(onnx_model: str | os.PathLike | Any, fusion_rules: str | os.PathLike) -> list[Kernel]:
    """nn-Meter's kernel detection under ``fusion_rules``, each kernel enriched with dilation/groups/MACs.

    ``onnx_model`` is a path or an ``onnx.ModelProto`` (calibration detects its one-kernel models in memory).
    """
    import_nn_meter()
    from nn_meter.kernel_detector import KernelDetector
    from nn_meter.predictor.prediction.extract_feature import get_predict_features
    from nn_meter.predictor.prediction.utils import get_kernel_name

    detector = KernelDetector(str(fusion_rules))
    detector.load_graph(_graph(onnx_model))
    found = detector.get_kernels()
    first_node = {id(k): layer for layer, k in detector._layer_kernel_dict.items()}  # nn-Meter 2.0 internals
    kernels = []
    for kernel in found:
        op = kernel["op"]
        if op in features.NEGLIGIBLE_OPS:
            continue
        rows = get_predict_features([kernel])
        row = tuple(rows[0][op]) if rows else ()
        kernel_type = get_kernel_name(op) if rows else None
        if kernel_type is not None and kernel_type not in features.BASE_LENGTH:
            kernel_type = None  # nn-Meter features exist (se, hswish...) but our tables do not know it
        extra: tuple[float, ...] = ()
        if kernel_type is not None:
            node = detector.model_graph.get_node_attr(first_node[id(kernel)])
            extra = tuple(features.extras(kernel_type, node.get("attr", {}), node.get("input_shape", [])))
        full = row + extra
        macs = features.macs(kernel_type, full) if kernel_type else 0.0
        kernels.append(Kernel(kernel["name"], op, kernel_type, row, extra, macs))
    return kernels


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    predictor: str
    kernels_found: int
    kernels_predicted: int
    coverage_macs: float
    by_type: dict[str, dict[str, float]]  # type -> found, predicted, ms, macs, macs_predicted
    runtime: dict[str, float] = field(default_factory=dict)  # reorders / folded adds (ortgraph.py)

    @property
    def complete(self) -> bool:
        return self.kernels_predicted == self.kernels_found

    @property
    def missing_types(self) -> list[str]:
        return sorted(t for t, v in self.by_type.items() if v["predicted"] < v["found"])

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "predictor": self.predictor, "kernels_found": self.kernels_found,
                "kernels_predicted": self.kernels_predicted, "coverage_macs": self.coverage_macs,
                "missing_types": self.missing_types, "by_type": self.by_type, "runtime_graph": self.runtime}


def _is_ours(model: Any) -> bool:
    return isinstance(model, features.KernelRegressor)


def kernel_ms(kernels: list[Kernel], predictors: PredictorDir) -> list[float | None]:
    """Each kernel's predicted ms (None: no predictor). One predict call per kernel type, as nn-Meter does;
    our regressors get the extras, nn-Meter's released ones their own rows."""
    rows: dict[str, list[tuple[float, ...]]] = {}
    where: dict[str, list[int]] = {}
    for i, k in enumerate(kernels):
        model = predictors.models.get(k.kernel_type) if k.kernel_type else None
        if model is not None:
            rows.setdefault(k.kernel_type, []).append(k.row + k.extra if _is_ours(model) else k.row)
            where.setdefault(k.kernel_type, []).append(i)
    out: list[float | None] = [None] * len(kernels)
    for kernel_type, batch in rows.items():
        for i, ms in zip(where[kernel_type], predictors.models[kernel_type].predict(batch)):
            out[i] = float(ms)
    return out


def predict_kernels(kernels: list[Kernel], predictors: PredictorDir, strict: bool = False,
                    graph: Any = None) -> Prediction:
    """Per-kernel predictions summed, with the coverage of what was and was not predicted.

    ``graph`` (an ortgraph.RuntimeGraph, our ONNX Runtime predictors only) adds the runtime's layout
    reorders and drops the adds it folds into convs.
    """
    ms = kernel_ms(kernels, predictors)
    runtime: dict[str, float] = {}
    if graph is not None:
        ms, runtime = _runtime_adjust(kernels, ms, predictors, graph)
    by_type: dict[str, dict[str, float]] = {}
    for k, k_ms in zip(kernels, ms):
        entry = by_type.setdefault(k.kernel_type or k.op,
                                   {"found": 0, "predicted": 0, "ms": 0.0, "macs": 0.0, "macs_predicted": 0.0})
        entry["found"] += 1
        entry["macs"] += k.macs
        if k_ms is not None:
            entry["predicted"] += 1
            entry["macs_predicted"] += k.macs
            entry["ms"] += k_ms
    body_ms = sum(m for m in ms if m is not None) + runtime.get("reorder_ms", 0.0)
    found = sum(int(v["found"]) for v in by_type.values())
    predicted = sum(int(v["predicted"]) for v in by_type.values())
    total_macs = sum(v["macs"] for v in by_type.values())
    covered = sum(v["macs_predicted"] for v in by_type.values())
    prediction = Prediction(
        latency_ms=predictors.base_ms + body_ms,
        predictor=predictors.name, kernels_found=found, kernels_predicted=predicted,
        coverage_macs=covered / total_macs if total_macs else 1.0, by_type=by_type, runtime=runtime,
    )
    if strict and not prediction.complete:
        missing = ", ".join(f"{t} ({int(by_type[t]['found'] - by_type[t]['predicted'])})"
                            for t in prediction.missing_types)
        raise InputError(f"predictor {predictors.name} has no model for kernels: {missing}; "
                         f"{predicted}/{found} kernels predicted (drop --strict to accept a partial sum)")
    return prediction


def _runtime_adjust(kernels: list[Kernel], ms: list[float | None], predictors: PredictorDir,
                    graph: Any) -> tuple[list[float | None], dict[str, float]]:
    """Scale add kernels by the share ONNX Runtime leaves unfolded; predict its reorders (a calibrated
    'reorder' sample is a pair of reorders, hence the half)."""
    adds = {i for i, k in enumerate(kernels) if k.kernel_type == "add" and ms[i] is not None}
    keep = min(1.0, graph.adds_left / len(adds)) if adds else 1.0
    adjusted = [m * keep if i in adds and m is not None else m for i, m in enumerate(ms)]
    pairs = predictors.models["reorder"].predict([[h, c] for h, c in graph.reorders]) if graph.reorders else []
    return adjusted, {"reorders": len(graph.reorders), "reorder_ms": float(sum(pairs)) / 2,
                      "adds_folded": max(0, len(adds) - graph.adds_left)}


def _uses_runtime_graph(predictors: PredictorDir) -> bool:
    return predictors.metadata.get("runtime") == "onnxruntime" and "reorder" in predictors.models


def predict_onnx(onnx_path: str | os.PathLike, predictors: PredictorDir, strict: bool = False) -> Prediction:
    """Detect the kernels of an ONNX file under the predictors' fusion rules, then predict them."""
    kernels = detect_kernels(onnx_path, predictors.fusion_rules)
    counts = Counter(k.kernel_type or k.op for k in kernels)
    log.info("kernels in %s: %s", onnx_path, dict(counts))
    graph = None
    if _uses_runtime_graph(predictors):
        from dass_edge.predict import ortgraph

        graph = ortgraph.inspect(onnx_path, int(predictors.metadata.get("threads", 1)))
    return predict_kernels(kernels, predictors, strict, graph)
