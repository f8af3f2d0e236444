"""Run saved inputs through one model file in one runtime and save the outputs. Runs in a side environment.

The half of the parity check that runs in a board's own runtime at its board version (tflite-runtime
2.13 on Python 3.9, onnxruntime 1.10 on Python 3.6, OpenVINO 2021.4.2), where the host's Python cannot
import it: stdlib and numpy only, Python 3.6 syntax, no dass_edge imports (the side environment has no
dass_edge; this file is run by path). Unlike the board agent, which times a runtime as the board runs it,
this one asks each runtime for exact fp32 arithmetic (OpenVINO computes in bf16 on some CPUs otherwise).

Usage: python board_runner.py RUNTIME MODEL INPUTS.npy OUTPUTS.npy
INPUTS.npy holds N inputs stacked on a new first axis, each one batch in the model's layout; OUTPUTS.npy
gets the N outputs stacked the same way. Prints one JSON line: {"version": ...} or {"error": ...} (exit 1).
"""

import json
import sys

import numpy as np


def _onnxruntime(path):
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda x: session.run(None, {name: x})[0]), ort.__version__


def _tflite_runtime(path):
    import tflite_runtime
    from tflite_runtime.interpreter import Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()
    return run, tflite_runtime.__version__


def _openvino(path):
    """OpenVINO <= 2021.4 (the Inference Engine API, the only one the Myriad plugin's releases have)."""
    from openvino.inference_engine import IECore, get_version
    core = IECore()
    network = core.read_network(model=path, weights=path[:-4] + ".bin")
    executable = core.load_network(network, "CPU", {"ENFORCE_BF16": "NO"})
    name = next(iter(network.input_info))
    return (lambda x: next(iter(executable.infer({name: x}).values()))), get_version()


LOADERS = {"onnxruntime": _onnxruntime, "tflite-runtime": _tflite_runtime, "openvino": _openvino}


def main(argv):
    runtime, model, inputs, outputs = argv
    try:
        run, version = LOADERS[runtime](model)
        np.save(outputs, np.stack([np.asarray(run(x), dtype=np.float32) for x in np.load(inputs)]))
    except Exception as exc:  # one parseable line for the host, never a bare traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stdout.write(json.dumps({"error": message}) + "\n")
        return 1
    sys.stdout.write(json.dumps({"version": str(version)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
