"""Downloads are checked before use: predictor zips (CRC of every member, optional pinned sha256, digest
recorded) and data archives (pinned sha256), served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dass_edge.cli.app import app
from dass_edge.data import download as data_download
from dass_edge.errors import DownloadError
from dass_edge.predict import store

RELEASED_LIKE = Path(__file__).parent / "fixtures" / "legacy_predictor"
NAME = "adreno640gpu_tflite21"
runner = CliRunner()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1; the predictor base URL and the store point at it."""
    root = tmp_path / "www"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # its request log goes to stderr, which the CLI tests read
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(store.URL_ENV, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    yield root
    server.shutdown()
    server.server_close()


def _zip(path: Path) -> bytes:
    """A zip shaped like nn-Meter's releases: one folder named after the predictor."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(RELEASED_LIKE.iterdir()):
            z.write(f, f"{NAME}/{f.name}")
    return path.read_bytes()


def _store_is_empty(tmp_path: Path) -> bool:
    folder = tmp_path / "store"
    return not folder.exists() or not any(folder.iterdir())


def test_download_records_the_zip_digest_and_reports_json(served, tmp_path):
    data = _zip(served / f"{NAME}.zip")
    result = runner.invoke(app, ["predictors", "download", NAME, "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["archive_sha256"] == hashlib.sha256(data).hexdigest()
    assert row["name"] == NAME and len(row["kernels"]) == 7 and len(row["sha256"]) == 8
    meta = json.loads((tmp_path / "store" / NAME / "metadata.json").read_text())
    assert meta["url"].endswith(f"/{NAME}.zip") and meta["archive_sha256_pinned"] is False


def test_download_with_a_pinned_sha256(served, tmp_path):
    data = _zip(served / f"{NAME}.zip")
    wrong = runner.invoke(app, ["predictors", "download", NAME, "--sha256", "0" * 64])
    assert wrong.exit_code == 2 and len(wrong.output.strip().splitlines()) == 1
    assert "not the expected" in wrong.output and _store_is_empty(tmp_path)
    right = runner.invoke(app, ["predictors", "download", NAME, "--sha256", hashlib.sha256(data).hexdigest()])
    assert right.exit_code == 0, right.output
    assert "zip sha256" in right.output


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_download_is_refused_before_use(damage, served, tmp_path):
    data = bytearray(_zip(tmp_path / "good.zip"))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        offset = data.index(b"fusion_rules.json") + len("fusion_rules.json") + 5  # inside the first file's data
        data[offset] ^= 0xFF
    (served / f"{NAME}.zip").write_bytes(bytes(data))
    result = runner.invoke(app, ["predictors", "download", NAME])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and ("truncated" in lines[0] if damage == "truncated" else "damaged" in lines[0])
    assert _store_is_empty(tmp_path)


def test_data_archive_with_the_wrong_digest_never_takes_its_name(served, tmp_path):
    (served / "data.tar.gz").write_bytes(b"not the published archive")
    url = f"{store.url_for('x').rsplit('/', 1)[0]}/data.tar.gz"
    dest = tmp_path / "data" / "data.tar.gz"
    with pytest.raises(DownloadError, match="not the published"):
        data_download.fetch(url, dest, sha256=data_download.CIFAR10_SHA256)
    assert list(dest.parent.iterdir()) == []
    assert data_download.fetch(url, dest, sha256=hashlib.sha256(b"not the published archive").hexdigest()) == dest
