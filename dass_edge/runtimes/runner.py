"""Load a model file in its runtime and run or time it: the one place that knows each runtime's quirks.

Why one self-contained file: the same code has to run in four places, and only a copy of one file reaches
them all. The host imports it (dass_edge.runtimes wraps it in a Session); the bench copies it to a board
over SSH and runs it with whatever Python the board has (3.6 on JetPack 4.6 up to current); the export's
parity check runs it by path in a side environment holding a board's runtime version, and inside an
emulated board under qemu-user. So: stdlib + numpy only, Python 3.6 syntax (no f-strings with '=', no
walrus, no dataclasses, no postponed annotations), no dass_edge imports.

Usage (four commands; each prints one JSON line on stdout, or {"error": "..."} with exit status 1):
  python runner.py time MODEL [--runtime R] [--threads N] [--device D] [--warmup N] [--runs N]
         [--min-seconds S] [--rounds N] [--input-shape 1,3,32,32] [--against REF [--against-runtime R]]
      batch-1 latency: raw per-run times in ns per round, first-inference time, the runtime, the device or
      execution providers that really ran, the environment; on a GPU also device-compute times; with
      --against both models timed in alternating rounds, the reference's dict under "against".
      --profile RUNS adds each operator's time from the runtime's own profiler ("profile"), --memory the peak
      memory of loading and running the model, measured by the memory command in a fresh process ("memory").
  python runner.py run MODEL INPUTS.npy OUTPUTS.npy [--runtime R] [--device D]
      parity: N inputs stacked on a new first axis (each one batch in the model's layout) -> N outputs.
  python runner.py memory MODEL [--runtime R] [--threads N] [--device D] [--input-shape S]
      peak RSS once numpy and the runtime are imported, then after loading and running MODEL.
  python runner.py env [--runtime R --device D]
      the machine (CPU, governor, clocks, load, Jetson power model) and whether R and D are here.
A GPU asked for and missing is an error: there is never a silent fallback to the CPU. ``exact`` (on by
default, ``--not-exact`` turns it off) asks each runtime for fp32 arithmetic: OpenVINO otherwise computes
in bf16 on CPUs with AMX or AVX512-BF16 (and fp16 on GPUs), i.e. other numbers and another speed than the
ones the export was validated with.
"""

import argparse
import bisect
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _per_cpu(name):
    """[value of /sys/devices/system/cpu/cpuN/NAME for each N where readable], in CPU order."""
    folders = glob.glob("/sys/devices/system/cpu/cpu[0-9]*")
    values = [(int(f.rsplit("cpu", 1)[1]), _read(os.path.join(f, name))) for f in folders]
    return [value for _, value in sorted(values) if value is not None]


