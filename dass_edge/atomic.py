"""Whole-file and whole-folder publishing and file digests, for outputs that must never be seen half-written.

A file is written under a temporary name in its own folder, then renamed over the destination.

A folder is built complete under a temporary name next to its destination (same file system), then
swapped in. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call: a reader sees the old folder or
the new one, never neither. Elsewhere (or on a file system without it) the old folder is renamed aside
first, so there is a moment without one, but the old folder is only deleted once the new one is in place.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``path`` through a temporary file in its folder and a rename: readers see the old file or the new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot (not Linux, old kernel or libc)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_dir(new: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Put the complete folder ``new`` at ``dest``, replacing a folder there as a whole; ``new`` is gone after."""
    new, dest = Path(new), Path(dest)
    if not dest.exists():
        os.replace(new, dest)
        return
    if _exchange(new, dest):
        shutil.rmtree(new)  # now the old folder
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
    os.replace(dest, aside / dest.name)
    try:
        os.replace(new, dest)
    except OSError:
        os.replace(aside / dest.name, dest)
        raise
    shutil.rmtree(aside)
