"""Health: the threshold between float noise and a network that moves, assessment of real networks (a
tiny DARTS-V2 alive, and the same with its only path from the input cut), the refusal, and parity that
does not pass on a constant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_network
from dass_edge import checkpoint, runtimes
from dass_edge.errors import DeadModelError, InputError
from dass_edge.export.onnx import write_onnx
from dass_edge.export.pipeline import export_checkpoint
from dass_edge.export.validate import check_inputs, check_parity
from dass_edge.health import Health, assess, is_alive, output_spread, require_alive
from dass_edge.search import sparse

SHAPE = (1, 1, 32, 32)


def _moving(relative: float) -> np.ndarray:
    """Eight rows of logits that differ from one base row by ``relative`` of their mean magnitude."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1, 10))
    scale = np.abs(base).mean()
    return base + relative * scale * rng.standard_normal((8, 10))


@pytest.mark.parametrize("relative, alive", [(0.0, False), (1e-7, False), (1e-6, False), (1e-3, True),
                                             (1.0, True)])
def test_float_noise_is_constant_and_a_thousandth_is_alive(relative, alive):
    spread = output_spread(_moving(relative))
    assert spread == pytest.approx(relative, rel=0.5, abs=1e-12)
    assert is_alive(spread) is alive
    assert is_alive(output_spread(_moving(relative).astype(np.float32))) is alive


def test_all_zero_and_nan_outputs_are_not_alive():
    assert output_spread(np.zeros((4, 10))) == 0.0
    assert not is_alive(output_spread(np.full((4, 10), np.nan)))
    with pytest.raises(InputError, match="at least two"):
        output_spread(np.ones((1, 10)))


@pytest.mark.parametrize("dead", [False, True])
def test_assess_tells_a_cut_network_from_a_connected_one(dead):
    model, _ = tiny_network(dead)
    model.train()
    health = assess(model, torch.randn((6, *SHAPE[1:]), generator=torch.Generator().manual_seed(1)))
    assert model.training  # the caller's mode is restored
    assert health.input_dependent is not dead
    assert (health.output_spread == 0.0) if dead else health.output_spread > 1e-2
    assert 0 < health.alive_mac_share < 1
    assert Health.from_dict(health.to_dict()) == health


def test_assess_works_without_real_images():
    model, _ = tiny_network(False)
    assert assess(model, torch.empty((0, *SHAPE[1:]))).input_dependent


def test_require_alive_raises_one_line_naming_the_model_and_the_override(caplog):
    dead = Health(False, 0.0, 0.009)
    with pytest.raises(DeadModelError) as raised:
        require_alive(dead, "darts-99", allow_dead=False)
    message = str(raised.value)
    assert message == ("darts-99's output does not depend on its input (output spread 0, alive MACs 0.9%); "
                       "retrain it, or pass --allow-dead to export it anyway")
    assert raised.value.exit_code == 7
    require_alive(dead, "darts-99", allow_dead=True)
    assert "darts-99" in caplog.text
    require_alive(Health(True, 0.3), "alive", allow_dead=False)


def test_damaged_health_record_is_an_input_error():
    with pytest.raises(InputError, match="damaged health"):
        Health.from_dict({"output_spread": 0.1})


@pytest.mark.parametrize("dead", [False, True])
def test_parity_does_not_pass_on_a_constant_reference(tmp_path, dead):
    model, _ = tiny_network(dead)
    baked = sparse.bake(model).eval()
    write_onnx(baked, SHAPE, tmp_path / "m.onnx", opset=13)
    session = runtimes.load(tmp_path / "m.onnx", device="CPU")
    inputs = check_inputs(SHAPE, None)
    if dead:
        with pytest.raises(DeadModelError, match="does not depend on its input"):
            check_parity(model, session, "m.onnx", 1e-4, inputs, 0)
    parity = check_parity(model, session, "m.onnx", 1e-4, inputs, 0, allow_dead=dead)
    assert parity.max_abs_diff <= 1e-4
    assert parity.passed is not dead and (parity.reference_spread > 1e-2 or dead)


def test_stored_health_is_trusted_and_nothing_is_written(tiny_checkpoints, tmp_path):
    """The alive network with a record that says dead: the record decides (training measured it)."""
    ckpt = checkpoint.load(tiny_checkpoints["alive"])
    ckpt.health = Health(False, 0.0, 0.5).to_dict()
    path = checkpoint.save(ckpt, tmp_path / "recorded-dead.pt")
    with pytest.raises(DeadModelError, match="recorded-dead's output"):
        export_checkpoint(path, "jetson-tx2", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
