"""Emulated ARM boards: a Debian userland of the board's architecture with its Python, numpy and runtime,
run through qemu-user on this machine, so exports are loaded and run by the ARM builds a board installs.

Why emulation and not the host's x86 runtimes: a board runs the newest wheels its Python can install for
its architecture (onnxruntime 1.10, tflite-runtime 2.13 on aarch64), and those refuse files the host's
runtimes accept. Why no binfmt_misc: it needs a privileged, machine-wide setting; calling
``qemu-aarch64-static -L ROOTFS ROOTFS/usr/bin/python3.9`` directly needs nothing. The one wrapper script
``python`` in the board's folder does that, so the SSH path and the runner see an ordinary interpreter.

A board is built once into ``$DASS_EDGE_BOARDS`` (default ``~/.cache/dass-edge/boards``)/NAME, in a
temporary folder renamed into place when it imports its runtimes, so a failed build leaves nothing behind.
Everything comes from Debian's archive (mmdebstrap) and the Python package registry (pip download of the
ARM wheels). Timings under emulation say nothing about the board's speed: results are marked ``emulated``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dass_edge.bench.board import Board
from dass_edge.bench.emulated_sshd import KNOWN_HOSTS, USER_KEY, ensure_running, find_tool, make_keys, stop
from dass_edge.errors import DassEdgeError, InputError

log = logging.getLogger(__name__)

BOARDS_ENV = "DASS_EDGE_BOARDS"
MIRROR_ENV = "DASS_EDGE_DEBIAN_MIRROR"
SUFFIX = "-emulated"  # board NAME is reached as NAME-emulated (bench --board jetson-tx2-emulated)
INFO = "board.json"
BUILD_TIMEOUT_S = 1800
EMULATED_RUN_TIMEOUT_S = 1800.0  # qemu runs ARM code 10-50x slower than the host


@dataclass(frozen=True)
class Arch:
    """An ARM architecture as each tool names it."""

    name: str  # uname -m on the board
    debian: str  # mmdebstrap --arch
    qemu: str  # the qemu-user binary (Debian qemu-user-static)
    wheel_platform: str  # pip --platform


AARCH64 = Arch("aarch64", "arm64", "qemu-aarch64-static", "manylinux2014_aarch64")
ARMHF = Arch("armv7l", "armhf", "qemu-arm-static", "manylinux2014_armv7l")


@dataclass(frozen=True)
class BoardSpec:
    """What an emulated board holds: the Debian suite and packages, and the wheels pinned to the versions
    the real board's Python can install (docs/boards.md)."""

    target: str
    arch: Arch
    wheels: tuple[str, ...]
    modules: tuple[str, ...]  # imported once the board is built: a board that cannot import them is not kept
    suite: str = "bullseye"  # Python 3.9, the newest with tflite-runtime wheels for 32-bit ARM
    python: str = "3.9"
    missing: str = ""  # why this board cannot be built from the registries yet ("" = it can)


SPECS: dict[str, BoardSpec] = {
    "jetson-tx2": BoardSpec("jetson-tx2", AARCH64,
                            ("numpy==1.26.4", "onnxruntime==1.10.0", "tflite-runtime==2.13.0"),
                            ("numpy", "onnxruntime", "tflite_runtime")),
    "cortex-a7": BoardSpec("cortex-a7", ARMHF, ("numpy>=1.21.2,<2", "tflite-runtime==2.13.0"),
                           ("numpy", "tflite_runtime"),
                           missing="tflite-runtime 2.13 for armv7l needs numpy >= 1.21.2, the registry has no "
                                   "armv7l numpy wheel and bullseye's python3-numpy is 1.19.5 "
                                   "(docs/boards.md); its .tflite files run on jetson-tx2-emulated"),
}


