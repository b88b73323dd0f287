"""A user's own images: an ImageFolder layout (one subfolder per class) under the data root.

Only files under the root are read (symlinks and `..` are resolved first); each image is checked
and decoded by images.py, many at once and cached by folder_read.py. A bad file (unreadable,
truncated, oversized, not an allowed format) is named; BAD_FILES says what happens to the set.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nin_explorer.learn.catalogue import BAD_FILES, FOLDER_PREFIX, DatasetInfo, bad_count
from nin_explorer.learn.data import Dataset, DataError, Progress
from nin_explorer.learn.folder_read import cache_file, content_key, probe_files, run_files, store_cached
from nin_explorer.learn.images import GRAY_MODES, IMAGE_EXTENSIONS

NAMED_BAD_FILES = 5  # a message names this many bad files, then counts the rest


@dataclass(frozen=True)
class _Folder:
    info: DatasetInfo
    folder: Path
    train_files: list[tuple[str, int]]  # (path, label); paths are str: 50,000 Path objects cost 0.7 s
    test_files: list[tuple[str, int]]
    headers: dict[str, list] = field(default_factory=dict)  # [mode, width, height] of each good file
    bad: dict[str, str] = field(default_factory=dict)  # file -> why it cannot be used (from its header)
    key: str = ""  # the content key of all its files (names, sizes, mtimes)


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


def _class_files(directory: Path, root: Path) -> list[str]:
    """Image files under `directory` (resolved, inside `root`), sorted, subfolders after files.
    Symlinked folders are not followed; a symlinked file is resolved and checked."""
    files = []
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.lower().endswith(IMAGE_EXTENSIONS):
            path = entry.path
            files.append(str(_inside(Path(path), root, os.path.relpath(path, root))) if entry.is_symlink() else path)
    for entry in entries:
        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            files += _class_files(Path(entry.path), root)
    return files


def _class_dirs(folder: Path, root: Path) -> list[tuple[str, Path]]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [(p.name, _inside(p, root, os.path.relpath(p, root))) for p in dirs]


def split_files(folder: Path, root: Path, name: str) -> tuple[list[str], list, list]:
    """Classes, train and test files: train/ and test/ if both exist, else every fifth held out."""
    has_split = (folder / "train").is_dir() and (folder / "test").is_dir()
    train_dirs = _class_dirs(folder / "train" if has_split else folder, root)
    classes = [class_name for class_name, _ in train_dirs]
    if len(classes) < 2:
        raise DataError(f"Folder {name[len(FOLDER_PREFIX):]!r} needs one subfolder per class (at least two).")
    train_files, test_files = [], []
    for label, (_, directory) in enumerate(train_dirs):
        files = _class_files(directory, root)
        if has_split:
            train_files += [(f, label) for f in files]
        else:
            train_files += [(f, label) for i, f in enumerate(files) if i % 5 != 4]
            test_files += [(f, label) for i, f in enumerate(files) if i % 5 == 4]
    if has_split:
        for class_name, directory in _class_dirs(folder / "test", root):
            if class_name not in classes:
                raise DataError(f"Test class {class_name!r} of {name!r} has no train folder.")
            test_files += [(f, classes.index(class_name)) for f in _class_files(directory, root)]
    if not train_files:
        raise DataError(f"Folder {name[len(FOLDER_PREFIX):]!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return classes, train_files, test_files


def scan_folder(name: str, root: Path, channels: int | None, image_size: int | None,
                report: Progress | None = None) -> _Folder:
    """The classes and files of folder:<path> under `root`, image headers read only (cached).

    train/ and test/ subfolders if both exist, else every fifth image of each class is held out;
    by default grayscale or RGB by majority, at 28 px (grayscale) or 32 px (RGB). Files whose
    header is bad are in `bad` and left out of the counts.
    """
    real_root = root.resolve()
    folder = _folder_path(name, root)
    classes, train_files, test_files = split_files(folder, real_root, name)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}.")
    paths = [f for f, _ in train_files + test_files]
    key = content_key(paths, real_root)
    probes = probe_files(paths, real_root, str(folder), key, report or (lambda fraction, message: None))
    headers = {p: r for p, r in zip(paths, probes) if not isinstance(r, str)}
    bad = {p: r for p, r in zip(paths, probes) if isinstance(r, str)}
    if channels is None:
        gray = sum(mode in GRAY_MODES for mode, _, _ in headers.values())
        channels = 1 if 2 * gray > len(headers) else 3
    size = image_size or (28 if channels == 1 else 32)
    if not 8 <= size <= 256:
        raise DataError(f"image_size must be between 8 and 256 pixels, not {size}.")
    n_train = sum(f in headers for f, _ in train_files)
    info = DatasetInfo(name, folder.name, "your images", channels, size, tuple(classes), n_train,
                       sum(f in headers for f, _ in test_files))
    return _Folder(info, folder, train_files, test_files, headers, bad, key)


def bad_files_text(bad: dict[str, str], folder: Path) -> str:
    """'cat/x.png, dog/y.png and 3 more: why; ...': files grouped by reason, NAMED_BAD_FILES named."""
    by_reason: dict[str, list[str]] = {}
    for path, why in bad.items():
        by_reason.setdefault(why.rstrip("."), []).append(os.path.relpath(path, folder))
    parts = []
    for why, paths in by_reason.items():
        more = len(paths) - NAMED_BAD_FILES
        parts.append(", ".join(paths[:NAMED_BAD_FILES]) + (f" and {more:,} more" if more > 0 else "") + f": {why}")
    return "; ".join(parts)


def _refuse(bad: dict[str, str], folder: Path) -> DataError:
    """The first bad file named with its class folder and reason, then the others."""
    (path, why), *rest = bad.items()
    where = os.path.relpath(os.path.dirname(path), folder)
    text = f"Cannot read {os.path.basename(path)}: {why.rstrip('.')} (in {where}/)"
    if rest:
        text += f"; {len(rest):,} more: {bad_files_text(dict(rest), folder)}"
    return DataError(f"{text}. Remove or replace {'them' if rest else 'it'}, or choose to skip bad files.")


def _decode(scanned: _Folder, split: str, files: list[str], root: Path,
            report: Progress) -> tuple[torch.Tensor, dict[int, str]]:
    """(N, C, size, size) uint8 pixels of `files`, the good files of the scanned folder's
    `split` (zeros where bad), and why each bad one is; cached under the folder's content key."""
    channels, size = scanned.info.channels, scanned.info.image_size
    path = cache_file(root.resolve(), f"{scanned.folder}:{split}", f"{channels}x{size}",
                      scanned.key).with_suffix(".pt")
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True, map_location="cpu")
            return cached["images"], dict(zip(cached["bad_index"].tolist(), cached["bad_why"]))
        except (OSError, RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError):
            pass  # a torn or foreign cache file: read the images again
    results = run_files({"kind": "decode", "paths": files, "channels": channels,
                         "size": size}, report)
    blank = bytes(size * size * channels)
    bad = {i: r for i, r in enumerate(results) if isinstance(r, str)}
    pixels = bytearray(b"".join(blank if isinstance(r, str) else r for r in results))
    images = (torch.frombuffer(pixels, dtype=torch.uint8) if pixels else torch.empty(0, dtype=torch.uint8))
    images = images.view(len(files), size, size, channels).permute(0, 3, 1, 2).contiguous()  # (N,H,W,C) -> (N,C,H,W)
    kept = {"images": images, "bad_index": torch.tensor(list(bad), dtype=torch.int64), "bad_why": list(bad.values())}
    store_cached(path, lambda tmp: torch.save(kept, tmp))
    return images, bad


