"""A battery of bad inputs through the CLI: each gives one `error:` line on stderr, the documented exit code
(README; dass_edge/errors.py), no traceback, and leaves nothing behind in the folder it runs in.

Every case runs in its own empty folder (the commands' default output folders are relative), so 'nothing
half-written' is checked as: the folder holds exactly the inputs the case made, before and after. Every case
fails before any training, export or measurement, so the battery takes seconds; a few run as real
processes too, where the console script, not the in-process runner, prints the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.errors import DeadModelError, FileSystemError, InputError
from dass_edge.targets import DEFAULT_DIR, TARGETS_ENV

BAD, DEAD, FILESYSTEM = InputError.exit_code, DeadModelError.exit_code, FileSystemError.exit_code
UNWRITABLE = "/proc/nope"  # cannot be created, even by root
runner = CliRunner()


def _relu_onnx(folder: Path) -> Path:
    """A real one-node ONNX model whose output moves with its input (so bench gets as far as the board)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = folder / "relu.onnx"
    onnx.save(model, path)
    return path


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _targets_with(folder: Path, text: str) -> dict[str, str]:
    """A targets folder holding one good target file and one bad one; the env var that selects it."""
    _write(folder, "targets/jetson-tx2.toml", (DEFAULT_DIR / "jetson-tx2.toml").read_text())
    _write(folder, "targets/broken.toml", text)
    return {TARGETS_ENV: str(folder / "targets")}


def _board(folder: Path, text: str) -> list[str]:
    return [str(_relu_onnx(folder)), "--device", "jetson-tx2", "--inventory", str(_write(folder, "boards.toml", text))]


TRAIN = ["train", "--arch", "darts-v2", "--sparsity", "0.9", "--preset", "smoke"]
SEARCH = ["search", "--sparsity", "0.9", "--preset", "smoke"]
GENOTYPE_UNKNOWN_OP = '{"normal": [["conv_7x7", 0], ["skip_connect", 1]], "reduce": []}'

