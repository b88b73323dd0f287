"""Writing files that readers only ever see whole: tmp file in the same folder, fsync, rename."""
from __future__ import annotations

import os
import threading
from pathlib import Path


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` atomically: `path.tmp-<thread>-<pid>` beside it, flushed and fsynced,
    then renamed over `path` (POSIX rename is atomic), so a reader or a second writer never
    sees half a file. A save killed midway leaves only its tmp file (see store.remove_stale_tmp)."""
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
