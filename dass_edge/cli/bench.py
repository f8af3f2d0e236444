"""`dass-edge bench`: batch-1 latency on this machine, on a board over SSH, or predicted; a CI gate."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dass_edge.bench import gate
from dass_edge.bench.lock import DEFAULT_WAIT_S, parse_duration
from dass_edge.bench.measure import Settings
from dass_edge.bench.paired import run_paired
from dass_edge.bench.service import BenchRequest, default_baseline, run_bench
from dass_edge.bench.memory import describe_memory
from dass_edge.bench.stats import DEFAULT_PERCENTILES
from dass_edge.cli import bench_report
from dass_edge.cli.options import AllowDead, JsonFlag, emit
from dass_edge.errors import DassEdgeError, InconclusiveError, InputError, RegressionError

EXIT_CODES = ("Exit codes: 0 measured, no regression (or a baseline bootstrapped); 10 regression (slower than the "
              "reference beyond the tolerance); 11 inconclusive (too noisy to decide: the interval spans the "
              "limit); 2 bad input (unknown device, missing file or baseline entry, an output path that cannot "
              "be written); 3 runtime or paramiko not installed; 5 board error (unreachable, key or host key "
              "refused, agent failed or killed); 7 dead model (its output does not depend on its input; "
              "--allow-dead measures it anyway); 8 the operating system refused a file operation; 12 board busy "
              "(another bench held it for all of --wait-board); 13 the baseline was measured in another "
              "environment (--allow-env-change compares anyway); 1 other errors.")
PAIRED_ROUNDS = 10
PROFILE_RUNS = 20
GATE_THREADS = 1  # pinned when gating: a runtime's default thread count follows the machine and its load

_BOARD = "Board (SSH targets)"


def _human(result: dict[str, Any]) -> None:
    where = result.get("host") or result["latency_source"]
    where += ", EMULATED: qemu's speed, not the board's" if result.get("emulated") else ""
    typer.echo(f"{result['model']} on {result['device']} ({result['runtime']} {result['runtime_version']}, "
               f"{where}): median {result['median_ms']:.4f} ms, "
               f"mean {result['mean_ms']:.4f} ± {result['std_ms']:.4f} ms over {result['count']} runs "
               f"in {result.get('rounds', 1)} round(s); first {result.get('first_ms') or 0:.3f} ms")
    for line in (bench_report.tails_line(result), result.get("cv_warning"), bench_report.memory_line(result)):
        if line:
            typer.echo(line)
    bench_report.print_profile(result)
    if "against" in result:
        ref = result["against"]
        typer.echo(f"reference {ref['model']}: median {ref['median_ms']:.4f} ms in the same, alternating rounds")
    if "device_compute" in result:
        compute = result["device_compute"]
        typer.echo(f"on {', '.join(result.get('providers') or [result['runtime_device']])}: host to host (copies "
                   f"inside) as above; device compute (input already on the device) median "
                   f"{compute['median_ms']:.4f} ms, p90 {compute['p90_ms']:.4f} ms")
    if "ratio" in result:
        typer.echo(gate.describe(result))
        bench_report.print_grown(result)
    if result.get("memory_decision"):
        typer.echo(describe_memory(result))
    if result.get("env_changes"):
        changes = ", ".join(f"{c['field']} {c['baseline']} -> {c['now']}" for c in result["env_changes"])
        typer.echo(f"compared across an environment change (--allow-env-change): {changes}")
    if "against" in result and "baseline" in result:
        stored = result["baseline"]
        if stored is None:
            typer.echo("  the baseline file has no entry for this model: nothing stored to show beside it")
        if stored and "refused" in stored:
            typer.echo(f"  the stored baseline is not compared: {stored['refused']}")
        for side in ("candidate", "reference") if stored and "refused" not in stored else ():
            verdict = stored[side]
            typer.echo(f"  {side} vs the stored baseline {stored['median_ms']:.4f} ms: ratio {verdict['ratio']:.3f} "
                       f"(95% CI {verdict['ratio_ci_low']:.3f}-{verdict['ratio_ci_high']:.3f})")
    if result.get("decision") == "bootstrapped":
        typer.echo(result["bootstrap_message"])
    elif "baseline_written" in result:
        typer.echo(f"baseline written: {result['baseline_written']} [{result['model_key']}]")


def _check_writable(path: Path, option: str) -> None:
    """Fail in one line before measuring when ``path`` cannot be written: probe its nearest existing folder
    with a temporary file (permission bits say little to root, on /proc or a read-only mount)."""
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder, not a file")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as exc:
        raise InputError(f"{option} {path} cannot be written ({folder}: {exc.strerror or exc})") from None


def bench(
    model: Annotated[Path, typer.Argument(help="A model file (.onnx, .xml, .tflite, .pt TorchScript) or a "
                                          "dass-edge checkpoint (exported first in the device's format).")],
    device: Annotated[str, typer.Option("--device", "-d", help="Target name (targets/*.toml), e.g. intel-cpu, "
                                        "jetson-tx2, cortex-a7.")],
    runs: Annotated[int, typer.Option("--runs", help="Minimum timed runs per round.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs after the first inference.")] = 10,
    min_seconds: Annotated[float, typer.Option("--min-seconds", help="Minimum timed seconds per round.")] = 1.0,
    rounds: Annotated[int | None, typer.Option("--rounds", help=f"Measurement rounds (default "
                                               f"{PAIRED_ROUNDS} with --against, 5 with a baseline, else 1); the "
                                               "gate compares round medians and needs at least 2 (3 paired).")
                      ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help=f"Runtime threads (default: {GATE_THREADS} "
                                                "when gating, else the runtime's).")] = None,
    runtime: Annotated[str | None, typer.Option("--runtime", help="onnxruntime, openvino, litert, "
                                                "tflite-runtime or torch (default: the file's format).")] = None,
    runtime_device: Annotated[str | None, typer.Option("--runtime-device", help="Device inside the runtime: "
                                                       "CUDA, TensorRT or CPU for onnxruntime, cuda or cpu for "
                                                       "torch, GPU/NPU/MYRIAD for OpenVINO (default: the "
                                                       "target's; jetson-tx2 and cuda-gpu: the GPU). A GPU asked "
                                                       "for and missing is an error, never a CPU run.")] = None,
    against: Annotated[Path | None, typer.Option("--against", help="A reference model (file or checkpoint, "
                                                 "e.g. the main branch's build) measured in the same run in "
                                                 "alternating rounds; the verdict is on the paired ratio. Here or "
                                                 "on the board (the agent alternates there); not for "
                                                 "predicted devices.")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Baseline JSON to compare with, e.g. "
                                                  "benchmarks/baselines/intel-cpu.json (with --against: shown "
                                                  "beside the paired verdict).")] = None,
    baseline_key: Annotated[str | None, typer.Option("--baseline-key", help="Entry in the baseline file "
                                                     "(default: the model's file name without extension).")
                            ] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Allowed slowdown, e.g. 0.1 = 10%; a "
                                             "regression needs the 95% CI of the ratio above 1 + tolerance.")
                         ] = gate.DEFAULT_TOLERANCE,
    update_baseline: Annotated[bool, typer.Option("--update-baseline", help="Write this measurement as the "
                                                  "baseline (to --baseline, or benchmarks/baselines/DEVICE.json)."
                                                  )] = False,
    bootstrap_baseline: Annotated[bool, typer.Option("--bootstrap-baseline", help="With --baseline: when the "
                                                     "file or its entry does not exist yet (a device's first CI "
                                                     "run), write it from this run and pass, saying so, instead "
                                                     "of exit 2.")] = False,
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="Write a JUnit XML report.")] = None,
    results: Annotated[Path | None, typer.Option("--results", help="Append the result to this JSONL file.")
                       ] = None,
    history: Annotated[Path | None, typer.Option("--history", help="Append this run to a latency history (SQLite, "
                                                 "made on first use; dass-edge history plots it).")] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="The commit measured, for --history (default: "
                                               "git rev-parse HEAD here).")] = None,
    export_dir: Annotated[Path, typer.Option("--export-dir", help="Where a checkpoint is exported.")
                          ] = Path("exported"),
    board: Annotated[str | None, typer.Option("--board", help="Board name in the inventory (default: the "
                                              "device name).", rich_help_panel=_BOARD)] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", help="Boards file (default "
                                                   "~/.config/dass-edge/boards.toml or $DASS_EDGE_INVENTORY).",
                                                   rich_help_panel=_BOARD)] = None,
    host: Annotated[str | None, typer.Option("--host", rich_help_panel=_BOARD)] = None,
    user: Annotated[str | None, typer.Option("--user", rich_help_panel=_BOARD)] = None,
    port: Annotated[int | None, typer.Option("--port", rich_help_panel=_BOARD)] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Private key file.", rich_help_panel=_BOARD)] = None,
    python: Annotated[str | None, typer.Option("--python", help="The board's Python.", rich_help_panel=_BOARD)
                      ] = None,
    known_hosts: Annotated[Path | None, typer.Option("--known-hosts", rich_help_panel=_BOARD)] = None,
    remote_timeout: Annotated[float | None, typer.Option("--remote-timeout", help="Seconds the agent may run.",
                                                         rich_help_panel=_BOARD)] = None,
    wait_board: Annotated[str, typer.Option("--wait-board", help="How long to wait for a board another bench holds "
                                            "(90s, 15m, 1h; 0: not at all), then fail with exit 12.",
                                            rich_help_panel=_BOARD)] = f"{DEFAULT_WAIT_S / 60:g}m",
    profile: Annotated[bool | None, typer.Option("--profile/--no-profile", help="After the timing, time every "
                                                 "operator with the runtime's own profiler (ONNX Runtime, OpenVINO, "
                                                 "torch; TFLite and C have none) and map it to the network's "
                                                 "layers; default: on when gating, so a regression names what "
                                                 "grew.")] = None,
    profile_runs: Annotated[int, typer.Option("--profile-runs", help="Profiled runs; each operator's time is "
                                              "its median over them.")] = PROFILE_RUNS,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Peak memory of loading and running the "
                                         "model, in a fresh process (on the board for SSH targets).")] = True,
    memory_tolerance: Annotated[float | None, typer.Option("--memory-tolerance", help="Gate peak memory too: a "
                                                           "regression (exit 10) when it grew by more than this "
                                                           "fraction (and 1 MiB).")] = None,
    percentiles: Annotated[str, typer.Option("--percentiles", help="Percentiles to report, e.g. 50,90,99,99.9; "
                                             "each needs 1/(its tail share) runs (p99: 100, p99.9: 1000) or is "
                                             "reported as not measured.")] = ",".join(
                                                 f"{q:g}" for q in DEFAULT_PERCENTILES),
    allow_env_change: Annotated[bool, typer.Option("--allow-env-change", help="Compare with a baseline measured "
                                                   "in another environment (CPU, kernel, governor, clocks, "
                                                   "runtime version, threads); refused otherwise (exit 13).")
                                ] = False,
    allow_dead: AllowDead = False,
    as_json: JsonFlag = False,
) -> None:
    """Measure batch-1 latency of MODEL on DEVICE; with --against or --baseline, fail (exit 10) on a
    regression and refuse a verdict (exit 11) when the run was too noisy to decide.

    The device's target file says where: here (local), on an attached board over SSH (the agent is
    copied and run with the board's Python), or predicted.

    Timing: first inference alone, --warmup runs, then rounds of at least --runs runs and --min-seconds
    seconds each, with the clock around the runtime call only.

    A network whose output does not depend on its input (checkpoint health, export manifest, or a file run
    here on a few random inputs) is refused with exit 7 unless --allow-dead.

    The gate: a regression when the 95% interval of the ratio is above 1 + --tolerance, a pass when it is
    at or below, inconclusive when it spans the limit. --against measures a reference in the same run,
    which cancels the machine's load; --baseline compares with round medians stored earlier.
    """
    gated = baseline is not None or update_baseline or against is not None
    default_rounds = PAIRED_ROUNDS if against is not None else 5 if gated else 1
    settings = Settings(warmup, runs, min_seconds, rounds or default_rounds,
                        threads or (GATE_THREADS if gated else None),
                        profile_runs if (gated if profile is None else profile) else 0, memory,
                        _percentiles(percentiles))
    if bootstrap_baseline and baseline is None:
        raise InputError("--bootstrap-baseline needs --baseline FILE (the file to create on the first run)")
    for path, option in ((results, "--results"), (junit_xml, "--junit-xml"), (history, "--history"),
                         (baseline or default_baseline(device) if update_baseline or bootstrap_baseline else None,
                          "--update-baseline" if update_baseline else "--baseline")):
        if path is not None:
            _check_writable(path, option)
    if history is not None and history.exists():
        from dass_edge.history.store import check_writable
        check_writable(history)  # a file that is not a latency history is refused before measuring
    request = BenchRequest(
        model=model, device=device, settings=settings, runtime=runtime, runtime_device=runtime_device,
        export_dir=export_dir,
        board={"board": board, "inventory": inventory, "host": host, "user": user, "port": port, "key": key,
               "python": python, "known_hosts": known_hosts, "run_timeout_s": remote_timeout},
        baseline=baseline, baseline_key=baseline_key, tolerance=tolerance, update_baseline=update_baseline,
        bootstrap_baseline=bootstrap_baseline, allow_dead=allow_dead, against=against,
        board_wait_s=parse_duration(wait_board), memory_tolerance=memory_tolerance,
        allow_env_change=allow_env_change)
    start = time.monotonic()
    try:
        result = run_paired(request) if against is not None else run_bench(request)
    except DassEdgeError as exc:
        if junit_xml is not None:
            gate.write_junit(junit_xml, {"device": device, "model": model.stem}, time.monotonic() - start, str(exc))
        raise
    if junit_xml is not None:
        gate.write_junit(junit_xml, result, time.monotonic() - start)
    if results is not None:
        from dass_edge.bench.results import append_result
        append_result(results, result)
    if history is not None:
        from dass_edge.history.store import append, git_commit
        append(history, result, commit or git_commit())
    emit(result, as_json, _human)
    decision = result.get("decision")
    if decision == "regression":
        raise RegressionError(f"{result['model_key']} on {device}: {gate.describe(result)}")
    if result.get("memory_decision") == "regression":
        raise RegressionError(f"{result['model_key']} on {device}: {describe_memory(result)}")
    if decision == "inconclusive":
        raise InconclusiveError(f"{result['model_key']} on {device} is too noisy to decide: {gate.describe(result)}; "
                                "measure more --rounds, on a quieter machine, or with --against a reference")


def _percentiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(q) for q in text.split(",") if q.strip())
    except ValueError:
        raise InputError(f"--percentiles takes numbers separated by commas, e.g. 50,90,99,99.9, not {text!r}") from None
    if not values or not all(0 < q < 100 for q in values):
        raise InputError(f"--percentiles must lie between 0 and 100, not {text!r}")
    return values


def register(app: typer.Typer) -> None:
    app.command("bench", epilog=EXIT_CODES)(bench)
