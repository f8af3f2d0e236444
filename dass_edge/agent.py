"""Board agent: load one model, time batch-1 inference, print one JSON line. Runs ON the board.

Why a single file with no dass_edge imports: the host copies exactly this file to a board over SFTP and
runs it with whatever Python the board has (3.6 on JetPack 4.6 up to current), next to numpy and ONE
runtime among onnxruntime, tflite_runtime / ai_edge_litert, openvino and torch. So: stdlib + numpy only,
no f-strings with '=', no walrus, no dataclasses, no postponed annotations. The host's own harness
(dass_edge.bench.measure) imports ``time_rounds`` from here so that host and board time the same way.

Usage: python agent.py MODEL [--runtime auto|onnxruntime|tflite|openvino|torch] [--threads N]
       [--device CPU|CUDA|TensorRT|cuda|MYRIAD...] [--warmup N] [--runs N] [--min-seconds S] [--rounds N]
       [--against REFERENCE [--against-runtime R]]   (both timed in alternating rounds; REFERENCE's dict
       goes under "against")
Output: one JSON object on stdout: raw per-run latencies in ns (per round), first-inference time, the
runtime, the device or execution providers that really ran, and the environment; on a GPU also the
device-compute latencies (device_rounds_ns); or {"error": "..."} with exit status 1. A GPU asked for and
missing is such an error: there is no silent fallback to the CPU.
"""

import argparse
import json
import os
import platform
import sys
import time

AGENT_VERSION = 1
EXTENSIONS = {".onnx": "onnxruntime", ".tflite": "litert", ".xml": "openvino", ".pt": "torch", ".pth": "torch"}

if hasattr(time, "perf_counter_ns"):
    _now_ns = time.perf_counter_ns
else:  # Python 3.6: same clock, float seconds (sub-microsecond resolution is plenty for ms latencies)
    def _now_ns():
        return int(time.perf_counter() * 1e9)


class AgentError(Exception):
    """A failure the agent reports as {"error": ...} rather than a traceback."""


def time_rounds(run, x, warmup, min_runs, min_seconds, rounds=1):
    """Time ``run(x)`` with the clock around the call only.

    The first call is timed on its own (it includes lazy allocation and kernel selection), then
    ``warmup`` untimed calls, then ``rounds`` rounds, each of at least ``min_runs`` calls AND
    ``min_seconds`` of timed calls. Returns {"first_ns": int, "rounds_ns": [[int, ...], ...]}.
    """
    start = _now_ns()
    run(x)
    first_ns = _now_ns() - start
    for _ in range(max(0, warmup)):
        run(x)
    min_ns = int(min_seconds * 1e9)
    rounds_ns = []
    for _ in range(max(1, rounds)):
        samples = []
        total = 0
        while len(samples) < max(1, min_runs) or total < min_ns:
            t0 = _now_ns()
            run(x)
            elapsed = _now_ns() - t0
            samples.append(elapsed)
            total += elapsed
        rounds_ns.append(samples)
    return {"first_ns": first_ns, "rounds_ns": rounds_ns}


def cpu_model():
    """The CPU's marketing name from /proc/cpuinfo (Linux boards), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment():
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(), "hostname": platform.node()}


def _shape(dims):
    """Batch 1 and any other unknown dimension as 1 (models here have static image sizes)."""
    out = []
    for d in dims:  # ints, numpy ints, None or symbolic names such as 'batch'
        try:
            out.append(int(d) if int(d) > 0 else 1)
        except (TypeError, ValueError):
            out.append(1)
    return out


def fixed_input(shape, dtype):
    """The same input every time (seeded): timings must not depend on data, runs must be repeatable."""
    import numpy as np
    rng = np.random.RandomState(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.randint(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# --runtime-device for ONNX Runtime -> its execution provider (case-insensitive; GPU means CUDA)
ORT_PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "GPU": "CUDAExecutionProvider",
                 "TENSORRT": "TensorrtExecutionProvider", "TRT": "TensorrtExecutionProvider"}


def ort_provider(ort, device):
    """The execution provider asked for, checked against the ones this onnxruntime build has."""
    wanted = ORT_PROVIDERS.get((device or "CPU").upper())
    if wanted is None:
        raise AgentError("unknown onnxruntime device %s; known: CPU, CUDA, TensorRT" % device)
    available = ort.get_available_providers()
    if wanted not in available:
        raise AgentError("onnxruntime %s here has no %s (it has %s); install a GPU build (onnxruntime-gpu) or pass "
                         "--runtime-device CPU" % (ort.__version__, wanted, ", ".join(available)))
    return wanted


def check_ran(ort, session, wanted):
    """ONNX Runtime falls back to the CPU when a GPU provider's libraries fail to load: refuse that."""
    ran = session.get_providers()
    if not ran or ran[0] != wanted:
        raise AgentError("asked for %s but onnxruntime %s ran %s (are its CUDA/TensorRT libraries installed?)"
                         % (wanted, ort.__version__, ", ".join(ran) or "nothing"))
    return ran


