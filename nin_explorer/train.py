"""How a network learns here: the training config, the two recipes, and the loop.

`train()` reports plain dicts through a callback and never draws, so the same loop runs in the
CLI, in the worker process and in the benchmarks. No streamlit or plotly, and no torch API newer
than 2.11 (the GPU benchmark runs on a bare torch install).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .build import build_model, init_xavier
from .spec import MAX_INPUT_SIZE, NetSpec

OPTIMIZERS = ("sgd", "sgd-momentum", "adamw", "adam")
SCHEDULES = ("constant", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# torch.compile modes; "reduce-overhead" also replays the step as a CUDA graph on a GPU.
COMPILE_MODES = ("off", "default", "reduce-overhead")

# Metrics are read from the device, and should_stop() polled, at most this often: reading a
# device tensor waits for the GPU, so the loop never does it once per step.
SYNC_INTERVAL_S = 0.25
# A warm-up (and one-cycle's rise) starts at this fraction of the peak learning rate.
WARMUP_START = 0.04
ONECYCLE_RISE = 0.25  # share of the run one-cycle spends rising when warmup_epochs is 0

Report = Callable[[dict], None]
ShouldStop = Callable[[], bool]
Checkpoint = Callable[[dict], None]


class ConfigError(ValueError):
    """A training setting a learner must change; the message says what to change."""


# --- recipes ---

@dataclass(frozen=True)
class Recipe:
    """A named set of config defaults plus what it does to the network."""

    name: str
    title: str
    description: str
    defaults: MappingProxyType     # TrainConfig fields
    batch_norm: bool               # add BatchNorm to every block of the spec
    xavier_init: bool              # Xavier-uniform conv and linear weights (else torch's init)


RECIPES: dict[str, Recipe] = {
    "book": Recipe(
        "book", "The book (d2l.ai 7.3)",
        "Xavier-uniform init, plain SGD at lr 0.1, batch 128, 10 epochs, constant learning "
        "rate, fp32, pixels scaled to [0, 1] with no normalisation.",
        MappingProxyType(dict(epochs=10, batch_size=128, lr=0.1, optimizer="sgd",
                              weight_decay=0.0, schedule="constant", warmup_epochs=0.0,
                              label_smoothing=0.0, precision="fp32")),
        batch_norm=False, xavier_init=True),
    # The tiny preset's best recipe on `shapes` (bench/train_cpu.py measures it).
    "modern": Recipe(
        "modern", "Modern",
        "BatchNorm after every conv, SGD with Nesterov momentum 0.9, one-cycle learning rate "
        "peaking at 0.1, weight decay 5e-4, label smoothing 0.1, bf16 on a CUDA GPU.",
        MappingProxyType(dict(epochs=10, batch_size=128, lr=0.1, optimizer="sgd-momentum",
                              weight_decay=5e-4, schedule="onecycle", warmup_epochs=0.0,
                              label_smoothing=0.1, precision="bf16")),
        batch_norm=True, xavier_init=False),
    # The course notes' settings; per-network values come from COURSE_SETTINGS.
    "course": Recipe(
        "course", "Course notes",
        "The settings the course notes train each network with: Xavier init, no BatchNorm, "
        "fp32; AlexNet Adam 0.001 for 3 epochs, narrow VGG-11 Adam 0.001 for 5 epochs at batch "
        "64, NiN Adam 0.002 for 5 epochs, GoogLeNet SGD 0.1 for 5 epochs at 96x96.",
        MappingProxyType(dict(epochs=5, batch_size=128, lr=0.002, optimizer="adam",
                              weight_decay=0.0, schedule="constant", warmup_epochs=0.0,
                              label_smoothing=0.0, precision="fp32")),
        batch_norm=False, xavier_init=True),
}


# Per-network settings of the course recipe, by preset name: what the course notes train with.
COURSE_SETTINGS = {
    "alexnet": dict(optimizer="adam", lr=0.001, epochs=3),
    "vgg11": dict(optimizer="adam", lr=0.001, epochs=5, batch_size=64),
    "vgg11-narrow": dict(optimizer="adam", lr=0.001, epochs=5, batch_size=64),
    "d2l": dict(optimizer="adam", lr=0.002, epochs=5),
    "googlenet": dict(optimizer="sgd", lr=0.1, epochs=5, input_size=96),
}


def recipe_defaults(recipe: str, network: str) -> dict:
    """The config values a recipe sets for a network (the course recipe differs per network)."""
    if recipe not in RECIPES:
        raise ConfigError(f"Recipe must be one of {', '.join(RECIPES)}, not {recipe!r:.40}.")
    extra = COURSE_SETTINGS.get(network, {}) if recipe == "course" else {}
    return {**RECIPES[recipe].defaults, **extra}


# --- the config ---

@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run except the network. Defaults are the book recipe's."""

    dataset: str = "shapes"
    input_size: int | None = None      # None: the spec's input size
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1                    # the peak learning rate for warm-up and one-cycle
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0         # for one-cycle: the rise; 0 means a quarter of the run
    label_smoothing: float = 0.0
    recipe: str = "book"
    precision: str = "fp32"            # bf16 applies on CUDA only; elsewhere the run uses fp32
    device: str = "auto"
    seed: int = 0
    eval_every: int = 25               # steps per point of the step-level curve
    max_train_examples: int | None = None  # a random subset (seeded) of the training split
    max_test_examples: int | None = None   # the first N test images: the same for every run
    time_budget_s: float | None = None
    # --- speed only: the same training, faster on a GPU (bench/train_gpu.py measures them) ---
    compile: str = "off"               # a torch.compile mode (COMPILE_MODES); minutes on a CPU
    eval_batch_size: int | None = None  # None: the training batch size
    fused_optimizer: bool = True       # one fused kernel per optimiser step; CUDA only
    # --- bookkeeping: what an ablation's run tries ("Head = fc"), kept for its results table ---
    ablation_setting: str | None = None

    def __post_init__(self):
        _validate(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> "TrainConfig":
        """Missing fields take the defaults of the dict's recipe (book when none is given)."""
        if not isinstance(d, dict):
            raise ConfigError("A training config must be a JSON object with keys such as "
                              "'epochs' and 'lr'.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, d)) - known)
        if unknown:
            raise ConfigError(f"Unknown training setting(s): {', '.join(unknown[:5])}. "
                              f"Known: {', '.join(sorted(known))}.")
        recipe = d.get("recipe", "book")
        if not isinstance(recipe, str) or recipe not in RECIPES:
            raise ConfigError(f"Recipe must be one of {', '.join(RECIPES)}, not {recipe!r:.40}.")
        values = {**RECIPES[recipe].defaults, **d}
        _check_types(values)
        return cls(**values)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


_KINDS = {"int": ((int,), "whole number"), "float": ((int, float), "number"),
          "str": ((str,), "text"), "bool": ((bool,), "boolean (true or false)")}


def _check_types(values: dict) -> None:
    for f in fields(TrainConfig):
        if f.name not in values:
            continue
        value = values[f.name]
        base, _, optional = str(f.type).partition(" | ")   # "int | None" -> "int", "None"
        if value is None and optional:
            continue
        types, kind = _KINDS[base]
        if not isinstance(value, types) or (isinstance(value, bool) and base != "bool"):
            raise ConfigError(f"'{f.name}' must be a {kind}, not {value!r:.40}.")


def _choice(what: str, value, options) -> None:
    if value not in options:
        raise ConfigError(f"{what} must be one of {', '.join(options)}, not {value!r:.40}.")


def _in_range(what: str, value, low, high, unit: str = "") -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{what} must be between {low:g} and {high:g}{unit} "
                          f"(it is {value!r:.40}).")


def _validate(c: TrainConfig) -> None:
    _check_types(dataclasses.asdict(c))
    if not c.dataset or len(c.dataset) > 300:
        raise ConfigError("Choose a data set (a name such as 'shapes', or folder:<path>).")
    if c.input_size is not None:
        _in_range("The input size", c.input_size, 1, MAX_INPUT_SIZE, " pixels")
    _in_range("The number of epochs", c.epochs, 1, 1000)
    _in_range("The batch size", c.batch_size, 1, 4096)
    if not (math.isfinite(c.lr) and 0 < c.lr <= 1e6):
        raise ConfigError("The learning rate must be above 0 and at most 1e6 "
                          f"(it is {c.lr!r:.40}).")
    _choice("Optimizer", c.optimizer, OPTIMIZERS)
    _in_range("Weight decay", c.weight_decay, 0, 1)
    _choice("Schedule", c.schedule, SCHEDULES)
    _in_range("Warm-up", c.warmup_epochs, 0, c.epochs, " epochs (the length of the run)")
    if not 0 <= c.label_smoothing < 1:
        raise ConfigError("Label smoothing must be at least 0 and below 1 "
                          f"(it is {c.label_smoothing!r:.40}); 0.1 is usual.")
    _choice("Recipe", c.recipe, tuple(RECIPES))
    _choice("Precision", c.precision, PRECISIONS)
    _choice("Device", c.device, DEVICES)
    _choice("Compile", c.compile, COMPILE_MODES)
    if c.eval_batch_size is not None:
        _in_range("The evaluation batch size", c.eval_batch_size, 1, 65536)
    _in_range("The seed", c.seed, 0, 2**31 - 1)
    _in_range("eval_every", c.eval_every, 1, 100_000, " steps")
    if c.max_train_examples is not None:
        _in_range("max_train_examples", c.max_train_examples, 1, 10**8)
    if c.max_test_examples is not None:
        _in_range("max_test_examples", c.max_test_examples, 1, 10**8)
    if c.time_budget_s is not None and not (math.isfinite(c.time_budget_s)
                                            and 0 < c.time_budget_s <= 7 * 86400):
        raise ConfigError("The time budget must be above 0 and at most a week "
                          f"(it is {c.time_budget_s!r:.40} s); leave it empty for no limit.")


def apply_recipe(spec: NetSpec, cfg: TrainConfig) -> tuple[NetSpec, TrainConfig]:
    """The network and config a run really uses: the recipe's changes to the spec, and the
    config's input size. Config defaults come from the recipe already (TrainConfig.from_dict)."""
    if cfg.input_size is not None and cfg.input_size != spec.input_size:
        spec = spec.replace(input_size=cfg.input_size)
    if RECIPES[cfg.recipe].batch_norm:
        spec = spec.replace(blocks=tuple(dataclasses.replace(b, batch_norm=True)
                                         for b in spec.blocks))
    return spec, cfg.replace(input_size=spec.input_size)


# --- pieces of the loop ---

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


def _rank_device(group: distributed.Group, device: torch.device,
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


def make_optimizer(params, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """`fused` (CUDA parameters only): the whole update in one kernel instead of one per tensor."""
    extra = {"fused": True} if fused else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    if cfg.optimizer == "sgd-momentum":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True,
                               weight_decay=cfg.weight_decay, **extra)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)


def lr_factor(cfg: TrainConfig, progress: float) -> float:
    """The learning rate as a share of cfg.lr, at `progress` (0 to 1) through the run."""
    rise = cfg.warmup_epochs / cfg.epochs
    if cfg.schedule == "onecycle" and rise == 0:
        rise = ONECYCLE_RISE
    if progress < rise:
        return WARMUP_START + (1 - WARMUP_START) * progress / rise
    if cfg.schedule == "constant":
        return 1.0
    done = (progress - rise) / (1 - rise) if rise < 1 else 0.0
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * done))
    return max(0.0, 1 - done)  # one-cycle: straight down to zero


