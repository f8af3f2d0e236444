"""`bench CANDIDATE --against REFERENCE`: both models measured in one run, in alternating rounds.

Why: a gate against a baseline stored days ago compares two runs that saw different machines (a busy
neighbour, another thermal state), and on a shared runner that difference can be larger than the
slowdown it looks for. Measured side by side, round i of the candidate and of the reference share
whatever the machine was doing; their ratio cancels it (gate.compare_paired). A stored baseline, when
given, is compared as well and reported next to the paired verdict, for both models: the reference's
ratio to it shows how far today's machine is from the one that wrote it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dass_edge.bench import gate
from dass_edge.bench.lock import LockSettings
from dass_edge.bench.measure import measure_pair, result_from_timing
from dass_edge.bench.service import (BenchRequest, admit, agent_args, board_for, model_key, resolve_model,
                                     runtime_for)
from dass_edge.bench.stats import PAIRED_MIN_ROUNDS
from dass_edge.errors import EnvironmentMismatchError, InputError

REFERENCE_FIELDS = ("model", "model_key", "runtime", "runtime_version", "median_ms", "min_ms", "p90_ms", "p99_ms",
                    "count", "first_ms", "round_medians_ms", "test_accuracy", "op_profile_ms", "peak_memory_bytes",
                    "model_size_bytes")


def _check(request: BenchRequest, target) -> None:  # noqa: ANN001
    if target.latency_source == "predicted":
        raise InputError(f"--against measures both models in alternating rounds; {target.name} is timed by "
                         "prediction: gate it with --baseline instead")
    if request.update_baseline:
        raise InputError("--against compares two models in one run; write a baseline in a run without it")
    if request.settings.rounds < PAIRED_MIN_ROUNDS:
        raise InputError(f"--against needs at least {PAIRED_MIN_ROUNDS} rounds (pairs), not "
                         f"--rounds {request.settings.rounds}")
    if request.baseline is not None:
        gate.check_baseline_file(request.baseline)


def run_paired(request: BenchRequest) -> dict[str, Any]:
    """Measure ``request.model`` and ``request.against`` in alternating rounds; the candidate's result dict
    with the paired verdict, the reference under ``against`` and, with a baseline file, ``baseline``."""
    from dass_edge.targets import get_target

    if request.against is None:
        raise InputError("run_paired needs a reference model (--against)")
    target = get_target(request.device)
    _check(request, target)
    # The reference is exported into a folder of its own: two builds of one model share a file name (the main
    # branch's darts-v2-custom-90.pt and the pull request's), and one export folder would hold only the second.
    sides = (request, replace(request, model=request.against, baseline_key=None,
                              export_dir=request.export_dir / "reference"))
    models = [resolve_model(side, target, admit(side, target)) for side in sides]
    runtimes = [runtime_for(request, target, m.path) for m in models]
    raws, host = _time_both(request, target, [m.path for m in models], runtimes)
    results = []
    for model, raw, key in zip(models, raws, (request.baseline_key, None)):
        result = result_from_timing(raw, device=target.name, latency_source=target.latency_source,
                                    settings=request.settings, model=str(model.path))
        result["test_accuracy"] = model.test_accuracy
        if host is not None:
            result["host"] = host
        result["model_key"] = model_key(replace(request, baseline_key=key), target, model, result["runtime"])
        if model.dead:
            result["dead"] = True  # measured only because allow_dead said so
        results.append(result)
    candidate, reference = results
    candidate["against"] = {k: reference[k] for k in REFERENCE_FIELDS if k in reference}
    candidate.update(gate.compare_paired(candidate["round_medians_ms"], reference["round_medians_ms"],
                                         reference["median_ms"], request.tolerance).to_dict())
    candidate.update(gate.cause(candidate, reference, request.memory_tolerance))
    if request.baseline is not None:
        candidate["baseline"] = _beside(request, candidate, reference)
    return candidate


def _beside(request: BenchRequest, candidate: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any] | None:
    """The stored baseline compared with both models, for information (the paired verdict decides): None
    without an entry; a baseline from another environment is not compared, and says why."""
    entry = gate.find_entry(request.baseline, candidate["model_key"])
    if entry is None:
        return None
    where = f"{request.baseline} [{candidate['model_key']}]"
    try:
        sides = {side: gate.compare(result, entry, request.tolerance, request.allow_env_change, where).to_dict()
                 for side, result in (("candidate", candidate), ("reference", reference))}
    except EnvironmentMismatchError as exc:
        return {"file": str(request.baseline), "median_ms": entry["median_ms"], "refused": str(exc)}
    return {"file": str(request.baseline), "median_ms": entry["median_ms"], **sides}


def _time_both(request: BenchRequest, target, paths: list, runtimes: list  # noqa: ANN001
               ) -> tuple[tuple[dict[str, Any], dict[str, Any]], str | None]:
    """Both raw timings and the board they ran on (None: here). On a board the agent alternates the rounds
    there, exactly as measure_pair does here; an emulated board is refused before anything is copied."""
    if target.latency_source != "ssh":
        return measure_pair(paths[0], paths[1], request.settings, (runtimes[0], runtimes[1]),
                            request.runtime_device or target.runtime_device), None
    from dass_edge.bench.remote import measure_remote
    board = board_for(request, target, gated=True)
    args = agent_args(request, target, board)
    args += ["--runtime", runtimes[0]] if runtimes[0] else []
    args += ["--against-runtime", runtimes[1]] if runtimes[1] else []
    raw = measure_remote(board, paths[0], args, against=paths[1], lock=LockSettings(wait_s=request.board_wait_s))
    return (raw, raw.pop("against")), raw.pop("host")
