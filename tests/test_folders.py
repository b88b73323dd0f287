"""A user's ImageFolder layout under the data root: classes, the held-out fifth, paths kept inside."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from nin_explorer.learn.data import DataError, dataset_info, load_dataset


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
