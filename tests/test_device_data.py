"""The images on the device: a seeded subset, a fresh order each epoch, each rank's slice of a
global batch, and the test shards."""
import pytest
import torch

from nin_explorer.learn.config import ConfigError
from nin_explorer.learn.data import Dataset
from nin_explorer.learn.device_data import DeviceData, TrainData, check_data, to_input
from nin_explorer.net.presets import get_preset

WHERE = dict(device=torch.device("cpu"), size=8, channels_last=False)


def numbered(n: int) -> Dataset:
    """Image i is filled with the value i, and its label is i % 10."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 8, 8).clone()
    return Dataset("numbered", images, torch.arange(n) % 10, [str(i) for i in range(10)])


def ids(batch) -> list[int]:
    return (batch[0][:, 0, 0, 0] * 255).round().int().tolist()


def test_subset_and_order_are_seeded():
    first = TrainData(numbered(50), seed=3, batch_size=8, max_examples=20, **WHERE)
    again = TrainData(numbered(50), seed=3, batch_size=8, max_examples=20, **WHERE)
    other = TrainData(numbered(50), seed=4, batch_size=8, max_examples=20, **WHERE)
    assert len(first) == 20 and first.steps_per_epoch == 2        # the ragged last 4 dropped
    assert first.images.equal(again.images) and not first.images.equal(other.images)
    epoch1, epoch2 = [list(map(ids, first.batches())) for _ in range(2)]
    assert epoch1 == list(map(ids, again.batches())) and epoch1 != epoch2
    assert all(len(b) == 8 for b in epoch1) and len(set(sum(epoch1, []))) == 16


def test_each_rank_takes_its_slice_of_the_global_batch():
    alone = [ids(b) for b in TrainData(numbered(30), 1, 10, None, **WHERE).batches()]
    ranks = [[ids(b) for b in TrainData(numbered(30), 1, 10, None, rank, 3, **WHERE).batches()]
             for rank in range(3)]
    for step, batch in enumerate(alone):
        assert sum((r[step] for r in ranks), []) == batch


def test_test_shards_cover_the_first_n_images_once():
    shards = [DeviceData.shard(numbered(40), 25, rank, 4, **WHERE) for rank in range(4)]
    seen = [i for s in shards for b in s.in_order(4) for i in ids(b)]
    assert seen == list(range(25)) and {s.split_size for s in shards} == {25}


def test_to_input_scales_and_resizes():
    x = to_input(torch.full((2, 1, 4, 4), 255, dtype=torch.uint8), 8, channels_last=True)
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.float32
    assert torch.allclose(x, torch.ones_like(x))


def test_check_data_names_the_split():
    bad = Dataset("f", torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.int64), ["a"])
    with pytest.raises(ConfigError, match="The test images must be uint8"):
        check_data(get_preset("tiny"), bad, "test")
