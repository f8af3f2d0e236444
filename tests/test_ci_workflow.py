"""The example board CI job, for every device of its matrix: a pull request gated side by side, and a run
without a reference that bootstraps its baseline and gates against it from then on.

The workflow's `run:` steps are executed as written (shell variables from the job's env with the matrix
device set). The pull request is a clone of this repository with one commit that changes the package on top
of its HEAD (the base commit): the build steps train the candidate there and the reference in a worktree of
the base commit. intel-cpu measures here; jetson-tx2 goes over SSH to a real sshd on 127.0.0.1 whose
"board" is the tx2 side environment (Python 3.6 + onnxruntime 1.10), found through a boards file as on a
runner. Installing and GitHub's own actions (cache, artifacts, JUnit publishing) are not ours to test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from conftest import side_python
from test_bench_remote import SSHD, sshd  # noqa: F401  (the real sshd fixture)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "board-latency.yml"


def _job() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["latency"]


def _env(job: dict, device: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: str(v).replace("${{ matrix.device }}", device) for k, v in job["env"].items()}
    # repository variables (${{ vars.X }}) are unset on a runner that does not define them
    return {**os.environ, **{k: v for k, v in env.items() if "${{" not in v}, **extra}


def _step(job: dict, name: str) -> str:
    return next(step["run"] for step in job["steps"] if step.get("name") == name)


def test_workflow_targets_a_board_runner_and_gates():
    job = _job()
    assert {"intel-cpu", "jetson-tx2"} <= set(job["strategy"]["matrix"]["device"])
    assert "self-hosted" in job["runs-on"]
    commands = " ".join(step.get("run", "") for step in job["steps"])
    for flag in ("--baseline", "--junit-xml", "--update-baseline", "--device", "--against", "--history",
                 "--wait-board", "dass-edge history", "--summary"):
        assert flag in commands
    # a device without a committed baseline must not fail its first run
    missing = [d for d in job["strategy"]["matrix"]["device"]
               if not (ROOT / "benchmarks" / "baselines" / f"{d}.json").is_file()]
    assert not missing or "--bootstrap-baseline" in _step(job, "Latency gate")


def _board_env(device: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """intel-cpu: nothing; jetson-tx2: a boards file for the sshd on 127.0.0.1 (as the runner's user keeps)."""
    if device == "intel-cpu":
        return {}
    if not SSHD.exists():
        pytest.skip("openssh-server is not installed")
    port, key, known = request.getfixturevalue("sshd")
    inventory = tmp_path / "boards.toml"
    inventory.write_text(f'[boards.{device}]\nhost = "127.0.0.1"\nport = {port}\nuser = "root"\nkey = "{key}"\n'
                         f'python = "{side_python("tx2")}"\nknown_hosts = "{known}"\nworkdir = "{tmp_path}"\n')
    # the stand-in board's onnxruntime is a CPU build, as on a TX2 runner without onnxruntime-gpu
    return {"DASS_EDGE_INVENTORY": str(inventory), "RUNTIME_DEVICE": "CPU"}


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A pull request's checkout, built once for both devices: a clone of this repository whose HEAD (the base
    commit) gets one commit changing the package; the workflow's two build steps run there, the candidate with
    the checkout's package and the reference in a worktree of the base commit."""
    job = _job()
    work = tmp_path_factory.mktemp("pr") / "repo"
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(work)], check=True)
    base = _git("rev-parse", "HEAD", cwd=work)
    with (work / "dass_edge" / "__init__.py").open("a") as handle:
        handle.write("# a pull request's change to the package\n")
    _git("commit", "-q", "-am", "a change to the package", cwd=work)
    (work / ".venv").symlink_to(ROOT / ".venv")
    env = _env(job, "intel-cpu", {"BASE_SHA": base})
    proc = _run(_step(job, "Build the model under test"), work, env)
    assert proc.returncode == 0, proc.stderr
    proc = _run(_step(job, "Build the reference (base commit)"), work, env)
    assert proc.returncode == 0 and f"reference built with the code of {base}" in proc.stderr, proc.stderr
    assert (work / env["REFERENCE"]).is_file() and (work / env["MODEL"]).is_file()
    return work / "runs"


