"""Data sets: bundled MNIST, Fashion-MNIST, CIFAR-10 batches, image folders, and offline downloads."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dass_edge.data.datasets import load_dataset, search_split
from dass_edge.data.download import download_cifar10
from dass_edge.errors import DownloadError, InputError


def test_mnist5k_is_bundled_padded_and_shuffled():
    data = load_dataset("mnist5k")
    assert data.input_shape == (1, 32, 32)
    assert len(data.x_train) == 4000 and len(data.x_test) == 1000
    assert set(data.y_train[:200].tolist()) == set(range(10))  # shuffled, not sorted by label
    assert abs(float(data.x_train.mean())) < 1e-3 and abs(float(data.x_train.std()) - 1) < 1e-2
    again = load_dataset("mnist5k")
    assert torch.equal(again.y_train, data.y_train)  # deterministic


def test_fashion_mnist_from_debian_package():
    data = load_dataset("fashion-mnist", image_size=28)
    assert data.input_shape == (1, 28, 28)
    assert len(data.x_train) == 60000 and len(data.x_test) == 10000
    assert data.classes[0] == "t-shirt"


def test_search_split_is_two_disjoint_halves():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    (xt, yt), (xv, yv) = search_split(x, y)
    assert len(xt) == len(xv) == 5 and not set(yt.tolist()) & set(yv.tolist())


def _write_cifar(root, n=20):
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_cifar10_from_folder_or_parent(tmp_path):
    folder = _write_cifar(tmp_path)
    for where in (folder, tmp_path):
        data = load_dataset("cifar10", where)
        assert data.input_shape == (3, 32, 32) and len(data.x_train) == 40 and len(data.x_test) == 20


def test_cifar10_refuses_code_in_a_data_file(tmp_path):
    folder = _write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(InputError, match="refusing"):
        load_dataset("cifar10", folder)


def test_missing_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "nope")
    with pytest.raises(InputError, match="no cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(InputError, match="unknown data set"):
        load_dataset("imagenet")


def test_image_folder_holds_out_a_fifth(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    data = load_dataset("folder", tmp_path, image_size=16)
    assert data.classes == ("cat", "dog")
    assert data.input_shape == (3, 16, 16)
    assert len(data.x_train) == 16 and len(data.x_test) == 4


def test_cifar10_download_offline_is_one_clear_error(tmp_path, monkeypatch):
    # a closed port on this machine stands in for "no internet": the real download code runs and fails
    monkeypatch.setattr("dass_edge.data.download.CIFAR10_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DownloadError, match="could not download .* fetch it by hand"):
        download_cifar10(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written
