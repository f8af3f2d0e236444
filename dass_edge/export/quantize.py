"""INT8 post-training quantization with each format's own quantizer, and the check that zeros stay zeros.

Three well-kept quantizers, one per format, each calibrated on the same few hundred training images of the
checkpoint (seeded, recorded in the manifest), each quantizing the compacted network:

- ONNX: ONNX Runtime's static quantization to QDQ (QuantizeLinear/DequantizeLinear around every op),
  per-channel int8 weights, int8 activations, ranges from min/max over the images.
- OpenVINO: NNCF's post-training quantization of the IR (FakeQuantize nodes the CPU plugin runs in int8):
  symmetric int8 weights per channel, asymmetric activations (its MIXED preset), ranges from min/max.
- TFLite: the AI Edge Quantizer (LiteRT's) makes a full-integer file, int8 weights, activations and
  input/output; the runner quantizes a float input with the file's own scale. Its calibration takes
  min/max over the images, not the quantizer's default moving average of per-image ranges, which is too
  narrow for the images beyond the average.

Why the compact form and min/max (the demo's DASS network, 83.2% in float, docs/precision.md): a masked
network's pruned output channels have all-zero weights, so a per-channel weight scale near 0, and the int32
bias scale (input scale x weight scale) then cannot hold the channel's bias, a folded BatchNorm shift: the
LiteRT file lost those biases and fell to 40.6%. Compacted, the quantizers here gave 82.3% (ONNX Runtime),
83.7% (NNCF) and 80.3% (LiteRT). Narrower ranges cost these tiny networks more than coarser steps: ONNX
Runtime's percentile calibration gave 59.3%, NNCF's default ranges 79.0%, the LiteRT quantizer's moving
average 71.6%.

Every quantizer here quantizes weights symmetrically (zero point 0), so a pruned weight is exactly 0 in the
file: ``int8_weights`` reads the file back and refuses it when a weight's zero point is not 0, and counts
the non-zero int8 weights (small weights that round to 0 make it lower than the float network's count).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dass_edge import native_output
from dass_edge.errors import DassEdgeError, InputError
from dass_edge.runtimes import require

log = logging.getLogger(__name__)
CALIBRATION_IMAGES = 300


@dataclass(frozen=True)
class Calibration:
    """Calibration images (N, C, H, W float32, normalised like the training data) and where they came from."""

    images: np.ndarray = field(repr=False)
    record: dict[str, Any]


def calibration_set(x_train: np.ndarray, dataset: str, count: int = CALIBRATION_IMAGES, seed: int = 0) -> Calibration:
    """``count`` training images drawn without replacement with ``seed``: the same set on every run."""
    count = min(count, len(x_train))
    picked = np.sort(np.random.default_rng(seed).choice(len(x_train), count, replace=False))
    return Calibration(np.ascontiguousarray(x_train[picked], dtype=np.float32),
                       {"data_set": dataset, "split": "train", "images": count, "seed": seed})


def needed(calibration: Calibration | None) -> Calibration:
    if calibration is None:
        raise InputError("an int8 export needs calibration images: the checkpoint's data set is not available "
                         "here (dass-edge train records which one it used)")
    return calibration


def onnx_qdq(source: Path, path: Path, calibration: Calibration, work: Path) -> dict[str, str]:
    """Static QDQ quantization of the fp32 ONNX file ``source`` into ``path``; returns the tool versions."""
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = require("onnx", "onnx").load(str(source), load_external_data=False).graph.input[0].name

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(calibration.images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._left, None)
            return None if image is None else {name: image[None]}

    prepared = work / "quant-prepared.onnx"
    with native_output.to_log("onnxruntime-quantization"):  # its root-logger warnings too
        quant_pre_process(str(source), str(prepared))  # shape inference and BN folding, as ORT advises
        quantize_static(str(prepared), str(path), Images(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return {"onnxruntime-quantization": metadata.version("onnxruntime")}


def openvino_nncf(model: Any, calibration: Calibration) -> tuple[Any, dict[str, str]]:
    """NNCF post-training quantization of an ``openvino.Model``."""
    nncf = require("nncf", "openvino")
    with native_output.to_log("nncf"):
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        ranges = nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
        quantized = nncf.quantize(model, nncf.Dataset(list(calibration.images), lambda image: image[None]),
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration.images),
                                  advanced_parameters=ranges)
    return quantized, {"nncf": nncf.__version__}


def tflite_full_integer(source: Path, calibration: Calibration) -> tuple[bytes, dict[str, str]]:
    """Full-integer (int8 in, int8 out) TFLite from the fp32 file ``source``, weights and activations int8:
    the flatbuffer and the tool versions."""
    with native_output.to_log("ai-edge-quantizer"):
        aeq = require("ai_edge_quantizer.quantizer", "tflite")
        from ai_edge_quantizer import calibrator, recipe, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils

        full_integer = recipe.static_wi8_ai8()
        quantizer = aeq.Quantizer(str(source))
        quantizer.load_quantization_recipe(full_integer)
        recipes = recipe_manager.RecipeManager()  # the calibrator's copy: the quantizer keeps its own private
        recipes.load_quantization_recipe(full_integer)
        calibrate = calibrator.Calibrator(source.read_bytes(), qsv_update_func=qsv_utils.min_max_update)
        signature, inputs = _signature(source)
        calibrate.calibrate({signature: [{inputs[0]: image[None]} for image in calibration.images]}, recipes)
        result = quantizer.quantize(calibrate.get_model_qsvs())
    return bytes(result.quantized_model), {"ai-edge-quantizer": metadata.version("ai-edge-quantizer")}


def _signature(source: Path) -> tuple[str, list[str]]:
    """The file's one signature and its input names, as LiteRT lists them."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(source)).get_signature_list()
    if len(signatures) != 1:
        raise DassEdgeError(f"{source.name} has {len(signatures)} signatures; the quantizer needs one")
    ((key, value),) = signatures.items()
    return key, list(value["inputs"])