# id -> (setup(folder, tiny checkpoints) -> (args, env)), exit code, part of the message
Case = tuple[Callable[[Path, dict[str, Path]], tuple[list[str], dict[str, str]]], int, str]
CASES: dict[str, Case] = {
    # training: names, numbers, files
    "train-unknown-arch": (lambda f, t: (["train", "--arch", "vgg-16", "--sparsity", "0.9"], {}), BAD,
                           "unknown architecture 'vgg-16'"),
    "train-sparsity-one": (lambda f, t: (TRAIN[:3] + ["--sparsity", "1.0"], {}), BAD, "sparsity must be in (0, 1)"),
    "train-sparsity-zero": (lambda f, t: (TRAIN[:3] + ["--sparsity", "0"], {}), BAD, "sparsity must be in (0, 1)"),
    "train-sparsity-negative": (lambda f, t: (TRAIN[:3] + ["--sparsity", "-0.5"], {}), BAD, "got -0.5"),
    "train-sparsity-not-a-number": (lambda f, t: (TRAIN[:3] + ["--sparsity", "lots"], {}), BAD,
                                    "Invalid value for '--sparsity'"),
    "train-unknown-preset": (lambda f, t: (TRAIN[:5] + ["--preset", "huge"], {}), BAD, "unknown preset 'huge'"),
    "train-unknown-variant": (lambda f, t: (TRAIN + ["--variant", "giant"], {}), BAD, "unknown variant 'giant'"),
    "train-variant-on-baseline": (lambda f, t: (["train", "--arch", "resnet-18", "--variant", "tiny", "--preset",
                                                 "smoke"], {}), BAD, "--variant applies to DARTS-cell networks"),
    "train-epochs-not-numbers": (lambda f, t: (TRAIN + ["--epochs", "a,b,c"], {}), BAD, "--epochs must be"),
    "train-epochs-zero": (lambda f, t: (TRAIN + ["--epochs", "0"], {}), BAD, "--epochs must be"),
    "train-epochs-two-values": (lambda f, t: (TRAIN + ["--epochs", "1,2"], {}), BAD, "--epochs must be"),
    "train-batch-size-negative": (lambda f, t: (TRAIN + ["--batch-size", "-3"], {}), BAD, "--batch-size must be"),
    "train-unknown-allocation": (lambda f, t: (TRAIN + ["--allocation", "random"], {}), BAD,
                                 "unknown allocation 'random'"),
    "train-unknown-option": (lambda f, t: (TRAIN + ["--lr", "0.1"], {}), BAD, "No such option: --lr"),
    "train-missing-arch": (lambda f, t: (["train", "--sparsity", "0.9"], {}), BAD, "Missing option '--arch'"),
    "train-missing-genotype": (lambda f, t: (["train", "--arch", "dass:/nonexistent/g.json"], {}), BAD,
                               "does not exist"),
    "train-genotype-not-json": (lambda f, t: (["train", "--arch", f"dass:{_write(f, 'g.json', 'not json')}"], {}),
                                BAD, "genotype"),
    "train-genotype-unknown-op": (lambda f, t: (["train", "--arch", f"dass:{_write(f, 'g.json', GENOTYPE_UNKNOWN_OP)}"],
                                                {}), BAD, "conv_7x7"),
    "train-corrupt-search-checkpoint": (lambda f, t: (["train", "--arch",
                                                       "dass:" + str(_write(f, "s.pt", b"PK\x03 cut"))],
                                                      {}), BAD, "not a readable dass-edge checkpoint"),
    "train-not-a-search-checkpoint": (lambda f, t: (["train", "--arch", f"dass:{t['alive']}"], {}), BAD,
                                      "is not a search checkpoint"),
    "train-out-unwritable": (lambda f, t: (TRAIN + ["--out", UNWRITABLE], {}), FILESYSTEM,
                             f"cannot write to output folder {UNWRITABLE}"),
    "train-out-is-a-file": (lambda f, t: (TRAIN + ["--out", str(_write(f, "taken", "x"))], {}), FILESYSTEM,
                            "is a file, not a folder"),
    "search-unknown-data": (lambda f, t: (SEARCH + ["--data", "svhn"], {}), BAD, "unknown data set 'svhn'"),
    "search-missing-data-dir": (lambda f, t: (SEARCH + ["--data", "cifar10", "--data-dir", "/nonexistent/c"], {}),
                                BAD, "data folder /nonexistent/c does not exist"),
    "search-sparsity-above-one": (lambda f, t: (SEARCH[:1] + ["--sparsity", "1.5"], {}), BAD,
                                  "sparsity must be in (0, 1)"),
    "search-out-unwritable": (lambda f, t: (SEARCH + ["--out", UNWRITABLE], {}), FILESYSTEM,
                              f"cannot write to output folder {UNWRITABLE}"),
    # export
    "export-missing-checkpoint": (lambda f, t: (["export", "missing.pt", "--target", "ncs2"], {}), BAD,
                                  "checkpoint missing.pt does not exist"),
    "export-corrupt-checkpoint": (lambda f, t: (["export", str(_write(f, "c.pt", b"\x80\x04 not torch")),
                                                 "--target", "ncs2"], {}), BAD, "not a readable dass-edge checkpoint"),
    "export-foreign-torch-file": (lambda f, t: (["export", str(_torch_file(f)), "--target", "ncs2"], {}), BAD,
                                  "is not a dass-edge checkpoint"),
    "export-unknown-target": (lambda f, t: (["export", str(t["alive"]), "--target", "tpu"], {}), BAD,
                              "unknown target 'tpu'"),
    "export-out-unwritable": (lambda f, t: (["export", str(t["alive"]), "--target", "jetson-tx2", "--out",
                                             UNWRITABLE], {}), FILESYSTEM,
                              f"cannot write to output folder {UNWRITABLE}"),
    "export-out-is-a-file": (lambda f, t: (["export", str(t["alive"]), "--target", "jetson-tx2", "--out",
                                            str(_write(f, "taken", "x"))], {}), FILESYSTEM, "is a file, not a folder"),
    "export-dead-network": (lambda f, t: (["export", str(t["dead"]), "--target", "jetson-tx2"], {}), DEAD,
                            "does not depend on its input"),
    # target files
    "targets-corrupt-toml": (lambda f, t: (["targets"], _targets_with(f, 'name = "x"\nformat = [')), BAD,
                             "broken.toml cannot be read"),
    "targets-missing-field": (lambda f, t: (["targets"], _targets_with(f, 'name = "x"\nformat = "onnx"\n')), BAD,
                              "field 'device' is missing"),
    "export-with-corrupt-target-file": (lambda f, t: (["export", str(t["alive"]), "--target", "jetson-tx2"],
                                                      _targets_with(f, "[[[")), BAD, "broken.toml cannot be read"),
    # bench and boards
    "bench-unknown-device": (lambda f, t: (["bench", str(t["alive"]), "--device", "abacus"], {}), BAD,
                             "unknown target 'abacus'"),
    "bench-missing-model": (lambda f, t: (["bench", "missing.onnx", "--device", "intel-cpu"], {}), BAD,
                            "missing.onnx does not exist"),
    "bench-board-config-not-toml": (lambda f, t: (["bench", *_board(f, "garbage [")], {}), BAD,
                                    "is not readable TOML"),
    "bench-board-config-without-host": (lambda f, t: (["bench", *_board(f, '[boards.jetson-tx2]\nuser = "me"\n')],
                                                      {}), BAD, "needs at least a host"),
    "bench-board-config-unknown-field": (lambda f, t: (["bench", *_board(f, '[boards.jetson-tx2]\nhost = "h"\n'
                                                                           'pasword = "x"\n')], {}), BAD,
                                         "unknown field(s) pasword"),
    "bench-board-config-bad-port": (lambda f, t: (["bench", *_board(f, '[boards.jetson-tx2]\nhost = "h"\n'
                                                                      'port = "ssh"\n')], {}), BAD,
                                    "port must be a number"),
    "bench-board-config-host-not-a-string": (lambda f, t: (["bench", *_board(f, '[boards.jetson-tx2]\nhost = 5\n')],
                                                           {}), BAD, "host must be a string"),
    "bench-missing-inventory": (lambda f, t: (["bench", str(_relu_onnx(f)), "--device", "jetson-tx2",
                                               "--inventory", "nothere.toml"], {}), BAD,
                                "inventory nothere.toml does not exist"),
    # demo
    "demo-unknown-preset": (lambda f, t: (["demo", "--preset", "huge"], {}), BAD, "unknown preset 'huge'"),
    "demo-sparsity-out-of-range": (lambda f, t: (["demo", "--sparsity", "2"], {}), BAD, "sparsity must be in (0, 1)"),
    "demo-unknown-data": (lambda f, t: (["demo", "--data", "svhn"], {}), BAD, "unknown data set 'svhn'"),
    "demo-out-unwritable": (lambda f, t: (["demo", "--out", UNWRITABLE], {}), FILESYSTEM,
                            f"cannot write to output folder {UNWRITABLE}"),
    # other commands
    "pareto-missing-results": (lambda f, t: (["pareto", "missing.json"], {}), BAD, "missing.json does not exist"),
    "unknown-command": (lambda f, t: (["trian"], {}), BAD, "No such command 'trian'"),
}