def _mhz(values):
    return [int(v) // 1000 for v in values if v.isdigit()] or None


def cpu_clocks():
    """Governor and frequencies from cpufreq (absent in most VMs and containers: then None): what makes one
    machine's latency differ from itself (a powersave governor, a capped or unlocked clock)."""
    governors = sorted(set(_per_cpu("cpufreq/scaling_governor")))
    low, high = _mhz(_per_cpu("cpufreq/scaling_min_freq")), _mhz(_per_cpu("cpufreq/scaling_max_freq"))
    return {"governor": ",".join(governors) or None, "freq_cur_mhz": _mhz(_per_cpu("cpufreq/scaling_cur_freq")),
            "freq_min_mhz": low, "freq_max_mhz": high, "freq_hw_max_mhz": _mhz(_per_cpu("cpufreq/cpuinfo_max_freq")),
            "cpu_clocks_locked": (low == high) if low and high else None}


def throttle_count():
    """Thermal throttling events since boot (x86 thermal_throttle counters), None where not readable."""
    counts = [int(v) for name in ("core_throttle_count", "package_throttle_count")
              for v in _per_cpu("thermal_throttle/" + name) if v.isdigit()]
    return sum(counts) if counts else None


def _nvpmodel():
    """(mode id, mode name) of a Jetson's power model: its status file, then ``nvpmodel -q`` (read-only)."""
    status = _read("/var/lib/nvpmodel/status") or ""  # e.g. "pmode:0000"
    mode = int(status.split(":")[1]) if status.startswith("pmode:") and status.split(":")[1].isdigit() else None
    name = None
    try:
        out = subprocess.check_output(["nvpmodel", "-q"], stderr=subprocess.STDOUT, timeout=5,
                                      universal_newlines=True).splitlines()
        name = next((line.split(":", 1)[1].strip() for line in out if "Power Mode" in line), None)
        if mode is None and out and out[-1].strip().isdigit():
            mode = int(out[-1].strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return mode, name


def jetson():
    """On a Jetson (JetPack's /etc/nv_tegra_release): nvpmodel mode and whether the GPU clock is locked (min ==
    max, what ``jetson_clocks`` sets). Elsewhere every field is None."""
    if not os.path.exists("/etc/nv_tegra_release"):
        return {"nvpmodel_mode": None, "nvpmodel_name": None, "gpu_freq_mhz": None, "gpu_clocks_locked": None}
    mode, name = _nvpmodel()
    gpus = [f for f in glob.glob("/sys/class/devfreq/*") if "gp" in os.path.basename(f) or "gpu" in f]
    freq = {k: _read(os.path.join(gpus[0], k + "_freq")) if gpus else None for k in ("cur", "min", "max")}
    locked = freq["min"] == freq["max"] if freq["min"] and freq["max"] else None
    return {"nvpmodel_mode": mode, "nvpmodel_name": name, "gpu_clocks_locked": locked,
            "gpu_freq_mhz": int(freq["cur"]) // 1000000 if freq["cur"] and freq["cur"].isdigit() else None}


def _load():
    """1-minute load average and the processes runnable right now (this one included), from /proc/loadavg."""
    fields = (_read("/proc/loadavg") or "").split()
    runnable = int(fields[3].split("/")[0]) if len(fields) > 3 and fields[3].split("/")[0].isdigit() else None
    return {"load_1m": float(fields[0]) if fields else None, "runnable": runnable}


def environment():
    """Where a measurement ran: read-only checks of files and commands, None where one is absent."""
    env = {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
           "os": platform.platform(), "python": platform.python_version(), "hostname": platform.node(),
           "kernel": platform.release(), "throttle_count": throttle_count()}
    env.update(cpu_clocks())
    env.update(jetson())
    env.update(_load())
    return env


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


def _ort_session(ort, path, threads, device, profile_prefix=None):
    """(session, provider) with the bench's settings; ``profile_prefix``: with session profiling on."""
    wanted = ort_provider(ort, device)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(path, options, providers=[wanted])
    ran = session.get_providers()
    if not ran or ran[0] != wanted:  # ONNX Runtime falls back to the CPU when a GPU provider fails to load
        raise RunnerError("asked for %s but onnxruntime %s ran %s (are its CUDA/TensorRT libraries installed?)"
                          % (wanted, ort.__version__, ", ".join(ran) or "nothing"))
    return session, wanted


def _onnxruntime(path, threads, device, exact):
    import numpy as np
    import onnxruntime as ort
    session, wanted = _ort_session(ort, path, threads, device)
    ran = session.get_providers()
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
        interpreter.set_tensor(source["index"], _quantized(x, source))
        interpreter.invoke()
        return _dequantized(interpreter.get_tensor(target["index"]), target)
    shape = _shape(list(source["shape"]))
    name = "litert" if package == "ai_edge_litert" else "tflite-runtime"
    version = getattr(__import__(package), "__version__", "?")
    return Loaded(name, run, shape, version, "CPU", dtype=source["dtype"], layout=guess_layout(shape))


def _quantized(x, detail):
    """A float input for a full-integer file (int8 in and out, as the LiteRT quantizer writes it) in the
    file's own scale and zero point; integer inputs (what timing feeds such a file) pass as they are."""
    import numpy as np
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer) or np.issubdtype(np.asarray(x).dtype, np.integer):
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _dequantized(y, detail):
    import numpy as np
    if not np.issubdtype(y.dtype, np.integer):
        return y.copy()
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


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


def _legacy_config(device, threads, exact):
    config = {}
    if device == "CPU":
        config["ENFORCE_BF16"] = "NO" if exact else "YES"
        if threads:
            config["CPU_THREADS_NUM"] = str(threads)
    return config


def _openvino_legacy(path, threads, device, exact):
    """OpenVINO <= 2021.4 (the last with the NCS2/MYRIAD plugin): the Inference Engine API."""
    import numpy as np
    from openvino.inference_engine import IECore, get_version
    core = IECore()
    network = core.read_network(model=path, weights=os.path.splitext(path)[0] + ".bin")
    executable = core.load_network(network, device, config=_legacy_config(device, threads, exact))
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


# ---------------------------------------------------------------- per-operator profiles

PROFILE_RUNS = 20  # profiled inferences: each operator's time is its median over them
PROFILE_WARMUP = 3  # a fresh profiling session's first runs allocate and select kernels
NO_PROFILER = {
    "litert": "the LiteRT Python Interpreter (ai_edge_litert) exposes no per-operator profiler (no SetProfiler or "
              "profiling call; only the C++ benchmark_model has --enable_op_profiling)",
    "tflite-runtime": "tflite-runtime's Python Interpreter exposes no per-operator profiler (no SetProfiler or "
                      "profiling call; only the C++ benchmark_model has --enable_op_profiling)",
    "c": "the C export has no profiler (one function per layer, no timing hooks)",
}


def _profile_loop(run, x, runs, read, profiler):
    """Warm up, then ``runs`` inferences, each timed end to end and followed by ``read()`` (its operators)."""
    for _ in range(PROFILE_WARMUP):
        run(x)
    per_run, whole = [], []
    for _ in range(runs):
        start = _now_ns()
        run(x)
        whole.append(_now_ns() - start)
        per_run.append(read())
    return {"profiler": profiler, "per_run": per_run, "end_to_end_ns": whole}


def _ort_runs(events):
    """The trace's kernel events grouped by the ``model_run`` they fall in: [[(node, op type, ns), ...], ...]."""
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    grouped = [[] for _ in runs]
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time"):
            i = bisect.bisect_right(runs, e["ts"]) - 1
            if i >= 0:
                grouped[i].append((name[:-len("_kernel_time")], e.get("args", {}).get("op_name", "?"),
                                   int(e["dur"]) * 1000))
    return grouped


def _profile_onnxruntime(path, threads, device, exact, x, runs, run):
    """ONNX Runtime's session profiling (a second session with it on; the timed one ran without it)."""
    import onnxruntime as ort
    folder = tempfile.mkdtemp(prefix="dass-edge-profile-")
    try:
        session, _ = _ort_session(ort, path, threads, device, os.path.join(folder, "ort"))
        feed = session.get_inputs()[0].name
        timed = _profile_loop(lambda v: session.run(None, {feed: v}), x, runs, lambda: None, "")
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    timed.update(profiler="onnxruntime session profiling", per_run=_ort_runs(events)[PROFILE_WARMUP:])
    return timed


def _profile_openvino(path, threads, device, exact, x, runs, run):
    """OpenVINO's performance counters (PERF_COUNT) of a second compiled model; executed nodes only."""
    device = (device or "CPU").upper()
    try:
        from openvino import Core
    except ImportError:
        try:
            from openvino.runtime import Core
        except ImportError:
            return _profile_openvino_legacy(path, threads, device, exact, x, runs)
    config = dict(openvino_config(threads, exact), PERF_COUNT="YES")
    request = Core().compile_model(path, device, config).create_infer_request()

    def read():
        return [(p.node_name, p.node_type, int(p.real_time.total_seconds() * 1e9))
                for p in request.get_profiling_info() if str(p.status).endswith(".EXECUTED")]
    return _profile_loop(lambda v: request.infer({0: v}), x, runs, read, "openvino performance counters")


def _profile_openvino_legacy(path, threads, device, exact, x, runs):
    """The Inference Engine's get_perf_counts (OpenVINO <= 2021.4, the NCS2's)."""
    from openvino.inference_engine import IECore
    core = IECore()
    network = core.read_network(model=path, weights=os.path.splitext(path)[0] + ".bin")
    config = dict(_legacy_config(device, threads, exact), PERF_COUNT="YES")
    executable = core.load_network(network, device, config=config)  # must outlive its request
    request = executable.requests[0]
    name = next(iter(network.input_info))

    def read():
        return [(node, c["layer_type"], int(c["real_time"]) * 1000)
                for node, c in request.get_perf_counts().items() if c["status"] == "EXECUTED"]
    timed = _profile_loop(lambda v: request.infer({name: v}), x, runs, read, "openvino performance counters")
    request = None  # released before the network it runs on
    executable = None
    return timed


def _torch_ops(events):
    """The operators a TorchScript forward called directly (children of its 'forward' record), numbered in
    call order: saved TorchScript keeps no module names to map them to layers."""
    top = [e for e in events if e.cpu_parent is not None and e.cpu_parent.name == "forward"]
    top = top or [e for e in events if e.cpu_parent is None]
    seen, ops = {}, []
    for e in sorted(top, key=lambda e: e.time_range.start):
        seen[e.name] = seen.get(e.name, 0) + 1
        ops.append(("%s #%d" % (e.name, seen[e.name]), e.name, int(e.cpu_time_total * 1000)))
    return ops


def _profile_torch(path, threads, device, exact, x, runs, run):
    """torch.profiler (torch.autograd.profiler on old torch) around each run of the model already loaded."""
    try:
        from torch.profiler import profile
    except ImportError:
        from torch.autograd.profiler import profile
    state = {}

    def profiled(v):
        with profile() as prof:
            run(v)
        state["events"] = prof.events() if hasattr(prof, "events") else prof.function_events
    return _profile_loop(profiled, x, runs, lambda: _torch_ops(state["events"]),
                         "torch.profiler (CPU-side times)")


PROFILERS = {"onnxruntime": _profile_onnxruntime, "openvino": _profile_openvino, "torch": _profile_torch}


def _op_medians(per_run):
    """Each operator's median time over the runs (ms; a run where it did not execute counts 0), in the order
    the first run executed them; a name met twice in one run is summed."""
    order, kinds, values = [], {}, {}
    for ops in per_run:
        mine = {}
        for name, kind, ns in ops:
            if name not in kinds:
                order.append(name)
                kinds[name] = kind
            mine[name] = mine.get(name, 0) + ns
        for name in kinds:
            values.setdefault(name, []).append(mine.get(name, 0))
    n = len(per_run)
    return [{"name": name, "type": kinds[name],
             "ms": statistics.median(values[name] + [0] * (n - len(values[name]))) / 1e6} for name in order]


def profile_model(path, runtime, threads, device, exact, x, run, runs=PROFILE_RUNS):
    """Per-operator times of ``path`` from its runtime's own profiler (``run``: the loaded model, for torch),
    or {"available": false, "reason"} where the runtime has none or it failed: never fails the timing."""
    if runtime not in PROFILERS:
        return {"available": False, "reason": NO_PROFILER.get(runtime, "%s has no profiler here" % runtime)}
    try:
        raw = PROFILERS[runtime](path, threads, device, exact, x, max(1, runs), run)
    except Exception as exc:  # a profiler is a diagnostic: its failure is reported, the latency stands
        return {"available": False, "reason": "%s profiling failed: %s" % (runtime, str(exc).strip().split("\n")[0])}
    return {"available": True, "profiler": raw["profiler"], "runs": len(raw["per_run"]),
            "ops": _op_medians(raw["per_run"]), "end_to_end_ms": statistics.median(raw["end_to_end_ns"]) / 1e6}


# ---------------------------------------------------------------- peak memory

RUNTIME_MODULES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",),
                   "litert": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"),
                   "tflite-runtime": ("tflite_runtime.interpreter",), "torch": ("torch",), "c": ("ctypes",)}
MEMORY_RUNS = 10


def peak_rss_bytes():
    """This process's peak resident set so far: VmHWM (Linux), else getrusage's ru_maxrss."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def model_files(path):
    """{file name: bytes} of the model and what it loads beside it (OpenVINO's .bin, ONNX external data)."""
    sidecars = [os.path.splitext(path)[0] + ".bin", path + ".data"] if path.endswith(".xml") else [path + ".data"]
    return dict((os.path.basename(p), os.path.getsize(p)) for p in [path] + sidecars if os.path.isfile(p))


def memory(path, runtime="auto", threads=0, device="", input_shape=None, runs=MEMORY_RUNS):
    """The ``memory`` command, for a fresh process: its peak RSS once numpy and the runtime are imported (the
    baseline), then after loading ``path`` and running it ``runs`` times; the difference is the model's."""
    import numpy as np
    name = runtime_for(path) if runtime in ("auto", None, "") else ALIASES.get(runtime, runtime)
    for module in RUNTIME_MODULES.get(name, ()):
        try:
            __import__(module)
            break
        except ImportError:
            continue
    baseline = peak_rss_bytes()
    loaded = open_model(path, runtime, threads, device)
    x = fixed_input(list(input_shape or loaded.shape), loaded.dtype or np.float32)
    for _ in range(max(1, runs)):
        loaded.run(x)
    peak = peak_rss_bytes()
    return {"process_peak_rss_bytes": peak, "baseline_rss_bytes": baseline, "model_peak_rss_bytes": peak - baseline,
            "files_bytes": model_files(path), "runs": runs, "runtime": loaded.runtime}


def measure_memory(path, runtime="auto", threads=0, device="", input_shape=None, timeout=600):
    """``memory`` in a fresh interpreter (this one, with its isolation flag), so that what this process has
    already imported or allocated does not count; its dict, or {"error": ...}."""
    command = [sys.executable] + (["-I"] if sys.flags.isolated else []) + [
        os.path.abspath(__file__), "memory", path, "--runtime", runtime or "auto", "--threads", str(threads or 0),
        "--device", device or ""] + (["--input-shape", ",".join(str(d) for d in input_shape)] if input_shape else [])
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "the memory measurement did not finish within %d s" % timeout}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"error": (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]}


