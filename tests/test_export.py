"""Round trip of every exporter over the target registry for DASS, DARTS-V2 and MobileNet-v2 at 90%.

Each export runs through the whole pipeline (health -> bake -> export -> parity -> manifest); the test then
loads every written file again in its real runtime and compares it with PyTorch itself, on an input that
moves the output. Targets whose files are made exactly like another target's (same format, precision,
opset, IR) are covered by that target. Networks are alive (conftest.live_checkpoint): a dead one is refused,
see test_health.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import recalibrated, without_c
from dass_edge import checkpoint, health, runtimes
from dass_edge.export import get_exporter
from dass_edge.export.pipeline import MANIFEST, export_checkpoint
from dass_edge.export.tflite import depthwise_count, op_types
from dass_edge.search import sparse
from dass_edge.targets import Target, get_target, load_targets

ARCHS = ("dass", "darts-v2", "mobilenet-v2")
CONTRACT = {"target", "format", "precision", "files", "sha256", "input_shape", "input_layout", "params",
            "nonzero_params", "sparsity", "max_abs_diff", "atol", "top1_agreement", "tools", "test_accuracy",
            "compacted", "compaction", "health", "dead"}


def file_configs(target: Target) -> set[tuple]:
    """The distinct files a target's export writes, as the settings that shape them."""
    main = {(target.format, target.precision, target.opset, target.ir_version)}
    return main | {(fmt, target.precision, None, None) for fmt in target.extra_formats}


def covering_targets() -> list[str]:
    """A small set of targets whose exports together write every kind of file the registry asks for."""
    chosen: list[str] = []
    covered: set[tuple] = set()
    for target in sorted(load_targets().values(), key=lambda t: -len(file_configs(t))):
        if not file_configs(target) <= covered:
            chosen.append(target.name)
            covered |= file_configs(target)
    return sorted(chosen)


def test_covering_targets_cover_the_registry():
    covered = set().union(*(file_configs(load_targets()[name]) for name in covering_targets()))
    assert all(file_configs(t) <= covered for t in load_targets().values())


def _round_trip_cases():
    for arch in ARCHS:
        for target in covering_targets():
            yield pytest.param(arch, target, id=f"{arch}-{target}")


