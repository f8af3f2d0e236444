"""Shared fixtures: trained smoke checkpoints (real training on bundled MNIST) and the side environments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dass_edge.search.presets import PRESETS
from dass_edge.workflows import DataChoice, run_search, run_train

ROOT = Path(__file__).resolve().parent.parent

# One intra-op thread: with two, torch's OpenMP workers spin against every other process on a 2-core
# machine and small-model training slowed down tenfold when anything else ran beside the tests.
torch.set_num_threads(int(os.environ.get("DASS_EDGE_TEST_THREADS", "1")))


def side_python(name: str) -> Path:
    """The interpreter of a side environment built by .ci/sideenvs.sh; CI fails where one is missing."""
    python = ROOT / ".sideenvs" / name / "bin" / "python"
    if not python.exists():
        message = f"side environment {name} missing: run bash .ci/sideenvs.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def smoke_search(tmp_path_factory) -> Path:
    """A DASS search checkpoint (supernet pruned to 90%) from the smoke preset on mnist5k."""
    return run_search(DataChoice("mnist5k"), PRESETS["smoke"], 0.9, tmp_path_factory.mktemp("search"), seed=0)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, smoke_search):
    """Factory: ``trained_checkpoint(arch, sparsity=0.9)`` -> a fine-tuned smoke checkpoint (cached)."""
    cache: dict[tuple[str, float], Path] = {}

    def make(arch: str, sparsity: float = 0.9) -> Path:
        key = (arch, sparsity)
        if key not in cache:
            name = f"dass:{smoke_search}" if arch == "dass" and sparsity == 0.9 else arch
            if arch == "dass" and sparsity != 0.9:
                raise ValueError("the smoke search is pruned at 0.9")
            cache[key] = run_train(name, DataChoice("mnist5k"), PRESETS["smoke"], sparsity,
                                   tmp_path_factory.mktemp("train"))
        return cache[key]

    return make
