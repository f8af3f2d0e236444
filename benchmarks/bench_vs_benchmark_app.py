"""Does our timing harness agree with OpenVINO's own benchmark_app on the same IR?

Both run the same OpenVINO IR of DASS-Tiny (or --model) on CPU, batch 1, synchronous, latency hint, f32
inference precision (this CPU would otherwise run bf16). Rounds alternate between the two tools so that
load from other processes hits both alike. Prints each tool's median per round, the medians of those, and
their ratio (ours / benchmark_app); 1.0 means the harness adds nothing measurable.

    .venv/bin/python benchmarks/bench_vs_benchmark_app.py [--model X.xml] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
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


def benchmark_app_median_ms(xml: Path, seconds: float) -> float:
    """benchmark_app's median latency, read from its report on stdout (its JSON report rounds to 10 us)."""
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    with tempfile.TemporaryDirectory() as report:
        proc = subprocess.run([tool, "-m", str(xml), "-d", "CPU", "-hint", "latency", "-api", "sync",
                               "-t", str(seconds), "-infer_precision", "f32", "-report_type", "no_counters",
                               "-report_folder", report], capture_output=True, text=True, timeout=600)
    match = MEDIAN.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise SystemExit(f"benchmark_app failed ({proc.returncode}): {proc.stdout[-500:]}{proc.stderr[-500:]}")
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def ours_median_ms(xml: Path, seconds: float) -> float:
    settings = Settings(warmup=20, runs=100, min_seconds=seconds, rounds=1)
    raw = measure_file(xml, settings, runtime="openvino", device="CPU")
    return result_from_timing(raw, device="intel-cpu", latency_source="local", settings=settings,
                              model=xml.name)["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an OpenVINO IR (.xml); default: DASS-Tiny exported")
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per round and tool")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    xml = args.model or exported_files(checkpoints(args.work, ("dass-tiny",))["dass-tiny"], "intel-cpu",
                                       args.work, ("openvino",))["openvino"]
    ours, theirs = [], []
    for index in range(args.rounds):
        ours.append(ours_median_ms(xml, args.seconds))
        theirs.append(benchmark_app_median_ms(xml, args.seconds))
        print(f"round {index + 1}: ours {ours[-1]:.4f} ms, benchmark_app {theirs[-1]:.4f} ms")
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"model: {xml}")
    print(f"median of round medians: ours {a:.4f} ms, benchmark_app {b:.4f} ms, ratio ours/benchmark_app "
          f"{a / b:.3f}")


if __name__ == "__main__":
    main()
