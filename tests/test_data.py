import gzip
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nin_explorer import data
from nin_explorer.data import DATASETS, SHAPE_CLASSES, DataError, dataset_info, load_dataset, make_shapes

# --- shapes ---


def test_shapes_same_bytes_for_a_seed_on_any_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = make_shapes(1500, seed=7)
        torch.set_num_threads(2)
        two = make_shapes(1500, seed=7)
        assert torch.get_num_threads() == 2  # the caller's setting is left as it was
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.images, two.images) and torch.equal(one.labels, two.labels)
    assert not torch.equal(one.images, make_shapes(1500, seed=8).images)


@pytest.mark.parametrize("hard", [False, True])
def test_shapes_are_uint8_balanced_and_use_the_range(hard):
    sample = make_shapes(2000, seed=0, hard=hard)
    assert sample.images.shape == (2000, 1, 28, 28) and sample.images.dtype == torch.uint8
    assert sample.labels.dtype == torch.int64
    assert torch.bincount(sample.labels, minlength=10).tolist() == [200] * 10
    assert sample.images.max() > 200 and sample.images.float().mean() < 80  # bright shapes on a dark ground
    # the centre moves over the whole free range: position is what a linear model cannot handle
    assert sample.centers.min() < 6 and sample.centers.max() > 21
    assert ((sample.centers - sample.radii[:, None] >= -0.5) & (sample.centers + sample.radii[:, None] <= 27.5)).all()


def test_shape_pixels_are_brightest_near_the_shape():
    # class evidence is local: the shape's disc holds more ink than the same area elsewhere
    sample = make_shapes(500, seed=1)
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="xy"), dim=-1)  # (H, W, 2)
    inside = (grid[None] - sample.centers[:, None, None]).norm(dim=-1) <= sample.radii[:, None, None]
    pixels = sample.images[:, 0].float()
    mean_inside = (pixels * inside).sum((1, 2)) / inside.sum((1, 2))
    mean_outside = (pixels * ~inside).sum((1, 2)) / (~inside).sum((1, 2))
    assert (mean_inside > mean_outside).float().mean() > 0.95


def test_hard_shapes_are_smaller():
    assert make_shapes(500, 0, hard=True).radii.mean() < make_shapes(500, 0).radii.mean() - 1


