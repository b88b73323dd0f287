"""Shapes, parameters, FLOPs and memory of a spec, computed by arithmetic (no torch).

Rows are what the table, charts, CLI and export render; nothing here formats for a screen.
FLOPs follow torch.utils.flop_counter: 2 per multiply-add in Conv2d and Linear, biases,
ReLU, BatchNorm and pooling not counted. Those are in `other_ops` so the difference is visible.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from nin_explorer.net.layers import Layer, plan_layers
from nin_explorer.net.spec import MAX_INPUT_SIZE, NetSpec, SpecError

MAX_PARAMS = 1_000_000_000
PRECISIONS = ("fp32", "bf16")
MEMORY_OPTIMIZERS = ("sgd", "sgd-momentum", "adam")  # state per parameter: 0, 1, 2 (config maps onto it)
# Extra fp32 tensors per parameter kept by each optimiser (momentum buffer; Adam's two moments).
OPTIMIZER_STATES = {"sgd": 0, "sgd-momentum": 1, "adam": 2}
# Layers whose backward needs their input, and the one whose backward needs its output.
SAVES_INPUT = {"Conv2d", "Linear", "BatchNorm2d", "MaxPool2d"}
SAVES_OUTPUT = {"ReLU"}


class ShapeError(SpecError):
    """A layer would get (or produce) less than 1x1; carries the rows computed before it."""

    def __init__(self, message: str, rows: list["LayerRow"], layer: str, received: tuple,
                 min_input_size: int | None):
        super().__init__(message)
        self.rows = rows
        self.layer = layer
        self.received = received
        self.min_input_size = min_input_size


class TooLargeError(SpecError):
    """More parameters than MAX_PARAMS; carries the counts, which are still worth showing."""

    def __init__(self, message: str, params: int, fc_params: int):
        super().__init__(message)
        self.params = params
        self.fc_params = fc_params


@dataclass(frozen=True)
class LayerRow:
    index: int
    layer: Layer
    settings: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    flops: int
    other_ops: int
    activations: int          # output elements for one image

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def block(self) -> str:
        return self.layer.block

    @property
    def type(self) -> str:
        return self.layer.type


@dataclass(frozen=True)
class BlockTotal:
    block: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    flops: int
    activations: int


@dataclass(frozen=True)
class Memory:
    """Bytes for one step at `batch_size`; see MEMORY_BASIS for what is counted."""

    batch_size: int
    precision: str
    optimizer: str
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    weight_copies_bytes: int      # bf16 copies of weights that autocast caches
    saved_activations_bytes: int  # tensors kept for backward
    workspace_bytes: int          # gradient buffers of the largest layer during backward
    train_bytes: int
    infer_activations_bytes: int  # largest set of live tensors in a no-grad forward pass
    infer_bytes: int


MEMORY_BASIS = (
    "Training = weights (fp32) + gradients (fp32) + optimiser state (SGD none, momentum one "
    "copy, Adam two copies) + bf16 weight copies under autocast + the activations autograd "
    "saves for backward (the input of every conv, linear, BatchNorm and max-pool layer, the "
    "output of every ReLU, each tensor once; max-pool indices at 8 bytes and dropout masks at "
    "1 byte per element) + a workspace of twice the largest layer output for gradients. "
    "Prediction = weights + the largest set of tensors alive at once in a no-grad forward "
    "pass. Not counted: the CUDA context and allocator caching, cuDNN workspaces, the data set "
    "itself."
)


@dataclass(frozen=True)
class Summary:
    spec: NetSpec
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    blocks: tuple[BlockTotal, ...]
    params: int
    macs: int
    flops: int
    other_ops: int
    activations: int
    memory: Memory

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].output_shape

    @property
    def fc_params(self) -> int:
        """Parameters in fully connected (Linear) layers: what GAP saves."""
        return sum(r.params for r in self.rows if r.type == "Linear")


# --- shapes ---

def _spatial_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _output_shape(layer: Layer, shapes: list[tuple], in_shape: tuple) -> tuple | str:
    """The layer's output shape, or a string saying why there is none."""
    t = layer.type
    if t == "Concat":
        ends = [shapes[i] for i in layer.concat_of]
        return (sum(e[0] for e in ends), *ends[0][1:])
    if t in ("Conv2d", "MaxPool2d", "AvgPool2d"):
        c, h, w = in_shape
        padded = h + 2 * layer.padding
        if padded < layer.kernel:
            return (f"it receives {h}x{w}" + (f" (padded to {padded}x{padded})" if layer.padding else "")
                    + f", smaller than its {layer.kernel}x{layer.kernel} kernel")
        out = _spatial_out(h, layer.kernel, layer.stride, layer.padding)
        return (layer.out_channels if t == "Conv2d" else c, out, out)
    if t == "AdaptiveAvgPool2d":
        return (in_shape[0], 1, 1)
    if t == "Flatten":
        n = 1
        for d in in_shape:
            n *= d
        return (n,)
    if t == "Linear":
        return (layer.out_channels,)
    return in_shape  # ReLU, BatchNorm2d, Dropout