def boards_dir() -> Path:
    if os.environ.get(BOARDS_ENV):
        return Path(os.environ[BOARDS_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "dass-edge" / "boards"


def spec_for(name: str) -> BoardSpec:
    if name not in SPECS:
        raise InputError(f"no emulated board for {name!r}; known: {', '.join(SPECS)}")
    return SPECS[name]


def board_folder(name: str) -> Path:
    return boards_dir() / name


def read_info(name: str) -> dict[str, Any] | None:
    """The built board's record (versions, architecture, mirror), or None when it was never built."""
    try:
        info = json.loads((board_folder(name) / INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("name") == name else None


def built_boards() -> dict[str, dict[str, Any]]:
    """Every emulated board in the cache, by name."""
    folder = boards_dir()
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    return {name: info for name in names if (info := read_info(name)) is not None}


def debian_mirror(sources: dict[str, str]) -> str | None:
    """The first Debian archive URI in apt source files' texts ({file name: text}), one-line or deb822.

    Why the machine's own: mmdebstrap's default mirror list also adds the suite's security archive, which
    offline or proxied machines cannot reach; a security or third-party archive is never chosen here.
    """
    for name, text in sources.items():  # in apt's order: sources.list, then sources.list.d by name
        if name.endswith(".sources"):
            stanzas = [dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", block, re.M)) for block in text.split("\n\n")]
            uris = [u for s in stanzas if "deb" in s.get("Types", "").split() for u in s.get("URIs", "").split()]
        else:
            uris = [m.group(1) for m in re.finditer(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)]
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def machine_mirror(root: Path = Path("/etc/apt")) -> str | None:
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
    return debian_mirror({p.name: p.read_text(errors="replace") for p in files if p.is_file()})


def _run(command: list[str], what: str, timeout_s: float = BUILD_TIMEOUT_S, **kwargs: Any) -> str:
    """Run a build step; its failure is one line naming the step and the tool's last words."""
    log.info("%s: %s", what, " ".join(command))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, **kwargs)
    except subprocess.TimeoutExpired:
        raise DassEdgeError(f"{what} did not finish within {timeout_s:g} s") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise DassEdgeError(f"{what} failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}")
    return done.stdout


def wrapper_script(spec: BoardSpec, qemu: str) -> str:
    """The board's ``python``: the ARM interpreter under qemu-user, wheels on its path, relocatable."""
    return ("#!/bin/sh\n"
            f"# dass-edge emulated board {spec.target}: Debian {spec.suite} {spec.arch.debian}, Python "
            f"{spec.python} under {spec.arch.qemu}\n"
            'here=$(dirname "$(readlink -f "$0")")\n'
            'PYTHONPATH="$here/site" PYTHONNOUSERSITE=1 exec ' + qemu
            + f' -L "$here/rootfs" "$here/rootfs/usr/bin/python{spec.python}" "$@"\n')


# Run by the board's Python: import every runtime (a board that cannot is not kept) and report versions.
_PROBE = ("import importlib, json, platform, sys; "
          "mods = {m: importlib.import_module(m) for m in sys.argv[1:]}; "
          "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), "
          "'versions': {m: getattr(mod, '__version__', '?') for m, mod in mods.items()}}))")


def build(name: str, mirror: str | None = None, rebuild: bool = False) -> dict[str, Any]:
    """Build the emulated board ``name`` (once; ``rebuild`` replaces it) and return its record."""
    spec = spec_for(name)
    if not rebuild and (info := read_info(name)) is not None:
        log.info("emulated board %s is already built in %s", name, board_folder(name))
        return info
    if spec.missing:
        raise DassEdgeError(f"cannot build an emulated {name} ({spec.arch.debian}): {spec.missing}")
    tools = {"mmdebstrap": find_tool("mmdebstrap", "mmdebstrap"),
             "qemu": find_tool(spec.arch.qemu, "qemu-user-static"),
             "ssh-keygen": find_tool("ssh-keygen", "openssh-client")}
    mirror = mirror or os.environ.get(MIRROR_ENV) or machine_mirror()
    if not mirror:
        raise InputError("no Debian mirror found in /etc/apt/sources.list*; pass --mirror URL "
                         f"(or set {MIRROR_ENV})")
    final = board_folder(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}."))
    try:
        info = _assemble(spec, work, mirror, tools)
        _replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("built emulated board %s in %s", name, final)
    return info


def _assemble(spec: BoardSpec, work: Path, mirror: str, tools: dict[str, str]) -> dict[str, Any]:
    """The build steps inside the temporary folder ``work``; the record written last."""
    _run([tools["mmdebstrap"], "--quiet", "--variant=extract", f"--arch={spec.arch.debian}",
          f"--include=python3,libpython{spec.python}", spec.suite, str(work / "rootfs"), mirror],
         f"mmdebstrap ({spec.suite} {spec.arch.debian} from {mirror})")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
          "--target", str(work / "site"), "--only-binary=:all:", "--platform", spec.arch.wheel_platform,
          "--python-version", spec.python, "--implementation", "cp", "--abi", "cp" + spec.python.replace(".", ""),
          *spec.wheels], f"pip ({spec.arch.wheel_platform} wheels)")
    script = work / "python"
    script.write_text(wrapper_script(spec, tools["qemu"]))
    script.chmod(0o755)
    out = _run([str(script), "-c", _PROBE, *spec.modules], "importing the runtimes on the board", timeout_s=600)
    try:
        probe = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DassEdgeError(f"the board's Python printed no versions: {out.strip()[-200:]!r}") from None
    if probe.get("machine") != spec.arch.name:
        raise DassEdgeError(f"the board's Python reports machine {probe.get('machine')!r}, not {spec.arch.name}")
    make_keys(work / "ssh")
    info = {"name": spec.target, "target": spec.target, "arch": spec.arch.name, "debian_arch": spec.arch.debian,
            "suite": spec.suite, "mirror": mirror, "qemu": tools["qemu"], "wheels": list(spec.wheels), **probe,
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (work / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _replace(new: Path, final: Path) -> None:
    """Put ``new`` at ``final``; an older build is stopped, moved aside and removed only afterwards."""
    if final.exists():
        stop(final / "ssh")
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.rename(final, old)
        os.rename(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, final)


def remove(name: str) -> bool:
    """Stop and delete the emulated board ``name``; False when it was not built."""
    folder = board_folder(name)
    if not folder.is_dir():
        return False
    stop(folder / "ssh")
    shutil.rmtree(folder)
    return True


def board(name: str) -> Board:
    """The emulated board ``name`` as the inventory gives any board, its sshd started if needed."""
    import getpass

    if read_info(name) is None:
        raise InputError(f"emulated board {name} is not built in {boards_dir()}; build it with: "
                         f"dass-edge boards emulate {name}")
    folder = board_folder(name)
    port = ensure_running(folder / "ssh")
    return Board(name=name + SUFFIX, host="127.0.0.1", port=port, user=getpass.getuser(),
                 key=folder / "ssh" / USER_KEY, python=str(folder / "python"),
                 known_hosts=folder / "ssh" / KNOWN_HOSTS, run_timeout_s=EMULATED_RUN_TIMEOUT_S,
                 workdir=tempfile.gettempdir(), emulated=True, exec_prefix=str(read_info(name)["qemu"]),
                 runtime_device="CPU")  # qemu-user emulates the board's CPU only: its GPU is not there


def run_model(name: str, model: Path, runtime: str, inputs):  # (np.ndarray, np.ndarray) -> np.ndarray
    """Outputs of ``model`` on the emulated board ``name`` for each of ``inputs`` (stacked batch-1 inputs),
    loaded by the runner as a board loads it: a parity check in the board's own runtime build."""
    import numpy as np

    from dass_edge.runtimes.process import ProcessSession
    if read_info(name) is None:
        raise InputError(f"emulated board {name} is not built; build it with: dass-edge boards emulate {name}")
    session = ProcessSession(runtime, "board", (str(board_folder(name) / "python"),), model, "NCHW",
                             f"emulated {name}", timeout_s=EMULATED_RUN_TIMEOUT_S)
    return np.stack(session.run_all(list(inputs)))