class DivergenceDetector:
    """Says when training has failed for good, from the losses it is shown one at a time.

    Three ways: the loss is not a finite number; it explodes far above chance; or, after having
    been clearly below ln(num_classes) (the loss of uniform guessing), it comes back to within
    `tolerance` of it and stays there for `patience` evaluations in a row (the book's collapse:
    dead ReLUs, constant outputs).
    """

    def __init__(self, num_classes: int, tolerance: float = 0.02, patience: int = 3,
                 clear_margin: float = 0.2):
        self.chance = math.log(num_classes)
        self.tolerance = tolerance
        self.patience = patience
        self.clear_margin = clear_margin
        self.best = math.inf
        self.streak = 0

    def update(self, loss: float) -> str | None:
        """A reason string once the run has diverged, else None."""
        if not math.isfinite(loss):
            return (f"The training loss became {loss} (not a finite number): the learning "
                    "rate is too high for this network. Lower it, or add BatchNorm.")
        if loss > 100 * max(1.0, self.chance):
            return (f"The training loss exploded to {loss:.3g} (guessing gives "
                    f"{self.chance:.3f}): the learning rate is too high. Lower it.")
        was_learning = self.best <= self.chance - self.clear_margin
        if was_learning and abs(loss - self.chance) <= self.tolerance:
            self.streak += 1
        else:
            self.streak = 0
        self.best = min(self.best, loss)
        if self.streak >= self.patience:
            return (f"The training loss fell to {self.best:.3f}, then rose back to {loss:.3f}, "
                    f"within {self.tolerance} of ln(classes) = {self.chance:.3f} (uniform "
                    f"guessing), and stayed there for {self.patience} evaluations: the network "
                    "collapsed (typically dead ReLUs after a too-large step). Try a lower "
                    "learning rate, a warm-up, or BatchNorm.")
        return None


