"""Reading many image files fast: headers and pixels in worker processes, kept in a content cache.

PIL's per-image Python work holds the GIL for small images, so threads do not help: a list of
PARALLEL_FROM files or more is split between `python -m` worker processes (never
multiprocessing: under Streamlit, spawn re-runs the page). What was read is kept under the data
root's CACHE_DIR, keyed by the files' names, sizes and mtimes: a second use reads one file, a
changed folder is read again. This module needs PIL only (its workers never import torch).
"""
from __future__ import annotations

import hashlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from nin_explorer.learn.data import DataError
from nin_explorer.learn.images import ImageError, image_bytes, open_image

CACHE_DIR = ".nin-explorer-cache"  # under the data root; hidden, so never listed as a data set
PARALLEL_FROM = 2000  # fewer files are read in this process (a worker takes ~0.3 s to start)
MAX_FILE_BYTES = 32 * 2**20  # a larger file is named as a bad file, never opened
_PROGRESS_EVERY = 500
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])

Progress = Callable[[float, str], None]


def probe_one(path: str) -> list | str:
    """[mode, width, height] of one image from its header, or the sentence saying why not."""
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return f"The file is over {MAX_FILE_BYTES // 2**20} MB; refused unread."
        with open_image(path) as image:
            return [image.mode, image.width, image.height]
    except ImageError as e:
        return str(e)
    except OSError as e:
        return f"The file cannot be opened ({e.strerror or e})."


def decode_one(path: str, channels: int, size: int) -> bytes | str:
    """The (size, size, channels) pixels of one image, or the sentence saying why not."""
    try:
        return image_bytes(path, channels, size)
    except ImageError as e:
        return str(e)
    except OSError as e:
        return f"The file cannot be opened ({e.strerror or e})."


def _run_task(task: dict, tick: Callable[[int], None]) -> list:
    out = []
    for i, path in enumerate(task["paths"]):
        out.append(probe_one(path) if task["kind"] == "probe"
                   else decode_one(path, task["channels"], task["size"]))
        if (i + 1) % _PROGRESS_EVERY == 0:
            tick(i + 1)
    return out


def _in_workers(task: dict, report: Progress, n_workers: int) -> list:
    """`_run_task(task)` split over `n_workers` subprocesses; their stdout carries progress."""
    paths = task["paths"]
    step = -(-len(paths) // n_workers)
    parts = [paths[i:i + step] for i in range(0, len(paths), step)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="nin-read-") as tmp:
        procs = []
        try:
            for w, part in enumerate(parts):
                Path(tmp, f"{w}.json").write_text(json.dumps({**task, "paths": part}))
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", __name__, str(Path(tmp, f"{w}.json")), str(Path(tmp, f"{w}.out"))],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env))
            _follow(procs, len(paths), report)
            for proc in procs:  # its stdout closes before it has quite exited
                proc.wait()
        finally:
            for proc in procs:  # only after an error here: stop the others
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if any(proc.returncode for proc in procs):
            raise DataError("A process reading the images stopped unexpectedly; try again.")
        return [item for w in range(len(parts)) for item in _read_output(Path(tmp, f"{w}.out"))]


def _follow(procs: list[subprocess.Popen], total: int, report: Progress) -> None:
    done = [0] * len(procs)
    selector = selectors.DefaultSelector()
    for w, proc in enumerate(procs):
        selector.register(proc.stdout, selectors.EVENT_READ, w)
    while selector.get_map():
        for key, _ in selector.select():
            line = key.fileobj.readline()
            if not line:
                selector.unregister(key.fileobj)
                continue
            done[key.data] = int(line)
            report(sum(done) / total, f"Reading images {sum(done):,}/{total:,}")
    selector.close()


def _write_output(results: list, out: Path) -> None:
    """Results as one JSON list (bytes become their index into a .bin file beside it)."""
    blobs, items = [], []
    for item in results:
        if isinstance(item, bytes):
            items.append(len(blobs))
            blobs.append(item)
        else:
            items.append(item)
    Path(str(out) + ".bin").write_bytes(b"".join(blobs))
    out.write_text(json.dumps({"items": items, "sizes": [len(b) for b in blobs]}))


def _read_output(out: Path) -> list:
    data = json.loads(out.read_text())
    blob = Path(str(out) + ".bin").read_bytes()
    starts, at = [], 0
    for n in data["sizes"]:
        starts.append((at, at + n))
        at += n
    return [blob[slice(*starts[item])] if isinstance(item, int) else item for item in data["items"]]


def run_files(task: dict, report: Progress) -> list:
    """One result per path of `task` ("probe" or "decode"), in parallel for many files."""
    n_workers = min(os.cpu_count() or 1, 4)
    if len(task["paths"]) >= PARALLEL_FROM and n_workers > 1:
        return _in_workers(task, report, n_workers)
    total = len(task["paths"])
    return _run_task(task, lambda n: report(n / total, f"Reading images {n:,}/{total:,}"))


# --- the content cache ---

def content_key(paths: list[str], root: Path) -> str:
    """What identifies these files' content: each one's name, size and mtime."""
    digest, skip = hashlib.sha256(), len(str(root)) + 1
    for path in map(str, paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path[skip:]}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path[skip:]}\0missing\n".encode())
    return digest.hexdigest()[:24]


def cache_file(root: Path, group: str, tag: str, key: str) -> Path:
    """Where `group`'s (a folder split's) `tag` read is kept for content `key`."""
    return root / CACHE_DIR / f"{hashlib.sha256(group.encode()).hexdigest()[:12]}-{tag}-{key}"


def store_cached(path: Path, write: Callable[[Path], None]) -> None:
    """Write the cache file atomically and drop the group's older reads; a read-only data
    root only costs the speed-up."""
    try:
        path.parent.mkdir(exist_ok=True)
        for old in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*"):
            old.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        pass


_last_probe: dict[str, list] = {}  # the latest folder's probes, kept in memory: train, then test


def probe_files(paths: list[str], root: Path, group: str, key: str, report: Progress) -> list:
    """`probe_one` of every path, from the cache when the files (`key`) are unchanged."""
    path = cache_file(root, group, "probe", key).with_suffix(".json")
    if str(path) in _last_probe:
        return _last_probe[str(path)]
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = run_files({"kind": "probe", "paths": paths}, report)
        store_cached(path, lambda tmp: tmp.write_text(json.dumps(results)))
    _last_probe.clear()
    _last_probe[str(path)] = results
    return results


def _main(task_file: str, out_file: str) -> None:
    def tick(n):
        print(n, flush=True)
    results = _run_task(json.loads(Path(task_file).read_text()), tick)
    _write_output(results, Path(out_file))


if __name__ == "__main__":
    _main(*sys.argv[1:3])
