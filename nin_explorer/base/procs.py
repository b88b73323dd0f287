"""Which process is which: a pid with its start time, our worker processes, torchrun's ranks.

Liveness is decided by pid and Linux start time, so a pid the system gave to another process
since is not mistaken for the worker that once had it. No torch here: the CLI's summary path
and the run store import this.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

WORKER_MODULE = "nin_explorer.runs.worker"


def process_start(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid (Linux start time).

    None when the process does not exist, is a zombie, or the platform has no /proc.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    after_name = stat[stat.rfind(")") + 2:].split()   # the name may hold spaces and ')'
    if after_name[0] in ("Z", "X"):
        return None
    return after_name[19]                              # field 22: start time in clock ticks


def process_alive(pid: int | None, start: str | None) -> bool:
    """Whether the process that was `pid` when `start` was recorded is still running."""
    if not pid:
        return False
    if Path("/proc").is_dir():
        token = process_start(pid)
        return token is not None and (start is None or token == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_worker(pid: int) -> bool:
    """Whether `pid` runs our worker module (only those get signals; a CLI run gets the flag)."""
    try:
        return WORKER_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def launched() -> bool:
    """Whether torchrun started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_process(code: int) -> None:
    """Leave with `code`. Under torchrun, skip C++ static destructors at exit: gloo's can abort
    a rank that has already finished cleanly ("terminate called without an active exception")."""
    if launched():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
