"""The training loop: a network, a config and two data splits in; plain-dict events out.

`train()` reports through a callback and never draws, so the same loop runs in the CLI, in the
worker process and in the benchmarks. Its pieces are in config.py (what to do), devices.py
(where), device_data.py (the images on the device) and loop.py (metrics, the update rule, what
ends a run). No streamlit or plotly, and no torch API newer than 2.11 (the GPU benchmark runs on
a bare torch install).

Under torchrun (a process group is initialised, see distributed.py) every rank calls train()
with the same arguments: each takes its share of every batch of `cfg.batch_size` (the global
batch) and of the test set, and the ranks agree every `cfg.eval_every` steps on the metrics and
on stopping (any rank's should_stop() stops all). Only rank 0 calls report and checkpoint; the
events hold the sums over all ranks.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nin_explorer.learn import devices
from nin_explorer.learn import distributed
from nin_explorer.net.build import build_model, init_xavier
from nin_explorer.learn.config import RECIPES, TrainConfig, apply_recipe, effective_precision
from nin_explorer.learn.device_data import DeviceData, TrainData, check_data
from nin_explorer.learn.loop import (DivergenceDetector, MetricWindow, Report, ShouldStop,
                                     TimeBudget, Watch, evaluate, lr_factor, make_optimizer,
                                     stopped)
from nin_explorer.net.spec import NetSpec

Checkpoint = Callable[[dict], None]


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


# --- set-up: where, and the model ---

def _place(cfg: TrainConfig) -> tuple[torch.device, distributed.Group | None, int, int]:
    """(the device this process trains on, the torchrun process group or None, its rank, the
    number of processes)."""
    device = devices.resolve_device(cfg.device)
    group = distributed.current()
    if group is None:
        return device, None, 0, 1
    return devices.rank_device(group, device, cfg.batch_size), group, group.rank, group.world_size


def _set_up_model(spec: NetSpec, cfg: TrainConfig, device: torch.device,
                  group: distributed.Group | None):
    """(the model, what a training step calls, what evaluation calls, the optimiser, the loss)."""
    model = _model_on_device(spec, cfg, device, group)
    optimizer = make_optimizer(model.parameters(), cfg,
                               fused=device.type == "cuda" and cfg.fused_optimizer)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return model, *_parallel_and_compiled(model, cfg, device, group), optimizer, loss_fn


def _model_on_device(spec: NetSpec, cfg: TrainConfig, device: torch.device,
                     group: distributed.Group | None) -> nn.Module:
    """The recipe's initial weights (seeded), on `device` in its memory layout."""
    torch.manual_seed(cfg.seed)
    model = build_model(spec)
    if RECIPES[cfg.recipe].xavier_init:
        init_xavier(model)
    if group and device.type == "cuda":  # BatchNorm statistics over the global batch (GPU-only)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if devices.channels_last(device):
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one input shape for the whole run
    return model


def _parallel_and_compiled(model: nn.Module, cfg: TrainConfig, device: torch.device,
                           group: distributed.Group | None) -> tuple[nn.Module, nn.Module]:
    """(what a training step calls, what evaluation calls): DDP under torchrun, then
    torch.compile when the config asks for it."""
    net = model
    if group:
        torch.manual_seed(cfg.seed + group.rank)  # same weights everywhere, own dropout masks
        net = DistributedDataParallel(model, device_ids=[device.index]
                                      if device.type == "cuda" else None)
    eval_net = model
    if cfg.compile != "off":
        net = torch.compile(net, mode=cfg.compile)
        eval_net = torch.compile(model, mode=cfg.compile) if group else net
    return net, eval_net


def _on_device(spec: NetSpec, cfg: TrainConfig, train_data, test_data, device: torch.device,
               rank: int, world: int) -> tuple[TrainData, DeviceData]:
    """The training split (a seeded subset) and this rank's share of the test split, checked
    against the network."""
    check_data(spec, train_data, "training")
    check_data(spec, test_data, "test")
    where = dict(device=device, size=spec.input_size, channels_last=devices.channels_last(device))
    data = TrainData(train_data, cfg.seed, cfg.batch_size, cfg.max_train_examples, rank, world,
                     **where)
    n_test = min(cfg.max_test_examples or len(test_data.images), len(test_data.images))
    return data, DeviceData.shard(test_data, n_test, rank, world, **where)


def _start_event(spec: NetSpec, cfg: TrainConfig, model: nn.Module, data: TrainData,
                 test: DeviceData, label: str, precision: str, world: int) -> dict:
    return {"kind": "start", "device": label, "precision": precision,
            "channels_last": data.channels_last, "params": sum(p.numel() for p in
                                                             model.parameters()),
            "train_examples": len(data), "test_examples": test.split_size,
            "steps_per_epoch": data.steps_per_epoch,
            "total_steps": cfg.epochs * data.steps_per_epoch, "input_size": spec.input_size,
            "processes": world, "spec": spec.to_dict(), "config": cfg.to_dict()}


def _test(model: nn.Module, eval_net: nn.Module, test: DeviceData, cfg: TrainConfig,
          precision: str, group: distributed.Group | None, should_stop: ShouldStop) -> dict | None:
    """The epoch event's test loss, accuracy and seconds; None when a stop was requested.
    Under torchrun every rank tests its shard with rank 0's BatchNorm statistics."""
    device = test.images.device
    devices.reset_peak_memory(device)
    autocast = functools.partial(devices.autocast, device, precision)
    t_eval = time.perf_counter()
    if group:
        distributed.share_from_main(model.buffers())
    evaluated = evaluate(eval_net, test, cfg.eval_batch_size or cfg.batch_size, autocast,
                         _never if group else should_stop, distributed.sum_all if group else None)
    if evaluated is None:
        return None
    return {"test_loss": evaluated[0], "test_acc": evaluated[1],
            "eval_s": time.perf_counter() - t_eval}


