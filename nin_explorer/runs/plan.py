"""What a launch will cost before it starts: fitting a spec to a data set, time and memory.

Time comes from FLOPs: a training step costs about three forward passes (forward, and a
backward twice as dear), divided by a rate. The rate is this machine's measured examples/s
for the same network when the store has a run of it, else a rough device figure.

Memory: a run must fit what this machine has free now (RAM, or the GPU's free memory for a
CUDA run), with the run's optimiser, precision and evaluation batch (`check_fits`).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

from nin_explorer.learn.config import apply_recipe, memory_settings
from nin_explorer.net.render import human_bytes
from nin_explorer.net.spec import NetSpec, SpecError
from nin_explorer.net.summary import Memory, summarize

# Effective training FLOP/s, rough: 2-core AVX2 CPU (bench/train_cpu.py: tiny at ~3,300
# examples/s = 17.7 MFLOP each) and one H100 in bf16 (d2l at ~18,800 examples/s).
RATES_FLOPS = {"cpu": 5.5e10, "mps": 2.0e12, "cuda": 8.0e13}
SLOW_EPOCH_S = 600


def adapt_spec(spec: NetSpec, channels: int, num_classes: int) -> NetSpec:
    """The spec with the data set's input channels and classes (a GAP head's last block too)."""
    spec = spec.replace(in_channels=channels)
    if spec.num_classes == num_classes:
        return spec
    blocks = spec.blocks
    if spec.head == "gap":
        last = blocks[-1]
        widths = last.extra_1x1_channels[:-1] + (num_classes,) if last.extra_1x1_channels else ()
        if last.kind == "inception":
            last = dataclasses.replace(last, paths=(), kind="nin", out_channels=num_classes,
                                       kernel=1, n_extra_1x1=0)
        elif widths:
            last = dataclasses.replace(last, extra_1x1_channels=widths)
        else:
            last = dataclasses.replace(last, out_channels=num_classes)
        blocks = (*blocks[:-1], last)
    return spec.replace(blocks=blocks, num_classes=num_classes)


def adaptation_text(before: NetSpec, after: NetSpec, dataset: str) -> str:
    """What `adapt_spec` changed, as a sentence for the page that launches the run."""
    changes = []
    if before.in_channels != after.in_channels:
        changes.append(f"the first convolution takes {after.in_channels} input channel(s) instead of "
                       f"{before.in_channels}")
    if before.num_classes != after.num_classes:
        if before.head != "gap":
            where = "the fully connected head gives"
        elif before.blocks[-1].kind != after.blocks[-1].kind:
            where = f"the last {before.blocks[-1].kind} block becomes a 1x1 NiN block giving"
        else:
            where = "the last block's final convolution gives"
        changes.append(f"{where} {after.num_classes} class outputs instead of {before.num_classes}")
    return (f"`{dataset}` has {after.in_channels} channel(s) and {after.num_classes} classes, so "
            f"{before.name} is adapted: " + "; ".join(changes) + ".")


# Memory a worker holds besides the estimate: Python, torch and its kernels (a `tiny` run on
# `shapes` peaks at ~0.9-1 GB resident on the CPU for an 82 MiB estimate, docs/BENCHMARKS.md);
# on a GPU the CUDA context and cuDNN workspaces (a guess until measured there).
RUNTIME_BYTES = {"cpu": 800 * 2**20, "mps": 800 * 2**20, "cuda": 600 * 2**20}


class FitError(SpecError):
    """A run that would not fit this machine's free memory; `fit` says what it needs."""

    def __init__(self, message: str, fit: "RunMemory"):
        super().__init__(message)
        self.fit = fit


@dataclass(frozen=True)
class RunMemory:
    """What one run needs at its peak, and what the machine has free (None: not known)."""

    device: str
    train_bytes: int      # a training step: weights, gradients, optimiser state, activations
    eval_bytes: int       # an evaluation batch on top of the weights, gradients and state
    data_bytes: int       # the data set, held as uint8 (on the GPU too for a CUDA run)
    runtime_bytes: int    # RUNTIME_BYTES
    available_bytes: int | None

    @property
    def total_bytes(self) -> int:
        return max(self.train_bytes, self.eval_bytes) + self.data_bytes + self.runtime_bytes

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.total_bytes <= self.available_bytes

    @property
    def where(self) -> str:
        return "GPU memory" if self.device == "cuda" else "RAM"

    def text(self) -> str:
        """One line: the need, its parts, and what is free."""
        free = ("free memory unknown" if self.available_bytes is None
                else f"{human_bytes(self.available_bytes)} free")
        return (f"needs about {human_bytes(self.total_bytes)} of {self.where} (training "
                f"{human_bytes(self.train_bytes)}, evaluation {human_bytes(self.eval_bytes)}, "
                f"data {human_bytes(self.data_bytes)}, runtime {human_bytes(self.runtime_bytes)}); "
                f"{free}")


