"""Downloads for users who are online; offline they fail with one line that says what to fetch by hand."""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from dass_edge.atomic import sha256_file
from dass_edge.errors import DownloadError

log = logging.getLogger(__name__)

CIFAR10_URL = os.environ.get("DASS_EDGE_CIFAR10_URL", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
# The published archive's digest (as pinned by other loaders; torchvision pins its md5,
# c58f30108f718f92721af3b95e74349a). A mirror set by DASS_EDGE_CIFAR10_URL must serve the same file.
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def fetch(url: str, dest: Path, timeout_s: float = 30.0, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically (a partial file never takes the final name), refusing a
    file whose digest is not ``sha256``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            shutil.copyfileobj(response, out)
        digest = sha256_file(tmp)
        if sha256 is not None and digest != sha256:
            raise DownloadError(f"{url} gave a file with sha256 {digest}, not the published {sha256} (damaged or "
                                f"replaced); fetch it by hand, check it and put it in {dest.parent}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not download {url} ({reason}); fetch it by hand and put it in {dest.parent}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def download_cifar10(data_dir: Path) -> Path:
    """Fetch and unpack CIFAR-10 (python version) into ``data_dir/cifar-10-batches-py``."""
    target = data_dir / "cifar-10-batches-py"
    if (target / "test_batch").is_file():
        return target
    archive = fetch(CIFAR10_URL, data_dir / "cifar-10-python.tar.gz", sha256=CIFAR10_SHA256)
    with tarfile.open(archive) as tar:
        tar.extractall(data_dir, filter="data")
    log.info("CIFAR-10 unpacked in %s", target)
    return target
