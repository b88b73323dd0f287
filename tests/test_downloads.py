"""torchvision sets through torchvision's own code, without the network: tiny IDX files written here."""
import gzip
import socket
import struct
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nin_explorer.learn import downloads
from nin_explorer.learn.catalogue import CATALOGUE
from nin_explorer.learn.data import DataError, dataset_info, is_local, load_dataset


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX format: zero, zero, type 0x08 (uint8), number of dims; big-endian sizes; the bytes."""
    payload = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist_like(raw: Path, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for filename, array in arrays.items():
        write_idx(raw / filename, array)
        write_idx(raw / f"{filename}.gz", array, compress=True)  # as a download leaves it
    return arrays


@pytest.mark.parametrize("name, folder", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST"), ("kmnist", "KMNIST")])
def test_idx_files_load_without_download(tmp_path, monkeypatch, name, folder):
    arrays = write_mnist_like(tmp_path / folder / "raw")
    def no_network(*args, **kwargs):
        raise AssertionError("files on disk must not be downloaded again")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert is_local(name, tmp_path)
    train = load_dataset(name, root=tmp_path)
    test = load_dataset(name, root=tmp_path, train=False)
    assert train.images.shape == (5, 1, 28, 28) and train.images.dtype == torch.uint8
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(test.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert test.labels.dtype == torch.int64 and test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert train.classes == list(dataset_info(name).classes) and train.name == name


def test_cifar_becomes_channels_first(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)

    class FakeCIFAR10:  # torchvision's CIFAR10 keeps numpy (N, H, W, C) and a list of ints
        def __init__(self, root, train, download):
            self.data, self.targets = pixels, [3, 1, 4, 1]

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    loaded = load_dataset("cifar10", root=tmp_path)
    assert loaded.images.shape == (4, 3, 32, 32) and loaded.images.is_contiguous()
    assert torch.equal(loaded.images.permute(0, 2, 3, 1), torch.from_numpy(pixels))
    assert loaded.labels.tolist() == [3, 1, 4, 1] and loaded.labels.dtype == torch.int64


DOWNLOAD_FAILED = "Downloading Fashion-MNIST failed (no network?); use the built-in offline data set 'shapes' instead."


def test_failed_download_raises_data_error_quickly(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])  # port 9 refuses at once
    messages = []
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        load_dataset("fashion-mnist", root=tmp_path, progress=lambda f, m: messages.append(m))
    assert time.perf_counter() - start < 5
    assert str(error.value) == DOWNLOAD_FAILED
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")  # one sentence
    assert messages and messages[0].startswith("Downloading Fashion-MNIST")
    assert not is_local("fashion-mnist", tmp_path)


def test_silent_server_times_out_instead_of_hanging(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts connections, never answers
        port = server.getsockname()[1]
        monkeypatch.setattr(tvd.CIFAR10, "url", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
        monkeypatch.setattr(downloads, "DOWNLOAD_TIMEOUT_S", 0.5)
        start = time.perf_counter()
        with pytest.raises(DataError, match="^Downloading CIFAR-10 failed"):
            load_dataset("cifar10", root=tmp_path)
    assert time.perf_counter() - start < 5
    assert socket.getdefaulttimeout() is None  # restored


def test_a_new_torchvision_set_is_one_record(tmp_path, monkeypatch):
    record = replace(CATALOGUE["mnist"], name="digits", title="Digits", download_mb=1)
    monkeypatch.setitem(CATALOGUE, "digits", record)
    assert not is_local("digits", tmp_path)
    arrays = write_mnist_like(tmp_path / "MNIST" / "raw")
    assert is_local("digits", tmp_path) and dataset_info("digits") is record
    loaded = load_dataset("digits", root=tmp_path, train=False)
    assert loaded.name == "digits" and loaded.classes == list(record.classes)
    assert np.array_equal(loaded.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
