"""A predictor file is data: a pickle that asks for anything but estimators and arrays is refused unrun."""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.errors import InputError
from dass_edge.predict import legacy_pickle, nnmeter, store

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


class _Shell:
    """What a hostile .pkl does: its reduction calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _OpenFile:
    """...or opens (creates) a file with builtins.open."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _stack_global(module: str, name: str, arg: str) -> bytes:
    """Protocol-4 bytes for ``module.name(arg)``, with a dotted ``name`` pickle itself would resolve."""
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    return b"\x80\x04" + text(module) + text(name) + b"\x93" + text(arg) + b"\x85R."


def _hostile_folder(tmp_path: Path, payload: object) -> Path:
    """A folder in nn-Meter's layout: one genuine old-scikit-learn predictor, and one hostile .pkl."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    shutil.copy(FIXTURES / "legacy_predictor" / "fusion_rules.json", folder)
    shutil.copy(FIXTURES / "legacy_predictor" / "relu.pkl", folder)
    (folder / "conv-bn-relu.pkl").write_bytes(pickle.dumps(payload, protocol=2))
    return folder


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.mark.parametrize("kind", ["os.system", "open"])
def test_hostile_pickle_is_refused_by_predictors_add_and_runs_nothing(kind, tmp_path, store_env):
    marker = tmp_path / "created-by-the-pickle"
    payload = _Shell(f"touch {marker}") if kind == "os.system" else _OpenFile(marker)
    folder = _hostile_folder(tmp_path, payload)
    result = runner.invoke(app, ["predictors", "add", str(folder), "--name", "evil"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing ")
    assert ("posix.system" if kind == "os.system" else "io.open") in lines[0]
    assert "conv-bn-relu.pkl" in lines[0]
    assert not marker.exists()
    assert not store_env.exists() or not any(store_env.iterdir())
    assert runner.invoke(app, ["predictors", "list", "--json"]).output.strip() == "[]"
    pickle.loads((folder / "conv-bn-relu.pkl").read_bytes())  # plain pickle: the payload is real
    assert marker.exists()


def test_hostile_object_inside_a_real_forest_is_refused(tmp_path):
    """The check covers every object in the file, not just the top one."""
    marker = tmp_path / "created"
    forest = legacy_pickle.load(FIXTURES / "legacy_forest.pkl")
    forest.notes = _Shell(f"touch {marker}")
    with pytest.raises(InputError, match="posix.system"):
        legacy_pickle.loads(pickle.dumps(forest, protocol=4), "forest.pkl")
    assert not marker.exists()


def test_dotted_names_cannot_reach_through_an_allowed_package(tmp_path):
    """sklearn.utils._testing imports os: a dotted name there would resolve to os.system."""
    module = "sklearn.utils._testing"
    assert importlib.import_module(module).os.system is os.system  # so the bytes below are a real attack
    marker = tmp_path / "created"
    with pytest.raises(InputError, match=r"sklearn\.utils\._testing\.os\.system"):
        legacy_pickle.loads(_stack_global(module, "os.system", f"touch {marker}"), "dotted.pkl")
    assert not marker.exists()


def test_a_damaged_pickle_is_one_line():
    data = (FIXTURES / "legacy_forest.pkl").read_bytes()
    with pytest.raises(InputError, match="cut.pkl is not a readable predictor pickle") as info:
        legacy_pickle.loads(data[: len(data) // 2], "cut.pkl")
    assert "\n" not in str(info.value)


def test_a_pickle_of_something_else_is_not_a_predictor(tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    shutil.copy(FIXTURES / "legacy_predictor" / "fusion_rules.json", folder)
    (folder / "relu.pkl").write_bytes(pickle.dumps(np.arange(3)))  # allowed types, but no regressor
    with pytest.raises(InputError, match="relu.pkl holds a ndarray, not a regressor"):
        nnmeter.load_predictors(folder)


def test_the_real_fixtures_still_load_through_the_restriction():
    forest = legacy_pickle.load(FIXTURES / "legacy_forest.pkl")
    assert type(forest).__name__ == "RandomForestRegressor"
    predictors = nnmeter.load_predictors(FIXTURES / "legacy_predictor")
    assert set(predictors.models) == {"avgpool", "bn", "concat", "conv-bn-relu", "dwconv-bn-relu", "maxpool", "relu"}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_current_estimators_in_every_protocol_pass(protocol):
    """Random states (a RandomState object as random_state) and protocol-5 buffers are allowed too."""
    from sklearn.ensemble import ExtraTreesRegressor

    x = np.random.default_rng(0).random((30, 3))
    model = ExtraTreesRegressor(n_estimators=3, random_state=np.random.RandomState(0)).fit(x, x[:, 0])
    loaded = legacy_pickle.loads(pickle.dumps(model, protocol=protocol))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