def available_memory_bytes(device: str = "cpu") -> int | None:
    """Memory free for a new run now: the GPU's (the least free of all, torchrun uses each) for
    CUDA, else RAM: MemAvailable of /proc/meminfo, else os.sysconf; None when neither says."""
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            return None
        return min(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _data_bytes(cfg) -> int:
    from nin_explorer.learn.data import DataError, dataset_info
    try:
        info = dataset_info(cfg.dataset)
    except (DataError, OSError, ValueError):
        return 0   # not known before loading: the worker reports it if it does not fit
    n = (min(cfg.max_train_examples or info.n_train, info.n_train)
         + min(cfg.max_test_examples or info.n_test, info.n_test))
    return n * info.channels * info.image_size ** 2


def run_memory(spec: NetSpec, cfg, device: str, available_bytes: int | None = None) -> RunMemory:
    """The peak memory of training `spec` with `cfg` (TrainConfig) on `device` ('cpu', 'cuda',
    'mps'), recipe applied. Raises SpecError when the network has no valid shapes."""
    spec, cfg = apply_recipe(spec, cfg)
    precision, optimizer = memory_settings(cfg.precision, cfg.optimizer, device)
    m: Memory = summarize(spec, cfg.batch_size, precision, optimizer).memory
    e: Memory = summarize(spec, cfg.eval_batch_size or cfg.batch_size, precision, optimizer).memory
    # train.py keeps the gradients (zero_grad comes before backward) and the state while evaluating
    held = m.weights_bytes + m.gradients_bytes + m.optimizer_bytes + m.weight_copies_bytes
    return RunMemory(device, m.train_bytes, held + e.infer_activations_bytes, _data_bytes(cfg),
                     RUNTIME_BYTES.get(device, RUNTIME_BYTES["cpu"]), available_bytes)


def check_fits(spec: NetSpec, cfg, available_bytes: int | None = None,
               device: str | None = None) -> RunMemory:
    """What the run needs, checked against this machine's free memory (`available_bytes`, read
    now when None). Raises SpecError for invalid shapes, FitError when it would not fit."""
    if device is None:
        from nin_explorer.learn.devices import resolve_device
        device = resolve_device(cfg.device).type
    if available_bytes is None:
        available_bytes = available_memory_bytes(device)
    fit = run_memory(spec, cfg, device, available_bytes)
    if not fit.fits:
        raise FitError(
            f"This run would not fit: it {fit.text()}. Lower the batch size, the evaluation "
            f"batch size or the input size, choose SGD over Adam, or wait for other runs to "
            f"finish.", fit)
    return fit


def check_fits_together(runs: list, at_once: int = 1, available_bytes: int | None = None,
                        device: str | None = None) -> list[RunMemory]:
    """`check_fits` for every (spec, cfg) of `runs` (an ablation, before any is queued), and for
    the `at_once` largest together, as they may run side by side. Raises FitError naming the run."""
    from nin_explorer.learn.devices import resolve_device
    fits, free = [], {}     # free memory read once per device: one snapshot for the whole batch
    for i, (spec, cfg) in enumerate(runs, 1):
        where = device or resolve_device(cfg.device).type
        if where not in free:
            free[where] = available_bytes if available_bytes is not None \
                else available_memory_bytes(where)
        try:
            fits.append(check_fits(spec, cfg, free[where], where))
        except FitError as e:
            raise FitError(f"Run {i} of {len(runs)} ({spec.name}): {e}", e.fit) from None
    for where in {f.device for f in fits}:
        same = sorted((f for f in fits if f.device == where), key=lambda f: -f.total_bytes)
        together, free = sum(f.total_bytes for f in same[:at_once]), same[0].available_bytes
        if at_once > 1 and len(same) > 1 and free is not None and together > free:
            n = min(at_once, len(same))
            raise FitError(
                f"These runs fit one at a time, but {n} at once would need about "
                f"{human_bytes(together)} of {same[0].where}, and {human_bytes(free)} is free. "
                f"Lower \"Runs at once\" or the batch size.", same[0])
    return fits


def estimate(spec: NetSpec, batch_size: int, n_train: int, n_test: int, device: str,
             measured_examples_per_s: float | None = None, optimizer: str = "sgd",
             precision: str = "fp32") -> dict:
    s = summarize(spec, batch_size, *memory_settings(precision, optimizer, device))
    if measured_examples_per_s:
        rate, basis = measured_examples_per_s, "measured in an earlier run of this network here"
    else:
        rate = RATES_FLOPS.get(device, RATES_FLOPS["cpu"]) / (3 * max(s.flops, 1))
        basis = f"a rough {device.upper()} figure from its FLOPs"
    # an evaluation pass costs about a third of a training pass per example
    epoch_s = n_train / rate + n_test / (3 * rate)
    return {"examples_per_sec": rate, "epoch_s": epoch_s, "basis": basis,
            "train_memory_bytes": s.memory.train_bytes, "infer_memory_bytes": s.memory.infer_bytes,
            "slow": epoch_s > SLOW_EPOCH_S}


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@functools.lru_cache(maxsize=256)
def smallest_input_size(spec: NetSpec, at_least: int = 8) -> int | None:
    """The smallest input size >= `at_least` at which the network has valid shapes (cached: the
    Train page asks on every rerun, and a scan one size at a time took 0.1 s for `d2l`)."""
    from nin_explorer.net.spec import MAX_INPUT_SIZE
    from nin_explorer.net.summary import ShapeError

    size = at_least
    while size <= MAX_INPUT_SIZE:
        try:
            summarize(spec.replace(input_size=size))
            return size
        except ShapeError as e:     # it knows the size where its shapes start to work
            if e.min_input_size is None:
                return None
            size = max(size + 1, e.min_input_size)
        except SpecError:
            size += 1
    return None
