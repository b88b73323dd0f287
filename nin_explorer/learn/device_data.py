"""The images a run trains and tests on, held on the device as uint8 (N, C, H, W).

They are copied to the device once, as uint8 (a quarter of float32's bytes), and each batch is
scaled to [0, 1] and resized there, so a training step never waits for a loader.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from nin_explorer.learn.config import ConfigError
from nin_explorer.net.spec import NetSpec

Batch = tuple[torch.Tensor, torch.Tensor]     # (inputs (B, C, size, size), labels (B,))


def to_input(images: torch.Tensor, size: int, channels_last: bool = False) -> torch.Tensor:
    """uint8 images on the device -> floats in [0, 1] at the size the network takes."""
    x = images.float().div_(255)                                   # (B, C, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < x.shape[-1])            # (B, C, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def check_data(spec: NetSpec, data, what: str) -> None:
    """ConfigError unless `data` (a data.Dataset split) suits the network."""
    images, labels = data.images, data.labels
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ConfigError(f"The {what} images must be uint8 (N, C, H, W); got {images.dtype} "
                          f"with shape {tuple(images.shape)}.")
    if len(images) == 0 or len(images) != len(labels):
        raise ConfigError(f"The {what} split has {len(images)} images and {len(labels)} labels.")
    if images.shape[1] != spec.in_channels:
        raise ConfigError(
            f"The network takes {spec.in_channels}-channel images but {data.name} has "
            f"{images.shape[1]} channel(s); set the network's input channels to {images.shape[1]}.")
    n_classes = int(labels.max()) + 1
    if n_classes > spec.num_classes:
        raise ConfigError(
            f"{data.name} has {n_classes} classes but the network has {spec.num_classes} "
            f"outputs; set the number of classes to {n_classes}.")


class DeviceData:
    """A split on the device; batches leave it as the network's input at `size`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                 size: int, channels_last: bool):
        self.images, self.labels = images.to(device), labels.to(device)
        self.size, self.channels_last = size, channels_last
        self.split_size = len(images)      # images in the split, over all ranks

    @classmethod
    def shard(cls, data, n: int, rank: int, world: int, **where) -> "DeviceData":
        """This rank's share of the first `n` images of `data` (all of them with one process):
        the test set, the same images for every run."""
        lo, hi = rank * n // world, (rank + 1) * n // world
        shard = cls(data.images[lo:hi], data.labels[lo:hi], **where)
        shard.split_size = n
        return shard

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index) -> Batch:
        """The images and labels at `index` (a slice or a tensor of indices)."""
        return to_input(self.images[index], self.size, self.channels_last), self.labels[index]

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        """The whole split, batch by batch, the last one ragged (evaluation)."""
        return (self.batch(slice(start, start + batch_size))
                for start in range(0, len(self), batch_size))


class TrainData(DeviceData):
    """The training split: a seeded random subset, reshuffled every epoch (by the same seeded
    generator), the ragged last batch dropped. Under torchrun every rank holds the same
    images and takes its slice of each global batch of `batch_size` (sizes differ by at most 1)."""

    def __init__(self, data, seed: int, batch_size: int, max_examples: int | None,
                 rank: int = 0, world: int = 1, **where):
        self.shuffle = torch.Generator().manual_seed(seed)
        images, labels = data.images, data.labels
        if max_examples is not None and max_examples < len(images):
            keep = torch.randperm(len(images), generator=self.shuffle)[:max_examples]
            images, labels = images[keep], labels[keep]
        super().__init__(images, labels, **where)
        self.batch_size = batch_size
        self.steps_per_epoch = max(1, len(images) // batch_size)
        self.mine = slice(rank * batch_size // world, (rank + 1) * batch_size // world)

    def batches(self) -> Iterator[Batch]:
        """The next epoch's batches, in a fresh order (drawn now, at the call)."""
        order = torch.randperm(len(self), generator=self.shuffle).to(self.images.device)
        size = self.batch_size
        return (self.batch(order[i * size:(i + 1) * size][self.mine])
                for i in range(self.steps_per_epoch))
