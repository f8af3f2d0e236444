"""`dass-edge search` and `dass-edge train` through Typer's runner: the JSON contract and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app

runner = CliRunner()
CONTRACT = {"checkpoint", "arch", "variant", "sparsity", "params", "nonzero_params", "test_accuracy"}


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_explains_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("search", "train"):
        assert command in result.output
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "--sparsity" in sub.output and "--preset" in sub.output


def test_search_then_train_json_contract(tmp_path):
    found = _json(runner.invoke(app, ["search", "--data", "mnist5k", "--preset", "smoke", "--sparsity", "0.9",
                                      "--out", str(tmp_path), "--seed", "1", "--json"]))
    assert CONTRACT | {"genotype"} <= set(found)
    assert found["arch"] == "supernet" and 0 <= found["test_accuracy"] <= 1
    assert abs(found["nonzero_params"] / found["params"] - 0.1) < 0.01

    trained = _json(runner.invoke(app, ["train", "--arch", f"dass:{found['checkpoint']}", "--sparsity", "0.9",
                                        "--preset", "smoke", "--out", str(tmp_path), "--json"]))
    assert CONTRACT <= set(trained)
    assert trained["arch"] == "dass" and trained["genotype"] == found["genotype"]
    # ERK spreads the supernet's 10% unevenly and the derived network keeps the masks of the ops it inherits
    assert trained["nonzero_params"] <= 0.12 * trained["params"]


def test_train_baseline_with_genotype_file_and_variant(tmp_path):
    genotype = tmp_path / "g.json"
    genotype.write_text(json.dumps({"normal": [["skip_connect", 0], ["avg_pool_3x3", 1]] * 4,
                                    "reduce": [["max_pool_3x3", 0], ["dil_conv_5x5", 1]] * 4}))
    trained = _json(runner.invoke(app, ["train", "--arch", f"dass:{genotype}", "--sparsity", "0.95",
                                        "--preset", "smoke", "--out", str(tmp_path), "--json"]))
    assert trained["sparsity"] == 0.95 and trained["arch"] == "dass"
    result = runner.invoke(app, ["train", "--arch", "resnet-18", "--variant", "tiny", "--sparsity", "0.9",
                                 "--preset", "smoke", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--variant applies to DARTS-cell networks" in result.output


@pytest.mark.parametrize("args, message", [
    (["train", "--arch", "vgg-16", "--sparsity", "0.9"], "unknown architecture 'vgg-16'"),
    (["train", "--arch", "darts-v2", "--sparsity", "1.0"], "sparsity must be in (0, 1)"),
    (["train", "--arch", "darts-v2", "--sparsity", "0.9", "--preset", "huge"], "unknown preset 'huge'"),
    (["train", "--arch", "darts-v2", "--sparsity", "0.9", "--variant", "giant"], "unknown variant 'giant'"),
    (["search", "--data", "cifar10", "--data-dir", "/nonexistent/cifar"], "data folder /nonexistent/cifar does not exist"),
    (["search", "--data", "svhn", "--preset", "smoke"], "unknown data set 'svhn'"),
    (["train", "--arch", "dass:/nonexistent/g.json", "--sparsity", "0.9"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_corrupt_search_checkpoint(tmp_path):
    bad = tmp_path / "search.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = runner.invoke(app, ["train", "--arch", f"dass:{bad}", "--sparsity", "0.9", "--preset", "smoke"])
    assert result.exit_code == 2 and "not a readable dass-edge checkpoint" in result.stderr


def test_without_a_preset_a_cpu_gets_the_quick_schedule_and_a_note_naming_every_preset():
    from dass_edge.cli.train import _schedule
    from dass_edge.search.budget import default_preset
    from dass_edge.search.presets import PRESETS

    assert (default_preset("cuda"), default_preset("cpu")) == ("paper", "quick")
    schedule, note = _schedule(None, None, None, None, None, "cpu")
    assert schedule.name == "quick" and schedule.finetune == PRESETS["quick"].finetune
    assert "using --preset quick" in note and all(name in note for name in PRESETS)
    schedule, note = _schedule("smoke", "1,2,3", None, None, None, "cpu")
    assert note is None and (schedule.name, schedule.finetune.epochs) == ("smoke", 3)


def test_help_shows_no_paper_default():
    for command in ("search", "train"):
        text = " ".join(runner.invoke(app, [command, "--help"]).output.replace("│", " ").split())
        assert "paper when training runs on a GPU, else quick" in text


def test_a_preset_note_never_precedes_an_input_error(tmp_path):
    """The default's note is printed once the inputs are valid: a bad input is still exactly one line."""
    result = runner.invoke(app, ["train", "--arch", "darts-v2", "--sparsity", "0.9", "--out", "/proc/nope"])
    assert result.exit_code == 8 and result.stderr.strip().splitlines() == [
        "error: cannot write to output folder /proc/nope: No such file or directory"]