# ---------------------------------------------------------------- readiness (dass-edge boards doctor)


def _check_onnxruntime(device):
    import onnxruntime as ort
    return ort.__version__, ort.get_available_providers(), ort_provider(ort, device)


def _check_openvino(device):
    try:
        from openvino import Core, get_version
    except ImportError:
        try:
            from openvino.runtime import Core, get_version
        except ImportError:
            from openvino.inference_engine import IECore as Core, get_version
    devices = list(Core().available_devices)
    wanted = (device or "CPU").upper()
    if wanted not in devices:
        raise RunnerError("OpenVINO %s here has no %s device (it has %s)" % (get_version(), wanted, ", ".join(devices)))
    return get_version(), devices, wanted


def _check_tflite(packages):
    for package in packages:
        try:
            __import__(package + ".interpreter")
            return getattr(__import__(package), "__version__", "?"), ["CPU"], "CPU"
        except ImportError:
            continue
    raise MissingRuntime(" or ".join(packages) + " cannot be imported")


def _check_torch(device):
    import torch
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    wanted = (device or devices[-1]).lower()
    if wanted.split(":")[0] not in devices:
        raise RunnerError("torch %s here has no %s device" % (torch.__version__, wanted))
    return torch.__version__, devices, wanted


CHECKS = {"onnxruntime": _check_onnxruntime, "openvino": _check_openvino, "torch": _check_torch,
          "litert": lambda device: _check_tflite(["ai_edge_litert", "tflite_runtime"]),
          "tflite-runtime": lambda device: _check_tflite(["tflite_runtime"]),
          "c": lambda device: (platform.python_version(), ["CPU"], "CPU")}


