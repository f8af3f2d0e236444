"""How often the latency gate flags a real slowdown, and how often it false-alarms, quiet and noisy.

Three candidates are gated against one reference network (a plain conv net, batch 1, 32x32, ONNX
Runtime, 1 thread): an unchanged copy of it, and deeper versions of the same network whose depth is
calibrated here, by paired measurement, to be 1.5x and 2x slower. Each trial gates every candidate in
two ways: ``paired`` (``bench CANDIDATE --against REFERENCE``: alternating rounds in one run) and
``baseline`` (``bench CANDIDATE --baseline FILE``, against round medians the reference stored at the
start of the first phase). Two phases: as the machine is, and beside a noisy neighbour, a busy loop
that this script starts pinned to one core and stops (it also stops itself when its time is up).

The gate is called through the library the CLI uses (bench.paired.run_paired, bench.service.run_bench),
so every trial loads, checks and times the files as ``dass-edge bench`` does.

    nice -n 19 python benchmarks/gate_power.py --trials 30 --budget-s 600
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dass_edge.bench.measure import Settings
from dass_edge.bench.paired import run_paired
from dass_edge.bench.service import BenchRequest, run_bench

DEVICE = "intel-cpu"
WIDTH = 16
BASE_BLOCKS = 8
TARGETS = {"1.5x": 1.5, "2x": 2.0}
BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def build_onnx(blocks: int, path: Path) -> Path:
    """The reference network with ``blocks`` conv-BN-ReLU blocks: more blocks, the same network, slower.

    Depth rather than width: ONNX Runtime's kernels are fastest at channel counts that are multiples of 8,
    so latency is not monotonic in width (here 17-20 channels were slower than 24), while it grows
    steadily with depth."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, WIDTH, 3, padding=1)]
    for _ in range(blocks):
        layers += [nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.BatchNorm2d(WIDTH), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, 10)]
    model = nn.Sequential(*layers).eval()
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # keeps the output alive at any depth
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, opset_version=13)
    return path


def paired(candidate: Path, reference: Path, settings: Settings, tolerance: float) -> dict:
    return run_paired(BenchRequest(model=candidate, device=DEVICE, settings=settings, against=reference,
                                   tolerance=tolerance))


def calibrate(work: Path, target: float) -> tuple[Path, float]:
    """A depth whose latency ratio to the base is ``target``: guess proportional, then correct twice assuming
    the extra time grows linearly with the extra blocks; the closest file and its measured ratio.

    The ratio is of the fastest runs (``min_ms``) of a paired measurement: the models' own cost, which a
    busy machine can only add to (on this shared machine one paired median ratio of a 1.5x network came
    out at 6.5x), so the true ratio is known even when the gate's conditions are noisy."""
    base = work / f"d{BASE_BLOCKS}.onnx"
    long = Settings(warmup=20, runs=50, min_seconds=0.2, rounds=8, threads=1)
    blocks = round(BASE_BLOCKS * target)
    tried: dict[int, float] = {}
    for _ in range(3):
        if blocks in tried:
            break
        candidate = build_onnx(blocks, work / f"d{blocks}.onnx")
        got = paired(candidate, base, long, 0.1)
        tried[blocks] = got["min_ms"] / got["against"]["min_ms"]
        print(f"  {blocks} blocks: {tried[blocks]:.3f}x (aim {target}x)", file=sys.stderr)
        if abs(tried[blocks] / target - 1) < 0.03 or tried[blocks] <= 1:
            break
        blocks = max(BASE_BLOCKS + 1, BASE_BLOCKS + round((blocks - BASE_BLOCKS) * (target - 1) / (tried[blocks] - 1)))
    best = min(tried, key=lambda b: abs(math.log(tried[b] / target)))
    return work / f"d{best}.onnx", tried[best]


