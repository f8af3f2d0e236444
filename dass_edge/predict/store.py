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

from dass_edge.atomic import sha256_file, swap_dir
from dass_edge.errors import DownloadError, InputError
from dass_edge.predict import integrity

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


def _check_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        raise InputError(f"predictor name {name!r} must be a plain folder name (no '/', not starting with '.')")
    return name


def _check_archive(archive: Path, sha256: str | None) -> str:
    """The archive's sha256, after checking it against ``sha256`` (if given) and every member's CRC."""
    digest = sha256_file(archive)
    if sha256 is not None and digest != sha256.strip().lower():
        raise InputError(f"{archive} has sha256 {digest}, not the expected {sha256}: damaged or not the "
                         "published file")
    if not zipfile.is_zipfile(archive):
        raise InputError(f"{archive} is neither a folder nor a zip file (a truncated download?)")
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        bad = str(exc)
    if bad is not None:
        raise InputError(f"{archive} is damaged ({bad} fails its integrity check)")
    return digest


def add(path: str | os.PathLike, name: str | None = None, sha256: str | None = None) -> Path:
    """Copy a predictor zip or folder into the store (checked by loading it); returns its new folder.

    ``sha256``: the zip's expected digest. The zip's own digest is recorded in the predictor's metadata."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source} does not exist")
    origin = {"added_from": str(source.resolve())}
    if source.is_dir():
        if sha256 is not None:
            raise InputError(f"--sha256 checks a zip file; {source} is a folder")
        root = _find_root(source)
        return _install(root, name or root.name, origin)
    return _add_archive(source, name or source.stem, sha256, origin)


def _add_archive(archive: Path, name: str, sha256: str | None, origin: dict[str, Any]) -> Path:
    digest = _check_archive(archive, sha256)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        return _install(_find_root(Path(tmp)), name,
                        {**origin, "archive_sha256": digest, "archive_sha256_pinned": sha256 is not None})


def _install(root: Path, name: str, origin: dict[str, Any]) -> Path:
    """Load ``root`` (refusing what would fail later, or run code), copy it next to its place in the store,
    record checksums, then swap it in: the predictor it replaces stays whole until the copy is complete."""
    from dass_edge.predict.nnmeter import load_predictors

    _check_name(name)
    load_predictors(root)
    store = store_dir()
    store.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.adding.", dir=store))
    try:
        # raw measurements stay behind; a calibrate resume point is not part of a predictor
        shutil.copytree(root, staging, ignore=shutil.ignore_patterns("samples", ".*"), dirs_exist_ok=True)
        integrity.seal(staging, origin)
        swap_dir(staging, store / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("added predictor %s", store / name)
    return store / name


def describe(folder: Path) -> dict[str, Any]:
    """A store entry as ``predictors list`` and ``predictors add --json`` show it."""
    meta = integrity.read_metadata(folder)
    row = {"name": folder.name, "path": str(folder), "kernels": sorted(p.stem for p in folder.glob("*.pkl")),
           "source": meta.get("made_by", "nn-Meter release" if folder.name in RELEASED else "added"),
           "device": meta.get("device"), "sha256": meta.get("sha256")}
    if "archive_sha256" in meta:
        row["archive_sha256"] = meta["archive_sha256"]
    return row


def list_predictors() -> list[dict[str, Any]]:
    """Every predictor in the store: name, folder, kernel types, where it came from, its checksums."""
    root = store_dir()
    folders = sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    return [describe(folder) for folder in folders if _is_predictor_dir(folder)]


def load(folder: Path) -> Any:
    """A predictor folder's PredictorDir; one kept in the store must carry checksums, and they must match."""
    from dass_edge.predict.nnmeter import load_predictors

    in_store = store_dir().is_dir() and folder.resolve().parent == store_dir().resolve()
    return load_predictors(folder, require_checksums=in_store)


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


def download(name: str, timeout_s: float = 30.0, sha256: str | None = None) -> Path:
    """Fetch one of nn-Meter's released predictors into the store. nn-Meter publishes no digests, so
    without ``sha256`` the zip is checked for integrity (every member's CRC) and its digest recorded."""
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
                                f"`dass-edge predictors add {name}.zip`") from None
        return _add_archive(zip_path, name, sha256, {"url": url})