def find_bad_files(name: str, root: Path, report: Progress | None = None) -> tuple[_Folder, dict[str, str]]:
    """The folder's scan and every file that cannot be used: bad headers and, decoding every
    image (kept in the cache for training), truncated or damaged pixels."""
    report = report or (lambda fraction, message: None)
    scanned = scan_folder(name, root, None, None, report)
    bad = dict(scanned.bad)
    for split, files in (("train", scanned.train_files), ("test", scanned.test_files)):
        good = [f for f, _ in files if f in scanned.headers]
        _, failed = _decode(scanned, split, good, root, report)
        bad.update({good[i]: why for i, why in failed.items()})
    return scanned, bad


def load_folder(name: str, root: Path, train: bool, report: Progress, channels: int | None,
                image_size: int | None, bad_files: str = "refuse") -> Dataset:
    """One split of folder:<path>; `channels` and `image_size` as `scan_folder` decides them.
    `bad_files` (a BAD_FILES key): "refuse" raises DataError naming the bad files, "skip" leaves
    them out and says how many in the last progress message."""
    if bad_files not in BAD_FILES:
        raise DataError(f"bad_files must be one of {', '.join(BAD_FILES)}, not {bad_files!r}.")
    scanned = scan_folder(name, root, channels, image_size, report)
    info, files = scanned.info, scanned.train_files if train else scanned.test_files
    if bad_files == "refuse" and scanned.bad:
        raise _refuse(scanned.bad, scanned.folder)
    good = [(f, label) for f, label in files if f in scanned.headers]
    images, bad = _decode(scanned, "train" if train else "test", [f for f, _ in good], root, report)
    if bad_files == "refuse" and bad:
        raise _refuse({good[i][0]: why for i, why in bad.items()}, scanned.folder)
    keep = [i for i in range(len(good)) if i not in bad]
    skipped = len(files) - len(keep)
    if len(keep) < len(good):
        images = images[keep]
    report(1.0, f"Read {len(keep):,} images" + (f"; skipped {bad_count(skipped)}" if skipped else ""))
    labels = torch.tensor([good[i][1] for i in keep], dtype=torch.int64)
    return Dataset(name, images, labels, list(info.classes))