def _torch_file(folder: Path) -> Path:
    """A valid torch file that is not a checkpoint (a bare tensor)."""
    path = folder / "tensor.pt"
    torch.save(torch.zeros(3), path)
    return path


def _snapshot(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def assert_one_line_error(code: int, stderr: str, output: str, expected_code: int, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == expected_code, output
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0], stderr
    assert "Traceback" not in output


def test_the_battery_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, monkeypatch, tiny_checkpoints):
    setup, code, message = CASES[case]
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.chdir(folder)
    args, env = setup(folder, tiny_checkpoints)
    before = _snapshot(folder)
    result = runner.invoke(app, args, env=env)
    assert_one_line_error(result.exit_code, result.stderr, result.output, code, message)
    assert _snapshot(folder) == before, "a failed command left files behind"
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("args, code, message", [
    (["train", "--arch", "darts-v2", "--sparsity", "0.9", "--preset", "smoke", "--out", UNWRITABLE], FILESYSTEM,
     "cannot write to output folder"),
    (["export", "missing.pt", "--target", "ncs2"], BAD, "does not exist"),
    (["train", "--arch", "darts-v2", "--sparsity", "lots"], BAD, "Invalid value for '--sparsity'"),
])
def test_bad_input_in_a_real_process(args, code, message, tmp_path):
    script = Path(sys.executable).parent / "dass-edge"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert_one_line_error(done.returncode, done.stderr, done.stdout + done.stderr, code, message)
    assert not any(tmp_path.iterdir())


def test_an_os_error_anywhere_is_one_line_with_its_own_code(tmp_path, monkeypatch):
    """Not only the folders checked up front: any OSError that reaches the CLI (here a results folder that
    is a file, found when pareto writes) is mapped, with the path and the system's reason."""
    results = _write(tmp_path, "r.jsonl", '{"model": "m", "device": "d", "median_ms": 1.0, "test_accuracy": 0.5}\n')
    blocker = _write(tmp_path, "blocker", "x")
    result = runner.invoke(app, ["pareto", str(results), "--out", str(blocker / "report")])
    assert_one_line_error(result.exit_code, result.stderr, result.output, FILESYSTEM, str(blocker))


def test_a_failed_run_removes_the_empty_folders_it_made_and_keeps_what_it_wrote(tmp_path):
    from dass_edge.outputs import output_folder

    target = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt), output_folder(target):
        assert target.is_dir() and not any(target.iterdir())  # made, and the probe file gone again
        raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError), output_folder(target):
        (target / "step.pt").write_text("a finished step")
        raise RuntimeError
    assert (target / "step.pt").is_file()  # a step checkpoint survives for the rerun to resume from
