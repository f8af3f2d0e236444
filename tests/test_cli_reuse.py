"""`bench CHECKPOINT` reuses an earlier export only when what the export was made from matches by content:
the checkpoint's bytes, the target's settings, compaction and the toolkit version (the manifest's
reuse_key), and the exported file is intact. Paths and timestamps alone decide nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dass_edge import checkpoint
from dass_edge.bench.service import BenchRequest, admit, resolve_model
from dass_edge.export.pipeline import MANIFEST, export_checkpoint, export_key, toolkit_version
from dass_edge.targets import get_target

TARGET = "jetson-tx2"


@pytest.fixture
def setup(tiny_checkpoints, tmp_path):
    ckpt = shutil.copy(tiny_checkpoints["alive"], tmp_path / "m.pt")
    exported = tmp_path / "exported"
    return Path(ckpt), exported, exported / "m" / TARGET / MANIFEST


def _bench(ckpt: Path, exported: Path):
    request, target = BenchRequest(model=ckpt, device=TARGET, export_dir=exported), get_target(TARGET)
    return resolve_model(request, target, admit(request, target))


def _stamp(manifest: Path) -> int:
    return manifest.stat().st_mtime_ns


def test_the_manifest_records_the_key(setup):
    ckpt, exported, manifest = setup
    made = export_checkpoint(ckpt, TARGET, exported, compact=False)
    key = json.loads(manifest.read_text())["reuse_key"]
    assert key == made.reuse_key == export_key(ckpt, get_target(TARGET), compact=False)
    assert key["compacted"] is False and key["toolkit_version"] == toolkit_version() != "unknown"
    assert key["target"] == TARGET and len(key["checkpoint_sha256"]) == 64


def test_a_no_compact_export_is_not_measured_as_the_deployed_one(setup):
    ckpt, exported, manifest = setup
    export_checkpoint(ckpt, TARGET, exported, compact=False)
    _bench(ckpt, exported)
    assert json.loads(manifest.read_text())["compacted"] is True  # exported again, compacted


def test_reuse_follows_content_not_timestamps(setup):
    ckpt, exported, manifest = setup
    first = _bench(ckpt, exported)
    stamp = _stamp(manifest)

    os.utime(ckpt)  # newer checkpoint file, same bytes: still the same network
    assert _bench(ckpt, exported).path == first.path and _stamp(manifest) == stamp

    changed = checkpoint.load(ckpt)
    stem_weight = next(k for k in changed.state_dict if k.endswith("weight"))
    changed.state_dict[stem_weight] = changed.state_dict[stem_weight] * 1.5
    checkpoint.save(changed, ckpt)
    old = manifest.stat().st_mtime - 10
    os.utime(ckpt, (old, old))  # other bytes, yet older than the export: an mtime rule would reuse it
    _bench(ckpt, exported)
    assert _stamp(manifest) != stamp
    assert json.loads(manifest.read_text())["reuse_key"] == export_key(ckpt, get_target(TARGET), compact=True)


@pytest.mark.parametrize("tamper", ["toolkit_version", "target_sha256", "file"])
def test_a_stale_or_damaged_export_is_made_again(setup, tamper):
    ckpt, exported, manifest = setup
    first = _bench(ckpt, exported)
    if tamper == "file":
        first.path.write_bytes(first.path.read_bytes() + b"\0")
    else:
        data = json.loads(manifest.read_text())
        data["reuse_key"][tamper] = "something else"
        manifest.write_text(json.dumps(data))
    stamp = _stamp(manifest)
    again = _bench(ckpt, exported)
    assert _stamp(manifest) != stamp
    assert json.loads(manifest.read_text())["reuse_key"] == export_key(ckpt, get_target(TARGET), compact=True)
    assert again.path.read_bytes() != b"" and again.path == first.path
