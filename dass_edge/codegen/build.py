"""Compile generated C: a shared library (the runtime's ``.so``) and the stand-alone timing program, for the
host with gcc or for a board with Debian's cross compilers, and run a program built for a board under
qemu-user here (parity of the ARM builds in the board's own instruction set).

Every build records the compiler, its version (first line of ``CC --version``) and the full flags. ARM
programs are linked statically: a board's older C library cannot refuse them, and qemu needs no sysroot.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dass_edge.errors import DassEdgeError, MissingToolError

log = logging.getLogger(__name__)
BENCH_MAIN = Path(__file__).with_name("bench_main.c")
# -ffp-contract=fast: fused multiply-adds (ISO C mode turns them off). No loop-distribute-patterns: gcc would
# turn the staging's short row copies and zero fills into memcpy/memset calls, slower at these sizes. No
# unroll-and-jam: it fused pairs of a sparse row's weights into one scalar loop instead of keeping the block's
# accumulators in vector registers (4x more instructions on ResNet-18).
COMMON_FLAGS = ("-std=c99", "-O3", "-ffp-contract=fast", "-fno-tree-loop-distribute-patterns",
                "-fno-loop-unroll-and-jam", "-Wall", "-Wextra")
STRICT_FLAGS = ("-Werror",)


@dataclass(frozen=True)
class Cross:
    """What the build needs to know about a compiler: its Debian package, the name of its architecture in
    file names, and how to run its programs on this machine (None: natively)."""

    package: str
    arch: str
    emulator: tuple[str, ...] | None = None


COMPILERS: dict[str, Cross] = {
    "gcc": Cross("gcc", "host"),
    "arm-linux-gnueabihf-gcc": Cross("gcc-arm-linux-gnueabihf", "armhf",
                                     ("qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf")),
    "aarch64-linux-gnu-gcc": Cross("gcc-aarch64-linux-gnu", "aarch64",
                                   ("qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu")),
}
EMULATOR_PACKAGE = "qemu-user-static"


@dataclass(frozen=True)
class Toolchain:
    compiler: str = "gcc"
    flags: tuple[str, ...] = ()  # the target's own, e.g. ("-mcpu=cortex-a7", "-mfpu=neon-vfpv4", ...)

    @property
    def cross(self) -> Cross:
        return COMPILERS.get(self.compiler, Cross(self.compiler, self.compiler.split("-")[0]))

    @property
    def native(self) -> bool:
        return self.cross.emulator is None

    def all_flags(self, strict: bool = False) -> tuple[str, ...]:
        return (*COMMON_FLAGS, *(STRICT_FLAGS if strict else ()), *self.flags)

    def executable(self) -> str:
        path = shutil.which(self.compiler)
        if path is None:
            raise MissingToolError(self.compiler, self.cross.package)
        return path

    def version(self) -> str:
        return _version(self.executable())

    def describe(self) -> str:
        """Compiler, version and flags in one line (the program's ``runtime_version``)."""
        return f"{self.version()}; {' '.join(self.all_flags())}"


@functools.lru_cache(maxsize=8)
def _version(executable: str) -> str:
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
    return (result.stdout.splitlines() or ["unknown"])[0].strip()


@dataclass(frozen=True)
class Build:
    """What one build made and how: ``library`` / ``program`` are None where not asked for."""

    library: Path | None
    program: Path | None
    compiler: str
    version: str
    flags: tuple[str, ...]
    seconds: float


def _compile(toolchain: Toolchain, arguments: list[str], strict: bool) -> None:
    command = [toolchain.executable(), *toolchain.all_flags(strict), *arguments]
    log.debug("compiling: %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip())
        raise DassEdgeError(f"{toolchain.compiler} failed to compile the generated C: {first}")


def build(folder: Path, toolchain: Toolchain, *, library: str | None = None, program: str | None = None,
          strict: bool = False, defines: tuple[str, ...] = ()) -> Build:
    """Compile ``folder/model.c`` (beside its ``model.h``) into ``folder/library`` and/or, with the timing
    main, into ``folder/program``. ``strict`` turns warnings into errors (the tests); ``defines`` are
    extra ``-D`` macros (e.g. DASS_EDGE_NAN_ARENA)."""
    started = time.perf_counter()
    macros = [f"-D{d}" for d in defines]
    with tempfile.TemporaryDirectory(prefix="dass-edge-build-") as objects:
        # the network compiled once (-O3 over thousands of lines: the slow part), linked into both
        model = str(Path(objects) / "model.o")
        _compile(toolchain, [*macros, "-fPIC", "-c", str(folder / "model.c"), "-o", model], strict)
        if library:
            _compile(toolchain, ["-shared", model, "-o", str(folder / library), "-lm"], strict)
        if program:
            describe = toolchain.describe().replace("\\", "\\\\").replace('"', '\\"')
            static = [] if toolchain.native else ["-static"]
            _compile(toolchain, [*macros, f'-DDASS_EDGE_COMPILER="{describe}"',
                                 f"-DDASS_EDGE_AGENT_VERSION={_agent_version()}", f"-I{folder}", *static,
                                 model, str(BENCH_MAIN), "-o", str(folder / program), "-lm"], strict)
    return Build(folder / library if library else None, folder / program if program else None,
                 toolchain.compiler, toolchain.version(), toolchain.all_flags(strict),
                 time.perf_counter() - started)


def _agent_version() -> int:
    """The program prints the Python runner's result format, so it carries the runner's version number."""
    from dass_edge.runtimes.runner import AGENT_VERSION

    return AGENT_VERSION


def emulator(toolchain: Toolchain) -> list[str]:
    """The command prefix that runs ``toolchain``'s programs here ([] on the host)."""
    if toolchain.native:
        return []
    command = list(toolchain.cross.emulator or ())
    if shutil.which(command[0]) is None:
        raise MissingToolError(command[0], EMULATOR_PACKAGE)
    return command


def run_program(program: Path, inputs: np.ndarray, toolchain: Toolchain, timeout_s: float = 300) -> np.ndarray:
    """Outputs of a built program for stacked batch-1 ``inputs`` (N, C, H, W): (N, outputs) float32. For an
    ARM build the program runs under qemu-user, i.e. in the board's instruction set."""
    inputs = np.ascontiguousarray(inputs, dtype="<f4")
    with tempfile.TemporaryDirectory(prefix="dass-edge-c-") as tmp:
        source, sink = Path(tmp) / "inputs.f32", Path(tmp) / "outputs.f32"
        inputs.tofile(source)
        command = [*emulator(toolchain), str(program), "--inputs", str(source), "--outputs", str(sink)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        if result.returncode != 0:
            raise DassEdgeError(f"{program.name} failed (status {result.returncode}): "
                                f"{(result.stdout + result.stderr).strip()[:300]}")
        outputs = np.fromfile(sink, dtype="<f4")
    return outputs.reshape(len(inputs), -1).astype(np.float32)