def runtime_check(runtime, device=""):
    """Whether ``runtime`` imports here and has ``device`` (provider, plugin, CUDA): never raises."""
    runtime = ALIASES.get(runtime, runtime)
    if runtime not in CHECKS:
        return {"runtime": runtime, "ok": False, "error": "unknown runtime %s" % runtime}
    try:
        version, devices, wanted = CHECKS[runtime](device)
        return {"runtime": runtime, "ok": True, "version": str(version), "devices": list(devices), "device": wanted}
    except ImportError as exc:
        return {"runtime": runtime, "ok": False, "error": "%s is not installed here (%s)" % (runtime, exc)}
    except Exception as exc:
        return {"runtime": runtime, "ok": False, "error": str(exc).strip().split("\n")[0] or type(exc).__name__}


# ---------------------------------------------------------------- the commands


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


def diagnose(path, loaded, x, header, threads, device, profile_runs=0, with_memory=False):
    """After the timing, never during it: throttling events while it ran, the per-operator profile
    (``profile_runs`` > 0) and the peak memory of loading and running the model in a fresh process."""
    before, after = header.get("env", {}).get("throttle_count"), throttle_count()
    header["throttled_during_run"] = after - before if before is not None and after is not None else None
    if profile_runs:
        header["profile"] = profile_model(path, loaded.runtime, threads, device, True, x, loaded.run, profile_runs)
    if with_memory:
        header["memory"] = measure_memory(path, loaded.runtime, threads, device, list(x.shape))
    return header


