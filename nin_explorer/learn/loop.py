"""The pieces the training loop is made of: the update rule, the metrics it keeps, and the
checks that can end a run (divergence, a stop request, the time budget).

Reading a device tensor waits for the GPU, so nothing here reads one per step: the sums stay on
the device and are read at most every SYNC_INTERVAL_S (every `eval_every` steps under torchrun,
where the ranks must read at the same steps).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nin_explorer.learn import distributed
from nin_explorer.learn.config import TrainConfig
from nin_explorer.learn.device_data import DeviceData

SYNC_INTERVAL_S = 0.25
# A warm-up (and one-cycle's rise) starts at this fraction of the peak learning rate.
WARMUP_START = 0.04
ONECYCLE_RISE = 0.25  # share of the run one-cycle spends rising when warmup_epochs is 0

Report = Callable[[dict], None]
ShouldStop = Callable[[], bool]
Verdict = tuple[str, str]        # (status, reason) of a run that must end


# --- the update rule ---

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


# --- what the loop measures ---

@dataclass
class _Point:
    """One closed window of the step-level curve, its sums still on the device."""
    step: int
    epoch: float
    sums: torch.Tensor                # loss sum, correct, examples
    lr: float
    dt: float                         # host seconds the window took
    elapsed: float                    # seconds since the run started


class MetricWindow:
    """Training loss and accuracy summed on the device since the last point of the curve.

    `add` after each step costs no host sync; `close` ends a point (every eval_every steps and
    at each epoch's end); `read` turns the closed points into "step" events with one host sync,
    under torchrun one all-reduce that also sums a few numbers of the caller's.
    """

    def __init__(self, device: torch.device, group, t_start: float, steps_per_epoch: int):
        self.sums = torch.zeros(3, device=device)          # loss sum, correct, examples
        self.epoch_sums = torch.zeros(3, device=device)    # of the epoch's closed points
        self.pending: list[_Point] = []
        self.group, self.t_start, self.steps_per_epoch = group, t_start, steps_per_epoch
        # On a GPU the host runs ahead of the kernels, so a point's host interval says little:
        # every point of a read gets the rate over the time since the last read (both synced).
        self.rate_from_reads = device.type == "cuda"
        self.last_point = self.last_read = self.epoch_start = time.perf_counter()
        self.epoch_s = self.train_s = 0.0        # seconds of training: this epoch's, the run's

    def new_epoch(self) -> None:
        """Start the clocks again: examples/s leaves evaluation out."""
        self.last_point = self.last_read = self.epoch_start = time.perf_counter()

    def end_epoch(self) -> None:
        self.epoch_s = time.perf_counter() - self.epoch_start
        self.train_s += self.epoch_s

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.no_grad():
            self.sums[0] += loss.detach() * len(labels)
            self.sums[1] += (logits.argmax(1) == labels).sum()
            self.sums[2] += len(labels)

    def close(self, step: int, lr: float) -> None:
        now = time.perf_counter()
        self.pending.append(_Point(step, step / self.steps_per_epoch, self.sums.clone(), lr,
                                   now - self.last_point, now - self.t_start))
        self.epoch_sums.add_(self.sums)
        self.sums.zero_()
        self.last_point = now

    def read(self, extra: list[float] = ()) -> tuple[list[float], list[dict]]:
        """(`extra` summed over the ranks, the closed points as "step" events)."""
        windows = (torch.stack([p.sums for p in self.pending]) if self.pending
                   else self.sums.new_zeros(0, 3))
        if self.group:
            shared = distributed.sum_all(torch.cat([self.sums.new_tensor(extra),
                                                    windows.flatten()])).tolist()
            extra, flat = shared[:len(extra)], shared[len(extra):]
            values = [flat[i:i + 3] for i in range(0, len(flat), 3)]
        else:
            values = windows.tolist()
        read_at = time.perf_counter()
        span_rate = (sum(v[2] for v in values) / (read_at - self.last_read)
                     if self.rate_from_reads and read_at > self.last_read else None)
        self.last_read = read_at
        events = [{"kind": "step", "step": p.step, "epoch": round(p.epoch, 4),
                   "train_loss": loss_sum / count, "train_acc": correct / count, "lr": p.lr,
                   "examples_per_sec": span_rate or (count / p.dt if p.dt > 0 else None),
                   "elapsed_s": p.elapsed}
                  for p, (loss_sum, correct, count) in zip(self.pending, values) if count]
        self.pending.clear()
        return list(extra), events

    def epoch_means(self) -> dict:
        """The epoch's training loss, accuracy and examples/s, over all ranks; the epoch's sums
        start again."""
        if self.group:
            distributed.sum_all(self.epoch_sums)
        loss_sum, correct, count = self.epoch_sums.tolist()
        self.epoch_sums.zero_()
        return {"train_loss": loss_sum / count, "train_acc": correct / count,
                "examples_per_sec": count / self.epoch_s}


def evaluate(model, data: DeviceData, batch_size: int, autocast, should_stop: ShouldStop,
             reduce=None) -> tuple[float, float] | None:
    """(mean cross-entropy, accuracy) on a split, or None when a stop was requested.

    Under torchrun each rank passes its shard of the split and `reduce` sums over the ranks.
    """
    model.eval()
    sums = torch.zeros(3, device=data.images.device)              # loss sum, correct, examples
    sums[2] = len(data)
    last_poll = time.perf_counter()
    with torch.no_grad():  # not inference_mode: the compiled (CUDA-graph) model trains too
        for x, y in data.in_order(batch_size):
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


# --- what ends a run ---

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


class TimeBudget:
    """cfg.time_budget_s (None: no limit), counted from the run's start. It pulls the schedule
    along (progress by the clock when that is further than by steps) and ends the epoch it is
    hit in. Under torchrun the ranks' clocks differ, so rank 0's, shared at each read, decides."""

    def __init__(self, seconds: float | None, t_start: float, shared: bool = False):
        self.seconds, self.t_start, self.shared = seconds, t_start, shared
        self.clock_s = 0.0          # rank 0's seconds since the start at the last read (torchrun)
        self.hit = False

    def progress(self, by_steps: float) -> float:
        """The share of the run done, 0 to 1: by steps, or by the clock when that is further."""
        if self.seconds:
            elapsed = self.clock_s if self.shared else time.perf_counter() - self.t_start
            by_steps = max(by_steps, elapsed / self.seconds)
        return min(by_steps, 1.0)

    def check(self, now: float) -> bool:
        """One process: whether the budget is spent at `now` (perf_counter seconds)."""
        if self.seconds and now - self.t_start >= self.seconds:
            self.hit = True
        return self.hit

    def agree(self, clock_s: float) -> None:
        """Under torchrun: rank 0's clock, as every rank received it."""
        self.clock_s = clock_s
        self.hit = self.hit or bool(self.seconds and clock_s >= self.seconds)

    def verdict(self, epoch: int, epochs: int) -> Verdict:
        return "completed", (f"Stopped at the time budget of {self.seconds:g} s, during epoch "
                             f"{epoch} of {epochs}.")


def stopped(step: int) -> Verdict:
    return "stopped", f"Stopped on request after {step} steps."


class Watch:
    """The loop's occasional look at the run: read the metric window, report its points, and
    say whether the run must end (diverged, a stop request, under torchrun rank 0's clock).

    Under torchrun every rank looks at the same steps: one all-reduce carries the points, the
    stop votes and rank 0's clock, so all ranks reach the same verdict.
    """

    def __init__(self, metrics: MetricWindow, budget: TimeBudget, detector: DivergenceDetector,
                 report: Report, should_stop: ShouldStop, group, eval_every: int):
        self.metrics, self.budget, self.detector = metrics, budget, detector
        self.report, self.should_stop, self.group = report, should_stop, group
        self.eval_every = eval_every
        self.last = time.perf_counter()

    def after_step(self, step: int, lr: float) -> Verdict | None:
        """A point of the curve every eval_every steps, and a look when one is due."""
        if step % self.eval_every == 0:
            self.metrics.close(step, lr)
        return self.verdict(step) if self.due(step) else None

    def end_epoch(self, step: int, lr: float) -> Verdict | None:
        """The epoch's last point (when eval_every does not divide the epoch), and a look."""
        if step % self.eval_every:
            self.metrics.close(step, lr)
        return self.verdict(step)

    def due(self, step: int) -> bool:
        if self.group:  # ranks look at the same steps; their clocks differ
            return step % self.eval_every == 0
        now = time.perf_counter()
        return self.budget.check(now) or now - self.last >= SYNC_INTERVAL_S

    def verdict(self, step: int) -> Verdict | None:
        """Read and report (one host sync); (status, reason) when the run must end."""
        self.last = time.perf_counter()
        if self.group:
            clock = self.last - self.budget.t_start if self.group.is_main else 0.0
            (stop_votes, clock_s), events = self.metrics.read([float(self.should_stop()), clock])
            self.budget.agree(clock_s)
        else:
            _, events = self.metrics.read()
        reason = None
        for event in events:
            self.report(event)
            reason = reason or self.detector.update(event["train_loss"])
        if reason:
            return "diverged", reason
        asked = stop_votes > 0 if self.group else self.should_stop()
        return stopped(step) if asked else None
