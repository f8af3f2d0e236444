"""Export time per target, and file sizes: dense-stored files vs sparse encodings of the same weights.

Every exporter stores pruned weights as dense zeros, so a 99%-sparse network ships at full size. This
prints, per checkpoint and target, the export time (bake, convert, parity check) and the size of the files
as written and gzip-compressed; then, per checkpoint, what the prunable weights take dense (fp32, fp16)
against two sparse encodings: a bitmask plus the non-zero values, and CSR-style int16 index + value pairs.

    .venv/bin/python benchmarks/export_bench.py [CHECKPOINT ...] [--targets intel-cpu,ncs2] [--work DIR]

Without checkpoints, the benchmark networks of benchmarks/_models.py are trained once (smoke schedule).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dass_edge import checkpoint as ckpt_io  # noqa: E402
from dass_edge.errors import DassEdgeError  # noqa: E402
from dass_edge.export.pipeline import export_checkpoint  # noqa: E402
from dass_edge.search import sparse  # noqa: E402
from dass_edge.targets import load_targets  # noqa: E402


def weight_sizes(path: Path) -> dict[str, int]:
    """Bytes of the prunable weights under each storage scheme."""
    total = nonzero = 0
    for layer in sparse.sparse_layers(ckpt_io.load(path).build()):
        weight = layer.effective_weight().detach()
        total += weight.numel()
        nonzero += int(torch.count_nonzero(weight))
    return {"weights": total, "nonzero": nonzero, "dense fp32": 4 * total, "dense fp16": 2 * total,
            "bitmask+fp32": (total + 7) // 8 + 4 * nonzero, "bitmask+fp16": (total + 7) // 8 + 2 * nonzero,
            "csr int16+fp32": 6 * nonzero}


def export_row(path: Path, target: str, out: Path) -> str:
    started = time.perf_counter()
    try:
        manifest = export_checkpoint(path, target, out)
    except DassEdgeError as exc:
        return f"{path.stem:24} {target:11} failed: {exc}"
    seconds = time.perf_counter() - started
    folder = Path(manifest.path)
    size = sum(manifest.size_bytes.values())
    zipped = sum(len(gzip.compress((folder / f).read_bytes())) for f in manifest.files)
    return (f"{path.stem:24} {target:11} {seconds:8.1f} s {size / 1024:10.1f} KiB {zipped / 1024:10.1f} KiB  "
            f"max diff {manifest.max_abs_diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--targets", default=",".join(load_targets()), help="comma-separated target names")
    parser.add_argument("--work", type=Path, default=None, help="where exports (and trained models) go")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="export-bench-"))
    paths = args.checkpoints
    if not paths:
        from _models import checkpoints

        paths = list(checkpoints(work).values())

    print(f"{'checkpoint':24} {'target':11} {'export':>10} {'files':>14} {'gzip':>14}")
    for path in paths:
        for target in args.targets.split(","):
            print(export_row(path, target, work / "exported"), flush=True)
    print()
    columns = ("weights", "nonzero", "dense fp32", "dense fp16", "bitmask+fp32", "bitmask+fp16", "csr int16+fp32")
    print(f"{'checkpoint':24} " + " ".join(f"{c:>14}" for c in columns) + "   (bytes, prunable weights only)")
    for path in paths:
        sizes = weight_sizes(path)
        print(f"{path.stem:24} " + " ".join(f"{sizes[c]:>14,}" for c in columns))


if __name__ == "__main__":
    main()