@dataclass(frozen=True)
class Int8Weights:
    """The int8 weights found in a file: how many values, how many non-zero."""

    values: int
    nonzero: int

    def to_dict(self) -> dict[str, int]:
        return {"nonzero_weights": self.nonzero, "int8_weights": self.values}


def int8_weights(path: Path, fmt: str) -> Int8Weights:
    """Read the int8 weights back from the file; DassEdgeError if any has a non-zero zero point (a pruned
    weight would then not be 0) or the file has no int8 weights at all (nothing was quantized)."""
    tensors = {"onnx": _onnx_weights, "openvino": _openvino_weights, "tflite": _tflite_weights}[fmt](path)
    if not tensors:
        raise DassEdgeError(f"{path.name} holds no int8 weights: the quantizer left the network in float")
    shifted = [name for name, _, zero in tensors if np.any(zero != 0)]
    if shifted:
        raise DassEdgeError(f"{path.name}: {len(shifted)} int8 weights have a non-zero zero point (first: "
                            f"{shifted[0]}), so pruned weights would not be 0")
    return Int8Weights(sum(q.size for _, q, _ in tensors), sum(int(np.count_nonzero(q)) for _, q, _ in tensors))


Weights = list[tuple[str, np.ndarray, np.ndarray]]  # (name, int8 values, zero points)


def _onnx_weights(path: Path) -> Weights:
    """The int8 initializers that DequantizeLinear nodes turn into the weight input of a Conv, Gemm or
    MatMul, with their zero points (0 when absent); quantized constants of other ops are activations."""
    onnx = require("onnx", "onnx")
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {t.name: t for t in graph.initializer}
    weight_inputs = {node.input[1] for node in graph.node if node.op_type in ("Conv", "Gemm", "MatMul")}
    found = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.output[0] not in weight_inputs or node.input[0] not in init:
            continue
        zero = (numpy_helper.to_array(init[node.input[2]]) if len(node.input) > 2 and node.input[2] in init
                else np.zeros(1, np.int8))
        found.append((node.input[0], numpy_helper.to_array(init[node.input[0]]), zero))
    return found


def _openvino_weights(path: Path) -> Weights:
    """i8 Constants (NNCF's compressed weights) and the constant a Subtract takes from them, if any."""
    ov = require("openvino", "openvino")
    model = ov.Core().read_model(str(path))
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or op.get_element_type() != ov.Type.i8:
            continue
        zero = np.zeros(1, np.int8)
        for convert in op.output(0).get_target_inputs():
            for user in convert.get_node().output(0).get_target_inputs():
                node = user.get_node()
                if node.get_type_name() == "Subtract":
                    source = node.input_value(1).get_node()
                    while source.get_type_name() == "Convert":
                        source = source.input_value(0).get_node()
                    zero = source.get_data() if source.get_type_name() == "Constant" else np.ones(1)
        found.append((op.get_friendly_name(), op.get_data(), zero))
    return found


def _tflite_weights(path: Path) -> Weights:
    """The constant int8 filters of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (their input 1)."""
    from ai_edge_litert import schema_py_generated as schema

    from dass_edge.export.known_ops import TFLITE_WEIGHT_OPS

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    wanted = {getattr(schema.BuiltinOperator, op) for op in TFLITE_WEIGHT_OPS}
    graph = model.Subgraphs(0)
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if codes[op.OpcodeIndex()] not in wanted:
            continue
        tensor = graph.Tensors(op.Inputs(1))
        buffer = model.Buffers(tensor.Buffer())
        if tensor.Type() != schema.TensorType.INT8 or buffer is None or buffer.DataLength() == 0:
            continue
        quantization = tensor.Quantization()
        zero = (quantization.ZeroPointAsNumpy() if quantization is not None and quantization.ZeroPointLength()
                else np.zeros(1, np.int64))
        found.append((tensor.Name().decode(), buffer.DataAsNumpy().view(np.int8), np.asarray(zero)))
    return found
