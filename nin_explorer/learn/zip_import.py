"""A .zip of an ImageFolder unpacked into the data root, safely and all at once or not at all.

Every entry is checked before a byte is written (no `..`, absolute path or symlink; caps on the
number of entries and the total uncompressed size; image names only), each file is checked by its
content (the same allow-list and pixel cap as image uploads) and the result must be a usable
ImageFolder. It is unpacked into a hidden temporary folder inside the data root and renamed into
place at the end: a refused or failed import leaves nothing behind.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from nin_explorer.learn.catalogue import FOLDER_PREFIX
from nin_explorer.learn.data import DataError, Progress, default_root
from nin_explorer.learn.images import IMAGE_EXTENSIONS, ImageError, open_image

MAX_ZIP_BYTES = 512 * 2**20  # the .zip itself (the upload)
MAX_ZIP_ENTRIES = 100_000
MAX_UNPACKED_BYTES = 2 * 2**30  # the sum of the entries' uncompressed sizes
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, - or _, starting with a letter or digit"
_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini")  # what zip tools add: passed over


def check_name(name: str) -> str:
    """`name` if it can be a data set's folder under the data root, else DataError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DataError(f"A data set's name must be {NAME_RULE}, e.g. my-pets.")
    return name


def _entry_parts(info: zipfile.ZipInfo) -> tuple[str, ...] | None:
    """The entry's path parts, None for junk and folders; DataError for an unsafe entry."""
    raw = info.filename.replace("\\", "/")
    if raw.startswith("/") or re.match(r"[A-Za-z]:", raw):
        raise DataError(f"The zip holds an absolute path ({info.filename[:80]!r}); refused.")
    parts = PurePosixPath(raw).parts
    if ".." in parts:
        raise DataError(f"The zip holds a path leading out of its folder ({info.filename[:80]!r}); refused.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"The zip holds a symbolic link ({info.filename[:80]!r}); refused.")
    if info.is_dir() or any(p in _JUNK or p.startswith(".") for p in parts):
        return None
    if not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
        raise DataError(f"The zip holds {info.filename[:80]!r}, not an image; only "
                        f"{', '.join(IMAGE_EXTENSIONS)} files are accepted.")
    return parts


def _plan(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The entries to unpack, every cap checked from the directory before anything is written."""
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise DataError(f"The zip has {len(entries):,} entries; at most {MAX_ZIP_ENTRIES:,} are accepted.")
    total = sum(info.file_size for info in entries)
    if total > MAX_UNPACKED_BYTES:
        raise DataError(f"The zip unpacks to {total / 2**30:.1f} GB; at most "
                        f"{MAX_UNPACKED_BYTES // 2**30} GB is accepted.")
    plan = [(info, parts) for info in entries if (parts := _entry_parts(info)) is not None]
    if not plan:
        raise DataError("The zip holds no images; zip a folder with one subfolder per class.")
    return plan


def _unwrap(folder: Path) -> Path:
    """The folder holding the layout: a zip of `pets/` gives one folder wrapping `cat/`, `dog/`."""
    while True:
        inside = [p for p in folder.iterdir()]
        if len(inside) != 1 or not inside[0].is_dir() or not any(p.is_dir() for p in inside[0].iterdir()):
            return folder
        folder = inside[0]


def _unpack(archive: zipfile.ZipFile, plan: list, into: Path, report: Progress) -> None:
    total = max(1, sum(info.file_size for info, _ in plan))
    done = 0
    for n, (info, parts) in enumerate(plan):
        target = into.joinpath(*parts)
        if not target.resolve().is_relative_to(into.resolve()):
            raise DataError(f"The zip's entry {info.filename[:80]!r} leads outside its folder; refused.")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "xb") as out:
            while chunk := source.read(2**20):
                if out.tell() + len(chunk) > info.file_size:  # more than its header declared
                    raise DataError(f"The zip's entry {info.filename[:80]!r} is larger than it says; refused.")
                out.write(chunk)
        try:
            with open_image(target):  # content decides: format allow-list and pixel cap
                pass
        except ImageError as e:
            raise DataError(f"{'/'.join(parts)[:80]} in the zip: {e}") from None
        done += info.file_size
        if n % 200 == 0:
            report(0.9 * done / total, f"Unpacking {n + 1:,}/{len(plan):,} files")


def import_zip(source, name: str, root: Path | None = None, progress: Progress | None = None) -> str:
    """Unpack a zip (a path or a binary file object) as data set folder:<name> under the data root
    and return that name. Either layout (class folders, or train/ and test/ each with class
    folders), optionally wrapped in one top-level folder. DataError, leaving nothing, otherwise."""
    from nin_explorer.learn.folders import split_files
    report = progress or (lambda fraction, message: None)
    root = Path(root) if root is not None else default_root()
    check_name(name)
    try:
        size = os.stat(source).st_size if isinstance(source, (str, os.PathLike)) else source.seek(0, 2)
    except OSError as e:
        raise DataError(f"Cannot read the zip {str(source)[:80]!r} ({e.strerror or e}).") from None
    if not isinstance(source, (str, os.PathLike)):
        source.seek(0)
    if size > MAX_ZIP_BYTES:
        raise DataError(f"That zip is {size / 2**20:,.0f} MB; at most {MAX_ZIP_BYTES // 2**20} MB is accepted.")
    if (root / name).exists():
        raise DataError(f"The data directory already has {name!r}; choose another name.")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        try:
            with zipfile.ZipFile(source) as archive:
                _unpack(archive, _plan(archive), tmp / "unpacked", report)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
            raise DataError(f"That file is not a zip that can be read ({str(e)[:60]}).") from None
        except FileExistsError as e:  # two entries with the same name
            raise DataError(f"The zip holds {Path(e.filename).name!r} twice; refused.") from None
        except OSError as e:
            raise DataError(f"The zip could not be unpacked ({e.strerror or e}).") from None
        layout = _unwrap(tmp / "unpacked")
        report(0.9, "Checking the images")
        split_files(layout.resolve(), root.resolve(), FOLDER_PREFIX + name)
        os.rename(layout, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, f"Imported {name}")
    return FOLDER_PREFIX + name
