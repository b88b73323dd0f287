"""Fetching the catalogue's torchvision sets: torchvision's own code, with a timeout, as uint8 tensors."""
from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import torch

from nin_explorer.learn.catalogue import DatasetInfo
from nin_explorer.learn.data import Dataset, DataError, Progress

DOWNLOAD_TIMEOUT_S = 10.0


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    # torchvision's urlopen calls pass no timeout; without one an unreachable mirror can hang for minutes
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def load_torchvision(info: DatasetInfo, root: Path, train: bool, report: Progress) -> Dataset:
    """One split of `info` from torchvision.datasets, downloaded into `root` if it is not there."""
    import torchvision.datasets  # imported here: it costs a second and `shapes` does not need it

    dataset_class = getattr(torchvision.datasets, info.torchvision_class)
    try:
        found = dataset_class(str(root), train=train, download=False)
    except RuntimeError:  # not downloaded yet
        report(0.0, f"Downloading {info.title} ({info.download_mb} MB) into {root} ...")
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                found = dataset_class(str(root), train=train, download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError; torchvision wraps mirror failures
            raise DataError(
                f"Downloading {info.title} failed (no network?); use the built-in offline data set 'shapes' instead."
            ) from error
    report(1.0, f"{info.title} ready")
    if isinstance(found.data, torch.Tensor):  # MNIST family: (N, H, W) uint8
        images = found.data.unsqueeze(1)
    else:  # CIFAR-10: numpy (N, H, W, C) uint8
        images = torch.from_numpy(found.data).permute(0, 3, 1, 2)
    labels = torch.as_tensor(found.targets, dtype=torch.int64)
    return Dataset(info.name, images.contiguous(), labels, list(info.classes))
