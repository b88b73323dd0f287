"""What a launch will cost before it starts: fitting a spec to a data set, time and memory.

Time comes from FLOPs: a training step costs about three forward passes (forward, and a
backward twice as dear), divided by a rate. The rate is this machine's measured examples/s
for the same network when the store has a run of it, else a rough device figure.
"""
from __future__ import annotations

import dataclasses

from .spec import NetSpec
from .summary import summarize

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


def estimate(spec: NetSpec, batch_size: int, n_train: int, n_test: int, device: str,
             measured_examples_per_s: float | None = None, optimizer: str = "sgd",
             precision: str = "fp32") -> dict:
    s = summarize(spec, batch_size, precision if device == "cuda" else "fp32",
                  "adam" if optimizer in ("adam", "adamw") else
                  "sgd-momentum" if optimizer == "sgd-momentum" else "sgd")
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


def smallest_input_size(spec: NetSpec, at_least: int = 8) -> int | None:
    """The smallest input size >= `at_least` at which the network has valid shapes."""
    from .spec import MAX_INPUT_SIZE, SpecError

    for size in range(at_least, MAX_INPUT_SIZE + 1):
        try:
            summarize(spec.replace(input_size=size))
            return size
        except SpecError:
            continue
    return None
