"""Draw a sample grid of the built-in `shapes` data set: one row per class, labelled.

    python bench/make_shapes_grid.py                    # -> assets/shapes_grid.png
    python bench/make_shapes_grid.py --hard --out /tmp/hard.png
"""

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nin_explorer.learn.catalogue import SHAPE_CLASSES  # noqa: E402
from nin_explorer.learn.shapes import make_shapes  # noqa: E402


def shapes_grid(images: torch.Tensor, labels: torch.Tensor, per_class: int, scale: int) -> Image.Image:
    """Rows of `per_class` examples per class, upscaled by `scale`, class names on the left."""
    cell, gap, label_w = 28 * scale, 4, 110
    grid = Image.new("L", (label_w + per_class * (cell + gap), len(SHAPE_CLASSES) * (cell + gap)), 255)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=18)
    for row, name in enumerate(SHAPE_CLASSES):
        top = row * (cell + gap)
        draw.text((8, top + cell // 2), name, fill=0, font=font, anchor="lm")
        examples = images[labels == row][:per_class, 0]
        for col, example in enumerate(examples):
            tile = Image.fromarray(example.numpy(), mode="L").resize((cell, cell), Image.Resampling.NEAREST)
            grid.paste(tile, (label_w + col * (cell + gap), top))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hard", action="store_true", help="draw shapes-hard instead of shapes")
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets/shapes_grid.png")
    args = parser.parse_args()
    sample = make_shapes(20 * args.per_class, seed=1, hard=args.hard)  # seed 1: the test split's stream
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shapes_grid(sample.images, sample.labels, args.per_class, args.scale).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