def measure(path, runtime="auto", threads=0, device="", warmup=10, runs=100, min_seconds=1.0, rounds=1,
            input_shape=None, profile_runs=0, with_memory=False):
    """Load ``path`` and time it; the dict ``time`` prints."""
    loaded, x, result = _prepared(path, runtime, threads, device, input_shape)
    result["warmup"] = warmup
    result.update(time_rounds(loaded.run, x, warmup, runs, min_seconds, rounds))
    result.update(time_on_device(loaded.on_device, x, warmup, runs, min_seconds, rounds))
    return diagnose(path, loaded, x, result, threads, device, profile_runs, with_memory)


def measure_pair(path, reference, runtimes=("auto", "auto"), threads=0, device="", warmup=10, runs=100,
                 min_seconds=1.0, rounds=2, input_shape=None, profile_runs=0, with_memory=False):
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
    for model, (loaded, x, header) in zip((path, reference), sides):
        diagnose(model, loaded, x, header, threads, device, profile_runs, with_memory)
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
    timing.add_argument("--profile", type=int, default=0, metavar="RUNS",
                        help="after timing, profile RUNS inferences with the runtime's own profiler")
    timing.add_argument("--memory", action="store_true", help="after timing, peak memory in a fresh process")
    mem = commands.add_parser("memory", help="peak RSS of loading and running MODEL (run in a fresh process)")
    mem.add_argument("model")
    mem.add_argument("--runtime", default="auto", choices=runtimes)
    mem.add_argument("--threads", type=int, default=0)
    mem.add_argument("--device", default="")
    mem.add_argument("--input-shape", default="")
    env = commands.add_parser("env", help="this machine's environment and whether a runtime and device are here")
    env.add_argument("--runtime", default="", choices=[""] + runtimes[1:])
    env.add_argument("--device", default="")
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
    if args.command == "env":
        checked = {"runtime_check": runtime_check(args.runtime, args.device)} if args.runtime else {}
        return dict(checked, agent_version=AGENT_VERSION, env=environment())
    shape = [int(d) for d in args.input_shape.split(",")] if args.input_shape else None
    if args.command == "memory":
        return memory(args.model, args.runtime, args.threads, args.device, shape)
    if args.against:
        return measure_pair(args.model, args.against, (args.runtime, args.against_runtime), args.threads,
                            args.device, args.warmup, args.runs, args.min_seconds, args.rounds, shape,
                            args.profile, args.memory)
    return measure(args.model, args.runtime, args.threads, args.device, args.warmup, args.runs,
                   args.min_seconds, args.rounds, shape, args.profile, args.memory)


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
