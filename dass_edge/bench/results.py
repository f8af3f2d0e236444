"""Append bench results to a JSON Lines file: one object per line, so reports can read a history later
and concurrent CI steps appending to the same file never corrupt each other's lines.

A result timed on an emulated board carries ``emulated: true``: it shows that the board's own runtime
build loads and runs the model, and its timings are printed, but they measure the emulator, so no gate,
baseline or Pareto report may use them (``emulated_error``, ``is_emulated``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dass_edge.errors import InputError


EMULATED = "emulated"


def is_emulated(result: dict[str, Any]) -> bool:
    return result.get(EMULATED) is True


def emulated_error(where: str, use: str) -> InputError:
    """The one-line refusal when a timing from the emulated board ``where`` would become ``use``."""
    return InputError(f"timings on {where} are measured under emulation and cannot be {use}; "
                      "measure on the real board for that")


def append_result(path: Path, result: dict[str, Any]) -> None:
    """One line per result, with a UTC timestamp; written with a single O_APPEND write."""
    record = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result}
    line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """Every result in the file, oldest first; a damaged line names its number."""
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{path}:{number} is not a JSON line") from None
