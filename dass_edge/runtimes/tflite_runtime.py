"""TFLite adapter for both interpreters with the same API: ai-edge-litert (LiteRT, the host's) and the
older tflite-runtime (boards with NumPy 1.x). Runs on the CPU with the default XNNPACK delegate."""

from __future__ import annotations

from pathlib import Path

from dass_edge import native_output
from dass_edge.errors import InputError
from dass_edge.runtimes import Runtime, Session, require

MODULES = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def guess_layout(shape: tuple[int, ...]) -> str:
    """TFLite files do not record a layout; images have fewer channels than pixels per side, so the
    smaller of axis 1 and the last axis is taken as the channel axis."""
    return "NHWC" if len(shape) == 4 and shape[3] < shape[1] else "NCHW"


def open_session(path: Path, spec: Runtime, *, threads: int | None, device: str | None,
                 fp32_hint: bool) -> Session:
    module = require(MODULES[spec.name], spec.extra)
    device = (device or "CPU").upper()
    if device != "CPU":
        raise InputError(f"{spec.name} runs TFLite files on the CPU here, not {device}")
    try:
        with native_output.to_log(spec.name):  # the XNNPACK delegate's INFO line
            interpreter = module.Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{spec.name} cannot load {path}: {str(exc).splitlines()[0]}") from None
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]

    def run(x):  # type: ignore[no-untyped-def]
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    shape = tuple(int(d) for d in source["shape"])
    return Session(spec.name, spec.version, device, shape, guess_layout(shape), run)