def _onnxruntime(path, threads, device):
    import numpy as np
    import onnxruntime as ort
    wanted = ort_provider(ort, device)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=[wanted])
    ran = check_ran(ort, session, wanted)
    info = session.get_inputs()[0]
    dtype = np.float16 if "float16" in info.type else np.float32
    name = info.name

    def run(x):  # numpy in, numpy out: host-device copies inside on a GPU provider
        return session.run(None, {name: x})[0]
    loaded = {"run": run, "shape": _shape(info.shape), "dtype": dtype, "version": ort.__version__,
              "device": ran[0], "providers": ran}
    if wanted != "CPUExecutionProvider":
        loaded["on_device"] = ort_on_device(ort, session, name)
    return loaded


def ort_on_device(ort, session, name):
    """(stage, compute) for the device-compute timing: the input bound once in GPU memory, the output left
    there; Run returns after ONNX Runtime synchronised its CUDA stream."""
    output = session.get_outputs()[0].name

    def stage(x):
        value = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, value)
        binding.bind_output(output, "cuda", 0)
        return binding, value  # the OrtValue must outlive the binding

    def compute(staged):
        session.run_with_iobinding(staged[0])
        if hasattr(staged[0], "synchronize_outputs"):
            staged[0].synchronize_outputs()
    return stage, compute


def _import_tflite(prefer_litert):
    """ai_edge_litert and tflite_runtime share the Interpreter API; use whichever the board has."""
    order = ["ai_edge_litert", "tflite_runtime"]
    if not prefer_litert:
        order.reverse()
    for package in order:
        try:
            module = __import__(package + ".interpreter", fromlist=["Interpreter"])
            return module.Interpreter, __import__(package), package
        except ImportError:
            continue
    raise ImportError("neither ai_edge_litert nor tflite_runtime can be imported")


def _tflite(path, threads, device, prefer_litert=True):
    Interpreter, module, package = _import_tflite(prefer_litert)
    interpreter = Interpreter(model_path=path, num_threads=threads or None)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    name = "litert" if package == "ai_edge_litert" else "tflite-runtime"
    return {"run": run, "shape": _shape(list(inp["shape"])), "dtype": inp["dtype"],
            "version": getattr(module, "__version__", "?"), "device": "CPU", "runtime": name}


def openvino_config(threads, fp32=True):
    """OpenVINO compile settings, the one definition: the host's adapter (runtimes/openvino_runtime.py)
    imports it, so host and board compile alike. LATENCY: one inference at a time, as batch-1 timing
    means it. f32 precision: CPUs with AMX or AVX512-BF16 would otherwise run bf16 (and GPUs fp16), i.e.
    other numbers, and another speed, than the ones the export was validated with."""
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if fp32:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


def _openvino(path, threads, device):
    import numpy as np
    device = device or "CPU"
    try:
        from openvino import Core, get_version
    except ImportError:
        try:
            from openvino.runtime import Core, get_version
        except ImportError:
            return _openvino_legacy(path, threads, device)
    core = Core()
    compiled = core.compile_model(path, device, openvino_config(threads))
    request = compiled.create_infer_request()
    port = compiled.input(0)

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data
    shape = _shape([d.get_length() if d.is_static else -1 for d in port.get_partial_shape()])
    return {"run": run, "shape": shape, "dtype": np.float32, "version": get_version(), "device": device}


