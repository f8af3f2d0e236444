"""The predictor store: checksums recorded on add and verified on load, folders swapped whole, --json."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.errors import InputError
from dass_edge.predict import store

RELEASED_LIKE = Path(__file__).parent / "fixtures" / "legacy_predictor"
runner = CliRunner()


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


def _add(name: str = "adreno640gpu_tflite21", source: Path = RELEASED_LIKE) -> dict:
    result = runner.invoke(app, ["predictors", "add", str(source), "--name", name, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _predict_error(store_env: Path, tmp_path: Path) -> list[str]:
    """`predict` with the stored adreno640 predictor: loading it comes before reading the model."""
    model = tmp_path / "unused.onnx"
    model.write_bytes(b"")
    result = runner.invoke(app, ["predict", str(model), "--device", "adreno640"])
    assert result.exit_code == 2, result.output
    return result.output.strip().splitlines()


def test_add_records_a_sha256_per_file_and_reports_it_as_json(store_env):
    row = _add()
    folder = store_env / "adreno640gpu_tflite21"
    assert row["path"] == str(folder) and row["name"] == "adreno640gpu_tflite21"
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in RELEASED_LIKE.iterdir() if p.suffix == ".pkl" or p.name == "fusion_rules.json"}
    assert row["sha256"] == expected and len(expected) == 8
    assert json.loads((folder / "metadata.json").read_text())["sha256"] == expected
    assert store.load(folder).models.keys() == {p[:-4] for p in expected if p.endswith(".pkl")}


@pytest.mark.parametrize("tamper", ["changed", "added", "removed"])
def test_a_tampered_stored_predictor_is_one_line(tamper, store_env, tmp_path):
    _add()
    folder = store_env / "adreno640gpu_tflite21"
    if tamper == "changed":
        data = bytearray((folder / "relu.pkl").read_bytes())
        data[-20] ^= 1  # one bit flipped
        (folder / "relu.pkl").write_bytes(bytes(data))
    elif tamper == "added":
        shutil.copy(folder / "relu.pkl", folder / "add.pkl")
    else:
        (folder / "bn.pkl").unlink()
    lines = _predict_error(store_env, tmp_path)
    assert len(lines) == 1
    file = {"changed": "relu.pkl", "added": "add.pkl", "removed": "bn.pkl"}[tamper]
    problem = {"changed": "does not match its recorded sha256", "added": "was added after",
               "removed": "is missing"}[tamper]
    assert lines[0].startswith(f"error: predictor {folder}: {file} {problem}")


def test_a_stored_predictor_without_checksums_is_refused(store_env, tmp_path):
    _add()
    (store_env / "adreno640gpu_tflite21" / "metadata.json").unlink()
    lines = _predict_error(store_env, tmp_path)
    assert len(lines) == 1 and "has no checksums" in lines[0] and "predictors add" in lines[0]


def test_add_over_an_existing_predictor_keeps_it_when_the_new_one_fails(store_env, tmp_path):
    """The copy fails after the new predictor was checked (a dangling link in the folder): the old one
    stays whole and loadable, and no half-made folder is left in the store."""
    _add()
    folder = store_env / "adreno640gpu_tflite21"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    broken = tmp_path / "broken"
    shutil.copytree(RELEASED_LIKE, broken)
    (broken / "relu.pkl").unlink()
    os.symlink(tmp_path / "nowhere", broken / "notes.txt")
    with pytest.raises(shutil.Error):
        store.add(broken, "adreno640gpu_tflite21")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    store.load(folder)
    assert [p.name for p in store_env.iterdir()] == ["adreno640gpu_tflite21"]


def test_add_replaces_a_predictor_as_a_whole(store_env, tmp_path):
    _add()
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    for name in ("fusion_rules.json", "conv-bn-relu.pkl"):
        shutil.copy(RELEASED_LIKE / name, smaller)
    row = _add(source=smaller)
    assert row["kernels"] == ["conv-bn-relu"]  # nothing of the old predictor is left mixed in
    assert sorted(p.name for p in store_env.iterdir()) == ["adreno640gpu_tflite21"]
    store.load(store_env / "adreno640gpu_tflite21")


@pytest.mark.parametrize("name", ["../outside", ".hidden", "a/b"])
def test_add_refuses_names_that_are_not_plain_folders(name, store_env):
    with pytest.raises(InputError, match="plain folder name"):
        store.add(RELEASED_LIKE, name)
    assert not (store_env.parent / "outside").exists()
