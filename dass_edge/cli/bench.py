"""`dass-edge bench`: batch-1 latency on this machine, on a board over SSH, or predicted; a CI gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dass_edge.bench import gate
from dass_edge.bench.measure import Settings
from dass_edge.bench.service import BenchRequest, run_bench
from dass_edge.cli.options import AllowDead, JsonFlag, emit
from dass_edge.errors import DassEdgeError, RegressionError

EXIT_CODES = ("Exit codes: 0 measured, no regression; 10 regression (slower than the baseline beyond the "
              "tolerance); 2 bad input (unknown device, missing file or baseline entry); 3 runtime or paramiko "
              "not installed; 5 board error (unreachable, key or host key refused, agent failed or killed); "
              "7 dead model (its output does not depend on its input; --allow-dead measures it anyway); "
              "1 other errors.")

_BOARD = "Board (SSH targets)"


def _human(result: dict[str, Any]) -> None:
    where = result.get("host") or result["latency_source"]
    typer.echo(f"{result['model']} on {result['device']} ({result['runtime']} {result['runtime_version']}, "
               f"{where}): median {result['median_ms']:.4f} ms, p90 {result['p90_ms']:.4f} ms, "
               f"mean {result['mean_ms']:.4f} ± {result['std_ms']:.4f} ms over {result['count']} runs "
               f"in {result.get('rounds', 1)} round(s); first {result.get('first_ms') or 0:.3f} ms")
    if "device_compute" in result:
        compute = result["device_compute"]
        typer.echo(f"on {', '.join(result.get('providers') or [result['runtime_device']])}: host to host (copies "
                   f"inside) as above; device compute (input already on the device) median "
                   f"{compute['median_ms']:.4f} ms, p90 {compute['p90_ms']:.4f} ms")
    if "ratio" in result:
        verdict = "REGRESSION" if result["regression"] else "ok"
        typer.echo(f"baseline {result['baseline_median_ms']:.4f} ms: ratio {result['ratio']:.3f} "
                   f"(95% CI {result['ratio_ci_low']:.3f}-{result['ratio_ci_high']:.3f}, tolerance "
                   f"{result['tolerance']:.0%}): {verdict}")
    if "baseline_written" in result:
        typer.echo(f"baseline written: {result['baseline_written']} [{result['model_key']}]")


def bench(
    model: Annotated[Path, typer.Argument(help="A model file (.onnx, .xml, .tflite, .pt TorchScript) or a "
                                          "dass-edge checkpoint (exported first in the device's format).")],
    device: Annotated[str, typer.Option("--device", "-d", help="Target name (targets/*.toml), e.g. intel-cpu, "
                                        "jetson-tx2, cortex-a7.")],
    runs: Annotated[int, typer.Option("--runs", help="Minimum timed runs per round.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs after the first inference.")] = 10,
    min_seconds: Annotated[float, typer.Option("--min-seconds", help="Minimum timed seconds per round.")] = 1.0,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Measurement rounds (default 5 with a "
                                               "baseline, else 1); the gate compares round medians.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Runtime threads (default: the runtime's).")
                       ] = None,
    runtime: Annotated[str | None, typer.Option("--runtime", help="onnxruntime, openvino, litert, "
                                                "tflite-runtime or torch (default: the file's format).")] = None,
    runtime_device: Annotated[str | None, typer.Option("--runtime-device", help="Device inside the runtime: "
                                                       "CUDA, TensorRT or CPU for onnxruntime, cuda or cpu for "
                                                       "torch, GPU/NPU/MYRIAD for OpenVINO (default: the "
                                                       "target's; jetson-tx2 and cuda-gpu: the GPU). A GPU asked "
                                                       "for and missing is an error, never a CPU run.")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Baseline JSON to compare with, e.g. "
                                                  "benchmarks/baselines/intel-cpu.json.")] = None,
    baseline_key: Annotated[str | None, typer.Option("--baseline-key", help="Entry in the baseline file "
                                                     "(default: the model's file name without extension).")
                            ] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Allowed slowdown, e.g. 0.1 = 10%; a "
                                             "regression needs the 95% CI of the ratio above 1 + tolerance.")
                         ] = gate.DEFAULT_TOLERANCE,
    update_baseline: Annotated[bool, typer.Option("--update-baseline", help="Write this measurement as the "
                                                  "baseline (to --baseline, or benchmarks/baselines/DEVICE.json)."
                                                  )] = False,
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="Write a JUnit XML report.")] = None,
    results: Annotated[Path | None, typer.Option("--results", help="Append the result to this JSONL file.")
                       ] = None,
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
    allow_dead: AllowDead = False,
    as_json: JsonFlag = False,
) -> None:
    """Measure batch-1 latency of MODEL on DEVICE; with --baseline, fail (exit 10) on a regression.

    The device's target file says where: here (local), on an attached board over SSH (the agent is
    copied and run with the board's Python), or predicted.

    Timing: first inference alone, --warmup runs, then rounds of at least --runs runs and --min-seconds
    seconds each, with the clock around the runtime call only.

    A network whose output does not depend on its input (checkpoint health, export manifest, or a file run
    here on a few random inputs) is refused with exit 7 unless --allow-dead.
    """
    gated = baseline is not None or update_baseline
    settings = Settings(warmup, runs, min_seconds, rounds or (5 if gated else 1), threads)
    request = BenchRequest(
        model=model, device=device, settings=settings, runtime=runtime, runtime_device=runtime_device,
        export_dir=export_dir,
        board={"board": board, "inventory": inventory, "host": host, "user": user, "port": port, "key": key,
               "python": python, "known_hosts": known_hosts, "run_timeout_s": remote_timeout},
        baseline=baseline, baseline_key=baseline_key, tolerance=tolerance, update_baseline=update_baseline,
        allow_dead=allow_dead)
    start = time.monotonic()
    try:
        result = run_bench(request)
    except DassEdgeError as exc:
        if junit_xml is not None:
            gate.write_junit(junit_xml, {"device": device, "model": model.stem}, time.monotonic() - start, str(exc))
        raise
    if junit_xml is not None:
        gate.write_junit(junit_xml, result, time.monotonic() - start)
    if results is not None:
        from dass_edge.bench.results import append_result
        append_result(results, result)
    emit(result, as_json, _human)
    if result.get("regression"):
        raise RegressionError(f"{result['model_key']} on {device} is {result['ratio']:.2f}x its baseline "
                              f"(95% CI from {result['ratio_ci_low']:.2f}x, tolerance {tolerance:.0%})")



def register(app: typer.Typer) -> None:
    app.command("bench", epilog=EXIT_CODES)(bench)
