"""Side environments: old Pythons holding a board's runtime at its board version, for parity checks.

A board runtime such as tflite-runtime 2.13 (NumPy 1.x, Python <= 3.9) or onnxruntime 1.10 (Python 3.6)
cannot be imported next to the host's current packages, so ``.ci/sideenvs.sh`` builds a virtual
environment per runtime under ``.sideenvs/`` (or ``DASS_EDGE_SIDEENVS``). One is found by the
distribution's installed metadata (``<dist>-<version>.dist-info``), so nothing is started to look, and a
file is run there by board_runner.py in a subprocess: all inputs in one call. It runs isolated (``-I``):
the script's folder on sys.path would shadow the runtimes with this package's onnx.py and openvino.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dass_edge.errors import DassEdgeError, ParityError
from dass_edge.runtimes import RUNTIMES

SIDEENVS_ENV = "DASS_EDGE_SIDEENVS"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".sideenvs"
RUNNER = Path(__file__).with_name("board_runner.py")
TIMEOUT_S = 300


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


@dataclass(frozen=True)
class SideSession:
    """A model file run in a side environment's runtime; ``run_all`` starts one subprocess for all inputs."""

    runtime: str
    version: str
    python: Path
    model_file: Path
    input_layout: str
    timeout_s: float = field(default=TIMEOUT_S, repr=False)

    @property
    def place(self) -> str:
        return f"side environment {self.python.parent.parent.name}"

    def run_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="dass-edge-side-") as tmp:
            source, target = Path(tmp) / "inputs.npy", Path(tmp) / "outputs.npy"
            np.save(source, np.stack(inputs).astype(np.float32))
            try:
                done = subprocess.run([str(self.python), "-I", str(RUNNER), self.runtime, str(self.model_file),
                                       str(source), str(target)], capture_output=True, text=True,
                                      timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise DassEdgeError(f"{self.runtime} {self.version} ({self.place}) did not finish running "
                                    f"{self.model_file.name} within {self.timeout_s:g} s") from None
            lines = done.stdout.strip().splitlines()
            reply = json.loads(lines[-1]) if lines else {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
            if done.returncode != 0 or "error" in reply:
                raise ParityError(f"{self.model_file.name} does not run in {self.runtime} {self.version} "
                                  f"({self.place}): {reply.get('error', 'exit status ' + str(done.returncode))}")
            return list(np.load(target))
