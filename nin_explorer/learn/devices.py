"""Where a run computes, and how much memory it peaked at there.

The device a config asks for ('auto' included), one rank's device under torchrun, the memory
layout and autocast that suit a device, and the peak-memory probe the epoch events report.
"""
from __future__ import annotations

import sys

import torch

from nin_explorer.learn import distributed
from nin_explorer.learn.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA, then Apple's MPS, then the CPU."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("This machine has no CUDA GPU that torch can use; choose device "
                          "'auto' or 'cpu'.")
    if name == "mps" and not has_mps:
        raise ConfigError("This machine has no Apple GPU (MPS); choose device 'auto' or 'cpu'.")
    return torch.device(name)


def rank_device(group: distributed.Group, device: torch.device,
                batch_size: int) -> torch.device:
    """The device one rank trains on under torchrun: its own GPU (LOCAL_RANK) with NCCL, the CPU
    with gloo."""
    wanted = "cuda" if group.backend == "nccl" else "cpu"
    if device.type != wanted:
        raise ConfigError(f"Under torchrun on this machine the processes talk over "
                          f"{group.backend}, which needs device '{wanted}', but the run asks "
                          f"for '{device.type}'; choose device '{wanted}' or 'auto'.")
    if batch_size < group.world_size:
        raise ConfigError(f"The batch size ({batch_size}) is split over {group.world_size} "
                          f"processes; make it at least {group.world_size}.")
    return torch.device("cuda", group.local_rank) if wanted == "cuda" else device


def channels_last(device: torch.device) -> bool:
    """NHWC activations: faster with cuDNN, and with oneDNN on the CPU too (measured on the
    2-core dev CPU: tiny 3,300 vs 2,500 img/s, d2l at 224 about 1.3x)."""
    return device.type in ("cuda", "cpu")


def autocast(device: torch.device, precision: str):
    """The forward pass's autocast context: bf16 on CUDA when asked, else a no-op."""
    return torch.autocast("cuda", dtype=torch.bfloat16,
                          enabled=precision == "bf16" and device.type == "cuda")


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # elsewhere the peak is the process's lifetime peak


def peak_memory(device: torch.device) -> int | None:
    """Bytes: CUDA's peak allocation, or the process's peak resident set (None on Windows)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def memory_basis(device: torch.device) -> str:
    """What peak_memory() measures on `device`, as stored with each epoch's peaks."""
    return "cuda-allocated" if device.type == "cuda" else "process-rss"
