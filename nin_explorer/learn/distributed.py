"""Training on several processes under torchrun: which process this is, and how ranks agree.

`torchrun` (python -m torch.distributed.run) sets WORLD_SIZE, RANK and LOCAL_RANK in each
process. With WORLD_SIZE unset or 1 nothing here does anything and a run trains in one process.
Rank 0 owns the run store; the other ranks learn what to train from it through a `Gate`.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nin_explorer.base.procs import launched

PARENT_POLL_S = 1.0   # how often a rank checks that its torchrun agent is still alive


@dataclass(frozen=True)
class Group:
    """This process's place among the ranks of one run."""

    rank: int
    world_size: int
    local_rank: int       # the GPU this process uses on its host
    backend: str          # nccl (CUDA) or gloo (CPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> Group | None:
    """The process group train() should use, or None for a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                 str(dist.get_backend()))


def start() -> Group | None:
    """Join the other ranks when launched by torchrun: NCCL on a CUDA machine (LOCAL_RANK picks
    the GPU), gloo elsewhere. Returns None, and does nothing, in a single process."""
    if not launched():
        return None
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        _exit_with_parent()
    return current()


def stop() -> None:
    """Leave the process group (a no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()  # leave together: a rank tearing down gloo alone can abort the other
        except RuntimeError:
            pass  # a rank has already gone; nothing to wait for
        dist.destroy_process_group()


def _exit_with_parent() -> None:
    """End this rank when its torchrun agent dies: the agent starts each rank in its own session,
    so a SIGKILL to the agent (the job manager's last resort) would otherwise leave the ranks
    holding their GPUs."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="nin-explorer-parent-watch", daemon=True).start()


def sum_all(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks, in place; every rank gets the same values."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def share_from_main(tensors) -> None:
    """Copy rank 0's values of `tensors` (e.g. BatchNorm statistics) to every rank, in place."""
    for t in tensors:
        dist.broadcast(t, src=0)


class Gate:
    """Rank 0 tells the other ranks, once, what to train (or None: nothing), after it has
    prepared the data, so they never wait in a collective rank 0 will not join.

    Rank 0 calls `open(job)`; later calls are ignored, so `open(None)` in a `finally` is safe.
    The other ranks call `wait()`. Without a process group both are no-ops.
    """

    def __init__(self, group: Group | None):
        self.group = group
        self.opened = group is None

    def open(self, job: dict | None) -> None:
        if self.opened or not self.group.is_main:
            return
        self.opened = True
        dist.broadcast_object_list([job], src=0)

    def wait(self) -> dict | None:
        box = [None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
