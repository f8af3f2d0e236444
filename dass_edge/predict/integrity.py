"""Checksums of a predictor folder: recorded in its metadata.json when it is made or added, checked on load.

They catch a file changed, damaged, swapped or added after the fact (a partial copy, a hand edit, a
``.pkl`` dropped in later), with one line naming the file. They are not a signature: whoever can rewrite
a ``.pkl`` can rewrite metadata.json too; what keeps a hostile pickle from running code is the
restricted unpickler (legacy_pickle.py), applied on every load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dass_edge.atomic import sha256_file
from dass_edge.errors import InputError

METADATA = "metadata.json"
# What loading a predictor reads, besides metadata.json itself (which holds the digests).
CHECKED = ("*.pkl", "fusion_rules.json")


def digests(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file a load reads, by file name."""
    folder = Path(folder)
    return {p.name: sha256_file(p) for pattern in CHECKED for p in sorted(folder.glob(pattern)) if p.is_file()}


def read_metadata(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / METADATA
    if not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise InputError(f"{path} does not hold a JSON object")
    return metadata


def seal(folder: str | os.PathLike, extra: dict[str, Any]) -> dict[str, Any]:
    """Add ``extra`` and the folder's current digests to its metadata.json (for a folder not yet published)."""
    metadata = {**read_metadata(folder), **extra, "sha256": digests(folder)}
    (Path(folder) / METADATA).write_text(json.dumps(metadata, indent=2))
    return metadata


def verify(folder: str | os.PathLike, recorded: Any) -> None:
    """Raise InputError naming the first file whose digest differs from ``recorded`` (or that is missing
    or unrecorded)."""
    if not isinstance(recorded, dict):
        raise InputError(f"{Path(folder) / METADATA}: 'sha256' is not a table of file digests")
    actual = digests(folder)
    for name in sorted(set(actual) | set(recorded)):
        if name not in actual:
            problem = "is missing"
        elif name not in recorded:
            problem = "was added after its checksums were recorded"
        elif actual[name] != recorded[name]:
            problem = "does not match its recorded sha256 (changed or damaged)"
        else:
            continue
        raise InputError(f"predictor {folder}: {name} {problem}; add or calibrate it again")
