"""Does our timing harness agree with OpenVINO's own benchmark_app on the same IR?

Both run the same OpenVINO IR of DASS-Tiny (or --model) on CPU, batch 1, synchronous, latency hint, f32
inference precision (this CPU would otherwise run bf16) and the same thread count (--threads). Rounds
alternate between the tools so that load from other processes hits them alike. Prints each tool's median
per round, the medians of those, and their ratios to benchmark_app. Two figures of ours: the full ``dass-edge bench`` path (the runtime adapter
passes the input and fetches the output on every call, as an application does) and our timing loop around
the bare ``infer()`` that benchmark_app times; the second at ~1.0 means the harness adds nothing measurable.

    .venv/bin/python benchmarks/bench_vs_benchmark_app.py [--model X.xml] [--seconds 5] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dass_edge.bench.measure import Settings, measure_file, result_from_timing

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import checkpoints, exported_files  # noqa: E402

MEDIAN = re.compile(r"Median:\s+([0-9.]+)\s*(ms|us|ns)")
UNIT_MS = {"ms": 1.0, "us": 1e-3, "ns": 1e-6}


def benchmark_app_median_ms(xml: Path, seconds: int, threads: int) -> float:
    """benchmark_app's median latency, read from its report on stdout (its JSON report rounds to 10 us).

    Its command line refuses -nthreads together with -hint, so the thread count goes in via -load_config.
    """
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.json"
        config.write_text(json.dumps({"CPU": {"INFERENCE_NUM_THREADS": str(threads)}}))
        proc = subprocess.run([tool, "-m", str(xml), "-d", "CPU", "-hint", "latency", "-api", "sync",
                               "-t", str(seconds), "-infer_precision", "f32", "-load_config", str(config),
                               "-report_type", "no_counters", "-report_folder", folder],
                              capture_output=True, text=True, timeout=600)
    match = MEDIAN.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise SystemExit(f"benchmark_app failed ({proc.returncode}): {proc.stdout[-500:]}{proc.stderr[-500:]}")
    if f"INFERENCE_NUM_THREADS: {threads}" not in proc.stdout:
        raise SystemExit("benchmark_app did not take the thread count from -load_config")
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def ours_median_ms(xml: Path, seconds: int, threads: int) -> float:
    settings = Settings(warmup=20, runs=100, min_seconds=seconds, rounds=1, threads=threads)
    raw = measure_file(xml, settings, runtime="openvino", device="CPU")
    return result_from_timing(raw, device="intel-cpu", latency_source="local", settings=settings,
                              model=xml.name)["median_ms"]


def harness_only_median_ms(xml: Path, seconds: int, threads: int) -> float:
    """Our timing loop around exactly what benchmark_app times: infer() on an input tensor set once.

    The difference to ``ours_median_ms`` is the runtime adapter's per-call input and output handling (what
    an application pays too); the difference to benchmark_app is the harness itself.
    """
    import numpy as np
    import openvino as ov

    from dass_edge.runtimes import runner

    compiled = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT":
                                                         "f32", "INFERENCE_NUM_THREADS": str(threads)})
    request = compiled.create_infer_request()
    x = runner.fixed_input(list(compiled.input(0).get_shape()), np.float32)
    request.set_input_tensor(ov.Tensor(x))
    timing = runner.time_rounds(lambda _: request.infer(), x, 20, 100, seconds, 1)
    return statistics.median(timing["rounds_ns"][0]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an OpenVINO IR (.xml); default: DASS-Tiny exported")
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--seconds", type=int, default=5,
                        help="timed seconds per round and tool (whole seconds, as benchmark_app -t takes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="inference threads for both tools")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    xml = args.model or exported_files(checkpoints(args.work, ("dass-tiny",))["dass-tiny"], "intel-cpu",
                                       args.work, ("openvino",))["openvino"]
    ours, bare, theirs = [], [], []
    for index in range(args.rounds):
        ours.append(ours_median_ms(xml, args.seconds, args.threads))
        bare.append(harness_only_median_ms(xml, args.seconds, args.threads))
        theirs.append(benchmark_app_median_ms(xml, args.seconds, args.threads))
        print(f"round {index + 1}: dass-edge bench {ours[-1]:.4f} ms, harness on infer() only {bare[-1]:.4f} ms, "
              f"benchmark_app {theirs[-1]:.4f} ms")
    a, h, b = statistics.median(ours), statistics.median(bare), statistics.median(theirs)
    print(f"model: {xml}, {args.threads} thread(s), {args.seconds} s per round and tool")
    print(f"median of round medians: dass-edge bench {a:.4f} ms, harness on infer() only {h:.4f} ms, "
          f"benchmark_app {b:.4f} ms")
    print(f"ratio to benchmark_app: dass-edge bench {a / b:.3f}, harness on infer() only {h / b:.3f}")


if __name__ == "__main__":
    main()