def test_shapes_cache_round_trip(tmp_path, monkeypatch):
    calls, real = [], data.make_shapes
    monkeypatch.setattr(data, "make_shapes", lambda *a, **k: calls.append(a) or real(*a, **k))
    messages = []
    test = load_dataset("shapes", root=tmp_path, train=False, progress=lambda f, m: messages.append((f, m)))
    assert len(calls) == 2 and [f for f, _ in messages] == [0.0, 1.0]
    assert [p.name for p in (tmp_path / "shapes").iterdir()] == [f"shapes-v{data._SHAPES_VERSION}-seed0.pt"]

    again = load_dataset("shapes", root=tmp_path, train=False)
    train = load_dataset("shapes", root=tmp_path, train=True)
    assert len(calls) == 2, "the second load must come from the cache"
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    assert torch.equal(test.images, real(10_000, data.SHAPES_SEED + 1).images)
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.classes == list(SHAPE_CLASSES) and test.name == "shapes"


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_EXPLORER_DATA", str(tmp_path / "mine"))
    assert data.default_root() == tmp_path / "mine"
    monkeypatch.delenv("NIN_EXPLORER_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.default_root() == tmp_path / "cache" / "nin-explorer" / "data"


# --- names and info ---


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(DataError) as error:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(error.value)
    with pytest.raises(DataError, match="choose one of"):
        dataset_info("imagenet")


def test_info_without_loading():
    assert set(DATASETS) == {"fashion-mnist", "mnist", "kmnist", "cifar10", "shapes", "shapes-hard"}
    for name in DATASETS:
        info = dataset_info(name)
        assert info.n_classes == 10 and info.name == name
        assert str(info.image_size) in DATASETS[name] and str(info.channels) in DATASETS[name]
    assert (dataset_info("cifar10").channels, dataset_info("cifar10").image_size) == (3, 32)
    assert (dataset_info("shapes-hard").channels, dataset_info("shapes-hard").image_size) == (1, 28)
    assert dataset_info("shapes").classes[:4] == ("circle", "square", "triangle", "cross")


def test_class_names_match_torchvision():
    import torchvision.datasets as tvd

    assert list(dataset_info("fashion-mnist").classes) == tvd.FashionMNIST.classes
    assert list(dataset_info("kmnist").classes) == tvd.KMNIST.classes


def test_folder_options_are_refused_for_builtin_sets():
    with pytest.raises(DataError, match="folder: data sets only"):
        load_dataset("shapes", channels=3)


# --- torchvision sets, without the network ---


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
    assert data.is_local(name, tmp_path)
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
    assert not data.is_local("fashion-mnist", tmp_path)


def test_silent_server_times_out_instead_of_hanging(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts connections, never answers
        port = server.getsockname()[1]
        monkeypatch.setattr(tvd.CIFAR10, "url", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
        monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 0.5)
        start = time.perf_counter()
        with pytest.raises(DataError, match="^Downloading CIFAR-10 failed"):
            load_dataset("cifar10", root=tmp_path)
    assert time.perf_counter() - start < 5
    assert socket.getdefaulttimeout() is None  # restored


# --- a user's folder ---


def write_images(directory: Path, count: int, mode: str = "RGB", size=(40, 30)) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new(mode, size, color=(i * 20, 100, 200) if mode == "RGB" else i * 20).save(directory / f"{i:02d}.png")


def test_folder_loads_classes_and_holds_out_a_fifth(tmp_path):
    write_images(tmp_path / "pets" / "cat", 5)
    write_images(tmp_path / "pets" / "dog", 10)
    (tmp_path / "pets" / "dog" / "notes.txt").write_text("not an image")
    info = dataset_info("folder:pets", root=tmp_path)
    assert (info.channels, info.image_size, info.classes) == (3, 32, ("cat", "dog"))
    assert (info.n_train, info.n_test) == (12, 3)
    train = load_dataset("folder:pets", root=tmp_path)
    test = load_dataset("folder:pets", root=tmp_path, train=False)
    assert train.images.shape == (12, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0] * 4 + [1] * 8 and test.labels.tolist() == [0, 1, 1]
    assert train.images[0, :, 5, 5].tolist() == [0, 100, 200]  # RGB order, channels first


def test_folder_channels_by_majority_or_by_argument(tmp_path):
    write_images(tmp_path / "digits" / "a", 4, mode="L")
    write_images(tmp_path / "digits" / "b", 3, mode="L")
    write_images(tmp_path / "digits" / "b", 1, mode="RGB", size=(50, 50))
    gray = load_dataset("folder:digits", root=tmp_path)
    assert gray.images.shape[1:] == (1, 28, 28)
    rgb = load_dataset("folder:digits", root=tmp_path, channels=3, image_size=16)
    assert rgb.images.shape[1:] == (3, 16, 16)
    with pytest.raises(DataError, match="channels must be 1"):
        load_dataset("folder:digits", root=tmp_path, channels=2)


def test_folder_with_train_and_test_subfolders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        write_images(tmp_path / "set" / split / "x", count)
        write_images(tmp_path / "set" / split / "y", count)
    assert load_dataset("folder:set", root=tmp_path).labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert load_dataset("folder:set", root=tmp_path, train=False).labels.tolist() == [0, 0, 1, 1]


@pytest.fixture
def outside(tmp_path):
    """A data root and, beside it, a folder of images that must never be read."""
    root = tmp_path / "root"
    write_images(tmp_path / "secret" / "a", 2)
    write_images(tmp_path / "secret" / "b", 2)
    root.mkdir()
    return root


@pytest.mark.parametrize("name", ["folder:../secret", "folder:sub/../../secret", "folder:/etc", "folder:"])
def test_folder_paths_escaping_the_root_are_refused(outside, name):
    (outside / "sub").mkdir()
    with pytest.raises(DataError):
        load_dataset(name, root=outside)
    with pytest.raises(DataError):
        dataset_info(name, root=outside)


def test_symlinks_out_of_the_root_are_refused(outside):
    (outside / "link").symlink_to(outside.parent / "secret")
    with pytest.raises(DataError, match="outside the data directory"):
        load_dataset("folder:link", root=outside)

    write_images(outside / "mine" / "a", 2)
    (outside / "mine" / "b").symlink_to(outside.parent / "secret" / "b")  # a class folder
    with pytest.raises(DataError, match="outside the data directory"):
        load_dataset("folder:mine", root=outside)

    (outside / "mine" / "b").unlink()
    write_images(outside / "mine" / "b", 2)
    (outside / "mine" / "b" / "x.png").symlink_to(outside.parent / "secret" / "a" / "00.png")  # one file
    with pytest.raises(DataError, match="outside the data directory"):
        load_dataset("folder:mine", root=outside)


def test_missing_or_unreadable_folders_say_so(tmp_path):
    with pytest.raises(DataError, match="No folder"):
        load_dataset("folder:nothing", root=tmp_path)
    write_images(tmp_path / "one" / "only", 2)
    with pytest.raises(DataError, match="one subfolder per class"):
        load_dataset("folder:one", root=tmp_path)
    write_images(tmp_path / "bad" / "a", 2)
    write_images(tmp_path / "bad" / "b", 1)
    (tmp_path / "bad" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="Cannot read broken.png"):
        load_dataset("folder:bad", root=tmp_path)
