"""Spec -> nn.Module, with module names equal to the summary's row names."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nin_explorer.net.layers import Layer
from nin_explorer.net.spec import NetSpec
from nin_explorer.net.summary import summarize


class InceptionBlock(nn.Module):
    """Four parallel paths from one input, concatenated on channels, then pool/dropout."""

    def __init__(self, paths: "OrderedDict[str, nn.Sequential]", post: "OrderedDict[str, nn.Module]"):
        super().__init__()
        for name, path in paths.items():
            self.add_module(name, path)
        for name, module in post.items():
            self.add_module(name, module)
        self._paths = list(paths)
        self._post = list(post)

    def forward(self, x):
        x = torch.cat([getattr(self, p)(x) for p in self._paths], dim=1)  # (B, sum of c, H, W)
        for name in self._post:
            x = getattr(self, name)(x)
        return x


def _make(layer: Layer, in_shape: tuple[int, ...]) -> nn.Module:
    t = layer.type
    if t == "Conv2d":
        return nn.Conv2d(in_shape[0], layer.out_channels, layer.kernel, layer.stride, layer.padding)
    if t == "BatchNorm2d":
        return nn.BatchNorm2d(in_shape[0])
    if t == "ReLU":
        return nn.ReLU()
    if t == "MaxPool2d":
        return nn.MaxPool2d(layer.kernel, layer.stride, layer.padding)
    if t == "AvgPool2d":
        return nn.AvgPool2d(layer.kernel, layer.stride, layer.padding)
    if t == "Dropout":
        return nn.Dropout(layer.p)
    if t == "AdaptiveAvgPool2d":
        return nn.AdaptiveAvgPool2d(1)
    if t == "Flatten":
        return nn.Flatten()
    if t == "Linear":
        return nn.Linear(in_shape[0], layer.out_channels)
    raise AssertionError(f"no module for layer type {t}")


def build_model(spec: NetSpec) -> nn.Sequential:
    """Build the network; raises SpecError (via summarize) before allocating anything."""
    summary = summarize(spec)
    rows = summary.rows
    in_shapes = [summary.input_shape if r.layer.source < 0 else rows[r.layer.source].output_shape
                 for r in rows]
    blocks: "OrderedDict[str, OrderedDict]" = OrderedDict()
    for row, in_shape in zip(rows, in_shapes):
        layer = row.layer
        if layer.type == "Concat":
            continue
        local = layer.name.split(".", 1)[1]
        blocks.setdefault(layer.block, OrderedDict())[local] = _make(layer, in_shape)
    net = nn.Sequential()
    for block, modules in blocks.items():
        if any("." in local for local in modules):  # an Inception block
            paths: OrderedDict = OrderedDict()
            post: OrderedDict = OrderedDict()
            for local, module in modules.items():
                if "." in local:
                    path, name = local.split(".")
                    paths.setdefault(path, nn.Sequential()).add_module(name, module)
                else:
                    post[local] = module
            net.add_module(block, InceptionBlock(paths, post))
        else:
            net.add_module(block, nn.Sequential(modules))
    return net


def init_xavier(net: nn.Module) -> None:
    """The book's init: Xavier-uniform on every Conv2d and Linear weight."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
