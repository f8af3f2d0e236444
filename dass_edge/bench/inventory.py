"""Where attached boards are and how to log in: read from the USER's inventory file, never from the repo.

Addresses, user names and key paths are personal and often secret, so the repository only knows device
names (targets/*.toml); this file maps a board name to its SSH details. Default location:
``$DASS_EDGE_INVENTORY`` or ``$XDG_CONFIG_HOME/dass-edge/boards.toml`` (``~/.config/...``)::

    [boards.jetson-tx2]          # the name: --board, or the --device name by default
    host = "192.168.1.20"
    user = "nvidia"
    port = 22
    key = "~/.ssh/id_ed25519"    # private key file; default: ssh-agent and ~/.ssh/id_*
    python = "/usr/bin/python3"  # the board's Python (3.6+) with numpy and one runtime
    known_hosts = "~/.ssh/known_hosts"
    connect_timeout_s = 10
    run_timeout_s = 600
    workdir = "/tmp"             # where a temporary folder for the model and agent is made, and the lock
                                 # file (bench/lock.py): hosts that share the board must agree on it
    emulated = false             # true: a CPU emulator, not the board (timings never gate or reach reports)
    runtime_device = "CPU"       # optional: the board lacks the target's default device (a TX2 without
                                 # onnxruntime-gpu); --runtime-device still overrides it
    # place = "tx2-rack1"        # instead of host: a labgrid place, acquired for each bench (its
    # coordinator = "lab:20408"  # NetworkService gives address, username and port; bench/labgrid_place.py)

Command-line options override the file field by field. A board built by ``dass-edge boards emulate NAME``
(bench/emulate.py) needs no entry: ``NAME-emulated`` resolves to it, its loopback sshd started on demand.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from dass_edge.bench import emulate
from dass_edge.bench.board import Board
from dass_edge.errors import InputError


_PATH_FIELDS = ("key", "known_hosts")
_FIELDS = {f.name for f in fields(Board)}


def default_inventory() -> Path:
    if os.environ.get("DASS_EDGE_INVENTORY"):
        return Path(os.environ["DASS_EDGE_INVENTORY"]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "dass-edge" / "boards.toml"


def _coerce(name: str, values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - _FIELDS
    if unknown:
        raise InputError(f"board {name}: unknown field(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(_FIELDS - {'name'}))}")
    out = dict(values)
    for key in _PATH_FIELDS:
        if out.get(key) is not None:
            out[key] = Path(str(out[key])).expanduser()
    for key, kind in (("port", int), ("connect_timeout_s", float), ("run_timeout_s", float)):
        if out.get(key) is not None:
            try:
                out[key] = kind(out[key])
            except (TypeError, ValueError):
                raise InputError(f"board {name}: {key} must be a number, not {out[key]!r}") from None
    for key in ("host", "user", "python", "runtime_device", "place", "coordinator", "exec_prefix"):
        if out.get(key) is not None and not isinstance(out[key], str):
            raise InputError(f"board {name}: {key} must be a string, not {out[key]!r}")
    if out.get("emulated") is not None and not isinstance(out["emulated"], bool):
        raise InputError(f"board {name}: emulated must be true or false, not {out['emulated']!r}")
    return out


def load_inventory(path: Path | None = None) -> dict[str, Board]:
    """All boards in the inventory file; an absent default file is an empty inventory."""
    path = path or default_inventory()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"inventory {path} is not readable TOML: {exc}") from None
    boards = {}
    for name, values in (data.get("boards") or {}).items():
        if not isinstance(values, dict) or not ({"host", "place"} & set(values)):
            raise InputError(f"inventory {path}: board {name} needs at least a host (or a labgrid place)")
        boards[name] = Board(name=name, **_coerce(name, values))
    return boards


def resolve_board(name: str, inventory: Path | None = None, **overrides: Any) -> Board:
    """The board called ``name`` from the inventory, with non-None ``overrides`` (e.g. --host) applied.

    A board absent from the inventory is fine when ``host`` is given as an option.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if inventory is not None and not inventory.is_file():
        raise InputError(f"inventory {inventory} does not exist")
    boards = load_inventory(inventory)
    if name in boards:
        return replace(boards[name], **_coerce(name, given))
    if name.endswith(emulate.SUFFIX) and "host" not in given:
        return replace(emulate.board(name.removesuffix(emulate.SUFFIX)), **_coerce(name, given))
    if "host" not in given:
        where = inventory or default_inventory()
        raise InputError(f"no board {name!r} in {where} and no --host given; add a [boards.{name}] entry "
                         "with host, user, key and python")
    return Board(name=name, **_coerce(name, given))
