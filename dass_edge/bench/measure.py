"""The timing harness on the host, and the one place a raw timing becomes a bench result.

Host and board time the same way because both call ``dass_edge.agent.time_rounds`` (the agent is the
self-contained file copied to boards): first inference timed alone, warm-up, then rounds of at least N
runs and S seconds with ``perf_counter_ns`` around the runtime call only. ``result_from_timing`` turns
the agent's raw output (from this process or from a board) into the JSON of the bench contract.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dass_edge import agent
from dass_edge.bench.stats import summarize_ns
from dass_edge.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """How long to measure. ``rounds`` > 1 gives the gate independent medians to compare."""

    warmup: int = 10
    runs: int = 100
    min_seconds: float = 1.0
    rounds: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or self.min_seconds < 0 or self.rounds < 1:
            raise InputError("need --warmup >= 0, --runs >= 1, --min-seconds >= 0 and --rounds >= 1")
        if self.threads is not None and self.threads < 1:
            raise InputError("--threads must be at least 1")

    def agent_args(self) -> list[str]:
        """The same settings as the agent's command line."""
        args = ["--warmup", str(self.warmup), "--runs", str(self.runs), "--min-seconds", str(self.min_seconds),
                "--rounds", str(self.rounds)]
        return args + (["--threads", str(self.threads)] if self.threads else [])


def time_session(session: Any, settings: Settings) -> dict[str, Any]:
    """Time a loaded runtime session (anything with ``run(x)`` and ``input_shape``) on a fixed input."""
    x = agent.fixed_input(list(session.input_shape), np.float32)
    log.info("timing %s: %d warm-up, >= %d runs and >= %.2f s per round, %d round(s)", session.runtime,
             settings.warmup, settings.runs, settings.min_seconds, settings.rounds)
    # x is float32, contiguous and of the session's own input shape by construction, so the per-call checks
    # of Session.run would only add overhead: time the runtime's own call (what benchmark_app times).
    call = getattr(session, "_run", session.run)
    timing = agent.time_rounds(call, x, settings.warmup, settings.runs, settings.min_seconds, settings.rounds)
    timing.update(agent.time_on_device(getattr(session, "on_device", None), x, settings.warmup, settings.runs,
                                       settings.min_seconds, settings.rounds))
    providers = list(getattr(session, "providers", ()))
    return {"runtime": session.runtime, "runtime_version": str(session.version),
            "runtime_device": str(session.device), "threads": settings.threads, "input_shape": list(x.shape),
            "env": agent.environment(), **({"providers": providers} if providers else {}), **timing}


def measure_file(path: Path, settings: Settings, runtime: str | None = None, device: str | None = None
                 ) -> dict[str, Any]:
    """Load a model file with its runtime (dass_edge.runtimes) and time it here; the agent's raw dict."""
    from dass_edge import runtimes
    session = runtimes.load(path, runtime, threads=settings.threads, device=device)
    raw = time_session(session, settings)
    raw["model"] = path.name
    return raw


def result_from_timing(raw: dict[str, Any], *, device: str, latency_source: str, settings: Settings,
                       model: str) -> dict[str, Any]:
    """The bench contract's JSON from a raw timing: all rounds pooled for the summary, one median per round.

    The summary (``median_ms``...) is host to host (``timed_region``); on a GPU, ``device_compute`` adds the
    same statistics with the input already in device memory and the output left there.
    """
    rounds = raw["rounds_ns"]
    summary = summarize_ns([ns for round_ns in rounds for ns in round_ns])
    env = raw.get("env", {})
    extra: dict[str, Any] = {"timed_region": raw.get("timed_region", "host-to-host")}
    if raw.get("providers"):
        extra["providers"] = raw["providers"]
    if raw.get("device_rounds_ns"):
        extra["device_compute"] = summarize_ns([ns for r in raw["device_rounds_ns"] for ns in r]).to_dict()
    return {
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
        **extra,
    }
