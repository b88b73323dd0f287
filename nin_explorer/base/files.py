"""Writing files that readers only ever see whole: tmp file in the same folder, fsync, rename."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from nin_explorer.base.procs import process_alive

STALE_TMP_S = 600.0    # a tmp file not written to for this long is a dead save's


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` atomically: `path.tmp-<thread>-<pid>` beside it, flushed and fsynced,
    then renamed over `path` (POSIX rename is atomic), so a reader or a second writer never
    sees half a file. A save killed midway leaves only its tmp file (see remove_stale_tmp)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per thread too (server sessions share a pid); the pid stays last for remove_stale_tmp
    tmp = path.with_name(f"{path.name}.tmp-{threading.get_ident()}-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_tmp(folder: Path, name: str) -> list[Path]:
    """Delete `name`.tmp-* files that an atomic_save killed midway left behind: their process
    is gone, or they have not been written to for STALE_TMP_S. Returns what was removed."""
    removed = []
    for tmp in folder.glob(f"{name}.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        try:
            dead = not pid.isdigit() or not process_alive(int(pid), None)
            if dead or time.time() - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
                removed.append(tmp)
        except OSError:     # removed meanwhile by its own save, or not ours to remove
            continue
    return removed