def test_run_estimate_scales_the_timed_batches_to_the_whole_plan(caplog):
    from dass_edge.search.budget import PlannedStep, RunEstimate, describe, estimate_seconds

    plan = [PlannedStep("pretrain", 100, 64), PlannedStep("prune", 50, 32), PlannedStep("finetune", 10, 64)]
    # 2 s per batch of 64 images: 100 + 25 + 10 batch-equivalents of 64 -> 270 s
    assert estimate_seconds(plan, "pretrain", 3, 6.0) == pytest.approx(270.0)
    assert (describe(40), describe(14 * 60), describe(11.2 * 3600)) == ("about 40 s", "about 14 min", "about 11.2 h")
    watch = RunEstimate(plan, limit_s=200)
    caplog.set_level("INFO", logger="dass_edge.search.budget")
    for done, elapsed in ((1, 30.0), (2, 32.0), (3, 34.0)):  # the first batch's start-up cost is left out
        watch("pretrain", done, 100, elapsed)
    assert watch.seconds is None
    watch("pretrain", 4, 100, 36.0)
    assert watch.seconds == pytest.approx(270.0)
    [record] = [r for r in caplog.records if "expected to take" in r.getMessage()]
    assert record.levelname == "WARNING" and "about 4 min" in record.getMessage()
    watch("pretrain", 5, 100, 1000.0)  # said once
    assert watch.seconds == pytest.approx(270.0)


def test_train_checkpoints_each_step_and_resumes_from_the_latest(tmp_path, caplog):
    """A run interrupted after prune (or after pretrain) picks up that step's checkpoint and ends with the
    same network as the uninterrupted run; the steps it did not rerun keep their recorded results."""
    import torch

    from dass_edge import checkpoint
    from dass_edge.search.presets import PRESETS
    from dass_edge.workflows import DataChoice, run_train

    def train():
        return run_train("darts-v2", DataChoice("mnist5k"), PRESETS["smoke"], 0.9, tmp_path)

    caplog.set_level("INFO")
    first = checkpoint.load(train())
    pretrain, prune, final = (tmp_path / f"darts-v2-custom-90{suffix}.pt" for suffix in ("-pretrain", "-prune", ""))
    assert sorted(tmp_path.iterdir()) == [pretrain, prune, final]
    assert "this run is expected to take" in caplog.text  # the estimate from its first batches
    assert (checkpoint.load(pretrain).step, checkpoint.load(prune).step) == ("pretrain", "prune")
    for lost, kept in (((final,), 2), ((final, prune), 1)):  # interrupted after prune, then after pretrain
        for path in lost:
            path.unlink()
        again = checkpoint.load(train())
        assert again.results[:kept] == first.results[:kept]  # not rerun: the very same recorded timings
        assert again.results[kept]["seconds"] != first.results[kept]["seconds"]  # rerun
        for key, value in first.state_dict.items():
            assert torch.equal(again.state_dict[key], value), key
