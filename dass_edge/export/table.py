"""One checkpoint exported for many targets and precisions, summed up as one table: a row per file.

Each row says whether the file was written (or why not, in one line), its size, the non-zero weights it
holds, its test accuracy and top-1 agreement with PyTorch in the board's runtime, and, for targets whose
device is this machine, its batch-1 latency. The latencies of one table come from one interleaved run
(every file timed in turn, round after round), so fp32 and int8 of one runtime compare fairly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dass_edge import runtimes
from dass_edge.errors import DassEdgeError
from dass_edge.targets import RUNTIMES_OF_FORMAT, Target

ALL = "all"
TABLE_ROUNDS = 15  # interleaved rounds of 20+ runs per file: tens of microseconds need many samples


@dataclass(frozen=True)
class Row:
    target: str
    format: str
    precision: str
    status: str  # "ok", "host runtime only", "dead" or "refused: <why>"
    size_bytes: int | None = None
    nonzero_weights: int | None = None
    test_accuracy: float | None = None
    agreement: float | None = None
    latency_ms: float | None = None
    path: str | None = None
    exit_code: int = 0  # a refusal's DassEdgeError.exit_code (README: exit codes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def precisions_of(target: Target, precision: str | None) -> tuple[str, ...]:
    """The precisions to export ``target`` at: ``all`` of its own, one named, or its default (None)."""
    if precision == ALL:
        return target.precisions
    return (precision or target.precision,)


def export_all(checkpoint: Path, out: Path, targets: list[Target], precision: str | None = None, *,
               compact: bool = True, allow_dead: bool = False, timed: bool = True) -> list[Row]:
    """Export ``checkpoint`` for every target at each precision asked, a refusal becoming a row; then time
    the files this machine can run (``timed``). A dead network raises before anything is exported."""
    from dass_edge.export.conversions import ConversionCache
    from dass_edge.export.pipeline import admit, export_checkpoint

    conversions = ConversionCache()
    health = admit(checkpoint, allow_dead)  # a dead network: one error, not a table of them
    rows: list[Row] = []
    for target in targets:
        for wanted in precisions_of(target, precision):
            try:
                manifest = export_checkpoint(checkpoint, target, out, compact=compact, allow_dead=allow_dead,
                                             precision=wanted, conversions=conversions, health=health).to_dict()
            except DassEdgeError as exc:
                rows.append(refused(target, wanted, exc))
                continue
            rows += rows_of(manifest)
    return time_rows(rows, targets) if timed else rows


def refused(target: Target, precision: str, exc: DassEdgeError) -> Row:
    """The row of an export that wrote nothing: its files are written together or not at all, so the row
    names every format it would have written."""
    from dass_edge.export import formats_at
    from dass_edge.export.pipeline import at_precision

    try:
        formats = "+".join(formats_at(at_precision(target, precision)))
    except DassEdgeError:  # a precision the target does not run
        formats = target.format
    return Row(target.name, formats, precision, f"refused: {_one_line(exc)}", exit_code=exc.exit_code)


def rows_of(manifest: dict[str, Any]) -> list[Row]:
    """A row per format of one export, from its manifest."""
    folder = Path(manifest["path"])
    rows = []
    for fmt, model_file in manifest["model_files"].items():
        checks = [c for c in manifest["checks"] if c["file"] == model_file] or [{}]
        first = checks[0]  # the board runtime's check comes first (Target.runtimes_for)
        status = ("dead" if manifest["dead"] else "ok" if all(c.get("passed") for c in checks)
                  else "host runtime only")
        rows.append(Row(manifest["target"], fmt, manifest["precision"], status,
                        sum(manifest["size_bytes"][f] for f in manifest["format_files"][fmt]),
                        manifest["weights"][fmt]["nonzero_weights"],
                        first.get("test_accuracy"), first.get("top1_agreement"), None, str(folder / model_file)))
    return rows


def time_rows(rows: list[Row], targets: list[Target]) -> list[Row]:
    """Batch-1 latency (median ms, one thread) of every row whose target runs on this machine, all timed in
    one interleaved run; other rows unchanged."""
    from dass_edge.export.choice import time_interleaved

    local = {t.name for t in targets if t.latency_source == "local" and t.runtime_device.upper() == "CPU"}
    picked = [i for i, row in enumerate(rows) if row.target in local and row.path and row.status != "dead"]
    sessions = []
    for i in picked:
        runtime = RUNTIMES_OF_FORMAT[rows[i].format][0]
        sessions.append(runtimes.load(rows[i].path, runtime, threads=1))
    medians = time_interleaved(sessions, TABLE_ROUNDS) if sessions else []
    timed = list(rows)
    for i, median in zip(picked, medians):
        timed[i] = replace(rows[i], latency_ms=round(median, 4))
    return timed


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
