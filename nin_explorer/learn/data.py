"""Give me a data set by name: the front door to the catalogue, `shapes`, downloads and folders.

Every data set comes back as uint8 tensors (N, C, H, W) with int64 labels, so the training
loop never sees PIL images or torchvision objects. `dataset_info` and the catalogue need no
torch: the loaders (and torch) are imported only when images are asked for.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nin_explorer.learn.catalogue import CATALOGUE, DATASETS, FOLDER_PREFIX, DatasetInfo
from nin_explorer.base.places import cache_folder

if TYPE_CHECKING:
    import torch

Progress = Callable[[float, str], None]


class DataError(Exception):
    """A data set cannot be found, fetched or read; the message says what to do instead."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a data set: uint8 images (N, C, H, W) and int64 labels (N,)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


def default_root() -> Path:
    """The data directory: $NIN_EXPLORER_DATA, else data/ in the cache folder."""
    if os.environ.get("NIN_EXPLORER_DATA"):
        return Path(os.environ["NIN_EXPLORER_DATA"]).expanduser()
    return cache_folder() / "data"


def _root_path(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


def _record(name: str) -> DatasetInfo:
    if name in CATALOGUE:
        return CATALOGUE[name]
    valid = ", ".join(DATASETS)
    raise DataError(f"Unknown data set {name!r}; choose one of {valid}, or folder:<folder under the data directory>.")


def dataset_info(name: str, root: str | os.PathLike | None = None) -> DatasetInfo:
    """Channels, image size, classes and counts of `name` without loading or generating the images.

    For `folder:` data sets this lists the folder and reads image headers only.
    """
    if name.startswith(FOLDER_PREFIX):
        from nin_explorer.learn.folders import scan_folder
        return scan_folder(name, _root_path(root), channels=None, image_size=None).info
    return _record(name)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    train: bool = True,
    progress: Progress | None = None,
    *,
    channels: int | None = None,
    image_size: int | None = None,
    bad_files: str = "refuse",
) -> Dataset:
    """Load one split of a data set, downloading or generating it into `root` on first use.

    `progress(fraction, message)` is called while downloading, generating or reading files.
    `channels` (1 or 3) and `image_size` apply to `folder:` data sets only: by default a folder's
    images become grayscale or RGB by majority, at 28 px (grayscale) or 32 px (RGB); `bad_files`
    ("refuse" or "skip", folders.BAD_FILES) says what a folder's unreadable files do.
    """
    report = progress or (lambda fraction, message: None)
    root = _root_path(root)
    if name.startswith(FOLDER_PREFIX):
        from nin_explorer.learn.folders import load_folder
        return load_folder(name, root, train, report, channels, image_size, bad_files)
    if channels is not None or image_size is not None:
        raise DataError(f"channels and image_size apply to folder: data sets only, not {name!r}.")
    info = _record(name)
    if info.source == "shapes":
        from nin_explorer.learn.shapes import load_shapes
        return load_shapes(info, root, train, report)
    from nin_explorer.learn.downloads import load_torchvision
    return load_torchvision(info, root, train, report)


def is_local(name: str, root: str | os.PathLike | None = None) -> bool:
    """True when `name` can be loaded without the network (already downloaded, or offline by design)."""
    if name.startswith(FOLDER_PREFIX):
        return True
    root = _root_path(root)
    return all((root / file).is_file() for file in _record(name).downloaded_files)
