"""The predictor store and the predict/calibrate/predictors commands, driven through Typer's runner."""

from __future__ import annotations

import json
import socket
import zipfile

import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.predict import calibrate, store

runner = CliRunner()


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.fixture(scope="module")
def small_predictor(tmp_path_factory):
    return calibrate.calibrate("intel-cpu", tmp_path_factory.mktemp("p") / "intel-cpu", samples=4, progress=False)


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_is_one_line(store_env, monkeypatch):
    monkeypatch.setenv(store.URL_ENV, f"http://127.0.0.1:{_closed_port()}/data")
    result = runner.invoke(app, ["predictors", "download", "adreno640gpu_tflite21"])
    assert result.exit_code == 6
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "adreno640gpu_tflite21.zip" in lines[0] and "predictors add" in lines[0]
    assert "Traceback" not in result.output


def test_add_a_zip_like_nn_meters_and_list(store_env, small_predictor, tmp_path):
    archive = tmp_path / "my-cpu.zip"
    with zipfile.ZipFile(archive, "w") as z:  # nn-Meter's zips hold one folder named after the predictor
        for f in small_predictor.iterdir():
            if f.is_file():
                z.write(f, f"my-cpu/{f.name}")
    result = runner.invoke(app, ["predictors", "add", str(archive)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["predictors", "list", "--json"])
    rows = json.loads(listed.output)
    assert [r["name"] for r in rows] == ["my-cpu"]
    assert set(rows[0]["kernels"]) == set(calibrate.sampling.KERNEL_TYPES)


def test_add_refuses_a_folder_without_predictors(store_env, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["predictors", "add", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "0 predictor folders" in result.output


def test_predict_missing_released_predictor_says_what_to_fetch(store_env, tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    result = runner.invoke(app, ["predict", str(onnx_file), "--device", "adreno640"])
    assert result.exit_code == 2
    assert "adreno640gpu_tflite21.zip" in result.output and "predictors add" in result.output


def test_predict_a_trained_dass_checkpoint(store_env, small_predictor, trained_checkpoint):
    from dass_edge.predict.service import predict_for_bench
    from dass_edge.targets import get_target

    store.add(small_predictor, "intel-cpu")
    ckpt = trained_checkpoint("dass")
    result = runner.invoke(app, ["predict", str(ckpt), "--device", "intel-cpu", "--json", "--strict"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["median_ms"] > 0 and data["latency_source"] == "predicted"
    assert data["kernels_predicted"] == data["kernels_found"] > 10 and data["coverage_macs"] == 1.0
    assert data["test_accuracy"] is not None
    bench = predict_for_bench(ckpt, get_target("intel-cpu"))
    for field in ("device", "runtime", "median_ms", "model", "predictor", "kernels_found", "kernels_predicted",
                  "coverage_macs", "test_accuracy"):
        assert field in bench
    assert bench["median_ms"] == pytest.approx(data["median_ms"])


def test_has_predictor_follows_the_store(store_env, small_predictor):
    from dass_edge.predict.service import has_predictor

    assert not has_predictor("intel-cpu") and not has_predictor("adreno640")
    store.add(small_predictor, "intel-cpu")
    assert has_predictor("intel-cpu") and not has_predictor("adreno640")
