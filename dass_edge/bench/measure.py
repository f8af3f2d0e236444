"""The timing harness on the host, and the one place a raw timing becomes a bench result.

Host and board time the same way because both call ``time_rounds`` of dass_edge/runtimes/runner.py (the
self-contained file copied to boards) on a runtime loaded by the same code: first inference timed alone, warm-up, then rounds of at least N runs and S
seconds with ``perf_counter_ns`` around the runtime call only. ``time_paired`` alternates two models'
rounds for the noise-robust gate (``bench --against``). ``result_from_timing`` turns
the runner's raw output (from this process or from a board) into the JSON of the bench contract.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from dass_edge.bench.fingerprint import fingerprint
from dass_edge.bench.memory import memory_fields
from dass_edge.bench.profile import profile_fields
from dass_edge.bench.stats import DEFAULT_PERCENTILES, summarize_ns, unstable
from dass_edge.errors import InputError
from dass_edge.runtimes import runner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """How long to measure. ``rounds`` > 1 gives the gate independent medians to compare."""

    warmup: int = 10
    runs: int = 100
    min_seconds: float = 1.0
    rounds: int = 1
    threads: int | None = None
    profile_runs: int = 0  # > 0: after the timing, that many runs under the runtime's profiler
    memory: bool = False  # after the timing, peak memory in a fresh process
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or self.min_seconds < 0 or self.rounds < 1:
            raise InputError("need --warmup >= 0, --runs >= 1, --min-seconds >= 0 and --rounds >= 1")
        if self.threads is not None and self.threads < 1:
            raise InputError("--threads must be at least 1")
        if self.profile_runs < 0 or not all(0 < q < 100 for q in self.percentiles):
            raise InputError("need --profile-runs >= 0 and percentiles between 0 and 100")

    def agent_args(self) -> list[str]:
        """The same settings as the runner's ``time`` command line."""
        args = ["--warmup", str(self.warmup), "--runs", str(self.runs), "--min-seconds", str(self.min_seconds),
                "--rounds", str(self.rounds)]
        args += ["--profile", str(self.profile_runs)] if self.profile_runs else []
        args += ["--memory"] if self.memory else []
        return args + (["--threads", str(self.threads)] if self.threads else [])


def _raw(session: Any, settings: Settings, x: np.ndarray, timing: dict[str, Any]) -> dict[str, Any]:
    providers = list(getattr(session, "providers", ()))
    return {"runtime": session.runtime, "runtime_version": str(session.version),
            "runtime_device": str(session.device), "threads": settings.threads, "input_shape": list(x.shape),
            "env": runner.environment(), **({"providers": providers} if providers else {}), **timing}


def _timed_call(session: Any) -> Any:
    # The input is float32, contiguous and of the session's own input shape by construction, so the per-call
    # checks of Session.run would only add overhead: time the runtime's own call (what benchmark_app times).
    return getattr(session, "_run", session.run)


def time_session(session: Any, settings: Settings) -> dict[str, Any]:
    """Time a loaded runtime session (anything with ``run(x)`` and ``input_shape``) on a fixed input."""
    x = runner.fixed_input(list(session.input_shape), np.float32)
    log.info("timing %s: %d warm-up, >= %d runs and >= %.2f s per round, %d round(s)", session.runtime,
             settings.warmup, settings.runs, settings.min_seconds, settings.rounds)
    timing = runner.time_rounds(_timed_call(session), x, settings.warmup, settings.runs, settings.min_seconds,
                               settings.rounds)
    timing.update(runner.time_on_device(getattr(session, "on_device", None), x, settings.warmup, settings.runs,
                                       settings.min_seconds, settings.rounds))
    return _raw(session, settings, x, timing)


