"""A predictor folder like nn-Meter's released ones (old scikit-learn pickles, no add/split/gap/fc models)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from predict_helpers import export_tiny_dass
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.errors import InputError
from dass_edge.predict import nnmeter, store

RELEASED_LIKE = Path(__file__).parent / "fixtures" / "legacy_predictor"


@pytest.fixture(scope="module")
def dass_onnx(tmp_path_factory):
    return export_tiny_dass(tmp_path_factory.mktemp("onnx") / "darts.onnx")


def test_fixture_is_an_old_pickle():
    with pytest.raises(ValueError, match="incompatible dtype"):
        pickle.loads((RELEASED_LIKE / "conv-bn-relu.pkl").read_bytes())


def test_old_pickles_predict_through_nn_meters_class_with_honest_coverage(dass_onnx):
    predictors = nnmeter.load_predictors(RELEASED_LIKE)
    ours = nnmeter.predict_onnx(dass_onnx, predictors)
    theirs = predictors.nn_meter.predict(str(dass_onnx), model_type="onnx")
    assert ours.latency_ms == pytest.approx(theirs, rel=1e-12)  # same sum: nn-Meter's rows, no extras
    assert not ours.complete and {"add", "split", "global-avgpool", "fc"} <= set(ours.missing_types)
    assert 0 < ours.coverage_macs < 1 and ours.kernels_predicted < ours.kernels_found
    assert ours.by_type["add"]["predicted"] == 0 and ours.by_type["conv-bn-relu"]["ms"] > 0
    with pytest.raises(InputError, match="add"):
        nnmeter.predict_onnx(dass_onnx, predictors, strict=True)


def test_added_as_the_adreno_predictor_serves_the_adreno_target(dass_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    runner = CliRunner()
    assert runner.invoke(app, ["predictors", "add", str(RELEASED_LIKE), "--name", "adreno640gpu_tflite21"]
                         ).exit_code == 0
    result = runner.invoke(app, ["predict", str(dass_onnx), "--device", "adreno640", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["predictor"] == "adreno640gpu_tflite21" and data["latency_source"] == "predicted"
    assert "add" in data["missing_types"] and data["coverage_macs"] < 1
    strict = runner.invoke(app, ["predict", str(dass_onnx), "--device", "adreno640", "--strict"])
    assert strict.exit_code == 2 and "no model for kernels" in strict.output
