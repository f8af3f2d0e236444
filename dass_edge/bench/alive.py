"""Bench refuses dead networks: a latency measured on a network whose output ignores its input is a number
about a constant, not about the model it claims to be. Where the evidence comes from, best first:

- a checkpoint: its stored health, else assessed now on its test images (export.pipeline.checkpoint_health);
- an exported file: its manifest's ``dead`` flag (written by ``dass-edge export``);
- a bare file (no manifest): run in its runtime here on a few different random inputs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dass_edge.health import Health, assess_session, require_alive

if TYPE_CHECKING:
    from dass_edge.checkpoint import Checkpoint

log = logging.getLogger(__name__)


def checkpoint_alive(checkpoint: Checkpoint, name: str, allow_dead: bool) -> Health:
    """The checkpoint's health; DeadModelError for a dead one unless ``allow_dead``."""
    from dass_edge.export.pipeline import checkpoint_health

    health = checkpoint_health(checkpoint)
    require_alive(health, name, allow_dead, action="bench")
    return health


def file_alive(path: Path, manifest: dict[str, Any], runtime: str | None, allow_dead: bool) -> Health | None:
    """The health of a model file from its export manifest ({} for none) or from its runtime; None when
    neither is at hand (an old manifest and no runtime here to run the file in)."""
    if "dead" in manifest:
        health = Health.from_dict(manifest["health"]) if manifest.get("health") else Health(True, float("nan"))
        health = replace(health, input_dependent=not manifest["dead"])
        what = manifest.get("model") or path.stem
    else:
        session = _session(path, runtime)
        if session is None:
            return None
        health, what = assess_session(session), path.name
    require_alive(health, what, allow_dead, action="bench")
    return health


def _session(path: Path, runtime: str | None):  # -> runtimes.Session | None
    """The file loaded on this machine's CPU: in ``runtime`` when installed here, else in the default
    runtime of its suffix (a board's tflite-runtime file also runs in LiteRT)."""
    from dass_edge import runtimes

    here = runtimes.available()
    name = runtime if runtime in here else runtimes.runtime_for(path)
    if name not in here:
        log.warning("cannot check that %s depends on its input: no %s here", path.name, name)
        return None
    return runtimes.load(path, name, device="CPU")
