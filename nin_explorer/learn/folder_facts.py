"""What is in a user's folder of images: classes, counts, sizes, modes, warnings, bad files, samples.

`list_folders` finds every ImageFolder directly under the data root; `folder_facts` says what one
holds (headers only, unless `decode=True` reads every image to find truncated ones too);
`sample_images` gives a few images per class for a preview grid. Nothing outside the root is read.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nin_explorer.learn.catalogue import FOLDER_PREFIX, DatasetInfo, bad_count
from nin_explorer.learn.data import DataError, Progress, default_root
from nin_explorer.learn.folder_read import CACHE_DIR
from nin_explorer.learn.images import GRAY_MODES, IMAGE_EXTENSIONS

IMBALANCE_RATIO = 3  # the largest class this many times the smallest: warned
TINY_CLASS = 10  # fewer training images in a class: warned


@dataclass(frozen=True)
class FolderFacts:
    """One folder under the data root: usable (`info`) or not (`error`), and what it holds."""

    name: str  # folder:<path under the root>
    info: DatasetInfo | None = None
    error: str | None = None
    layout: str = ""
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # class -> (train, test)
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> files
    modes: Counter = field(default_factory=Counter)  # PIL mode -> files
    bad_files: dict[str, str] = field(default_factory=dict)  # path in the folder -> why
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One line for pickers."""
        if self.info is None:
            return f"{self.name[len(FOLDER_PREFIX):]}: not usable: {self.error}"
        bad = f", {bad_count(len(self.bad_files))}" if self.bad_files else ""
        return self.info.description.replace("your images", f"your images ({self.layout})") + bad


def _has_images(folder: Path, depth: int = 3) -> bool:
    for dirpath, dirnames, filenames in os.walk(folder):
        if len(Path(dirpath).relative_to(folder).parts) >= depth:
            dirnames[:] = []
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in filenames):
            return True
    return False


def list_folders(root: Path | None = None) -> list[FolderFacts]:
    """Facts of every folder directly under the data root that holds images (headers only)."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name == CACHE_DIR or not entry.is_dir():
            continue
        if entry.is_symlink() and not entry.resolve().is_relative_to(root.resolve()):
            continue
        if _has_images(entry):
            found.append(folder_facts(FOLDER_PREFIX + entry.name, root))
    return found


def folder_facts(name: str, root: Path | None = None, decode: bool = False,
                 progress: Progress | None = None) -> FolderFacts:
    """What folder:<path> holds; a folder that cannot be used comes back with its `error`.
    `decode=True` also reads every image (cached for training), naming truncated files."""
    from nin_explorer.learn.folders import find_bad_files, scan_folder
    root = Path(root) if root is not None else default_root()
    try:
        if decode:
            scanned, bad = find_bad_files(name, root, progress)
        else:
            scanned = scan_folder(name, root, None, None, progress)
            bad = dict(scanned.bad)
    except DataError as e:
        return FolderFacts(name, error=str(e))
    info, folder = scanned.info, scanned.folder
    counts = {c: [0, 0] for c in info.classes}
    for split, files in enumerate((scanned.train_files, scanned.test_files)):
        for path, label in files:
            if path not in bad:
                counts[info.classes[label]][split] += 1
    headers = [h for p, h in scanned.headers.items() if p not in bad]
    facts = FolderFacts(
        name, info, layout="train/ and test/" if (folder / "train").is_dir() and (folder / "test").is_dir()
        else "every fifth image held out", counts={c: tuple(n) for c, n in counts.items()},
        sizes=Counter((w, h) for _, w, h in headers), modes=Counter(m for m, _, _ in headers),
        bad_files={os.path.relpath(p, folder): why for p, why in bad.items()})
    facts.warnings.extend(folder_warnings(facts))
    return facts


def folder_warnings(facts: FolderFacts) -> list[str]:
    """Sentences about what may make training on the folder go wrong."""
    out = []
    train = {c: n for c, (n, _) in facts.counts.items()}
    if train and min(train.values()) > 0 and max(train.values()) >= IMBALANCE_RATIO * min(train.values()):
        big, small = max(train, key=train.get), min(train, key=train.get)
        out.append(f"Class imbalance: {big} has {train[big]:,} training images, {small} only "
                   f"{train[small]:,}; accuracy will favour the larger classes.")
    tiny = [c for c, n in train.items() if n < TINY_CLASS]
    if tiny:
        out.append(f"Tiny classes (under {TINY_CLASS} training images): {', '.join(tiny[:8])}"
                   + (f" and {len(tiny) - 8} more" if len(tiny) > 8 else "") + ".")
    untested = [c for c, (_, n) in facts.counts.items() if n == 0]
    if untested:
        out.append(f"No test images for {', '.join(untested[:8])}: its accuracy cannot be measured.")
    if len(facts.sizes) > 1:
        low, high = min(facts.sizes, key=lambda s: s[0] * s[1]), max(facts.sizes, key=lambda s: s[0] * s[1])
        out.append(f"Mixed sizes: {len(facts.sizes)} different, from {low[0]}x{low[1]} to {high[0]}x{high[1]}; "
                   f"each is centre-cropped to a square and resized to {facts.info.image_size} px.")
    kinds = {"grayscale" if m in GRAY_MODES else "colour" for m in facts.modes}
    if len(facts.modes) > 1:
        shown = ", ".join(f"{m} ({n:,})" for m, n in facts.modes.most_common())
        out.append(f"Mixed modes: {shown}; all become "
                   f"{'grayscale' if facts.info.channels == 1 else 'RGB'} ({facts.info.channels} channel(s))"
                   + (", by majority." if len(kinds) > 1 else "."))
    if facts.bad_files:
        out.append(f"{bad_count(len(facts.bad_files))} cannot be used: skip or fix "
                   f"{'it' if len(facts.bad_files) == 1 else 'them'}.")
    return out


def sample_images(name: str, root: Path | None = None, per_class: int = 6) -> list[tuple[str, list]]:
    """Up to `per_class` training images of each class, as uint8 (C, size, size) tensors at the
    size training uses, for a preview grid; bad files are passed over."""
    from nin_explorer.learn.folders import scan_folder
    from nin_explorer.learn.images import ImageError, image_to_tensor
    root = Path(root) if root is not None else default_root()
    scanned = scan_folder(name, root, None, None)
    info = scanned.info
    rows = []
    for label, class_name in enumerate(info.classes):
        images = []
        for path in (p for p, y in scanned.train_files if y == label and p in scanned.headers):
            try:
                images.append(image_to_tensor(path, info.channels, info.image_size))
            except ImageError:
                continue
            if len(images) == per_class:
                break
        rows.append((class_name, images))
    return rows