@pytest.mark.parametrize("arch, target", _round_trip_cases())
def test_export_round_trip(live_checkpoint, tmp_path, arch, target):
    path = live_checkpoint(arch)
    manifest = export_checkpoint(path, target, tmp_path).to_dict()
    folder = tmp_path / path.stem / target
    assert CONTRACT <= manifest.keys()
    assert json.loads((folder / MANIFEST).read_text()) == manifest
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"], MANIFEST])
    for name in manifest["files"]:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == manifest["sha256"][name]
    # parity, health and passed checks are what the export itself enforces (it fails otherwise): not
    # re-asserted here; the files are compared with PyTorch again below, by this test
    assert manifest["nonzero_params"] <= 0.11 * manifest["params"] and manifest["compacted"] is True
    # fewer MACs always; stored parameters can grow at 90% on tiny nets (per-position border constants)
    assert manifest["compaction"]["macs_after"] <= manifest["compaction"]["macs_before"]

    ckpt = checkpoint.load(path)
    model = sparse.bake(ckpt.build())
    xs = np.random.default_rng(1).standard_normal((4, *ckpt.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(xs)).numpy()
    # the comparison means something only if the output moves with the input, by more than the tolerance
    assert health.assess(model, torch.from_numpy(xs)).input_dependent
    assert np.ptp(expected, axis=0).max() > 5 * manifest["atol"]  # outputs vary well beyond the tolerance
    known = {runtime.suffix for runtime in runtimes.RUNTIMES.values()}  # an ARM program runs under qemu only
    loadable = [folder / n for n in manifest["model_files"].values() if Path(n).suffix in known]
    for file in loadable:
        session = runtimes.load(file, device="CPU")
        assert session.input_layout == manifest["input_layout"] == "NCHW"
        got = np.concatenate([session.run(xs[i:i + 1]) for i in range(len(xs))])
        np.testing.assert_allclose(got, expected, atol=manifest["atol"], err_msg=file.name)
        if file.suffix == ".tflite":
            assert op_types(file)["DEPTHWISE_CONV_2D"] >= depthwise_count(model) > 0


@pytest.mark.parametrize("target", ["adreno640", "myriad-vpu"])
def test_fp16_exports_follow_input_dependent_outputs(trained_checkpoint, tmp_path, target):
    """MobileNet-v2 at 90% with live activations through the FP16 paths (TFLite, OpenVINO IR v10)."""
    ckpt = checkpoint.load(trained_checkpoint("mobilenet-v2"))
    model = recalibrated(sparse.bake(ckpt.build()), ckpt.input_shape)
    x = np.random.default_rng(2).standard_normal((3, *ckpt.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.ptp(expected, axis=0).max() > 1e-2
    spec = get_target(target)
    (tmp_path / "work").mkdir()
    artifact = get_exporter(spec.format)(model, ckpt.input_shape, spec, tmp_path, tmp_path / "work")
    session = runtimes.load(artifact.model_file, device="CPU")
    got = np.concatenate([session.run(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(got, expected, atol=spec.atol)


def test_no_compact_exports_the_masked_network_densely(live_checkpoint, tmp_path):
    path = live_checkpoint("darts-v2")
    dense = export_checkpoint(path, "jetson-tx2", tmp_path / "dense", compact=False)
    compact = export_checkpoint(path, "jetson-tx2", tmp_path / "compact")
    assert dense.compacted is False and dense.compaction is None
    assert compact.compacted is True and compact.compaction["macs_after"] < compact.compaction["macs_before"]
    # the two files differ (one keeps the pruned channels) yet compute the same function of the input
    dense_file, compact_file = (Path(m.path) / m.files[0] for m in (dense, compact))
    assert dense_file.read_bytes() != compact_file.read_bytes()
    xs = np.random.default_rng(3).standard_normal((3, *checkpoint.load(path).input_shape[1:])).astype(np.float32)
    outputs = [np.concatenate([runtimes.load(f, device="CPU").run(xs[i:i + 1]) for i in range(len(xs))])
               for f in (dense_file, compact_file)]
    assert np.ptp(outputs[0], axis=0).max() > 10 * dense.atol
    np.testing.assert_allclose(outputs[0], outputs[1], atol=2 * dense.atol)


def test_targets_that_ask_for_the_same_file_share_one_conversion(tiny_checkpoints, tmp_path):
    from dass_edge.export.conversions import ConversionCache, conversion_key

    cache = ConversionCache()
    first = export_checkpoint(tiny_checkpoints["alive"], without_c("intel-cpu"), tmp_path, conversions=cache)
    assert cache.hits == 0  # onnx, openvino and tflite: three different files
    second = export_checkpoint(tiny_checkpoints["alive"], without_c("cortex-a76"), tmp_path, conversions=cache)
    assert cache.hits == 1  # the same fp32 TFLite flatbuffer, copied
    # intel-cpu times that file against the masked network's and ships the faster; cortex-a76, timed
    # elsewhere, ships it as converted
    same = second.sha256["model.tflite"] == first.sha256["model.tflite"]
    assert same == (first.forms["tflite"]["chosen"] == second.forms["tflite"]["chosen"] == "compact/1")
    # its own checks, in its board's runtime
    assert second.validation == "pass" and [c["required_runtime"] for c in second.checks] == ["tflite-runtime 2.13.0"]
    # the key follows the weights, not the object: a changed weight converts anew
    model = checkpoint.load(tiny_checkpoints["alive"]).build()
    a76, adreno = get_target("cortex-a76"), get_target("adreno640")
    key = conversion_key(model, (1, 1, 32, 32), a76)
    assert key == conversion_key(model, (1, 1, 32, 32), get_target("cortex-a7"))
    assert key != conversion_key(model, (1, 1, 32, 32), adreno)  # TFLite too, but fp16: another file
    next(model.parameters()).data.add_(1e-3)
    assert key != conversion_key(model, (1, 1, 32, 32), a76)