def _channels_last(device: torch.device) -> bool:
    """NHWC activations: faster with cuDNN, and with oneDNN on the CPU too (measured on the
    2-core dev CPU: tiny 3,300 vs 2,500 img/s, d2l at 224 about 1.3x)."""
    return device.type in ("cuda", "cpu")


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # elsewhere the peak is the process's lifetime peak


def _peak_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def to_input(images: torch.Tensor, size: int, channels_last: bool = False) -> torch.Tensor:
    """uint8 images on the device -> floats in [0, 1] at the size the network takes."""
    x = images.float().div_(255)                                   # (B, C, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < x.shape[-1])            # (B, C, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _check_data(spec: NetSpec, data, what: str) -> None:
    images, labels = data.images, data.labels
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ConfigError(f"The {what} images must be uint8 (N, C, H, W); got {images.dtype} "
                          f"with shape {tuple(images.shape)}.")
    if len(images) == 0 or len(images) != len(labels):
        raise ConfigError(f"The {what} split has {len(images)} images and {len(labels)} labels.")
    if images.shape[1] != spec.in_channels:
        raise ConfigError(
            f"The network takes {spec.in_channels}-channel images but {data.name} has "
            f"{images.shape[1]} channel(s); set the network's input channels to {images.shape[1]}.")
    n_classes = int(labels.max()) + 1
    if n_classes > spec.num_classes:
        raise ConfigError(
            f"{data.name} has {n_classes} classes but the network has {spec.num_classes} "
            f"outputs; set the number of classes to {n_classes}.")


