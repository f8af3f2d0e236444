"""Checkpoints: what they hold, counts that match their tensors, atomic writes, refusal of bad files."""

import torch

import pytest

from dass_edge import checkpoint
from dass_edge.errors import InputError
from dass_edge.search import sparse
from dass_edge.search.genotype import DARTS_V2
from dass_edge.search.models import ModelSpec, build_model


def _masked_checkpoint(sparsity=0.8):
    spec = ModelSpec("darts-v2", num_classes=4, in_channels=1, cells=3, channels=4, genotype=None)
    model = build_model(spec)
    sparse.magnitude_masks(model, sparsity)
    return checkpoint.from_model(model, spec, sparsity, "finetune", classes=("a", "b", "c", "d"),
                                 data={"name": "mnist5k"}, settings={"seed": 3}, test_accuracy=0.5), model


def test_round_trip_keeps_everything(tmp_path):
    ckpt, model = _masked_checkpoint()
    path = checkpoint.save(ckpt, tmp_path / "m.pt")
    back = checkpoint.load(path)
    assert back.spec == ckpt.spec and back.classes == ckpt.classes and back.settings == {"seed": 3}
    assert back.input_shape == (1, 1, 32, 32)
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(back.build()(x), model.eval()(x))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_nonzero_count_equals_the_tensors(tmp_path):
    ckpt, _ = _masked_checkpoint(0.9)
    path = checkpoint.save(ckpt, tmp_path / "m.pt")
    summary = checkpoint.summary(checkpoint.load(path), path)
    state = torch.load(path, weights_only=True)["state_dict"]
    counted = sum(int(torch.count_nonzero(state[k] * state[k.replace("weight", "mask")]))
                  for k in state if k.endswith("weight") and k.replace("weight", "mask") in state)
    dense = sum(state[k].numel() for k in state if k.endswith("mask"))
    assert summary["nonzero_params"] == counted and summary["params"] == dense
    assert abs(summary["nonzero_params"] / summary["params"] - 0.1) < 0.02


def test_genotype_travels_in_the_spec(tmp_path):
    spec = ModelSpec("dass", in_channels=1, cells=3, channels=4, genotype=DARTS_V2)
    ckpt = checkpoint.from_model(build_model(spec), spec, 0.5, "pretrain")
    back = checkpoint.load(checkpoint.save(ckpt, tmp_path / "g.pt"))
    assert back.spec.genotype == DARTS_V2
    assert checkpoint.summary(back, "g.pt")["genotype"] == DARTS_V2.to_dict()


def test_bad_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(InputError, match="not a readable"):
        checkpoint.load(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not a dass-edge checkpoint"):
        checkpoint.load(foreign)


def test_a_pickled_object_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("open('%s', 'w').write('ran')" % (tmp_path / "flag"),))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": Evil()}, path)
    with pytest.raises(InputError):
        checkpoint.load(path)
    assert not (tmp_path / "flag").exists()


def test_health_is_saved_loaded_and_summarised(tmp_path):
    ckpt, _ = _masked_checkpoint()
    ckpt.health = {"input_dependent": True, "output_spread": 0.25, "alive_mac_share": 0.4}
    back = checkpoint.load(checkpoint.save(ckpt, tmp_path / "h.pt"))
    assert back.health == ckpt.health
    assert checkpoint.summary(back, "h.pt")["health"] == ckpt.health


def test_checkpoints_from_before_health_records_still_load(tmp_path):
    ckpt, model = _masked_checkpoint()
    old = ckpt.to_dict()
    del old["health"]  # what checkpoint.save wrote before the field existed
    torch.save(old, tmp_path / "old.pt")
    back = checkpoint.load(tmp_path / "old.pt")
    assert back.health is None and checkpoint.summary(back, "old.pt")["health"] is None
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(back.build()(x), model.eval()(x))
