"""Output folders checked before long work starts, and removed again when a run fails with nothing in them.

A run that trains for an hour and then finds it cannot write its result has wasted the hour; so every
command that writes (search, train, export, demo) asks for its folder first. The check creates the folder
and a probe file in it, because only the operating system knows (permissions, read-only mounts, /proc).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dass_edge.errors import FileSystemError


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()  # fails, and so keeps the folder, when anything was written into it


def ensure_writable(folder: Path) -> list[Path]:
    """Create ``folder`` (and its parents) and check a file can be written in it; returns the folders this
    call created. Raises FileSystemError (exit 8) in one line, leaving nothing behind, when it cannot."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileSystemError(f"output folder {folder} is a file, not a folder")
    created = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dass-edge-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_if_empty(created)
        raise FileSystemError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return created


@contextlib.contextmanager
def output_folder(folder: Path) -> Iterator[Path]:
    """``ensure_writable(folder)`` for the duration of a run: folders it created are removed again if the run
    fails before writing anything into them, so a failed run leaves no empty trace either."""
    created = ensure_writable(folder)
    try:
        yield Path(folder)
    except BaseException:
        _remove_if_empty(created)
        raise
