"""Where predictor directories live: add a downloaded zip or folder, list them, resolve a name, download.

The store is ``$DASS_EDGE_PREDICTORS`` or ``~/.cache/dass-edge/predictors``; each predictor is a
sub-folder in nn-Meter's layout. nn-Meter's own cache (``~/.nn_meter/data/predictor``) is read only when
the caller asks for it. Downloads fetch nn-Meter's release zips (base URL overridable by
``DASS_EDGE_PREDICTOR_URL``); offline, the error is one line saying what to fetch and where to put it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from dass_edge.errors import DownloadError, InputError

log = logging.getLogger(__name__)

STORE_ENV = "DASS_EDGE_PREDICTORS"
URL_ENV = "DASS_EDGE_PREDICTOR_URL"
DEFAULT_URL = "https://github.com/microsoft/nn-Meter/releases/download/v1.0-data"
# nn-Meter 2.0's released predictors (nn_meter/configs/predictors.yaml).
RELEASED = ("cortexA76cpu_tflite21", "adreno640gpu_tflite21", "adreno630gpu_tflite21", "myriadvpu_openvino2019r2")
NN_METER_CACHE = Path("~/.nn_meter/data/predictor")


def store_dir() -> Path:
    env = os.environ.get(STORE_ENV)
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "dass-edge" / "predictors"
    return base.expanduser()


def _is_predictor_dir(path: Path) -> bool:
    return (path / "fusion_rules.json").is_file() and any(path.glob("*.pkl"))


def _find_root(folder: Path) -> Path:
    """The folder holding fusion_rules.json: the top, or the one sub-folder nn-Meter's zips use."""
    if _is_predictor_dir(folder):
        return folder
    found = [p.parent for p in folder.rglob("fusion_rules.json") if _is_predictor_dir(p.parent)]
    if len(found) != 1:
        raise InputError(f"{folder} holds {len(found)} predictor folders (<kernel>.pkl + fusion_rules.json); "
                         "expected one")
    return found[0]


def add(path: str | os.PathLike, name: str | None = None) -> Path:
    """Copy a predictor zip or folder into the store (checked by loading it); returns its new folder."""
    from dass_edge.predict.nnmeter import load_predictors

    source = Path(path)
    if not source.exists():
        raise InputError(f"{source} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise InputError(f"{source} is neither a folder nor a zip file")
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
            root = _find_root(Path(tmp))
            default_name = source.stem
        else:
            root = _find_root(source)
            default_name = root.name
        load_predictors(root)  # refuse what would fail later
        target = store_dir() / (name or default_name)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, target, ignore=shutil.ignore_patterns("samples"))  # raw measurements stay behind
    log.info("added predictor %s", target)
    return target


def list_predictors() -> list[dict[str, Any]]:
    """Every predictor in the store: name, folder, kernel types, and where it came from."""
    import json

    out = []
    root = store_dir()
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        if not _is_predictor_dir(folder):
            continue
        meta_file = folder / "metadata.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        out.append({"name": folder.name, "path": str(folder), "kernels": sorted(p.stem for p in folder.glob("*.pkl")),
                    "source": meta.get("made_by", "nn-Meter release" if folder.name in RELEASED else "added"),
                    "device": meta.get("device")})
    return out


def resolve(name_or_path: str, use_nn_meter_cache: bool = False) -> Path:
    """A predictor folder from a path, a store name, or (if asked) nn-Meter's cache; else a one-line error."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _find_root(path)
    stored = store_dir() / name_or_path
    if _is_predictor_dir(stored):
        return stored
    cached = NN_METER_CACHE.expanduser() / name_or_path
    if use_nn_meter_cache and _is_predictor_dir(cached):
        return cached
    hint = (f"`dass-edge predictors download {name_or_path}` (online) or fetch {url_for(name_or_path)} and run "
            "`dass-edge predictors add FILE.zip`") if name_or_path in RELEASED else \
        "`dass-edge calibrate` or `dass-edge predictors add PATH`"
    raise InputError(f"no predictor {name_or_path!r} in {store_dir()}; get it with {hint}")


def url_for(name: str) -> str:
    return f"{os.environ.get(URL_ENV, DEFAULT_URL).rstrip('/')}/{name}.zip"


def download(name: str, timeout_s: float = 30.0) -> Path:
    """Fetch one of nn-Meter's released predictors into the store."""
    if name not in RELEASED:
        raise InputError(f"unknown released predictor {name!r}; known: {', '.join(RELEASED)}")
    url = url_for(name)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(zip_path, "wb") as f:
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"could not download {url} ({reason}); fetch it by hand and run "
                                f"`dass-edge predictors add {name}.zip` (or unzip it into {store_dir() / name})") from None
        return add(zip_path, name)
