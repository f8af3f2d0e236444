"""Load a model file in its runtime and run or time it: the one place that knows each runtime's quirks.

Why one self-contained file: the same code has to run in four places, and only a copy of one file reaches
them all. The host imports it (dass_edge.runtimes wraps it in a Session); the bench copies it to a board
over SSH and runs it with whatever Python the board has (3.6 on JetPack 4.6 up to current); the export's
parity check runs it by path in a side environment holding a board's runtime version, and inside an
emulated board under qemu-user. So: stdlib + numpy only, Python 3.6 syntax (no f-strings with '=', no
walrus, no dataclasses, no postponed annotations), no dass_edge imports.

Usage (two commands; each prints one JSON line on stdout, or {"error": "..."} with exit status 1):
  python runner.py time MODEL [--runtime R] [--threads N] [--device D] [--warmup N] [--runs N]
         [--min-seconds S] [--rounds N] [--input-shape 1,3,32,32] [--against REF [--against-runtime R]]
      batch-1 latency: raw per-run times in ns per round, first-inference time, the runtime, the device or
      execution providers that really ran, the environment; on a GPU also device-compute times; with
      --against both models timed in alternating rounds, the reference's dict under "against".
  python runner.py run MODEL INPUTS.npy OUTPUTS.npy [--runtime R] [--device D]
      parity: N inputs stacked on a new first axis (each one batch in the model's layout) -> N outputs.
A GPU asked for and missing is an error: there is never a silent fallback to the CPU. ``exact`` (on by
default, ``--not-exact`` turns it off) asks each runtime for fp32 arithmetic: OpenVINO otherwise computes
in bf16 on CPUs with AMX or AVX512-BF16 (and fp16 on GPUs), i.e. other numbers and another speed than the
ones the export was validated with.
"""

import argparse
import json
import os
import platform
import sys
import time

AGENT_VERSION = 2
EXTENSIONS = {".onnx": "onnxruntime", ".tflite": "litert", ".xml": "openvino", ".pt": "torch", ".pth": "torch",
              ".so": "c"}
ALIASES = {"tflite": "litert", "ort": "onnxruntime"}
TORCH_SHAPE_FILE = "input_shape.json"  # the torch exporter stores the input shape beside the TorchScript graph
# --device for ONNX Runtime -> its execution provider (case-insensitive; GPU means CUDA)
ORT_PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "GPU": "CUDAExecutionProvider",
                 "TENSORRT": "TensorrtExecutionProvider", "TRT": "TensorrtExecutionProvider"}
