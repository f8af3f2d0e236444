"""Data-parallel training under a real torchrun on the CPU (gloo): two ranks take the steps one process takes
on the same global batch, only rank 0 writes, and a killed rank ends the job instead of hanging it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from typer.testing import CliRunner

import distributed_worker
from conftest import ROOT, without_c
from dass_edge import checkpoint
from dass_edge.cli.app import app
from dass_edge.export.pipeline import export_checkpoint

TIMEOUT_S = 30  # the process-group timeout the jobs here run with


def _torchrun(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1",
           "DASS_EDGE_DIST_TIMEOUT_S": str(TIMEOUT_S)}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, limit_s: float = 900) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=limit_s)
    return proc.returncode, out, err


def test_two_ranks_take_the_steps_of_one_process(tmp_path):
    """Pretrain + prune of a supernet (weights, scores, alphas, BN) on 2 ranks vs 1 process, global batch 25."""
    code, out, err = _finish(_torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path / "two")))
    assert code == 0, err[-2000:]
    ranks = [torch.load(tmp_path / "two" / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["genotype"] == ranks[1]["genotype"]
    assert all(torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in ranks[0]["state"])  # masks too

    single = torch.load(distributed_worker.run(tmp_path / "one"))
    assert single["world_size"] == 1 and single["genotype"] == ranks[0]["genotype"]
    state, reference = ranks[0]["state"], single["state"]
    masks = [k for k in state if k.endswith("mask")]
    assert masks and all(torch.equal(state[k], reference[k]) for k in masks)
    assert float(sum(reference[k].sum() for k in masks)) < 0.2 * sum(reference[k].numel() for k in masks)  # pruned
    worst = max((state[k].double() - reference[k].double()).abs().max().item() for k in state)
    assert worst < 1e-4


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_torchrun_train_writes_one_checkpoint_like_a_single_process(tmp_path, trained_checkpoint):
    out = tmp_path / "run"
    code, stdout, err = _finish(_torchrun("-m", "dass_edge", "train", "--arch", "darts-v2", "--preset", "smoke",
                                          "--sparsity", "0.9", "--device", "cpu", "--out", str(out), "--json"))
    assert code == 0, err[-2000:]
    summary = json.loads(stdout)  # one JSON document: rank 1 printed nothing
    stem = Path(summary["checkpoint"]).stem  # the final checkpoint and its step checkpoints, each written once
    assert _files(out) == sorted(f"{stem}{step}.pt" for step in ("", "-pretrain", "-prune"))
    ours, single = checkpoint.load(Path(summary["checkpoint"])), checkpoint.load(trained_checkpoint("darts-v2"))
    assert ours.spec == single.spec
    # the CLI's schedule spells out the search steps the Python call leaves as None; the rest is the same
    steps = ("pretrain", "prune", "finetune")
    assert [ours.settings["preset"][s] for s in steps] == [single.settings["preset"][s] for s in steps]
    assert {k: v for k, v in ours.settings.items() if k != "preset"} == \
        {k: v for k, v in single.settings.items() if k != "preset"}
    masks = [k for k in ours.state_dict if k.endswith("mask")]
    assert all(torch.equal(ours.state_dict[k], single.state_dict[k]) for k in masks)
    # three steps and two BN re-estimations: measured 9.4e-5 at most (pruning scores)
    assert max((ours.state_dict[k].double() - single.state_dict[k].double()).abs().max().item()
               for k in ours.state_dict) < 1e-3
    exported = export_checkpoint(Path(summary["checkpoint"]), without_c("jetson-tx2"), tmp_path / "exported")
    assert exported.files == ["model.onnx"] and exported.max_abs_diff <= exported.atol


def _rank_process(parent: psutil.Process, rank: str, limit_s: float = 120) -> psutil.Process:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for child in parent.children(recursive=True):
            try:
                if child.environ().get("RANK") == rank and "dass_edge" in " ".join(child.cmdline()):
                    return child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.2)
    pytest.fail(f"rank {rank} never started")


def test_a_killed_rank_ends_the_job_with_an_error(tmp_path):
    out = tmp_path / "run"
    proc = _torchrun("-m", "dass_edge", "train", "--arch", "darts-v2", "--preset", "smoke", "--epochs", "200",
                     "--device", "cpu", "--out", str(out))
    try:
        victim = _rank_process(psutil.Process(proc.pid), "1")
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and victim.cpu_times().user < 8:  # well into imports and training
                time.sleep(0.5)
            victim.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pytest.fail(f"rank 1 ended before it was killed: {_finish(proc)[2][-2000:]}")
        killed_at = time.monotonic()
        code, _, err = _finish(proc, limit_s=TIMEOUT_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - killed_at < TIMEOUT_S + 60
    assert code != 0
    assert "Signal 9 (SIGKILL)" in err or "exitcode  : -9" in err, err[-2000:]
    assert not out.exists() or not any(p.suffix == ".pt" for p in out.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["search", "train"])
def test_cuda_without_a_gpu_is_a_one_line_error(command):
    args = [command, "--preset", "smoke", "--device", "cuda"] + (["--arch", "darts-v2"] if command == "train" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --device cuda: torch") and result.stderr.count("\n") == 1


def test_mixed_precision_trains_on_the_cpu():
    """--amp on a CPU is bf16 autocast: the step runs in bf16 and still learns something finite."""
    from dass_edge.search import algorithm
    from dass_edge.search.algorithm import StepConfig
    from dass_edge.search.models import ModelSpec, build_model

    torch.manual_seed(0)
    model = build_model(ModelSpec("darts-v2", 4, 1, 32, "custom", 2, 4))
    x = torch.randn(64, 1, 32, 32)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    before = [p.detach().clone() for p in model.parameters()]
    seen = []
    hook = model.stem[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    result = algorithm.pretrain(model, (x, y), None, StepConfig(1, 0.05, batch_size=32), amp=True)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32 under autocast
    assert torch.isfinite(torch.tensor(result.loss)) and any(not torch.equal(a, b) for a, b in
                                                              zip(before, model.parameters()))
