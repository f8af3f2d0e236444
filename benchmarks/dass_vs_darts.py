"""The paper's central claim on data that runs here: DASS (searched here) against sparse DARTS (DARTS-V2).

    .venv/bin/python benchmarks/dass_vs_darts.py --data mnist5k fashion-mnist --sparsity 0.99 --seeds 0 1 2

For every data set and seed: one DASS search at the sparsity (pretrain, then prune with the sparsity-aware
alpha steps); then three genotypes trained alike at the preset's network size, sparsity and schedule:
``dass`` (alphas after pruning: sparse ops + sparsity-aware objective, "Op+Ob" of Fig. 3), ``dass-op``
(alphas after pretraining only: sparse ops alone, "Op") and ``darts-v2`` (the published DARTS cells,
"sparse DARTS"). Prints one row per run and a markdown table: mean and std of test accuracy, non-zero
weights and wall time. Every number is measured in this run; nothing is cached between runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from dass_edge import checkpoint
from dass_edge.search.presets import get_preset, parse_per_step
from dass_edge.workflows import DataChoice, run_search, run_train


def _genotype_file(search_ckpt: Path, out: Path) -> Path:
    path = out / f"{search_ckpt.stem}-genotype.json"
    path.write_text(checkpoint.load(search_ckpt).spec.genotype.to_json())
    return path


def _train(arch: str, data: DataChoice, preset, sparsity: float, out: Path, seed: int) -> dict:
    start = time.perf_counter()
    model = checkpoint.load(run_train(arch, data, preset, sparsity, out, None, seed))
    summary = checkpoint.summary(model, out)
    return {"test_accuracy": model.test_accuracy, "nonzero": summary["nonzero_params"],
            "alive": (model.health or {}).get("input_dependent"), "seconds": time.perf_counter() - start}


def run(data_name: str, preset, sparsity: float, seed: int, ablation: bool) -> list[dict]:
    data = DataChoice(data_name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        search = run_search(data, preset, sparsity, out, seed, resume=False)
        search_s = time.perf_counter() - start
        archs = {"dass": f"dass:{_genotype_file(search, out)}", "darts-v2": "darts-v2"}
        if ablation:
            archs["dass-op"] = f"dass:{_genotype_file(out / 'search-pretrain.pt', out)}"
        for label, arch in archs.items():
            row = {"data": data_name, "sparsity": sparsity, "seed": seed, "model": label,
                   **_train(arch, data, preset, sparsity, out / label, seed)}
            if label != "darts-v2":
                row["search_seconds"] = search_s
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["data"], row["sparsity"], row["model"])].append(row)
    lines = ["| data | sparsity | model | seeds | test accuracy (mean ± std) | non-zero weights | train s |",
             "|---|---|---|---|---|---|---|"]
    for (data, sparsity, model), group in sorted(groups.items()):
        acc = [r["test_accuracy"] for r in group]
        std = f" ± {100 * statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
        lines.append(f"| {data} | {sparsity:g} | {model} | {len(group)} | {100 * statistics.mean(acc):.1f}%{std} | "
                     f"{statistics.mean(r['nonzero'] for r in group):,.0f} | "
                     f"{statistics.mean(r['seconds'] for r in group):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", help="PRETRAIN,PRUNE,FINETUNE epochs (overrides the preset)")
    parser.add_argument("--data", nargs="+", default=["mnist5k"])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.99])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-ablation", action="store_true", help="skip the 'sparse ops alone' genotype")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    parser.add_argument("--table-from", type=Path, help="only print the table of rows saved by --json")
    args = parser.parse_args()
    if args.table_from:
        print(_table(json.loads(args.table_from.read_text())))
        return
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    if args.epochs:
        preset = preset.with_overrides(parse_per_step(args.epochs, "--epochs"))
    print(f"preset {preset.name}: {preset.train_cells} cells x {preset.train_channels} channels, "
          f"{preset.train_samples} training images, allocation {preset.allocation}, {args.threads} threads")
    rows: list[dict] = []
    for data in args.data:
        for sparsity in args.sparsity:
            for seed in args.seeds:
                rows += run(data, preset, sparsity, seed, not args.no_ablation)
                if args.json:  # after every seed, so an interrupted run keeps what it measured
                    args.json.write_text(json.dumps(rows, indent=2))
    print(_table(rows))


if __name__ == "__main__":
    main()