def _openvino_legacy(path, threads, device):
    """OpenVINO <= 2021.4 (the last with the NCS2/MYRIAD plugin): the Inference Engine API."""
    import numpy as np
    from openvino.inference_engine import IECore, get_version
    core = IECore()
    network = core.read_network(model=path)
    config = {"CPU_THREADS_NUM": str(threads)} if threads and device == "CPU" else {}
    executable = core.load_network(network, device, config=config)
    name = next(iter(network.input_info))
    shape = list(network.input_info[name].input_data.shape)

    def run(x):
        return next(iter(executable.infer({name: x}).values()))
    return {"run": run, "shape": _shape(shape), "dtype": np.float32, "version": get_version(), "device": device}


def _torch(path, threads, device):
    import numpy as np
    import torch
    if threads:
        torch.set_num_threads(threads)
    device = (device or "cpu").lower()
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise AgentError("torch %s here has no CUDA device; pass --runtime-device cpu" % torch.__version__)
    model = torch.jit.load(path, map_location=device).eval()

    def run(x):  # numpy in, numpy out: host-device copies inside on a GPU
        with torch.no_grad():  # inference_mode is missing from the older torch builds boards carry
            return model(torch.from_numpy(x).to(device)).cpu().numpy()
    loaded = {"run": run, "shape": None, "dtype": np.float32, "version": torch.__version__,  # TorchScript keeps
              "device": device}  # no input shape
    if cuda:
        def stage(x):
            return torch.from_numpy(x).to(device)

        def compute(x_on_device):
            with torch.no_grad():
                model(x_on_device)
            torch.cuda.synchronize()  # kernels are asynchronous: wait before the clock is read
        loaded["on_device"] = (stage, compute)
    return loaded


LOADERS = {"onnxruntime": _onnxruntime, "litert": _tflite, "openvino": _openvino, "torch": _torch,
           "tflite-runtime": lambda path, threads, device: _tflite(path, threads, device, prefer_litert=False)}
ALIASES = {"tflite": "litert", "ort": "onnxruntime"}