@contextmanager
def noisy_neighbour(seconds: float, core: int = 0) -> Iterator[None]:
    """A busy loop on one core for at most ``seconds`` (it ends itself), stopped on leaving."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)],
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a rate k/n (honest at 0/n and n/n, unlike k/n +- 1.96 se)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_phase(name: str, cases: dict[str, Path], reference: Path, baseline: Path, settings: Settings,
              tolerance: float, trials: int, deadline: float) -> dict:
    counts: dict[str, Counter] = {f"{method}/{case}": Counter() for method in ("paired", "baseline") for case in cases}
    load = []
    for trial in range(trials):
        if time.monotonic() > deadline:
            print(f"  {name}: time budget reached after {trial} trials", file=sys.stderr)
            break
        for case, path in cases.items():  # every case in each trial, so drift hits all alike
            counts[f"paired/{case}"][paired(path, reference, settings, tolerance)["decision"]] += 1
            got = run_bench(BenchRequest(model=path, device=DEVICE, settings=settings, baseline=baseline,
                                         baseline_key="reference", tolerance=tolerance))
            counts[f"baseline/{case}"][got["decision"]] += 1
        load.append(os.getloadavg()[0])
    return {"counts": {k: dict(v) for k, v in counts.items()}, "load_avg_1min": [min(load), max(load)] if load else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="gate calls per case, method and phase")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=0.05)
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--budget-s", type=float, default=600, help="stop starting trials after this long")
    parser.add_argument("--work", type=Path, default=None, help="folder for the models (default: a temporary "
                        "one, removed at the end)")
    args = parser.parse_args()
    start = time.monotonic()
    work = args.work or Path(tempfile.mkdtemp(prefix="gate-power-"))
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings(warmup=5, runs=args.runs, min_seconds=args.min_seconds, rounds=args.rounds, threads=1)

    reference = build_onnx(BASE_BLOCKS, work / f"d{BASE_BLOCKS}.onnx")
    unchanged = work / "unchanged.onnx"
    shutil.copy(reference, unchanged)
    cases, true_ratio = {"unchanged": unchanged}, {"unchanged": 1.0}
    for case, target in TARGETS.items():
        print(f"calibrating the {case} network", file=sys.stderr)
        cases[case], true_ratio[case] = calibrate(work, target)
    baseline = work / "baseline.json"
    run_bench(BenchRequest(model=reference, device=DEVICE, settings=settings, baseline=baseline,
                           baseline_key="reference", update_baseline=True))

    phase_s = (args.budget_s - (time.monotonic() - start)) / 2
    report = {"settings": vars(args) | {"work": str(work)}, "true_ratio": true_ratio,
              "files": {case: path.name for case, path in cases.items()}, "cpus": os.cpu_count(), "phases": {}}
    print(f"first phase (the machine as it is), up to {phase_s:.0f} s", file=sys.stderr)
    report["phases"]["as-is"] = run_phase("as-is", cases, reference, baseline, settings, args.tolerance,
                                          args.trials, time.monotonic() + phase_s)
    print(f"noisy phase (a busy loop on core 0), up to {phase_s:.0f} s", file=sys.stderr)
    with noisy_neighbour(phase_s + 60):
        report["phases"]["noisy"] = run_phase("noisy", cases, reference, baseline, settings, args.tolerance,
                                              args.trials, time.monotonic() + phase_s)
    report["elapsed_s"] = time.monotonic() - start
    if args.work is None:
        shutil.rmtree(work)
    print(json.dumps(report, indent=2))
    print_table(report)


def print_table(report: dict) -> None:
    print("\n| phase | method | candidate (true ratio) | flagged | passed | inconclusive | flagged rate (95% CI) |",
          file=sys.stderr)
    print("|---|---|---|---|---|---|---|", file=sys.stderr)
    for phase, data in report["phases"].items():
        for key, counts in data["counts"].items():
            method, case = key.split("/")
            n = sum(counts.values())
            k = counts.get("regression", 0)
            low, high = wilson(k, n)
            print(f"| {phase} | {method} | {case} ({report['true_ratio'][case]:.2f}x) | {k}/{n} | "
                  f"{counts.get('pass', 0)} | {counts.get('inconclusive', 0)} | {k / max(n, 1):.0%} "
                  f"({low:.0%}-{high:.0%}) |", file=sys.stderr)


if __name__ == "__main__":
    main()