def _shapes(layers: list[Layer], input_shape: tuple) -> tuple[list[tuple], int, str]:
    """Output shapes up to the first failing layer; returns (shapes, failing index or -1, why)."""
    shapes: list[tuple] = []
    for i, layer in enumerate(layers):
        in_shape = input_shape if layer.source < 0 else shapes[layer.source]
        out = _output_shape(layer, shapes, in_shape)
        if isinstance(out, str):
            return shapes, i, out
        shapes.append(out)
    return shapes, -1, ""


def _min_input_size(layers: list[Layer], spec: NetSpec) -> int | None:
    for size in range(spec.input_size + 1, MAX_INPUT_SIZE + 1):
        if _shapes(layers, (spec.in_channels, size, size))[1] < 0:
            return size
    return None


# --- counts ---

def _numel(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _counts(layer: Layer, in_shape: tuple, out_shape: tuple) -> tuple[int, int, int]:
    """(params, multiply-adds, other elementwise ops) for one image."""
    t, out = layer.type, _numel(out_shape)
    if t == "Conv2d":
        fan_in = in_shape[0] * layer.kernel * layer.kernel
        return layer.out_channels * fan_in + layer.out_channels, out * fan_in, out
    if t == "Linear":
        return in_shape[0] * layer.out_channels + layer.out_channels, in_shape[0] * layer.out_channels, out
    if t == "BatchNorm2d":
        return 2 * in_shape[0], 0, 2 * out
    if t == "ReLU":
        return 0, 0, out
    if t == "MaxPool2d":
        return 0, 0, out * (layer.kernel * layer.kernel - 1)
    if t == "AvgPool2d":
        return 0, 0, out * layer.kernel * layer.kernel
    if t == "AdaptiveAvgPool2d":
        return 0, 0, _numel(in_shape)
    return 0, 0, 0


def _settings(layer: Layer, in_shape: tuple) -> str:
    t = layer.type
    if t == "Conv2d":
        return (f"{in_shape[0]}→{layer.out_channels}, {layer.kernel}x{layer.kernel}"
                f", stride {layer.stride}, pad {layer.padding}")
    if t in ("MaxPool2d", "AvgPool2d"):
        return f"{layer.kernel}x{layer.kernel}, stride {layer.stride}, pad {layer.padding}"
    if t == "Linear":
        return f"{in_shape[0]}→{layer.out_channels}"
    if t == "Dropout":
        return f"p {layer.p:g}"
    if t == "BatchNorm2d":
        return f"{in_shape[0]} channels"
    if t == "AdaptiveAvgPool2d":
        return "mean over each map"
    if t == "Concat":
        return "paths joined on channels"
    return ""


# --- memory ---

def _memory(rows: list[LayerRow], input_shape: tuple, params: int, batch_size: int,
            precision: str, optimizer: str) -> Memory:
    act = 2 if precision == "bf16" else 4
    n = len(rows)
    consumers: list[list[int]] = [[] for _ in range(n + 1)]  # slot n is the image
    for i, r in enumerate(rows):
        if r.type == "Concat":
            for j in r.layer.concat_of:
                consumers[j].append(i)
        else:
            consumers[r.layer.source if r.layer.source >= 0 else n].append(i)

    def saved(producer: int) -> bool:
        if producer < n and rows[producer].type in SAVES_OUTPUT:
            return True
        return any(rows[c].type in SAVES_INPUT for c in consumers[producer])

    saved_elems = _numel(input_shape) if saved(n) else 0
    extra_bytes = 0
    for i, r in enumerate(rows):
        if r.type == "Flatten":       # a view of its input
            continue
        if saved(i):
            saved_elems += r.activations
        if r.type == "MaxPool2d":
            extra_bytes += 8 * r.activations
        elif r.type == "Dropout":
            extra_bytes += r.activations
    largest = max([_numel(input_shape)] + [r.activations for r in rows])

    # Prediction: the largest input+output pair (or, for a Concat, the block input, every
    # path end and the joined output), with nothing kept for backward.
    live = _numel(input_shape)
    for r in rows:
        src = _numel(input_shape) if r.layer.source < 0 else rows[r.layer.source].activations
        if r.type == "Concat":
            start = next(x for x in rows if x.block == r.block).layer.source
            block_in = _numel(input_shape) if start < 0 else rows[start].activations
            src = block_in + sum(rows[j].activations for j in r.layer.concat_of)
        live = max(live, src + r.activations)

    b = batch_size
    weights = 4 * params
    copies = 2 * params if precision == "bf16" else 0
    saved_bytes = b * (saved_elems * act + extra_bytes)
    workspace = b * 2 * largest * act
    opt = 4 * params * OPTIMIZER_STATES[optimizer]
    train = weights + weights + opt + copies + saved_bytes + workspace
    infer_act = b * live * act
    return Memory(b, precision, optimizer, weights, weights, opt, copies, saved_bytes, workspace,
                  train, infer_act, weights + copies + infer_act)


# --- the summary ---

@functools.lru_cache(maxsize=512)
def summarize(spec: NetSpec, batch_size: int = 128, precision: str = "fp32",
              optimizer: str = "sgd") -> Summary:
    """Everything the Build page shows; raises SpecError (ShapeError for sizes) with a fix."""
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 65536:
        raise SpecError("Batch size must be a whole number from 1 to 65,536.")
    if precision not in PRECISIONS:
        raise SpecError(f"Precision must be one of {', '.join(PRECISIONS)}.")
    if optimizer not in MEMORY_OPTIMIZERS:
        raise SpecError(f"Optimiser must be one of {', '.join(MEMORY_OPTIMIZERS)}.")
    layers = plan_layers(spec)
    input_shape = (spec.in_channels, spec.input_size, spec.input_size)
    shapes, failed, why = _shapes(layers, input_shape)

    rows: list[LayerRow] = []
    for i, (layer, out_shape) in enumerate(zip(layers, shapes)):
        in_shape = input_shape if layer.source < 0 else shapes[layer.source]
        params, macs, other = _counts(layer, in_shape, out_shape)
        rows.append(LayerRow(i, layer, _settings(layer, in_shape), out_shape, params, macs,
                             2 * macs, other, _numel(out_shape)))
    if failed >= 0:
        layer = layers[failed]
        received = input_shape if layer.source < 0 else shapes[layer.source]
        min_size = _min_input_size(layers, spec)
        fix = (f"Use an input of at least {min_size}x{min_size}" if min_size
               else "No input size up to the limit works")
        raise ShapeError(
            f"Layer {layer.name} ({layer.type}) has no output: {why}. {fix}, or make an earlier "
            f"layer shrink the image less (smaller stride, more padding, fewer pools).",
            rows, layer.name, received, min_size)

    params = sum(r.params for r in rows)
    if params > MAX_PARAMS:
        biggest = max(rows, key=lambda r: r.params)
        raise TooLargeError(
            f"This network would have {params:,} parameters, more than the limit of "
            f"{MAX_PARAMS:,}; {biggest.name} alone has {biggest.params:,}. Pool more before "
            f"the head, use fewer or narrower layers, or a GAP head.",
            params, sum(r.params for r in rows if r.type == "Linear"))
    # No memory limit here: whether a run fits is this machine's question (plan.check_fits).
    memory = _memory(rows, input_shape, params, batch_size, precision, optimizer)

    blocks: dict[str, list[LayerRow]] = {}
    for r in rows:
        blocks.setdefault(r.block, []).append(r)
    block_totals = tuple(
        BlockTotal(name, rs[-1].output_shape, sum(r.params for r in rs), sum(r.macs for r in rs),
                   sum(r.flops for r in rs), sum(r.activations for r in rs))
        for name, rs in blocks.items())
    return Summary(spec, input_shape, tuple(rows), block_totals, params,
                   sum(r.macs for r in rows), sum(r.flops for r in rows),
                   sum(r.other_ops for r in rows), sum(r.activations for r in rows), memory)