def _work(tmp_path: Path, built: Path) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    shutil.copytree(built, work / "runs")
    return work


@pytest.mark.slow
@pytest.mark.parametrize("device", ["intel-cpu", "jetson-tx2"])
def test_pull_request_gates_side_by_side(device, tmp_path, request, built):
    job = _job()
    work = _work(tmp_path, built)
    env = _env(job, device, {**_board_env(device, tmp_path, request), "COMMIT": "f00dcafe"})
    gated = _run(_step(job, "Latency gate"), work, env)
    # The same model on both sides: never a regression (10 fails this test); a busy machine may leave it undecided.
    assert gated.returncode in (0, 11), gated.stderr
    result = json.loads(gated.stdout)
    assert result["method"] == "paired"
    # two exports, each of its own checkpoint (both are darts-v2-custom-90.pt: one export folder would hold one)
    assert result["against"]["model"] != result["model"] and (work / result["against"]["model"]).is_file()
    assert result["decision"] == ("pass" if gated.returncode == 0 else "inconclusive") and result["threads"] == 1
    assert not (work / env["BASELINE"]).exists()  # nothing stored: the reference was built
    report = ET.parse(work / "reports" / f"latency-{device}.xml").getroot()
    assert report.get("failures") == "0" and report.get("skipped") == "0"

    summarized = _run(_step(job, "Trend page and job summary"), work, env)
    assert summarized.returncode == 0, summarized.stderr
    summary = (work / "reports" / f"summary-{device}.md").read_text()
    assert f"on {device}: **{result['decision'].upper()}** against the reference build" in summary
    assert f"{result['ratio']:.3f}x (95% CI {result['ratio_ci_low']:.3f}-{result['ratio_ci_high']:.3f}x)" in summary
    assert "| commit | f00dcafe |" in summary
    # the gate profiled both builds (op_profile_ms for each), so the summary compares their operators
    assert result["op_profile_ms"] and result["against"]["op_profile_ms"]
    assert "| operators that grew |" in summary and "operators that grew | not available" not in summary
    assert (work / "reports" / f"trend-{device}" / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("device", ["intel-cpu", "jetson-tx2"])
def test_workflow_first_and_second_run(device, tmp_path, request, built):
    """No reference (a push, not a pull request): the first run bootstraps the baseline, later runs gate on it."""
    job = _job()
    work = _work(tmp_path, built)
    env = _env(job, device, _board_env(device, tmp_path, request))
    baseline = work / env["BASELINE"]
    assert not baseline.exists() and (work / env["MODEL"]).is_file()
    no_reference = _run(_step(job, "Build the reference (base commit)"), work, env)
    assert no_reference.returncode == 0 and "no base commit" in no_reference.stderr
    assert not (work / env["REFERENCE"]).exists()

    first = _run(_step(job, "Latency gate"), work, env)
    assert first.returncode == 0, first.stderr  # the first run bootstraps its baseline, it does not fail
    result = json.loads(first.stdout)
    assert result["decision"] == "bootstrapped" and result["device"] == device and result["threads"] == 1
    assert "no baseline" in first.stderr and "commit" in first.stderr
    assert Path(env["MODEL"]).stem in json.loads(baseline.read_text())["entries"]
    report = ET.parse(work / "reports" / f"latency-{device}.xml").getroot()
    assert report.get("skipped") == "1" and report.get("failures") == "0"

    second = _run(_step(job, "Latency gate"), work, env)
    # Now it gates against what the first run wrote. The same model is never a regression (10 fails this
    # test); on a machine as shared as this one the gate may say it cannot decide (11) rather than pass.
    assert second.returncode in (0, 11), second.stderr
    result = json.loads(second.stdout)
    assert result["decision"] == ("pass" if second.returncode == 0 else "inconclusive"), second.stderr
    assert result["method"] == "baseline" and result["baseline_median_ms"] > 0
    assert (work / "reports" / "latency.jsonl").read_text().count("\n") == 2
    history = _run(f".venv/bin/dass-edge history {env['HISTORY']} --json", work, env)
    assert [s["runs"] for s in json.loads(history.stdout)["series"]] == [2], history.stderr

    updated = _run(_step(job, "Update the baseline"), work, env)
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["baseline_written"] == env["BASELINE"]
