"""The built-in offline generator: deterministic, balanced, local class evidence, cached once."""
import pytest
import torch

from nin_explorer.learn import shapes
from nin_explorer.learn.catalogue import SHAPE_CLASSES
from nin_explorer.learn.data import load_dataset
from nin_explorer.learn.shapes import make_shapes


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
    calls, real = [], shapes.make_shapes
    monkeypatch.setattr(shapes, "make_shapes", lambda *a, **k: calls.append(a) or real(*a, **k))
    messages = []
    test = load_dataset("shapes", root=tmp_path, train=False, progress=lambda f, m: messages.append((f, m)))
    assert len(calls) == 2 and [f for f, _ in messages] == [0.0, 1.0]
    assert [p.name for p in (tmp_path / "shapes").iterdir()] == [f"shapes-v{shapes._SHAPES_VERSION}-seed0.pt"]

    again = load_dataset("shapes", root=tmp_path, train=False)
    train = load_dataset("shapes", root=tmp_path, train=True)
    assert len(calls) == 2, "the second load must come from the cache"
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    assert torch.equal(test.images, real(10_000, shapes.SHAPES_SEED + 1).images)
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.classes == list(SHAPE_CLASSES) and test.name == "shapes"