# --- the result ---

@dataclass(frozen=True)
class TrainResult:
    status: str                       # completed, stopped or diverged
    reason: str                       # why it ended, in a sentence
    final_test_acc: float | None
    best_test_acc: float | None
    final_test_loss: float | None
    train_loss: float | None          # the last epoch's mean training loss
    train_acc: float | None
    examples_per_sec: float           # training examples per second of training time
    wall_s: float
    epochs: int                       # epochs started (the last may be partial)
    steps: int
    device: str
    precision: str                    # what ran: bf16 only on CUDA

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- the loop ---

def _evaluate(model, images, labels, batch_size, size, channels_last, autocast,
              should_stop: ShouldStop, reduce=None) -> tuple[float, float] | None:
    """(mean cross-entropy, accuracy) on a split, or None when a stop was requested.

    Under torchrun each rank passes its shard of the split and `reduce` sums over the ranks.
    """
    model.eval()
    sums = torch.zeros(3, device=images.device)                   # loss sum, correct, examples
    sums[2] = len(images)
    last_poll = time.perf_counter()
    with torch.no_grad():  # not inference_mode: the compiled (CUDA-graph) model trains too
        for start in range(0, len(images), batch_size):
            end = start + batch_size
            x, y = to_input(images[start:end], size, channels_last), labels[start:end]
            with autocast():
                logits = model(x).float()                          # (B, n_classes)
            sums[0] += F.cross_entropy(logits, y, reduction="sum")
            sums[1] += (logits.argmax(1) == y).sum()
            if time.perf_counter() - last_poll >= SYNC_INTERVAL_S:
                last_poll = time.perf_counter()
                if should_stop():
                    model.train()
                    return None
    model.train()
    if reduce is not None:
        sums = reduce(sums)
    loss_sum, correct, count = sums.tolist()
    return loss_sum / count, correct / count