def time_paired(candidate: Any, reference: Any, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time two loaded sessions in alternating rounds, one raw dict each (``bench --against``): the runner's
    own schedule (runner.time_alternating), so a board and this machine pair the rounds the same way."""
    sessions = (candidate, reference)
    inputs = [runner.fixed_input(list(s.input_shape), np.float32) for s in sessions]
    log.info("timing %s and %s in %d alternating round(s) of >= %d runs and >= %.2f s", candidate.runtime,
             reference.runtime, settings.rounds, settings.runs, settings.min_seconds)
    timings = runner.time_alternating([_timed_call(s) for s in sessions], inputs, settings.warmup, settings.runs,
                                     settings.min_seconds, settings.rounds)
    raws = [_raw(s, settings, x, timing) for s, x, timing in zip(sessions, inputs, timings)]
    return raws[0], raws[1]


def _load(path: Path, settings: Settings, runtime: str | None, device: str | None) -> Any:
    from dass_edge import runtimes
    return runtimes.load(path, runtime, threads=settings.threads, device=device)


def _diagnose(path: Path, session: Any, settings: Settings, raw: dict[str, Any]) -> dict[str, Any]:
    """The runner's after-timing checks (throttling, profile, peak memory) on a session loaded here."""
    x = runner.fixed_input(list(session.input_shape), np.float32)
    loaded = SimpleNamespace(runtime=session.runtime, run=_timed_call(session))
    return runner.diagnose(str(path), loaded, x, raw, settings.threads or 0, str(session.device),
                           settings.profile_runs, settings.memory)


def measure_file(path: Path, settings: Settings, runtime: str | None = None, device: str | None = None
                 ) -> dict[str, Any]:
    """Load a model file with its runtime (dass_edge.runtimes) and time it here; the runner's raw dict."""
    session = _load(path, settings, runtime, device)
    raw = _diagnose(path, session, settings, time_session(session, settings))
    raw["model"] = path.name
    return raw


def measure_pair(candidate: Path, reference: Path, settings: Settings, runtimes: tuple[str | None, str | None],
                 device: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load two model files and time them here in alternating rounds (time_paired); two raw dicts."""
    sessions = [_load(path, settings, runtime, device) for path, runtime in zip((candidate, reference), runtimes)]
    raws = time_paired(sessions[0], sessions[1], settings)
    for raw, path, session in zip(raws, (candidate, reference), sessions):
        _diagnose(path, session, settings, raw)
        raw["model"] = path.name
    return raws


def result_from_timing(raw: dict[str, Any], *, device: str, latency_source: str, settings: Settings,
                       model: str) -> dict[str, Any]:
    """The bench contract's JSON from a raw timing: all rounds pooled for the summary, one median per round.

    The summary (``median_ms``...) is host to host (``timed_region``); on a GPU, ``device_compute`` adds the
    same statistics with the input already in device memory and the output left there.
    """
    rounds = raw["rounds_ns"]
    summary = summarize_ns([ns for round_ns in rounds for ns in round_ns], settings.percentiles)
    env = raw.get("env", {})
    extra: dict[str, Any] = {"timed_region": raw.get("timed_region", "host-to-host")}
    if raw.get("providers"):
        extra["providers"] = raw["providers"]
    if raw.get("device_rounds_ns"):
        extra["device_compute"] = summarize_ns([ns for r in raw["device_rounds_ns"] for ns in r],
                                               settings.percentiles).to_dict()
    warning = unstable(summary)
    if warning:
        log.info("%s: %s", Path(model).name, warning)  # the result (and bench's human output) carries it
        extra["cv_warning"] = warning
    extra.update(memory_fields(raw.get("memory")))
    extra.update(profile_fields(raw.get("profile"), Path(model), summary.median_ms))
    result = {
        "device": device,
        "model": model,
        "runtime": raw["runtime"],
        "runtime_version": raw["runtime_version"],
        "runtime_device": raw.get("runtime_device"),
        "latency_source": latency_source,
        **summary.to_dict(),
        "first_ms": raw["first_ns"] / 1e6,
        "rounds": len(rounds),
        "round_medians_ms": [statistics.median(r) / 1e6 for r in rounds],
        "threads": raw.get("threads") or settings.threads,
        "input_shape": raw.get("input_shape"),
        "cpu": env.get("cpu"),
        "env": env,
        "settings": asdict(settings),
        "throttled_during_run": raw.get("throttled_during_run"),
        **extra,
    }
    result["fingerprint"] = fingerprint(result)
    return result
