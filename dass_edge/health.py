"""Is a network alive? Whether its output depends on its input at all, measured on real and random inputs.

At 99% sparsity every path from the input to the logits can be cut; the BatchNorm shifts behind the cut
then produce the same logits for every image. Such a network converts, "passes" parity with a max abs
diff of 0.0 (a constant is easy to match) and times like any other, so every later stage would report
numbers about a constant. Training records a :class:`Health` in the checkpoint; export, parity and bench
call :func:`require_alive` before they trust a network.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dass_edge.errors import DassEdgeError, DeadModelError, InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dass_edge.runtimes import Session

log = logging.getLogger(__name__)

# Relative spread at or below which outputs count as constant. A network with every path cut gives the
# same bits for every input (spread 0); what can still differ between inputs is float rounding of terms
# that should cancel (x - mean behind a zero-variance BatchNorm, say): float32 rounds at 1.2e-7 relative
# per op, ~1e-6 after a few hundred ops. 1e-5 sits a decade above that noise and two decades below 1e-3,
# less than any network that tells inputs apart moves its logits (trained smoke nets: 0.1 and more).
SPREAD_THRESHOLD = 1e-5
RANDOM_INPUTS = 4


@dataclass(frozen=True)
class Health:
    """Whether a network's logits move with its input, stored in checkpoints and export manifests.

    ``output_spread``: max over classes of the std of the logit across inputs, divided by the mean |logit|
    (0 for a constant network). ``alive_mac_share``: the share of the dense network's MACs that compaction
    keeps (None where compaction does not apply); informative only, because channels can be structurally
    connected yet numerically constant (ReLU6 saturated, activations faded), which only the spread sees.
    """

    input_dependent: bool
    output_spread: float
    alive_mac_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Health:
        try:
            share = data.get("alive_mac_share")
            return cls(bool(data["input_dependent"]), float(data["output_spread"]),
                       None if share is None else float(share))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"damaged health record {data!r}: {exc}") from None


def output_spread(outputs: np.ndarray | torch.Tensor) -> float:
    """Relative spread of a batch of outputs (one row per input): max_class std / (mean |logit| + 1e-12)."""
    values = np.asarray(outputs.detach().cpu().numpy() if hasattr(outputs, "detach") else outputs, np.float64)
    values = values.reshape(len(values), -1)
    if len(values) < 2:
        raise InputError("the output spread needs outputs for at least two different inputs")
    return float(values.std(axis=0).max() / (np.abs(values).mean() + 1e-12))


def is_alive(spread: float) -> bool:
    """The threshold test (NaN counts as dead: such outputs say nothing about the input either)."""
    return bool(spread > SPREAD_THRESHOLD)


def assess(model: nn.Module, inputs: torch.Tensor, *, seed: int = 0) -> Health:
    """Run ``inputs`` (a batch of real images, possibly empty) plus RANDOM_INPUTS random N(0, 1) ones of the
    same shape through ``model`` in eval mode; the training mode is restored afterwards, so training code
    may call it between epochs. Real images alone could all land in one saturated region and random ones
    alone could miss the data's range, so both are used."""
    import torch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((RANDOM_INPUTS, *inputs.shape[1:]), generator=generator)
    batch = torch.cat([inputs.detach().float().cpu(), noise]).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            spread = output_spread(model(batch))
        share = alive_mac_share(model, (1, *inputs.shape[1:]))
    finally:
        model.train(was_training)
    return Health(is_alive(spread), spread, share)


def assess_session(session: Session, count: int = RANDOM_INPUTS, seed: int = 0) -> Health:
    """A model file without a record: its runtime session on ``count`` different random inputs."""
    rng = np.random.default_rng(seed)
    outputs = [session.run(rng.standard_normal(session.input_shape).astype(np.float32)) for _ in range(count)]
    spread = output_spread(np.stack(outputs))
    return Health(is_alive(spread), spread, None)


def alive_mac_share(model: nn.Module, input_shape: tuple[int, ...]) -> float | None:
    """MACs after exact compaction (channel multiple 1) over the dense network's; None where compaction
    cannot trace the network (a supernet, say). Works on a copy on the CPU, leaving ``model`` as it is."""
    from dass_edge.export.compact import compact_model

    plain = copy.deepcopy(model).cpu().eval()
    try:
        result = compact_model(plain, input_shape, 1)
    except (DassEdgeError, RuntimeError, TypeError, ValueError) as exc:  # fx tracing raises these
        log.info("no alive MAC share: %s", exc)
        return None
    return result.macs_after / result.macs_before if result.macs_before else None


def require_alive(health: Health, what: str, allow_dead: bool, action: str = "export") -> None:
    """Raise DeadModelError for a network whose output does not depend on its input, unless the caller
    explicitly allows it (then only a warning is logged). ``action`` completes "pass --allow-dead to ..."."""
    if health.input_dependent:
        return
    share = "" if health.alive_mac_share is None else f", alive MACs {health.alive_mac_share:.1%}"
    facts = f"output spread {health.output_spread:.2g}{share}"
    if allow_dead:
        log.warning("%s's output does not depend on its input (%s); going on as --allow-dead asks", what, facts)
        return
    raise DeadModelError(f"{what}'s output does not depend on its input ({facts}); retrain it, or pass "
                         f"--allow-dead to {action} it anyway")
