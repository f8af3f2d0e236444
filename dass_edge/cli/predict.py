"""`dass-edge predict`, `dass-edge calibrate` and `dass-edge predictors add|list|download`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dass_edge.cli.options import JsonFlag, Seed, emit

predictors_app = typer.Typer(help="Latency predictors (nn-Meter layout): add a downloaded one, list, download.",
                             no_args_is_help=True)


def _print_prediction(result: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]{result['device']}[/] ({result['predictor']}): predicted {result['median_ms']:.4f} ms, "
                  f"{result['kernels_predicted']}/{result['kernels_found']} kernels predicted, "
                  f"{result['coverage_macs']:.1%} of MACs covered")
    table = Table("kernel", "found", "predicted", "ms")
    for kernel, v in sorted(result["by_type"].items(), key=lambda kv: -kv[1]["ms"]):
        style = "" if v["predicted"] == v["found"] else "red"
        table.add_row(kernel, str(int(v["found"])), str(int(v["predicted"])), f"{v['ms']:.4f}", style=style)
    console.print(table)
    if result["missing_types"]:
        console.print(f"[red]no predictor for: {', '.join(result['missing_types'])} (counted as 0 ms)[/]")


def predict(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or ONNX file.")],
    device: Annotated[str, typer.Option("--device", help="Target name (targets/*.toml), e.g. adreno640.")],
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a prediction with kernels no predictor "
                                         "covers (nn-Meter counts them as 0 ms).")] = False,
    predictor: Annotated[str | None, typer.Option("--predictor", help="Predictor name in the store or a "
                                                  "folder (default: the target's).")] = None,
    nn_meter_cache: Annotated[bool, typer.Option("--nn-meter-cache", help="Also look in nn-Meter's own "
                                                 "cache, ~/.nn_meter/data/predictor.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Predict a model's batch-1 latency on a device with nn-Meter, reporting kernel coverage."""
    from dass_edge.predict.service import predict as run

    emit(run(model, device, strict, predictor, nn_meter_cache), as_json, _print_prediction)


def calibrate(
    device: Annotated[str, typer.Option("--device", help="A target measured here with ONNX Runtime.")] = "intel-cpu",
    samples: Annotated[int, typer.Option("--samples", help="Kernels measured per type (convs x3, depthwise "
                                         "x2). On 2 shared cores here 300 took 4.5 min, 60 (the demo's) 48 s.")] = 300,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Predictor folder (default: the store, "
                                             "under the device's name).")] = None,
    threads: Annotated[int, typer.Option("--threads", help="ONNX Runtime intra-op threads.")] = 1,
    seed: Seed = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard samples already in --out.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Build our own kernel predictors for a device we can measure (resumes an interrupted run)."""
    import json

    from dass_edge.predict.calibrate import calibrate as run
    from dass_edge.predict.store import store_dir

    folder = run(device, out or store_dir() / device, samples=samples, seed=seed, threads=threads, fresh=fresh)
    metadata = json.loads((folder / "metadata.json").read_text())

    def human(meta: dict[str, Any]) -> None:
        table = Table("kernel", "samples", "held-out median error", "within ±10%")
        for kernel, v in meta["held_out"].items():
            err, within = v["median_error"], v["within_10pct"]
            table.add_row(kernel, str(v["samples"]), "-" if err is None else f"{err:.1%}",
                          "-" if within is None else f"{within:.0%}")
        Console().print(table)
        typer.echo(f"predictor: {folder}")

    emit({"predictor": str(folder), **metadata}, as_json, human)


Sha256 = Annotated[str | None, typer.Option("--sha256", help="The zip's expected sha256 (refused if it differs); "
                                            "its digest is recorded either way.")]


def _print_added(row: dict[str, Any]) -> None:
    typer.echo(f"added {row['path']} ({len(row['kernels'])} kernel predictors, checksums recorded"
               + (f"; zip sha256 {row['archive_sha256']})" if "archive_sha256" in row else ")"))


@predictors_app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="A predictor zip (as nn-Meter releases them) or folder.")],
    name: Annotated[str | None, typer.Option("--name", help="Name in the store (default: the zip's or "
                                             "folder's name).")] = None,
    sha256: Sha256 = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a downloaded predictor into the store (checked by loading every kernel model)."""
    from dass_edge.predict.store import add as run
    from dass_edge.predict.store import describe

    emit(describe(run(path, name, sha256)), as_json, _print_added)


@predictors_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """The predictors in the store."""
    from dass_edge.predict.store import list_predictors, store_dir

    def human(rows: list[dict[str, Any]]) -> None:
        if not rows:
            typer.echo(f"no predictors in {store_dir()}")
            return
        table = Table("name", "source", "kernels", "path")
        for row in rows:
            table.add_row(row["name"], row["source"], str(len(row["kernels"])), row["path"])
        Console().print(table)

    emit(list_predictors(), as_json, human)


@predictors_app.command("download")
def download(
    name: Annotated[str, typer.Argument(help="A released nn-Meter predictor, e.g. adreno640gpu_tflite21.")],
    sha256: Sha256 = None,
    as_json: JsonFlag = False,
) -> None:
    """Download one of nn-Meter's released predictors into the store (needs the internet)."""
    from dass_edge.predict.store import describe
    from dass_edge.predict.store import download as run

    emit(describe(run(name, sha256=sha256)), as_json, _print_added)


def register(app: typer.Typer) -> None:
    app.command()(predict)
    app.command()(calibrate)
    app.add_typer(predictors_app, name="predictors")
