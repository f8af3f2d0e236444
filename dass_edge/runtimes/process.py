"""A model file run by runner.py in another interpreter: a side environment's old Python holding a board's
runtime version, or an emulated board's Python under qemu-user. One subprocess runs all inputs, so a
parity check pays the interpreter's start (seconds under emulation) once per file, not once per input."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dass_edge.errors import DassEdgeError, ParityError
from dass_edge.runtimes import runner

RUNNER = Path(runner.__file__)
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ProcessSession:
    """``interpreter`` is the command that starts the other Python (e.g. ``(python, "-I")``: isolated, so the
    runner's folder on sys.path cannot shadow a runtime); ``place`` says where that is, for messages and
    the export manifest."""

    runtime: str
    version: str
    interpreter: tuple[str, ...]
    model_file: Path
    input_layout: str
    place: str
    timeout_s: float = field(default=TIMEOUT_S, repr=False)

    def run_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="dass-edge-run-") as tmp:
            source, target = Path(tmp) / "inputs.npy", Path(tmp) / "outputs.npy"
            np.save(source, np.stack(inputs).astype(np.float32))
            command = [*self.interpreter, str(RUNNER), "run", str(self.model_file), str(source), str(target),
                       "--runtime", self.runtime]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise DassEdgeError(f"{self.runtime} {self.version} ({self.place}) did not finish running "
                                    f"{self.model_file.name} within {self.timeout_s:g} s") from None
            lines = done.stdout.strip().splitlines()
            reply = json.loads(lines[-1]) if lines else {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
            if done.returncode != 0 or "error" in reply:
                raise ParityError(f"{self.model_file.name} does not run in {self.runtime} {self.version} "
                                  f"({self.place}): {reply.get('error', 'exit status ' + str(done.returncode))}")
            return list(np.load(target))
