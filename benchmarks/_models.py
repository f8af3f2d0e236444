"""The three networks the benchmarks compare, built with the toolkit's own train step and cached.

DASS-Tiny (Table 2: 16 cells, 30 channels) with the genotype of a smoke search, sparse DARTS-V2 at its
published size (20 cells, 36 channels) and a sparse MobileNet-v2 at width 1.0, all at 99% sparsity and
32x32 inputs. Latency depends on the architecture, not on how well it was trained, so the smoke schedule
(one batch per step here) is enough; the checkpoints are real ones, exported by the real pipeline.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from dass_edge.search.presets import PRESETS
from dass_edge.targets import get_target
from dass_edge.workflows import DataChoice, run_search, run_train

log = logging.getLogger("benchmarks")
SPARSITY = 0.99
MODELS = ("dass-tiny", "mobilenet-v2", "darts-v2")


def checkpoints(work: Path, names: tuple[str, ...] = MODELS) -> dict[str, Path]:
    """name -> checkpoint, trained once into ``work`` and reused afterwards."""
    smoke = PRESETS["smoke"]
    preset = replace(smoke, baseline_width=1.0, test_samples=64,  # one batch per step: latency needs no accuracy
                     pretrain=replace(smoke.pretrain, max_batches=1), prune=replace(smoke.prune, max_batches=1),
                     finetune=replace(smoke.finetune, max_batches=1))
    data = DataChoice("mnist5k")
    out: dict[str, Path] = {}
    for name in names:
        folder = work / name
        found = sorted(folder.glob("*.pt")) if folder.is_dir() else []
        if found:
            out[name] = found[0]
            continue
        log.info("training %s (smoke schedule)", name)
        if name == "dass-tiny":
            search = work / "search" / "search.pt"
            if not search.is_file():
                search = run_search(data, preset, SPARSITY, work / "search", seed=0)
            out[name] = run_train(f"dass:{search}", data, preset, SPARSITY, folder, variant="tiny")
        elif name == "darts-v2":
            out[name] = run_train("darts-v2", data, preset, SPARSITY, folder, variant="small")
        else:
            out[name] = run_train(name, data, preset, SPARSITY, folder)
    return out


def exported_files(checkpoint: Path, target_name: str, work: Path, formats: tuple[str, ...] = ()
                   ) -> dict[str, Path]:
    """format -> exported file: the target's formats (main and extra), or only ``formats`` when given
    (the first becomes the main one), each set in its own folder so the exports do not replace each other."""
    from dass_edge.export.pipeline import export_checkpoint
    from dass_edge.targets import RUNTIMES_OF_FORMAT

    target = get_target(target_name)
    if formats:
        target = replace(target, format=formats[0], runtime=RUNTIMES_OF_FORMAT[formats[0]][0],
                         extra_formats=tuple(formats[1:]))
    out = work / ("exported-" + "-".join(formats) if formats else "exported")
    manifest = out / checkpoint.stem / target.name / "manifest.json"
    if manifest.is_file() and manifest.stat().st_mtime >= checkpoint.stat().st_mtime:  # exported earlier
        data = json.loads(manifest.read_text())
        return manifest_files(SimpleNamespace(path=data["path"], files=data["files"]))
    return manifest_files(export_checkpoint(checkpoint, target, out))


def manifest_files(manifest) -> dict[str, Path]:  # noqa: ANN001
    """format -> model file of an export manifest (sidecars such as OpenVINO's .bin are left out)."""
    formats = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite"}
    return {formats[Path(f).suffix]: Path(manifest.path) / f for f in manifest.files if Path(f).suffix in formats}
