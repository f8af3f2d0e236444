"""C exporter: generated C (dass_edge.codegen) compiled for the target's CPU, plus a stand-alone timing program.

Writes ``model.c`` / ``model.h`` (the network with its weights baked in, visiting only non-zero weights),
``bench_main.c`` and a ``Makefile`` (to rebuild on a board), ``build.json`` (compiler, version, flags, the
loop form each layer got, arena size, compile time), the shared library and the program. Each conv's loop form follows
the rule in dass_edge.codegen.forms: timing every form at export time cost 33 s on the demo's DASS network
for a 2-6% faster library (benchmarks/sparse_codegen.py measures both), and timing here says nothing about a
Cortex-A7. For the host the runtime loads ``model.so``; for a board (a cross compiler) the file a runtime
runs is the program, under qemu-user on this machine.

An int8 target gets int8 weights with one float scale per output channel (dass_edge.codegen.quantise),
activations and sums staying float: weights only, so it needs no calibration images (``get_exporter``
passes them to every int8 exporter; this one ignores them). The source's header, ``build.json`` and the
Artifact's ``tools`` say so.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from dass_edge import runtimes
from dass_edge.codegen import forms
from dass_edge.codegen.build import BENCH_MAIN, Build, Toolchain, build, emulator, run_program
from dass_edge.codegen.generate import Generated, generate, save
from dass_edge.codegen.quantise import PRECISIONS, WEIGHTS, precision_of
from dass_edge.errors import InputError
from dass_edge.export import Artifact
from dass_edge.targets import Target

if TYPE_CHECKING:
    from dass_edge.export.quantize import Calibration


def toolchain_of(target: Target) -> Toolchain:
    return Toolchain(target.c_compiler, target.c_flags)


def file_names(toolchain: Toolchain) -> tuple[str, str]:
    """(library, program): ``model.so`` / ``model-bench`` for the host, ``-<arch>`` added for a board."""
    suffix = "" if toolchain.native else f"-{toolchain.cross.arch}"
    return f"model{suffix}.so", f"model-bench{suffix}"


def export(model: nn.Module, input_shape: tuple[int, ...], target: Target, out: Path, work: Path,
           calibration: Calibration | None = None) -> Artifact:
    if target.precision not in PRECISIONS:
        raise InputError(f"target {target.name}: the C exporter writes {' or '.join(PRECISIONS)}, "
                         f"not {target.precision}")
    toolchain = toolchain_of(target)
    toolchain.executable()  # a missing compiler fails here, before minutes of tuning
    generated = generate(model, input_shape, forms.RULE, toolchain, target.precision)
    save(generated, out)
    shutil.copyfile(BENCH_MAIN, out / BENCH_MAIN.name)
    library, program = file_names(toolchain)
    built = build(out, toolchain, library=library, program=program)
    if toolchain.native:  # a flag this CPU lacks (AVX2, say) must fail here, not crash the parity check
        run_program(built.program, np.zeros((1, *input_shape[1:]), np.float32), toolchain)
    (out / "Makefile").write_text(makefile(toolchain, library, program))
    (out / "build.json").write_text(json.dumps(build_record(generated, built), indent=2) + "\n")
    files = tuple(out / name for name in ("model.c", "model.h", BENCH_MAIN.name, "Makefile", "build.json",
                                          library, program))
    main = built.library if toolchain.native else built.program
    tools = {toolchain.compiler: built.version, "c_flags": " ".join(built.flags),
             "weights": WEIGHTS[precision_of(generated.graph)]}
    return Artifact("c", main, files, "NCHW", tools)


def build_record(generated: Generated, built: Build) -> dict:
    return {"entry_point": "int dass_edge_run(const float *input, float *output)",
            "library": built.library.name if built.library else None,
            "program": built.program.name if built.program else None,
            "compiler": built.compiler, "compiler_version": built.version, "flags": list(built.flags),
            "compile_seconds": round(built.seconds, 2), "version": generated.source.version,
            "arena_bytes": generated.arena_bytes, "layer_forms": generated.forms,
            "nonzero_macs": generated.macs(), "dense_macs": generated.macs(nonzero_only=False),
            "weights": WEIGHTS[precision_of(generated.graph)]}


def makefile(toolchain: Toolchain, library: str, program: str) -> str:
    """How to rebuild the library and the program on the board itself (its own gcc, the same flags)."""
    flags = " ".join(toolchain.all_flags())
    return (f"# Rebuild on the board: make CC=gcc\nCC ?= {toolchain.compiler}\nCFLAGS ?= {flags}\n\n"
            f"all: {library} {program}\n\n"
            f"{library}: model.c model.h\n\t$(CC) $(CFLAGS) -shared -fPIC model.c -o $@ -lm\n\n"
            f"{program}: model.c model.h {BENCH_MAIN.name}\n"
            f"\t$(CC) $(CFLAGS) -I. model.c {BENCH_MAIN.name} -o $@ -lm\n")


@dataclass(frozen=True)
class ProgramSession:
    """A board's build of the C export run here: its stand-alone program under qemu-user, all inputs in one
    call, i.e. the parity check in the board's own instruction set."""

    program: Path
    toolchain: Toolchain
    version: str
    runtime: str = "c"
    input_layout: str = "NCHW"

    @property
    def place(self) -> str:
        return f"{emulator(self.toolchain)[0]} ({self.toolchain.cross.arch})"

    def run_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = run_program(self.program, np.concatenate(inputs), self.toolchain)
        return [row[None, :] for row in outputs]


def session_for(path: Path, target: Target | None):  # -> runtimes.Session | ProgramSession
    """Where a C export runs for its parity check: the host's library in-process (ctypes, the runtime
    ``bench`` times), or a board's program under qemu-user."""
    toolchain = toolchain_of(target) if target is not None else Toolchain()
    if toolchain.native:
        return runtimes.load(path, "c", device="CPU")
    return ProgramSession(path, toolchain, toolchain.version())
