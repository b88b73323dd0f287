"""The ordered list of layers a spec stands for.

Shared by the builder (which makes a module per layer) and the summary (which does the
arithmetic), so that summary row names are the built module's names. Pure Python.
"""
from __future__ import annotations

from dataclasses import dataclass

from nin_explorer.net.spec import BlockSpec, NetSpec


@dataclass(frozen=True)
class Layer:
    name: str                 # dotted module path in the built network, e.g. "block1.conv0"
    block: str                # "block1" ... or "head"
    type: str                 # torch class name, or "Concat" for an Inception block's join
    source: int = -1          # index of the layer whose output this one reads (-1: the image)
    out_channels: int = 0     # Conv2d, Linear, Concat
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    p: float = 0.0            # Dropout probability
    path: str = ""            # Inception path ("p1".."p4"), else ""
    concat_of: tuple[int, ...] = ()   # Concat: indices of the path ends it joins


def plan_layers(spec: NetSpec) -> list[Layer]:
    layers: list[Layer] = []
    for i, b in enumerate(spec.blocks, start=1):
        _plan_block(layers, f"block{i}", b, relu_last=spec.final_relu or i < len(spec.blocks))
    _plan_head(layers, spec)
    return layers


def _add(layers: list[Layer], **kw) -> int:
    kw.setdefault("source", len(layers) - 1)
    layers.append(Layer(**kw))
    return len(layers) - 1


def _conv_relu(layers, name, block, out, k, s, p, bn, source=None, path="", relu=True):
    extra = {} if source is None else {"source": source}
    _add(layers, name=f"{name}", block=block, type="Conv2d", out_channels=out,
         kernel=k, stride=s, padding=p, path=path, **extra)
    suffix = name.rsplit(".", 1)[-1].replace("conv", "")
    prefix = name.rsplit(".", 1)[0]
    if bn:
        _add(layers, name=f"{prefix}.bn{suffix}", block=block, type="BatchNorm2d", path=path)
    if not relu:
        return len(layers) - 1
    return _add(layers, name=f"{prefix}.relu{suffix}", block=block, type="ReLU", path=path)


def _plan_block(layers: list[Layer], block: str, b: BlockSpec, relu_last: bool = True) -> None:
    """`relu_last` False: the block's last conv has no ReLU (NetSpec.final_relu; NiN and conv)."""
    if b.kind == "nin":
        widths = b.extra_1x1_channels or (b.out_channels,) * b.n_extra_1x1
        _conv_relu(layers, f"{block}.conv0", block, b.out_channels, b.kernel, b.stride,
                   b.padding, b.batch_norm, relu=relu_last or bool(widths))
        for j, w in enumerate(widths, start=1):
            _conv_relu(layers, f"{block}.conv{j}", block, w, 1, 1, 0, b.batch_norm,
                       relu=relu_last or j < len(widths))
    elif b.kind == "conv":
        for j in range(b.n_convs):
            _conv_relu(layers, f"{block}.conv{j}", block, b.out_channels, b.kernel,
                       b.stride if j == 0 else 1, b.padding, b.batch_norm,
                       relu=relu_last or j < b.n_convs - 1)
    else:  # inception: four paths from the same input, joined on channels
        start = len(layers) - 1
        c1, c2a, c2b, c3a, c3b, c4 = b.paths
        ends = [_conv_relu(layers, f"{block}.p1.conv", block, c1, 1, 1, 0, b.batch_norm,
                           source=start, path="p1")]
        _conv_relu(layers, f"{block}.p2.conv_a", block, c2a, 1, 1, 0, b.batch_norm,
                   source=start, path="p2")
        ends.append(_conv_relu(layers, f"{block}.p2.conv_b", block, c2b, 3, 1, 1,
                               b.batch_norm, path="p2"))
        _conv_relu(layers, f"{block}.p3.conv_a", block, c3a, 1, 1, 0, b.batch_norm,
                   source=start, path="p3")
        ends.append(_conv_relu(layers, f"{block}.p3.conv_b", block, c3b, 5, 1, 2,
                               b.batch_norm, path="p3"))
        _add(layers, name=f"{block}.p4.pool", block=block, type="MaxPool2d", kernel=3,
             stride=1, padding=1, source=start, path="p4")
        ends.append(_conv_relu(layers, f"{block}.p4.conv", block, c4, 1, 1, 0, b.batch_norm,
                               path="p4"))
        _add(layers, name=f"{block}.concat", block=block, type="Concat",
             out_channels=b.channels_out, concat_of=tuple(ends))
    if b.pool != "none":
        _add(layers, name=f"{block}.pool", block=block,
             type="MaxPool2d" if b.pool == "max" else "AvgPool2d",
             kernel=b.pool_kernel, stride=b.pool_stride, padding=b.pool_padding)
    if b.dropout > 0:
        _add(layers, name=f"{block}.dropout", block=block, type="Dropout", p=b.dropout)


def _plan_head(layers: list[Layer], spec: NetSpec) -> None:
    if spec.head in ("gap", "gap-linear"):
        _add(layers, name="head.gap", block="head", type="AdaptiveAvgPool2d")
        _add(layers, name="head.flatten", block="head", type="Flatten")
        if spec.head == "gap-linear":
            _add(layers, name="head.fc", block="head", type="Linear",
                 out_channels=spec.num_classes)
        return
    _add(layers, name="head.flatten", block="head", type="Flatten")
    for j, width in enumerate(spec.fc_hidden, start=1):
        _add(layers, name=f"head.fc{j}", block="head", type="Linear", out_channels=width)
        _add(layers, name=f"head.relu{j}", block="head", type="ReLU")
        if spec.fc_dropout > 0:
            _add(layers, name=f"head.dropout{j}", block="head", type="Dropout",
                 p=spec.fc_dropout)
    _add(layers, name="head.out", block="head", type="Linear", out_channels=spec.num_classes)
