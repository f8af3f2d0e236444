"""The latency history file: an SQLite database with one row per bench run (``bench --history FILE``).

Why SQLite (the standard library's sqlite3) and not another JSON Lines file: CI keeps the history between
runs as one artifact or on the runner's disk, several jobs on one runner append to it at once (SQLite
locks the file for each insert), and the trend page reads a device's series with one query. A row keeps
the figures a trend needs in columns and the whole bench result as JSON beside them, so a later feature
(per-operator profiles) finds its data in old rows. The file is data: nothing in it is ever executed,
and a file that is not a dass-edge history is refused, not altered.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dass_edge.bench.results import is_emulated
from dass_edge.errors import InputError

SCHEMA_VERSION = 1
TABLE = "runs"
LOCK_TIMEOUT_S = 30.0  # another job's insert holds the file for milliseconds; a stuck one fails this one
COLUMNS = {  # name -> SQLite type; the order of the table
    "time": "TEXT NOT NULL", "commit_id": "TEXT", "model": "TEXT NOT NULL", "model_hash": "TEXT",
    "device": "TEXT NOT NULL", "runtime": "TEXT", "runtime_version": "TEXT", "latency_source": "TEXT",
    "host": "TEXT", "env_fingerprint": "TEXT", "median_ms": "REAL NOT NULL", "p90_ms": "REAL", "p99_ms": "REAL",
    "min_ms": "REAL", "mean_ms": "REAL", "count": "INTEGER", "peak_memory_bytes": "INTEGER", "decision": "TEXT",
    "method": "TEXT", "ratio": "REAL", "ratio_ci_low": "REAL", "ratio_ci_high": "REAL", "tolerance": "REAL",
    "reference_median_ms": "REAL", "result_json": "TEXT NOT NULL",
}
# The environment fields whose change makes two runs different machines (the fingerprint hashes them).
FINGERPRINT_FIELDS = ("cpu", "cores", "machine", "os", "python")
FINGERPRINT_RESULT_FIELDS = ("runtime", "runtime_version", "runtime_device", "threads")


@dataclass(frozen=True)
class Run:
    """One history row. ``commit`` is None where the run did not know it; ``decision`` where nothing gated."""

    id: int
    time: str
    commit: str | None
    model: str
    device: str
    median_ms: float
    decision: str | None
    columns: dict[str, Any] = field(default_factory=dict)  # every stored column, by name
    result: dict[str, Any] = field(default_factory=dict)  # the bench result as recorded

    @property
    def series(self) -> tuple[str, str]:
        return self.device, self.model


def env_fingerprint(result: dict[str, Any]) -> str | None:
    """A short hash of the machine and runtime a run saw, or None when the result recorded no environment
    (a prediction). Equal fingerprints: the same CPU, OS, Python, runtime version, device and threads."""
    env = result.get("env")
    if not isinstance(env, dict) or not env:
        return None
    facts = {k: env.get(k) for k in FINGERPRINT_FIELDS} | {k: result.get(k) for k in FINGERPRINT_RESULT_FIELDS}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_hash(result: dict[str, Any]) -> str | None:
    """SHA-256 (16 hex digits) of the model file the run measured, when it is still there."""
    path = Path(str(result.get("model") or ""))
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def row_from_result(result: dict[str, Any], commit: str | None, when: datetime | None = None) -> dict[str, Any]:
    """The row for one bench result dict (``dass-edge bench --json``'s contract)."""
    if is_emulated(result):
        raise InputError("timings measured under emulation cannot be recorded in a latency history; measure on "
                         "the real board for that")
    if result.get("median_ms") is None:
        raise InputError("a bench result without median_ms cannot be recorded in a latency history")
    when = when or datetime.now(timezone.utc)
    row = {"time": when.astimezone(timezone.utc).isoformat(timespec="seconds"), "commit_id": commit,
           "model": str(result.get("model_key") or Path(str(result.get("model", "model"))).stem),
           "model_hash": model_hash(result), "env_fingerprint": env_fingerprint(result),
           "reference_median_ms": result.get("reference_median_ms", result.get("baseline_median_ms")),
           "result_json": json.dumps(result, sort_keys=True, default=str)}
    for name in COLUMNS:
        row.setdefault(name, result.get(name))
    return row


@contextmanager
def _connect(path: Path, create: bool) -> Iterator[sqlite3.Connection]:
    """A connection to a checked history file; ``create`` makes the file and its table when absent."""
    if not create and not path.is_file():
        raise InputError(f"history {path} does not exist")
    if path.is_dir():
        raise InputError(f"history {path} is a folder, not a file")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(sqlite3.connect(path, timeout=LOCK_TIMEOUT_S)) as db:
            _check_schema(db, path, create)
            yield db
    except sqlite3.DatabaseError as exc:
        raise InputError(f"history {path} is not a dass-edge history (SQLite: {exc})") from None


def _check_schema(db: sqlite3.Connection, path: Path, create: bool) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and not tables and create:
        with db:
            db.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                       + ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items()) + ")")
            db.execute(f"CREATE INDEX {TABLE}_series ON {TABLE} (device, model, time)")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if version != SCHEMA_VERSION or TABLE not in tables:
        raise InputError(f"{path} is not a dass-edge latency history (schema {SCHEMA_VERSION})")
    present = {r[1] for r in db.execute(f"PRAGMA table_info({TABLE})")}
    if not set(COLUMNS) <= present:
        raise InputError(f"history {path} lacks column(s) {', '.join(sorted(set(COLUMNS) - present))}")


def git_commit(folder: Path = Path(".")) -> str | None:
    """The commit checked out in ``folder`` (``git rev-parse HEAD``); None outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def check_writable(path: Path) -> None:
    """Before measuring: the history opens (or can be created) and is a dass-edge history."""
    with _connect(path, create=True):
        pass


def append(path: Path, result: dict[str, Any], commit: str | None = None, when: datetime | None = None) -> int:
    """Add one bench result to the history file (created on first use); the new row's id."""
    row = row_from_result(result, commit, when)
    with _connect(path, create=True) as db, db:
        cursor = db.execute(f"INSERT INTO {TABLE} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            list(row.values()))
        return int(cursor.lastrowid)


def read(path: Path, device: str | None = None, model: str | None = None) -> list[Run]:
    """The runs in ``path`` (optionally one device and/or model), oldest first."""
    where, args = [], []
    for name, value in (("device", device), ("model", model)):
        if value is not None:
            where.append(f"{name} = ?")
            args.append(value)
    query = f"SELECT * FROM {TABLE}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY time, id"
    with _connect(path, create=False) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute(query, args)]
    return [_run(r, path) for r in rows]


def _run(row: dict[str, Any], path: Path) -> Run:
    try:
        result = json.loads(row["result_json"])
    except (TypeError, ValueError):
        raise InputError(f"history {path} row {row['id']} holds a damaged result") from None
    return Run(id=row["id"], time=row["time"], commit=row["commit_id"], model=row["model"], device=row["device"],
               median_ms=float(row["median_ms"]), decision=row["decision"], columns=row,
               result=result if isinstance(result, dict) else {})


def series(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    """The runs grouped by (device, model), each oldest first."""
    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.series, []).append(run)
    return grouped