TFLITE_PACKAGES = {"litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}

if hasattr(time, "perf_counter_ns"):
    _now_ns = time.perf_counter_ns
else:  # Python 3.6: same clock, float seconds (sub-microsecond resolution is plenty for ms latencies)
    def _now_ns():
        return int(time.perf_counter() * 1e9)


class RunnerError(Exception):
    """A failure reported as one line (the host turns it into InputError, a board into {"error": ...})."""


class MissingRuntime(RunnerError):
    """The runtime's package cannot be imported here."""


class Loaded(object):
    """A model in its runtime: ``run(x)`` takes one batch in ``layout`` and returns the first output.

    ``on_device`` (GPUs only) is (stage, compute): ``stage(x)`` puts the input in device memory once and
    ``compute(staged)`` runs there, output left on the device, returning after the device has finished.
    """

    def __init__(self, runtime, run, shape, version, device, dtype=None, layout="NCHW", providers=None,
                 on_device=None):
        self.runtime = runtime
        self.run = run
        self.shape = shape
        self.version = str(version)
        self.device = str(device)
        self.dtype = dtype
        self.layout = layout
        self.providers = providers
        self.on_device = on_device


# ---------------------------------------------------------------- timing


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


def time_alternating(runs, inputs, warmup, min_runs, min_seconds, rounds):
    """Time two models in alternating rounds, one {"first_ns", "rounds_ns"} each.

    Both get their first inference and warm-up first; then round i of each runs back to back, the order
    flipping every round (A B, B A, A B, ...) so that a machine getting slower or faster during the run
    does not favour whichever goes second. Each round starts with one untimed call (time_rounds' first
    inference) that brings the model's weights back into the caches after the other model ran.
    """
    firsts = [time_rounds(run, x, warmup, 1, 0.0)["first_ns"] for run, x in zip(runs, inputs)]
    rounds_ns = [[], []]
    for i in range(max(1, rounds)):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            rounds_ns[side].append(time_rounds(runs[side], inputs[side], 0, min_runs, min_seconds)["rounds_ns"][0])
    return [{"first_ns": first, "rounds_ns": r} for first, r in zip(firsts, rounds_ns)]


def time_on_device(on_device, x, warmup, min_runs, min_seconds, rounds=1):
    """On a GPU, the second figure (trtexec's "GPU compute" beside its end-to-end latency): the input staged
    in device memory once, the output left there, the clock read after the device finished."""
    if on_device is None:
        return {"timed_region": "host-to-host"}
    stage, compute = on_device
    timing = time_rounds(compute, stage(x), warmup, min_runs, min_seconds, rounds)
    return {"timed_region": "host-to-host", "device_first_ns": timing["first_ns"],
            "device_rounds_ns": timing["rounds_ns"]}


def fixed_input(shape, dtype):
    """The same input every time (seeded): timings must not depend on data, runs must be repeatable."""
    import numpy as np
    rng = np.random.RandomState(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.randint(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


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


# ---------------------------------------------------------------- one loader per runtime


def _shape(dims):
    """Batch 1 and any other unknown dimension as 1 (models here have static image sizes)."""
    out = []
    for d in dims:  # ints, numpy ints, None or symbolic names such as 'batch'
        try:
            out.append(int(d) if int(d) > 0 else 1)
        except (TypeError, ValueError):
            out.append(1)
    return out


def ort_provider(ort, device):
    """The execution provider asked for, checked against the ones this onnxruntime build has."""
    wanted = ORT_PROVIDERS.get((device or "CPU").upper())
    if wanted is None:
        raise RunnerError("unknown onnxruntime device %s; known: CPU, CUDA, TensorRT" % device)
    available = ort.get_available_providers()
    if wanted not in available:
        raise RunnerError("onnxruntime %s here has no %s (it has %s); install a GPU build (onnxruntime-gpu) or "
                          "pass --runtime-device CPU" % (ort.__version__, wanted, ", ".join(available)))
    return wanted


def _ort_on_device(ort, session, name):
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


def _onnxruntime(path, threads, device, exact):
    import numpy as np
    import onnxruntime as ort
    wanted = ort_provider(ort, device)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=[wanted])
    ran = session.get_providers()
    if not ran or ran[0] != wanted:  # ONNX Runtime falls back to the CPU when a GPU provider fails to load
        raise RunnerError("asked for %s but onnxruntime %s ran %s (are its CUDA/TensorRT libraries installed?)"
                          % (wanted, ort.__version__, ", ".join(ran) or "nothing"))
    info = session.get_inputs()[0]
    name = info.name

    def run(x):  # numpy in, numpy out: host-device copies inside on a GPU provider
        return session.run(None, {name: x})[0]
    on_device = None if wanted == "CPUExecutionProvider" else _ort_on_device(ort, session, name)
    return Loaded("onnxruntime", run, _shape(info.shape), ort.__version__, (device or "CPU").upper(),
                  dtype=np.float16 if "float16" in info.type else np.float32, providers=ran, on_device=on_device)


def guess_layout(shape):
    """TFLite files do not record a layout; images have fewer channels than pixels per side, so the
    smaller of axis 1 and the last axis is taken as the channel axis."""
    return "NHWC" if len(shape) == 4 and shape[3] < shape[1] else "NCHW"


def _tflite(path, threads, device, exact, packages):
    """ai_edge_litert and tflite_runtime share the Interpreter API; the first of ``packages`` found runs."""
    if (device or "CPU").upper() != "CPU":
        raise RunnerError("TFLite files run on the CPU here, not %s" % device)
    for package in packages:
        try:
            module = __import__(package + ".interpreter", fromlist=["Interpreter"])
            break
        except ImportError:
            continue
    else:
        raise MissingRuntime(" or ".join(packages) + " cannot be imported")
    interpreter = module.Interpreter(model_path=path, num_threads=threads or None)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]

    def run(x):
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()
    shape = _shape(list(source["shape"]))
    name = "litert" if package == "ai_edge_litert" else "tflite-runtime"
    version = getattr(__import__(package), "__version__", "?")
    return Loaded(name, run, shape, version, "CPU", dtype=source["dtype"], layout=guess_layout(shape))


def openvino_config(threads, exact=True):
    """OpenVINO compile settings, the one definition. LATENCY: one inference at a time, as batch-1 timing
    means it; f32 precision when exact (see the module docstring)."""
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if exact:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


def _openvino(path, threads, device, exact):
    import numpy as np
    device = (device or "CPU").upper()
    try:
        from openvino import Core, get_version
    except ImportError:
        try:
            from openvino.runtime import Core, get_version
        except ImportError:
            return _openvino_legacy(path, threads, device, exact)
    core = Core()
    if device not in core.available_devices:
        raise RunnerError("OpenVINO %s here has no %s device (it has %s)"
                          % (get_version(), device, ", ".join(core.available_devices)))
    compiled = core.compile_model(path, device, openvino_config(threads, exact))
    request = compiled.create_infer_request()
    port = compiled.input(0)

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()
    shape = _shape([d.get_length() if d.is_static else -1 for d in port.get_partial_shape()])
    return Loaded("openvino", run, shape, get_version(), device, dtype=np.float32)


def _openvino_legacy(path, threads, device, exact):
    """OpenVINO <= 2021.4 (the last with the NCS2/MYRIAD plugin): the Inference Engine API."""
    import numpy as np
    from openvino.inference_engine import IECore, get_version
    core = IECore()
    network = core.read_network(model=path, weights=os.path.splitext(path)[0] + ".bin")
    config = {}
    if device == "CPU":
        config["ENFORCE_BF16"] = "NO" if exact else "YES"
        if threads:
            config["CPU_THREADS_NUM"] = str(threads)
    executable = core.load_network(network, device, config=config)
    name = next(iter(network.input_info))
    shape = list(network.input_info[name].input_data.shape)

    def run(x):
        return next(iter(executable.infer({name: x}).values()))
    return Loaded("openvino", run, _shape(shape), get_version(), device, dtype=np.float32)


def _torch(path, threads, device, exact):
    import numpy as np
    import torch
    if threads:
        torch.set_num_threads(threads)  # process-wide in PyTorch
    device = (device or ("cuda" if torch.cuda.is_available() else "cpu")).lower()
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise RunnerError("torch %s here has no CUDA device; pass --runtime-device cpu" % torch.__version__)
    if cuda and exact:  # Ampere and newer run float32 convolutions in TF32 (10-bit mantissa) by default
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    extra = {TORCH_SHAPE_FILE: ""}
    model = torch.jit.load(path, map_location=device, _extra_files=extra).eval()
    shape = json.loads(extra[TORCH_SHAPE_FILE]) if extra[TORCH_SHAPE_FILE] else None

    def run(x):  # numpy in, numpy out: host-device copies inside on a GPU
        with torch.no_grad():  # inference_mode is missing from the older torch builds boards carry
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()
    on_device = None
    if cuda:
        def stage(x):
            return torch.from_numpy(x).to(device)

        def compute(x_on_device):
            with torch.no_grad():
                model(x_on_device)
            torch.cuda.synchronize()  # kernels are asynchronous: wait before the clock is read
        on_device = (stage, compute)
    return Loaded("torch", run, shape, torch.__version__, device, dtype=np.float32, on_device=on_device)


def _c_library(path, threads, device, exact):
    """A library from the C export: ``int dass_edge_run(const float *in, float *out)`` and its shape symbols.
    Single-threaded by construction; runs where it was compiled for (the host, or a board's architecture)."""
    import ctypes

    import numpy as np
    if (device or "CPU").upper() != "CPU":
        raise RunnerError("a C export runs on the CPU, not %s" % device)
    library = ctypes.CDLL(os.path.abspath(path))
    entry = library.dass_edge_run
    entry.restype = ctypes.c_int
    entry.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    shape = list((ctypes.c_int * 4).in_dll(library, "dass_edge_input_shape"))
    out_shape = tuple((ctypes.c_int * 2).in_dll(library, "dass_edge_output_shape"))
    text = ctypes.c_char.in_dll(library, "dass_edge_version")  # a char array: its address is the string
    version = ctypes.cast(ctypes.addressof(text), ctypes.c_char_p).value.decode().split(";")[0]  # no model hash

    def run(x):
        out = np.empty(out_shape, np.float32)
        status = entry(x.ctypes.data, out.ctypes.data)
        if status != 0:
            raise RunnerError("dass_edge_run returned %d" % status)
        return out
    run.library = library  # keeps the library loaded as long as the function lives
    return Loaded("c", run, shape, version, "CPU", dtype=np.float32)


LOADERS = {
    "onnxruntime": _onnxruntime,
    "litert": lambda path, threads, device, exact: _tflite(path, threads, device, exact, ["ai_edge_litert"]),
    "tflite-runtime": lambda path, threads, device, exact: _tflite(path, threads, device, exact, ["tflite_runtime"]),
    "openvino": _openvino,
    "torch": _torch,
    "c": _c_library,
}
# An extension-derived .tflite runtime takes whichever interpreter the machine has, LiteRT first.
_AUTO = dict(LOADERS, litert=lambda path, threads, device, exact: _tflite(
    path, threads, device, exact, ["ai_edge_litert", "tflite_runtime"]))


def runtime_for(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise RunnerError("cannot tell the runtime of %s; pass --runtime" % os.path.basename(path))
    return EXTENSIONS[ext]


def open_model(path, runtime="auto", threads=0, device="", exact=True):
    """Load ``path`` in ``runtime`` ('auto': by extension, the TFLite interpreter the machine has)."""
    path = str(path)
    if not os.path.isfile(path):
        raise RunnerError("model file %s does not exist" % path)
    loaders = _AUTO if runtime in ("auto", None, "") else LOADERS
    runtime = runtime_for(path) if runtime in ("auto", None, "") else ALIASES.get(runtime, runtime)
    if runtime not in loaders:
        raise RunnerError("unknown runtime %s; known: %s" % (runtime, ", ".join(sorted(LOADERS))))
    try:
        return loaders[runtime](path, threads, device, exact)
    except ImportError as exc:
        raise MissingRuntime("runtime %s is not installed here (%s)" % (runtime, exc))


# ---------------------------------------------------------------- the two commands


def _prepared(path, runtime, threads, device, input_shape, exact=True):
    """(loaded model, fixed input, the result's header) for one model file."""
    loaded = open_model(path, runtime, threads, device, exact)
    shape = input_shape or loaded.shape
    if not shape:
        raise RunnerError("the %s model does not record its input shape; pass --input-shape" % loaded.runtime)
    import numpy as np
    x = fixed_input(list(shape), loaded.dtype or np.float32)
    header = {"agent_version": AGENT_VERSION, "model": os.path.basename(path), "runtime": loaded.runtime,
              "runtime_version": loaded.version, "runtime_device": loaded.device,
              "threads": threads or None, "input_shape": list(x.shape), "env": environment()}
    if loaded.providers:
        header["providers"] = loaded.providers  # what really ran, in ONNX Runtime's order
    return loaded, x, header


def measure(path, runtime="auto", threads=0, device="", warmup=10, runs=100, min_seconds=1.0, rounds=1,
            input_shape=None):
    """Load ``path`` and time it; the dict ``time`` prints."""
    loaded, x, result = _prepared(path, runtime, threads, device, input_shape)
    result["warmup"] = warmup
    result.update(time_rounds(loaded.run, x, warmup, runs, min_seconds, rounds))
    result.update(time_on_device(loaded.on_device, x, warmup, runs, min_seconds, rounds))
    return result


def measure_pair(path, reference, runtimes=("auto", "auto"), threads=0, device="", warmup=10, runs=100,
                 min_seconds=1.0, rounds=2, input_shape=None):
    """``bench --against`` on a board: both models loaded, then timed in alternating rounds
    (time_alternating); the candidate's dict with the reference's under "against"."""
    sides = [_prepared(p, rt, threads, device, input_shape) for p, rt in zip((path, reference), runtimes)]
    timings = time_alternating([loaded.run for loaded, _, _ in sides], [x for _, x, _ in sides], warmup, runs,
                               min_seconds, rounds)
    results = []
    for (_, _, header), timing in zip(sides, timings):
        header["warmup"] = warmup
        header["timed_region"] = "host-to-host"
        header.update(timing)
        results.append(header)
    results[0]["against"] = results[1]
    return results[0]


def run_inputs(path, inputs, runtime="auto", device="", exact=True):
    """Outputs (float32, stacked) of ``path`` for each of the stacked ``inputs``: the parity check's half."""
    import numpy as np
    loaded = open_model(path, runtime, 1, device, exact)
    return loaded, np.stack([np.asarray(loaded.run(np.ascontiguousarray(x)), dtype=np.float32) for x in inputs])


def _parser():
    runtimes = ["auto"] + sorted(LOADERS) + sorted(ALIASES)
    parser = argparse.ArgumentParser(description="Run or time one model file in its runtime; one JSON line out.")
    commands = parser.add_subparsers(dest="command")
    timing = commands.add_parser("time", help="batch-1 latency")
    timing.add_argument("model")
    timing.add_argument("--runtime", default="auto", choices=runtimes)
    timing.add_argument("--threads", type=int, default=0, help="0: the runtime's default")
    timing.add_argument("--device", default="", help="runtime device, e.g. CPU, MYRIAD (OpenVINO), CUDA or "
                        "TensorRT (onnxruntime execution providers), cuda (torch)")
    timing.add_argument("--warmup", type=int, default=10)
    timing.add_argument("--runs", type=int, default=100, help="minimum timed runs per round")
    timing.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed seconds per round")
    timing.add_argument("--rounds", type=int, default=1)
    timing.add_argument("--input-shape", default="", help="e.g. 1,3,32,32 (TorchScript files without one)")
    timing.add_argument("--against", default="", help="a reference model timed in alternating rounds with MODEL")
    timing.add_argument("--against-runtime", default="auto", choices=runtimes)
    parity = commands.add_parser("run", help="outputs for stacked inputs")
    parity.add_argument("model")
    parity.add_argument("inputs")
    parity.add_argument("outputs")
    parity.add_argument("--runtime", default="auto", choices=runtimes)
    parity.add_argument("--device", default="")
    parity.add_argument("--not-exact", action="store_true", help="let the runtime pick its own precision")
    return parser


def _command(args):
    if args.command == "run":
        import numpy as np
        loaded, outputs = run_inputs(args.model, np.load(args.inputs), args.runtime, args.device,
                                     not args.not_exact)
        np.save(args.outputs, outputs)
        return {"agent_version": AGENT_VERSION, "runtime": loaded.runtime, "version": loaded.version}
    shape = [int(d) for d in args.input_shape.split(",")] if args.input_shape else None
    if args.against:
        return measure_pair(args.model, args.against, (args.runtime, args.against_runtime), args.threads,
                            args.device, args.warmup, args.runs, args.min_seconds, args.rounds, shape)
    return measure(args.model, args.runtime, args.threads, args.device, args.warmup, args.runs,
                   args.min_seconds, args.rounds, shape)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_usage(sys.stderr)
        return 2
    try:
        result = _command(args)
    except Exception as exc:  # any failure becomes one parseable line, never a bare traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stdout.write(json.dumps({"agent_version": AGENT_VERSION, "error": message}) + "\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