def _memory_fields(device: torch.device, peak_train: int | None) -> dict:
    """The epoch event's peaks: the training part's, and evaluation's (read now)."""
    peak_infer = devices.peak_memory(device)
    return {"peak_memory_bytes": max(peak_train or 0, peak_infer or 0) or None,
            "peak_train_memory_bytes": peak_train, "peak_infer_memory_bytes": peak_infer,
            "memory_basis": devices.memory_basis(device)}


def _state(model: nn.Module, spec: NetSpec, cfg: TrainConfig, epoch: int, classes,
           test_acc: float) -> dict:
    """What checkpoint() gets: CPU tensors and builtins only (loadable with weights_only)."""
    return {"model": {k: v.detach().to("cpu", copy=True).contiguous()
                      for k, v in model.state_dict().items()},
            "spec": spec.to_dict(), "config": cfg.to_dict(), "epoch": epoch,
            "classes": list(classes), "test_acc": test_acc}


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr


def _never() -> bool:
    return False


def _ignore(event: dict) -> None:
    pass


# --- the loop ---

def train(spec: NetSpec, cfg: TrainConfig, train_data, test_data, report: Report,
          should_stop: ShouldStop, checkpoint: Checkpoint | None = None) -> TrainResult:
    """Train `spec` on `train_data` (uint8 images), evaluating on `test_data` after each epoch.

    `report` gets plain dicts: a "start" event, "step" events every `cfg.eval_every` steps and
    an "epoch" event after each evaluation; `should_stop()` is polled every SYNC_INTERVAL_S;
    `checkpoint(state)` gets CPU tensors and builtins per epoch. ConfigError: data that does not
    fit the network, or a missing device. Under torchrun: see the module docstring.
    """
    t_start = time.perf_counter()
    spec, cfg = apply_recipe(spec, cfg)
    device, group, rank, world = _place(cfg)
    if group and not group.is_main:
        report, checkpoint = _ignore, None
    precision = effective_precision(cfg.precision, device.type)
    data, test = _on_device(spec, cfg, train_data, test_data, device, rank, world)
    model, net, eval_net, optimizer, loss_fn = _set_up_model(spec, cfg, device, group)
    graphs = cfg.compile == "reduce-overhead" and device.type == "cuda"
    label = f"{device.type} x{world}" if group else str(device)
    report(_start_event(spec, cfg, model, data, test, label, precision, world))
    metrics = MetricWindow(device, group, t_start, data.steps_per_epoch)
    budget = TimeBudget(cfg.time_budget_s, t_start, shared=group is not None)
    watch = Watch(metrics, budget, DivergenceDetector(spec.num_classes), report, should_stop,
                  group, cfg.eval_every)
    total_steps, step, lr = cfg.epochs * data.steps_per_epoch, 0, cfg.lr
    best_acc, last, outcome = None, {}, None
    for epoch in range(1, cfg.epochs + 1):
        # --- train ---
        devices.reset_peak_memory(device)
        budget.hit = False
        metrics.new_epoch()
        for x, y in data.batches():
            lr = _set_lr(optimizer, cfg.lr * lr_factor(cfg, budget.progress(step / total_steps)))
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with devices.autocast(device, precision):
                logits = net(x).float()                                # (B, n_classes)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; weigh each rank by its share of the batch
            (loss * (len(y) * world / cfg.batch_size) if group else loss).backward()
            optimizer.step()
            metrics.add(loss, logits, y)
            step += 1
            if step == 1 and device.type == "cuda":  # time the first step when it ran, not queued
                torch.cuda.synchronize(device)
            outcome = watch.after_step(step, lr)
            if outcome or budget.hit:
                break
        outcome = outcome or watch.end_epoch(step, lr)
        metrics.end_epoch()
        peak_train = devices.peak_memory(device)
        if outcome:
            break

        # --- evaluate ---
        tested = _test(model, eval_net, test, cfg, precision, group, should_stop)
        if tested is None:
            outcome = stopped(step)
            break
        last = {"kind": "epoch", "step": step, "epoch": epoch, **metrics.epoch_means(),
                **tested, "lr": lr, "elapsed_s": time.perf_counter() - t_start,
                **_memory_fields(device, peak_train)}
        report(last)
        best_acc = max(best_acc or 0.0, last["test_acc"])
        if checkpoint is not None:
            checkpoint(_state(model, spec, cfg, epoch, train_data.classes, last["test_acc"]))
        if budget.hit:
            outcome = budget.verdict(epoch, cfg.epochs)
            break
        if epoch < cfg.epochs and (outcome := watch.verdict(step)):  # a stop during evaluation
            break

    status, reason = outcome or ("completed", f"Trained for {cfg.epochs} epoch(s).")
    return TrainResult(
        status=status, reason=reason, final_test_acc=last.get("test_acc"), best_test_acc=best_acc,
        final_test_loss=last.get("test_loss"), train_loss=last.get("train_loss"),
        train_acc=last.get("train_acc"), wall_s=time.perf_counter() - t_start,
        examples_per_sec=step * cfg.batch_size / metrics.train_s if metrics.train_s else 0.0,
        epochs=epoch, steps=step, device=label, precision=precision)
