"""Side environments: old Pythons holding a board's runtime at its board version, for parity checks.

A board runtime such as tflite-runtime 2.13 (NumPy 1.x, Python <= 3.9) or onnxruntime 1.10 (Python 3.6)
cannot be imported next to the host's current packages, so ``.ci/sideenvs.sh`` builds a virtual
environment per runtime under ``.sideenvs/`` (or ``DASS_EDGE_SIDEENVS``). One is found by the
distribution's installed metadata (``<dist>-<version>.dist-info``), so nothing is started to look, and a
file is run there by the runner (runtimes/process.py), isolated (``-I``): the runner's folder on sys.path
would otherwise shadow the runtimes' own packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from dass_edge.runtimes import RUNTIMES
from dass_edge.runtimes.process import ProcessSession

SIDEENVS_ENV = "DASS_EDGE_SIDEENVS"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".sideenvs"


def sideenvs_dir() -> Path:
    return Path(os.environ.get(SIDEENVS_ENV) or DEFAULT_DIR)


def find_python(runtime: str, version: str) -> Path | None:
    """The interpreter of the first side environment (by name) that has ``runtime`` at ``version``."""
    dist = RUNTIMES[runtime].distribution.replace("-", "_").lower()
    for env in sorted(p for p in sideenvs_dir().glob("*") if p.is_dir()):
        python = env / "bin" / "python"
        infos = env.glob("lib/python*/site-packages/*.dist-info")
        if python.exists() and any(info.name.lower() == f"{dist}-{version}.dist-info" for info in infos):
            return python
    return None


def side_session(runtime: str, version: str, python: Path, model_file: Path, layout: str) -> ProcessSession:
    """``model_file`` run in the side environment of ``python``."""
    return ProcessSession(runtime, version, (str(python), "-I"), model_file, layout,
                          f"side environment {python.parent.parent.name}")
