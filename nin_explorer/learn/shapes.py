"""The built-in offline data set: `shapes` and `shapes-hard`, drawn from signed distance functions.

Generated in seconds on first use and cached under the data root as uint8, the same bytes for
the same seed on any thread count.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from nin_explorer.learn.catalogue import SHAPE_CLASSES, DatasetInfo
from nin_explorer.learn.data import Dataset, DataError, Progress
from nin_explorer.base.files import atomic_save

SHAPES_SEED = 0
_SHAPES_VERSION = 1  # bump when the drawing changes, so old caches are not reused
_SIZE = 28
_CHUNK = 128  # images drawn at once: the fastest size on one thread (1,024 was 40% slower)


@dataclass(frozen=True)
class _Difficulty:
    radius_px: tuple[float, float]  # shape's outer radius; every shape fits its unit disc
    min_contrast_to_noise: float
    clutter_items: tuple[int, int]  # inclusive range per image


_DIFFICULTY = {
    "shapes": _Difficulty(radius_px=(6.0, 11.5), min_contrast_to_noise=3.0, clutter_items=(1, 4)),
    "shapes-hard": _Difficulty(radius_px=(4.0, 9.5), min_contrast_to_noise=2.5, clutter_items=(2, 6)),
}

# These classes only tilt, up to 30 degrees either way; the others turn freely. A square turned 45
# degrees is a diamond and a cross an X; the diamond is a tall rhombus so that no square matches it.
_TILT_ONLY = ("square", "cross", "diamond", "heart")


def _box(x, y, half_w, half_h):
    qx, qy = x.abs() - half_w, y.abs() - half_h
    return torch.hypot(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)


def _isosceles(x, y, half_w, height):
    # tip at the origin, base at y = height (Inigo Quilez's sdTriangleIsosceles)
    x = x.abs()
    t = ((x * half_w + y * height) / (half_w**2 + height**2)).clamp(0, 1)
    ax, ay = x - half_w * t, y - height * t
    bx, by = x - half_w * (x / half_w).clamp(0, 1), y - height
    dist2 = torch.minimum(ax * ax + ay * ay, bx * bx + by * by)
    side = torch.minimum(-(x * height - y * half_w), -(y - height))
    return -dist2.sqrt() * side.sign()


def _sdf_circle(x, y):
    return torch.hypot(x, y) - 0.85


def _sdf_square(x, y):
    return _box(x, y, 0.68, 0.68)


def _sdf_triangle(x, y):
    # equilateral, pointing up, circumradius 0.98 (sdEquilateralTriangle)
    k, r = math.sqrt(3.0), 0.85
    x, y = x.abs() - r, y + r / k
    fold = x + k * y > 0
    x, y = torch.where(fold, (x - k * y) / 2, x), torch.where(fold, (-k * x - y) / 2, y)
    x = x - x.clamp(-2 * r, 0)
    return -torch.hypot(x, y) * y.sign()


def _sdf_cross(x, y):
    return torch.minimum(_box(x, y, 0.9, 0.3), _box(x, y, 0.3, 0.9))


def _sdf_star(x, y):
    # five points, outer radius 0.98 (sdStar5)
    k1x, k1y, r, inner = 0.809016994375, -0.587785252292, 0.98, 0.45
    x = x.abs()
    t = 2 * (k1x * x + k1y * y).clamp(min=0)
    x, y = x - t * k1x, y - t * k1y
    t = 2 * (-k1x * x + k1y * y).clamp(min=0)
    x, y = x + t * k1x, y - t * k1y
    x, y = x.abs(), y - r
    bax, bay = -inner * k1y, inner * k1x - 1
    h = ((x * bax + y * bay) / (bax**2 + bay**2)).clamp(0, r)
    return torch.hypot(x - bax * h, y - bay * h) * (y * bax - x * bay).sign()


def _sdf_diamond(x, y):
    # a tall rhombus (sdRhombus)
    bx, by = 0.55, 0.98
    x, y = x.abs(), y.abs()
    h = ((bx * (bx - 2 * x) - by * (by - 2 * y)) / (bx**2 + by**2)).clamp(-1, 1)
    return torch.hypot(x - 0.5 * bx * (1 - h), y - 0.5 * by * (1 + h)) * (x * by + y * bx - bx * by).sign()


def _sdf_heart(x, y):
    # sdHeart has its tip at the origin and is 1.1 tall; centre and scale it into the unit disc
    s = 1.45
    x, y = x.abs() / s, y / s + 0.55
    upper = torch.hypot(x - 0.25, y - 0.75) - math.sqrt(2) / 4
    m = 0.5 * (x + y).clamp(min=0)
    lower = torch.minimum(x * x + (y - 1) ** 2, (x - m) ** 2 + (y - m) ** 2).sqrt() * (x - y).sign()
    return torch.where(x + y > 1, upper, lower) * s


def _sdf_crescent(x, y):
    return torch.maximum(torch.hypot(x, y) - 0.95, 0.8 - torch.hypot(x - 0.45, y))


def _sdf_arrow(x, y):
    return torch.minimum(_box(x, y + 0.3, 0.17, 0.62), _isosceles(x, 0.95 - y, 0.55, 0.7))


def _sdf_hourglass(x, y):
    return _isosceles(x, y.abs(), 0.6, 0.8)


# class name -> signed distance (negative inside) in the shape's unit-disc frame, y up
_SDF = {"circle": _sdf_circle, "square": _sdf_square, "triangle": _sdf_triangle, "cross": _sdf_cross,
        "star": _sdf_star, "diamond": _sdf_diamond, "heart": _sdf_heart, "crescent": _sdf_crescent,
        "arrow": _sdf_arrow, "hourglass": _sdf_hourglass}


@dataclass(frozen=True, eq=False)
class ShapeSample:
    """Generated shapes plus where each shape was drawn (for checking that GAP maps find it)."""

    images: torch.Tensor  # (N, 1, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64
    centers: torch.Tensor  # (N, 2) float32, (x, y) in pixels
    radii: torch.Tensor  # (N,) float32, pixels


def make_shapes(n: int, seed: int, hard: bool = False) -> ShapeSample:
    """Draw `n` shape images, class-balanced, the same bytes for the same seed on any thread count.

    Each image: one shape (random position over the whole free range, scale, rotation, filled or
    outlined with a random stroke), class-independent clutter (short strokes and dots), a random
    background level and contrast, and Gaussian noise capped against the contrast.
    """
    with _one_thread():
        return _draw_shapes(n, seed, _DIFFICULTY["shapes-hard" if hard else "shapes"])


@contextlib.contextmanager
def _one_thread():
    # Every op here is small. On 2 threads, while another process (a training worker) keeps a core
    # busy, each op waits for a descheduled thread: 70,000 images took 12-30 s instead of 1.5 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _draw_shapes(n: int, seed: int, level: _Difficulty) -> ShapeSample:
    gen = torch.Generator().manual_seed(seed)

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(*shape, generator=gen)

    # --- per-image parameters, all drawn up front so chunking cannot change them ---
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
    radius = uniform(*level.radius_px, n)
    # the centre may go anywhere the shape still fits: position is what defeats a linear model
    cx = radius - 0.5 + (_SIZE - 2 * radius) * torch.rand(n, generator=gen)
    cy = radius - 0.5 + (_SIZE - 2 * radius) * torch.rand(n, generator=gen)
    max_turn = torch.tensor([math.pi / 6 if name in _TILT_ONLY else math.pi for name in SHAPE_CLASSES])
    turn = (2 * torch.rand(n, generator=gen) - 1) * max_turn[labels]
    filled = torch.rand(n, generator=gen) < 0.5
    stroke = uniform(1.0, 2.2, n)
    background = uniform(0.0, 0.15, n)
    contrast = uniform(0.4, 0.85, n)
    noise = contrast / level.min_contrast_to_noise * torch.rand(n, generator=gen)

    k_max = level.clutter_items[1]
    n_items = torch.randint(level.clutter_items[0], k_max + 1, (n,), generator=gen)
    item_on = torch.arange(k_max) < n_items[:, None]  # (n, K)
    item_dot = torch.rand(n, k_max, generator=gen) < 0.4
    item_length = torch.where(item_dot, 0.0, uniform(2.5, 6.5, n, k_max))
    item_width = torch.where(item_dot, uniform(1.6, 3.0, n, k_max), uniform(0.9, 1.5, n, k_max))
    item_turn = uniform(0, math.pi, n, k_max)
    item_x = torch.randint(0, _SIZE, (n, k_max), generator=gen)
    item_y = torch.randint(0, _SIZE, (n, k_max), generator=gen)
    item_offset = uniform(-0.5, 0.5, n, k_max, 2)
    item_contrast = uniform(0.4, 0.85, n, k_max) * item_on

    images = torch.empty(n, 1, _SIZE, _SIZE, dtype=torch.uint8)
    grid = torch.arange(_SIZE, dtype=torch.float32)
    patch = 9  # clutter is drawn in 9x9 patches, not over the whole canvas: 10x cheaper
    pad = patch // 2
    patch_grid = torch.arange(patch, dtype=torch.float32) - pad
    patch_index = (torch.arange(patch)[:, None] * (_SIZE + 2 * pad) + torch.arange(patch)).flatten()

    for label, name in enumerate(SHAPE_CLASSES):
        members = (labels == label).nonzero().squeeze(1)
        for start in range(0, len(members), _CHUNK):
            idx = members[start : start + _CHUNK]
            m = len(idx)

            # --- the shape, in its own rotated frame scaled to the unit disc ---
            cos, sin = turn[idx].cos()[:, None, None], turn[idx].sin()[:, None, None]
            r = radius[idx][:, None, None]
            dx = grid[None, None, :] - cx[idx][:, None, None]  # (m, 1, W)
            dy = grid[None, :, None] - cy[idx][:, None, None]  # (m, H, 1)
            u = (cos * dx + sin * dy) / r
            v = (sin * dx - cos * dy) / r  # image y points down, shape y points up
            dist_px = _SDF[name](u, v) * r  # (m, H, W)
            dist_px = torch.where(filled[idx][:, None, None], dist_px, dist_px.abs() - stroke[idx][:, None, None] / 2)
            ink = (0.5 - dist_px).clamp(0, 1) * contrast[idx][:, None, None]

            # --- clutter: segments and dots (a dot is a segment of length 0) ---
            icos, isin = item_turn[idx].cos()[..., None, None], item_turn[idx].sin()[..., None, None]
            px = patch_grid[None, None, None, :] - item_offset[idx][..., 0, None, None]  # (m, K, 1, P)
            py = patch_grid[None, None, :, None] - item_offset[idx][..., 1, None, None]  # (m, K, P, 1)
            along = (icos * px + isin * py).abs() - item_length[idx][..., None, None] / 2
            across = isin * px - icos * py
            item_dist = torch.hypot(along.clamp(min=0), across) - item_width[idx][..., None, None] / 2
            item_ink = (0.5 - item_dist).clamp(0, 1) * item_contrast[idx][..., None, None]  # (m, K, P, P)
            corner = item_y[idx] * (_SIZE + 2 * pad) + item_x[idx]  # (m, K)
            flat_index = (corner[..., None] + patch_index).reshape(m, -1)
            canvas = torch.zeros(m, (_SIZE + 2 * pad) ** 2)
            canvas.scatter_reduce_(1, flat_index, item_ink.reshape(m, -1), reduce="amax")
            clutter = canvas.view(m, _SIZE + 2 * pad, _SIZE + 2 * pad)[:, pad : pad + _SIZE, pad : pad + _SIZE]

            # --- compose: background, the brighter of shape and clutter, noise ---
            pixels = torch.maximum(ink, clutter) + background[idx][:, None, None]
            pixels += noise[idx][:, None, None] * torch.randn(m, _SIZE, _SIZE, generator=gen)
            images[idx, 0] = pixels.clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    return ShapeSample(images, labels, torch.stack([cx, cy], dim=1), radius)


def _shapes_cache(name: str, root: Path) -> Path:
    return root / "shapes" / f"{name}-v{_SHAPES_VERSION}-seed{SHAPES_SEED}.pt"


def load_shapes(info: DatasetInfo, root: Path, train: bool, report: Progress) -> Dataset:
    """One split of `info` (shapes or shapes-hard), generated into `root` on first use."""
    path = _shapes_cache(info.name, root)
    if path.is_file():
        cached = torch.load(path, weights_only=True)  # 55 MB of uint8: about 0.03 s
    else:
        report(0.0, f"Generating {info.title}: {info.n_train:,} + {info.n_test:,} images ...")
        hard = info.name == "shapes-hard"
        train_set = make_shapes(info.n_train, SHAPES_SEED, hard)
        test_set = make_shapes(info.n_test, SHAPES_SEED + 1, hard)
        cached = {
            "train_images": train_set.images,
            "train_labels": train_set.labels,
            "test_images": test_set.images,
            "test_labels": test_set.labels,
        }
        try:
            atomic_save(cached, path)
        except OSError as error:  # a read-only, full or misplaced data directory
            raise DataError(f"Cannot write to the data directory {root} ({error.strerror or error}); "
                            "set NIN_EXPLORER_DATA to a writable folder.") from error
        report(1.0, f"{info.title} ready (cached in {path})")
    split = "train" if train else "test"
    return Dataset(info.name, cached[f"{split}_images"], cached[f"{split}_labels"], list(info.classes))
