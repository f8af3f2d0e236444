"""How to reach one board: the value the inventory reads, the emulator builds and the SSH code uses.

Its own module so that both places that make boards (bench/inventory.py from the user's file,
bench/emulate.py for emulated ones) can use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Board:
    """How to reach one board; ``key`` and ``known_hosts`` are paths, never key material."""

    name: str
    host: str = ""  # empty for a labgrid place: its NetworkService says where, once acquired
    user: str | None = None
    port: int = 22
    key: Path | None = None
    python: str = "python3"
    known_hosts: Path | None = None  # None: the user's ~/.ssh/known_hosts
    connect_timeout_s: float = 10.0
    run_timeout_s: float = 600.0
    workdir: str = "/tmp"
    emulated: bool = False  # qemu-user on this machine: runs the board's builds, says nothing of its speed
    runtime_device: str | None = None  # what the board has instead of the target's default (e.g. CPU: no GPU)
    exec_prefix: str = ""  # what runs the board's programs (an emulated board: its qemu-user binary)
    place: str | None = None  # a labgrid place instead of a host (bench/labgrid_place.py)
    coordinator: str | None = None  # its labgrid coordinator, HOST:PORT (default: $LG_COORDINATOR)

    @property
    def destination(self) -> str:
        """``user@host:port`` for messages (no secrets in it)."""
        if self.place and not self.host:
            return f"labgrid place {self.place}"
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"