def _never() -> bool:
    return False


def _ignore(event: dict) -> None:
    pass


def train(spec: NetSpec, cfg: TrainConfig, train_data, test_data, report: Report,
          should_stop: ShouldStop, checkpoint: Checkpoint | None = None) -> TrainResult:
    """Train `spec` on `train_data` (uint8 images), evaluating on `test_data` after each epoch.

    `report` gets plain dicts: one {"kind": "start", ...}, then "step" events every
    `cfg.eval_every` steps and an "epoch" event after each evaluation. `should_stop()` is polled
    every SYNC_INTERVAL_S; `checkpoint(state)` gets a dict of tensors and builtins per epoch.
    Raises ConfigError for a data set that does not fit the network or a missing device.

    Under torchrun (a process group is initialised, see distributed.py) every rank calls this
    with the same arguments: each takes its share of every batch of `cfg.batch_size` (the global
    batch) and of the test set, and the ranks agree every `cfg.eval_every` steps on the metrics
    and on stopping (any rank's should_stop() stops all). Only rank 0 calls report and
    checkpoint; the events hold the sums over all ranks.
    """
    t_start = time.perf_counter()
    spec, cfg = apply_recipe(spec, cfg)
    recipe = RECIPES[cfg.recipe]
    device = resolve_device(cfg.device)
    group = distributed.current()
    rank, world = (group.rank, group.world_size) if group else (0, 1)
    if group:
        device = _rank_device(group, device, cfg.batch_size)
        if not group.is_main:
            report, checkpoint = _ignore, None
    on_cuda = device.type == "cuda"
    precision = cfg.precision if on_cuda else "fp32"  # bf16 autocast is 25-40x slower on AVX2 CPUs
    channels_last = _channels_last(device)
    _check_data(spec, train_data, "training")
    _check_data(spec, test_data, "test")

    # --- model and optimiser ---
    torch.manual_seed(cfg.seed)
    model = build_model(spec)
    if recipe.xavier_init:
        init_xavier(model)
    if group and on_cuda:  # BatchNorm statistics over the global batch (SyncBatchNorm is GPU-only)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # one input shape for the whole run
    optimizer = make_optimizer(model.parameters(), cfg, fused=on_cuda and cfg.fused_optimizer)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    net = model                                   # what a training step calls
    if group:
        torch.manual_seed(cfg.seed + rank)        # same weights everywhere, own dropout masks
        net = DistributedDataParallel(model, device_ids=[device.index] if on_cuda else None)
    eval_net = model
    if cfg.compile != "off":
        net = torch.compile(net, mode=cfg.compile)
        eval_net = torch.compile(model, mode=cfg.compile) if group else net
    graphs = cfg.compile == "reduce-overhead" and on_cuda

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16" and on_cuda)

    # --- data: on the device once, as uint8 ---
    shuffle = torch.Generator().manual_seed(cfg.seed)
    x_train, y_train = train_data.images, train_data.labels
    if cfg.max_train_examples is not None and cfg.max_train_examples < len(x_train):
        keep = torch.randperm(len(x_train), generator=shuffle)[:cfg.max_train_examples]
        x_train, y_train = x_train[keep], y_train[keep]
    x_train, y_train = x_train.to(device), y_train.to(device)
    n_test = min(cfg.max_test_examples or len(test_data.images), len(test_data.images))
    lo, hi = rank * n_test // world, (rank + 1) * n_test // world   # this rank's test shard
    x_test, y_test = test_data.images[lo:hi].to(device), test_data.labels[lo:hi].to(device)
    n, size, batch_size = len(x_train), spec.input_size, cfg.batch_size
    eval_batch_size = cfg.eval_batch_size or batch_size
    # this rank's slice of every global batch (sizes differ by at most one)
    mine = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    steps_per_epoch = max(1, n // batch_size)   # drop the ragged last batch; reshuffled each epoch
    total_steps = cfg.epochs * steps_per_epoch
    detector = DivergenceDetector(spec.num_classes)
    device_label = f"{device.type} x{world}" if group else str(device)

    report({"kind": "start", "device": device_label, "precision": precision,
            "channels_last": channels_last, "params": sum(p.numel() for p in model.parameters()),
            "train_examples": n, "test_examples": n_test, "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps, "input_size": size, "processes": world,
            "spec": spec.to_dict(), "config": cfg.to_dict()})

    # --- running state (device tensors are read only in sync()) ---
    window = torch.zeros(3, device=device)        # loss sum, correct, examples since the last point
    epoch_sums = torch.zeros(3, device=device)
    pending: list[tuple[int, float, torch.Tensor, float, float, float]] = []
    step, epoch, lr = 0, 0, cfg.lr
    train_time = 0.0                              # seconds spent in training steps
    clock_s = 0.0                                 # rank 0's seconds since t_start at the last sync
    budget_hit = False
    last_sync = last_point = last_read = time.perf_counter()
    status, reason = "completed", f"Trained for {cfg.epochs} epoch(s)."
    best_acc = final_acc = final_test_loss = train_loss = train_acc = None

    def take_point() -> None:
        nonlocal last_point
        now = time.perf_counter()
        pending.append((step, step / steps_per_epoch, window.clone(), lr, now - last_point,
                        now - t_start))
        epoch_sums.add_(window)
        window.zero_()
        last_point = now

    def stopped() -> tuple[str, str]:
        return "stopped", f"Stopped on request after {step} steps."

    def sync() -> tuple[str, str] | None:
        """Read the pending points (one host sync) and report them; (status, reason) to end.

        Under torchrun every rank calls it at the same steps: one all-reduce carries the points,
        the stop votes and rank 0's clock, so all ranks reach the same verdict.
        """
        nonlocal last_sync, last_read, clock_s, budget_hit
        last_sync = time.perf_counter()
        verdict = None
        windows = torch.stack([p[2] for p in pending]) if pending else window.new_zeros(0, 3)
        if group:
            votes = [float(should_stop()), last_sync - t_start if group.is_main else 0.0]
            shared = distributed.sum_all(torch.cat([window.new_tensor(votes), windows.flatten()]))
            stop_votes, clock_s, *flat = shared.tolist()
            values = [flat[i:i + 3] for i in range(0, len(flat), 3)]
            budget_hit = budget_hit or bool(cfg.time_budget_s and clock_s >= cfg.time_budget_s)
        else:
            values = windows.tolist()
        # On a GPU the host runs ahead of the kernels, so a point's host interval says little:
        # every point of this read gets the rate over the time since the last read (both synced).
        read_at = time.perf_counter()
        span_rate = (sum(v[2] for v in values) / (read_at - last_read)
                     if on_cuda and read_at > last_read else None)
        last_read = read_at
        for (p_step, p_epoch, _, p_lr, dt, elapsed), (loss_sum, correct, count) in zip(pending,
                                                                                        values):
            if count == 0:
                continue
            loss = loss_sum / count
            report({"kind": "step", "step": p_step, "epoch": round(p_epoch, 4),
                    "train_loss": loss, "train_acc": correct / count, "lr": p_lr,
                    "examples_per_sec": span_rate or (count / dt if dt > 0 else None),
                    "elapsed_s": elapsed})
            verdict = verdict or detector.update(loss)
        pending.clear()
        if verdict:
            return "diverged", verdict
        asked = stop_votes > 0 if group else should_stop()
        return stopped() if asked else None

    model.train()
    outcome = None
    while epoch < cfg.epochs and outcome is None:
        epoch += 1
        _reset_peak_memory(device)
        perm = torch.randperm(n, generator=shuffle).to(device)
        t_epoch = last_point = last_read = time.perf_counter()  # examples/s leaves evaluation out
        budget_hit = False
        for i in range(steps_per_epoch):
            # --- one step ---
            progress = step / total_steps
            if cfg.time_budget_s:
                elapsed = clock_s if group else time.perf_counter() - t_start
                progress = max(progress, elapsed / cfg.time_budget_s)
            lr = cfg.lr * lr_factor(cfg, min(progress, 1.0))
            for g in optimizer.param_groups:
                g["lr"] = lr
            idx = perm[i * batch_size:(i + 1) * batch_size][mine]
            x, y = to_input(x_train[idx], size, channels_last), y_train[idx]
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast():
                logits = net(x).float()                            # (B, n_classes)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; weigh each rank by its share of the batch
            (loss * (len(y) * world / batch_size) if group else loss).backward()
            optimizer.step()
            with torch.no_grad():
                window[0] += loss.detach() * len(y)
                window[1] += (logits.argmax(1) == y).sum()
                window[2] += len(y)
            step += 1
            if step == 1 and on_cuda:  # the first step's time is when it ran, not when it queued
                torch.cuda.synchronize(device)
            if step % cfg.eval_every == 0:
                take_point()
            if group:  # ranks sync at the same steps; their clocks differ
                due = step % cfg.eval_every == 0
            else:
                now = time.perf_counter()
                if cfg.time_budget_s and now - t_start >= cfg.time_budget_s:
                    budget_hit = True
                due = now - last_sync >= SYNC_INTERVAL_S or budget_hit
            if due:
                outcome = sync()
                if outcome:
                    break
            if budget_hit:
                break
        if step % cfg.eval_every:
            take_point()
        outcome = outcome or sync()
        epoch_train_time = time.perf_counter() - t_epoch
        train_time += epoch_train_time
        peak_train = _peak_memory(device)
        if outcome:
            status, reason = outcome
            break

        # --- evaluate ---
        _reset_peak_memory(device)
        t_eval = time.perf_counter()
        if group:  # every rank evaluates with rank 0's BatchNorm statistics
            distributed.share_from_main(model.buffers())
        evaluated = _evaluate(eval_net, x_test, y_test, eval_batch_size, size, channels_last,
                              autocast, _never if group else should_stop,
                              distributed.sum_all if group else None)
        if evaluated is None:
            status, reason = stopped()
            break
        eval_s = time.perf_counter() - t_eval
        final_test_loss, final_acc = evaluated
        best_acc = max(best_acc or 0.0, final_acc)
        if group:
            distributed.sum_all(epoch_sums)
        loss_sum, correct, count = epoch_sums.tolist()
        epoch_sums.zero_()
        train_loss, train_acc = loss_sum / count, correct / count
        peak_infer = _peak_memory(device)
        report({"kind": "epoch", "step": step, "epoch": epoch, "train_loss": train_loss,
                "train_acc": train_acc, "test_loss": final_test_loss, "test_acc": final_acc,
                "lr": lr, "examples_per_sec": count / epoch_train_time, "eval_s": eval_s,
                "elapsed_s": time.perf_counter() - t_start,
                "peak_memory_bytes": max(peak_train or 0, peak_infer or 0) or None,
                "peak_train_memory_bytes": peak_train, "peak_infer_memory_bytes": peak_infer,
                "memory_basis": "cuda-allocated" if on_cuda else "process-rss"})
        if checkpoint is not None:
            checkpoint({"model": {k: v.detach().to("cpu", copy=True).contiguous()
                                  for k, v in model.state_dict().items()},
                        "spec": spec.to_dict(), "config": cfg.to_dict(), "epoch": epoch,
                        "classes": list(train_data.classes), "test_acc": final_acc})
        if budget_hit:
            reason = (f"Stopped at the time budget of {cfg.time_budget_s:g} s, "
                      f"during epoch {epoch} of {cfg.epochs}.")
            break
        if epoch < cfg.epochs:
            outcome = sync()  # a stop requested during evaluation
            if outcome:
                status, reason = outcome

    return TrainResult(
        status=status, reason=reason, final_test_acc=final_acc, best_test_acc=best_acc,
        final_test_loss=final_test_loss, train_loss=train_loss, train_acc=train_acc,
        examples_per_sec=step * batch_size / train_time if train_time > 0 else 0.0,
        wall_s=time.perf_counter() - t_start, epochs=epoch, steps=step, device=device_label,
        precision=precision)
