"""A user's own images: an ImageFolder layout (one subfolder per class) under the data root.

Only files under the root are read (symlinks and `..` are resolved first); each image is checked
and decoded by images.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from nin_explorer.learn.catalogue import FOLDER_PREFIX, DatasetInfo
from nin_explorer.learn.data import Dataset, DataError, Progress
from nin_explorer.learn.images import GRAY_MODES, IMAGE_EXTENSIONS, ImageError, image_to_tensor, open_image


@dataclass(frozen=True)
class _Folder:
    info: DatasetInfo
    train_files: list[tuple[Path, int]]
    test_files: list[tuple[Path, int]]


def _inside(path: Path, root: Path, shown: str) -> Path:
    """`path` with symlinks and `..` resolved, refused if that leaves `root`."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise DataError(f"{shown!r} leads outside the data directory {root}; only files under it are read.")
    return resolved


def _folder_path(name: str, root: Path) -> Path:
    relative = name[len(FOLDER_PREFIX) :]
    if not relative or Path(relative).is_absolute() or Path(relative).drive:
        raise DataError(f"Give the folder as a path relative to the data directory {root}, e.g. folder:my-images.")
    folder = _inside(root / relative, root.resolve(), relative)
    if not folder.is_dir():
        raise DataError(f"No folder {relative!r} in the data directory {root}.")
    return folder


def _class_files(directory: Path, root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(directory):  # does not follow symlinked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.lower().endswith(IMAGE_EXTENSIONS) and not filename.startswith("."):
                path = Path(dirpath) / filename
                files.append(_inside(path, root, os.path.relpath(path, root)))
    return files


def _class_dirs(folder: Path, root: Path) -> list[tuple[str, Path]]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [(p.name, _inside(p, root, os.path.relpath(p, root))) for p in dirs]


def scan_folder(name: str, root: Path, channels: int | None, image_size: int | None) -> _Folder:
    """The classes and files of folder:<path> under `root`, image headers read only.

    train/ and test/ subfolders if both exist, else every fifth image of each class is held out;
    by default grayscale or RGB by majority, at 28 px (grayscale) or 32 px (RGB).
    """
    real_root = root.resolve()
    folder = _folder_path(name, root)
    has_split = (folder / "train").is_dir() and (folder / "test").is_dir()
    train_dirs = _class_dirs(folder / "train" if has_split else folder, real_root)
    classes = [class_name for class_name, _ in train_dirs]
    if len(classes) < 2:
        raise DataError(f"Folder {name[len(FOLDER_PREFIX):]!r} needs one subfolder per class (at least two).")
    train_files, test_files = [], []
    for label, (_, directory) in enumerate(train_dirs):
        files = _class_files(directory, real_root)
        if has_split:
            train_files += [(f, label) for f in files]
        else:
            train_files += [(f, label) for i, f in enumerate(files) if i % 5 != 4]
            test_files += [(f, label) for i, f in enumerate(files) if i % 5 == 4]
    if has_split:
        for class_name, directory in _class_dirs(folder / "test", real_root):
            if class_name not in classes:
                raise DataError(f"Test class {class_name!r} of {name!r} has no train folder.")
            test_files += [(f, classes.index(class_name)) for f in _class_files(directory, real_root)]
    if not train_files:
        raise DataError(f"Folder {name[len(FOLDER_PREFIX):]!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")

    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}.")
    if channels is None:
        gray = 0
        for path, _ in train_files + test_files:  # headers only: Image.open does not decode pixels
            with _open_image(path) as image:
                gray += image.mode in GRAY_MODES
        channels = 1 if 2 * gray > len(train_files) + len(test_files) else 3
    size = image_size or (28 if channels == 1 else 32)
    if not 8 <= size <= 256:
        raise DataError(f"image_size must be between 8 and 256 pixels, not {size}.")
    info = DatasetInfo(name, folder.name, "your images", channels, size, tuple(classes), len(train_files),
                       len(test_files))
    return _Folder(info, train_files, test_files)


def _open_image(path: Path):
    try:
        return open_image(path)  # reads the header only
    except ImageError as error:
        raise DataError(f"Cannot read {path.name}: {error}") from None


def load_folder(
    name: str, root: Path, train: bool, report: Progress, channels: int | None, image_size: int | None
) -> Dataset:
    """One split of folder:<path>; `channels` and `image_size` as `scan_folder` decides them."""
    scanned = scan_folder(name, root, channels, image_size)
    info, files = scanned.info, scanned.train_files if train else scanned.test_files
    size = info.image_size
    images = torch.empty(len(files), info.channels, size, size, dtype=torch.uint8)
    for i, (path, _) in enumerate(files):
        if i % 500 == 0:
            report(i / len(files), f"Reading images {i:,}/{len(files):,}")
        try:
            images[i] = image_to_tensor(path, info.channels, size)
        except ImageError as error:
            raise DataError(f"Cannot read {path.name}: {error}") from None
    report(1.0, f"Read {len(files):,} images")
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return Dataset(name, images, labels, list(info.classes))
