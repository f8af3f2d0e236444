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
