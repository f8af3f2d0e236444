"""`dass-edge boards doctor`: is a machine fit to measure on, before minutes of measuring say it was not.

The same checks pyperf's ``system show``, edgelens ``doctor`` and the Jetson guides ask for: the CPU governor
and clocks (a powersave or ondemand governor, a capped or unlocked clock make one model's latency move by
tens of percent), other load, thermal throttling, on a Jetson its power model and ``jetson_clocks``, and that
the target's runtime and device (execution provider, OpenVINO plugin, CUDA) are there. The facts come from the
runner's ``env`` command (the file benches copy to boards), so a board is judged by what it reports itself.
Each finding is one line with what to do; a failed one (no runtime, no device) makes the machine not ready.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dass_edge.runtimes import RUNTIMES

LOAD_SHARE = 0.25  # 1-minute load per core above which other work competes with a measurement
CLOCK_SHARE = 0.9  # a current clock below this share of the maximum: throttled or capped


@dataclass(frozen=True)
class Finding:
    level: str  # ok | info | warn | fail
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.level.upper():4} {self.what}" + (f": {self.fix}" if self.fix else "")


def _governor(env: dict[str, Any]) -> list[Finding]:
    governor = env.get("governor")
    if governor is None:
        return [Finding("info", "no cpufreq here (a VM or container): governor and clocks cannot be checked",
                        "ask for them to be pinned on the host, and gate with --against so drift cancels")]
    if governor != "performance":
        return [Finding("warn", f"CPU governor is {governor}: the clock follows the load",
                        "sudo cpupower frequency-set -g performance (or write performance to "
                        "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)")]
    return [Finding("ok", "CPU governor is performance")]


def _clocks(env: dict[str, Any]) -> list[Finding]:
    out = []
    current, high, hardware = env.get("freq_cur_mhz"), env.get("freq_max_mhz"), env.get("freq_hw_max_mhz")
    if high and hardware and max(high) < max(hardware):
        out.append(Finding("warn", f"CPU clock capped at {max(high)} of {max(hardware)} MHz",
                           "raise scaling_max_freq (or the board's power mode) and keep it for every run"))
    slow = [i for i, (now, top) in enumerate(zip(current or [], high or [])) if now < CLOCK_SHARE * top]
    if slow:
        out.append(Finding("warn", f"CPU {', '.join(map(str, slow))} below {CLOCK_SHARE:.0%} of its maximum clock "
                           "right now", "throttled or idle-clocked: use the performance governor, check cooling"))
    if env.get("throttle_count"):
        out.append(Finding("info", f"{env['throttle_count']} thermal throttling events since boot",
                           "check cooling if bench results report throttled_during_run"))
    return out


def _load(env: dict[str, Any]) -> list[Finding]:
    load, cores, runnable = env.get("load_1m"), env.get("cores") or 1, env.get("runnable")
    if load is None:
        return []
    others = max(0, (runnable or 1) - 1)  # this check's own process is one of the runnable
    if load > LOAD_SHARE * cores or others:
        return [Finding("warn", f"load average {load:.2f} on {cores} cores, {others} other process(es) runnable now",
                        "stop other work or wait for it; bench --against cancels load that lasts")]
    return [Finding("ok", f"load average {load:.2f} on {cores} cores")]


def _jetson(env: dict[str, Any]) -> list[Finding]:
    out = []
    mode, name = env.get("nvpmodel_mode"), env.get("nvpmodel_name")
    if mode is not None and mode != 0:
        out.append(Finding("warn", f"nvpmodel mode {mode} ({name or '?'}), not MAXN",
                           "sudo nvpmodel -m 0 for MAXN, or keep every run and baseline in this mode"))
    for part in ("cpu", "gpu"):
        if env.get("nvpmodel_mode") is not None and env.get(f"{part}_clocks_locked") is False:
            out.append(Finding("warn", f"{part.upper()} clocks not locked (min < max)",
                               "sudo jetson_clocks (pins CPU, GPU and memory clocks at their maximum)"))
    return out


def _runtime(check: dict[str, Any] | None) -> list[Finding]:
    if check is None:
        return []
    if check.get("ok"):
        return [Finding("ok", f"{check['runtime']} {check['version']} runs {check['device']} "
                              f"(has {', '.join(check['devices'])})")]
    spec = RUNTIMES.get(check["runtime"])
    if "not installed" in check.get("error", "") and spec is not None and spec.distribution:
        fix = f"pip install {spec.distribution} (dass-edge[{spec.extra}]) with the Python that benches use"
    elif "--runtime-device" in check.get("error", ""):
        fix = ""  # the runtime's own message already says what to do
    else:
        fix = "install a build with that device (onnxruntime-gpu on a Jetson: NVIDIA's wheel), or --runtime-device"
    return [Finding("fail", check.get("error", "runtime check failed"), fix)]


def findings(report: dict[str, Any], holder: dict[str, Any] | None = None) -> list[Finding]:
    """Every finding about the runner's ``env`` report (and who holds the board's lock, if anyone)."""
    env = report.get("env") or {}
    out = _governor(env) + _clocks(env) + _load(env) + _jetson(env) + _runtime(report.get("runtime_check"))
    if holder and holder.get("held"):
        out.append(Finding("warn", f"another bench holds the board: {holder.get('holder')}",
                           "wait for it (dass-edge boards who), benches queue on the lock"))
    return out


def summary(where: str, report: dict[str, Any], found: list[Finding], strict: bool) -> dict[str, Any]:
    """The doctor's JSON: ready unless a finding failed (or, with ``strict``, warned)."""
    bad = ("fail", "warn") if strict else ("fail",)
    return {"where": where, "ready": not any(f.level in bad for f in found),
            "findings": [asdict(f) for f in found], "env": report.get("env")}
