"""How fast is a folder of small images read, the first time and from the cache? Prints a table.

    python bench/read_folder.py              # 50,000 PNGs (32x32 RGB, 10 classes) in a temp dir
    python bench/read_folder.py --n 2000     # a smaller folder

Targets (docs/RELIABILITY.md): 50,000 small images read (both splits) in at most 30 s on the
2-core machine, decoded in worker processes; a second use of the unchanged folder in under 2 s.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (imported before timing, as in the app and the worker)
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nin_explorer.learn.data import load_dataset  # noqa: E402


def make_folder(root: Path, n: int, n_classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        directory = root / "bench" / f"class{i % n_classes}"
        directory.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(directory / f"{i:06d}.png")


def read_seconds(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n = sum(len(load_dataset("folder:bench", root=root, train=train).labels) for train in (True, False))
    return time.perf_counter() - start, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="images to write and read")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="nin-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        make_folder(root, args.n)
        print(f"wrote {args.n:,} PNGs in {time.perf_counter() - start:.1f} s")
        first, n = read_seconds(root)
        cached, _ = read_seconds(root)
        print("| read | images | seconds | images/s |\n|---|---|---|---|")
        print(f"| first (headers + decode, worker processes) | {n:,} | {first:.1f} | {n / first:,.0f} |")
        print(f"| second (content cache) | {n:,} | {cached:.2f} | {n / cached:,.0f} |")


if __name__ == "__main__":
    main()
