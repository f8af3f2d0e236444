"""Time an ONNX model on the local CPU with ONNX Runtime, the way calibration needs it.

Inputs and outputs stay bound to ONNX Runtime buffers (I/O binding), so a one-kernel model is timed
without copying its output into NumPy on every run; inside a network that copy never happens. The
statistic is the median of the runs, as the bench harness reports.
"""

from __future__ import annotations

import statistics
import time
from typing import Any


def session(model: Any, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for a path or ``onnx.ModelProto``, with default graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def median_ms(sess: Any, inputs: dict[str, tuple[int, ...]], warmup: int = 5, runs: int = 30,
              budget_s: float = 0.05) -> float:
    """Median latency of ``runs`` timed runs (fewer, but at least 7, if they exceed ``budget_s``)."""
    import numpy as np
    import onnxruntime as ort

    binding = sess.io_binding()
    rng = np.random.default_rng(0)
    for name, shape in inputs.items():
        value = ort.OrtValue.ortvalue_from_numpy(rng.standard_normal(shape).astype("float32"))
        binding.bind_ortvalue_input(name, value)
    for out in sess.get_outputs():
        binding.bind_output(out.name, "cpu")
    for _ in range(warmup):
        sess.run_with_iobinding(binding)
    times = []
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter_ns()
        sess.run_with_iobinding(binding)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        if i >= 6 and time.perf_counter() - start > budget_s:
            break
    return statistics.median(times)


def model_median_ms(model: Any, threads: int = 1, runs: int = 50, budget_s: float = 1.0) -> float:
    """Batch-1 median latency of a whole model file (inputs taken from the model's own signature)."""
    sess = session(model, threads)
    inputs = {i.name: tuple(d if isinstance(d, int) else 1 for d in i.shape) for i in sess.get_inputs()}
    return median_ms(sess, inputs, warmup=10, runs=runs, budget_s=budget_s)