def runtime_for(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise AgentError("cannot tell the runtime of %s; pass --runtime" % os.path.basename(path))
    return EXTENSIONS[ext]


def _load(path, runtime, threads, device, input_shape):
    """(loaded runtime dict, fixed input, the result's header) for one model file."""
    if not os.path.isfile(path):
        raise AgentError("model file %s does not exist" % path)
    runtime = runtime_for(path) if runtime == "auto" else ALIASES.get(runtime, runtime)
    if runtime not in LOADERS:
        raise AgentError("unknown runtime %s; known: %s" % (runtime, ", ".join(sorted(LOADERS))))
    try:
        loaded = LOADERS[runtime](path, threads, device)
    except ImportError as exc:
        raise AgentError("runtime %s is not installed on this board (%s)" % (runtime, exc))
    runtime = loaded.get("runtime", runtime)  # which TFLite interpreter was found
    shape = input_shape or loaded["shape"]
    if not shape:
        raise AgentError("the %s model does not record its input shape; pass --input-shape" % runtime)
    x = fixed_input(list(shape), loaded["dtype"])
    header = {"agent_version": AGENT_VERSION, "model": os.path.basename(path), "runtime": runtime,
              "runtime_version": str(loaded["version"]), "runtime_device": loaded["device"],
              "threads": threads or None, "input_shape": list(x.shape), "env": environment()}
    if "providers" in loaded:
        header["providers"] = loaded["providers"]  # what really ran, in ONNX Runtime's order
    return loaded, x, header


def measure(path, runtime="auto", threads=0, device="", warmup=10, runs=100, min_seconds=1.0, rounds=1,
            input_shape=None):
    """Load ``path`` with its runtime and time it; the dict the agent prints."""
    loaded, x, result = _load(path, runtime, threads, device, input_shape)
    result["warmup"] = warmup
    result.update(time_rounds(loaded["run"], x, warmup, runs, min_seconds, rounds))
    result.update(time_on_device(loaded.get("on_device"), x, warmup, runs, min_seconds, rounds))
    return result


def measure_pair(path, reference, runtimes=("auto", "auto"), threads=0, device="", warmup=10, runs=100,
                 min_seconds=1.0, rounds=2, input_shape=None):
    """``bench --against`` on a board: both models loaded, then timed in alternating rounds
    (time_alternating); the candidate's dict with the reference's under "against"."""
    sides = [_load(p, rt, threads, device, input_shape) for p, rt in zip((path, reference), runtimes)]
    timings = time_alternating([loaded["run"] for loaded, _, _ in sides], [x for _, x, _ in sides], warmup, runs,
                               min_seconds, rounds)
    results = []
    for (_, _, header), timing in zip(sides, timings):
        header["warmup"] = warmup
        header["timed_region"] = "host-to-host"
        header.update(timing)
        results.append(header)
    results[0]["against"] = results[1]
    return results[0]


def time_alternating(runs_, inputs, warmup, min_runs, min_seconds, rounds):
    """Time two models in alternating rounds, one {"first_ns", "rounds_ns"} each.

    Both get their first inference and warm-up first; then round i of each runs back to back, the order
    flipping every round (A B, B A, A B, ...) so that a machine getting slower or faster during the run
    does not favour whichever goes second. Each round starts with one untimed call (time_rounds' first
    inference) that brings the model's weights back into the caches after the other model ran.
    """
    firsts = [time_rounds(run, x, warmup, 1, 0.0)["first_ns"] for run, x in zip(runs_, inputs)]
    rounds_ns = [[], []]
    for i in range(max(1, rounds)):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            rounds_ns[side].append(time_rounds(runs_[side], inputs[side], 0, min_runs, min_seconds)["rounds_ns"][0])
    return [{"first_ns": first, "rounds_ns": r} for first, r in zip(firsts, rounds_ns)]


def time_on_device(on_device, x, warmup, min_runs, min_seconds, rounds=1):
    """On a GPU, the second figure (trtexec's "GPU compute" beside its end-to-end latency): the input staged
    in device memory once, the output left there, the clock read after the device finished. ``rounds_ns``
    (from time_rounds on the plain call) is host to host, input and output copies inside."""
    if on_device is None:
        return {"timed_region": "host-to-host"}
    stage, compute = on_device
    timing = time_rounds(compute, stage(x), warmup, min_runs, min_seconds, rounds)
    return {"timed_region": "host-to-host", "device_first_ns": timing["first_ns"],
            "device_rounds_ns": timing["rounds_ns"]}


def _parse_shape(text):
    return [int(d) for d in text.split(",")] if text else None


def _parser():
    parser = argparse.ArgumentParser(description="Time batch-1 inference of one model; print one JSON line.")
    parser.add_argument("model")
    parser.add_argument("--runtime", default="auto", choices=["auto"] + sorted(LOADERS) + sorted(ALIASES))
    parser.add_argument("--threads", type=int, default=0, help="0: the runtime's default")
    parser.add_argument("--device", default="", help="runtime device, e.g. CPU, MYRIAD (OpenVINO), CUDA or "
                        "TensorRT (onnxruntime execution providers), cuda (torch)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100, help="minimum timed runs per round")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed seconds per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--input-shape", default="", help="e.g. 1,3,32,32 (needed for TorchScript)")
    parser.add_argument("--against", default="", help="a reference model timed in alternating rounds with MODEL")
    parser.add_argument("--against-runtime", default="auto", choices=["auto"] + sorted(LOADERS) + sorted(ALIASES))
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        shape = _parse_shape(args.input_shape)
        if args.against:
            result = measure_pair(args.model, args.against, (args.runtime, args.against_runtime), args.threads,
                                  args.device, args.warmup, args.runs, args.min_seconds, args.rounds, shape)
        else:
            result = measure(args.model, args.runtime, args.threads, args.device, args.warmup, args.runs,
                             args.min_seconds, args.rounds, shape)
    except Exception as exc:  # any failure becomes one parseable line, never a bare traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stdout.write(json.dumps({"agent_version": AGENT_VERSION, "error": message}) + "\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
